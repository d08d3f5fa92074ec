"""Where Muse Bridge keeps its files on each platform (platformdirs), in one place.

- settings and style presets: the roaming config folder, with no author folder, so that they stay
  where users have them: `$XDG_CONFIG_HOME/muse-bridge` (else `~/.config/muse-bridge`) on Linux,
  `~/Library/Application Support/muse-bridge` on macOS, `%APPDATA%\\muse-bridge` on Windows;
- caches (the exported fast step): `$XDG_CACHE_HOME/muse-bridge` (else `~/.cache/muse-bridge`) on Linux,
  `~/Library/Caches/muse-bridge` on macOS, `%LOCALAPPDATA%\\muse-bridge\\Cache` on Windows.

`platform` (a `sys.platform` value) selects another platform's rules: the tests check every branch on
one machine.
"""
from __future__ import annotations

import sys
from pathlib import Path

from platformdirs.api import PlatformDirsABC
from platformdirs.macos import MacOS
from platformdirs.unix import Unix
from platformdirs.windows import Windows

APP = "muse-bridge"


def platform_dirs(platform: str | None = None) -> PlatformDirsABC:
    rules = {"win32": Windows, "cygwin": Windows, "darwin": MacOS}.get(platform or sys.platform, Unix)
    return rules(APP, appauthor=False, roaming=True)


def config_folder(platform: str | None = None) -> Path:
    """Settings and style presets."""
    return Path(platform_dirs(platform).user_config_dir)


def cache_folder(platform: str | None = None) -> Path:
    """What can be made again: the exported decode step."""
    return Path(platform_dirs(platform).user_cache_dir)
