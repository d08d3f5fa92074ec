"""LiveContext: the one owner of the live context (docs/design.md §2).

It holds the LiveScore and the one lock around it, and hands the tokens that become final to the
SessionWorker, in order. Everything that reads or changes the context goes through it:

- `played(events)`: notes (and pedal) happened, or only time moved on: the score takes them, time
  advances to the clock's tick now, and the tokens final by then go to the worker.
- `now()`: the same advance, then the context as it stands (committed tokens and the not-yet-final tail),
  with the lock held until the `with` block ends, so that a job queued inside it starts from exactly that
  state (no token reaches the worker in between).
- `join(tokens)`: an accepted candidate (or an answer) joins before the next bar line committed.
- `clear()`, `reread(...)`: the context forgotten, or read again from a new initial state.

Ticks come from the clock (`ClockFollower.tick`); bar lines from the score's MeterMap (engine/music.py).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import mido

from engine.session import Session
from muse_bridge.clock import ClockFollower
from muse_bridge.live_score import LiveScore
from muse_bridge.locks import RankedLock
from muse_bridge.worker import FeedTiming, SessionWorker

PAUSE_SECONDS = 0.3   # nothing pressed or released this long, none held: a pause (gaps in a phrase are shorter)


@dataclass(frozen=True)
class ContextNow:
    """The context at clock tick `tick`: the committed tokens (in the state, or on their way to it) and the tail."""

    committed: tuple[int, ...]
    tail: tuple[int, ...]
    tick: int

    @property
    def tokens(self) -> list[int]:
        return list(self.committed + self.tail)


@dataclass(frozen=True)
class Played:
    """What a batch of messages did: a key struck, a key released (its tokens are final a moment later)."""

    struck: bool = False
    released: bool = False


class LiveContext:
    """The LiveScore behind its lock, feeding the SessionWorker; safe from any thread."""

    def __init__(self, score: LiveScore, clock: ClockFollower, worker: SessionWorker):
        self._score, self._clock, self._worker = score, clock, worker
        self._lock = RankedLock("context")
        self._played: tuple[float | None, float | None] = (None, None)   # last note message: received, applied

    # ---- changes ----------------------------------------------------------------------------

    def played(self, events: Sequence[tuple[mido.Message, int, float]] = ()) -> Played:
        """Messages (message, timeline tick, monotonic time received) into the score; then time moves to now and
        the final tokens go to the worker. With no events, only time moves on."""
        struck = released = False
        with self._lock:
            for message, tick, received_at in events:
                is_note = message.type in ("note_on", "note_off")
                on = message.type == "note_on" and message.velocity > 0
                if on and not self._score.started:
                    self._score.start(self._clock.bars.bar_line_at_or_before(tick), self._clock.bpm)
                self._score.handle(message, tick)
                if is_note:
                    self._played = (received_at, time.monotonic())
                    struck |= on
                    released |= not on
            self._commit(self._clock.tick())
        return Played(struck, released)

    def join(self, tokens: Sequence[int], answer: bool = False) -> None:
        """`tokens` (a candidate, from its Bar) join the context before the next bar line committed; `answer`
        marks their bars as an answer's."""
        with self._lock:
            self._score.insert_at_next_bar(list(tokens), answer=answer)
            self._commit(self._clock.tick())

    def clear(self) -> None:
        """Forget everything played (the worker's state back to its start)."""
        with self._lock:
            self._score.reset()
            self._worker.reset()

    def replace_bars(self, first: int, last: int, tokens: Sequence[int]) -> None:
        """Bars first..last of the context (0-based, closed: a later bar is committed) become `tokens` (as many bars,
        from their Bar); the worker reads the whole context again."""
        with self._lock:
            committed, bar_count = self._score.committed, self._score.tokenizer.count_bars
            if not 0 <= first <= last < self.closed_bars():
                raise ValueError(f"bars {first + 1}-{last + 1} cannot be replaced: the context has "
                                 f"{self.closed_bars()} finished bars")
            if bar_count(tokens) != last - first + 1:
                raise ValueError(f"{bar_count(tokens)} bars cannot take the place of {last - first + 1}")
            starts = self._score.tokenizer.bar_starts(committed)
            committed[starts[first]:starts[last + 1]] = list(tokens)
            self.reread(lambda session: session.reset())

    def reread(self, start: Callable[[Session], None]) -> None:
        """On the worker: `start(session)` (e.g. a new initial state), then the committed context fed again."""
        with self._lock:
            committed = list(self._score.committed)

            def again(session: Session) -> None:
                start(session)
                session.feed(committed)
            self._worker.call(again)

    # ---- reading -------------------------------------------------------------------------------

    @contextmanager
    def now(self) -> Iterator[ContextNow]:
        """Time moved to now, final tokens fed; the context as it stands, the lock held for the `with` block."""
        with self._lock:
            tick = self._clock.tick()
            self._commit(tick)
            yield ContextNow(tuple(self._score.committed), tuple(self._score.tail(tick)), tick)

    def tokens(self) -> list[int]:
        """Committed tokens and tail now."""
        with self.now() as context:
            return context.tokens

    def closed_bars(self) -> int:
        """Committed bars that are finished (the bar after them is committed too)."""
        with self._lock:
            return max(0, self._score.tokenizer.count_bars(self._score.committed) - 1)

    def gap(self, first: int, last: int, after: int) -> tuple[list[int], list[int], tuple[int, int]]:
        """For filling bars first..last: the tokens before them, those of up to `after` bars after them (the tail
        included), and their meter."""
        with self.now() as context:
            tokens = context.tokens
        tokenizer = self._score.tokenizer
        before, following = tokenizer.around_gap(tokens, first, last, after)
        meter = tokenizer.vocabulary.meter.get(tokens[len(before) + 1], self._score.config.time_signature)
        return before, following, meter

    def timeline_tick_of_bar(self, bar: int) -> int | None:
        """The timeline tick at which bar `bar` of the context was played; None for bars that were spliced in."""
        with self._lock:
            inserted = self._score.inserted_bars
            if not self._score.started or bar in inserted:
                return None
            return self._score.bars.bar_line(bar - sum(1 for b in inserted if b < bar))

    @property
    def started(self) -> bool:
        return self._score.started

    @property
    def sounding(self) -> int:
        """Notes whose end is not known yet."""
        with self._lock:
            return self._score.sounding

    @property
    def quiet_since(self) -> int | None:
        """The tick since which nothing sounds (LiveScore.quiet_since)."""
        with self._lock:
            return self._score.quiet_since

    def bar_of(self, tick: int) -> int:
        """The score's bar (0: the bar of the first note) holding timeline `tick`; -1 before anything was played."""
        with self._lock:
            return self._score.bars.bar_of(tick) if self._score.started else -1

    def answered_bars(self) -> frozenset[int]:
        """Bars of the context (0: its first) that are answers which joined it."""
        with self._lock:
            return frozenset(self._score.answer_bars)

    @property
    def notes_seen(self) -> int:
        return self._score.notes_seen

    @property
    def committed_tokens(self) -> int:
        return len(self._score.committed)

    # ---- the hand-off ----------------------------------------------------------------------------

    def _commit(self, tick: int) -> None:
        """Tokens final at `tick` to the worker (the lock held), with the times of the last note message before them."""
        tokens = self._score.advance(tick)
        if tokens:
            (received, applied), self._played = self._played, (None, None)
            self._worker.feed(tokens, FeedTiming(received, applied, time.monotonic()))
