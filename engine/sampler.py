"""Turning masked logits into tokens: temperature, top-k and top-p (nucleus) sampling."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.chords import chord_pitch_classes, parse_chords
from engine.keys import Key, parse_key_lock
from engine.tokenizer import TokenizerSettings

MAX_DENSITY = TokenizerSettings.ac_note_density_bar_max   # the density control's top token ("64+")
MAX_POLYPHONY = TokenizerSettings.ac_polyphony_max        # the polyphony control's highest value


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0        # 0 picks the most likely token
    top_p: float = 0.95             # keep the smallest set of tokens holding this much probability
    top_p_by_kind: bool = True      # ... of each kind of token (a note's pitch, an onset's position), each kind
                                    # keeping its whole share: the model alone decides when a bar ends (`sample`)
    top_k: int = 0                  # keep only the k most likely tokens (0: no limit)
    max_tokens_per_bar: int = 192   # a bar that grows this long is closed
    pitch_range: tuple[int, int] | None = None   # inclusive MIDI pitches the continuation may use
    key_lock: str = "off"           # "off", or a key whose scale every pitch must belong to: "A minor", "D dorian"
    # bar controls (a model trained with them follows them; None / () leaves it the model's own choice)
    density: int | None = None      # notes per bar
    polyphony: int | None = None    # at most this many notes struck at one onset (1: a single line)
    chords: tuple[str, ...] = ()    # one chord symbol per bar, cycling over the bars: the bar's pitch classes
    density_band: float | None = 0.1   # with a density, each bar holds it within this share (at least one
                                       # note); None: no band, the control token alone (the model's own following)
    density_pull: float = 2.0       # with the band, nats against ending a bar below the density asked and for ending
                                    # it from there (0: anywhere in the band; `end_pull`)
    chord_weight: float = 1.0       # with chords, nats added to the logits of the bar's chord tones (a preference, no mask)
    memory: float = 0.95            # how strongly a continuation follows what came after the same notes earlier in
                                    # the song (engine/song_memory.py; 0: the model alone)
    distinct: bool = True           # a candidate that has struck just the notes an earlier one of its request struck,
                                    # through half the bars, reads no song memory until it strikes another
                                    # (engine/generate.py: the K candidates of a request are K choices)

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
        if self.density is not None and not 0 <= self.density <= MAX_DENSITY:
            raise ValueError(f"density must be 0-{MAX_DENSITY} notes per bar, got {self.density}")
        if not (math.isfinite(self.chord_weight) and self.chord_weight >= 0):
            raise ValueError(f"chord weight must be a number >= 0, got {self.chord_weight}")
        if not 0 <= self.memory <= 1:   # also refuses NaN
            raise ValueError(f"memory must be a share in 0-1, got {self.memory}")
        if self.density_band is not None and not 0 <= self.density_band <= 1:
            raise ValueError(f"density band must be a share in 0-1, got {self.density_band}")
        if not (math.isfinite(self.density_pull) and self.density_pull >= 0):
            raise ValueError(f"density pull must be a number of nats >= 0, got {self.density_pull}")
        if self.polyphony is not None and not 1 <= self.polyphony <= MAX_POLYPHONY:
            raise ValueError(f"polyphony must be 1-{MAX_POLYPHONY} notes per onset, got {self.polyphony}")
        object.__setattr__(self, "chords", parse_chords(" ".join(self.chords)))

    @property
    def controls(self) -> bool:
        """True when a bar control is asked for."""
        return self.density is not None or self.polyphony is not None or bool(self.chords)

    def density_bounds(self) -> tuple[int, float] | None:
        """The fewest and most notes a bar may hold for the density asked for (the top value means that
        many or more), None without a density or without the band."""
        if self.density is None or self.density_band is None:
            return None
        slack = max(1, round(self.density * self.density_band))
        most = math.inf if self.density >= MAX_DENSITY else self.density + slack
        return max(0, self.density - slack), most

    def end_pull(self, bar_notes: int) -> float:
        """Nats added to the Bar token's logit in a bar that holds `bar_notes` notes so far: with a density and
        its band, -density_pull below the density asked and +density_pull from there (none at the top value,
        which means that many or more), so that a bar aims at the density itself rather than anywhere in its
        band; 0 otherwise. With the band alone, bars piled up at its edges (held-out Lieder: 0.064 off the
        density asked over twelve draws a window and 16% of bars at it over three; with the pull of 2 nats 0.048
        and 36%)."""
        if self.density_bounds() is None or not self.density_pull:
            return 0.0
        if bar_notes < self.density:
            return -self.density_pull
        return 0.0 if self.density >= MAX_DENSITY else self.density_pull

    def chords_outside_key(self) -> str | None:
        """The one line saying which chords lie outside the key lock (in their bars they win), None if none do."""
        key = self.key
        outside = [c for c in dict.fromkeys(self.chords) if key and not chord_pitch_classes(c) <= set(key.pitch_classes)]
        if not outside:
            return None
        return (f"chord{'s' if len(outside) > 1 else ''} {', '.join(outside)} outside the key lock {key}: "
                "in their bars the chord's notes are allowed too")

    def chord_of_bar(self, bar: int) -> frozenset[int] | None:
        """The pitch classes asked for in bar `bar` (0-based, the chords cycling), None without chords."""
        return chord_pitch_classes(self.chords[bar % len(self.chords)]) if self.chords else None

    @property
    def key(self) -> Key | None:
        """The key lock, None when off."""
        return parse_key_lock(self.key_lock)


def sample(logits: torch.Tensor, allowed: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator,
           kinds: np.ndarray | None = None) -> torch.Tensor:
    """One token per row of `logits` (K, V), drawn only from `allowed` (K, V): the allowed tokens sorted by
    probability, top-k and top-p keep some of them, and one uniform draw per row from `generator` picks
    within them (NumPy: a step's few rows are too small for torch's per-call cost).

    With `kinds` (each id's kind as a number) and `cfg.top_p_by_kind`, top-p trims each kind's tokens apart and
    gives each kind back its whole share. Trimmed together, the kinds whose share is spread over many tokens
    (the next note's pitch, the next onset's position) lose their tails while the one Bar token that closes the
    bar keeps all of its share: bars close early and hold fewer notes than the model means. By kind, what kind
    comes next (another note, another onset, the bar's end) is drawn as the model gives it, and only the
    unlikely tails within a kind are cut (README, *The default model*: density with the band off)."""
    x = logits.detach().float().cpu().numpy()
    if np.isnan(x).any():
        raise ValueError("the model produced NaN: its weights are broken")
    mask = allowed.cpu().numpy()
    x = np.where(mask, x, -np.inf)
    if cfg.temperature == 0:
        return torch.from_numpy(x.argmax(-1))
    order = np.argsort(-x, axis=-1, kind="stable")
    s = np.take_along_axis(x, order, -1).astype(np.float64) / cfg.temperature
    p = np.exp(s - s[:, :1])   # the first is the largest; masked tokens get 0
    if cfg.top_k:   # ties with the k-th stay, as a threshold on the logits keeps them
        p[s < s[:, min(cfg.top_k, s.shape[-1]) - 1:][:, :1]] = 0
    p /= p.sum(-1, keepdims=True)
    allowed_kinds = kinds[mask.any(0)] if cfg.top_p < 1 and kinds is not None and cfg.top_p_by_kind else None
    # most steps allow one kind only, where cutting by kind is the same cut
    if allowed_kinds is not None and allowed_kinds.size and allowed_kinds.min() != allowed_kinds.max():
        n = int((p > 0).sum(-1).max())   # the masked tokens sort last: the rest is left as it is
        q, kind = p[:, :n], kinds[order[:, :n]]    # (q is a view: p changes with it)
        for k in np.unique(kind[q > 0]):
            is_k = kind == k
            of_k = np.where(is_k, q, 0.0)
            before = np.cumsum(of_k, -1) - of_k        # the kind's share held by its likelier tokens
            share = before[:, -1:] + of_k[:, -1:]
            q[is_k & (before >= cfg.top_p * share)] = 0
            kept = np.where(is_k, q, 0.0).sum(-1, keepdims=True)
            q *= np.where(is_k, share / np.maximum(kept, 1e-300), 1.0)
    elif cfg.top_p < 1:   # drop a token when the ones before it already hold top_p; the first always stays
        p[(np.cumsum(p, -1) - p) >= cfg.top_p] = 0
    cum = np.cumsum(p, -1)
    u = torch.rand(len(p), generator=generator, dtype=torch.float64).numpy() * cum[:, -1]
    last = p.shape[-1] - 1 - (p[:, ::-1] > 0).argmax(-1)   # the last token kept (rounding may leave u at the end)
    pick = np.minimum((cum <= u[:, None]).sum(-1), last)    # the first whose cumulative share passes u
    return torch.from_numpy(order[np.arange(len(p)), pick])
