"""Decode step and suggest latency with the bundled model, PyTorch step and fast step side by side in one run.

- step: ms per step of K streams (K = 1, 4, 8), `RWKV7.step` in eager PyTorch vs the fast step
  (the same step exported to ONNX Runtime), interleaved so both see the same machine load.
- suggest: K candidates of N = 2 bars after a 16-bar POP909 prompt, with each step.
- prefill: prompt tokens per second of the chunk-parallel forward (a whole song, as `suggest` feeds it).
- with `--baseline CKPT`: the fast step at K = 4 and suggest with K = 4, for this checkpoint and the
  baseline side by side, interleaved (a new default against the one it replaces).
- fill (a checkpoint that fills): K = 4 candidates of 2 bars for a gap after 10 bars, reading 8 bars after it
  and as many as a fill reads (FILL_AFTER_BARS), beside suggest's K = 4 x 2 bars after the same 10 bars,
  interleaved, fast step.
- memory: suggest's K = 4 x 2 bars after the prompt with the song memory at its default and off, the same seeds,
  interleaved, fast step (what the memory costs per token generated); the same for top-p by kind against top-p
  over all tokens at once (SamplingConfig.top_p_by_kind), and (a model with bar controls) for a density asked
  for with the band's pull toward it against the band alone (SamplingConfig.density_pull).
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import torch

from bench.results import add_threads_argument, apply_threads, write
from engine.checkpoint import load_checkpoint
from engine.fast_step import FastStep, PackedState
from engine.midi_file import read_phrase
from engine.sampler import SamplingConfig
from engine.session import Session
from engine.tokenizer import FILL_AFTER_BARS

log = logging.getLogger("bench.suggest")
PROMPT = Path(__file__).parents[1] / "tests" / "data" / "pop909" / "001.mid"


def step_ms(model, fast: FastStep, k: int, steps: int, rounds: int) -> dict:
    """Median ms per step over `rounds` alternating runs of `steps` steps each."""
    tokens = torch.full((k,), 5, dtype=torch.long)
    eager, onnx = [], []
    for _ in range(rounds):
        state = model.initial_state(k)
        with torch.inference_mode():
            start = time.perf_counter()
            for _ in range(steps):
                _, state = model.step(tokens, state)
            eager.append((time.perf_counter() - start) / steps)
        packed = PackedState.of(model.initial_state(k))
        start = time.perf_counter()
        for _ in range(steps):
            _, packed = fast(tokens, packed)
        onnx.append((time.perf_counter() - start) / steps)
    e, f = statistics.median(eager), statistics.median(onnx)
    return {"K": k, "pytorch_ms": round(1000 * e, 3), "fast_ms": round(1000 * f, 3), "speedup": round(e / f, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--bars", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompt-bars", type=int, default=16)
    parser.add_argument("--baseline", default=None, help="a checkpoint to time side by side with --checkpoint")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    apply_threads(args)

    ckpt = load_checkpoint(args.checkpoint)
    start = time.perf_counter()
    fast = FastStep.for_model(ckpt.model)
    fast_ready = time.perf_counter() - start
    phrase = read_phrase(PROMPT, ckpt.tokenizer.settings)
    tokens = ckpt.tokenizer.encode(phrase)
    start = time.perf_counter()
    Session(ckpt.model, ckpt.tokenizer).feed(tokens)
    prefill = {"tokens": len(tokens), "seconds": round(time.perf_counter() - start, 3),
               "tokens_per_s": round(len(tokens) / (time.perf_counter() - start))}
    log.info("prefill %s", prefill)

    steps = [step_ms(ckpt.model, fast, k, steps=100, rounds=5) for k in (1, 4, 8)]
    for row in steps:
        log.info("step %s", row)

    session, prompt = Session.for_phrase(ckpt.model, ckpt.tokenizer, phrase, bars=args.prompt_bars)
    rows = []
    for k in (1, 4, 8):
        runs = {"pytorch": [], "fast": []}
        for seed in range(args.repeats):   # the same seeds for both, interleaved
            for name, step in (("pytorch", None), ("fast", fast)):
                session.fast_step = step
                runs[name].append(session.suggest(k, args.bars, SamplingConfig(), seed=seed))
        row = {"K": k, "bars": args.bars}
        for name, done in runs.items():
            row[f"{name}_median_seconds"] = round(statistics.median(r.seconds for r in done), 3)
            row[f"{name}_max_seconds"] = round(max(r.seconds for r in done), 3)
        row["median_tokens_generated"] = statistics.median(r.tokens_generated for r in runs["fast"])
        row["same_candidates"] = all([c.tokens for c in a.candidates] == [c.tokens for c in b.candidates]
                                     for a, b in zip(runs["pytorch"], runs["fast"]))
        log.info("suggest %s", row)
        rows.append(row)
    memory = {"memory": SamplingConfig().memory, **configs_side_by_side(
        session, fast, args, {"memory": SamplingConfig(), "none": SamplingConfig(memory=0.0)})}
    by_kind = configs_side_by_side(session, fast, args, {"by_kind": SamplingConfig(),
                                                         "whole": SamplingConfig(top_p_by_kind=False)})
    pull = None if not ckpt.tokenizer.settings.controls else configs_side_by_side(
        session, fast, args, {"pull": SamplingConfig(density=12), "band_alone": SamplingConfig(density=12, density_pull=0.0)})
    session.fast_step = None
    side_by_side = None if args.baseline is None else against_baseline(ckpt, fast, args)
    fill = None if ckpt.tokenizer.fill_suffix_id is None else fill_beside_suggest(ckpt, fast, tokens, args)
    path = write("suggest", {"checkpoint": ckpt.path, "model": ckpt.model.cfg.to_dict(), "prompt": PROMPT.name,
                             "prompt_tokens": len(prompt), "fast_step_ready_seconds": round(fast_ready, 2),
                             "prefill_whole_song": prefill, "step": steps, "results": rows,
                             "side_by_side": side_by_side, "fill_beside_suggest": fill,
                             "memory_beside_none": memory, "top_p_by_kind_beside_whole": by_kind,
                             "density_pull_beside_band_alone": pull})
    log.info("wrote %s", path)


def against_baseline(ckpt, fast: FastStep, args: argparse.Namespace, k: int = 4) -> dict:
    """The fast step and suggest (K = 4) of the checkpoint and of --baseline, interleaved round by round."""
    base = load_checkpoint(args.baseline)
    models = {"checkpoint": (ckpt, fast), "baseline": (base, FastStep.for_model(base.model))}
    sessions = {}
    for name, (c, f) in models.items():
        session, _ = Session.for_phrase(c.model, c.tokenizer, read_phrase(PROMPT, c.tokenizer.settings),
                                        bars=args.prompt_bars)
        session.fast_step = f
        sessions[name] = session
    step = {name: [] for name in models}
    suggest = {name: [] for name in models}
    for seed in range(args.repeats):
        for name, (c, f) in models.items():
            step[name].append(step_ms(c.model, f, k, steps=100, rounds=1)["fast_ms"])
            suggest[name].append(sessions[name].suggest(k, args.bars, SamplingConfig(), seed=seed))
    out = {"K": k, "bars": args.bars, "baseline_checkpoint": str(args.baseline)}
    for name in models:   # the candidates differ: seconds per token generated compares the work itself
        out[name] = {"fast_step_ms_median": round(statistics.median(step[name]), 3),
                     "suggest_seconds_median": round(statistics.median(r.seconds for r in suggest[name]), 3),
                     "tokens_generated_median": statistics.median(r.tokens_generated for r in suggest[name]),
                     "suggest_ms_per_token_median": round(statistics.median(
                         1000 * r.seconds / r.tokens_generated for r in suggest[name]), 3)}
    out["step_ratio"] = round(out["checkpoint"]["fast_step_ms_median"] / out["baseline"]["fast_step_ms_median"], 3)
    out["suggest_ratio"] = round(out["checkpoint"]["suggest_seconds_median"]
                                 / out["baseline"]["suggest_seconds_median"], 3)
    out["suggest_per_token_ratio"] = round(out["checkpoint"]["suggest_ms_per_token_median"]
                                           / out["baseline"]["suggest_ms_per_token_median"], 3)
    log.info("side by side %s", out)
    return out


def configs_side_by_side(session: Session, fast: FastStep, args: argparse.Namespace,
                         configs: dict[str, SamplingConfig], k: int = 4) -> dict:
    """Suggest (K x 2 bars after the prompt, fast step) with each of two sampling configs, the same seeds,
    interleaved: what the first costs per token generated against the second."""
    session.fast_step = fast
    runs = {name: [] for name in configs}
    for seed in range(args.repeats):
        for name, sampling in configs.items():
            runs[name].append(session.suggest(k, args.bars, sampling, seed=seed))
    out = {"K": k, "bars": args.bars}
    for name, done in runs.items():
        out[f"{name}_seconds_median"] = round(statistics.median(r.seconds for r in done), 3)
        out[f"{name}_ms_per_token_median"] = round(statistics.median(1000 * r.seconds / r.tokens_generated
                                                                     for r in done), 3)
    first, second = configs
    out["ms_per_token_ratio"] = round(out[f"{first}_ms_per_token_median"] / out[f"{second}_ms_per_token_median"], 3)
    log.info("%s beside %s %s", first, second, out)
    return out


def fill_beside_suggest(ckpt, fast: FastStep, tokens: list[int], args: argparse.Namespace, k: int = 4,
                        before: int = 10) -> list[dict]:
    """Fill (K x 2 bars between `before` bars and 8, then FILL_AFTER_BARS, bars after the gap, read from the
    start as the live Filler reads them) and suggest (K x 2 bars after the same `before` bars, held in the
    state), the same seeds, interleaved; fast step."""
    starts = ckpt.tokenizer.bar_starts(tokens) + [len(tokens)]
    session = Session(ckpt.model, ckpt.tokenizer)
    session.feed(tokens[:starts[before]])
    session.fast_step = fast
    prefix, rows = tokens[:starts[before]], []
    for after in (8, FILL_AFTER_BARS):
        suffix = tokens[starts[before + args.bars]:starts[min(before + args.bars + after, len(starts) - 1)]]
        runs = {"fill": [], "suggest": []}
        for seed in range(args.repeats):
            runs["fill"].append(session.fill(k, args.bars, prefix, suffix, SamplingConfig(), seed=seed).seconds)
            runs["suggest"].append(session.suggest(k, args.bars, SamplingConfig(), seed=seed).seconds)
        out = {"K": k, "bars": args.bars, "bars_before": before, "bars_after": after, "suffix_tokens": len(suffix)}
        out.update({f"{name}_seconds_median": round(statistics.median(r), 3) for name, r in runs.items()})
        out["fill_over_suggest"] = round(out["fill_seconds_median"] / out["suggest_seconds_median"], 3)
        log.info("fill beside suggest %s", out)
        rows.append(out)
    return rows


if __name__ == "__main__":
    main()
