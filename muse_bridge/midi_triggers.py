"""MIDI triggers for the bridge's commands, re-assignable by MIDI-learn.

A trigger is a control change or a note, on any channel, with a value (velocity) above 0; the
defaults are CC 20..24 for suggest, next, previous, accept and panic. `learn(command)` binds the
next control or note that arrives to that command (and unbinds it from any other).
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

import mido

from muse_bridge.commands import Command

log = logging.getLogger(__name__)


def _control_of(message: mido.Message) -> tuple[str, int, int] | None:
    """(kind, number, value) of a message that can be a trigger."""
    if message.type == "control_change":
        return "cc", message.control, message.value
    if message.type == "note_on":
        return "note", message.note, message.velocity
    return None


class MidiTriggers:
    """Maps incoming messages to commands; `on_change(triggers)` is called after a learn (to persist it)."""

    def __init__(self, triggers: dict[str, list], on_change: Callable[[dict[str, list]], None] | None = None):
        self.triggers = {Command(k): (str(v[0]), int(v[1])) for k, v in triggers.items()}
        self._on_change = on_change
        self._learning: Command | None = None
        self._lock = threading.Lock()
        self._learned = threading.Event()

    def as_dict(self) -> dict[str, list]:
        return {c.value: [kind, number] for c, (kind, number) in self.triggers.items()}

    def learn(self, command: Command | str) -> None:
        """Bind the next control change or note-on that arrives to `command`."""
        with self._lock:
            self._learning = Command(command)
            self._learned.clear()
        log.info("MIDI-learn: move a control or press a key for %r", self._learning.value)

    def wait_learned(self, timeout: float | None = None) -> bool:
        return self._learned.wait(timeout)

    def claims(self, message: mido.Message) -> bool:
        """Whether the message is a trigger (bound, or being learned) rather than music, whatever its value."""
        control = _control_of(message)
        if control is None:
            return False
        if self._learning is not None and control[2] > 0:
            return True
        return (control[0], control[1]) in self.triggers.values()

    def command_for(self, message: mido.Message) -> Command | None:
        """The command a message triggers (None for music, releases, and the message that completes a learn)."""
        control = _control_of(message)
        if control is None or control[2] == 0:
            return None
        kind, number, _ = control
        with self._lock:
            if self._learning is not None:
                command, self._learning = self._learning, None
                for other in [c for c, t in self.triggers.items() if t == (kind, number)]:
                    del self.triggers[other]
                self.triggers[command] = (kind, number)
                log.info("MIDI-learn: %s %d now triggers %r", kind, number, command.value)
                learned = True
            else:
                learned = False
        if learned:
            if self._on_change is not None:
                self._on_change(self.as_dict())
            self._learned.set()
            return None
        for command, trigger in self.triggers.items():
            if trigger == (kind, number):
                return command
        return None
