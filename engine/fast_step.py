"""The live decode step, fast: `RWKV7.step` exported once to ONNX and run by ONNX Runtime.

The graph is the model's own step (the equations stay written once, in engine/model.py); ONNX
Runtime runs it with far less per-operator overhead than eager PyTorch, which is what a step of a
small model costs on a CPU. The exported file is cached on disk, keyed by the weights and the
versions that made it, so only the first start of a model pays for the export (seconds).

State is kept packed (three stacked arrays) between steps, so a whole suggestion moves no tensor
in or out of PyTorch per token.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine import folders
from engine.atomic import atomic_write
from engine.model import RWKV7
from engine.state import LayerState, State
from kernels import wkv7_step

log = logging.getLogger(__name__)

CACHE_ENV = "MUSE_BRIDGE_CACHE"
MAX_BATCH = 256


def cache_folder() -> Path:
    """`$MUSE_BRIDGE_CACHE`, else the platform's cache folder (engine/folders.py)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return folders.cache_folder()


@dataclass
class PackedState:
    """A State as three float32 arrays: att_x (L, B, C), wkv (L, B, H, N, N), ffn_x (L, B, C)."""

    att_x: np.ndarray
    wkv: np.ndarray
    ffn_x: np.ndarray

    @classmethod
    def of(cls, state: State) -> "PackedState":
        def stack(name: str) -> np.ndarray:
            return np.ascontiguousarray(torch.stack([getattr(s, name) for s in state.layers]).detach().float().cpu().numpy())
        return cls(stack("att_x"), stack("wkv"), stack("ffn_x"))

    def state(self, device: torch.device | str = "cpu") -> State:
        return State([LayerState(*(torch.from_numpy(np.array(x[i])).to(device) for x in (self.att_x, self.wkv, self.ffn_x)))
                      for i in range(self.att_x.shape[0])])


class _StepGraph(torch.nn.Module):
    """RWKV7.step with the state as stacked tensors: the form that is exported."""

    def __init__(self, model: RWKV7):
        super().__init__()
        self.model = model

    def forward(self, tokens, att_x, wkv, ffn_x):
        state = State([LayerState(att_x[i], wkv[i], ffn_x[i]) for i in range(att_x.shape[0])])
        logits, state = self.model.step(tokens, state)
        return (logits, torch.stack([s.att_x for s in state.layers]), torch.stack([s.wkv for s in state.layers]),
                torch.stack([s.ffn_x for s in state.layers]))


def load_runtime() -> None:
    """Import ONNX Runtime now. Importing it holds the interpreter's lock for tens of milliseconds (45 ms measured
    here), which a live process must spend before its MIDI input opens, not on a thread beside it."""
    import onnxruntime  # noqa: F401


def model_key(model: RWKV7) -> str:
    """What the exported graph depends on: weights, config, and the exporter's versions."""
    import onnxruntime

    h = hashlib.sha256(repr(model.cfg.to_dict()).encode())
    h.update(f"torch {torch.__version__} ort {onnxruntime.__version__}".encode())
    for traced in (RWKV7, wkv7_step):   # the equations the graph was traced from
        h.update(Path(inspect.getsourcefile(traced)).read_bytes())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:24]


def export_step(model: RWKV7, path: Path) -> Path:
    """Write `model`'s step as an ONNX graph (batch size free) to `path`."""
    cfg = model.cfg
    state = model.initial_state(2)
    packed = PackedState.of(state)
    args = (torch.zeros(2, dtype=torch.long), *(torch.from_numpy(x) for x in (packed.att_x, packed.wkv, packed.ffn_x)))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    # a copy: the live model may be stepping on another thread while this one is traced
    program = torch.onnx.export(
        _StepGraph(copy.deepcopy(model)).eval().cpu(), args, dynamo=True, optimize=True, verbose=False,
        input_names=["tokens", "att_x", "wkv", "ffn_x"], output_names=["logits", "att_x_out", "wkv_out", "ffn_x_out"],
        dynamic_shapes={"tokens": {0: batch}, "att_x": {1: batch}, "wkv": {1: batch}, "ffn_x": {1: batch}})
    data = program.model_proto.SerializeToString()
    log.info("exported the %d-layer step of %d channels to %s", cfg.n_layer, cfg.n_embd, path)
    return atomic_write(path, lambda f: f.write(data))


@dataclass(frozen=True)
class ExportPace:
    """How the export shares the machine with the live threads: it runs `run_seconds`, then rests `rest_seconds`
    (suspended), in turns, so that it takes at most run / (run + rest) of one core; where the OS has no idle
    scheduling class, it runs at `niceness`."""

    run_seconds: float = 0.02
    rest_seconds: float = 0.02
    niceness: int = 10


