"""What each token id of a vocabulary stands for, read once from miditok's typed queries (engine/tokenizer.py builds
the vocabulary; every other part asks here rather than taking token strings apart)."""
from __future__ import annotations

from dataclasses import dataclass, field

import miditok


@dataclass(frozen=True)
class Vocabulary:
    """Every token id's kind and value, read once from miditok's typed queries. The rest of the program asks
    here (`kind[i] == "Pitch"`, `pitch[i]`) and never takes token strings apart."""

    kind: tuple[str, ...]                       # per id: "Bar", "TimeSig", "Position", "Pitch", "Velocity", ...
    pitch: dict[int, int]                       # Pitch id -> MIDI pitch
    velocity: dict[int, int]
    position: dict[int, int]                    # Position id -> grid step in the bar
    duration_beats: dict[int, float]            # Duration id -> length in beats of the meter
    meter: dict[int, tuple[int, int]]           # TimeSig id -> (numerator, denominator)
    # bar controls (empty without them): the value each control token stands for
    density: dict[int, int] = field(default_factory=dict)          # ACBarNoteDensity id -> notes ("64+": 64)
    polyphony_min: dict[int, int] = field(default_factory=dict)    # ACBarOnsetPolyphonyMin id -> notes
    polyphony_max: dict[int, int] = field(default_factory=dict)
    pitch_class: dict[int, int] = field(default_factory=dict)      # ACBarPitchClass id -> 0 (C) .. 11 (B)

    @classmethod
    def of(cls, tokenizer: "miditok.MusicTokenizer") -> "Vocabulary":
        size = len(tokenizer.vocab)
        kind = [""] * size
        values: dict[str, dict[int, str]] = {}
        for name in {token.split("_", 1)[0] for token in tokenizer.vocab}:
            for i in tokenizer.token_ids_of_type(name):
                kind[i] = name
                values.setdefault(name, {})[i] = tokenizer[i].split("_", 1)[1]

        def numbers(name: str, read) -> dict:
            return {i: read(v) for i, v in values.get(name, {}).items()}

        def beats(value: str) -> float:
            whole, steps, resolution = (int(x) for x in value.split("."))
            return whole + steps / resolution

        return cls(tuple(kind), numbers("Pitch", int), numbers("Velocity", int), numbers("Position", int),
                   numbers("Duration", beats), numbers("TimeSig", lambda v: tuple(int(x) for x in v.split("/"))),
                   numbers("ACBarNoteDensity", lambda v: int(v.rstrip("+"))),
                   numbers("ACBarOnsetPolyphonyMin", int), numbers("ACBarOnsetPolyphonyMax", int),
                   numbers("ACBarPitchClass", int))

    def ids(self, kind: str) -> list[int]:
        return [i for i, k in enumerate(self.kind) if k == kind]

    def is_control(self, token_id: int) -> bool:
        """A bar attribute control token (they all follow a bar's TimeSig)."""
        return self.kind[token_id].startswith("AC")
