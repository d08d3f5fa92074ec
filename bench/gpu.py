"""GPU benchmarks, side by side in one run on one GPU; writes bench/results/gpu.json with the GPU's name.

- kernel: WKV-7 forward + backward at (B, T, C) = (8, 4096, 1024), (16, 1024, 384), (32, 512, 256), head
  size 64: the fused CUDA kernel (bf16 and fp32 I/O), the chunk-parallel PyTorch form, and
  flash-linear-attention's `chunk_rwkv7` where it is installed (given log w, scale 1, its state transposed).
- train: tokens/s of a training step (AdamW, bf16 autocast) for the `small` and `base` sizes, fused vs chunk.
- live: ms per decode step for B = 1 and 8, eager `RWKV7.step` vs the step replayed from a CUDA graph,
  and suggest latency for 4 candidates x 2 bars after a 16-bar POP909 prompt, for the default model and
  a `small` one.

`--smoke` runs every part at toy sizes on whatever device there is (the CPU: no fused kernel, no fla, the
static-buffer step stepped eagerly), so the script itself can be checked without a GPU.
"""
from __future__ import annotations

import argparse
import logging
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.kernels import inputs
from bench.results import median_seconds, write
from engine.checkpoint import load_checkpoint
from engine.graph_step import GraphStep
from engine.midi_file import read_phrase
from engine.model import RWKV7, config_for_size
from engine.sampler import SamplingConfig
from engine.session import Session
from kernels import CudaKernelUnavailable, wkv7_chunk, wkv7_cuda
from kernels.wkv7_cuda import load_extension

log = logging.getLogger("bench.gpu")
PROMPT = Path(__file__).parents[1] / "tests" / "data" / "pop909" / "001.mid"
KERNEL_SHAPES = [(8, 4096, 1024), (16, 1024, 384), (32, 512, 256)]   # (B, T, C)
SMOKE_SHAPES = [(2, 40, 128)]


def median_ms(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of `fn()`: CUDA events on a GPU, the wall clock elsewhere."""
    if device.type != "cuda":
        return 1000 * median_seconds(fn, repeats, warmup)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def fla_chunk_rwkv7():
    """flash-linear-attention's chunk_rwkv7 behind our signature, or None where fla is not installed."""
    try:
        from fla.ops.rwkv7 import chunk_rwkv7
    except ImportError:
        return None

    def run(r, w, k, v, a, b, state=None):
        # fla takes the log of the decay and keeps its state as (key, value): ours transposed
        y, s = chunk_rwkv7(r, w.float().log().to(r.dtype), k, v, a, b, scale=1.0,
                           initial_state=None if state is None else state.transpose(-1, -2).contiguous(),
                           output_final_state=True)
        return y, s.transpose(-1, -2)
    return run


def fwd_bwd(fn, xs: list[torch.Tensor]):
    def run():
        leaves = [x.detach().requires_grad_() for x in xs]
        y, s = fn(*leaves)
        torch.autograd.backward((y, s), (torch.ones_like(y), torch.ones_like(s)))
    return run


def relative_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.double() - ref.double()).norm() / ref.double().norm())


