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


class Cancelled(Exception):
    """Sampling was stopped by its `cancelled` check (a newer request, or notes that must reach the state)."""


def sample_bars(step: Step, grammar: RemiGrammar, meters: list[tuple[int, int]], bars: int,
                sampling: SamplingConfig, generator: torch.Generator,
                on_bar: Callable[[int, list[int], int], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> list[list[int]]:
    """One continuation per entry of `meters`; each starts with the Bar that opens it and holds exactly `bars` bars.

    `on_bar(stream, tokens, complete)` is called each time a stream completes a bar, with its tokens so
    far (time order: a prefix of the final ones) and how many bars they complete. `cancelled()` is
    checked before every step; when it says True, Cancelled is raised.
    """
    streams = [StreamState() for _ in meters]
    tokens = [[grammar.bar_id] for _ in meters]
    nxt = torch.full((len(meters),), grammar.bar_id, dtype=torch.long)
    controls = [grammar.bar_controls(sampling, b) for b in range(bars)]
    # per bar: a bar's chord wins over the key lock
    pitches = [grammar.pitch_mask(sampling.pitch_range, sampling.key, sampling.chord_of_bar(b) or frozenset())
               for b in range(bars)] if sampling.chords else [grammar.pitch_mask(sampling.pitch_range, sampling.key)] * bars
    while not all(s.done for s in streams):
        if cancelled is not None and cancelled():
            raise Cancelled()
        logits = step(nxt)
        allowed = torch.stack([grammar.allowed(s, m, sampling.max_tokens_per_bar, pitches[min(s.bars, bars) - 1],
                                               bars, sampling.polyphony)
                               for s, m in zip(streams, meters)])
        nxt = sample(logits.detach().float().cpu(), allowed, sampling, generator)
        for i, (s, out, t) in enumerate(zip(streams, tokens, nxt.tolist())):
            if s.done:
                continue
            grammar.advance(s, t, bars, controls)
            if t == grammar.bar_id and on_bar is not None:
                on_bar(i, list(out), bars if s.done else s.bars - 1)
            if not s.done:
                out.append(t)
    return tokens
