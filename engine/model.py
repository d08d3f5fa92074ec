"""RWKV-7 ("x070") for one stream of REMI tokens, written as the equations of docs/design.md §4.

There is one forward path. Training and prefill call it with T tokens; the live step calls it with
T = 1, where the WKV operator takes its decode form. Either way the token shift reads the previous
token's input from the state, so a sequence fed at once and fed token by token give the same result.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from engine.state import LayerState, State
from kernels import wkv7


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    n_layer: int = 6
    n_embd: int = 256
    head_size: int = 64

    @property
    def n_head(self) -> int:
        return self.n_embd // self.head_size

    def __post_init__(self) -> None:
        if self.n_embd % self.head_size:
            raise ValueError(f"n_embd {self.n_embd} is not a multiple of head_size {self.head_size}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        # files of version 0.1 stored the kernel's chunk length here; it never changed the model
        return cls(**{k: v for k, v in d.items() if k != "chunk_len"})


SIZES = {  # (n_layer, n_embd); `mini` is the bundled model's, trained on a 2-core CPU
    "micro": (2, 64),
    "mini": (6, 192),
    "tiny": (6, 256),
    "small": (12, 384),
    "base": (12, 768),
}


def config_for_size(size: str, vocab_size: int, head_size: int = 64) -> ModelConfig:
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
    n_layer, n_embd = SIZES[size]
    return ModelConfig(vocab_size=vocab_size, n_layer=n_layer, n_embd=n_embd, head_size=min(head_size, n_embd))


def _lora_dim(c: int, scale: float, power: float = 0.5) -> int:
    return max(32, int(round(scale * c ** power / 32) * 32))


def _ortho(shape: tuple[int, int], scale: float) -> torch.Tensor:
    x = torch.empty(shape)
    gain = math.sqrt(shape[0] / shape[1]) if shape[0] > shape[1] else 1.0
    nn.init.orthogonal_(x, gain=gain * scale)
    return x


def _shift(x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """x_prev for every position: the state's last input, then x shifted by one."""
    return torch.cat([last.unsqueeze(1).to(x.dtype), x[:, :-1]], dim=1)


