"""`eval --data`: how well a checkpoint completes 2 bars at the context lengths the live bridge really has,
per held-out source, beside the copy baselines, and how closely it follows the density control alone.

The same 2-bar completions are scored after 2, 4, 8, 16 and 32 bars of context (a completion is taken
only where the song has 32 bars before it), so the per-note NLL can fall only by what the model makes of
the earlier bars. A sampled continuation per window and context is compared with the true 2 bars by
pitch-class overlap, beside "repeat the last 2 bars" and "repeat the 2 bars 8 bars back". After the longest
context, four candidates a window, as a request makes them: how distinct they are from each other. Density: each
window asks for the truth's notes per bar, three candidates of it, with the sampler's band off (the model alone)
and on.

Songs come from a prepared DATA's split (held-out lists in trainer/heldout/), with their bar controls
taken out: the windows carry none, and the model is scored with its control tokens masked, as in `eval`.
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations
from pathlib import Path

import numpy as np
from engine.checkpoint import load_checkpoint
from engine.grammar import RemiGrammar
from engine.sampler import MAX_DENSITY, SamplingConfig
from engine.tokenizer import FILL_AFTER_BARS, RemiTokenizer, TokenizerSettings
from trainer.data import TokenWindows
from trainer.fill_eval import evaluate_fill
from trainer.evaluate import (COMPLETION_BARS, TARGETS, Window, bar_notes, continuation_metrics, control_ids,
                              model_samples, model_scores, nll_metrics)

log = logging.getLogger(__name__)

CONTEXT_LENGTHS = (2, 4, 8, 16, 32)
COPY_FROM_BACK = 8     # the second copy baseline repeats the 2 bars this many bars before the completion
CHOICES = 4            # candidates a request makes, as the bridge's default K: how distinct they are is measured
DISTINCT_BELOW = 0.9   # two candidates sharing this share of their notes (onset and pitch) or more are one choice
DENSITY_DRAWS = 3      # candidates per window asked for a density: over 48 windows, one draw's mean |off target|
                       # moved by up to 0.03 from seed to seed (held-out Mutopia: 0.209-0.258)


@dataclass(frozen=True)
class ContextEvalConfig:
    checkpoint: str
    data: str                                   # a prepared DATA
    split: str = "val"
    windows: int = 48                           # per source, spread over its songs
    contexts: tuple[int, ...] = CONTEXT_LENGTHS
    seed: int = 0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    batch_size: int = 8
    sample_batch_size: int = 16


@dataclass
class Spot:
    """Where one completion sits: a song's tokens, its bar offsets, and the completion's first bar."""

    path: str
    tokens: list[int]
    bars: list[int]
    at: int

    def window(self, context_bars: int, grammar: RemiGrammar) -> Window:
        context = self.tokens[self.bars[self.at - context_bars]:self.bars[self.at]]
        completion = self.tokens[self.bars[self.at]:self.bars[self.at + COMPLETION_BARS] + 1]
        return Window(self.path, self.at - context_bars, context, completion, grammar.meter_after(context))

    def bars_back(self, back: int) -> list[int]:
        """The 2 bars that start `back` bars before the completion, as a continuation (no closing Bar)."""
        return self.tokens[self.bars[self.at - back]:self.bars[self.at - back + COMPLETION_BARS]]


def held_out_songs(data: str, split: str, tokenizer: RemiTokenizer | None = None
                   ) -> dict[str, list[tuple[str, list[int]]]]:
    """Per source (a dataset of one folder: "all"), each song of the split as tokens without bar controls; with
    `tokenizer` (a model's, whose vocabulary the data's grew from: fewer meters), in its ids, token by token, a song
    with a token it lacks (a meter it does not read) left out and counted in the log."""
    windows = TokenWindows(data, split)
    ids = None
    if tokenizer is not None:
        known = {token: i for i, token in enumerate(tokenizer.vocab())}
        ids = np.array([known.get(token, -1) for token in windows.tokenizer.vocab()], dtype=np.int64)
    songs: dict[str, list[tuple[str, list[int]]]] = {}
    unread = 0
    for f in windows.files:
        tokens = np.asarray(windows.tokens[f["offset"]:f["offset"] + f["length"]], dtype=np.int64)
        tokens = tokens[windows.control_group[tokens] == 0]
        if ids is not None:
            tokens = ids[tokens]
            if (tokens < 0).any():
                unread += 1
                continue
        songs.setdefault(f.get("source", "all"), []).append((f["path"], tokens.tolist()))
    if unread:
        log.info("%s: %d songs of the %s split hold a meter the model does not read; left out", data, unread, split)
    return songs


def choose_spots(songs: list[tuple[str, list[int]]], tokenizer: RemiTokenizer, longest: int, n: int,
                 seed: int, after: int = 0) -> list[Spot]:
    """Non-overlapping completions with `longest` bars before them (and `after` bars after them), shuffled per
    song, taken round-robin."""
    rng = np.random.default_rng(seed)
    per_song = []
    for path, tokens in songs:
        bars = tokenizer.bar_starts(tokens)
        ats = list(range(longest, len(bars) - COMPLETION_BARS - after, COMPLETION_BARS))   # bars[at + 2] closes it
        rng.shuffle(ats)
        per_song.append([Spot(path, tokens, bars, at) for at in ats])
    chosen = []
    for r in range(max((len(s) for s in per_song), default=0)):
        chosen += [per_song[i][r] for i in rng.permutation(len(per_song)) if r < len(per_song[i])]
    return chosen[:n]


def density_fidelity(samples: list[list[int]], windows: list[Window], targets: list[int],
                     tokenizer: RemiTokenizer) -> dict:
    """How far each candidate's notes per bar lie from the density asked for."""
    ratios = [max(len(bar_notes(s, w, tokenizer)[0]) / COMPLETION_BARS, 0.5) / t
              for s, w, t in zip(samples, windows, targets)]
    return {"mean_abs_log_ratio": float(np.mean([abs(math.log(r)) for r in ratios])),
            "median_off_target": float(np.median([r - 1 for r in ratios])),
            "mean_abs_off_target": float(np.mean([abs(r - 1) for r in ratios])),
            "within_25pct": float(np.mean([abs(r - 1) <= 0.25 for r in ratios]))}


