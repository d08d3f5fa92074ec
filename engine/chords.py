"""Chord symbols as a composer types them ("Am", "G7", "Fmaj7", "C/E") -> the pitch classes they sound.

A bar's chord steers the bar's pitch-class control: the chord's tones, plus the bass of a slash chord.
"""
from __future__ import annotations

import math
import re

from engine.keys import NOTE_NAMES, parse_root
from engine.music import MeterMap, Note

# intervals above the root, in semitones, by the quality written after the root
QUALITIES: dict[str, tuple[int, ...]] = {
    "": (0, 4, 7), "maj": (0, 4, 7), "M": (0, 4, 7),
    "m": (0, 3, 7), "min": (0, 3, 7), "-": (0, 3, 7),
    "7": (0, 4, 7, 10), "dom7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11), "M7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10), "min7": (0, 3, 7, 10), "-7": (0, 3, 7, 10),
    "mmaj7": (0, 3, 7, 11), "mM7": (0, 3, 7, 11),
    "dim": (0, 3, 6), "o": (0, 3, 6), "dim7": (0, 3, 6, 9), "o7": (0, 3, 6, 9),
    "m7b5": (0, 3, 6, 10), "ø": (0, 3, 6, 10),
    "aug": (0, 4, 8), "+": (0, 4, 8),
    "sus2": (0, 2, 7), "sus4": (0, 5, 7), "sus": (0, 5, 7), "7sus4": (0, 5, 7, 10),
    "6": (0, 4, 7, 9), "m6": (0, 3, 7, 9),
    "9": (0, 4, 7, 10, 2), "maj9": (0, 4, 7, 11, 2), "m9": (0, 3, 7, 10, 2), "add9": (0, 4, 7, 2),
    "5": (0, 7),
}
_SYMBOL = re.compile(r"^([A-Ga-g][#b♯♭]?)([^/]*)(?:/([A-Ga-g][#b♯♭]?))?$")


def chord_pitch_classes(symbol: str) -> frozenset[int]:
    """The pitch classes of a chord symbol ('Am7' -> {9, 0, 4, 7}; 'C/E' -> {0, 4, 7}; 'F/G' adds G);
    ValueError naming the symbol and what is read otherwise."""
    match = _SYMBOL.match(symbol.strip())
    if match is None or match.group(2) not in QUALITIES:
        raise ValueError(f"unknown chord {symbol!r}: write a root ({', '.join(NOTE_NAMES)}), a quality "
                         f"({', '.join(q for q in QUALITIES if q) } or none for major) and an optional /bass, "
                         "e.g. Am7 or C/E")
    root = parse_root(match.group(1))
    classes = {(root + i) % 12 for i in QUALITIES[match.group(2)]}
    if match.group(3):
        classes.add(parse_root(match.group(3)))
    return frozenset(classes)


def split_chords(text: str) -> tuple[str, ...]:
    """'C Am, F | G' (spaces, commas or bars between symbols) -> ('C', 'Am', 'F', 'G'), not checked."""
    return tuple(s for s in re.split(r"[\s,|]+", text.strip()) if s)


def parse_chords(text: str) -> tuple[str, ...]:
    """'C Am F G' -> ('C', 'Am', 'F', 'G'), each symbol checked (ValueError naming the first unknown one)."""
    symbols = split_chords(text)
    for s in symbols:
        chord_pitch_classes(s)
    return symbols


# the chords `name_chord` chooses among, simplest first (a tie goes to the simpler)
NAMED_QUALITIES = ("", "m", "7", "m7", "maj7", "dim", "sus4")


def name_chord(weights) -> str | None:
    """The chord symbol whose tones best match a pitch-class histogram (12 weights, e.g. note time per pitch
    class): the largest cosine between the histogram and the chord's tones. None for silence."""
    total = math.sqrt(sum(w * w for w in weights))
    if total == 0:
        return None
    best, best_score = None, -1.0
    for quality in NAMED_QUALITIES:
        for root in range(12):
            tones = {(root + i) % 12 for i in QUALITIES[quality]}
            score = sum(weights[pc] for pc in tones) / (total * math.sqrt(len(tones)))
            if score > best_score + 1e-9:
                best, best_score = NOTE_NAMES[root] + quality, score
    return best


def chords_of_bars(notes, bar_map, bars: range) -> tuple[str, ...]:
    """One chord symbol for each bar of `bars` (bar indices of `bar_map`), from the time its notes sound in
    it; a silent bar repeats the chord before it (or is left out at the start)."""
    names: list[str] = []
    for bar in bars:
        start, end = bar_map.bar_line(bar), bar_map.bar_line(bar + 1)
        weights = [0.0] * 12
        for n in notes:
            weights[n.pitch % 12] += max(0, min(n.end, end) - max(n.start, start))
        name = name_chord(weights)
        if name is None and names:
            name = names[-1]
        if name is not None:
            names.append(name)
    return tuple(names)


def chords_of_last_bars(tokens: list[int], bars: int, tokenizer, ticks_per_beat: int,
                        time_signature: tuple[int, int]) -> tuple[str, ...]:
    """The chords of the last `bars` bars of `tokens` (what a composer played), one a bar."""
    notes, found = tokenizer.decode_last_bars(tokens, bars, ticks_per_beat, time_signature)
    bar_map = MeterMap.constant(time_signature, ticks_per_beat)
    span = bar_map.span(found)   # the notes end at tick 0: bar 0 starts `found` bars before
    return chords_of_bars([Note(n.pitch, n.velocity, n.start + span, n.end + span) for n in notes], bar_map,
                          range(found))
