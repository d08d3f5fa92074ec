"""What the live bridge tells its front ends (console, tray), as frozen dataclasses through one subscription,
and the EventHub that delivers them.

Events are delivered on the bridge's own threads; a front end copies them onto its thread (the tray
does it with a Qt signal) and never calls back into the bridge from the delivery.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Union

from engine.music import Note
from engine.session import Candidate, Suggestion
from muse_bridge.locks import RankedLock

if TYPE_CHECKING:
    from muse_bridge.settings import BridgeSettings

log = logging.getLogger(__name__)

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
    answer: str = "off"           # answer mode: "off", or what it waits for or plays


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
    answered_bars: frozenset[int] = frozenset()   # which of the context's bars (0: its first) are answers
    fill: tuple[int, int] | None = None           # fills of these context bars (0-based, first and last)


@dataclass(frozen=True)
class ContextShown:
    """The context's last `bars` bars, for choosing bars to fill: their notes (ticks from the first shown bar line),
    the index of the first shown bar (0-based), and how many of the context's bars are finished (can be filled)."""

    notes: tuple[Note, ...]
    first_bar: int
    bars: int
    finished: int
    bar_ticks: int
    beats_per_bar: int


@dataclass(frozen=True)
class AnswerComing:
    """An answer to the composer's pause will play: `candidate` from timeline tick `start_tick`, which the
    clock reaches at `starts_at` (time.monotonic), a bar lasting `seconds_per_bar`."""

    candidate: Candidate
    start_tick: int
    starts_at: float
    seconds_per_bar: float


@dataclass(frozen=True)
class AnswerEnded:
    """The answer stopped: played to its end (and joined the context, if `joined`), or cut off."""

    cut: bool
    joined: bool = False


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


BridgeEvent = Union[StatusChanged, CandidatesReady, ContextShown, PlayingCandidate, AnswerComing, AnswerEnded, Notice,
                    PortsChanged, SettingsChanged]
Listener = Callable[[BridgeEvent], None]


class EventHub:
    """The listeners of one bridge: `emit` delivers an event to each (a listener's failure is logged, never
    raised: a front end's bug must not stop the music), `tell` says something worth telling (and the status
    with it), `publish_now` delivers the status when it changed. `status` makes the status (the bridge wires it)."""

    def __init__(self, status: Callable[[], BridgeStatus] | None = None) -> None:
        self._listeners: list[Listener] = []
        self.status = status
        self.message = ""                           # the last thing told
        self.last_status: BridgeStatus | None = None
        self._lock = RankedLock("events")           # the two above, told from many threads; never held to deliver

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every event from now on; it hears the last status at once. Returns the
        unsubscribe."""
        self._listeners.append(listener)
        if self.last_status is not None:
            listener(StatusChanged(self.last_status))
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def emit(self, event: BridgeEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a front end's bug must not stop the music
                log.exception("event listener failed on %s", type(event).__name__)

    def tell(self, text: str, error: bool = False) -> None:
        with self._lock:
            self.message = text
        (log.warning if error else log.info)(text)
        self.emit(Notice(text, error))
        self.publish_now()

    def publish_now(self) -> None:
        """The status as it is now, to the listeners if it changed."""
        if self.status is None:
            return
        status = self.status()
        with self._lock:
            changed, self.last_status = status != self.last_status, status
        if changed:
            self.emit(StatusChanged(status))
