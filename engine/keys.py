"""Keys and scales: a key lock for sampling ("D dorian" -> its pitch classes) and key detection from notes.

Detection is the Krumhansl-Schmuckler method: the duration-weighted pitch-class histogram of the notes
is correlated with the Krumhansl-Kessler major and minor profiles rotated to each of the 12 roots;
the best of the 24 wins. Modes are offered for the lock only (a profile cannot tell D dorian from C
major), so detection names a major or a (natural) minor key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from engine.music import Note

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_ALIASES = {"DB": 1, "D#": 3, "GB": 6, "G#": 8, "A#": 10, "CB": 11, "E#": 5, "FB": 4, "B#": 0}

# intervals above the root, in semitones
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "major pentatonic": (0, 2, 4, 7, 9),
    "minor pentatonic": (0, 3, 5, 7, 10),
}

# Krumhansl & Kessler (1982) probe-tone ratings, from the tonic up
MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)


def parse_root(text: str) -> int:
    """'C' -> 0, 'F#' -> 6, 'Bb' -> 10 (any case)."""
    name = text.strip().upper().replace("♯", "#").replace("♭", "B")
    names = {n.upper(): i for i, n in enumerate(NOTE_NAMES)}
    if name in names:
        return names[name]
    if name in _ALIASES:
        return _ALIASES[name]
    raise ValueError(f"unknown key root {text!r}; use one of {', '.join(NOTE_NAMES)}")


@dataclass(frozen=True)
class Key:
    """A root and a scale; `str(Key(9, 'minor'))` is 'A minor' and `Key.parse` reads it back."""

    root: int        # pitch class, 0 = C
    scale: str       # a name in SCALES

    def __post_init__(self) -> None:
        if not 0 <= self.root < 12:
            raise ValueError(f"key root must be a pitch class 0-11, got {self.root}")
        if self.scale not in SCALES:
            raise ValueError(f"unknown scale {self.scale!r}; use one of {', '.join(SCALES)}")

    @classmethod
    def parse(cls, text: str) -> "Key":
        """'A minor', 'f# dorian', 'Eb major pentatonic'; the scale defaults to major."""
        parts = text.strip().split(None, 1)
        if not parts:
            raise ValueError("empty key; write it like 'C major' or 'A minor'")
        return cls(parse_root(parts[0]), parts[1].strip().lower() if len(parts) > 1 else "major")

    @property
    def pitch_classes(self) -> frozenset[int]:
        return frozenset((self.root + i) % 12 for i in SCALES[self.scale])

    def __str__(self) -> str:
        return f"{NOTE_NAMES[self.root]} {self.scale}"


def parse_key_lock(text: str | None) -> Key | None:
    """A key-lock setting: None, '' or 'off' -> no lock, else a Key (ValueError names a bad value)."""
    if text is None or text.strip().lower() in ("", "off"):
        return None
    return Key.parse(text)


def _correlation(a: list[float], b: tuple[float, ...]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va, vb = sum((x - ma) ** 2 for x in a), sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else 0.0


def key_scores(notes: Iterable[Note]) -> list[tuple[float, Key]]:
    """Correlation of the notes' pitch-class weights with each of the 24 major and minor keys, best first."""
    histogram = [0.0] * 12
    for n in notes:
        histogram[n.pitch % 12] += max(n.end - n.start, 1)
    scores = []
    for root in range(12):
        rotated = histogram[root:] + histogram[:root]
        scores.append((_correlation(rotated, MAJOR_PROFILE), Key(root, "major")))
        scores.append((_correlation(rotated, MINOR_PROFILE), Key(root, "minor")))
    return sorted(scores, key=lambda s: -s[0])


def detect_key(notes: Iterable[Note]) -> Key:
    """The most likely major or minor key of the notes; ValueError when there are none."""
    notes = list(notes)
    if not notes:
        raise ValueError("no notes to detect a key from: play something first")
    return key_scores(notes)[0][1]
