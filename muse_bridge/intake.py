"""Intake: MIDI in -> the live score -> final tokens to the session worker.

rtmidi's reading thread runs `on_midi`, which only reads the clock and puts the message in a bounded
queue: it never waits, and an overflow is counted and reported. It also drops the echoes of what the
output port sent (muse_bridge/echo.py) and cuts an answer off when the composer plays (answers.py).
The score thread takes the queued
messages in batches, applies them to the LiveScore under the bridge's score lock, and hands the tokens
that became final to the SessionWorker. Every STATUS_EVERY_SECONDS it also runs the bridge's `tick`
(the status, and candidates made in a pause).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mido

from muse_bridge.worker import FeedTiming

if TYPE_CHECKING:
    from muse_bridge.bridge import LiveBridge

log = logging.getLogger(__name__)

SCORE_POLL_SECONDS = 0.005   # how often the score thread moves time on when no message comes
RELEASE_POLL_SECONDS = 0.001  # ... just after a release: the note is final once time has moved past its end
STATUS_EVERY_SECONDS = 0.1   # how often the score thread runs the bridge's tick
BATCH = 4096                 # messages applied under one hold of the score lock, at most


@dataclass(frozen=True)
class LiveStats:
    messages_in: int
    overflow: int
    callback_max_seconds: float
    notes_seen: int
    tokens_committed: int
    tokens_fed: int


class Intake:
    """The input side of a LiveBridge: `on_midi` for the port, a score thread, `settle` for tests and benchmarks."""

    def __init__(self, bridge: "LiveBridge", queue_size: int):
        self.bridge = bridge
        self._events: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.messages_in = 0
        self.overflow = 0
        self.callback_max_seconds = 0.0
        self.echoes = 0                     # notes that came back from the output port, ignored
        self.last_note_at = float("-inf")   # monotonic time of the last key pressed or released
        self._played: tuple[float | None, float | None] = (None, None)   # last note message: received, applied

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="muse-score", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ---- the port's reading thread: must never wait ----------------------------------------

    def on_midi(self, message: mido.Message, t: float, transport_t: float | None = None) -> None:
        started = time.perf_counter()
        self.messages_in += 1
        try:
            self._take(message, t, transport_t)
        finally:
            self.callback_max_seconds = max(self.callback_max_seconds, time.perf_counter() - started)

    def _take(self, message: mido.Message, t: float, transport_t: float | None) -> None:
        b = self.bridge
        if b.clock.on_message(message, t, transport_t):
            return
        if message.type in ("note_on", "note_off") and not b.triggers.claims(message):
            if b.echo.is_echo(message, t):   # what Muse Out just sent, back again: not the composer
                self.echoes += 1
                return
            self.last_note_at = t    # playing: key presses and releases
            if message.type == "note_on" and message.velocity > 0:
                b.answers.composer_played()   # before the note reaches the score: an answer stops now
                b.clock.ensure_running(t)
        try:
            self._events.put_nowait((message, b.clock.position(t), t))
        except queue.Full:
            self.overflow += 1
            if self.overflow == 1 or self.overflow % 1000 == 0:
                log.warning("MIDI input queue full: %d messages dropped so far", self.overflow)

    # ---- the score thread ------------------------------------------------------------------

    def _loop(self) -> None:
        next_tick = 0.0
        poll = SCORE_POLL_SECONDS
        while not self._stop.is_set():
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + STATUS_EVERY_SECONDS
                self.bridge.tick()
            batch = []
            try:
                batch.append(self._events.get(timeout=poll))
                while len(batch) < BATCH:
                    batch.append(self._events.get_nowait())
            except queue.Empty:
                pass
            try:
                released = self._apply(batch)
                poll = RELEASE_POLL_SECONDS if released else SCORE_POLL_SECONDS
            except Exception:  # one bad batch must not end the thread every later note goes through
                log.exception("the live score failed on %d messages", len(batch))
            finally:
                for _ in batch:
                    self._events.task_done()

    def _apply(self, batch: list) -> bool:
        """Messages into the live score, final tokens to the worker; True when the batch released a note
        (its tokens are final a tick later)."""
        b = self.bridge
        commands, released = [], False
        with b.score_lock:
            for item in batch:
                if item is None:
                    continue  # a settle() marker: only time moves on
                message, position, received_at = item
                if b.triggers.claims(message):
                    command = b.triggers.command_for(message)
                    if command is not None:
                        commands.append(command)
                    continue
                if message.type == "note_on" and message.velocity > 0:
                    b.suggestions.discard_prepared()   # candidates made before this note no longer fit
                    if not b.score.started:
                        b.score.start(b.clock.bars.bar_line_at_or_before(int(position)), b.clock.bpm)
                b.score.handle(message, int(position))
                if message.type in ("note_on", "note_off"):
                    self._played = (received_at, time.monotonic())
                    released |= message.type == "note_off" or message.velocity == 0
            self.commit()
        for command in commands:
            b.do(command)   # queued for the command thread: the score never waits for a command
        return released

    def commit(self) -> None:
        """Hand the tokens final by now to the worker (called with the score lock held), with the times of the
        last note message played before them."""
        b = self.bridge
        tokens = b.score.advance(int(b.clock.position()))
        if tokens:
            (received, applied), self._played = self._played, (None, None)
            b.worker.feed(tokens, FeedTiming(received, applied, time.monotonic()))

    def settle(self, timeout: float) -> bool:
        """Wait until every message received so far, and the time up to now, have reached the score, and the
        tokens final by then the Session; False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        try:
            self._events.put(None, timeout=timeout)  # the score thread commits at its time of taking it
        except queue.Full:
            return False
        with self._events.all_tasks_done:
            if not self._events.all_tasks_done.wait_for(lambda: not self._events.unfinished_tasks,
                                                        max(0.0, deadline - time.monotonic())):
                return False
        return self.bridge.worker.wait_idle(max(0.0, deadline - time.monotonic()))
