"""SessionWorker: the engine Session on a thread of its own, so nothing that handles MIDI waits for the model.

Jobs run in the order they are given: tokens fed before a suggest are in the state the suggest
starts from. The worker's torch ops run on one CPU thread (`threads`), as the ONNX fast step does: a live
step is too small to gain from more, and on a busy machine (a DAW beside us) threads that wait for each
other made one bar take from 0.4 s to 26 s, against a steady 0.4-0.5 s on one thread. Feeding never drops tokens; the bounded queue of the bridge sits before the score,
where an overflow can be counted (see LiveBridge).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from engine.sampler import SamplingConfig
from engine.generate import Cancelled
from engine.session import Candidate, Session, Suggestion

log = logging.getLogger(__name__)


class CancelToken:
    """Cancels one generation request: the worker stops it between two steps (any thread may cancel); `also`, a
    condition that cancels it too (candidates made ahead give way to any other job)."""

    def __init__(self, also: Callable[[], bool] | None = None) -> None:
        self._event, self._also = threading.Event(), also

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self._also is not None and self._also())


@dataclass(frozen=True)
class Gap:
    """What a fill reads around the bars it writes: the tokens before them (from the song's start), those after
    them (from their Bar), and their meter."""

    before: tuple[int, ...]
    after: tuple[int, ...]
    meter: tuple[int, int]


@dataclass(frozen=True)
class GenerationJob:
    """One request for candidates, whatever asked for it (Suggest, an answer, a fill): K candidates of N bars
    after the committed context plus `tail`, or, with `gap`, in place of bars between others."""

    candidates: int
    bars: int
    sampling: SamplingConfig
    tail: tuple[int, ...] = ()
    seed: int | None = None
    gap: Gap | None = None
    cancel: CancelToken = field(default_factory=CancelToken, compare=False)
    requested_at: float = field(default_factory=time.perf_counter)
    on_bars: Callable[[int, Candidate], None] | None = field(default=None, compare=False)   # streams candidates


@dataclass(frozen=True)
class FeedTiming:
    """Where the time went between a played note and the state holding its tokens (time.monotonic)."""

    received_at: float | None     # the last note message before these tokens reached the bridge's input port
    applied_at: float | None      # ... and the live score
    committed_at: float           # the tokens became final and were handed to the worker
    started_at: float = 0.0       # the worker took them
    fed_at: float = 0.0           # the state holds them
    tokens: int = 0


@dataclass(frozen=True)
class _Feed:
    tokens: tuple[int, ...]
    timing: FeedTiming | None = None


@dataclass(frozen=True)
class _Generate:
    job: GenerationJob
    done: Callable[[GenerationJob, Suggestion | None, Exception | None], None]


@dataclass(frozen=True)
class _Reset:
    pass


@dataclass(frozen=True)
class _Call:
    fn: Callable[[Session], None]


_STOP = object()


class SessionWorker:
    """Owns a Session; `feed`, `suggest`, `reset` return at once and run in order on the worker thread."""

    def __init__(self, session: Session, threads: int = 1):
        self.session, self.threads = session, threads
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.tokens_fed = 0        # tokens that reached the Session's state
        self.tokens_queued = 0     # tokens given to `feed`
        self.busy = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        self.feed_timings: deque[FeedTiming] = deque(maxlen=4096)   # the latest feeds that carried a timing

    @property
    def device(self) -> str:
        return str(self.session.device)

    def start(self) -> "SessionWorker":
        self._thread = threading.Thread(target=self._run, name="muse-session", daemon=True)
        self._thread.start()
        return self

    def _put(self, job, tokens: int = 0) -> None:
        with self._idle:
            self._pending += 1
            self.tokens_queued += tokens
        self._jobs.put(job)

    def feed(self, tokens: list[int], timing: FeedTiming | None = None) -> None:
        """Advance the state by final tokens; `timing` (received, applied, committed) is completed and kept."""
        if tokens:
            self._put(_Feed(tuple(tokens), timing), len(tokens))

    def generate(self, job: GenerationJob,
                 done: Callable[[GenerationJob, Suggestion | None, Exception | None], None]) -> None:
        """Run `job` after everything queued; `done(job, suggestion, error)` is called on the worker thread (a
        cancelled job ends with `Cancelled`)."""
        self._put(_Generate(job, done))

    def reset(self) -> None:
        self._put(_Reset())

    def call(self, fn: Callable[[Session], None]) -> None:
        """Run fn(session) on the worker thread, in order with the other jobs."""
        self._put(_Call(fn))

    def use_fast_step(self, fast_step) -> None:
        """Decode on `fast_step` (engine.fast_step.FastStep; None: the model's own step) from the next job on."""
        self.call(lambda session: setattr(session, "fast_step", fast_step))

    @property
    def pending(self) -> int:
        """Jobs given and not finished yet (the one running included)."""
        return self._pending

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every job given so far has run (tests, shutdown); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        torch.set_num_threads(self.threads)   # OpenMP's thread count is per thread: this one only
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            self.busy.set()
            try:
                self._do(job)
            except Exception:  # a failed job must not kill the worker: the live session goes on
                log.exception("session job %s failed", type(job).__name__)
            finally:
                self.busy.clear()
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _do(self, job) -> None:
        if isinstance(job, _Feed):
            started = time.monotonic()
            self.session.feed(list(job.tokens))
            self.tokens_fed += len(job.tokens)
            if job.timing is not None:
                self.feed_timings.append(replace(job.timing, started_at=started, fed_at=time.monotonic(),
                                                 tokens=len(job.tokens)))
        elif isinstance(job, _Generate):
            j = job.job
            cancelled = lambda: j.cancel.cancelled   # noqa: E731
            try:
                if j.cancel.cancelled:
                    raise Cancelled("cancelled before it started")
                if j.gap is not None:
                    suggestion = self.session.fill(j.candidates, j.bars, list(j.gap.before), list(j.gap.after),
                                                   j.sampling, j.seed, meter=j.gap.meter, on_bars=j.on_bars,
                                                   cancelled=cancelled)
                else:
                    suggestion = self.session.suggest(j.candidates, j.bars, j.sampling, j.seed, tail=list(j.tail),
                                                      on_bars=j.on_bars, cancelled=cancelled)
            except (Cancelled, ValueError) as e:   # stopped, or a request the model cannot meet: said by the requester
                job.done(j, None, e)
                return
            except Exception as e:  # reported to the requester, who shows it
                log.exception("generation failed")
                job.done(j, None, e)
                return
            job.done(j, suggestion, None)
        elif isinstance(job, _Reset):
            self.session.reset()
        elif isinstance(job, _Call):
            job.fn(self.session)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._jobs.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

