"""Musical time in one place: ticks per quarter, bars and their meters, bar lines, the grid, notes, phrases.

Every position in the program is a tick. The live timeline and the candidates count
`TICKS_PER_QUARTER` ticks per quarter note; a file keeps its own resolution. A `MeterMap` says which
bar has which meter (a file's meter may change at a bar line; the live timeline has one) and
answers every question about bar lines: where bar b starts, which bar holds a tick, the next bar
line after a position, the place of a tick in its bar. The clock, the live score, the bridge, the
player, the tokenizer and the trainer ask here rather than dividing by a bar length themselves.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable

TICKS_PER_QUARTER = 480          # the live timeline's and the candidates' resolution

Meter = tuple[int, int]          # (numerator, denominator)


def ticks_per_bar(time_signature: Meter, ticks_per_beat: int = TICKS_PER_QUARTER) -> int:
    """Bar length in ticks, `ticks_per_beat` being ticks per quarter note."""
    num, den = time_signature
    return ticks_per_beat * 4 * num // den


def beat_length(time_signature: Meter, ticks_per_beat: int = TICKS_PER_QUARTER) -> float:
    """The meter's beat (its note value: a quarter in 4/4, an eighth in 6/8) in ticks, `ticks_per_beat` being
    ticks per quarter note."""
    return ticks_per_beat * 4 / time_signature[1]


def parse_time_signature(text: str) -> Meter:
    """'6/8' -> (6, 8); ValueError naming the bad value."""
    try:
        num, den = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"time signature must look like 4/4, got {text!r}") from None
    return num, den


def quantize_onset(tick: int, bar_ticks: int, steps_per_bar: int) -> int:
    """The grid step (counted from bar 0) of an onset: the nearest step, but never past its own bar's last step."""
    bar, offset = divmod(tick, bar_ticks)
    return bar * steps_per_bar + min(round(offset * steps_per_bar / bar_ticks), steps_per_bar - 1)


def rescale(tick: float, ticks_per_beat: int, to_ticks_per_beat: int = TICKS_PER_QUARTER) -> float:
    """A tick at one resolution (ticks per quarter) at another: a candidate's ticks on the timeline."""
    return tick * to_ticks_per_beat / ticks_per_beat


@dataclass(frozen=True)
class Note:
    pitch: int
    velocity: int
    start: int  # ticks at Phrase.ticks_per_beat, from the start of bar 0
    end: int