class TimeMix(nn.Module):
    """The WKV-7 attention replacement of one block."""

    def __init__(self, cfg: ModelConfig, layer_id: int):
        super().__init__()
        c, n, h = cfg.n_embd, cfg.head_size, cfg.n_head
        self.layer_id, self.n_head, self.head_size = layer_id, h, n
        ratio_0_to_1 = layer_id / max(cfg.n_layer - 1, 1)
        ratio_1_to_0 = 1.0 - layer_id / cfg.n_layer
        ddd = torch.arange(c, dtype=torch.float32) / c
        self.mu_r = nn.Parameter(1.0 - ddd.pow(0.2 * ratio_1_to_0))
        self.mu_w = nn.Parameter(1.0 - ddd.pow(0.9 * ratio_1_to_0))
        self.mu_k = nn.Parameter(1.0 - ddd.pow(0.7 * ratio_1_to_0))
        self.mu_v = nn.Parameter(1.0 - ddd.pow(0.7 * ratio_1_to_0))
        self.mu_a = nn.Parameter(1.0 - ddd.pow(0.9 * ratio_1_to_0))
        self.mu_g = nn.Parameter(1.0 - ddd.pow(0.2 * ratio_1_to_0))

        idx = torch.arange(c, dtype=torch.float32)
        linear = idx / (c - 1) - 0.5
        zigzag = ((idx % n) - (n - 1) / 2) / ((n - 1) / 2)
        zigzag = zigzag * zigzag.abs()
        decay_speed = -6 + 6 * (idx / (c - 1)) ** (1 + ratio_0_to_1 ** 0.3)

        d_w, d_a, d_v, d_g = _lora_dim(c, 2.5), _lora_dim(c, 2.5), _lora_dim(c, 1.7), _lora_dim(c, 5, 0.8)
        self.w0 = nn.Parameter(decay_speed + 0.5 + zigzag * 2.5)
        self.w1 = nn.Parameter(torch.zeros(c, d_w))
        self.w2 = nn.Parameter(_ortho((d_w, c), 0.1))
        self.a0 = nn.Parameter(-0.19 + zigzag * 0.3 + linear * 0.4)
        self.a1 = nn.Parameter(torch.zeros(c, d_a))
        self.a2 = nn.Parameter(_ortho((d_a, c), 0.1))
        if layer_id > 0:  # layer 0 defines v_first; only later layers mix it back in
            self.v0 = nn.Parameter(0.73 - linear * 0.4)
            self.v1 = nn.Parameter(torch.zeros(c, d_v))
            self.v2 = nn.Parameter(_ortho((d_v, c), 0.1))
        self.g1 = nn.Parameter(torch.zeros(c, d_g))
        self.g2 = nn.Parameter(_ortho((d_g, c), 0.1))
        self.k_k = nn.Parameter(0.71 - linear * 0.1)
        self.k_a = nn.Parameter(torch.full((c,), 1.02))
        self.r_k = nn.Parameter(torch.full((h, n), -0.04))

        self.receptance = nn.Linear(c, c, bias=False)
        self.key = nn.Linear(c, c, bias=False)
        self.value = nn.Linear(c, c, bias=False)
        self.output = nn.Linear(c, c, bias=False)
        self.ln_x = nn.GroupNorm(h, c, eps=64e-5)
        bound = c ** -0.5
        nn.init.uniform_(self.receptance.weight, -0.5 * bound, 0.5 * bound)
        nn.init.uniform_(self.key.weight, -0.05 * bound, 0.05 * bound)
        nn.init.uniform_(self.value.weight, -0.5 * bound, 0.5 * bound)
        nn.init.zeros_(self.output.weight)

    def forward(self, x: torch.Tensor, v_first: torch.Tensor | None, last_x: torch.Tensor, wkv_state: torch.Tensor,
                chunk_len: int = 16, backend: str = "auto"):
        bsz, t, c = x.shape
        h, n = self.n_head, self.head_size
        dx = _shift(x, last_x) - x
        xr, xw, xk, xv, xa, xg = (x + dx * mu for mu in (self.mu_r, self.mu_w, self.mu_k, self.mu_v, self.mu_a, self.mu_g))

        r = self.receptance(xr)
        w = torch.exp(-math.exp(-0.5) * torch.sigmoid(self.w0 + torch.tanh(xw @ self.w1) @ self.w2))
        k = self.key(xk)
        v = self.value(xv)
        if self.layer_id == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        iclr = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2

        kk = F.normalize((k * self.k_k).view(bsz, t, h, n), dim=-1)
        k = k * (1 + (iclr - 1) * self.k_a)

        heads = lambda z: z.view(bsz, t, h, n)  # noqa: E731
        y, wkv_state = wkv7(heads(r), heads(w), heads(k), heads(v), -kk, kk * heads(iclr), wkv_state,
                            backend=backend, chunk_len=chunk_len)
        y = self.ln_x(y.reshape(bsz * t, c)).view(bsz, t, c)
        bonus = (heads(r) * heads(k) * self.r_k).sum(dim=-1, keepdim=True) * heads(v)
        out = self.output((y + bonus.view(bsz, t, c)) * g)
        return out, v_first, x[:, -1], wkv_state


class ChannelMix(nn.Module):
    """relu(x_k Wk)^2 Wv with a 4C hidden layer."""

    def __init__(self, cfg: ModelConfig, layer_id: int):
        super().__init__()
        c = cfg.n_embd
        ratio_1_to_0 = 1.0 - layer_id / cfg.n_layer
        ddd = torch.arange(c, dtype=torch.float32) / c
        self.mu_k = nn.Parameter(1.0 - ddd.pow(ratio_1_to_0 ** 4))
        self.key = nn.Linear(c, 4 * c, bias=False)
        self.value = nn.Linear(4 * c, c, bias=False)
        nn.init.uniform_(self.key.weight, -0.5 * c ** -0.5, 0.5 * c ** -0.5)
        nn.init.zeros_(self.value.weight)

    def forward(self, x: torch.Tensor, last_x: torch.Tensor):
        xk = x + (_shift(x, last_x) - x) * self.mu_k
        return self.value(torch.relu(self.key(xk)) ** 2), x[:, -1]


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_id: int):
        super().__init__()
        c = cfg.n_embd
        self.ln0 = nn.LayerNorm(c) if layer_id == 0 else nn.Identity()
        self.ln1 = nn.LayerNorm(c)
        self.ln2 = nn.LayerNorm(c)
        self.att = TimeMix(cfg, layer_id)
        self.ffn = ChannelMix(cfg, layer_id)

    def forward(self, x: torch.Tensor, v_first: torch.Tensor | None, s: LayerState, chunk_len: int = 16,
                backend: str = "auto"):
        x = self.ln0(x)
        dx, v_first, att_x, wkv = self.att(self.ln1(x), v_first, s.att_x, s.wkv, chunk_len, backend)
        x = x + dx
        dx, ffn_x = self.ffn(self.ln2(x), s.ffn_x)
        return x + dx, v_first, LayerState(att_x.float(), wkv, ffn_x.float())


