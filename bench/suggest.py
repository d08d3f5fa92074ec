"""Suggest latency with the bundled model: K = 1, 4, 8 candidates of N = 2 bars after a real POP909 prompt."""
from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

from bench.results import write
from engine.checkpoint import load_checkpoint
from engine.sampler import SamplingConfig
from engine.session import Session

log = logging.getLogger("bench.suggest")
PROMPT = Path(__file__).parents[1] / "tests" / "data" / "pop909" / "001.mid"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--bars", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt-bars", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    ckpt = load_checkpoint(args.checkpoint)
    tokens = ckpt.tokenizer.encode_file(PROMPT)
    bars = [i for i, t in enumerate(tokens) if t == ckpt.tokenizer.bar_id]
    prompt = tokens[: bars[args.prompt_bars]] if len(bars) > args.prompt_bars else tokens
    session = Session(ckpt.model, ckpt.tokenizer)
    start = time.perf_counter()
    session.feed(prompt)
    prefill = time.perf_counter() - start

    rows = []
    for k in (1, 4, 8):
        runs = [session.suggest(k, args.bars, SamplingConfig(), seed=seed) for seed in range(args.repeats)]
        row = {"K": k, "bars": args.bars,
               "median_seconds": statistics.median(r.seconds for r in runs),
               "median_tokens_generated": statistics.median(r.tokens_generated for r in runs),
               "tokens_per_s": sum(r.tokens_generated for r in runs) / sum(r.seconds for r in runs)}
        log.info("%s", row)
        rows.append(row)
    path = write("suggest", {"checkpoint": ckpt.path, "model": ckpt.model.cfg.to_dict(), "prompt": PROMPT.name,
                             "prompt_tokens": len(prompt), "prefill_seconds": prefill, "results": rows})
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
