"""Bar-aligned training windows from a prepared DATA folder, with random transposition.

A batch is a pure function of (seed, step, rank): a resumed run sees exactly the batches the
uninterrupted run would have seen, with no sampler state to save.

Data prepared with bar controls holds every bar's controls; each window keeps a random subset of
them (for each control, none of it in a quarter of the windows, otherwise each bar's with a ratio
drawn per window), so one model learns to follow a control and to do without one. Transposition
rotates the pitch-class controls with the pitches.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from engine.tokenizer import RemiTokenizer, TokenizerSettings

IGNORE = -100
# the controls that are kept or dropped together, by the kind of their tokens
CONTROL_GROUPS = (("ACBarNoteDensity",), ("ACBarOnsetPolyphonyMin", "ACBarOnsetPolyphonyMax"), ("ACBarPitchClass",))
WITHOUT_CONTROL = 0.25   # the share of windows that carry none of a control


class DataError(ValueError):
    pass


class TokenWindows:
    """The files of one split of a prepared dataset, cut into windows that start on a bar line."""

    def __init__(self, data_dir: str | Path, split: str):
        data_dir = Path(data_dir)
        index_path = data_dir / "index.json"
        if not index_path.is_file():
            raise DataError(f"{data_dir}: not a prepared dataset (no index.json); run `python -m trainer prepare` first")
        index = json.loads(index_path.read_text())
        self.settings = TokenizerSettings.from_dict(index["tokenizer"])
        self.tokenizer = RemiTokenizer(self.settings)
        self.tokens = np.load(data_dir / "tokens.npy", mmap_mode="r")
        self.files = [f for f in index["files"] if f["split"] == split]
        if not self.files:
            raise DataError(f"{data_dir}: the {split!r} split has no files")
        self.lengths = np.array([f["length"] for f in self.files], dtype=np.float64)
        self.pad_id = self.tokenizer.pad_id
        self._pitch_shift_tables()
        kind = self.tokenizer.vocabulary.kind
        # per id: 0, or 1 + the index of its control group
        self.control_group = np.array([next((g + 1 for g, kinds in enumerate(CONTROL_GROUPS) if k in kinds), 0)
                                       for k in kind], dtype=np.int64)

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    def _pitch_shift_tables(self) -> None:
        self.pitch_of = np.full(self.tokenizer.vocab_size, -1, dtype=np.int64)
        id_of_pitch = {}
        for i, pitch in self.tokenizer.vocabulary.pitch.items():
            self.pitch_of[i] = pitch
            id_of_pitch[pitch] = i
        self.id_of_pitch = id_of_pitch
        self.pitch_lo, self.pitch_hi = min(id_of_pitch), max(id_of_pitch)
        self.pitch_class_of = np.full(self.tokenizer.vocab_size, -1, dtype=np.int64)
        self.id_of_pitch_class = np.zeros(12, dtype=np.int64)
        for i, pc in self.tokenizer.vocabulary.pitch_class.items():
            self.pitch_class_of[i], self.id_of_pitch_class[pc] = pc, i

    def transpose(self, window: np.ndarray, semitones: int) -> np.ndarray:
        """Every pitch moved by `semitones`, and every pitch-class control with it (each bar's run of them
        kept in rising order, as miditok writes it)."""
        out = window.copy()
        is_pitch = self.pitch_of[window] >= 0
        out[is_pitch] = [self.id_of_pitch[p + semitones] for p in self.pitch_of[window[is_pitch]]]
        at = np.flatnonzero(self.pitch_class_of[window] >= 0)
        for run in np.split(at, np.flatnonzero(np.diff(at) > 1) + 1) if len(at) else ():
            out[run] = self.id_of_pitch_class[np.sort((self.pitch_class_of[window[run]] + semitones) % 12)]
        return out

    def keep_some_controls(self, window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The window with a random subset of its bars' controls (the draws come from the batch's `rng`)."""
        group = self.control_group[window]
        if not group.any():
            return window
        bar_of = np.cumsum(window == self.tokenizer.bar_id)
        keep = np.ones(len(window), dtype=bool)
        for g in range(1, len(CONTROL_GROUPS) + 1):
            ratio = 0.0 if rng.random() < WITHOUT_CONTROL else rng.random()
            kept_bars = rng.random(int(bar_of[-1]) + 1) < ratio
            keep &= (group != g) | kept_bars[bar_of]
        return window[keep]

    def window(self, file: dict, bar: int, length: int) -> np.ndarray:
        """`length` tokens of `file` from its bar `bar`, padded with pad_id past the file's end."""
        start = file["offset"] + file["bars"][bar]
        end = min(start + length, file["offset"] + file["length"])
        out = np.full(length, self.pad_id, dtype=np.int64)
        out[: end - start] = self.tokens[start:end]
        return out

    def batch(self, seed: int, step: int, batch_size: int, seq_len: int, max_transpose: int = 0,
              completion_bars: int = 0, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, T) and targets (B, T); targets are IGNORE on padding and, with completion_bars,
        on every position before the window's last `completion_bars` bars."""
        rng = np.random.default_rng([seed, step, rank])
        files = rng.choice(len(self.files), size=batch_size, p=self.lengths / self.lengths.sum())
        xs, ys = [], []
        for fi in files:
            f = self.files[fi]
            bar = int(rng.integers(len(f["bars"])))
            if self.settings.controls:   # read twice the length: the controls dropped leave room for more
                w = self.keep_some_controls(self.window(f, bar, 2 * (seq_len + 1)), rng)[:seq_len + 1]
            else:
                w = self.window(f, bar, seq_len + 1)
            if max_transpose:
                pitches = self.pitch_of[w][self.pitch_of[w] >= 0]
                if len(pitches):
                    lo = max(-max_transpose, self.pitch_lo - int(pitches.min()))
                    hi = min(max_transpose, self.pitch_hi - int(pitches.max()))
                    w = self.transpose(w, int(rng.integers(lo, hi + 1)))
            x, y = w[:-1].copy(), w[1:].copy()
            y[x == self.pad_id] = IGNORE
            y[y == self.pad_id] = IGNORE
            if completion_bars:
                bar_starts = np.flatnonzero(w[:-1] == self.tokenizer.bar_id)
                first_completion = bar_starts[-completion_bars] if len(bar_starts) > completion_bars else len(y)
                y[: max(first_completion - 1, 0)] = IGNORE  # predict the completion's first Bar onwards
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
