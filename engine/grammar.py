"""Which REMI tokens may come next: the mask that keeps every sampled stream decodable.

Continuations follow the prompt's meter and tempo: a Bar is followed by the prompt's TimeSig, Tempo
tokens are never sampled, positions rise strictly within a bar, and every Pitch is followed by a
Velocity and a Duration. A stream is done when its N-th bar is complete, i.e. when it asks for the
Bar token that would open bar N+1; that token is not part of the candidate. A candidate is never
silent: its first bar cannot close before it holds a note (a suggestion, or an answer, is heard from its
bar line; one that plays nothing is no answer).

Bar controls (a vocabulary trained with them): the controls asked for are placed after each generated
bar's TimeSig, in miditok's order (polyphony, pitch classes, density); with none asked for, control
tokens are never sampled, so the model writes as it would without them. A pitch is struck at most once
at an onset (a key cannot sound twice: the second would end the first). A polyphony cap also limits
the Pitch tokens at one Position, and a density keeps each bar's notes inside its band: no Position or
Pitch past the most, no Bar before the fewest (unless nothing else may come); inside the band the sampling
loop pulls the bar toward the density itself (`SamplingConfig.end_pull`). A bar's chord also adds
a weight to the logits of its tones (`pitch_class_bias`): a preference, every other pitch stays possible.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from engine.keys import Key
from engine.sampler import SamplingConfig
from engine.tokenizer import RemiTokenizer

# Phases of a stream: what the last token was.
BAR, TIMESIG, POSITION, PITCH, VELOCITY, DURATION = range(6)


class ControlsError(ValueError):
    """Bar controls asked of a model that has none."""


@dataclass
class StreamState:
    """Where one candidate stream stands in the grammar."""

    phase: int = BAR
    position: int = -1          # last Position value in the current bar
    bars: int = 1               # bars opened so far (the forced first Bar counts)
    tokens_in_bar: int = 0
    notes: int = 0              # Pitch tokens so far
    bar_notes: int = 0          # Pitch tokens in the current bar
    onset_notes: int = 0        # Pitch tokens at the current Position
    onset_pitches: list[int] = field(default_factory=list)   # ... their ids: a pitch is struck once an onset
    controls: list[int] = field(default_factory=list)   # control tokens still to place in this bar
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
        self.kind_index = np.unique(kind, return_inverse=True)[1]   # per id: its kind as a number (top-p by kind)
        self._meter_of_id = dict(vocabulary.meter)
        self.has_controls = tokenizer.settings.controls
        self._density_id = {v: i for i, v in vocabulary.density.items()}
        self._polyphony_id = ({v: i for i, v in vocabulary.polyphony_min.items()},
                              {v: i for i, v in vocabulary.polyphony_max.items()})
        self._pitch_class_id = {v: i for i, v in vocabulary.pitch_class.items()}
        self._later_positions: dict[tuple[tuple[int, int], int], torch.Tensor] = {}

    def check_controls(self, sampling: SamplingConfig) -> None:
        """ValueError when `sampling` asks for bar controls and this vocabulary has none."""
        if sampling.controls and not self.has_controls:
            raise ControlsError("this model has no bar controls: density, polyphony and chords need a model trained "
                             "with them (python -m trainer prepare --controls)")

    def bar_controls(self, sampling: SamplingConfig, bar: int) -> list[int]:
        """The control tokens that open generated bar `bar` (0-based) for `sampling`'s density, polyphony
        and chords, in miditok's order; ValueError when some are asked of a vocabulary without them."""
        if not sampling.controls:
            return []
        self.check_controls(sampling)
        ids = []
        if sampling.polyphony is not None:   # a cap: at least one note at an onset, at most N
            ids += [self._polyphony_id[0][min(self._polyphony_id[0])], self._polyphony_id[1][sampling.polyphony]]
        ids += [self._pitch_class_id[pc] for pc in sorted(sampling.chord_of_bar(bar) or ())]
        if sampling.density is not None:
            ids.append(self._density_id[min(sampling.density, max(self._density_id))])
        return sorted(ids)   # miditok gives the controls ids in the order it writes them

    def meter_after(self, tokens: list[int], meter: tuple[int, int] = (4, 4)) -> tuple[int, int]:
        """The time signature in force after `tokens`, starting from `meter`."""
        for t in tokens:
            meter = self._meter_of_id.get(t, meter)
        return meter

    def pitch_mask(self, pitch_range: tuple[int, int] | None = None, key: Key | None = None,
                   also: frozenset[int] = frozenset()) -> torch.Tensor:
        """The Pitch tokens inside `pitch_range` (inclusive) and in `key`'s scale or the pitch classes `also`
        (a bar's chord wins over the key lock); ValueError when none is."""
        m = self.is_pitch.clone()
        if pitch_range is not None:
            m &= (self.pitch_of >= pitch_range[0]) & (self.pitch_of <= pitch_range[1])
        if key is not None:
            m &= torch.tensor([p % 12 in key.pitch_classes or p % 12 in also for p in self.pitch_of.tolist()])
        if not m.any():
            raise ValueError(f"no pitch of the model's vocabulary lies in range {pitch_range} and key {key}")
        return m

    def pitch_class_bias(self, pitch_classes: frozenset[int], weight: float) -> torch.Tensor:
        """A logit bias over the vocabulary: `weight` on the Pitch tokens of `pitch_classes`, 0 elsewhere."""
        return torch.tensor([weight if k == "Pitch" and p % 12 in pitch_classes else 0.0
                             for k, p in zip(self.kind_of, self.pitch_of.tolist())])

    def allowed(self, s: StreamState, time_signature: tuple[int, int], max_tokens_per_bar: int,
                pitches: torch.Tensor | None = None, bars_wanted: int | None = None,
                polyphony: int | None = None, density: tuple[int, float] | None = None) -> torch.Tensor:
        """Boolean mask over the vocabulary of the tokens this stream may take next; `pitches`
        (from `pitch_mask`) limits the Pitch tokens, `polyphony` the Pitch tokens at one Position, `density`
        (fewest, most; from SamplingConfig.density_bounds) the notes in a bar; with `bars_wanted`, the last
        first bar cannot close silent."""
        pitches = self.is_pitch if pitches is None else pitches
        if s.done:
            return self._only(self.bar_id)  # finished streams idle on Bar; their tokens are discarded
        if s.phase == BAR:
            return self._only(self.timesig_id[time_signature])
        if s.phase == TIMESIG and s.controls:
            return self._only(s.controls[0])
        if s.phase in (POSITION, PITCH, VELOCITY):
            return {POSITION: pitches, PITCH: self.is_velocity, VELOCITY: self.is_duration}[s.phase].clone()
        fewest, most = density or (0, float("inf"))
        # a full bar only closes (after a TimeSig or a Duration); the cap leaves room for the fewest notes asked, at
        # four tokens a note after the TimeSig and the controls
        if s.tokens_in_bar >= max(max_tokens_per_bar, 4 * fewest + 16):
            return self._only(self.bar_id)
        m = torch.zeros(self.vocab_size, dtype=torch.bool)
        if s.bar_notes < most:   # a Position is always followed by a Pitch
            positions = self._positions_after(time_signature, s.position)
            if polyphony is not None and s.bar_notes < fewest:   # onsets enough left for the notes still due
                onsets_left = self.positions_per_bar(time_signature) - self.position_of
                positions = positions & (onsets_left * polyphony >= fewest - s.bar_notes)
            m |= positions
            if s.phase == DURATION and (polyphony is None or s.onset_notes < polyphony):
                fresh = pitches.clone()
                fresh[s.onset_pitches] = False   # struck twice at one onset, a key would sound once and end early
                m |= fresh
        silent = bars_wanted is not None and s.bars == 1 and s.notes == 0
        if (not silent and s.bar_notes >= fewest) or not m.any():
            m[self.bar_id] = True
        return m

    def _only(self, token: int) -> torch.Tensor:
        m = torch.zeros(self.vocab_size, dtype=torch.bool)
        m[token] = True
        return m

    def _positions_after(self, time_signature: tuple[int, int], position: int) -> torch.Tensor:
        """The Position tokens later than `position` in a bar of `time_signature` (kept: a step asks often)."""
        key = (time_signature, position)
        if (m := self._later_positions.get(key)) is None:
            m = self._later_positions[key] = (self.is_position & (self.position_of > position)
                                              & (self.position_of < self.positions_per_bar(time_signature)))
        return m

    def advance(self, s: StreamState, token: int, bars_wanted: int, controls: list[list[int]] = ()) -> None:
        """Move a stream past `token` (which the mask allowed); `controls[b]` are the control tokens that
        open bar b (from `bar_controls`)."""
        if s.done:
            return
        if token == self.bar_id:
            if s.bars == bars_wanted:
                s.done = True
                return
            s.bars, s.phase, s.position, s.tokens_in_bar, s.bar_notes = s.bars + 1, BAR, -1, 0, 0
            return
        s.tokens_in_bar += 1
        kind = self.kind_of[token]
        if kind == "TimeSig":
            s.phase = TIMESIG
            s.controls = list(controls[s.bars - 1]) if controls else []
        elif kind.startswith("AC") and s.controls and token == s.controls[0]:
            s.controls.pop(0)
        elif kind == "Position":
            s.phase, s.position, s.onset_notes, s.onset_pitches = POSITION, int(self.position_of[token]), 0, []
        elif kind == "Pitch":
            s.phase, s.notes, s.onset_notes, s.bar_notes = PITCH, s.notes + 1, s.onset_notes + 1, s.bar_notes + 1
            s.onset_pitches.append(token)
        elif kind == "Velocity":
            s.phase = VELOCITY
        elif kind == "Duration":
            s.phase = DURATION
        else:
            raise ValueError(f"token {token} ({kind}) cannot be sampled in a continuation")