@dataclass(frozen=True)
class MeterMap:
    """Bar lines of a timeline: bar 0 starts at `origin`, and `changes` lists (first bar, meter) from bar 0 on,
    each meter holding until the next. Bars before bar 0 have bar 0's meter."""

    changes: tuple[tuple[int, Meter], ...] = ((0, (4, 4)),)
    ticks_per_beat: int = TICKS_PER_QUARTER
    origin: int = 0

    def __post_init__(self) -> None:
        bars = [b for b, _ in self.changes]
        if not bars or bars[0] != 0 or bars != sorted(set(bars)):
            raise ValueError(f"a meter map starts at bar 0 with bars in order, got {self.changes}")
        ticks, tick = [], self.origin
        for i, (bar, meter) in enumerate(self.changes):
            if i:
                prev_bar, prev_meter = self.changes[i - 1]
                tick += (bar - prev_bar) * ticks_per_bar(prev_meter, self.ticks_per_beat)
            ticks.append(tick)
        object.__setattr__(self, "_change_ticks", tuple(ticks))
        object.__setattr__(self, "_change_bars", tuple(bars))

    @classmethod
    def constant(cls, meter: Meter, ticks_per_beat: int = TICKS_PER_QUARTER, origin: int = 0) -> "MeterMap":
        return cls(((0, tuple(meter)),), ticks_per_beat, origin)

    def _change_at_bar(self, bar: int) -> int:
        return max(0, bisect.bisect_right(self._change_bars, bar) - 1)

    def _change_at_tick(self, tick: float) -> int:
        return max(0, bisect.bisect_right(self._change_ticks, tick) - 1)

    def meter(self, bar: int = 0) -> Meter:
        """The meter of bar `bar`."""
        return self.changes[self._change_at_bar(bar)][1]

    def bar_ticks(self, bar: int = 0) -> int:
        """The length of bar `bar` in ticks."""
        return ticks_per_bar(self.meter(bar), self.ticks_per_beat)

    def beat_ticks(self, bar: int = 0) -> int:
        """The length of one beat of bar `bar` (its meter's note value: a quarter in 4/4, an eighth in 6/8)."""
        return self.bar_ticks(bar) // self.meter(bar)[0]

    def bar_line(self, bar: int) -> int:
        """The tick where bar `bar` starts."""
        i = self._change_at_bar(bar)
        first, meter = self.changes[i]
        return self._change_ticks[i] + (bar - first) * ticks_per_bar(meter, self.ticks_per_beat)

    def bar_of(self, tick: float) -> int:
        """The bar holding `tick`."""
        i = self._change_at_tick(tick)
        first, meter = self.changes[i]
        return first + int((tick - self._change_ticks[i]) // ticks_per_bar(meter, self.ticks_per_beat))

    def in_bar(self, tick: float) -> float:
        """Ticks from the bar line before `tick` (or at it) to `tick`."""
        return tick - self.bar_line(self.bar_of(tick))

    def bar_line_at_or_before(self, tick: float) -> int:
        return self.bar_line(self.bar_of(tick))

    def bar_line_at_or_after(self, tick: float) -> int:
        line = self.bar_line_at_or_before(tick)
        return line if line >= tick else self.bar_line(self.bar_of(tick) + 1)

    def next_bar_line(self, tick: float) -> int:
        """The first bar line strictly after `tick`: where a suggestion asked for at `tick` begins."""
        return self.bar_line(self.bar_of(tick) + 1)

    def at_phase(self, tick: float, phase: float) -> float:
        """The first tick at or after `tick` that lies `phase` ticks after a bar line (a DAW's relocation
        onto the timeline: what was played stays in the past, bar lines stay bar lines)."""
        bar = self.bar_of(tick)
        target = self.bar_line(bar) + phase
        return target if target >= tick else self.bar_line(bar + 1) + phase

    def step_of(self, tick: float, steps_per_bar: int | Callable[[Meter], int]) -> int:
        """The grid step of an onset at `tick`, counted from bar 0 (the tokenizer's rule: kept inside its bar).
        `steps_per_bar` is a number for one meter, or the steps of a meter (the tokenizer's
        `positions_per_bar`) when the meter changes."""
        if not callable(steps_per_bar):
            if len(self.changes) == 1:
                return quantize_onset(int(tick) - self.origin, self.bar_ticks(), steps_per_bar)
            steps_per_bar = lambda meter, n=steps_per_bar: n  # noqa: E731
        bar = self.bar_of(tick)
        local = quantize_onset(int(tick - self.bar_line(bar)), self.bar_ticks(bar), steps_per_bar(self.meter(bar)))
        before = 0
        for i, (first, meter) in enumerate(self.changes):
            if first >= bar:
                break
            last = self.changes[i + 1][0] if i + 1 < len(self.changes) else bar
            before += (min(last, bar) - first) * steps_per_bar(meter)
        return before + local

    def span(self, bars: int, first_bar: int = 0) -> int:
        """Ticks from the line of `first_bar` to the line `bars` bars later."""
        return self.bar_line(first_bar + bars) - self.bar_line(first_bar)


@dataclass
class Phrase:
    notes: list[Note]  # sorted by (start, pitch); all tracks merged into one piano stream
    ticks_per_beat: int  # ticks per quarter note
    time_signature: Meter  # (numerator, denominator) in force at the end of the phrase
    tempo_bpm: float  # tempo in force at the end of the phrase
    file_meter: Meter | None = None  # the file's spelling when the vocabulary's differs (2/2 read as 4/4)
    meter_changes: tuple[tuple[int, Meter], ...] | None = None   # (bar, meter) when the meter changes
    # the file's own timeline: a tick here is the file's tick * file_scale (a coarse clock is read finer), with each
    # pad (file tick at this resolution, ticks) added from its tick on: a short bar (a pickup) read padded at its start
    # to a full bar; and the file's own (tick, meter) changes, at this resolution
    file_scale: float = 1.0
    pads: tuple[tuple[int, int], ...] = ()
    file_meter_changes: tuple[tuple[int, Meter], ...] = ()

    @property
    def bars(self) -> MeterMap:
        """Its bar lines: each bar in its own meter."""
        return MeterMap(self.meter_changes or ((0, tuple(self.time_signature)),), self.ticks_per_beat)

    def on_file_timeline(self, tick: float) -> float:
        """A tick of this timeline on the file's own (at this resolution): the pads before it taken out; a tick inside
        a pad is where the short bar it pads begins."""
        removed = 0
        for at, length in self.pads:
            if tick < at + removed:
                break
            if tick < at + removed + length:
                return at
            removed += length
        return tick - removed

    def file_meters(self) -> list[tuple[int, Meter]]:
        """(tick, meter) of every bar line where the meter changes, on the file's own timeline at this resolution
        (the file's own meters: a pickup in its short one); this timeline's bar lines without a file."""
        return list(self.file_meter_changes) or [(self.bars.bar_line(b), m) for b, m in self.bars.changes]

    @property
    def meters(self) -> list[Meter]:
        return [m for _, m in self.bars.changes]

    @property
    def written_meter(self) -> Meter:
        """The meter to write continuations in: the file's own."""
        return self.file_meter or self.time_signature

    @property
    def ticks_per_bar(self) -> int:
        """A bar of the meter in force at the end (bars before a meter change may differ: ask `bars`)."""
        return ticks_per_bar(self.time_signature, self.ticks_per_beat)

    @property
    def n_bars(self) -> int:
        """Bars spanned by the note onsets: the last onset's bar index + 1 (0 without notes)."""
        if not self.notes:
            return 0
        return self.bars.bar_of(max(n.start for n in self.notes)) + 1
