"""Style presets: a learned initial WKV state per layer (state tuning, as in MIDI-RWKV), in a small file."""
from __future__ import annotations

import os

import torch

from engine.checkpoint import Checkpoint, CheckpointError, atomic_save, read_payload
from engine.model import ModelConfig
from engine.state import State
from engine.tokenizer import TokenizerSettings

STYLE_FORMAT = "muse-bridge-style"


def save_style(path: str | os.PathLike, wkv: list[torch.Tensor], ckpt: Checkpoint, meta: dict | None = None) -> None:
    """Write one (H, N, N) initial state per layer, tied to the checkpoint's model and tokenizer."""
    atomic_save({"format": STYLE_FORMAT, "format_version": 1, "model_config": ckpt.model.cfg.to_dict(),
                 "tokenizer": ckpt.tokenizer.settings.to_dict(), "meta": meta or {},
                 "wkv": [w.detach().float().cpu().clone() for w in wkv]}, path)


def load_style(path: str | os.PathLike, ckpt: Checkpoint) -> State:
    """The preset as a batch-1 initial State for `ckpt`'s model; a preset made for another model is refused."""
    payload = read_payload(path, STYLE_FORMAT, "style preset")
    try:
        made_for = ModelConfig.from_dict(payload.get("model_config") or {})
    except TypeError:
        made_for = None
    if made_for != ckpt.model.cfg:
        raise CheckpointError(path, f"style preset was made for another model than {ckpt.path}")
    try:
        tokenized_with = TokenizerSettings.from_dict(payload.get("tokenizer") or {})
    except (KeyError, TypeError, ValueError):
        tokenized_with = None
    if tokenized_with != ckpt.tokenizer.settings:
        raise CheckpointError(path, f"style preset was made with another tokenizer than {ckpt.path}")
    state = ckpt.model.initial_state(1)
    wkv = payload.get("wkv")
    shape = tuple(state.layers[0].wkv.shape[1:])
    if not isinstance(wkv, list) or len(wkv) != len(state.layers):
        raise CheckpointError(path, f"style preset holds {len(wkv) if isinstance(wkv, list) else 'no'} layer states, "
                                    f"the model has {len(state.layers)}")
    for i, (layer, w) in enumerate(zip(state.layers, wkv)):
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != shape:
            raise CheckpointError(path, f"style preset layer {i} is not a state of shape {shape}")
        if not torch.isfinite(w).all():
            raise CheckpointError(path, f"style preset layer {i} holds NaN or infinity")
        layer.wkv.copy_(w.unsqueeze(0))
    return state
