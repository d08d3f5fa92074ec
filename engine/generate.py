"""The one sampling loop: streams advance in lockstep under the grammar until each holds N complete bars.

The model (Session.suggest, evaluation) and the n-gram baseline both drive it, each through its own
`step`, so every sampled continuation, whatever produced it, obeys the same grammar and stopping rule.
"""
from __future__ import annotations

from typing import Callable

import torch

from engine.grammar import RemiGrammar, StreamState
from engine.sampler import SamplingConfig, sample

Step = Callable[[torch.Tensor], torch.Tensor]   # one token per stream (K,) -> next-token logits (K, V)


def sample_bars(step: Step, grammar: RemiGrammar, meters: list[tuple[int, int]], bars: int,
                sampling: SamplingConfig, generator: torch.Generator) -> list[list[int]]:
    """One continuation per entry of `meters`; each starts with the Bar that opens it and holds exactly `bars` bars."""
    streams = [StreamState() for _ in meters]
    tokens = [[grammar.bar_id] for _ in meters]
    nxt = torch.full((len(meters),), grammar.bar_id, dtype=torch.long)
    pitches = grammar.pitch_mask(sampling.pitch_range, sampling.key)
    while not all(s.done for s in streams):
        logits = step(nxt)
        allowed = torch.stack([grammar.allowed(s, m, sampling.max_tokens_per_bar, pitches)
                               for s, m in zip(streams, meters)])
        nxt = sample(logits.detach().float().cpu(), allowed, sampling, generator)
        for s, out, t in zip(streams, tokens, nxt.tolist()):
            if not s.done:
                grammar.advance(s, t, bars)
                if not s.done:
                    out.append(t)
    return tokens
