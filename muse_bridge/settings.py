"""BridgeSettings: everything the live bridge remembers between runs, one nested object saved as JSON.

The console and the tray read and change the same object. Each section is the dataclass of the
part it configures (`PortSettings` of the ports, `ClockSettings` of the clock, `SamplingConfig` of
the sampler), so no field is declared twice. Every dataclass validates itself, and settings only
ever change through `with_changes`, which builds a whole new object or refuses: nothing is
half-applied. A settings file with a bad value keeps the last good value of that field and says so.

The file is `$MUSE_BRIDGE_SETTINGS` if set, else `settings.json` in the platform's config folder
(`$XDG_CONFIG_HOME/muse-bridge`, `~/Library/Application Support/muse-bridge`, `%APPDATA%\\muse-bridge`).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from engine.atomic import atomic_write
from engine.folders import config_folder
from engine.sampler import SamplingConfig
from engine.tokenizer import FILL_GAP_BARS
from muse_bridge.clock import ClockSettings
from muse_bridge.commands import Command
from muse_bridge.ports import PortSettings

log = logging.getLogger(__name__)

SETTINGS_ENV = "MUSE_BRIDGE_SETTINGS"

# command -> [kind, number]: a control change ("cc") or a note ("note") on any channel, value > 0
DEFAULT_TRIGGERS = {"suggest": ["cc", 20], "next": ["cc", 21], "previous": ["cc", 22],
                    "accept": ["cc", 23], "panic": ["cc", 24], "answer": ["cc", 25], "fill": ["cc", 26]}

# a flat name -> the setting it names: the keys of version 0.1's flat settings files, and the live command line's
# option names (`--virtual` is virtual_ports); the one map from flat names to settings
FLAT_NAMES = {"midi_api": "ports.api", "input_port": "ports.input_name", "output_port": "ports.output_name",
              "virtual_ports": "ports.virtual", "output_channel": "ports.output_channel",
              "queue_size": "ports.queue_size", "bpm": "clock.bpm", "time_signature": "clock.time_signature",
              "song_position": "clock.song_position",
              "temperature": "sampling.temperature", "top_p": "sampling.top_p", "top_k": "sampling.top_k",
              "max_tokens_per_bar": "sampling.max_tokens_per_bar", "candidates": "candidates", "bars": "bars",
              "seed": "seed", "fast_step": "fast_step", "precompute": "precompute",
              "answer_after": "answer.after_beats", "answers_join": "answer.join_context"}
# settings that older files hold and that no longer exist: skipped without a word
RETIRED = frozenset({"clock.smoothing"})   # the clock's tempo average: the tempo is measured over a window now
MAX_CANDIDATES = 64
MAX_BARS = 64
MAX_FILL_BARS = FILL_GAP_BARS[1]   # the longest gap filled at once: as long as the gaps the model learnt to fill
MAX_AFTER_BEATS = 16


class SettingsError(ValueError):
    """A settings value or file that cannot be used; names the file or the setting."""


@dataclass(frozen=True)
class AnswerSettings:
    """Call and response (muse_bridge/answers.py)."""

    on: bool = False               # answer the composer's pauses
    after_beats: int = 4           # a pause this long (beats) is answered
    join_context: bool = False     # an answer played to its end joins the context, as Accept does

    def __post_init__(self) -> None:
        if not 1 <= self.after_beats <= MAX_AFTER_BEATS:
            raise ValueError(f"answer after must be 1-{MAX_AFTER_BEATS} beats, got {self.after_beats}")


@dataclass(frozen=True)
class BridgeSettings:
    ports: PortSettings = PortSettings()
    clock: ClockSettings = ClockSettings()
    sampling: SamplingConfig = SamplingConfig()    # temperature, top-p, top-k, key lock, pitch range
    candidates: int = 4
    bars: int = 2
    seed: int | None = None                        # fixed: suggestions are reproducible
    triggers: dict[str, list] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_TRIGGERS.items()})
    hotkey: str = "<ctrl>+<alt>+s"                 # global Suggest key (pynput's spelling)
    fill_hotkey: str = "<ctrl>+<alt>+f"            # global Fill key: the last bars filled anew
    style: str | None = None                       # a style preset file, None for the model's own start
    fast_step: bool = True                         # fast decode step: ONNX Runtime on a CPU, CUDA graphs on a GPU
    precompute: bool = True                        # make candidates in pauses, ready before Suggest is pressed
    answer: AnswerSettings = AnswerSettings()      # call and response: answer the composer's pauses

    def __post_init__(self) -> None:
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise ValueError(f"candidates must be 1-{MAX_CANDIDATES}, got {self.candidates}")
        if not 1 <= self.bars <= MAX_BARS:
            raise ValueError(f"bars must be 1-{MAX_BARS}, got {self.bars}")
        for command, trigger in self.triggers.items():
            Command(command)  # ValueError names an unknown command
            if not (isinstance(trigger, (list, tuple)) and len(trigger) == 2 and trigger[0] in ("cc", "note")
                    and isinstance(trigger[1], int) and 0 <= trigger[1] <= 127):
                raise ValueError(f"trigger of {command!r} must be [\"cc\" or \"note\", 0-127], got {trigger!r}")
        if not self.hotkey.strip() or not self.fill_hotkey.strip():
            raise ValueError("a hotkey needs at least one key")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))   # tuples as lists: what the file holds

    def with_changes(self, changes: dict[str, Any]) -> "BridgeSettings":
        """A copy with `changes` ({"sampling.temperature": 0.8, "bars": 4}); SettingsError naming the first
        setting that cannot take its value, and then nothing is changed."""
        settings = self
        for path, value in changes.items():
            settings = _set(settings, path.split("."), value, path)
        return settings

    @classmethod
    def from_dict(cls, data: dict, source: str = "settings") -> tuple["BridgeSettings", list[str]]:
        """Settings from a file's JSON object, and one line per value that was refused (that setting keeps its default)."""
        if not isinstance(data, dict):
            return cls(), [f"{source}: not a JSON object of settings; using the defaults"]
        settings, problems = cls(), []
        for path, value in _flatten(data):
            path = FLAT_NAMES.get(path, path)
            if path in RETIRED:
                continue
            try:
                settings = settings.with_changes({path: value})
            except SettingsError as e:
                problems.append(f"{source}: {e}; keeping {_get(settings, path)!r}")
        return settings, problems


