"""BridgeSettings: everything the live bridge remembers between runs, as JSON in the user's config folder.

The file is `$MUSE_BRIDGE_SETTINGS` if set, else `settings.json` in the platform's config folder
(`$XDG_CONFIG_HOME/muse-bridge`, `~/Library/Application Support/muse-bridge`, `%APPDATA%\\muse-bridge`).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from engine.sampler import SamplingConfig

log = logging.getLogger(__name__)

SETTINGS_ENV = "MUSE_BRIDGE_SETTINGS"

# command -> [kind, number]: a control change ("cc") or a note ("note") on any channel, value > 0
DEFAULT_TRIGGERS = {"suggest": ["cc", 20], "next": ["cc", 21], "previous": ["cc", 22],
                    "accept": ["cc", 23], "panic": ["cc", 24]}


class SettingsError(ValueError):
    """A settings file that cannot be read; names the file."""


@dataclass
class BridgeSettings:
    midi_api: str = "auto"
    input_port: str = "Muse In"
    output_port: str = "Muse Out"
    virtual_ports: bool | None = None      # None: virtual where the MIDI API can
    output_channel: int = 0                # 0-based MIDI channel the candidates play on
    bpm: float = 120.0                     # tempo without MIDI clock
    time_signature: tuple[int, int] = (4, 4)
    candidates: int = 4
    bars: int = 2
    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 0
    max_tokens_per_bar: int = 192
    triggers: dict[str, list] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_TRIGGERS.items()})
    seed: int | None = None                # fixed: suggestions are reproducible
    queue_size: int = 65536                # MIDI events waiting for the score; beyond, they are counted and dropped

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_tokens_per_bar=self.max_tokens_per_bar)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["time_signature"] = list(self.time_signature)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BridgeSettings":
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if "time_signature" in kwargs:
            kwargs["time_signature"] = tuple(int(v) for v in kwargs["time_signature"])
        return cls(**kwargs)


def default_settings_path() -> Path:
    if os.environ.get(SETTINGS_ENV):
        return Path(os.environ[SETTINGS_ENV])
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "muse-bridge" / "settings.json"


def load_settings(path: Path | None = None) -> BridgeSettings:
    """The saved settings, or the defaults when there is no file yet."""
    path = path or default_settings_path()
    if not path.is_file():
        return BridgeSettings()
    try:
        return BridgeSettings.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise SettingsError(f"{path}: not a valid settings file ({e})") from e


def save_settings(settings: BridgeSettings, path: Path | None = None) -> Path:
    """Write atomically (temporary file, then rename)."""
    path = path or default_settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(settings.to_dict(), f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
