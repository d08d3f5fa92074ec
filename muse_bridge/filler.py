"""Filler: a range of the context's bars written anew, live, between the bars before and after them.

`fill(first, last)` (context bars, 0-based, finished ones; on the command thread) asks the worker for K
candidates (Session.fill: the bars before read from the start, up to FILL_AFTER_BARS bars after). They are shown
like a suggestion's and auditioned in place: where the DAW's transport next reaches the song position those bars
were played at (the clock's passes), and again on each round of a loop; with no DAW clock, from the next bar
line. Accept replaces the bars in the context (the worker reads it again), so later suggestions follow the fill.
`fill_last()` fills the last `bars` finished bars (the hotkey, the console, a MIDI trigger).

A fill is a GenerationJob with its gap, on the worker's one job path; what it makes is handed to the command
thread (`submit`), which owns the fill shown. Only the round's placing runs on the MIDI thread, under the
fill's lock.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from engine.music import TICKS_PER_QUARTER, MeterMap, Note
from engine.generate import Cancelled
from engine.midi_file import write_notes
from engine.session import Candidate, Suggestion
from engine.tokenizer import FILL_AFTER_BARS, RemiTokenizer
from muse_bridge.audition import Audition
from muse_bridge.clock import ClockFollower
from muse_bridge.context import LiveContext
from muse_bridge.events import CandidatesReady, ContextShown, EventHub
from muse_bridge.locks import RankedLock
from muse_bridge.player import Playback, Player
from muse_bridge.settings import MAX_FILL_BARS, SettingsInForce
from muse_bridge.stream_plan import start_line
from muse_bridge.suggester import PREVIEW_BARS   # the bars before the candidates sent for previews
from muse_bridge.worker import CancelToken, Gap, GenerationJob, SessionWorker

log = logging.getLogger(__name__)

CONTEXT_SHOWN_BARS = 16   # the context's last bars shown to choose bars to fill from


class Filler:
    """The fill being made and the one auditioned in place."""

    def __init__(self, clock: ClockFollower, context: LiveContext, worker: SessionWorker, player: Player,
                 settings: SettingsInForce, events: EventHub, tokenizer: RemiTokenizer, audition: Audition,
                 on_replaced: Callable[[], None], submit: Callable[[Callable[[], Any], str | None], None]):
        self.clock, self.context, self.worker, self.player = clock, context, worker, player
        self.settings, self.events, self.tokenizer, self.audition = settings, events, tokenizer, audition
        self._on_replaced, self._submit = on_replaced, submit
        self.generating = 0
        self._request: CancelToken | None = None
        self._lock = RankedLock("fill")          # the candidate waiting for its round, against the MIDI thread
        self.done = threading.Event()
        self._shown: Suggestion | None = None   # the fill being auditioned
        self._daw_tick: int | None = None       # the song position its bars were played at
        self._waiting: tuple[Candidate, int] | None = None   # a candidate to play in place, and the clock's epoch
        clock.add_listener(self._on_clock)

    def fill_last(self) -> None:
        """Fill the last `bars` finished bars of the context."""
        last = self.context.closed_bars() - 1
        if last < 0:
            self.events.tell("nothing to fill yet: play a few bars first")
            return
        self.fill(max(0, last - min(self.settings.value.bars, MAX_FILL_BARS) + 1), last)

    def _played(self, bars: int | None) -> tuple[list[Note], int, int, tuple[int, int]]:
        """The context's last `bars` bars (None: all) as notes from their first bar line, how many bars those are,
        the bars before them, and the meter."""
        tokens = self.context.tokens()
        meter = tuple(self.settings.value.clock.time_signature)
        every = self.tokenizer.count_bars(tokens)
        notes, shown = self.tokenizer.decode_last_bars(tokens, every if bars is None else bars, TICKS_PER_QUARTER,
                                                       meter)
        span = MeterMap.constant(meter, TICKS_PER_QUARTER).span(shown)   # the decoded ticks end at 0
        return [Note(n.pitch, n.velocity, n.start + span, n.end + span) for n in notes], shown, every - shown, meter

    def show_context(self, bars: int = CONTEXT_SHOWN_BARS) -> None:
        """Tell the front ends the context's last `bars` bars (a ContextShown), to choose bars to fill from."""
        notes, shown, before, meter = self._played(bars)
        bar_ticks = MeterMap.constant(meter, TICKS_PER_QUARTER).bar_ticks()
        self.events.emit(ContextShown(tuple(notes), before, shown, self.context.closed_bars(), bar_ticks, meter[0]))

    def save_played(self, path: Path | None = None) -> Path:
        """What was played, as the model reads it (the whole context, its bars from bar 1, quantised as the model
        hears it), as a .mid file: `muse_played.mid` in the current folder unless `path` is given."""
        notes, bars, _, meter = self._played(None)
        if not bars:
            raise ValueError("nothing played yet to save: the context is empty")
        path = Path(path) if path is not None else Path.cwd() / "muse_played.mid"
        write_notes(notes, path, ticks_per_beat=TICKS_PER_QUARTER, tempo_bpm=self.clock.bpm, time_signature=meter)
        self.events.tell(f"what you played ({bars} bars): {path}")
        return path

    def fill(self, first: int, last: int, seed: int | None = None) -> None:
        """K candidates for context bars first..last (0-based); ValueError naming a range that cannot be filled."""
        finished = self.context.closed_bars()
        if not 0 <= first <= last < finished:
            raise ValueError(f"bars {first + 1}-{last + 1} cannot be filled: the context has {finished} finished bars")
        if last - first + 1 > MAX_FILL_BARS:
            raise ValueError(f"bars {first + 1}-{last + 1}: fill at most {MAX_FILL_BARS} bars at once")
        if self.tokenizer.fill_suffix_id is None:
            raise ValueError("this model cannot fill a gap: its vocabulary has no fill markers")
        prefix, suffix, meter = self.context.gap(first, last, FILL_AFTER_BARS)
        tick = self.context.timeline_tick_of_bar(first)
        daw_tick = self.clock.passes.daw_tick(tick) if tick is not None else None
        s = self.settings.value
        self.cancel()
        self.generating += 1
        self.done.clear()
        token = self._request = CancelToken()
        job = GenerationJob(s.candidates, last - first + 1, s.sampling, seed=s.seed if seed is None else seed,
                            gap=Gap(tuple(prefix), tuple(suffix), meter), cancel=token)
        self.worker.generate(job, lambda j, made, error: self._submit(
            lambda: self._filled(j, made, error, first, last, daw_tick, prefix), None))

    def cancel(self) -> None:
        """Stop making the fill being made (a newer fill, Clear, Panic)."""
        request, self._request = self._request, None
        if request is not None:
            request.cancel()

    def _filled(self, job: GenerationJob, made: Suggestion | None, error: Exception | None, first: int, last: int,
                daw_tick: int | None, prefix: list[int]) -> None:
        """The worker's answer (the command thread)."""
        self.generating -= 1
        if self._request is job.cancel:
            self._request = None
        if isinstance(error, Cancelled):
            log.info("a fill being made was cancelled")
        elif error is not None:
            self.events.tell(f"fill failed: {error}", error=True)
        else:
            self._made(made, first, last, daw_tick, prefix)
        self.done.set()

    def _made(self, fills: Suggestion, first: int, last: int, daw_tick: int | None, prefix: list[int]) -> None:
        with self._lock:
            self._shown, self._daw_tick, self._waiting = fills, daw_tick, None
        self.audition.show(fills, play=self._play_in_place, accept=lambda c: self._accept(first, last, c))
        c = fills.candidates[0]
        notes, bars = self.tokenizer.decode_last_bars(prefix, PREVIEW_BARS, c.ticks_per_beat, c.time_signature)
        self.events.emit(CandidatesReady(fills, tuple(notes), bars, fill=(first, last)))
        self.audition.play(0)
        self.events.tell(f"{len(fills.candidates)} fills of bars {first + 1}-{last + 1} in {fills.seconds:.2f} s")

    def _play_in_place(self, candidate: Candidate) -> Playback | None:
        """Play `candidate` where its bars lie on the DAW's timeline (None: when the next round brings them)."""
        with self._lock:
            if self._daw_tick is None or not self.clock.external:
                return self.player.play(candidate, start_line(self.clock))
            tick = self.clock.passes.ahead(self._daw_tick, self.clock.position())
            self._waiting = (candidate, self.clock.epoch)
            if tick is None:
                self.player.stop()
                return None
            return self.player.play(candidate, tick)

    def _on_clock(self) -> None:
        """After each clock and transport message (the MIDI thread): a relocation starts a new round, in which the
        fill being auditioned is placed again."""
        waiting = self._waiting
        if waiting is None or waiting[1] == self.clock.epoch:
            return
        if self.audition.current is not self._shown:
            self._waiting = None
            return
        self._play_in_place(waiting[0])

    def _accept(self, first: int, last: int, candidate: Candidate) -> None:
        """The candidate takes the place of the bars it fills (the command thread)."""
        with self._lock:
            self._waiting = None
        self.context.replace_bars(first, last, candidate.tokens)
        self._on_replaced()
        self.events.tell(f"bars {first + 1}-{last + 1} replaced by the fill")