class RWKV7(nn.Module):
    """Token ids in, next-token logits out, carrying a State between calls."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.ln_out = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        nn.init.uniform_(self.emb.weight, -1e-4, 1e-4)
        scale = 0.5 * math.sqrt(cfg.vocab_size / cfg.n_embd) if cfg.vocab_size > cfg.n_embd else 0.5
        nn.init.orthogonal_(self.head.weight, gain=scale)
        self.gradient_checkpointing = False
        # how the WKV operator runs: speed only, never the result (not part of cfg)
        self.chunk_len = 16          # the chunk-parallel form's chunk length
        self.wkv_backend = "auto"    # kernels.wkv7's backend: the fused CUDA kernel on a GPU, else chunk-parallel

    @torch.no_grad()
    def grow_vocabulary(self, vocab_size: int, rows: Sequence[int | None] | None = None) -> None:
        """Rows for a grown vocabulary: new id i takes the embedding and head row of old id `rows[i]` (by default
        the same id: a vocabulary extended at its end, as bar controls extend REMI's); an id without one starts its
        embedding as at initialisation and its head row at zero (a logit of 0 until trained)."""
        old = self.cfg.vocab_size
        rows = list(range(old)) + [None] * (vocab_size - old) if rows is None else list(rows)
        if vocab_size < old or len(rows) != vocab_size:
            raise ValueError(f"a vocabulary of {vocab_size} tokens cannot hold the model's {old} "
                             f"({len(rows)} rows mapped)")
        emb, head = self.emb.weight, self.head.weight
        self.emb = nn.Embedding(vocab_size, self.cfg.n_embd, device=emb.device, dtype=emb.dtype)
        nn.init.uniform_(self.emb.weight, -1e-4, 1e-4)
        self.head = nn.Linear(self.cfg.n_embd, vocab_size, bias=False, device=head.device, dtype=head.dtype)
        self.head.weight.zero_()
        taken = [(new, source) for new, source in enumerate(rows) if source is not None]
        if taken:
            to, source = (torch.tensor(ids, device=emb.device) for ids in zip(*taken))
            self.emb.weight[to] = emb[source]
            self.head.weight[to] = head[source]
        self.cfg = replace(self.cfg, vocab_size=vocab_size)

    def initial_state(self, batch: int = 1) -> State:
        cfg = self.cfg
        return State.zeros(cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.head_size, batch, self.emb.weight.device)

    def hidden(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Final-layer features (B, T, C) after ln_out, and the state after the last token."""
        if state is None:
            state = self.initial_state(tokens.shape[0])
        x = self.emb(tokens)
        v_first = None
        layers = []
        for block, s in zip(self.blocks, state.layers):
            if self.gradient_checkpointing and self.training:
                x, v_first, s = checkpoint(block, x, v_first, s, self.chunk_len, self.wkv_backend, use_reentrant=False)
            else:
                x, v_first, s = block(x, v_first, s, self.chunk_len, self.wkv_backend)
            layers.append(s)
        return self.ln_out(x), State(layers)

    def forward(self, tokens: torch.Tensor, state: State | None = None,
                keep: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """Logits (B, T, V) for every position, or (n, V) for the n positions where the mask `keep` (B, T) is
        True (training computes the head only where the loss is taken), and the new state."""
        h, state = self.hidden(tokens, state)
        return self.head(h if keep is None else h[keep]), state

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One token per stream, tokens (B,): logits (B, V) and the new state."""
        logits, state = self.forward(tokens.unsqueeze(1), state)
        return logits[:, 0], state
