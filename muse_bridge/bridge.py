"""LiveBridge: ports, clock, live score, session worker and player wired together, with the commands as methods.

Threads: rtmidi's input thread runs `_on_midi`, which only reads the clock and puts the message in a
bounded queue (never waits; an overflow is counted and reported). The score thread applies queued
messages to the LiveScore and hands the tokens that became final to the SessionWorker, whose
thread owns the model. The Player has its own thread. Commands (suggest, next, previous, accept,
clear, panic, export) come from MIDI triggers, the console, the tray and the command channel through
`do`, and run in order on one command thread; settings change through `update`, validated first.

The bridge tells, it is not polled: `subscribe(listener)` delivers the events of `muse_bridge.events`
(status, candidates ready, playing candidate i, notices and errors, port and settings changes).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import mido
import torch

from engine.checkpoint import Checkpoint
from engine.generate import Cancelled
from engine.chords import chords_of_last_bars
from engine.keys import Key, detect_key
from engine.music import Note
from engine.session import Candidate, Session, Suggestion
from engine.state import State
from engine.style import load_style
from muse_bridge.clock import ClockFollower
from muse_bridge.controller import Command, MidiTriggers
from muse_bridge.events import (GENERATING, IDLE, LISTENING, PLAYING, BridgeEvent, BridgeStatus, CandidatesReady,
                                Listener, Notice, PlayingCandidate, PortsChanged, SettingsChanged, StatusChanged)
from muse_bridge.live_score import LiveScore, LiveScoreConfig
from muse_bridge.player import Playback, Player
from muse_bridge.ports import BridgePorts, PortSettings
from muse_bridge.settings import BridgeSettings, SettingsError, read_settings, save_settings
from muse_bridge.stream_plan import GenerationRate, first_bar_line_in_time
from muse_bridge.worker import FeedTiming, SessionWorker, SuggestJob

log = logging.getLogger(__name__)

SCORE_POLL_SECONDS = 0.005   # how often the score thread moves time on when no message comes
RELEASE_POLL_SECONDS = 0.001  # ... just after a release: the note is final once time has moved past its end
STATUS_EVERY_SECONDS = 0.1   # how often the score thread looks for a status worth telling
LISTENING_SECONDS = 4.0      # a note played this recently makes the bridge "listening"
PREVIEW_BARS = 2             # context bars sent with the candidates, for previews
KEY_DETECTION_BARS = 16      # the context's last bars that "detect key" looks at
PRECOMPUTE_AFTER_SECONDS = 0.3   # no key pressed or released for this long, none held: the composer paused
PRECOMPUTE_IDLE_BARS = 4         # ... and not for more bars than this: nobody is there to ask
KEY_TOKENS = 256                 # the context's last tokens that name it for candidates made ahead


@dataclass
class _Stream:
    """Where a suggestion's candidate 1 is headed: its bar line, its bars, and its playback once started."""

    target: int
    bars: int
    playback: Playback | None = None