def note_overlap(a: list, b: list) -> float:
    """The share of notes two candidates have in common, by onset and pitch (of the larger): 1 for two silences."""
    if not a or not b:
        return float(not a and not b)
    common = Counter((n.start, n.pitch) for n in a) & Counter((n.start, n.pitch) for n in b)
    return sum(common.values()) / max(len(a), len(b))


def choices_report(model, tokenizer: RemiTokenizer, grammar: RemiGrammar, windows: list[Window],
                   cfg: ContextEvalConfig) -> dict:
    """CHOICES candidates a request, as the bridge asks for them: how many requests get that many distinct ones
    (no two sharing DISTINCT_BELOW of their notes), their mean pairwise note overlap, and their pitch-class overlap
    with the truth, so that neither is bought with the other."""
    asked = [w for w in windows for _ in range(CHOICES)]
    samples = model_samples(model, grammar, asked, cfg.sampling, cfg.seed, cfg.sample_batch_size,
                            per_request=CHOICES)
    distinct, pairs = [], []
    for i in range(len(windows)):
        notes = [bar_notes(s, windows[i], tokenizer)[0] for s in samples[i * CHOICES:(i + 1) * CHOICES]]
        overlaps = [note_overlap(a, b) for a, b in combinations(notes, 2)]
        distinct.append(max(overlaps) < DISTINCT_BELOW)
        pairs += overlaps
    return {"candidates": CHOICES, "distinct_below": DISTINCT_BELOW,
            "requests_all_distinct": float(np.mean(distinct)), "pairwise_note_overlap": float(np.mean(pairs)),
            "pitch_class_overlap_with_truth": continuation_metrics(samples, asked, tokenizer)["pitch_class_overlap"],
            "pitch_class_overlap_by_candidate": [continuation_metrics(samples[i::CHOICES], windows, tokenizer)
                                                 ["pitch_class_overlap"] for i in range(CHOICES)]}