@dataclass(frozen=True)
class SettingsChange:
    """Settings to change, as every front end, MIDI-learn and the settings file ask for them: setting -> value
    ({"sampling.temperature": 0.8, "bars": 4}), saved to the file when `persist`."""

    values: Mapping[str, Any]
    persist: bool = False


class SettingsInForce:
    """The settings the live parts follow now: `value` is read from any thread; `change` replaces it, one change
    at a time."""

    def __init__(self, value: BridgeSettings):
        self.value = value
        self._lock = threading.Lock()

    def change(self, update: Callable[[BridgeSettings], BridgeSettings]) -> tuple[BridgeSettings, BridgeSettings]:
        """Replace the settings with `update(settings)`; returns (old, new)."""
        with self._lock:
            old = self.value
            self.value = update(old)
            return old, self.value


def _flatten(data: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """{"ports": {"api": "jack"}} -> [("ports.api", "jack")]; triggers stay one value."""
    out = []
    for key, value in data.items():
        path = prefix + str(key)
        if isinstance(value, dict) and path != "triggers":
            out += _flatten(value, path + ".")
        else:
            out.append((path, value))
    return out


def _get(obj: Any, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name, None)
    return obj


def _set(obj: Any, names: list[str], value: Any, path: str) -> Any:
    """A copy of dataclass `obj` with the field at `names` set to `value`, type-checked and validated."""
    known = {f.name for f in fields(obj)}
    if names[0] not in known:
        raise SettingsError(f"unknown setting {path!r}")
    current = getattr(obj, names[0])
    if len(names) > 1:
        if not is_dataclass(current):
            raise SettingsError(f"unknown setting {path!r}")
        new = _set(current, names[1:], value, path)
    else:
        if is_dataclass(current):
            raise SettingsError(f"{path} is a section, not a value")
        new = _coerce(value, typing.get_type_hints(type(obj))[names[0]], path)
    try:
        return replace(obj, **{names[0]: new})
    except (ValueError, TypeError) as e:
        raise SettingsError(f"{path}: {e}") from None


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """`value` as the type `hint` says (ints for floats, lists for tuples), or SettingsError naming the setting."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, path)
            except SettingsError as e:
                errors.append(e)
        raise errors[0]
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    if origin is tuple and isinstance(value, (list, tuple)) and len(args) == 2 and args[1] is Ellipsis:
        return tuple(_coerce(v, args[0], path) for v in value)
    if origin is tuple and isinstance(value, (list, tuple)) and len(value) == len(args):
        return tuple(_coerce(v, a, path) for v, a in zip(value, args))
    if origin is dict and isinstance(value, dict):
        return {str(k): list(v) if isinstance(v, (list, tuple)) else v for k, v in value.items()}
    described = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(
        hint, f"{len(args)} values" if origin is tuple else "an object" if origin is dict else str(hint))
    raise SettingsError(f"{path} must be {described}, got {value!r}")


def default_settings_path(platform: str | None = None) -> Path:
    """`$MUSE_BRIDGE_SETTINGS`, else settings.json in the platform's config folder (engine/folders.py)."""
    if os.environ.get(SETTINGS_ENV):
        return Path(os.environ[SETTINGS_ENV])
    return config_folder(platform) / "settings.json"


def style_folder(settings_path: Path | None = None) -> Path:
    """Where the style picker looks for presets: `styles/` beside the settings file."""
    return (settings_path or default_settings_path()).parent / "styles"


def read_settings(path: Path | None = None) -> tuple[BridgeSettings, list[str]]:
    """The saved settings (the defaults when there is no file yet) and one line per value that was refused."""
    path = path or default_settings_path()
    if not path.is_file():
        return BridgeSettings(), []
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return BridgeSettings(), [f"{path}: not a readable settings file ({e}); using the defaults"]
    return BridgeSettings.from_dict(data, str(path))


def load_settings(path: Path | None = None) -> BridgeSettings:
    """The saved settings; every refused value is logged as a warning and keeps its default."""
    settings, problems = read_settings(path)
    for problem in problems:
        log.warning(problem)
    return settings


def save_settings(settings: BridgeSettings, path: Path | None = None) -> Path:
    """Write atomically: a crash never leaves half a settings file."""
    text = json.dumps(settings.to_dict(), indent=2).encode()
    return atomic_write(path or default_settings_path(), lambda f: f.write(text))