@dataclass(frozen=True)
class _Ready:
    """Candidates made ahead of the request, for the context `key` names, starting at bar line `target`."""

    key: tuple
    suggestion: Suggestion
    target: int
    context: tuple[int, ...]


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
                 client_name: str | None = None):
        if client_name is not None:
            settings = replace(settings, ports=replace(settings.ports, client_name=client_name))
        self.settings, self.settings_path = settings, settings_path
        self.checkpoint, self.tokenizer = checkpoint, checkpoint.tokenizer
        self.clock = ClockFollower(settings.clock)
        self.score = LiveScore(self.tokenizer, LiveScoreConfig(settings.clock.ticks_per_beat,
                                                               tuple(settings.clock.time_signature)),
                               tempo_bpm=settings.clock.bpm)
        # --no-fast-step also keeps a GPU session off CUDA graphs (None: on them where there is CUDA)
        self.worker = SessionWorker(Session(checkpoint.model, self.tokenizer, initial_state,
                                            graph_steps=None if settings.fast_step else False))
        self.triggers = MidiTriggers(settings.triggers, on_change=self._save_triggers)
        self.ports = BridgePorts(settings.ports, self._on_midi, on_change=self._port_lost_or_back)
        self.player = Player(lambda message: self.ports.send(message), self.clock, settings.ports.output_channel,
                             on_cut=lambda pb: self._tell(f"generation fell behind: the candidate ended after "
                                                          f"its {pb.candidate.bars} complete bar(s)", error=True))
        self.rate = GenerationRate()          # seconds per bar of candidates, measured at start-up and since
        self._events: queue.Queue = queue.Queue(maxsize=settings.ports.queue_size)
        self._lock = threading.RLock()        # the LiveScore and what is handed to the worker with it
        self._settings_lock = threading.Lock()
        self._file_lock = threading.Lock()
        self._stop = threading.Event()
        self._score_thread: threading.Thread | None = None
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._command_thread: threading.Thread | None = None
        self._listeners: list[Listener] = []
        self._last_status: BridgeStatus | None = None
        self._generating = 0
        self._generation = 0                  # bumped by every suggest: an older one still being made stops
        self._context_version = 0             # bumped when the context changes other than by growing
        self._ready: _Ready | None = None     # candidates made in a pause, for the context as it is
        self._precompute_key: tuple | None = None
        self._last_note_at = float("-inf")
        self._played: tuple[float | None, float | None] = (None, None)   # last note message: received, applied
        self.suggestion: Suggestion | None = None
        self.index = 0
        self.message = ""
        self.messages_in = 0
        self.overflow = 0
        self.callback_max_seconds = 0.0
        self.last_suggest_seconds: float | None = None       # request -> candidates ready
        self.last_first_note_seconds: float | None = None    # request -> first note scheduled
        self.suggestions_done = threading.Event()

    # ---- life cycle ---------------------------------------------------------------------

    def start(self, require_ports: bool = True) -> "LiveBridge":
        """Start the threads and open the ports. A port that cannot be opened raises, or with
        `require_ports=False` is reported (a Notice) and the bridge runs without it until ports are changed."""
        self.worker.start()
        self.worker.call(self._measure_rate)
        self._score_thread = threading.Thread(target=self._score_loop, name="muse-score", daemon=True)
        self._score_thread.start()
        self._command_thread = threading.Thread(target=self._command_loop, name="muse-commands", daemon=True)
        self._command_thread.start()
        try:
            self.ports.open()
        except (OSError, ValueError) as e:
            if require_ports:
                self.close()
                raise
            self._tell(f"MIDI ports not open: {e}", error=True)
        else:
            log.info("listening on %r, playing on %r (%s)", self.ports.input_name, self.ports.output_name,
                     self.ports.api)
            self._ports_changed()
        return self

    def _measure_rate(self, session: Session) -> None:
        """How fast candidates are made here, before any suggestion: one bar of K candidates from the start."""
        s = self.settings
        started = time.perf_counter()
        try:
            session.suggest(s.candidates, 1, s.sampling, seed=0)
        except (RuntimeError, ValueError) as e:
            log.warning("the generation rate could not be measured at start-up: %s", e)
            return
        self.rate.measured(s.candidates, time.perf_counter() - started, 1)
        log.info("generation rate at start-up: %.2f s per bar of %d candidates",
                 self.rate.seconds_per_bar(s.candidates), s.candidates)

    def close(self) -> None:
        """Note-offs for everything playing, then ports and threads down."""
        self.player.close()
        self._stop.set()
        for thread in (self._score_thread, self._command_thread):
            if thread is not None:
                if thread is self._command_thread:
                    self._commands.put(None)
                thread.join(timeout=5)
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
            if message.type in ("note_on", "note_off") and not self.triggers.claims(message):
                self._last_note_at = t    # playing: key presses and releases
                if message.type == "note_on" and message.velocity > 0:
                    self.clock.ensure_running(t)
            try:
                self._events.put_nowait((message, self.clock.position(t), t))
            except queue.Full:
                self.overflow += 1
                if self.overflow == 1 or self.overflow % 1000 == 0:
                    log.warning("MIDI input queue full: %d messages dropped so far", self.overflow)
        self.callback_max_seconds = max(self.callback_max_seconds, time.perf_counter() - started)

    # ---- the score thread --------------------------------------------------------------------

    def _score_loop(self) -> None:
        next_status = 0.0
        poll = SCORE_POLL_SECONDS
        while not self._stop.is_set():
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + STATUS_EVERY_SECONDS
                self._publish_status()
                self._maybe_precompute()
            batch = []
            try:
                batch.append(self._events.get(timeout=poll))
                while len(batch) < 4096:
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
        commands, released = [], False
        with self._lock:
            for item in batch:
                if item is None:
                    continue  # a settle() marker: only time moves on
                message, position, received_at = item
                if self.triggers.claims(message):
                    command = self.triggers.command_for(message)
                    if command is not None:
                        commands.append(command)
                    continue
                if message.type == "note_on" and message.velocity > 0:
                    self._ready = None   # candidates made before this note no longer fit
                    if not self.score.started:
                        self.score.start(self.clock.bars.bar_line_at_or_before(int(position)), self.clock.bpm)
                self.score.handle(message, int(position))
                if message.type in ("note_on", "note_off"):
                    self._played = (received_at, time.monotonic())
                    released |= message.type == "note_off" or message.velocity == 0
            self._commit()
        for command in commands:
            self.do(command)   # queued for the command thread: the score never waits for a command
        return released

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
        """Hand the tokens final by now to the worker (called with the lock held), with the times of the last
        note message played before them."""
        tokens = self.score.advance(int(self.clock.position()))
        if tokens:
            (received, applied), self._played = self._played, (None, None)
            self.worker.feed(tokens, FeedTiming(received, applied, time.monotonic()))

    # ---- commands ----------------------------------------------------------------------------

    def do(self, command: Command | str) -> None:
        """Queue a command by name (MIDI triggers, console keys, tray, command channel); commands run in
        order on the command thread, and a failure becomes a Notice."""
        command = Command(command)
        actions = {Command.SUGGEST: self.suggest, Command.NEXT: self.next, Command.PREVIOUS: self.previous,
                   Command.ACCEPT: self.accept, Command.CLEAR: self.clear, Command.PANIC: self.panic,
                   Command.EXPORT: self.export}
        self.submit(actions[command], command.value)

    def submit(self, action: Callable[[], Any], what: str) -> None:
        """Run `action()` on the command thread after the commands queued before it."""
        self._commands.put((action, what))

    def _command_loop(self) -> None:
        while True:
            item = self._commands.get()
            if item is None:
                return
            action, what = item
            try:
                action()
            except (ValueError, OSError) as e:
                self._tell(f"{what} failed: {e}", error=True)
            except Exception as e:  # a bug must not end the thread every later command runs on
                log.exception("%s failed", what)
                self._tell(f"{what} failed: {type(e).__name__}: {e}", error=True)

    def wait_commands(self, timeout: float = 10.0) -> bool:
        """Block until the commands queued so far have run (tests, scripts); False on timeout."""
        done = threading.Event()
        self.submit(done.set, "wait")
        return done.wait(timeout)

    def suggest(self, seed: int | None = None) -> None:
        """K candidates of N bars from the next bar line. Candidate 1 is streamed to the Player bar by bar, so
        it starts as soon as its first bar exists; a suggestion still being made is replaced (it stops at a
        bar line)."""
        with self._lock:
            self.clock.ensure_running()
            now = self.clock.position()
            self.worker.feed(self.score.advance(int(now)))
            tail = self.score.tail(int(now))
            context = self.score.committed + tail
            target = self.clock.bars.next_bar_line(now)
            s = self.settings
            self._generation += 1
            ready, self._ready = self._ready, None
            if seed is None and ready is not None and ready.key == self._context_key(tail, target):
                self._precompute_key = None        # the next pause makes a fresh set
                job = SuggestJob(s.candidates, s.bars, s.sampling, tuple(tail), ready.suggestion.seed)
                self._generating += 1
                self.suggestions_done.clear()
                self._suggested(job, ready.suggestion, None, _Stream(target, s.bars), list(ready.context))
                return
            generation = self._generation
            stream = _Stream(target, s.bars)
            job = SuggestJob(s.candidates, s.bars, s.sampling, tuple(tail), s.seed if seed is None else seed,
                             on_bars=lambda i, partial: self._stream_bars(stream, job, i, partial),
                             cancelled=lambda: generation != self._generation)
            self.suggestions_done.clear()
            self._generating += 1
            self.worker.suggest(job, lambda j, sug, err: self._suggested(j, sug, err, stream, context))
        self._publish_status()

    @property
    def prepared(self) -> Suggestion | None:
        """Candidates made in a pause for the context as it was then (None when there are none)."""
        ready = self._ready
        return ready.suggestion if ready is not None else None

    def _context_key(self, tail: list[int], target: int) -> tuple:
        """What a suggestion depends on: the context (committed + tail, whichever part is final yet), where
        it starts, and the settings it is sampled with. The context only grows between version bumps, so
        its length and last tokens name it."""
        s, committed = self.settings, self.score.committed
        recent = (committed[-KEY_TOKENS:] + list(tail))[-KEY_TOKENS:]
        return (self._context_version, len(committed) + len(tail), tuple(recent), target, s.sampling,
                s.candidates, s.bars, s.seed)

    def _maybe_precompute(self) -> None:
        """In a pause (no note sounding or just played), make the candidates a Suggest before the next bar line
        would ask for, on the worker when it has nothing else to do; any new job stops it after one step."""
        if (not self.settings.precompute or self._generating or self.worker.pending or not self.score.started
                or self.score.sounding):
            return
        if time.monotonic() - self._last_note_at < PRECOMPUTE_AFTER_SECONDS:
            return
        with self._lock:
            now = int(self.clock.position())
            last = self.score.bar_of(self.clock.position(self._last_note_at)) if self._last_note_at > 0 else 0
            if self.score.bar_of(now) - last > PRECOMPUTE_IDLE_BARS or not self.clock.running:
                return
            self.worker.feed(self.score.advance(now))
            tail = self.score.tail(now)
            target = self.clock.bars.next_bar_line(now)
            key = self._context_key(tail, target)
            if key == self._precompute_key:
                return
            self._precompute_key = key
            context = tuple(self.score.committed + tail)
            s, generation = self.settings, self._generation
            job = SuggestJob(s.candidates, s.bars, s.sampling, tuple(tail), s.seed,
                             cancelled=lambda: generation != self._generation or self.worker.pending > 1)
            self.worker.suggest(job, lambda j, sug, err: self._precomputed(key, sug, err, target, context))

    def _precomputed(self, key: tuple, suggestion: Suggestion | None, error: Exception | None, target: int,
                     context: tuple[int, ...]) -> None:
        if error is not None:
            if not isinstance(error, Cancelled):
                log.warning("making candidates ahead failed: %s", error)
            if self._precompute_key == key:
                self._precompute_key = None   # try again in the next pause
            return
        self._ready = _Ready(key, suggestion, target, context)
        self.rate.measured(len(suggestion.candidates), suggestion.seconds, suggestion.candidates[0].bars)
        log.info("candidates ready ahead of the request (%.2f s)", suggestion.seconds)

    def _start_at(self, stream: "_Stream", candidate: Candidate, seconds_per_bar: float | None = None) -> int:
        """The first bar line, from the suggestion's on, from which all of the candidate's bars are made in time
        (the status says so when that is a later one)."""
        line = first_bar_line_in_time(self.clock, stream.target, stream.bars, candidate.bars, seconds_per_bar)
        if line != stream.target:
            late = self.clock.bars.bar_of(line) - self.clock.bars.bar_of(stream.target)
            self._tell(f"the suggestion starts {late} bar(s) late, so that every bar of it is ready in time")
        return line

    def _stream_bars(self, stream: "_Stream", job: SuggestJob, index: int, partial: Candidate) -> None:
        """Candidate 1's bars, as they are made (worker thread): the first starts playback, the rest extend it."""
        if index != 0:
            return
        if stream.playback is None:
            # the rate measured so far: before this suggestion, and this suggestion's own first bar (after a
            # dense context a bar takes several times longer than the start-up measurement's); the slower
            so_far = (time.perf_counter() - job.requested_at) / partial.bars
            start = self._start_at(stream, partial, max(so_far, self.rate.seconds_per_bar(job.candidates) or 0.0))
            stream.playback = self.player.play(partial, start, bars_expected=stream.bars)
            self.last_first_note_seconds = time.perf_counter() - job.requested_at
        else:
            self.player.extend(stream.playback, partial)

    def _suggested(self, job: SuggestJob, suggestion: Suggestion | None, error: Exception | None,
                   stream: "_Stream", context: list[int]) -> None:
        self._generating -= 1
        if isinstance(error, Cancelled):
            if stream.playback is not None:
                self.player.finish(stream.playback)   # the bars it has, to their bar line
            log.info("a suggestion being made was replaced by a newer one")
            return
        if isinstance(error, torch.OutOfMemoryError) and self.worker.device != "cpu":
            self._tell(f"CUDA out of memory on {self.worker.device}: the model moves to the CPU and suggests there",
                       error=True)
            self.worker.call(lambda session: session.to("cpu"))
            self.submit(lambda: self.suggest(job.seed), "suggest")
            return
        if error is not None:
            self._tell(f"suggest failed: {error}", error=True)
            self.suggestions_done.set()
            return
        self.last_suggest_seconds = time.perf_counter() - job.requested_at
        self.suggestion, self.index = suggestion, 0
        first = suggestion.candidates[0]
        if job.on_bars is not None:   # made now, not ahead
            self.rate.measured(len(suggestion.candidates), suggestion.seconds, first.bars)
        if stream.playback is None:
            stream.playback = self.player.play(first, self._start_at(stream, first))
            self.last_first_note_seconds = time.perf_counter() - job.requested_at
        else:   # its bars streamed; if panic or another candidate stopped it meanwhile, it stays stopped
            self.player.extend(stream.playback, first)
        notes, bars = self.tokenizer.decode_last_bars(context, PREVIEW_BARS, first.ticks_per_beat, first.time_signature)
        self._emit(CandidatesReady(suggestion, tuple(notes), bars))
        if self.player.playback is stream.playback:
            self._emit(PlayingCandidate(0, stream.playback.start_tick))
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
        self.play(self.index)

    def play(self, index: int) -> None:
        """Audition candidate `index` (0-based) of the current suggestion from the next bar line."""
        if self.suggestion is None or not 0 <= index < len(self.suggestion.candidates):
            raise ValueError(f"no candidate {index + 1} to play: suggest first")
        self.index = index
        playback = self.player.play(self.candidate, self.clock.next_bar_line())
        self._emit(PlayingCandidate(index, playback.start_tick))
        self._publish_status()

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
            self.suggestion, self._ready = None, None
            self._context_version += 1
        self._tell("context cleared")

    def context_notes(self, bars: int = KEY_DETECTION_BARS) -> list[Note]:
        """The notes of the context's last `bars` bars (played and accepted, final or not)."""
        with self._lock:
            tokens = self.score.committed + self.score.tail(int(self.clock.position()))
        clock = self.settings.clock
        return self.tokenizer.decode_last_bars(tokens, bars, clock.ticks_per_beat, clock.time_signature)[0]

    @property
    def has_controls(self) -> bool:
        """Whether the model has bar controls (density, polyphony, chords)."""
        return self.tokenizer.settings.controls

    def chords_from_playing(self) -> tuple[str, ...]:
        """Name the chords of the context's last `bars` bars (one a bar) and steer the suggestions with them."""
        clock = self.settings.clock
        with self._lock:
            tokens = self.score.committed + self.score.tail(int(self.clock.position()))
        chords = chords_of_last_bars(tokens, self.settings.bars, self.tokenizer, clock.ticks_per_beat,
                                     clock.time_signature)
        if not chords:
            self._tell("no chords to take: nothing played yet")
            return ()
        self.update({"sampling.chords": chords}, persist=True)
        self._tell(f"chords from what you played: {' '.join(chords)}")
        return chords

    def detect_key(self) -> Key:
        """Estimate the key of the context's last bars and lock sampling to it."""
        key = detect_key(self.context_notes())
        self.update({"sampling.key_lock": str(key)})
        self._tell(f"key detected: {key}")
        return key

    def panic(self) -> None:
        """Stop playing; note-offs and All Notes Off on every channel."""
        self.player.panic()
        self._tell("panic: all notes off")

    def export(self, path: Path | None = None, index: int | None = None) -> Path:
        """Write candidate `index` (default: the one being auditioned) as a .mid file of exactly its bars."""
        index = self.index if index is None else index
        if self.suggestion is None or not 0 <= index < len(self.suggestion.candidates):
            raise ValueError(f"no candidate {index + 1} to export: suggest first")
        path = Path(path) if path is not None else Path.cwd() / f"muse_candidate_{index + 1}.mid"
        self.suggestion.candidates[index].write_midi(path, self.clock.bpm)
        self._tell(f"exported {path}")
        return path

    def learn(self, command: Command | str) -> None:
        """Bind the next control or key that arrives to `command` (saved in the settings file)."""
        self.triggers.learn(command)

    # ---- settings ------------------------------------------------------------------------------

    def update(self, changes: dict[str, Any], persist: bool = False) -> BridgeSettings:
        """Change settings at run time ({"sampling.temperature": 0.8, "bars": 4, "ports.input_name": …,
        "style": PATH}). Values are checked here (SettingsError naming the setting, nothing changed);
        ports and style are then opened on the command thread, and if that fails the old ones stay, with a
        Notice. A SettingsChanged event tells the settings in force afterwards. `persist` saves the changes
        to the settings file."""
        wanted = self.settings.with_changes(changes)   # refused here, where the caller hears of it
        try:
            self.worker.session.grammar.check_controls(wanted.sampling)
        except ValueError as e:
            raise SettingsError(str(e)) from None
        self.submit(lambda: self._apply_settings(changes, persist), "settings")
        return wanted

    def _apply_settings(self, changes: dict[str, Any], persist: bool) -> None:
        # applied to the settings in force now: changes queued one after another all take effect
        wanted = self.settings.with_changes(changes)
        settings = replace(wanted, ports=self.settings.ports, style=self.settings.style)
        applied = dict(changes)
        for section, switch, what in (("ports", self._reopen_ports, "MIDI ports"), ("style", self._switch_style, "style")):
            retry = section == "ports" and any(k.startswith("ports.") for k in changes) and not self.ports_open
            if getattr(wanted, section) == getattr(self.settings, section) and not retry:
                continue
            try:
                switch(getattr(wanted, section))
            except (OSError, ValueError) as e:
                self._tell(f"{what} unchanged: {e}", error=True)
                applied = {k: v for k, v in applied.items() if k.split(".")[0] != section}
            else:
                settings = replace(settings, **{section: getattr(wanted, section)})
        if persist and applied:
            self._persist(applied)
        with self._settings_lock:   # a trigger learned meanwhile (on the score thread) stays learned
            if "triggers" not in changes:
                settings = replace(settings, triggers=self.settings.triggers)
            old, self.settings = self.settings, settings
        outside = settings.sampling.chords_outside_key()
        if outside and outside != old.sampling.chords_outside_key():
            self._tell(outside)   # once, when the chords or the key lock change
        self._emit(SettingsChanged(self.settings))

    @property
    def ports_open(self) -> bool:
        return self.ports.input is not None and self.ports.output is not None

    def _reopen_ports(self, new: PortSettings) -> None:
        """Close the ports (note-offs first), open the new ones; if they cannot be opened, reopen the old."""
        self.player.stop()
        old = self.ports
        fresh = BridgePorts(new, self._on_midi, on_change=self._port_lost_or_back)   # MidiApiError before closing
        old.close()
        try:
            fresh.open()
        except (OSError, ValueError):
            self.ports = BridgePorts(old.settings, self._on_midi, on_change=self._port_lost_or_back)
            try:
                self.ports.open()
            except (OSError, ValueError) as e:
                log.warning("the previous MIDI ports cannot be reopened either: %s", e)
            self._ports_changed()
            raise
        self.ports = fresh
        self.player.channel = new.output_channel
        self._ports_changed()
        self._tell(f"MIDI in {fresh.input_name!r}, out {fresh.output_name!r} ({fresh.api})")

    def _switch_style(self, path: str | None) -> None:
        """Load a style preset (None: the model's own initial state); the context is kept, re-read from the new start."""
        initial = load_style(path, self.checkpoint).to(self.worker.session.device) if path else None
        with self._lock:
            committed = list(self.score.committed)

            def switch(session: Session) -> None:
                session.set_initial_state(initial)
                session.feed(committed)
            self.worker.call(switch)
            self._context_version += 1
        self._tell(f"style: {Path(path).stem if path else 'none'}")

    def _persist(self, changes: dict[str, Any]) -> None:
        """Only the changed settings go to the file: options given for this run alone stay out of it."""
        try:
            with self._file_lock:   # the score thread saves learned triggers, the command thread the rest
                stored, _ = read_settings(self.settings_path)
                path = save_settings(stored.with_changes(changes), self.settings_path)
        except (OSError, SettingsError) as e:
            self._tell(f"settings not saved: {e}", error=True)
            return
        log.info("settings saved to %s", path)

    def _save_triggers(self, triggers: dict[str, list]) -> None:
        with self._settings_lock:
            self.settings = replace(self.settings, triggers=triggers)
        self._persist({"triggers": triggers})
        self._tell("triggers saved")
        self._emit(SettingsChanged(self.settings))

    # ---- reporting ---------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every event from now on (on the bridge's threads); returns the unsubscribe."""
        self._listeners.append(listener)
        if self._last_status is not None:
            listener(StatusChanged(self._last_status))
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: BridgeEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a front end's bug must not stop the music
                log.exception("event listener failed on %s", type(event).__name__)

    def _publish_status(self) -> None:
        status = self.status()
        if status != self._last_status:
            self._last_status = status
            self._emit(StatusChanged(status))

    def port_state(self) -> PortsChanged:
        """Which ports are open now (None for one that is not)."""
        p = self.ports
        return PortsChanged(p.api, p.input.name if p.input else None, p.output.name if p.output else None, p.virtual)

    def _ports_changed(self) -> None:
        self._emit(self.port_state())

    def _port_lost_or_back(self, text: str) -> None:
        self._tell(text, error="lost" in text)
        self._ports_changed()

    def _tell(self, text: str, error: bool = False) -> None:
        self.message = text
        (log.warning if error else log.info)(text)
        self._emit(Notice(text, error))
        self._publish_status()

    def status(self) -> BridgeStatus:
        now = self.clock.position()
        clock = "midi clock" if self.clock.external else ("internal" if self.clock.running else "stopped")
        bar = self.score.bar_of(int(now)) + 1 if self.score.started else 0
        fed = self.worker.tokens_fed
        playing = self.player.playback is not None
        if self._generating:
            activity = GENERATING
        elif playing:
            activity = PLAYING
        elif time.monotonic() - self._last_note_at < LISTENING_SECONDS:
            activity = LISTENING
        else:
            activity = IDLE
        return BridgeStatus(round(self.clock.bpm, 1), clock, bar, self.worker.session.context_length,
                            self.worker.tokens_queued - fed, self.last_suggest_seconds, self.worker.device,
                            self.index + 1 if self.suggestion else None,
                            len(self.suggestion.candidates) if self.suggestion else 0,
                            playing, self.overflow, self.message, activity, self.ports.unsent)

    def stats(self) -> LiveStats:
        return LiveStats(self.messages_in, self.overflow, self.callback_max_seconds, self.score.notes_seen,
                         len(self.score.committed), self.worker.tokens_fed)
