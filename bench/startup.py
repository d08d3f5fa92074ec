"""What the fast step's export at a first start does to the live threads: on a thread of the bridge, or apart.

At the first start of a model the bridge exports its decode step to ONNX (engine/fast_step.py), seconds of
Python. Meanwhile the MIDI input thread must read every message within a millisecond or two, and the worker
measures the generation rate that plans where candidates start. This runs the export both ways, side by side
in one process, each into an empty cache:

- `thread`: `export_step` on a thread of this process, as the bridge did;
- `apart`: `export_step_apart`, a process of its own at a lower priority, as it does now;

and meanwhile a thread that polls as the MIDI input thread does (sleep 1 ms, look at the time) records how late
each look came, and the worker's start-up measurement (one bar of K candidates from the start) is timed.

    python -m bench.startup [--checkpoint CKPT] [--rounds 2]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from bench.results import write
from engine.checkpoint import load_checkpoint
from engine.fast_step import FastStep, export_step, export_step_apart
from engine.sampler import SamplingConfig
from engine.session import Session

log = logging.getLogger(__name__)

POLL_SECONDS = 0.001   # as muse_bridge/ports.py:PolledInput


def _poll_lateness(stop: threading.Event, lateness: list[float]) -> None:
    """Look every POLL_SECONDS, as the MIDI input thread does; record how much later than asked each look came."""
    while not stop.is_set():
        asked = time.perf_counter()
        time.sleep(POLL_SECONDS)
        lateness.append(time.perf_counter() - asked - POLL_SECONDS)


def measure(model, tokenizer, way: str, candidates: int = 4) -> dict:
    """One export `way` ("thread" or "apart") with the polling thread and the start-up rate measured beside it."""
    cache = Path(tempfile.mkdtemp())
    path = FastStep.cache_path(model, cache)
    stop, lateness = threading.Event(), []
    poller = threading.Thread(target=_poll_lateness, args=(stop, lateness), daemon=True)
    exporter = threading.Thread(target=export_step if way == "thread" else export_step_apart, args=(model, path))
    session = Session(model, tokenizer)
    poller.start()
    started = time.perf_counter()
    exporter.start()
    time.sleep(0.5)                      # the export under way, as at the bridge's start
    rate_started = time.perf_counter()
    session.suggest(candidates, 1, SamplingConfig(), seed=0)
    rate = time.perf_counter() - rate_started
    exporter.join()
    export_seconds = time.perf_counter() - started
    stop.set()
    poller.join()
    ms = sorted(1000 * x for x in lateness)
    return {"way": way, "export_seconds": round(export_seconds, 2), "looks": len(ms),
            "poll_late_ms_p50": round(statistics.median(ms), 2), "poll_late_ms_p99": round(ms[int(0.99 * len(ms))], 2),
            "poll_late_ms_max": round(ms[-1], 2), "looks_over_50_ms_late": sum(1 for x in ms if x > 50),
            "start_up_rate_seconds_per_bar": round(rate, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="default: the bundled model")
    parser.add_argument("--rounds", type=int, default=2, help="each way this many times, interleaved")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)   # as the bridge's worker steps (muse_bridge/worker.py)
    ckpt = load_checkpoint(args.checkpoint)
    # the rate alone first (nothing beside it), for scale
    session = Session(ckpt.model, ckpt.tokenizer)
    alone = time.perf_counter()
    session.suggest(4, 1, SamplingConfig(), seed=0)
    alone = time.perf_counter() - alone
    rows = []
    for _ in range(args.rounds):
        for way in ("thread", "apart"):
            rows.append(measure(ckpt.model, ckpt.tokenizer, way))
            log.info("%s", rows[-1])
    path = write("startup", {"checkpoint": str(ckpt.path), "start_up_rate_alone_seconds_per_bar": round(alone, 2),
                             "rows": rows})
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
