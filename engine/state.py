"""The recurrent state of an RWKV-7 model: what a live session carries from note to note."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LayerState:
    """One block's memory: the token-shift inputs of both mixers and the WKV matrices."""

    att_x: torch.Tensor   # (B, C) last input of the time mix
    wkv: torch.Tensor     # (B, H, N, N) rows value, columns key
    ffn_x: torch.Tensor   # (B, C) last input of the channel mix


@dataclass
class State:
    """All layers' states for a batch of B streams, in float32."""

    layers: list[LayerState]

    @classmethod
    def zeros(cls, n_layer: int, n_embd: int, n_head: int, head_size: int, batch: int = 1,
              device: torch.device | str = "cpu") -> "State":
        def z(*shape: int) -> torch.Tensor:
            return torch.zeros(*shape, dtype=torch.float32, device=device)
        return cls([LayerState(z(batch, n_embd), z(batch, n_head, head_size, head_size), z(batch, n_embd))
                    for _ in range(n_layer)])

    @property
    def batch(self) -> int:
        return self.layers[0].att_x.shape[0]

    def map(self, fn) -> "State":
        """A State of fn applied to every tensor."""
        return State([LayerState(fn(s.att_x), fn(s.wkv), fn(s.ffn_x)) for s in self.layers])

    def clone(self) -> "State":
        """An independent copy (feeding it leaves this state untouched)."""
        return self.map(lambda t: t.detach().clone())

    def expand(self, k: int) -> "State":
        """K independent copies of a batch-1 state, e.g. one per candidate."""
        if self.batch != 1:
            raise ValueError(f"expand needs a batch-1 state, this one has batch {self.batch}")
        return self.map(lambda t: t.detach().expand(k, *t.shape[1:]).clone())

    @classmethod
    def cat(cls, states: list["State"]) -> "State":
        """One batch holding every stream of `states`, in order."""
        return cls([LayerState(*(torch.cat([getattr(st.layers[i], f) for st in states]) for f in ("att_x", "wkv", "ffn_x")))
                    for i in range(len(states[0].layers))])

    def copy_(self, other: "State") -> None:
        """Overwrite these tensors in place with `other`'s (same shapes): static buffers keep their memory."""
        for mine, theirs in zip(self.layers, other.layers):
            mine.att_x.copy_(theirs.att_x)
            mine.wkv.copy_(theirs.wkv)
            mine.ffn_x.copy_(theirs.ffn_x)

    def to(self, device: torch.device | str) -> "State":
        return self.map(lambda t: t.to(device))

    def max_abs_diff(self, other: "State") -> float:
        """Largest elementwise difference to another state of the same shape (used by tests and checks)."""
        return max(float((x - y).detach().abs().max())
                   for s, o in zip(self.layers, other.layers)
                   for x, y in ((s.att_x, o.att_x), (s.wkv, o.wkv), (s.ffn_x, o.ffn_x)))
