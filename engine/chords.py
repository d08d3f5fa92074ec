"""Chord symbols as a composer types them ("Am", "G7", "Fmaj7", "C/E") -> the pitch classes they sound.

A bar's chord steers the bar's pitch-class control: the chord's tones, plus the bass of a slash chord.
"""
from __future__ import annotations

import re

from engine.keys import NOTE_NAMES, parse_root

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


def parse_chords(text: str) -> tuple[str, ...]:
    """'C Am F G' (spaces, commas or bars between symbols) -> ('C', 'Am', 'F', 'G'), each checked."""
    symbols = tuple(s for s in re.split(r"[\s,|]+", text.strip()) if s)
    for s in symbols:
        chord_pitch_classes(s)
    return symbols
