"""Which REMI tokens may come next: the mask that keeps every sampled stream decodable.

Continuations follow the prompt's meter and tempo: a Bar is followed by the prompt's TimeSig, Tempo
tokens are never sampled, positions rise strictly within a bar, and every Pitch is followed by a
Velocity and a Duration. A stream is done when its N-th bar is complete, i.e. when it asks for the
Bar token that would open bar N+1; that token is not part of the candidate. A candidate is never
silent: its last bar cannot close before it holds a note (a Suggest that plays nothing is no answer).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.keys import Key
from engine.tokenizer import RemiTokenizer

# Phases of a stream: what the last token was.
BAR, TIMESIG, POSITION, PITCH, VELOCITY, DURATION = range(6)


@dataclass
class StreamState:
    """Where one candidate stream stands in the grammar."""

    phase: int = BAR
    position: int = -1          # last Position value in the current bar
    bars: int = 1               # bars opened so far (the forced first Bar counts)
    tokens_in_bar: int = 0
    notes: int = 0              # Pitch tokens so far
    done: bool = False


class RemiGrammar:
    """Token classes of a tokenizer's vocabulary, turned into per-stream masks."""

    def __init__(self, tokenizer: RemiTokenizer):
        vocabulary = tokenizer.vocabulary
        self.vocab_size = tokenizer.vocab_size
        self.positions_per_bar = tokenizer.positions_per_bar
        kind = list(vocabulary.kind)
        self.bar_id = tokenizer.bar_id

        def mask_of(name: str) -> torch.Tensor:
            return torch.tensor([k == name for k in kind])

        def values(table: dict[int, int]) -> torch.Tensor:
            return torch.tensor([table.get(i, -1) for i in range(self.vocab_size)])

        self.is_pitch, self.is_velocity, self.is_duration = mask_of("Pitch"), mask_of("Velocity"), mask_of("Duration")
        self.is_position = mask_of("Position")
        self.position_of, self.pitch_of = values(vocabulary.position), values(vocabulary.pitch)
        self.timesig_id = {meter: i for i, meter in vocabulary.meter.items()}
        self.kind_of = kind
        self._meter_of_id = dict(vocabulary.meter)

    def meter_after(self, tokens: list[int], meter: tuple[int, int] = (4, 4)) -> tuple[int, int]:
        """The time signature in force after `tokens`, starting from `meter`."""
        for t in tokens:
            meter = self._meter_of_id.get(t, meter)
        return meter

    def pitch_mask(self, pitch_range: tuple[int, int] | None = None, key: Key | None = None) -> torch.Tensor:
        """The Pitch tokens inside `pitch_range` (inclusive) and in `key`'s scale; ValueError when none is."""
        m = self.is_pitch.clone()
        if pitch_range is not None:
            m &= (self.pitch_of >= pitch_range[0]) & (self.pitch_of <= pitch_range[1])
        if key is not None:
            m &= torch.tensor([p % 12 in key.pitch_classes for p in self.pitch_of.tolist()])
        if not m.any():
            raise ValueError(f"no pitch of the model's vocabulary lies in range {pitch_range} and key {key}")
        return m

    def allowed(self, s: StreamState, time_signature: tuple[int, int], max_tokens_per_bar: int,
                pitches: torch.Tensor | None = None, bars_wanted: int | None = None) -> torch.Tensor:
        """Boolean mask over the vocabulary of the tokens this stream may take next; `pitches`
        (from `pitch_mask`) limits the Pitch tokens; with `bars_wanted`, the last bar cannot close silent."""
        pitches = self.is_pitch if pitches is None else pitches
        m = torch.zeros(self.vocab_size, dtype=torch.bool)
        bar = torch.zeros_like(m)
        bar[self.bar_id] = True
        if s.done:
            m[self.bar_id] = True  # finished streams idle on Bar; their tokens are discarded
            return m
        full = s.tokens_in_bar >= max_tokens_per_bar
        if s.phase == BAR:
            m[self.timesig_id[time_signature]] = True
        elif s.phase in (TIMESIG, DURATION):
            if full:
                return bar
            m |= self.is_position & (self.position_of > s.position) & (self.position_of < self.positions_per_bar(time_signature))
            if s.phase == DURATION:
                m |= pitches
            silent = bars_wanted is not None and s.bars >= bars_wanted and s.notes == 0
            if not silent or not m.any():
                m |= bar
        elif s.phase == POSITION:
            m |= pitches
        elif s.phase == PITCH:
            m |= self.is_velocity
        elif s.phase == VELOCITY:
            m |= self.is_duration
        return m

    def advance(self, s: StreamState, token: int, bars_wanted: int) -> None:
        """Move a stream past `token` (which the mask allowed)."""
        if s.done:
            return
        if token == self.bar_id:
            if s.bars == bars_wanted:
                s.done = True
                return
            s.bars, s.phase, s.position, s.tokens_in_bar = s.bars + 1, BAR, -1, 0
            return
        s.tokens_in_bar += 1
        kind = self.kind_of[token]
        if kind == "TimeSig":
            s.phase = TIMESIG
        elif kind == "Position":
            s.phase, s.position = POSITION, int(self.position_of[token])
        elif kind == "Pitch":
            s.phase, s.notes = PITCH, s.notes + 1
        elif kind == "Velocity":
            s.phase = VELOCITY
        elif kind == "Duration":
            s.phase = DURATION
        else:
            raise ValueError(f"token {token} ({kind}) cannot be sampled in a continuation")
