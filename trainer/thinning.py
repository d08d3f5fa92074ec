"""Thinned bars: an augmentation that teaches a model to write to its density control, not only to predict it.

In real music a bar's note count follows from the bars before it, so a model can learn to predict the
density control without ever needing to read it, and then ignores it when asked for another. A thinned
bar keeps a random share of its notes (whole onsets' worth of tokens stay in order; an onset left empty
loses its Position), and its controls are written again for what is left: its density, its fewest and
most notes at one onset and its pitch classes, exactly as the tokenizer writes them for a real bar
(tested: rewriting an unthinned bar gives back its own controls). Only bars that keep their density
control are thinned, so a bar without one still shows the data's own density.

Bars thinned one by one only ever ask for fewer notes than the music around them. A window may instead be
thinned as one run of bars from its start, all keeping one share: the bars after the run then ask, through their
density controls, for more notes than the bars the model has just read, as a composer does who asks for a busier
continuation of a sparse phrase.
"""
from __future__ import annotations

import numpy as np

from engine.tokenizer import RemiTokenizer

MOST_RUN_BARS = 8   # a run of thinned bars covers 1 to this many: about the phrase a suggestion follows


class BarThinner:
    """Thins bars of a token window of a vocabulary with bar controls."""

    def __init__(self, tokenizer: RemiTokenizer):
        v = tokenizer.vocabulary
        self.bar_id = tokenizer.bar_id
        self.kind = np.array(v.kind)
        self.pitch_of = np.full(len(v.kind), -1, dtype=np.int64)
        for i, p in v.pitch.items():
            self.pitch_of[i] = p
        self.is_control = np.array([v.is_control(i) for i in range(len(v.kind))])
        self.density_id = {n: i for i, n in v.density.items()}
        self.poly_min_id = {n: i for i, n in v.polyphony_min.items()}
        self.poly_max_id = {n: i for i, n in v.polyphony_max.items()}
        self.pitch_class_id = {pc: i for i, pc in v.pitch_class.items()}

    def controls_for(self, body: np.ndarray) -> list[int]:
        """The control tokens the tokenizer writes for a bar whose tokens after its controls are `body`
        ([] for a bar without notes), in its order: polyphony min and max, pitch classes, density."""
        pitches = self.pitch_of[body]
        notes = pitches >= 0
        if not notes.any():
            return []
        onset = np.cumsum(self.kind[body] == "Position")[notes]
        per_onset = np.bincount(onset)[np.unique(onset)]
        lo, hi = min(self.poly_min_id), max(self.poly_min_id)
        out = [self.poly_min_id[int(np.clip(per_onset.min(), lo, hi))],
               self.poly_max_id[int(np.clip(per_onset.max(), min(self.poly_max_id), max(self.poly_max_id)))]]
        out += [self.pitch_class_id[pc] for pc in sorted(set((pitches[notes] % 12).tolist()))]
        out.append(self.density_id[min(int(notes.sum()), max(self.density_id))])
        return out

    def thin_bar(self, bar: np.ndarray, keep_share: float, rng: np.random.Generator) -> np.ndarray:
        """One bar (from its Bar token) with about `keep_share` of its notes (at least one), controls rewritten."""
        ctrl = np.flatnonzero(self.is_control[bar])
        if not len(ctrl):
            return bar
        head, body = bar[:ctrl[0]], bar[ctrl[-1] + 1:]
        note_at = np.flatnonzero(self.pitch_of[body] >= 0)
        if len(note_at) < 2:
            return bar
        keep_notes = rng.random(len(note_at)) < keep_share
        keep_notes[rng.integers(len(note_at))] = True
        keep = np.ones(len(body), dtype=bool)
        for at in note_at[~keep_notes]:
            keep[at:at + 3] = False            # Pitch, Velocity, Duration
        body = body[keep]
        is_pos = self.kind[body] == "Position"
        onset = np.cumsum(is_pos)
        has_note = np.bincount(onset[self.pitch_of[body] >= 0], minlength=onset[-1] + 1 if len(onset) else 1)
        lone_position = is_pos & (has_note[onset] == 0) & ~np.r_[self.kind[body][1:] == "Tempo", False]
        body = body[~lone_position]
        return np.concatenate([head, self.controls_for(body), body]).astype(bar.dtype)

    def thin(self, window: np.ndarray, rng: np.random.Generator, bar_share: float, keep_range: tuple[float, float],
             run_share: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The window with each bar (not the last, which may be cut short) thinned with probability
        `bar_share`, keeping a share drawn from `keep_range`, or (with probability `run_share`) its first 1 to
        MOST_RUN_BARS bars (never all) thinned, keeping one share; and per bar of the result, whether it was thinned."""
        starts = np.flatnonzero(window == self.bar_id)
        if len(starts) < 2:
            return window, np.zeros(len(starts) + 1, dtype=bool)
        run = bool(run_share) and rng.random() < run_share   # no draw without runs: the batches stay as they were
        run_bars = int(rng.integers(1, min(len(starts), MOST_RUN_BARS + 1))) if run else 0
        run_keep = float(rng.uniform(*keep_range)) if run else 0.0
        pieces, thinned = [window[:starts[0]]], [False]
        for b, (s, e) in enumerate(zip(starts, np.r_[starts[1:], len(window)])):
            bar = window[s:e]
            if run and b < run_bars:
                bar = self.thin_bar(bar, run_keep, rng)
                thinned.append(True)
            elif not run and b < len(starts) - 1 and rng.random() < bar_share:
                bar = self.thin_bar(bar, float(rng.uniform(*keep_range)), rng)
                thinned.append(True)
            else:
                thinned.append(False)
            pieces.append(bar)
        return np.concatenate(pieces), np.array(thinned)
