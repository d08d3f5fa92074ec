"""One WKV-7 step for a batch of streams: the live decoding form (no time axis)."""
from __future__ import annotations

import torch


def wkv7_step(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advance S by one token. Inputs (B, H, N), state (B, H, N, N); returns (y (B, H, N), new state).

    S' = S diag(w) + (S a) b^T + v k^T and y = S' r, computed in float32 at least.
    """
    dtype = r.dtype
    compute = torch.promote_types(dtype, torch.float32)
    r, w, k, v, a, b = (x.to(compute) for x in (r, w, k, v, a, b))
    s = state.to(compute)
    sa = (s @ a.unsqueeze(-1))  # (B, H, N, 1)
    s = s * w.unsqueeze(-2) + sa * b.unsqueeze(-2) + v.unsqueeze(-1) * k.unsqueeze(-2)
    y = (s @ r.unsqueeze(-1)).squeeze(-1)
    return y.to(dtype), s
