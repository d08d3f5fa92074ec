"""What a front end may ask of the bridge and read from it: typed requests with their parameters, typed setting
keys, and a read-only snapshot.

The panel, the tray, the console, the hotkey and the command socket send a `Command` (no parameters: Suggest,
Next, Panic, ...) or one of the requests below through `LiveBridge.send`; settings travel as a `SettingsChange`
keyed by `Setting`, checked when it is made. They read `LiveBridge.snapshot()` and the events they subscribed
to (muse_bridge/events.py), and never reach into the bridge's parts.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Union

from muse_bridge.commands import Command
from muse_bridge.events import BridgeStatus, PortsChanged
from muse_bridge.settings import BridgeSettings, SettingsChange


class Setting(Enum):
    """The settings a front end changes, each naming its place in BridgeSettings."""

    TEMPERATURE = "sampling.temperature"
    TOP_P = "sampling.top_p"
    TOP_K = "sampling.top_k"
    MEMORY = "sampling.memory"
    DENSITY = "sampling.density"
    POLYPHONY = "sampling.polyphony"
    CHORDS = "sampling.chords"
    KEY_LOCK = "sampling.key_lock"
    PITCH_RANGE = "sampling.pitch_range"
    BARS = "bars"
    CANDIDATES = "candidates"
    STYLE = "style"
    ANSWER_ON = "answer.on"
    ANSWER_AFTER_BEATS = "answer.after_beats"
    ANSWER_JOIN_CONTEXT = "answer.join_context"
    PORTS_API = "ports.api"
    PORTS_INPUT = "ports.input_name"
    PORTS_OUTPUT = "ports.output_name"
    PORTS_VIRTUAL = "ports.virtual"
    PORTS_CHANNEL = "ports.output_channel"


def change(values: dict[Setting, object], persist: bool = False) -> SettingsChange:
    """A SettingsChange from typed keys (checked now: a key that is no Setting is a TypeError)."""
    for key in values:
        if not isinstance(key, Setting):
            raise TypeError(f"{key!r} is not a Setting")
    return SettingsChange({key.value: value for key, value in values.items()}, persist)


@dataclass(frozen=True)
class PlayCandidate:
    """Audition candidate `index` (0-based) of the suggestion shown."""

    index: int


@dataclass(frozen=True)
class ExportCandidate:
    """Write candidate `index` (None: the one auditioned) as a .mid file to `path` (None: muse_candidate_<i>.mid)."""

    index: int | None = None
    path: Path | None = None


@dataclass(frozen=True)
class FillBars:
    """Fill the context's bars first..last (0-based, finished bars) anew."""

    first: int
    last: int


@dataclass(frozen=True)
class ShowContext:
    """Tell the front ends the context's last bars (a ContextShown), to choose bars to fill from."""


@dataclass(frozen=True)
class DetectKey:
    """Set the key lock to the key of what was played."""


@dataclass(frozen=True)
class ChordsFromPlaying:
    """Set the chords to those of the bars played."""


@dataclass(frozen=True)
class LearnTrigger:
    """Bind the next control change or note that arrives to `command`."""

    command: Command


Request = Union[Command, PlayCandidate, ExportCandidate, FillBars, ShowContext, DetectKey, ChordsFromPlaying,
                LearnTrigger, SettingsChange]


@dataclass(frozen=True)
class BridgeSnapshot:
    """What a front end reads of the bridge, all at one moment."""

    status: BridgeStatus
    settings: BridgeSettings
    ports: PortsChanged
    device: str
    has_controls: bool            # the model reads density, polyphony and chords
    bpm: float
    message: str                  # the last thing the bridge told
