"""The one sampling loop: streams advance in lockstep under the grammar until each holds N complete bars.

The model (Session.suggest, evaluation) and the n-gram baseline both drive it, each through its own
`step`, so every sampled continuation, whatever produced it, obeys the same grammar and stopping rule.
"""
from __future__ import annotations

from typing import Callable

import torch

from engine.grammar import RemiGrammar, StreamState
from engine.sampler import SamplingConfig, sample
from engine.song_memory import MemoryStream, mix

Step = Callable[[torch.Tensor], torch.Tensor]   # one token per stream (K,) -> next-token logits (K, V)


class Cancelled(Exception):
    """Sampling was stopped by its `cancelled` check (a newer request, or notes that must reach the state)."""


def sample_bars(step: Step, grammar: RemiGrammar, meters: list[tuple[int, int]], bars: int,
                sampling: SamplingConfig | list[SamplingConfig], generator: torch.Generator,
                on_bar: Callable[[int, list[int], int], None] | None = None,
                cancelled: Callable[[], bool] | None = None,
                memory: list[MemoryStream] | None = None, requests: list[int] | None = None) -> list[list[int]]:
    """One continuation per entry of `meters`; each starts with the Bar that opens it and holds exactly `bars` bars.

    `sampling` is one config for every stream, or one per stream (their bar controls, key lock and pitch
    range may differ; temperature, top-p and top-k are the first's). `on_bar(stream, tokens, complete)`
    is called each time a stream completes a bar, with its tokens so far (time order: a prefix of the
    final ones) and how many bars they complete. `cancelled()` is checked before every step; when it says
    True, Cancelled is raised. `memory` (one per stream, each holding what the stream's state has read) mixes
    the song's own material into the model's distribution, as much as each stream's config's `memory` says; with
    `distinct` (the first config's), a stream that has struck just the notes an earlier stream of its request
    struck, through half the bars asked for (rounded down), reads none of it until it strikes another: the memory
    no longer makes one request's candidates copies of one passage. `requests` numbers the request of each stream
    (default: all one request).
    """
    configs = sampling if isinstance(sampling, list) else [sampling] * len(meters)
    streams = [StreamState() for _ in meters]
    tokens = [[grammar.bar_id] for _ in meters]
    struck = [[grammar.bar_id] for _ in meters]   # each stream's Bar, Position and Pitch tokens: where it struck what
    nxt = torch.full((len(meters),), grammar.bar_id, dtype=torch.long)
    controls = [[grammar.bar_controls(c, b) for b in range(bars)] for c in configs]
    pitches = [_pitch_masks(grammar, c, bars) for c in configs]
    biases = [_chord_biases(grammar, c, bars) for c in configs]
    no_bias = torch.zeros(grammar.vocab_size)
    densities = [c.density_bounds() for c in configs]
    by_kind = [c.density is not None for c in configs]   # the memory leaves a bar's length to the model
    pulls = any(c.end_pull(0) for c in configs)   # a stream asked for a density with its band and a pull
    while not all(s.done for s in streams):
        if cancelled is not None and cancelled():
            raise Cancelled()
        logits = step(nxt).detach().float().cpu()
        if memory is not None:
            for stream, s, t in zip(memory, streams, nxt.tolist()):
                if not s.done:
                    stream.append(t)
            strengths = [c.memory for c in configs]
            if configs[0].distinct:
                for i in _copies(struck, streams, requests, bars // 2):
                    strengths[i] = 0.0
            logits = mix(logits, memory, strengths, grammar.kind_index, by_kind)
        if any(biases):
            logits = logits + torch.stack([b[min(s.bars, bars) - 1] if b else no_bias for s, b in zip(streams, biases)])
        if pulls:   # a bar aims at the density asked inside its band
            logits = logits.clone()
            logits[:, grammar.bar_id] += torch.tensor([c.end_pull(s.bar_notes) for s, c in zip(streams, configs)])
        allowed = torch.stack([grammar.allowed(s, m, c.max_tokens_per_bar, p[min(s.bars, bars) - 1], bars,
                                               c.polyphony, d)
                               for s, m, c, p, d in zip(streams, meters, configs, pitches, densities)])
        nxt = sample(logits, allowed, configs[0], generator, grammar.kind_index)
        for i, (s, out, t) in enumerate(zip(streams, tokens, nxt.tolist())):
            if s.done:
                continue
            grammar.advance(s, t, bars, controls[i])
            if t == grammar.bar_id and on_bar is not None:
                on_bar(i, list(out), bars if s.done else s.bars - 1)
            if not s.done:
                out.append(t)
                if t == grammar.bar_id or grammar.kind_of[t] in ("Position", "Pitch"):
                    struck[i].append(t)
    return tokens


def _copies(struck: list[list[int]], streams: list[StreamState], requests: list[int] | None,
            after_bars: int) -> list[int]:
    """The streams still writing that have struck just the notes (onsets and pitches, one or more: `struck`, their
    Bar, Position and Pitch tokens) an earlier stream of their request struck, through at least `after_bars`
    complete bars: the memory led both down one passage."""
    seen: set[tuple] = set()
    copies = []
    for i, (notes, s) in enumerate(zip(struck, streams)):
        key = (requests[i] if requests is not None else 0, *notes)
        if key in seen and not s.done and s.bars > after_bars and s.notes:
            copies.append(i)
        seen.add(key)
    return copies


def _chord_biases(grammar: RemiGrammar, sampling: SamplingConfig, bars: int) -> list[torch.Tensor]:
    """Each bar's logit bias toward its chord's tones ([] without chords or weight)."""
    if not sampling.chords or not sampling.chord_weight:
        return []
    return [grammar.pitch_class_bias(sampling.chord_of_bar(b), sampling.chord_weight) for b in range(bars)]


def _pitch_masks(grammar: RemiGrammar, sampling: SamplingConfig, bars: int) -> list[torch.Tensor]:
    """The Pitch tokens each bar may use: in the pitch range and the key lock, or in the bar's chord."""
    if not sampling.chords:
        return [grammar.pitch_mask(sampling.pitch_range, sampling.key)] * bars
    return [grammar.pitch_mask(sampling.pitch_range, sampling.key, sampling.chord_of_bar(b)) for b in range(bars)]
