"""LiveBridge: ports, clock, live score, session worker and player wired together, with the commands as methods.

Threads: rtmidi's input thread runs `_on_midi`, which only reads the clock and puts the message in a
bounded queue (never waits; an overflow is counted and reported). The score thread applies queued
messages to the LiveScore and hands the tokens that became final to the SessionWorker, whose
thread owns the model. The Player has its own thread. Commands (suggest, next, previous, accept,
clear, panic, export) come from this API, from MIDI triggers, or from the console.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import mido

from engine.checkpoint import Checkpoint
from engine.session import Candidate, Session, Suggestion
from engine.state import State
from muse_bridge.clock import ClockFollower, ClockSettings
from muse_bridge.controller import Command, MidiTriggers
from muse_bridge.live_score import LiveScore, LiveScoreConfig
from muse_bridge.player import Player, export_candidate
from muse_bridge.ports import BridgePorts, PortSettings
from muse_bridge.settings import BridgeSettings, load_settings, save_settings
from muse_bridge.worker import SessionWorker, SuggestJob

log = logging.getLogger(__name__)

TICKS_PER_BEAT = 480
SCORE_POLL_SECONDS = 0.005   # how often the score thread moves time on when no message comes


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


@dataclass(frozen=True)
class LiveStats:
    messages_in: int
    overflow: int
    callback_max_seconds: float
    notes_seen: int
    tokens_committed: int
    tokens_fed: int


class LiveBridge:
    """Open with `start()`, drive with the command methods, end with `close()` (also sends the note-offs)."""

    def __init__(self, checkpoint: Checkpoint, settings: BridgeSettings = BridgeSettings(),
                 initial_state: State | None = None, settings_path: Path | None = None,
                 client_name: str = "Muse Bridge"):
        self.settings, self.settings_path = settings, settings_path
        self.tokenizer = checkpoint.tokenizer
        self.clock = ClockFollower(ClockSettings(bpm=settings.bpm, time_signature=tuple(settings.time_signature),
                                                 ticks_per_beat=TICKS_PER_BEAT))
        self.score = LiveScore(self.tokenizer, LiveScoreConfig(TICKS_PER_BEAT, tuple(settings.time_signature)),
                               tempo_bpm=settings.bpm)
        self.worker = SessionWorker(Session(checkpoint.model, self.tokenizer, initial_state))
        self.triggers = MidiTriggers(settings.triggers, on_change=self._save_triggers)
        self.ports = BridgePorts(PortSettings(settings.midi_api, settings.input_port, settings.output_port,
                                              settings.virtual_ports, client_name, queue_size=settings.queue_size),
                                 self._on_midi, on_change=self._tell)
        self.player = Player(self.ports.send, self.clock, settings.output_channel)
        self._events: queue.Queue = queue.Queue(maxsize=settings.queue_size)
        self._lock = threading.RLock()        # the LiveScore and what is handed to the worker with it
        self._stop = threading.Event()
        self._score_thread: threading.Thread | None = None
        self.suggestion: Suggestion | None = None
        self.index = 0
        self.message = ""
        self.messages_in = 0
        self.overflow = 0
        self.callback_max_seconds = 0.0
        self.last_suggest_seconds: float | None = None       # request -> candidates ready
        self.last_first_note_seconds: float | None = None    # request -> first note scheduled
        self._requested_at: float | None = None
        self.suggestions_done = threading.Event()

    # ---- life cycle ---------------------------------------------------------------------

    def start(self) -> "LiveBridge":
        self.worker.start()
        self.ports.open()
        self._score_thread = threading.Thread(target=self._score_loop, name="muse-score", daemon=True)
        self._score_thread.start()
        log.info("listening on %r, playing on %r (%s)", self.ports.input_name, self.ports.output_name, self.ports.api)
        return self

    def close(self) -> None:
        """Note-offs for everything playing, then ports and threads down."""
        self.player.close()
        self._stop.set()
        if self._score_thread is not None:
            self._score_thread.join(timeout=5)
        self.ports.close()
        self.worker.stop()

    def __enter__(self) -> "LiveBridge":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- MIDI in (the port's reading thread: must never wait) ------------------------------------

    def _on_midi(self, message: mido.Message, t: float) -> None:
        started = time.perf_counter()
        self.messages_in += 1
        if not self.clock.on_message(message, t):
            if message.type == "note_on" and message.velocity > 0 and not self.triggers.claims(message):
                self.clock.ensure_running(t)
            try:
                self._events.put_nowait((message, self.clock.position(t)))
            except queue.Full:
                self.overflow += 1
                if self.overflow == 1 or self.overflow % 1000 == 0:
                    log.warning("MIDI input queue full: %d messages dropped so far", self.overflow)
        self.callback_max_seconds = max(self.callback_max_seconds, time.perf_counter() - started)

    # ---- the score thread --------------------------------------------------------------------

    def _score_loop(self) -> None:
        while not self._stop.is_set():
            batch = []
            try:
                batch.append(self._events.get(timeout=SCORE_POLL_SECONDS))
                while len(batch) < 4096:
                    batch.append(self._events.get_nowait())
            except queue.Empty:
                pass
            try:
                self._apply(batch)
            except Exception:  # one bad batch must not end the thread every later note goes through
                log.exception("the live score failed on %d messages", len(batch))
            finally:
                for _ in batch:
                    self._events.task_done()

    def _apply(self, batch: list) -> None:
        commands = []
        with self._lock:
            for item in batch:
                if item is None:
                    continue  # a settle() marker: only time moves on
                message, position = item
                if self.triggers.claims(message):
                    command = self.triggers.command_for(message)
                    if command is not None:
                        commands.append(command)
                    continue
                if message.type == "note_on" and message.velocity > 0 and not self.score.started:
                    tick = int(position)
                    self.score.start(tick - tick % self.score.bar_ticks, self.clock.bpm)
                self.score.handle(message, int(position))
            self._commit()
        for command in commands:
            self.do(command)

    def settle(self, timeout: float) -> bool:
        """Wait until every message received so far, and the time up to now, have reached the score,
        and the tokens final by then the Session (tests, benchmarks); False after `timeout` seconds."""
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

    def _commit(self) -> None:
        """Hand the tokens final by now to the worker (called with the lock held)."""
        self.worker.feed(self.score.advance(int(self.clock.position())))

    # ---- commands --------------------------------------------------------------------------

    def do(self, command: Command | str) -> None:
        """Run a command by name (MIDI triggers and console keys come through here)."""
        command = Command(command)
        try:
            {Command.SUGGEST: self.suggest, Command.NEXT: self.next, Command.PREVIOUS: self.previous,
             Command.ACCEPT: self.accept, Command.CLEAR: self.clear, Command.PANIC: self.panic,
             Command.EXPORT: self.export}[command]()
        except (ValueError, OSError) as e:
            self._tell(f"{command.value} failed: {e}")

    def suggest(self, seed: int | None = None) -> None:
        """K candidates of N bars from the next bar line; the first plays there when ready."""
        with self._lock:
            self.clock.ensure_running()
            now = self.clock.position()
            self.worker.feed(self.score.advance(int(now)))
            tail = self.score.tail(int(now))
            target = (int(now) // self.clock.bar_ticks + 1) * self.clock.bar_ticks
            s = self.settings
            job = SuggestJob(s.candidates, s.bars, s.sampling(), tuple(tail), s.seed if seed is None else seed)
            self._requested_at = job.requested_at
            self.suggestions_done.clear()
            self.worker.suggest(job, lambda j, sug, err: self._suggested(j, sug, err, target))

    def _suggested(self, job: SuggestJob, suggestion: Suggestion | None, error: Exception | None,
                   target: int) -> None:
        if error is not None:
            self._tell(f"suggest failed: {error}")
            self.suggestions_done.set()
            return
        self.last_suggest_seconds = time.perf_counter() - job.requested_at
        self.suggestion, self.index = suggestion, 0
        start = target if target > self.clock.position() else self.clock.next_bar_line()
        self.player.play(suggestion.candidates[0], start)
        self.last_first_note_seconds = time.perf_counter() - job.requested_at
        self._tell(f"{len(suggestion.candidates)} candidates in {self.last_suggest_seconds:.2f} s")
        self.suggestions_done.set()

    @property
    def candidate(self) -> Candidate | None:
        return self.suggestion.candidates[self.index] if self.suggestion else None

    def _audition(self, step: int) -> None:
        if self.suggestion is None:
            self._tell("nothing to audition: suggest first")
            return
        self.index = (self.index + step) % len(self.suggestion.candidates)
        self.player.play(self.candidate, self.clock.next_bar_line())

    def next(self) -> None:
        """Play the next candidate from the next bar line."""
        self._audition(+1)

    def previous(self) -> None:
        self._audition(-1)

    def accept(self) -> None:
        """The candidate being auditioned joins the context, before the next bar line committed."""
        if self.candidate is None:
            self._tell("nothing to accept: suggest first")
            return
        with self._lock:
            self.score.insert_at_next_bar(self.candidate.tokens)
            self._commit()
        self._tell(f"candidate {self.index + 1} accepted")

    def clear(self) -> None:
        """Forget the context (the style's initial state stays) and stop playing."""
        self.player.stop()
        with self._lock:
            self.score.reset()
            self.worker.reset()
            self.suggestion = None
        self._tell("context cleared")

    def panic(self) -> None:
        """Stop playing; note-offs and All Notes Off on every channel."""
        self.player.panic()
        self._tell("panic: all notes off")

    def export(self, path: Path | None = None) -> Path:
        """Write the candidate being auditioned as a .mid file."""
        if self.candidate is None:
            raise ValueError("no candidate to export: suggest first")
        path = Path(path) if path is not None else Path.cwd() / f"muse_candidate_{self.index + 1}.mid"
        export_candidate(self.tokenizer, self.candidate, path, self.clock.bpm)
        self._tell(f"exported {path}")
        return path

    def learn(self, command: Command | str) -> None:
        """Bind the next control or key that arrives to `command` (saved in the settings file)."""
        self.triggers.learn(command)

    # ---- reporting ---------------------------------------------------------------------------

    def _save_triggers(self, triggers: dict[str, list]) -> None:
        """Only the triggers change in the file: options given for this run alone stay out of it."""
        self.settings.triggers = triggers
        stored = load_settings(self.settings_path)
        stored.triggers = triggers
        path = save_settings(stored, self.settings_path)
        self._tell(f"triggers saved to {path}")

    def _tell(self, text: str) -> None:
        self.message = text
        log.info(text)

    def status(self) -> BridgeStatus:
        now = self.clock.position()
        clock = "midi clock" if self.clock.external else ("internal" if self.clock.running else "stopped")
        bar = self.score.bar_of(int(now)) + 1 if self.score.started else 0
        fed = self.worker.tokens_fed
        return BridgeStatus(self.clock.bpm, clock, bar, self.worker.session.context_length,
                            self.worker.tokens_queued - fed, self.last_suggest_seconds, self.worker.device,
                            self.index + 1 if self.suggestion else None,
                            len(self.suggestion.candidates) if self.suggestion else 0,
                            self.player.playback is not None, self.overflow, self.message)

    def stats(self) -> LiveStats:
        return LiveStats(self.messages_in, self.overflow, self.callback_max_seconds, self.score.notes_seen,
                         len(self.score.committed), self.worker.tokens_fed)
