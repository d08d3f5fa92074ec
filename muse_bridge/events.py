"""What the live bridge tells its front ends (console, tray), as frozen dataclasses through one subscription.

Events are delivered on the bridge's own threads; a front end copies them onto its thread (the tray
does it with a Qt signal) and never calls back into the bridge from the delivery.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Union

from engine.music import Note
from engine.session import Suggestion

if TYPE_CHECKING:
    from muse_bridge.settings import BridgeSettings

IDLE, LISTENING, GENERATING, PLAYING = "idle", "listening", "generating", "playing"


@dataclass(frozen=True)
class BridgeStatus:
    """One line's worth of state, for the console and the tray."""

    bpm: float
    clock: str                    # "midi clock", "internal", "stopped"
    bar: int                      # 1-based bar of the score (0 before the first note)
    context_tokens: int           # tokens in the Session's state
    pending_tokens: int           # final tokens still on their way to the Session
    last_suggest_seconds: float | None
    device: str
    candidate: int | None         # 1-based index of the candidate being auditioned
    candidates: int
    playing: bool
    overflow: int                 # MIDI messages dropped because the queue was full
    message: str                  # the last thing worth telling (errors, port changes)
    activity: str = IDLE          # IDLE, LISTENING (notes in the context), GENERATING or PLAYING
    unsent: int = 0               # MIDI messages not sent because the output port was gone


@dataclass(frozen=True)
class StatusChanged:
    status: BridgeStatus


@dataclass(frozen=True)
class CandidatesReady:
    """A suggestion is ready; `context` holds the notes of the context's last bars, in ticks that end
    at the candidates' first bar line (negative starts), for previews."""

    suggestion: Suggestion
    context: tuple[Note, ...]
    context_bars: int


@dataclass(frozen=True)
class PlayingCandidate:
    index: int                    # 0-based candidate of the current suggestion
    start_tick: int               # timeline tick of its first bar line


@dataclass(frozen=True)
class Notice:
    text: str
    error: bool = False           # errors also become a tray notification


@dataclass(frozen=True)
class PortsChanged:
    api: str
    input_name: str | None        # None while that port is gone
    output_name: str | None
    virtual: bool


@dataclass(frozen=True)
class SettingsChanged:
    """The settings in force now (after a change was applied, or refused and the old value kept)."""

    settings: "BridgeSettings"


BridgeEvent = Union[StatusChanged, CandidatesReady, PlayingCandidate, Notice, PortsChanged, SettingsChanged]
Listener = Callable[[BridgeEvent], None]
