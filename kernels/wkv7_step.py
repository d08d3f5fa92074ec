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

    S' = S diag(w) + (S a) b^T + v k^T and y = S' r, computed in float32 at least, as
    y = S (w r) + (S a)(b . r) + v (k . r): one product of S with two vectors, then S' with one
    scaling pass and one rank-2 update. A step is memory-bound on S; this reads it three times.
    """
    dtype = r.dtype
    compute = torch.promote_types(dtype, torch.float32)
    r, w, k, v, a, b = (x.to(compute) for x in (r, w, k, v, a, b))
    bsz, heads, n = r.shape
    s = state.to(compute).reshape(bsz * heads, n, n)
    flat = lambda x: x.reshape(bsz * heads, n)  # noqa: E731
    both = torch.bmm(s, torch.stack([flat(a), flat(w * r)], dim=-1))              # (BH, N, 2): S a, S (w r)
    sa, swr = both[..., 0], both[..., 1]
    y = swr + sa * (b * r).sum(-1).reshape(-1, 1) + flat(v) * (k * r).sum(-1).reshape(-1, 1)
    s = torch.baddbmm(s * flat(w).unsqueeze(1), torch.stack([sa, flat(v)], dim=-1),
                      torch.stack([flat(b), flat(k)], dim=1))
    return y.reshape(bsz, heads, n).to(dtype), s.reshape(bsz, heads, n, n)
