"""Suggester: a Suggest request and what follows it, on the live side.

- The request: K candidates of N bars after the context (committed tokens and the not-yet-final tail),
  from the next bar line; a suggestion still being made is replaced (it stops at a bar line).
- Streaming: candidate 1 goes to the Player bar by bar, from the first bar line from which all its bars
  are made in time at the generation rate measured so far (muse_bridge/stream_plan.py).
- Made ahead: in a pause (no key down for a moment, none sounding) the worker makes the candidates a
  Suggest would ask for, kept while the context, its start and the settings stay as they were.
- Answers (muse_bridge/answers.py) are suggestions asked for a given bar line; the composer playing
  stops one (`cut_answer`, from the MIDI thread) whether it is still being made or already playing.
- CUDA out of memory moves the model to the CPU and asks again.

One owner: the command thread alone changes this state. Requests run there; what the worker makes (a bar of
candidate 1, the candidates, those made ahead) comes back through `submit`, never handled on the worker's
thread. Each request carries a CancelToken: a newer request, Clear and Panic cancel it. A suggestion made
while the DAW's transport moved (Stop, Start, a locate) is shown but not played: its bar line belonged to a
timeline that is gone.

It is given what it uses: the clock, the context, the worker, the player, the settings in force, the event
hub, `show` (the audition takes a new suggestion) and `submit` (the command thread; None: the hand-off is not
a command of its own and is not logged as one).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from engine.generate import Cancelled
from engine.session import Candidate, Session, Suggestion
from engine.tokenizer import RemiTokenizer
from muse_bridge.clock import ClockFollower
from muse_bridge.context import PAUSE_SECONDS, ContextNow, LiveContext
from muse_bridge.events import AnswerComing, CandidatesReady, EventHub, PlayingCandidate
from muse_bridge.locks import RankedLock
from muse_bridge.player import Playback, Player
from muse_bridge.settings import BridgeSettings, SettingsInForce
from muse_bridge.stream_plan import GenerationRate, first_bar_line_in_time, planning_rate, start_line
from muse_bridge.worker import CancelToken, GenerationJob, SessionWorker

log = logging.getLogger(__name__)

PREVIEW_BARS = 2                 # context bars sent with the candidates, for previews
PRECOMPUTE_IDLE_BARS = 4         # ... and not for more bars than this: nobody is there to ask
KEY_TOKENS = 256                 # the context's last tokens that name it for candidates made ahead


@dataclass
class _Stream:
    """Where a suggestion's candidate 1 is headed: its bar line, its bars, and its playback once started."""

    target: int
    bars: int
    epoch: int                 # the clock's epoch when it was asked for: the timeline its bar line is on
    playback: Playback | None = None
    answer: bool = False
    stopped: bool = False      # an answer the composer cut off: it never (again) reaches the Player
    moved: bool = False        # the DAW's transport moved before it started: shown, never played
    made: bool = False         # all its candidates are made (or failed)
    request: CancelToken = field(default_factory=CancelToken)   # its request on the worker, cancelled when cut off


@dataclass(frozen=True)
class _Ready:
    """Candidates made ahead of the request, for the context `key` names, starting at bar line `target`."""

    key: tuple
    suggestion: Suggestion
    target: int
    context: tuple[int, ...]


