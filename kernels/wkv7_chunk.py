"""Chunk-parallel WKV-7 in plain PyTorch, differentiable by autograd: the CPU training and prefill path.

The algebra is written out in docs/design.md §5. Within a chunk of L steps, with Γ_t = w_1 ⊙ … ⊙ w_t:

    M   = tril((a ⊙ Γ_{t-1}) (b / Γ)^T, -1)      W   = tril((a ⊙ Γ_{t-1}) (k / Γ)^T, -1)
    Aqk = tril((r ⊙ Γ_t) (k / Γ)^T)              Aqb = tril((r ⊙ Γ_t) (b / Γ)^T)
    (I - M) [Z | H] = [a ⊙ Γ_{t-1} | W v]

Everything above depends only on the chunk's own inputs, so it is computed for all chunks at once.
Substituting U = H + Z S_0^T into the note's output and state formulas leaves, per chunk c,

    y_c = Y0_c + Q_c S_c^T           Y0 = Aqk v + Aqb H,          Q = r ⊙ Γ + Aqb Z
    S_{c+1} = S_c A_c + B_c          A = diag(Γ_L) + Z^T (b ⊙ Γ_L/Γ),  B = v^T (k ⊙ Γ_L/Γ) + H^T (b ⊙ Γ_L/Γ)

so the only sequential work is one N×N matrix product per chunk.

Numerics: 1/Γ grows like w_min^-L. For RWKV-7's decay (w > 0.545) the default L = 16 keeps it below
about 2e4, fine in float32; smaller decays need shorter chunks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def wkv7_chunk(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    state: torch.Tensor | None = None,
    chunk_len: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """WKV-7 over (B, T, H, N) inputs with optional (B, H, N, N) state; T need not be a multiple of chunk_len.

    Returns (y in the input dtype, final state in float32 or wider).
    """
    dtype = r.dtype
    compute = torch.promote_types(dtype, torch.float32)
    batch, steps, heads, n = r.shape
    s = r.new_zeros(batch, heads, n, n, dtype=compute) if state is None else state.to(compute)
    if steps == 0:
        return r.new_zeros(batch, 0, heads, n), s

    chunks = -(-steps // chunk_len)
    pad = chunks * chunk_len - steps

    def blocks(x: torch.Tensor, fill: float) -> torch.Tensor:
        # (B, T, H, N) -> (B, H, C, L, N); padded steps leave the state unchanged (w = 1, all else 0).
        x = x.to(compute)
        if pad:
            x = F.pad(x, (0, 0, 0, 0, 0, pad), value=fill)
        return x.view(batch, chunks, chunk_len, heads, n).permute(0, 3, 1, 2, 4)

    r, k, v, a, b = (blocks(x, 0.0) for x in (r, k, v, a, b))
    log_w = blocks(w, 1.0).log()

    cum = log_w.cumsum(dim=-2)                      # log Γ_t
    gamma = cum.exp()                               # Γ_t
    gamma_prev = (cum - log_w).exp()                # Γ_{t-1}
    inv_gamma = (-cum).exp()                        # 1 / Γ_t
    to_end = (cum[..., -1:, :] - cum).exp()         # Γ_L / Γ_t

    a_prev = a * gamma_prev
    r_dec = r * gamma
    k_inv = k * inv_gamma
    b_inv = b * inv_gamma
    m = torch.tril(a_prev @ b_inv.transpose(-1, -2), -1)
    w_mat = torch.tril(a_prev @ k_inv.transpose(-1, -2), -1)
    a_qk = torch.tril(r_dec @ k_inv.transpose(-1, -2))
    a_qb = torch.tril(r_dec @ b_inv.transpose(-1, -2))

    eye = torch.eye(chunk_len, dtype=compute, device=r.device)
    zh = torch.linalg.solve_triangular(eye - m, torch.cat([a_prev, w_mat @ v], dim=-1), upper=False, unitriangular=True)
    z, h = zh[..., :n], zh[..., n:]

    k_end = k * to_end
    b_end = b * to_end
    y0 = a_qk @ v + a_qb @ h                                           # (B, H, C, L, V)
    q = r_dec + a_qb @ z                                               # (B, H, C, L, K)
    trans = torch.diag_embed(gamma[..., -1, :]) + z.transpose(-1, -2) @ b_end          # (B, H, C, K, K)
    inject = v.transpose(-1, -2) @ k_end + h.transpose(-1, -2) @ b_end                 # (B, H, C, V, K)

    entering = []
    # unbind once: indexing per chunk would make autograd allocate a full-size gradient per chunk
    for trans_c, inject_c in zip(trans.unbind(2), inject.unbind(2)):
        entering.append(s)
        s = torch.baddbmm(inject_c.flatten(0, 1), s.flatten(0, 1), trans_c.flatten(0, 1)).view_as(s)
    s_in = torch.stack(entering, dim=2)                                # (B, H, C, V, K)

    y = y0 + q @ s_in.transpose(-1, -2)
    y = y.permute(0, 2, 3, 1, 4).reshape(batch, chunks * chunk_len, heads, n)[:, :steps]
    return y.to(dtype), s
