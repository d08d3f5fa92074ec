"""The song memory: what came before in the song, kept as its tokens, so that a continuation can follow the song's
own material where it is playing something the song has played before.

A recurrent state forgets: the model alone barely uses more than the last few bars (README, *The default
model*). Songs repeat. The memory finds the longest earlier match of the tokens just written (at least
MIN_MATCH, at most MAX_MATCH tokens) and proposes the tokens that followed it, each as often as it did; the
sampler and the evaluation mix that proposal into the model's distribution,

    p = (1 - w) p_model + w p_memory,    w = strength * min(1, match / FULL_MATCH)   (w = 0 below MIN_MATCH, at most MOST_WEIGHT),

the weight growing with the length of the match (a cache model, Grave et al. 2017, over the song's tokens).
`strength` is `SamplingConfig.memory`; 0 turns it off. On the training split 0.85 scored best by NLL; the default
0.95 lets what followed a whole match pass top-p 0.95 alone, so a repeated passage is followed note for note
(held-out POP909 at 32 bars of context: 3.82 nats a note and pitch-class overlap 0.781 at 0.95; 3.90 and 0.698
at 0.85).

A memory may be given `stops`, tokens that end a passage (the fill markers, between the bars before a gap and
those after it): what followed a match is never a stop, so the end of one passage does not propose the next's
marker.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

MIN_MATCH, FULL_MATCH, MAX_MATCH = 4, 16, 32   # tokens: the shortest match used, the one given full weight, the longest counted
MOST_WEIGHT = 0.95   # the model keeps at least this much less: what the song did next may be against the grammar


def weight(strength: float, match: int) -> float:
    """How much of the distribution the memory gets after a match of `match` tokens."""
    return 0.0 if match < MIN_MATCH else min(strength * match / FULL_MATCH, strength, MOST_WEIGHT)


class SongMemory:
    """The song's tokens and, for every MIN_MATCH tokens in a row, the positions right after them; `stops` are
    never proposed."""

    def __init__(self, tokens=(), stops=()):
        self.stops = frozenset(stops)
        self.tokens: list[int] = []
        self._after: dict[tuple[int, ...], list[int]] = {}
        self.extend(tokens)

    def extend(self, tokens) -> None:
        for token in tokens:
            self.tokens.append(int(token))
            if len(self.tokens) >= MIN_MATCH:
                self._after.setdefault(tuple(self.tokens[-MIN_MATCH:]), []).append(len(self.tokens))

    def stream(self, tokens=()) -> "MemoryStream":
        """One continuation's view: the song, then `tokens` and what the continuation writes (its own)."""
        return MemoryStream(self, tokens)


class MemoryStream:
    """The song memory followed by one stream's own tokens, which only this stream sees; it keeps the length of
    every current match from one token to the next."""

    def __init__(self, memory: SongMemory, tokens=()):
        self.memory, self._base = memory, len(memory.tokens)   # the song as it was when the stream began
        self.own: list[int] = []
        self._after: dict[tuple[int, ...], list[int]] = {}
        self._matches: dict[int, int] = {}   # position right after a match -> the match's length
        self.extend(tokens)

    def __len__(self) -> int:
        return self._base + len(self.own)

    def _at(self, i: int) -> int:
        return self.memory.tokens[i] if i < self._base else self.own[i - self._base]

    def extend(self, tokens) -> None:
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        self.own.append(int(token))
        end = len(self)
        if end < MIN_MATCH:
            return
        key = tuple(self._at(i) for i in range(end - MIN_MATCH, end))
        found = [j for j in self.memory._after.get(key, []) if j <= self._base] + self._after.get(key, [])
        if len(self.own) == 1:   # the first token: the matches reaching into the song are measured
            self._matches = {j: self._measure(j, end) for j in found}
        else:   # a match one token longer than the one that ended a token earlier, or a new one of MIN_MATCH tokens
            self._matches = {j: min(self._matches.get(j - 1, MIN_MATCH - 1) + 1, MAX_MATCH) for j in found}
        self._after.setdefault(key, []).append(end)

    def _measure(self, j: int, end: int) -> int:
        """How many tokens before `j` equal those before `end` (at most MAX_MATCH)."""
        n = 0
        while n < MAX_MATCH and n < j and self._at(j - 1 - n) == self._at(end - 1 - n):
            n += 1
        return n

    def proposal(self) -> tuple[dict[int, float], int]:
        """The tokens that followed the longest earlier match, each with its share, and that match's length
        ({} and 0 without a match of MIN_MATCH tokens followed by a token that is not a stop)."""
        end = len(self)
        lengths = {j: n for j, n in self._matches.items() if j < end and self._at(j) not in self.memory.stops}
        if not lengths:
            return {}, 0
        longest = max(lengths.values())
        followed = [self._at(j) for j, n in lengths.items() if n == longest]
        return {t: followed.count(t) / len(followed) for t in set(followed)}, longest