class Suggester:
    """The suggestion being made, those made ahead, and how long they took."""

    def __init__(self, clock: ClockFollower, context: LiveContext, worker: SessionWorker, player: Player,
                 settings: SettingsInForce, events: EventHub, tokenizer: RemiTokenizer,
                 show: Callable[[Suggestion], None], submit: Callable[[Callable[[], Any], str], None]):
        self.clock, self.context, self.worker, self.player = clock, context, worker, player
        self.settings, self.events, self.tokenizer = settings, events, tokenizer
        self._show, self._submit = show, submit
        self.rate = GenerationRate()          # seconds per bar of candidates, measured at start-up and since
        self.generating = 0
        self._request: CancelToken | None = None   # the suggestion being made: a newer one, Clear or Panic cancels it
        self._context_version = 0             # bumped when the context changes other than by growing
        self._ready: _Ready | None = None     # candidates made in a pause, for the context as it is
        self._precompute_key: tuple | None = None
        self.last_suggest_seconds: float | None = None       # request -> candidates ready
        self.last_first_note_seconds: float | None = None    # request -> first note scheduled
        self.done = threading.Event()
        self.answer: _Stream | None = None    # the latest answer, being made or playing
        self._answer_lock = RankedLock("answer")  # an answer's start against its cut-off (the MIDI thread)

    def measure_rate(self, session: Session) -> None:
        """How fast candidates are made here, before any suggestion: one bar of K candidates from the start
        (on the worker)."""
        s = self.settings.value
        started = time.perf_counter()
        try:
            session.suggest(s.candidates, 1, s.sampling, seed=0)
        except (RuntimeError, ValueError) as e:
            log.warning("the generation rate could not be measured at start-up: %s", e)
            return
        self.rate.measured(s.candidates, time.perf_counter() - started, 1)
        log.info("generation rate at start-up: %.2f s per bar of %d candidates",
                 self.rate.seconds_per_bar(s.candidates), s.candidates)

    @property
    def prepared(self) -> Suggestion | None:
        """Candidates made in a pause for the context as it was then (None when there are none)."""
        ready = self._ready
        return ready.suggestion if ready is not None else None

    def discard_prepared(self) -> None:
        """A note was played: candidates made before it no longer fit."""
        self._ready = None

    def context_changed(self) -> None:
        """The context was cleared or re-read (not grown): nothing made ahead for it applies."""
        self._ready = None
        self._context_version += 1

    # ---- the request -----------------------------------------------------------------------

    def suggest(self, seed: int | None = None, target: int | None = None, answer: bool = False) -> None:
        """K candidates of N bars from the next bar line, or from bar line `target` (on the command thread);
        `answer`: they answer the composer's pause."""
        self.clock.ensure_running()
        self.cancel()   # a suggestion still being made is replaced (it stops at a bar line)
        with self.context.now() as context:   # the job is queued before any later token reaches the worker
            target = start_line(self.clock, target, at=context.tick)
            s = self.settings.value
            stream = _Stream(target, s.bars, self.clock.epoch, answer=answer)
            with self._answer_lock:
                if self.answer is not None:
                    self.answer.stopped = True   # an answer still being made is replaced too
                self.answer = stream if answer else None
            ready, self._ready = self._ready, None
            self.done.clear()
            self.generating += 1
            made_ahead = seed is None and ready is not None and ready.key == self._context_key(context, target)
            if made_ahead:
                self._precompute_key = None        # the next pause makes a fresh set
                job = GenerationJob(s.candidates, s.bars, s.sampling, context.tail, ready.suggestion.seed)
            else:
                self._ask_worker(s, context, stream, seed)
        if made_ahead:   # played with the context's lock let go: it calls into the Player and the front ends
            self._suggested(job, ready.suggestion, None, stream, list(ready.context))
            return
        self.events.publish_now()

    def _ask_worker(self, s: BridgeSettings, context: ContextNow, stream: _Stream, seed: int | None) -> None:
        """Queue the request on the worker (the context's lock held: it starts from exactly the tokens fed)."""
        token = self._request = stream.request
        tokens = context.tokens
        job = GenerationJob(s.candidates, s.bars, s.sampling, context.tail, s.seed if seed is None else seed,
                            cancel=token, on_bars=lambda i, partial: i == 0 and self._submit(
                                lambda: self._stream_bars(stream, job, partial), None))
        self.worker.generate(job, lambda j, sug, err: self._submit(
            lambda: self._suggested(j, sug, err, stream, tokens), None))

    def cancel(self) -> None:
        """Stop making the suggestion being made (a newer one, Clear, Panic); what it already plays finishes its
        bars, unless the Player was stopped too."""
        request, self._request = self._request, None
        if request is not None:
            request.cancel()

    def _context_key(self, context: ContextNow, target: int) -> tuple:
        """What a suggestion depends on: the context (committed + tail, whichever part is final yet), where
        it starts, and the settings it is sampled with. The context only grows between version bumps, so
        its length and last tokens name it."""
        s = self.settings.value
        recent = context.tokens[-KEY_TOKENS:]
        return (self._context_version, len(context.committed) + len(context.tail), tuple(recent), target,
                s.sampling, s.candidates, s.bars, s.seed)

    # ---- made ahead, in a pause ------------------------------------------------------------

    def maybe_precompute(self, last_note_at: float) -> None:
        """In a pause (no note sounding or just played), make the candidates a Suggest before the next bar line
        would ask for, on the worker when it has nothing else to do; any new job stops it after one step (the
        command thread, every tenth of a second)."""
        s = self.settings.value
        if (not s.precompute or s.answer.on or self.generating or self.worker.pending
                or not self.context.started or self.context.sounding):   # in answer mode, the answer is made in a pause
            return
        if time.monotonic() - last_note_at < PAUSE_SECONDS or not self.clock.running:
            return
        with self.context.now() as context:
            last = self.context.bar_of(self.clock.tick(last_note_at)) if last_note_at > 0 else 0
            if self.context.bar_of(context.tick) - last > PRECOMPUTE_IDLE_BARS:
                return
            target = start_line(self.clock, at=context.tick)
            key = self._context_key(context, target)
            if key == self._precompute_key:
                return
            self._precompute_key = key
            tokens = tuple(context.tokens)
            job = GenerationJob(s.candidates, s.bars, s.sampling, context.tail, s.seed,
                                cancel=CancelToken(also=lambda: self.worker.pending > 1))   # any other job first
            self.worker.generate(job, lambda j, sug, err: self._submit(
                lambda: self._precomputed(key, sug, err, target, tokens), None))

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

    def _answered_bars(self, context: list[int], bars: int) -> frozenset[int]:
        """Which of the context's last `bars` bars (0: the first of them) are answers that joined it."""
        first = self.tokenizer.count_bars(context) - bars
        return frozenset(i - first for i in self.context.answered_bars() if first <= i < first + bars)

    # ---- candidate 1 on its way to the Player ----------------------------------------------

    def _start_at(self, stream: _Stream, candidate: Candidate, seconds_per_bar: float | None = None) -> int:
        """The first bar line, from the suggestion's on, from which all of the candidate's bars are made in time
        (the status says so when that is a later one)."""
        plan = first_bar_line_in_time(self.clock, stream.target, stream.bars, candidate.bars, seconds_per_bar)
        log.info("candidate 1 starts at tick %d: %s", plan.line, plan.why)
        if plan.bars_late:
            self.events.tell(f"the suggestion starts {plan.bars_late} bar(s) late, so that every bar of it is ready "
                             "in time")
        return plan.line

    def _stream_bars(self, stream: _Stream, job: GenerationJob, partial: Candidate) -> None:
        """Candidate 1's bars, as they are made: the first starts playback, the rest extend it."""
        if job.cancel.cancelled:
            return
        if stream.playback is None:
            # this suggestion's own first bar, and the rate measured before it (muse_bridge/stream_plan.py)
            so_far = (time.perf_counter() - job.requested_at) / partial.bars
            start = self._start_at(stream, partial, planning_rate(so_far, self.rate.seconds_per_bar(job.candidates)))
            if self._start(stream, partial, start, stream.bars):
                self.last_first_note_seconds = time.perf_counter() - job.requested_at
        else:
            self.player.extend(stream.playback, partial)

    def _start(self, stream: _Stream, candidate: Candidate, start: int, bars_expected: int | None = None) -> bool:
        """Candidate 1 to the Player from bar line `start`; False for an answer cut off meanwhile, or when the DAW's
        transport moved since it was asked for."""
        if self.clock.epoch != stream.epoch or stream.moved:
            if not stream.moved:
                stream.moved = True
                self.events.tell("the DAW's transport moved while the suggestion was made: it is not played (Next "
                                 "plays it from the next bar line)")
            return False
        with self._answer_lock:
            if stream.stopped:
                return False
            stream.playback = self.player.play(candidate, start, bars_expected, answer=stream.answer)
            return True

    def cut_answer(self) -> bool:
        """The composer plays, or answers were turned off: the answer stops at once, every note it started ended,
        or one being made never starts (any thread). False when there was no answer to stop."""
        with self._answer_lock:
            stream = self.answer
            if stream is None or stream.stopped:
                return False
            stream.stopped = True
            stream.request.cancel()   # one still being made stops at its next step
            if stream.playback is not None:
                return self.player.stop(stream.playback)
            return not stream.made

    def _suggested(self, job: GenerationJob, suggestion: Suggestion | None, error: Exception | None,
                   stream: _Stream, context: list[int]) -> None:
        self.generating -= 1
        stream.made = True
        if self._request is job.cancel:
            self._request = None
        if isinstance(error, Cancelled):
            if stream.playback is not None:
                self.player.finish(stream.playback)   # the bars it has, to their bar line
            log.info("a suggestion being made was cancelled (a newer one, Clear, Panic, or an answer cut off)")
            return
        if isinstance(error, torch.OutOfMemoryError) and self.worker.device != "cpu":
            self.events.tell(f"CUDA out of memory on {self.worker.device}: the model moves to the CPU and suggests "
                             "there", error=True)
            self.worker.call(lambda session: session.to("cpu"))
            self._submit(lambda: self.suggest(job.seed), "suggest again on the CPU")
            return
        if error is not None:
            self.events.tell(f"suggest failed: {error}", error=True)
            self.done.set()
            return
        self.last_suggest_seconds = time.perf_counter() - job.requested_at
        first = suggestion.candidates[0]
        if job.on_bars is not None:   # made now, not ahead
            self.rate.measured(len(suggestion.candidates), suggestion.seconds, first.bars)
        if stream.stopped and stream.playback is None:   # an answer cut off before it was heard: nothing to show
            self.done.set()
            return
        self._show(suggestion)
        if stream.playback is None:
            if self._start(stream, first, self._start_at(stream, first)):
                self.last_first_note_seconds = time.perf_counter() - job.requested_at
        else:   # its bars streamed; if panic or another candidate stopped it meanwhile, it stays stopped
            self.player.extend(stream.playback, first)
        notes, bars = self.tokenizer.decode_last_bars(context, PREVIEW_BARS, first.ticks_per_beat,
                                                      first.time_signature)
        self.events.emit(CandidatesReady(suggestion, tuple(notes), bars, self._answered_bars(context, bars)))
        if stream.playback is not None and self.player.playback is stream.playback:
            self.events.emit(PlayingCandidate(0, stream.playback.start_tick))
            if stream.answer:
                self.events.emit(AnswerComing(first, stream.playback.start_tick,
                                              time.monotonic() + self.clock.seconds_until(stream.playback.start_tick),
                                              self.clock.seconds_per_bar()))
        self.events.tell(f"{len(suggestion.candidates)} candidates in {self.last_suggest_seconds:.2f} s")
        self.done.set()
