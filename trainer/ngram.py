"""A count-based n-gram model over token ids, smoothed by interpolated modified Kneser-Ney.

The baseline that `eval` measures the network against. Every n-gram is packed into one int64 key
(`bits` bits per token, the last token lowest), so counting is `np.unique` over a few million keys
and a query is `np.searchsorted` over sorted tables: fitting POP909's training split takes seconds.

Smoothing (Chen & Goodman 1998, "modified" KN with three discounts per order):

    P_n(w | h) = (max(c_n(h w) - D_n(c), 0) + gamma_n(h) * P_{n-1}(w | h')) / c_n(h)
    gamma_n(h) = D_n1 * N1(h .) + D_n2 * N2(h .) + D_n3 * N3+(h .)

c_n is the raw count at the highest order and the continuation count N1+(. h w) (distinct left
neighbours) below it; orders whose history was never seen pass the lower order through unchanged,
and the unigram interpolates with the uniform distribution, so every token keeps some probability
and each P_n sums to one over the vocabulary.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_DISCOUNTS = (0.5, 1.0, 1.5)  # used when an order has too few counts to estimate its own


@dataclass
class _OrderTable:
    """Counts of the n-grams of one order, and per history the sums that the smoothing needs."""

    keys: np.ndarray        # sorted packed n-grams
    counts: np.ndarray      # their (raw or continuation) counts
    history_keys: np.ndarray  # sorted packed histories (the n-gram without its last token)
    history_total: np.ndarray  # c(h): sum of counts over w
    history_gamma: np.ndarray  # D1*N1(h.) + D2*N2(h.) + D3*N3+(h.)
    discounts: np.ndarray   # [0, D1, D2, D3], indexed by min(count, 3)


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Chen & Goodman's estimates from the counts-of-counts n1..n4, each kept inside (0, k)."""
    n = np.bincount(np.minimum(counts, 5), minlength=6)[1:5].astype(np.float64)
    if (n == 0).any():
        d = np.array(DEFAULT_DISCOUNTS)
    else:
        y = n[0] / (n[0] + 2 * n[1])
        d = np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])
    d = np.clip(d, 0.05, np.array([0.95, 1.95, 2.95]))
    return np.concatenate([[0.0], d])


def _table(keys: np.ndarray, counts: np.ndarray, bits: int) -> _OrderTable:
    discounts = _discounts(counts)
    history = keys >> bits
    history_keys, first = np.unique(history, return_index=True)
    per_gram = discounts[np.minimum(counts, 3)]
    total = np.add.reduceat(counts, first).astype(np.float64) if len(keys) else np.zeros(0)
    gamma = np.add.reduceat(per_gram, first) if len(keys) else np.zeros(0)
    return _OrderTable(keys, counts, history_keys, total, gamma, discounts)


class NGramModel:
    """Interpolated modified Kneser-Ney over token ids; `fit` once, then `probabilities` for any histories."""

    def __init__(self, vocab_size: int, order: int = 6):
        if order < 1:
            raise ValueError(f"n-gram order must be at least 1, got {order}")
        self.vocab_size, self.order = vocab_size, order
        self.bits = max(1, int(np.ceil(np.log2(vocab_size))))
        if self.bits * order > 62:
            raise ValueError(f"an order-{order} n-gram over {vocab_size} tokens does not fit a 64-bit key")
        self.tables: list[_OrderTable] = []  # tables[n - 1] holds order n
        self.n_tokens = 0

    def fit(self, sequences: list[np.ndarray]) -> "NGramModel":
        """Count every n-gram inside each sequence (none spans two sequences)."""
        sequences = [np.asarray(s, dtype=np.int64) for s in sequences if len(s)]
        tokens = np.concatenate(sequences)
        if tokens.min() < 0 or tokens.max() >= self.vocab_size:
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {tokens.min()}..{tokens.max()}")
        self.n_tokens = len(tokens)
        starts = np.repeat(np.cumsum([0] + [len(s) for s in sequences[:-1]]), [len(s) for s in sequences])
        position = np.arange(len(tokens)) - starts  # index of each token inside its own sequence
        raw: list[tuple[np.ndarray, np.ndarray]] = []  # per order: unique n-grams (ending anywhere) and counts
        key = np.zeros(len(tokens), dtype=np.int64)
        for n in range(1, self.order + 1):
            # key[i] packs tokens[i-n+1 .. i]; shifting the earlier token in at the top
            key[n - 1:] |= tokens[: len(tokens) - n + 1] << (self.bits * (n - 1))
            raw.append(np.unique(key[position >= n - 1], return_counts=True))
        self.tables = []
        for n in range(1, self.order + 1):
            if n == self.order:
                keys, counts = raw[n - 1]
            else:  # continuation counts: distinct left neighbours of each n-gram, from the (n+1)-grams
                mask = (1 << (self.bits * n)) - 1
                keys, counts = np.unique(raw[n][0] & mask, return_counts=True)
            self.tables.append(_table(keys, counts.astype(np.int64), self.bits))
        log.info("fitted a %d-gram on %d tokens (%s n-grams of the top order)", self.order, self.n_tokens,
                 f"{len(self.tables[-1].keys):,}")
        return self

    def probabilities(self, histories: np.ndarray) -> np.ndarray:
        """P(w | history) for every w: histories (B, H) of token ids, H >= 0 (the last order-1 are used) -> (B, V)."""
        histories = np.asarray(histories, dtype=np.int64)
        if histories.ndim != 2:
            raise ValueError(f"histories must be (B, H), got shape {histories.shape}")
        batch, length = histories.shape
        vocab = np.arange(self.vocab_size, dtype=np.int64)
        p = np.full((batch, self.vocab_size), 1.0 / self.vocab_size)
        for n in range(1, min(self.order, length + 1) + 1):
            t = self.tables[n - 1]
            h = np.zeros(batch, dtype=np.int64)
            for j in range(n - 1):  # pack the last n-1 tokens of each history
                h |= histories[:, length - (n - 1) + j] << (self.bits * (n - 2 - j))
            hi = np.minimum(np.searchsorted(t.history_keys, h), max(len(t.history_keys) - 1, 0))
            seen = (t.history_keys[hi] == h) if len(t.history_keys) else np.zeros(batch, dtype=bool)
            if not seen.any():
                continue
            rows = np.flatnonzero(seen)
            grams = (h[rows, None] << self.bits) | vocab[None, :]
            gi = np.minimum(np.searchsorted(t.keys, grams), len(t.keys) - 1)
            c = np.where(t.keys[gi] == grams, t.counts[gi], 0)
            discounted = np.maximum(c - t.discounts[np.minimum(c, 3)], 0.0)
            total, gamma = t.history_total[hi[rows], None], t.history_gamma[hi[rows], None]
            p[rows] = (discounted + gamma * p[rows]) / total
        return p

    def log_prob(self, histories: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """ln P(target | history) per row."""
        p = self.probabilities(histories)
        return np.log(p[np.arange(len(targets)), np.asarray(targets)])