def _lower_priority(niceness: int) -> None:
    """The export's own process: one thread, in the idle class (it gives way at once to any thread that wakes), and
    killed with the process that made it, which may have left it suspended."""
    torch.set_num_threads(1)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):   # not Linux: a lower priority where there is one, still apart
        if hasattr(os, "nice"):
            os.nice(niceness)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _export_in_child(model: RWKV7, path: Path, niceness: int, result) -> None:
    _lower_priority(niceness)
    try:
        export_step(model, path)
        result.send(None)
    except Exception as e:  # the exporter can fail in many ways: each is said to the parent, which falls back
        result.send(f"{type(e).__name__}: {e}")


class ExportStopped(RuntimeError):
    """The export's process was stopped by a signal (this program closing, or the system): nothing is wrong with it."""


def export_step_apart(model: RWKV7, path: Path, pace: ExportPace | None = None) -> Path:
    """`export_step` in a process of its own, in the idle class, and paced where `pace` is given (beside live MIDI).
    The export is tens of seconds of Python (40 s for the default model here): on a thread of the live bridge it held
    the interpreter's lock, so that clocks were counted late. Apart but unpaced it still made MIDI input wait 100 ms
    (CI's stress test, a fresh bridge): on this virtual machine, when both cores stay busy the host takes one away for
    100 ms at a time, whatever the priorities inside (a realtime probe stalled 100 ms 7 times in 30 s beside two busy
    processes, never beside one), and the idle class fills whatever the live threads leave of both. Paced, the export
    leaves a core idle at times, and twice as long. Pacing needs the export to die with this process, should this
    one die while it rests: Linux only."""
    import multiprocessing

    import psutil

    context = multiprocessing.get_context("spawn")   # no fork of a process with MIDI and JACK threads running
    receive, send = context.Pipe(duplex=False)
    niceness = (pace or ExportPace()).niceness
    process = context.Process(target=_export_in_child, args=(copy.deepcopy(model).cpu(), path, niceness, send),
                              name="muse-export", daemon=True)
    process.start()
    send.close()
    child = psutil.Process(process.pid)
    paced = pace is not None and pace.rest_seconds > 0 and sys.platform.startswith("linux")
    try:
        while not receive.poll(pace.run_seconds if paced else 0.1):
            if paced:
                try:
                    child.suspend()
                    time.sleep(pace.rest_seconds)
                    child.resume()
                except psutil.NoSuchProcess:   # it ended: the pipe says how
                    pass
        error = receive.recv()
    except EOFError:
        error = EOFError
    finally:
        if process.is_alive():
            with contextlib.suppress(psutil.NoSuchProcess):
                child.resume()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
    if error is EOFError and (process.exitcode or 0) < 0:
        raise ExportStopped(f"exporting the fast step was stopped by signal {-process.exitcode} before it finished")
    if error is EOFError:
        error = f"its process ended without a result (exit code {process.exitcode})"
    if error is not None:
        raise RuntimeError(f"exporting the fast step failed: {error}")
    return path


class FastStep:
    """Step a batch of streams on ONNX Runtime: `logits, packed = fast(tokens, packed)`."""

    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads     # a small step gains nothing from more threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.path = path
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    @staticmethod
    def cache_path(model: RWKV7, cache: Path | None = None) -> Path:
        return (cache or cache_folder()) / f"step-{model_key(model)}.onnx"

    @classmethod
    def for_model(cls, model: RWKV7, cache: Path | None = None, pace: ExportPace | None = None) -> "FastStep":
        """The model's step from the cache, exported there first if it is not yet (tens of seconds, in a process of
        its own, paced where `pace` is given: `export_step_apart`)."""
        path = cls.cache_path(model, cache)
        if not path.is_file():
            export_step_apart(model, path, pace)
        return cls(path)

    @classmethod
    def cached(cls, model: RWKV7, cache: Path | None = None) -> "FastStep | None":
        """The model's step if it is in the cache already, else None (never exports)."""
        path = cls.cache_path(model, cache)
        return cls(path) if path.is_file() else None

    def __call__(self, tokens: torch.Tensor, packed: PackedState) -> tuple[torch.Tensor, PackedState]:
        feeds = {"tokens": tokens.detach().cpu().numpy().astype(np.int64, copy=False), "att_x": packed.att_x,
                 "wkv": packed.wkv, "ffn_x": packed.ffn_x}
        with self._lock:
            logits, att_x, wkv, ffn_x = self._session.run(None, feeds)
        return torch.from_numpy(logits), PackedState(att_x, wkv, ffn_x)
