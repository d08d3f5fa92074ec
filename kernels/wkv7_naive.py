"""The WKV-7 recurrence stated token by token: the reference every other backend is tested against.

Per head, with state S (rows: value, columns: key):

    S_t = S_{t-1} (diag(w_t) + a_t b_t^T) + v_t k_t^T,    y_t = S_t r_t

RWKV-7 uses a_t = -kk_t and b_t = kk_t * iclr_t (docs/design.md §4).
"""
from __future__ import annotations

import torch


def wkv7_naive(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the recurrence in float64. Inputs (B, T, H, N), state (B, H, N, N); returns (y, state) in the input dtype."""
    dtype = r.dtype
    r, w, k, v, a, b = (x.double() for x in (r, w, k, v, a, b))
    batch, steps, heads, n = r.shape
    s = r.new_zeros(batch, heads, n, n) if state is None else state.double()
    ys = []
    for t in range(steps):
        sa = torch.einsum("bhvk,bhk->bhv", s, a[:, t])
        s = s * w[:, t, :, None, :] + sa[..., None] * b[:, t, :, None, :] + v[:, t, :, :, None] * k[:, t, :, None, :]
        ys.append(torch.einsum("bhvk,bhk->bhv", s, r[:, t]))
    y = torch.stack(ys, dim=1) if ys else r.new_zeros(batch, 0, heads, n)
    return y.to(dtype), s.to(dtype)
