"""Bar-aligned training windows from a prepared DATA folder, with random transposition.

A batch is a pure function of (seed, step, rank): a resumed run sees exactly the batches the
uninterrupted run would have seen, with no sampler state to save.

Two kinds of batch: `batch` cuts each row from a random song at a random bar (the state starts empty);
`stream_batch` plays each row's songs from their first bar in consecutive windows, so that training
can pass each row's final state on to its next window (the songs a row plays, and their transpositions
and kept controls, are drawn from (seed, rank, row, song number) alone).

Data prepared with bar controls holds every bar's controls; each window keeps a random subset of
them (for each control, none of it in a quarter of the windows, otherwise each bar's with a ratio
drawn per window), so one model learns to follow a control and to do without one. Transposition
rotates the pitch-class controls with the pitches.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.tokenizer import RemiTokenizer, TokenizerSettings
from trainer.fill import fill_window
from trainer.thinning import BarThinner

IGNORE = -100
# the controls that are kept or dropped together, by the kind of their tokens
CONTROL_GROUPS = (("ACBarNoteDensity",), ("ACBarOnsetPolyphonyMin", "ACBarOnsetPolyphonyMax"), ("ACBarPitchClass",))
WITHOUT_CONTROL = 0.25   # the share of windows that carry none of a control
THIN_KEEP = (0.2, 0.9)   # a thinned bar keeps a share of its notes drawn from this range


class DataError(ValueError):
    pass


@dataclass
class StreamSong:
    """One song as a row of a stream plays it: its tokens (transposed, with their kept controls) and how
    many windows it fills."""

    tokens: np.ndarray
    windows: int


class TokenWindows:
    """The files of one split of a prepared dataset, cut into windows that start on a bar line. With
    `thin_bars` (data with bar controls), that share of the bars is thinned (trainer/thinning.py) and keeps
    its density control; with `thin_runs`, that share of the windows is thinned as one run of bars from its
    start. With `fill_share`, that share of the windows teaches filling a gap (trainer/fill.py); the vocabulary
    then has the fill markers (as it does with `markers`)."""

    def __init__(self, data_dir: str | Path, split: str, thin_bars: float = 0.0,
                 thin_keep: tuple[float, float] = THIN_KEEP, fill_share: float = 0.0, markers: bool = False,
                 thin_runs: float = 0.0):
        data_dir = Path(data_dir)
        index_path = data_dir / "index.json"
        if not index_path.is_file():
            raise DataError(f"{data_dir}: not a prepared dataset (no index.json); run `python -m trainer prepare` first")
        index = json.loads(index_path.read_text())
        self.settings = TokenizerSettings.from_dict(index["tokenizer"])
        if fill_share or markers:
            self.settings = self.settings.with_fill_markers()
        self.tokenizer = RemiTokenizer(self.settings)
        self.fill_share = fill_share
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
        if (thin_bars or thin_runs) and not self.settings.controls:
            raise DataError(f"{data_dir}: thinning bars needs data prepared with --controls")
        self.thin_bars, self.thin_keep, self.thin_runs = thin_bars, thin_keep, thin_runs
        self.thinner = BarThinner(self.tokenizer) if thin_bars or thin_runs else None
        self._schedules: dict[tuple, list[int]] = {}
        self._playing: dict[tuple, tuple[int, StreamSong]] = {}

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
        """The window, some of its bars thinned (with `thin_bars`), with a random subset of its bars' controls
        (a thinned bar keeps its density); the draws come from the batch's `rng`."""
        group = self.control_group[window]
        if not group.any():
            return window
        thinned = None
        if self.thinner is not None:
            window, thinned = self.thinner.thin(window, rng, self.thin_bars, self.thin_keep, self.thin_runs)
            group = self.control_group[window]
        bar_of = np.cumsum(window == self.tokenizer.bar_id)
        keep = np.ones(len(window), dtype=bool)
        for g in range(1, len(CONTROL_GROUPS) + 1):
            ratio = 0.0 if rng.random() < WITHOUT_CONTROL else rng.random()
            kept_bars = rng.random(int(bar_of[-1]) + 1) < ratio
            if thinned is not None and CONTROL_GROUPS[g - 1] == ("ACBarNoteDensity",):
                kept_bars |= thinned
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
            if self.settings.controls:   # read 3x the length: the controls dropped and bars thinned leave room for more
                w = self.keep_some_controls(self.window(f, bar, 3 * (seq_len + 1)), rng)[:seq_len + 1]
                w = np.pad(w, (0, seq_len + 1 - len(w)), constant_values=self.pad_id)   # thinned bars are short
            else:
                w = self.window(f, bar, seq_len + 1)
            w = self.random_transpose(w, max_transpose, rng)
            skip: list[int] = []
            if self.fill_share and rng.random() < self.fill_share:
                t = self.tokenizer
                w, skip = fill_window(w, t, self.pad_id, rng)
            x, y = self.inputs_and_targets(w)
            y[skip] = IGNORE
            if completion_bars:
                bar_starts = np.flatnonzero(w[:-1] == self.tokenizer.bar_id)
                first_completion = bar_starts[-completion_bars] if len(bar_starts) > completion_bars else len(y)
                y[: max(first_completion - 1, 0)] = IGNORE  # predict the completion's first Bar onwards
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    def random_transpose(self, tokens: np.ndarray, max_transpose: int, rng: np.random.Generator) -> np.ndarray:
        """`tokens` moved by a random interval within ±max_transpose that keeps every pitch in the piano range."""
        pitches = self.pitch_of[tokens][self.pitch_of[tokens] >= 0]
        if not max_transpose or not len(pitches):
            return tokens
        lo = max(-max_transpose, self.pitch_lo - int(pitches.min()))
        hi = min(max_transpose, self.pitch_hi - int(pitches.max()))
        return self.transpose(tokens, int(rng.integers(lo, hi + 1)))

    def inputs_and_targets(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inputs w[:-1] and next-token targets w[1:], IGNORE wherever padding is read or predicted."""
        x, y = w[:-1].copy(), w[1:].copy()
        y[x == self.pad_id] = IGNORE
        y[y == self.pad_id] = IGNORE
        return x, y

    # ---- streams: whole songs in consecutive windows ---------------------------------------------

    def stream_song(self, seed: int, rank: int, row: int, k: int, seq_len: int, max_transpose: int) -> StreamSong:
        """The k-th song row `row` plays: chosen, transposed and its controls thinned by its own generator."""
        rng = np.random.default_rng([seed, rank, row, k])
        f = self.files[int(rng.choice(len(self.files), p=self.lengths / self.lengths.sum()))]
        tokens = np.asarray(self.tokens[f["offset"]:f["offset"] + f["length"]], dtype=np.int64)
        if self.settings.controls:
            tokens = self.keep_some_controls(tokens, rng)
        tokens = self.random_transpose(tokens, max_transpose, rng)
        return StreamSong(tokens, max(1, -(-(len(tokens) - 1) // seq_len)))

    def stream_batch(self, seed: int, step: int, batch_size: int, seq_len: int, max_transpose: int = 0,
                     rank: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs (B, T), targets (B, T) and `fresh` (B,): True where the row starts a new song at this step
        (its state must start empty); otherwise the row's window follows the one it played at step - 1."""
        xs, ys, fresh = [], [], []
        for row in range(batch_size):
            song, window = self._stream_position(seed, rank, row, step, seq_len, max_transpose)
            w = np.full(seq_len + 1, self.pad_id, dtype=np.int64)
            part = song.tokens[window * seq_len: (window + 1) * seq_len + 1]
            w[:len(part)] = part
            x, y = self.inputs_and_targets(w)
            xs.append(x)
            ys.append(y)
            fresh.append(window == 0)
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)), torch.tensor(fresh)

    def _stream_position(self, seed: int, rank: int, row: int, step: int, seq_len: int,
                         max_transpose: int) -> tuple[StreamSong, int]:
        """The song row `row` plays at `step`, and which of its windows; the row's schedule (each song's
        first step) is extended as far as needed and kept, the song itself only while it is being played."""
        key = (seed, rank, row, seq_len, max_transpose)
        schedule = self._schedules.setdefault(key, [0])        # schedule[k]: the first step of song k
        k = int(np.searchsorted(schedule, step, side="right")) - 1
        while k == len(schedule) - 1:
            song = self.stream_song(seed, rank, row, k, seq_len, max_transpose)
            self._playing[key] = (k, song)
            schedule.append(schedule[-1] + song.windows)
            k = int(np.searchsorted(schedule, step, side="right")) - 1
        playing = self._playing.get(key)
        if playing is None or playing[0] != k:
            playing = (k, self.stream_song(seed, rank, row, k, seq_len, max_transpose))
            self._playing[key] = playing
        return playing[1], step - schedule[k]
