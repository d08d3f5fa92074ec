"""Bar-aligned training windows from a prepared DATA folder, with random transposition.

A batch is a pure function of (seed, step, rank): a resumed run sees exactly the batches the
uninterrupted run would have seen, with no sampler state to save.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from engine.tokenizer import RemiTokenizer, TokenizerSettings

IGNORE = -100


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

    def transpose(self, window: np.ndarray, semitones: int) -> np.ndarray:
        out = window.copy()
        is_pitch = self.pitch_of[window] >= 0
        out[is_pitch] = [self.id_of_pitch[p + semitones] for p in self.pitch_of[window[is_pitch]]]
        return out

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
            w = self.window(f, int(rng.integers(len(f["bars"]))), seq_len + 1)
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
