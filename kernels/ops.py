"""The public WKV-7 operator: one signature, the best available backend behind it."""
from __future__ import annotations

import logging
from typing import Literal, get_args

import torch

from kernels.wkv7_chunk import wkv7_chunk
from kernels.wkv7_cuda import CudaKernelUnavailable, load_extension, supports, wkv7_cuda
from kernels.wkv7_naive import wkv7_naive
from kernels.wkv7_step import wkv7_step

log = logging.getLogger(__name__)

Backend = Literal["auto", "cuda", "chunk", "naive"]
BACKENDS = get_args(Backend)

_fallback_told = False


def _fused_kernel_usable() -> bool:
    """Whether the fused CUDA kernel can be built here; says once, in one line, why not."""
    global _fallback_told
    try:
        load_extension()
        return True
    except CudaKernelUnavailable as err:
        if not _fallback_told:
            log.warning("%s; training and prefill on the GPU use the chunk-parallel path", err)
            _fallback_told = True
        return False


def wkv7(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    state: torch.Tensor | None = None,
    *,
    backend: Backend = "auto",
    chunk_len: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """y_t = S_t r_t with S_t = S_{t-1}(diag(w_t) + a_t b_t^T) + v_t k_t^T.

    Inputs (B, T, H, N) with w the per-step decay in (0, 1); state (B, H, N, N), rows value, columns key.
    Returns (y (B, T, H, N), final state). "auto" takes the decode form for a single step (T == 1) with a
    state, the fused CUDA kernel for CUDA inputs of head size 64 in float32, bfloat16 or float16 (float16
    computed in float32; the chunk-parallel form, with one warning, where the kernel cannot be built), and
    the chunk-parallel form elsewhere.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown wkv7 backend {backend!r}; expected one of {', '.join(map(repr, BACKENDS))}")
    if backend == "naive":
        return wkv7_naive(r, w, k, v, a, b, state)
    if backend == "cuda":
        load_extension()   # raises CudaKernelUnavailable with the reason
        return wkv7_cuda(r, w, k, v, a, b, state)
    if backend == "auto" and r.shape[1] == 1 and state is not None:
        y, s = wkv7_step(r[:, 0], w[:, 0], k[:, 0], v[:, 0], a[:, 0], b[:, 0], state)
        return y.unsqueeze(1), s
    if backend == "auto" and supports(r, state) and _fused_kernel_usable():
        return wkv7_cuda(r, w, k, v, a, b, state)
    return wkv7_chunk(r, w, k, v, a, b, state, chunk_len=chunk_len)
