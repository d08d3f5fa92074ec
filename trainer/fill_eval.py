"""`eval --data` on a model that fills: the same 2 bars scored and sampled after the bars before them alone, and
after the bars before and after them (the gap filled), beside repeating the bar before the gap.

Each window is a spot of the held-out songs with FILL_CONTEXT_BARS bars before its 2 bars and FILL_AFTER_BARS
after. The NLL's targets are the 2 bars' tokens (their closing Bar left out: a filled gap ends where its
suffix already stood), the same for both readings, so the per-note NLLs compare directly.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from engine.grammar import RemiGrammar
from engine.tokenizer import FILL_AFTER_BARS, RemiTokenizer
from trainer.evaluate import COMPLETION_BARS, Window, continuation_metrics, model_samples, model_scores, nll_metrics

log = logging.getLogger(__name__)

FILL_CONTEXT_BARS = 8   # the bars before the gap


def fill_windows(spot, grammar: RemiGrammar, tokenizer: RemiTokenizer) -> tuple[Window, Window]:
    """The spot's 2 bars after the bars before them (a continuation), and after those and the bars after them."""
    bars, at, tokens = spot.bars, spot.at, spot.tokens
    prefix = tokens[bars[at - FILL_CONTEXT_BARS]:bars[at]]
    middle = tokens[bars[at]:bars[at + COMPLETION_BARS] + 1]
    suffix = tokens[bars[at + COMPLETION_BARS]:bars[at + COMPLETION_BARS + FILL_AFTER_BARS]]
    plain = Window(spot.path, at - FILL_CONTEXT_BARS, prefix, middle, grammar.meter_after(prefix))
    return plain, replace(plain, context=tokenizer.fill_reading(prefix, suffix))


def evaluate_fill(model, tokenizer: RemiTokenizer, grammar: RemiGrammar, spots: list, sampling, seed: int,
                  batch_size: int, sample_batch_size: int) -> dict:
    """Per-note NLL given the prefix only and given prefix and suffix, and the sampled pitch-class overlaps."""
    pairs = [fill_windows(s, grammar, tokenizer) for s in spots]
    plain, filled = [p for p, _ in pairs], [f for _, f in pairs]
    targets = np.concatenate([w.completion[:-1] for w in plain])
    nll, alone = {}, {}
    for name, windows in (("prefix_only", plain), ("prefix_and_suffix", filled)):
        scored = [replace(w, completion=w.completion[:-1]) for w in windows]
        scores = model_scores(model, scored, batch_size, tokenizer.pad_id, memories={sampling.memory, 0.0},
                              stops=tokenizer.fill_marker_ids)
        nll[name] = nll_metrics(*scores[sampling.memory], targets, tokenizer)["nll_per_note"]
        alone[name] = nll_metrics(*scores[0.0], targets, tokenizer)["nll_per_note"]
    overlap = {name: continuation_metrics(model_samples(model, grammar, windows, sampling, seed, sample_batch_size,
                                                        tokenizer.fill_marker_ids), plain, tokenizer)["pitch_class_overlap"]
               for name, windows in (("fill", filled), ("continuation", plain))}
    bar_before = [s.tokens[s.bars[s.at - 1]:s.bars[s.at]] * COMPLETION_BARS for s in spots]
    overlap["repeat_the_bar_before"] = continuation_metrics(bar_before, plain, tokenizer)["pitch_class_overlap"]
    gain = 1 - nll["prefix_and_suffix"] / nll["prefix_only"]
    log.info("fill: %.3f nats/note with the bars after, %.3f without (%.1f%% less); overlap %s", nll["prefix_and_suffix"],
             nll["prefix_only"], 100 * gain, {k: round(v, 3) for k, v in overlap.items()})
    return {"windows": len(spots), "context_bars": FILL_CONTEXT_BARS, "suffix_bars": FILL_AFTER_BARS,
            "nll_per_note": nll, "nll_reduction": gain, "nll_per_note_model_alone": alone,
            "nll_reduction_model_alone": 1 - alone["prefix_and_suffix"] / alone["prefix_only"], "pitch_class_overlap": overlap}
