"""A pianist's performance, for live tests and benchmarks: a POP909 song played as a person plays it.

Tidy test phrases (quarter notes on the beat, no pedal) hide what real playing finds. This takes a
song's notes and plays them densely (octaves doubled until every bar has `min_notes_per_bar` notes or
more), with human timing (every onset and release moved by up to ±`jitter` seconds), humanised
velocities, and the sustain pedal changed every bar (down just after the bar line, up just before
the next), as MIDI messages at seconds from the song's first bar line at the DAW's tempo.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from engine.midi_file import SUSTAIN_CONTROLLER, read_phrase
from engine.music import Note
from engine.tokenizer import TokenizerSettings

NOTE_ON, NOTE_OFF, CONTROL = 0x90, 0x80, 0xB0
LOWEST, HIGHEST = 21, 108
SONG = Path(__file__).resolve().parent.parent / "tests" / "data" / "pop909" / "001.mid"


@dataclass(frozen=True)
class Performance:
    events: list[tuple[float, list[int]]]   # (seconds from bar 1, MIDI bytes), in time order
    bars: int                                # whole bars played
    notes: int

    @property
    def messages(self) -> int:
        return len(self.events)


def _doubled(notes: list[Note], bar_of, min_notes_per_bar: int) -> list[Note]:
    """Octaves added (above first, then below) in every bar with fewer than `min_notes_per_bar` notes."""
    out = list(notes)
    for shift in (12, -12, 24, -24):
        count = Counter(bar_of(n.start) for n in out)
        extra = [Note(n.pitch + shift, n.velocity, n.start, n.end) for n in notes
                 if count[bar_of(n.start)] < min_notes_per_bar and LOWEST <= n.pitch + shift <= HIGHEST]
        out += extra
    return out


def pianist(bpm: float, seconds: float, seed: int = 0, song: Path = SONG, jitter: float = 0.030,
            min_notes_per_bar: int = 40) -> Performance:
    """The first `seconds` (whole bars) of `song` at `bpm`, played densely, pedalled and humanly timed."""
    phrase = read_phrase(song, TokenizerSettings())
    bars_map = phrase.bars
    first_bar = bars_map.bar_of(min(n.start for n in phrase.notes))
    origin = bars_map.bar_line(first_bar)
    seconds_per_tick = 60.0 / (bpm * phrase.ticks_per_beat)
    bars = bars_map.bar_of(seconds / seconds_per_tick)          # whole bars in `seconds`
    end = bars_map.bar_line(bars) * seconds_per_tick
    notes = [Note(n.pitch, n.velocity, n.start - origin, n.end - origin) for n in phrase.notes
             if n.start >= origin and (n.start - origin) * seconds_per_tick < end]
    notes = _doubled(notes, lambda tick: bars_map.bar_of(tick), min_notes_per_bar)

    rng = random.Random(seed)
    events: list[tuple[float, list[int]]] = []
    for n in notes:
        on = max(0.0, n.start * seconds_per_tick + rng.uniform(-jitter, jitter))
        off = min(end - 0.005, max(on + 0.02, n.end * seconds_per_tick + rng.uniform(-jitter, jitter)))
        velocity = max(1, min(127, n.velocity + rng.randint(-10, 10)))
        events += [(on, [NOTE_ON, n.pitch, velocity]), (off, [NOTE_OFF, n.pitch, 0])]
    for bar in range(bars):
        down = bars_map.bar_line(bar) * seconds_per_tick + 0.04 + rng.uniform(0, jitter)
        up = bars_map.bar_line(bar + 1) * seconds_per_tick - 0.02 - rng.uniform(0, jitter)
        events += [(down, [CONTROL, SUSTAIN_CONTROLLER, 127]), (up, [CONTROL, SUSTAIN_CONTROLLER, 0])]
    events.sort(key=lambda e: (e[0], e[1][0] != NOTE_OFF))
    return Performance(events, bars, len(notes))
