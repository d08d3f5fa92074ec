"""The public WKV-7 operator: one signature, the best available backend behind it."""
from __future__ import annotations

from typing import Literal

import torch

from kernels.wkv7_chunk import wkv7_chunk
from kernels.wkv7_naive import wkv7_naive
from kernels.wkv7_step import wkv7_step

Backend = Literal["auto", "chunk", "naive"]


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
    Returns (y (B, T, H, N), final state). A single step (T == 1) with a state takes the decode form.
    """
    if backend == "naive":
        return wkv7_naive(r, w, k, v, a, b, state)
    if backend not in ("auto", "chunk"):
        raise ValueError(f"unknown wkv7 backend {backend!r}; expected 'auto', 'chunk' or 'naive'")
    if backend == "auto" and r.shape[1] == 1 and state is not None:
        y, s = wkv7_step(r[:, 0], w[:, 0], k[:, 0], v[:, 0], a[:, 0], b[:, 0], state)
        return y.unsqueeze(1), s
    return wkv7_chunk(r, w, k, v, a, b, state, chunk_len=chunk_len)