def mix(logits: torch.Tensor, streams: list[MemoryStream], strength: float | Sequence[float],
        kinds: np.ndarray | None = None, by_kind: list[bool] | None = None) -> torch.Tensor:
    """Next-token log-probabilities (K, V) with each stream's memory mixed in, as strongly as `strength` says (one
    for every stream, or one each); rows without a match keep the model's logits as they are. Per matched row, log((1 - w) softmax(l) + w p) is l - logsumexp(l) + log(1 - w)
    except at the few tokens proposed (NumPy: a step's rows are too small for torch's per-call cost).

    A row marked in `by_kind` (a stream asked for a density) mixes within each kind of token (`kinds`: each
    id's kind as a number) and keeps the model's share of every kind: the memory picks which notes, where and
    how long, while whether the bar holds another note or ends stays the model's, which reads the density
    asked for. Mixed whole, the memory ends a bar where the song's passage ended, however many notes were
    asked for (held-out Lieder, the band off, three draws: 0.257 off the density asked mixed whole, 0.208 by
    kind, 0.202 with the memory off)."""
    strengths = [strength] * len(streams) if isinstance(strength, (int, float)) else list(strength)
    if not any(strengths):
        return logits
    out = None
    for row, (stream, strength) in enumerate(zip(streams, strengths)):
        if not strength:
            continue
        proposal, match = stream.proposal()
        if not (w := weight(strength, match)):
            continue
        if out is None:
            out = logits.detach().float().cpu().numpy().copy()
        line = out[row]
        top = line.max()
        line -= top + np.log(np.exp(line - top).sum())   # the model's log-probabilities
        ids = np.fromiter(proposal, np.int64, len(proposal))
        shares = np.fromiter(proposal.values(), np.float32, len(proposal))
        if by_kind is not None and by_kind[row]:
            kind = kinds[ids]
            for k in np.unique(kind):   # the memory's shares within kind k, times the model's share of kind k
                of_k = kind == k
                shares[of_k] *= np.exp(line[kinds == k]).sum() / shares[of_k].sum()
            line_w = np.where(np.isin(kinds, kind), np.float32(math.log1p(-w)), np.float32(0))
        else:
            line_w = np.float32(math.log1p(-w))
        mixed = np.log((1 - w) * np.exp(line[ids]) + w * shares)
        line += line_w
        line[ids] = mixed
    return logits if out is None else torch.from_numpy(out).to(logits.device)


def with_memory(logits: torch.Tensor, read: list[int], written: list[int], strength: float,
                stops=()) -> torch.Tensor:
    """Log-probabilities (T, V) of the T tokens `written` after `read`, logits[i] predicting written[i], with the
    memory of everything before each (`stops` never proposed) mixed in as `mix` mixes it while sampling (for
    scoring)."""
    stream, rows = SongMemory(read, stops).stream(), []
    for row, token in zip(logits, written):
        rows.append(mix(row[None], [stream], strength)[0])
        stream.append(token)
    return torch.stack(rows) if rows else logits
