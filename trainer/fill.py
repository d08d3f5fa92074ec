"""Fill-in-the-middle windows: a window of a song rearranged so that the model learns to write a gap of bars between
what comes before and what comes after (docs/design.md §3).

The window's complete bars are split into a prefix (at least one bar), a gap of FILL_GAP_BARS bars and a suffix
(at least one bar, cut at a bar line to fit). The model reads them as `RemiTokenizer.fill_reading` spells it
(prefix, FillSuffix, suffix, FillMiddle, the suffix's first bar and the prefix's last bar again) and then learns
to write the gap, which starts with its Bar, as a continuation does; its bar count and meter are the grammar's at
sampling time. Only the gap's tokens are targets: the windows left as they are teach continuing, and what is
learnt from the gap flows back through the reading of the bars before and after it.

Trials, the gap's NLL on held-out POP909 with the bars after it against without, the model alone: prefix and
suffix as targets too, half of 4,800 windows rearranged: 5.66 against 5.45 nats a note (48 windows); the gap
alone as targets, no bar read again: 5.61 against 5.45; the prefix's last bar read again, 600 steps at half the
windows: 5.417 against 5.415 (240 windows); the suffix's first bar read again too, 1,000 steps: 5.366 against
5.392. The model alone makes little of the bars after a gap, as it makes little of more than a few bars before.
"""
from __future__ import annotations

import numpy as np

from engine.tokenizer import FILL_GAP_BARS, RemiTokenizer


def fill_window(window: np.ndarray, tokenizer: RemiTokenizer, pad_id: int,
                rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """`window` (from a bar line) rearranged as the reading of a gap and the gap, padded (or cut) to its length,
    and the target indexes (of its inputs w[:-1] -> targets w[1:]) to ignore: all but the gap's. A window of
    fewer than three complete bars comes back as it is."""
    n = len(window)
    starts = np.flatnonzero(window == tokenizer.bar_id)
    bars = len(starts) - 1                      # complete bars: the window cuts the last one (or pads it)
    if bars < 3:
        return window, []
    gap = int(rng.integers(FILL_GAP_BARS[0], min(FILL_GAP_BARS[1], bars - 2) + 1))
    first = int(rng.integers(1, bars - gap))    # the gap's first bar; the prefix is [0, first), the suffix after it
    prefix, middle = window[:starts[first]], window[starts[first]:starts[first + gap]]
    ends = [int(s - starts[first + gap]) for s in starts[first + gap:bars + 1]]   # the suffix's whole bars
    before, after = prefix.tolist(), window[starts[first + gap]:]
    fits = [e for e in ends if len(tokenizer.fill_reading(before, after[:e].tolist())) + len(middle) <= n]
    reading = tokenizer.fill_reading(before, after[:max(fits or [0])].tolist())
    out = np.concatenate([reading, middle]).astype(window.dtype)[:n]
    out = np.pad(out, (0, n - len(out)), constant_values=pad_id)
    gap_targets = len(reading) - 1              # the target index of the gap's first token (its Bar)
    return out, [i for i in range(n - 1) if not gap_targets <= i < gap_targets + len(middle)]