def evaluate_source(model, tokenizer: RemiTokenizer, grammar: RemiGrammar, spots: list[Spot],
                    cfg: ContextEvalConfig) -> dict:
    """Every context length's NLL and sampled overlap, the copy baselines and density fidelity, for one source."""
    masked = control_ids(tokenizer)
    by_context = {}
    for bars in cfg.contexts:
        windows = [s.window(bars, grammar) for s in spots]
        targets = np.concatenate([w.completion for w in windows])
        scores = model_scores(model, windows, cfg.batch_size, tokenizer.pad_id, masked, {cfg.sampling.memory, 0.0})
        nll = nll_metrics(*scores[cfg.sampling.memory], targets, tokenizer)
        alone = nll_metrics(*scores[0.0], targets, tokenizer)
        sampled = continuation_metrics(model_samples(model, grammar, windows, cfg.sampling, cfg.seed,
                                                     cfg.sample_batch_size), windows, tokenizer)
        by_context[bars] = {"nll_per_note": nll["nll_per_note"], "nll": nll["nll"], "accuracy": nll["accuracy"],
                            "nll_per_note_model_alone": alone["nll_per_note"],
                            "pitch_class_overlap": sampled["pitch_class_overlap"],
                            "note_density_ratio_of_totals": sampled["note_density_ratio_of_totals"],
                            "exactly_2_bars": sampled["exactly_2_bars"]}
        log.info("%d bars of context: %.3f nats/note (the model alone %.3f), pitch-class overlap %.3f", bars,
                 nll["nll_per_note"], alone["nll_per_note"], sampled["pitch_class_overlap"])
    longest = [s.window(max(cfg.contexts), grammar) for s in spots]
    result_choices = choices_report(model, tokenizer, grammar, longest, cfg)
    log.info("%d candidates a request after %d bars: %.0f%% of requests all distinct, pairwise note overlap %.3f",
             CHOICES, max(cfg.contexts), 100 * result_choices["requests_all_distinct"],
             result_choices["pairwise_note_overlap"])
    windows = [s.window(min(cfg.contexts), grammar) for s in spots]
    copies = {"repeat_last_2_bars": [s.bars_back(COMPLETION_BARS) for s in spots],
              f"repeat_2_bars_{COPY_FROM_BACK}_back": [s.bars_back(COPY_FROM_BACK) for s in spots]}
    result = {"by_context_bars": by_context, "choices": result_choices,
              "copy_baselines": {name: continuation_metrics(c, windows, tokenizer)["pitch_class_overlap"]
                                 for name, c in copies.items()}}
    if tokenizer.settings.controls:
        result["density"] = density_report(model, tokenizer, grammar, [s.window(8, grammar) for s in spots], cfg)
    return result


def density_report(model, tokenizer: RemiTokenizer, grammar: RemiGrammar, windows: list[Window],
                   cfg: ContextEvalConfig) -> dict:
    """Candidates asked for the truth's notes per bar after 8 bars of context, DENSITY_DRAWS per window (seeds
    seed, seed + 1, ...): the model alone, then with the band."""
    truths = [len(bar_notes(w.completion[:-1], w, tokenizer)[0]) / COMPLETION_BARS for w in windows]
    kept = [(w, t) for w, t in zip(windows, truths) if t >= 1]     # a near-silent truth has no density to match
    windows, targets = [w for w, _ in kept], [min(round(t), MAX_DENSITY) for _, t in kept]
    report = {"windows": len(windows), "context_bars": 8, "draws": DENSITY_DRAWS}
    for name, band in (("band_off", None), ("band_on", cfg.sampling.density_band or 0.1)):
        configs = [replace(cfg.sampling, density=t, density_band=band) for t in targets]
        samples = [s for draw in range(DENSITY_DRAWS)
                   for s in model_samples(model, grammar, windows, configs, cfg.seed + draw, cfg.sample_batch_size)]
        report[name] = density_fidelity(samples, windows * DENSITY_DRAWS, targets * DENSITY_DRAWS, tokenizer)
    return report


