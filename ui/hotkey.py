"""The global Suggest hotkey, through pynput (X11, macOS, Windows).

Wayland gives no application a global key grab: there the desktop's own shortcut settings run
`muse-bridge --command suggest` (see docs/tray.md). macOS lets a process listen only with the
Accessibility permission; without it the hotkey says so, and how to give it. The hotkey's callback runs on pynput's thread and
must only queue work.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable

log = logging.getLogger(__name__)

WAYLAND_ADVICE = ("bind `muse-bridge --command suggest` to a key in your desktop's keyboard shortcut settings")
MACOS_ACCESSIBILITY = ("macOS does not let Muse Bridge watch the keyboard, so the global hotkey is off: allow the "
                       "app you started it from (Terminal, or Python) under System Settings > Privacy & Security > "
                       "Accessibility and Input Monitoring, then start Muse Bridge again; the panel's Suggest button "
                       "and the MIDI trigger (CC 20) work meanwhile")


def accessibility_problem(listener, platform: str | None = None) -> str | None:
    """Why a started pynput listener hears nothing (macOS without the Accessibility permission), None if it hears."""
    if (platform or sys.platform) == "darwin" and not getattr(listener, "IS_TRUSTED", True):
        return MACOS_ACCESSIBILITY
    return None


class HotkeyUnavailable(RuntimeError):
    """No global hotkey here; the message says why and what to do instead."""


class GlobalHotkey:
    """`start()` listens for each key of `keys` (pynput's spelling, e.g. "<ctrl>+<alt>+s" -> what it does) anywhere
    on the desktop."""

    def __init__(self, keys: dict[str, Callable[[], None]]):
        self.keys = keys
        self._listener = None

    def start(self) -> "GlobalHotkey":
        """Raises HotkeyUnavailable (Wayland, no X connection, a key spelling pynput cannot read)."""
        if sys.platform.startswith("linux") and os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
            raise HotkeyUnavailable(f"Wayland has no global hotkeys for applications: {WAYLAND_ADVICE}")
        try:
            from pynput import keyboard
        except ImportError as e:   # pynput missing, or no X server to talk to
            raise HotkeyUnavailable(f"global hotkey unavailable ({str(e).splitlines()[0]}); {WAYLAND_ADVICE}") from None
        for spec in self.keys:
            try:
                keyboard.HotKey.parse(spec)
            except ValueError as e:
                raise HotkeyUnavailable(f"hotkey {spec!r} cannot be read ({e}); write it like <ctrl>+<alt>+s") from None
        self._listener = keyboard.GlobalHotKeys(dict(self.keys))
        self._listener.daemon = True
        self._listener.start()
        if sys.platform == "darwin":
            self._listener.wait()   # its thread has asked macOS whether it may listen
            problem = accessibility_problem(self._listener)
            if problem is not None:
                self.stop()
                raise HotkeyUnavailable(problem)
        log.info("global hotkeys %s", ", ".join(self.keys))
        return self

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
