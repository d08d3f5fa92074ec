"""Training throughput on the CPU: float32 against bf16 autocast (`train --bf16`), side by side in one run.

Forward + backward of the bundled model on real windows of the POP909 test songs, at B8 T512 (the first
default's windows) and B2 T2048 (long windows), alternating the two precisions round by round; the loss
of each is reported too, so a precision that changes the result shows.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from bench.results import add_threads_argument, apply_threads, write
from engine.checkpoint import load_checkpoint
from trainer.data import TokenWindows
from trainer.prepare import PrepareConfig, prepare
from trainer.train import loss_on

log = logging.getLogger("bench.training")
SONGS = Path(__file__).parents[1] / "tests" / "data" / "pop909"


def seconds_per_step(model, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> tuple[float, float]:
    """One forward + backward: its seconds and its loss."""
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    start = time.perf_counter()
    with context:
        loss = loss_on(model, x, y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start, float(loss)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--rounds", type=int, default=4)
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    apply_threads(args)

    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model.train()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = ckpt.tokenizer.settings
        prepare(PrepareConfig(SONGS, Path(tmp), validation_fraction=0.0, workers=1), settings)
        data = TokenWindows(tmp, "train")
        for batch, seq_len in ((8, 512), (2, 2048)):
            x, y = data.batch(seed=0, step=0, batch_size=batch, seq_len=seq_len, max_transpose=5)
            seconds_per_step(model, x, y, False)            # warm-up
            times, losses = {False: [], True: []}, {}
            for _ in range(args.rounds):
                for bf16 in (False, True):
                    t, losses[bf16] = seconds_per_step(model, x, y, bf16)
                    times[bf16].append(t)
            fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
            row = {"batch": batch, "seq_len": seq_len, "float32_tokens_per_s": round(batch * seq_len / fp32),
                   "bf16_tokens_per_s": round(batch * seq_len / bf16), "bf16_speedup": round(fp32 / bf16, 2),
                   "float32_loss": round(losses[False], 4), "bf16_loss": round(losses[True], 4)}
            log.info("%s", row)
            rows.append(row)
    path = write("training", {"checkpoint": ckpt.path, "model": model.cfg.to_dict(), "rounds": args.rounds,
                              "cpu_has_avx512_bf16": "avx512_bf16" in Path("/proc/cpuinfo").read_text()
                              if Path("/proc/cpuinfo").is_file() else None, "results": rows})
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
