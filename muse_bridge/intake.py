"""Intake: MIDI in -> the live context, and the score thread that moves it on.

The input port's reading thread runs `on_midi`, which reads the clock, tells a trigger from music (once),
and puts the message in a bounded queue: it never waits, and an overflow is counted and reported. It
also drops the echoes of what the output port sent (muse_bridge/echo.py) and calls `on_struck` for a
key the composer strikes (an answer stops there, at once). The score thread takes the queued messages
in batches: triggers become commands (`do`), music goes to the LiveContext, which hands the tokens that
became final to the SessionWorker. Every STATUS_EVERY_SECONDS it also runs `tick` (the status, answers,
and candidates made in a pause).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

import mido

from muse_bridge.clock import ClockFollower
from muse_bridge.commands import Command
from muse_bridge.context import LiveContext
from muse_bridge.echo import EchoGuard
from muse_bridge.midi_triggers import MidiTriggers
from muse_bridge.worker import SessionWorker

log = logging.getLogger(__name__)

SCORE_POLL_SECONDS = 0.005   # how often the score thread moves time on when no message comes
RELEASE_POLL_SECONDS = 0.001  # ... just after a release: the note is final once time has moved past its end
STATUS_EVERY_SECONDS = 0.1   # how often the score thread runs `tick`
BATCH = 4096                 # messages applied under one hold of the score lock, at most
LATE_SECONDS = 0.05          # a message handled later than this after it arrived is reported (once)


class Intake:
    """The input side: `on_midi` for the port, a score thread, `settle` for tests and benchmarks."""

    def __init__(self, clock: ClockFollower, context: LiveContext, worker: SessionWorker, triggers: MidiTriggers,
                 echo: EchoGuard, on_struck: Callable[[], None], do: Callable[[Command], None],
                 tick: Callable[[], None], queue_size: int):
        self.clock, self.context, self.worker, self.triggers, self.echo = clock, context, worker, triggers, echo
        self._on_struck, self._do, self._tick = on_struck, do, tick
        self._events: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.messages_in = 0
        self.overflow = 0
        self.callback_max_seconds = 0.0
        self.echoes = 0                     # notes that came back from the output port, ignored
        # messages handled more than LATE_SECONDS after they arrived, and the latest of them (seconds): counted apart
        # by the two threads that handle them, each changing its own
        self._late = {"midi": [0, 0.0], "score": [0, 0.0]}
        self.last_note_at = float("-inf")   # monotonic time of the last key pressed or released

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
        self._handled("midi", time.monotonic() - t)
        try:
            self._take(message, t, transport_t)
        finally:
            self.callback_max_seconds = max(self.callback_max_seconds, time.perf_counter() - started)

    def _take(self, message: mido.Message, t: float, transport_t: float | None) -> None:
        if self.clock.on_message(message, t, transport_t):
            return
        trigger = self.triggers.claims(message)
        if message.type in ("note_on", "note_off") and not trigger:
            if self.echo.is_echo(message, t):   # what Muse Out just sent, back again: not the composer
                self.echoes += 1
                return
            self.last_note_at = t    # playing: key presses and releases
            if message.type == "note_on" and message.velocity > 0:
                self._on_struck()   # before the note reaches the score: an answer stops now
                self.clock.ensure_running(t)
        try:
            self._events.put_nowait((message, self.clock.tick(t), t, trigger))
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
                self._tick()
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
        """Music into the context (final tokens to the worker), triggers to commands; True when the batch
        released a note (its tokens are final a tick later). A settle() marker (None) only moves time on."""
        music, commands = [], []
        now = time.monotonic()
        for item in filter(None, batch):
            message, tick, received_at, trigger = item
            self._handled("score", now - received_at)
            if not trigger:
                music.append((message, tick, received_at))
            elif (command := self.triggers.command_for(message)) is not None:
                commands.append(command)
        played = self.context.played(music)
        for command in commands:
            self._do(command)   # queued for the command thread: the score never waits for a command
        return played.released

    def _handled(self, thread: str, seconds: float) -> None:
        """A message handled `seconds` after it arrived, on `thread` ("midi" or "score")."""
        if seconds > LATE_SECONDS:
            count = self._late[thread]
            count[0], count[1] = count[0] + 1, max(count[1], seconds)

    @property
    def late(self) -> int:
        """Messages handled more than LATE_SECONDS after they arrived."""
        return sum(count for count, _ in self._late.values())

    @property
    def latest(self) -> float:
        """The latest of them, in seconds (0 when none)."""
        return max(latest for _, latest in self._late.values())

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
        return self.worker.wait_idle(max(0.0, deadline - time.monotonic()))
