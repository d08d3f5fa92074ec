"""Turning masked logits into tokens: temperature, top-k and top-p (nucleus) sampling."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.keys import Key, parse_key_lock


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0        # 0 picks the most likely token
    top_p: float = 0.95             # keep the smallest set of tokens holding this much probability
    top_k: int = 0                  # keep only the k most likely tokens (0: no limit)
    max_tokens_per_bar: int = 192   # a bar that grows this long is closed
    pitch_range: tuple[int, int] | None = None   # inclusive MIDI pitches the continuation may use
    key_lock: str = "off"           # "off", or a key whose scale every pitch must belong to: "A minor", "D dorian"

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_lock", str(parse_key_lock(self.key_lock) or "off"))  # normalised spelling
        if self.pitch_range is not None:
            lo, hi = (int(v) for v in self.pitch_range)
            if not 0 <= lo <= hi <= 127:
                raise ValueError(f"pitch range must be two MIDI pitches low <= high in 0-127, got {lo}-{hi}")
            object.__setattr__(self, "pitch_range", (lo, hi))
            if self.key is not None and not any(p % 12 in self.key.pitch_classes for p in range(lo, hi + 1)):
                raise ValueError(f"no pitch of {self.key} lies in the range {lo}-{hi}")
        if self.max_tokens_per_bar < 1:
            raise ValueError(f"max tokens per bar must be >= 1, got {self.max_tokens_per_bar}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be a number >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:  # also refuses NaN
            raise ValueError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top-k must be >= 0, got {self.top_k}")

    @property
    def key(self) -> Key | None:
        """The key lock, None when off."""
        return parse_key_lock(self.key_lock)


def sample(logits: torch.Tensor, allowed: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator) -> torch.Tensor:
    """One token per row of `logits` (K, V), drawn only from `allowed` (K, V)."""
    if torch.isnan(logits).any():
        raise ValueError("the model produced NaN: its weights are broken")
    logits = logits.float().masked_fill(~allowed, float("-inf"))
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / cfg.temperature
    if cfg.top_k:
        kth = logits.topk(min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the ones before it already hold top_p; the first always stays
        drop_sorted = (cum - sorted_logits.softmax(dim=-1)) >= cfg.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)