def bench_kernels(shapes, device: torch.device, repeats: int) -> dict:
    try:
        load_extension()
        fused_why_not = None
    except CudaKernelUnavailable as err:
        fused_why_not = str(err)
    fla = fla_chunk_rwkv7() if device.type == "cuda" else None
    rows = []
    for b, t, c in shapes:
        xs = [x.detach().to(device) for x in inputs(b, t, c // 64, 64, torch.float32)]
        bf16 = [x.bfloat16() for x in xs]
        row = {"B": b, "T": t, "C": c, "H": c // 64}
        candidates = {"chunk_fp32": (wkv7_chunk, xs)}
        if fused_why_not is None:
            candidates["fused_bf16"] = (wkv7_cuda, bf16)
            candidates["fused_bf16_fp32_decay"] = (wkv7_cuda, [x if i == 1 else x.bfloat16() for i, x in enumerate(xs)])
            candidates["fused_fp32"] = (wkv7_cuda, xs)
        if fla is not None:
            candidates["fla_chunk_bf16"] = (fla, bf16)
        for name, (fn, args) in candidates.items():
            try:
                row[f"{name}_ms"] = round(median_ms(fwd_bwd(fn, args), device, repeats), 3)
            except torch.OutOfMemoryError:
                row[f"{name}_ms"] = "out of memory"
            if device.type == "cuda":
                torch.cuda.empty_cache()
        if fused_why_not is None:
            y_ref, s_ref = wkv7_chunk(*xs)
            y, s = wkv7_cuda(*xs)
            row["fused_fp32_vs_chunk_relative_error"] = {"y": relative_error(y, y_ref), "state": relative_error(s, s_ref)}
            if fla is not None:   # the conventions check: fla and ours compute the same function
                y, s = fla(*bf16)
                row["fla_vs_chunk_relative_error"] = {"y": relative_error(y, y_ref), "state": relative_error(s, s_ref)}
        for name in ("chunk_fp32", "fla_chunk_bf16"):
            ours = row.get("fused_bf16_ms")
            if isinstance(ours, float) and isinstance(row.get(f"{name}_ms"), float):
                row[f"fused_bf16_speedup_over_{name}"] = round(row[f"{name}_ms"] / ours, 2)
        log.info("kernel %s", row)
        rows.append(row)
    return {"fused_unavailable": fused_why_not, "fla_installed": fla is not None, "fwd_bwd": rows}


def bench_training(sizes, device: torch.device, batch: int, seq_len: int, steps: int) -> list[dict]:
    rows = []
    for size in sizes:
        torch.manual_seed(0)
        model = RWKV7(config_for_size(size, 389)).to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
        tokens = torch.randint(0, 389, (batch, seq_len + 1), device=device)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        row = {"size": size, "parameters": sum(p.numel() for p in model.parameters()), "batch": batch,
               "seq_len": seq_len}

        def step():
            with autocast:
                logits, _ = model(tokens[:, :-1])
                loss = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for backend in ("auto", "chunk"):
            model.wkv_backend = backend
            ms = median_ms(step, device, steps)
            row[f"{backend}_tokens_per_s"] = round(batch * seq_len / (ms / 1000))
        row["auto_speedup_over_chunk"] = round(row["auto_tokens_per_s"] / row["chunk_tokens_per_s"], 2)
        log.info("train %s", row)
        rows.append(row)
        del model, opt
    return rows


def bench_live(models: dict[str, RWKV7], tokenizer, device: torch.device, repeats: int, prompt_bars: int) -> list[dict]:
    phrase = read_phrase(PROMPT, tokenizer.settings)
    rows = []
    for name, model in models.items():
        model.eval()
        row = {"model": name, "config": model.cfg.to_dict()}
        for batch in (1, 8):
            tokens = torch.full((batch,), 5, dtype=torch.long, device=device)
            state = model.initial_state(batch)

            def eager():
                with torch.inference_mode():
                    model.step(tokens, state)
            graph = GraphStep(model, batch)
            row[f"step_B{batch}_eager_ms"] = round(median_ms(eager, device, 50), 3)
            row[f"step_B{batch}_graph_ms"] = round(median_ms(lambda: graph(tokens), device, 50), 3)
        for graphs in (False, True):
            session, _ = Session.for_phrase(model, tokenizer, phrase, bars=prompt_bars, graph_steps=graphs)
            runs = [session.suggest(4, 2, SamplingConfig(), seed=seed) for seed in range(repeats + 1)][1:]
            label = "graph" if graphs else "eager"
            row[f"suggest_4x2_{label}_median_ms"] = round(1000 * statistics.median(r.seconds for r in runs), 1)
            row[f"suggest_4x2_{label}_max_ms"] = round(1000 * max(r.seconds for r in runs), 1)
            row["suggest_median_tokens_generated"] = statistics.median(r.tokens_generated for r in runs)
        log.info("live %s", row)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="toy sizes on any device (checks the script)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--parts", default="kernel,train,live", help="comma-separated: kernel, train, live")
    parser.add_argument("--out", default="gpu", help="results name under bench/results/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        parser.error("no CUDA device: run with --smoke to check the script on the CPU")
    parts = set(args.parts.split(","))
    results: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "smoke": args.smoke}
    if device.type == "cuda":
        results["cuda"] = torch.version.cuda
    repeats = 2 if args.smoke else args.repeats
    if "kernel" in parts:
        results["kernel"] = bench_kernels(SMOKE_SHAPES if args.smoke else KERNEL_SHAPES, device, repeats)
    if "train" in parts:
        results["train"] = bench_training(["micro"] if args.smoke else ["small", "base"], device,
                                          batch=2 if args.smoke else 16, seq_len=32 if args.smoke else 512,
                                          steps=2 if args.smoke else 10)
    if "live" in parts:
        ckpt = load_checkpoint(None, device=str(device))
        models = {"default": ckpt.model}
        if not args.smoke:
            torch.manual_seed(0)
            models["small (random weights)"] = RWKV7(config_for_size("small", ckpt.tokenizer.vocab_size)).to(device)
        results["live"] = bench_live(models, ckpt.tokenizer, device, repeats, prompt_bars=4 if args.smoke else 16)
    path = write(args.out, results)
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
