"""EchoGuard: notes that come back on the input port as an echo of what the output port just sent.

A DAW track that records "Muse Out" with monitoring on, and sends its output to "Muse In", plays every
note the bridge sends straight back to it. Such an echo is the same note-on (pitch and velocity; any
channel) arriving within ECHO_SECONDS of the bridge sending it, and later the note-off of that pitch
(sent within the window too). An echo is neither the composer playing (it does not cut an answer off,
nor end a pause) nor part of the context. The composer striking the pitch the bridge just struck, at
its very velocity, within the window, would be taken for an echo: velocity makes that rare, and a
note-off is only an echo's when its note-on was, so a key of the composer's is never left held.
"""
from __future__ import annotations

import time
from collections import deque

import mido

from muse_bridge.locks import RankedLock

ECHO_SECONDS = 0.06      # a DAW's monitoring path: a buffer or two, and the MIDI round trip
REMEMBERED = 512         # note messages sent, at most, that an echo is looked for among


def _note_key(message: mido.Message) -> tuple[int, int] | None:
    """(pitch, velocity) of a note-on, (pitch, -1) of a note-off, None for anything else."""
    if message.type == "note_on" and message.velocity > 0:
        return message.note, message.velocity
    if message.type in ("note_on", "note_off"):
        return message.note, -1
    return None


class EchoGuard:
    """`sent(message)` from the output side, `is_echo(message, t)` from the input side (both on time.monotonic)."""

    def __init__(self, window: float = ECHO_SECONDS, now=time.monotonic):
        self.window, self._now = window, now
        self._sent: deque[tuple[float, tuple[int, int]]] = deque(maxlen=REMEMBERED)
        self._echoed: set[int] = set()     # pitches whose note-on came back and whose note-off has not
        self._lock = RankedLock("echo")
        self.echoes = 0

    def sent(self, message: mido.Message) -> None:
        key = _note_key(message)
        if key is not None:
            with self._lock:
                self._sent.append((self._now(), key))

    def is_echo(self, message: mido.Message, t: float) -> bool:
        """True when `message` is the echo of a note message sent within the window before `t`; each sent
        message matches one echo at most."""
        key = _note_key(message)
        if key is None:
            return False
        pitch, velocity = key
        with self._lock:
            while self._sent and self._sent[0][0] < t - self.window:
                self._sent.popleft()
            if velocity < 0 and pitch not in self._echoed:
                return False   # the release of a key the composer pressed
            for i, (at, sent) in enumerate(self._sent):
                if sent == key and at <= t:
                    del self._sent[i]
                    if velocity < 0:
                        self._echoed.discard(pitch)
                    else:
                        self._echoed.add(pitch)
                    self.echoes += 1
                    return True
        return False
