"""WKV-7 throughput: chunk-parallel vs the naive recurrence, forward + backward, side by side in one run."""
from __future__ import annotations

import argparse
import logging

import torch
import torch.nn.functional as F

from bench.results import add_threads_argument, apply_threads, median_seconds, write
from kernels import wkv7_chunk, wkv7_naive, wkv7_step

log = logging.getLogger("bench.kernels")

SHAPES = [(1, 256, 4, 64), (4, 512, 4, 64), (8, 512, 3, 64)]   # (B, T, H, N)


def inputs(b: int, t: int, h: int, n: int, dtype: torch.dtype) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    r, k, v = (torch.randn(b, t, h, n, generator=g) for _ in range(3))
    w = 0.545 + 0.455 * torch.rand(b, t, h, n, generator=g)
    kk = F.normalize(torch.randn(b, t, h, n, generator=g), dim=-1)
    iclr = torch.rand(b, t, h, n, generator=g)
    return [x.to(dtype).requires_grad_() for x in (r, w, k, v, -kk, kk * iclr)]


def forward_backward(fn, xs: list[torch.Tensor]) -> None:
    y, s = fn(*xs)
    (y.sum() + s.sum()).backward()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    apply_threads(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    for b, t, h, n in SHAPES:
        xs32 = inputs(b, t, h, n, torch.float32)
        chunk_s = median_seconds(lambda: forward_backward(wkv7_chunk, xs32), args.repeats)
        naive_s = median_seconds(lambda: forward_backward(wkv7_naive, xs32), 1, warmup=0)
        with torch.no_grad():
            state = torch.zeros(b, h, n, n)
            step_x = [x[:, 0].detach() for x in xs32]
            step_s = median_seconds(lambda: wkv7_step(*step_x, state), 20)
        tokens = b * t
        row = {"B": b, "T": t, "H": h, "N": n,
               "chunk_fwd_bwd_tokens_per_s": tokens / chunk_s, "naive_fwd_bwd_tokens_per_s": tokens / naive_s,
               "chunk_speedup_over_naive": naive_s / chunk_s, "decode_step_streams_per_s": b / step_s}
        log.info("%s", row)
        rows.append(row)
    path = write("kernels", {"note": "float32 inputs; the naive reference computes in float64 by design",
                             "results": rows})
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
