"""`eval --data` on a model that fills: the same 2 bars scored and sampled after the bars before them alone, and
after the bars before and after them (the gap filled), beside repeating the bar before the gap.

Each window is a spot of the held-out songs with FILL_AFTER_BARS bars before its 2 bars and as many after. The
bars are scored with the same number of bars read on either side, each of FILL_SIDES: 8, and as many as a fill
reads after a gap (its headline: the bridge reads the bars before from the song's start). The NLL's targets are
the 2 bars' tokens (their closing Bar left out: a filled gap ends where its suffix already stood), the same for
every reading, so the per-note NLLs compare directly. Candidates are sampled at the longest reading.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from engine.grammar import RemiGrammar
from engine.tokenizer import FILL_AFTER_BARS, RemiTokenizer
from trainer.evaluate import COMPLETION_BARS, Window, continuation_metrics, model_samples, model_scores, nll_metrics

log = logging.getLogger(__name__)

FILL_SIDES = (8, FILL_AFTER_BARS)   # bars read on either side of the gap


def fill_windows(spot, grammar: RemiGrammar, tokenizer: RemiTokenizer, side: int) -> tuple[Window, Window]:
    """The spot's 2 bars after `side` bars before them (a continuation), and after those and `side` bars after them."""
    bars, at, tokens = spot.bars, spot.at, spot.tokens
    prefix = tokens[bars[at - side]:bars[at]]
    middle = tokens[bars[at]:bars[at + COMPLETION_BARS] + 1]
    suffix = tokens[bars[at + COMPLETION_BARS]:bars[at + COMPLETION_BARS + side]]
    plain = Window(spot.path, at - side, prefix, middle, grammar.meter_after(prefix))
    return plain, replace(plain, context=tokenizer.fill_reading(prefix, suffix))


def evaluate_fill(model, tokenizer: RemiTokenizer, grammar: RemiGrammar, spots: list, sampling, seed: int,
                  batch_size: int, sample_batch_size: int) -> dict:
    """Per reading, the per-note NLL given the prefix only and given prefix and suffix; the sampled pitch-class
    overlaps at the longest."""
    by_side, readings = {}, {}
    for side in FILL_SIDES:
        pairs = [fill_windows(s, grammar, tokenizer, side) for s in spots]
        plain, filled = readings[side] = [p for p, _ in pairs], [f for _, f in pairs]
        targets = np.concatenate([w.completion[:-1] for w in plain])
        nll, alone = {}, {}
        for name, windows in (("prefix_only", plain), ("prefix_and_suffix", filled)):
            scored = [replace(w, completion=w.completion[:-1]) for w in windows]
            scores = model_scores(model, scored, batch_size, tokenizer.pad_id, memories={sampling.memory, 0.0},
                                  stops=tokenizer.fill_marker_ids)
            nll[name] = nll_metrics(*scores[sampling.memory], targets, tokenizer)["nll_per_note"]
            alone[name] = nll_metrics(*scores[0.0], targets, tokenizer)["nll_per_note"]
        by_side[side] = {"nll_per_note": nll, "nll_reduction": 1 - nll["prefix_and_suffix"] / nll["prefix_only"],
                         "nll_per_note_model_alone": alone,
                         "nll_reduction_model_alone": 1 - alone["prefix_and_suffix"] / alone["prefix_only"]}
        log.info("fill, %d bars either side: %.3f nats/note with the bars after, %.3f without (%.1f%% less)", side,
                 nll["prefix_and_suffix"], nll["prefix_only"], 100 * by_side[side]["nll_reduction"])
    longest = max(FILL_SIDES)
    plain, filled = readings[longest]
    overlap = {name: continuation_metrics(model_samples(model, grammar, windows, sampling, seed, sample_batch_size,
                                                        tokenizer.fill_marker_ids), plain, tokenizer)["pitch_class_overlap"]
               for name, windows in (("fill", filled), ("continuation", plain))}
    bar_before = [s.tokens[s.bars[s.at - 1]:s.bars[s.at]] * COMPLETION_BARS for s in spots]
    overlap["repeat_the_bar_before"] = continuation_metrics(bar_before, plain, tokenizer)["pitch_class_overlap"]
    log.info("fill: overlap %s", {k: round(v, 3) for k, v in overlap.items()})
    return {"windows": len(spots), "context_bars": longest, "suffix_bars": longest, **by_side[longest],
            "by_bars_either_side": by_side, "pitch_class_overlap": overlap}