def evaluate_contexts(cfg: ContextEvalConfig) -> dict:
    """The whole report, per source of the data's split, as one JSON-ready dict."""
    started = time.perf_counter()
    ckpt = load_checkpoint(cfg.checkpoint)
    tokenizer, grammar = ckpt.tokenizer, RemiGrammar(ckpt.tokenizer)
    prepared = TokenizerSettings.from_dict(json.loads((Path(cfg.data) / "index.json").read_text())["tokenizer"])
    own = replace(tokenizer.settings.with_controls(), fill_markers=False)   # no controls in the windows
    if prepared.with_controls() != own and not own.grows_into(prepared.with_controls()):
        raise ValueError(f"{cfg.data}: tokenized with other settings than the checkpoint {cfg.checkpoint}")
    by_token = tokenizer if prepared.with_controls() != own else None   # the data's vocabulary grew from the model's
    longest = max(cfg.contexts)
    sources = {}
    for source, songs in held_out_songs(cfg.data, cfg.split, by_token).items():
        spots = choose_spots(songs, tokenizer, longest, cfg.windows, cfg.seed)
        if not spots:
            log.warning("%s: no song of the %s split has the %d bars a window needs", source, cfg.split,
                        longest + COMPLETION_BARS + 1)
            continue
        log.info("%s: %d windows from %d of %d songs", source, len(spots), len({s.path for s in spots}), len(songs))
        sources[source] = {"songs": len(songs), "windows": len(spots), "window_songs": len({s.path for s in spots}),
                           **evaluate_source(ckpt.model, tokenizer, grammar, spots, cfg)}
        if tokenizer.fill_suffix_id is not None:   # a model that fills: the same bars with the bars after them
            gaps = choose_spots(songs, tokenizer, FILL_AFTER_BARS, cfg.windows, cfg.seed, after=FILL_AFTER_BARS)
            sources[source]["fill"] = evaluate_fill(ckpt.model, tokenizer, grammar, gaps, cfg.sampling, cfg.seed,
                                                    cfg.batch_size, cfg.sample_batch_size)
    if not sources:
        raise ValueError(f"{cfg.data}: no song of the {cfg.split} split is long enough "
                         f"({longest + COMPLETION_BARS + 1} bars)")
    return {"checkpoint": str(cfg.checkpoint), "data": cfg.data, "split": cfg.split,
            "context_bars": list(cfg.contexts), "completion_bars": COMPLETION_BARS, "targets": TARGETS,
            "nll_unit": "nats summed over the targets / the completion's notes (per note), and per token",
            "sampling": {"candidates_per_window": 1, **asdict(cfg.sampling), "seed": cfg.seed},
            "sources": sources, "seconds": round(time.perf_counter() - started, 1)}


def summary_lines(report: dict) -> list[str]:
    """The report as a few readable lines (for the log)."""
    lines = []
    for name, s in report["sources"].items():
        per = " ".join(f"{b}:{v['nll_per_note']:.2f}" for b, v in s["by_context_bars"].items())
        alone = " ".join(f"{b}:{v['nll_per_note_model_alone']:.2f}" for b, v in s["by_context_bars"].items())
        lines.append(f"{name}: nats/note by context bars {per} (the model alone {alone})")
        c = s["choices"]
        lines.append(f"{name}: {c['candidates']} candidates a request, all distinct in "
                     f"{100 * c['requests_all_distinct']:.0f}% of requests; pairwise note overlap "
                     f"{c['pairwise_note_overlap']:.3f}, with the truth {c['pitch_class_overlap_with_truth']:.3f}")
        if "fill" in s:
            f = s["fill"]
            lines.append(f"{name}: fill {f['nll_per_note']['prefix_and_suffix']:.2f} nats/note with the bars after, "
                         f"{f['nll_per_note']['prefix_only']:.2f} without (the model alone "
                         f"{f['nll_per_note_model_alone']['prefix_and_suffix']:.2f}, "
                         f"{f['nll_per_note_model_alone']['prefix_only']:.2f}); overlap " +
                         " ".join(f"{k} {v:.3f}" for k, v in f["pitch_class_overlap"].items()))
    return lines

