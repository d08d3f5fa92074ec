"""The fused CUDA WKV-7 forward and backward (kernels/cuda/wkv7.cu): the GPU training and prefill path.

Built on first use by torch's extension builder with ninja (about a minute, once: torch caches it under
`$TORCH_EXTENSIONS_DIR`, by default ~/.cache/torch_extensions, and rebuilds only when a source changes).
Head size 64; float32 inputs run in float32 ("fp32 mode"), bfloat16 inputs keep bfloat16 in and out with
float32 state and accumulation, and a float32 decay may sit beside bfloat16 inputs (a decay near 1 needs
its precision). The backward rebuilds earlier states by dividing by w within 16 steps of a saved state, so
it expects w bounded away from 0, as RWKV-7's decay is (w > 0.545).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Callable, Mapping

import torch

log = logging.getLogger(__name__)

SOURCES = Path(__file__).parent / "cuda"
HEAD_SIZE = 64
CHECK_ARCHS = ("80", "90")   # what the compile check builds for: Ampere and Hopper


class CudaKernelUnavailable(RuntimeError):
    """The fused kernel cannot run here; the message says why (no GPU, no nvcc, no ninja, a failed build)."""


_lock = threading.Lock()
_module = None
_failure: str | None = None


def find_nvcc(platform: str | None = None, env: Mapping[str, str] = os.environ,
              which: Callable[[str], str | None] = shutil.which) -> Path | None:
    """The CUDA compiler: `bin/nvcc` (`bin\\nvcc.exe` on Windows) under $CUDA_HOME or $CUDA_PATH (the CUDA
    installer's variable on Windows), else the one on PATH, else under torch's guess of the toolkit."""
    windows = (platform or sys.platform) == "win32"
    name = "nvcc.exe" if windows else "nvcc"
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        if env.get(variable) and (Path(env[variable]) / "bin" / name).is_file():
            return Path(env[variable]) / "bin" / name
    on_path = which(name)
    if on_path:
        return Path(on_path)
    from torch.utils.cpp_extension import CUDA_HOME
    guess = Path(CUDA_HOME) / "bin" / name if CUDA_HOME else None
    return guess if guess is not None and guess.is_file() else None


def missing_host_compiler(platform: str | None = None, which: Callable[[str], str | None] = shutil.which) -> str | None:
    """What to do when the C++ compiler torch's extension builder needs is missing (MSVC's cl.exe on Windows)."""
    if (platform or sys.platform) == "win32" and which("cl") is None:
        return ("MSVC's cl.exe was not found: start Muse Bridge from a Developer Command Prompt for Visual Studio "
                "(x64 Native Tools), or install Visual Studio's Build Tools with the C++ workload")
    return None


def _why_not_buildable(platform: str | None = None, env: Mapping[str, str] = os.environ,
                       which: Callable[[str], str | None] = shutil.which, cuda: bool | None = None) -> str | None:
    """Why the kernel cannot be built here (None: it can); `cuda` stands for a CUDA build with a device."""
    from torch.utils.cpp_extension import is_ninja_available

    if cuda is None:
        if torch.version.cuda is None:
            return f"this PyTorch ({torch.__version__}) is a CPU build"
        if not torch.cuda.is_available():
            return "no CUDA device is visible"
    elif not cuda:
        return "no CUDA device is visible"
    nvcc = find_nvcc(platform, env, which)
    if nvcc is None:
        return "nvcc was not found (set CUDA_HOME or CUDA_PATH to the CUDA toolkit, or put nvcc on PATH)"
    compiler = missing_host_compiler(platform, which)
    if compiler is not None:
        return compiler
    if not is_ninja_available():
        return "ninja was not found (pip install ninja)"
    return None


def load_extension():
    """The compiled extension, built on the first call; raises CudaKernelUnavailable naming the reason."""
    global _module, _failure
    with _lock:
        if _module is not None:
            return _module
        if _failure is None:
            _failure = _why_not_buildable()
        if _failure is None:
            from torch.utils.cpp_extension import load

            log.info("loading the fused CUDA WKV-7 kernel (built on the first use, about a minute, then cached)")
            try:
                _module = load(name=f"muse_bridge_wkv7_n{HEAD_SIZE}",
                               sources=[str(SOURCES / "wkv7_binding.cpp"), str(SOURCES / "wkv7.cu")],
                               extra_cflags=["-O3"], extra_cuda_cflags=["-O3", "-Xptxas", "-O3"], verbose=False)
            except Exception as err:  # noqa: BLE001 - any build failure means: use the chunk-parallel path
                log.debug("the fused CUDA WKV-7 kernel's build failed:\n%s", err)
                lines = [line for line in str(err).splitlines() if line.strip()]
                _failure = f"its build failed ({lines[-1] if lines else type(err).__name__})"
        if _module is None:
            raise CudaKernelUnavailable(f"the fused CUDA WKV-7 kernel is unavailable: {_failure}")
        return _module


def supports(r: torch.Tensor, state: torch.Tensor | None) -> bool:
    """Whether inputs of this kind can take the fused kernel (device, head size, dtype), built or not."""
    return (r.is_cuda and r.shape[-1] == HEAD_SIZE and r.dtype in (torch.float32, torch.bfloat16, torch.float16)
            and (state is None or state.is_cuda))


def _stream(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream


class _WKV7(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r, w, k, v, a, b, state):
        ext = load_extension()
        save = any(ctx.needs_input_grad)
        with torch.cuda.device(r.device):
            y, s_out, saved_sa, checkpoints = ext.forward(r, w, k, v, a, b, state, save, _stream(r.device))
        if save:
            ctx.save_for_backward(r, w, k, v, a, b, saved_sa, checkpoints, s_out)
        ctx.with_state = state is not None
        return y, s_out

    @staticmethod
    def backward(ctx, dy, ds):
        r, w, k, v, a, b, saved_sa, checkpoints, s_out = ctx.saved_tensors
        dy = r.new_zeros(r.shape) if dy is None else dy.to(r.dtype).contiguous()
        ds = None if ds is None else ds.float().contiguous()
        with torch.cuda.device(r.device):
            dr, dw, dk, dv, da, db, ds0 = load_extension().backward(
                r, w, k, v, a, b, saved_sa, checkpoints, s_out, dy, ds, _stream(r.device))
        return dr, dw, dk, dv, da, db, ds0 if ctx.with_state else None


def wkv7_cuda(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """WKV-7 over (B, T, H, 64) CUDA inputs with optional (B, H, 64, 64) state, differentiable.

    bfloat16 I/O when r, k, v, a and b are all bfloat16 (w stays float32 unless it is bfloat16 too),
    float32 otherwise. Returns (y in r's dtype, final state in float32).
    """
    out_dtype = r.dtype
    io = torch.bfloat16 if all(x.dtype == torch.bfloat16 for x in (r, k, v, a, b)) else torch.float32
    decay = torch.bfloat16 if io == torch.bfloat16 and w.dtype == torch.bfloat16 else torch.float32
    r, k, v, a, b = (x.to(io).contiguous() for x in (r, k, v, a, b))
    w = w.to(decay).contiguous()
    state = None if state is None else state.float().contiguous()
    batch, steps, heads, n = r.shape
    if steps == 0:
        s = r.new_zeros(batch, heads, n, n, dtype=torch.float32) if state is None else state
        return r.new_zeros(batch, 0, heads, n, dtype=out_dtype), s
    y, s = _WKV7.apply(r, w, k, v, a, b, state)
    return y.to(out_dtype), s


def compile_check(out_dir: Path, archs: tuple[str, ...] = CHECK_ARCHS) -> list[str]:
    """Compile both sources without a GPU (nvcc for the kernels, g++ against PyTorch's headers for the
    binding), as CI does so that a broken kernel cannot land. Returns ptxas's resource report lines;
    raises RuntimeError with the compiler's output on a failure."""
    from torch.utils.cpp_extension import include_paths

    nvcc = find_nvcc()
    if nvcc is None:
        raise RuntimeError("nvcc was not found: install the CUDA toolkit, or set CUDA_HOME or CUDA_PATH")
    out_dir.mkdir(parents=True, exist_ok=True)
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    kernel = [str(nvcc), "-O3", "-std=c++17", *gencode, "-Xptxas", "-v", "-c", str(SOURCES / "wkv7.cu"),
              "-o", str(out_dir / "wkv7.o")]
    binding = ["g++", "-std=c++20", "-fsyntax-only", "-DTORCH_EXTENSION_NAME=wkv7_check",
               *(f"-I{p}" for p in include_paths()), f"-I{sysconfig.get_paths()['include']}",
               str(SOURCES / "wkv7_binding.cpp")]
    report = []
    for source, cmd in (("wkv7.cu", kernel), ("wkv7_binding.cpp", binding)):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} failed on kernels/cuda/{source}:\n{done.stderr[-4000:]}")
        report += [line.strip() for line in done.stderr.splitlines() if "registers" in line or "spill" in line]
    return report


if __name__ == "__main__":  # python -m kernels.wkv7_cuda OUT_DIR: the compile check, as CI runs it
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for line in compile_check(Path(sys.argv[1] if len(sys.argv) > 1 else "build/wkv7-check")):
        log.info("%s", line)
