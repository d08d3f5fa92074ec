"""Style presets: a learned initial WKV state per layer (state tuning, as in MIDI-RWKV), in a small file."""
from __future__ import annotations

import os

import torch

from engine.checkpoint import Checkpoint, CheckpointError, atomic_save, read_payload
from engine.state import State

STYLE_FORMAT = "muse-bridge-style"


def save_style(path: str | os.PathLike, wkv: list[torch.Tensor], ckpt: Checkpoint, meta: dict | None = None) -> None:
    """Write one (H, N, N) initial state per layer, tied to the checkpoint's model and tokenizer."""
    atomic_save({"format": STYLE_FORMAT, "format_version": 1, "model_config": ckpt.model.cfg.to_dict(),
                 "tokenizer": ckpt.tokenizer.settings.to_dict(), "meta": meta or {},
                 "wkv": [w.detach().float().cpu().clone() for w in wkv]}, path)


def load_style(path: str | os.PathLike, ckpt: Checkpoint) -> State:
    """The preset as a batch-1 initial State for `ckpt`'s model; a preset made for another model is refused."""
    payload = read_payload(path, STYLE_FORMAT)
    if payload.get("model_config") != ckpt.model.cfg.to_dict():
        raise CheckpointError(path, f"style preset was made for another model than {ckpt.path}")
    if payload.get("tokenizer") != ckpt.tokenizer.settings.to_dict():
        raise CheckpointError(path, f"style preset was made with another tokenizer than {ckpt.path}")
    state = ckpt.model.initial_state(1)
    for layer, wkv in zip(state.layers, payload["wkv"]):
        layer.wkv.copy_(wkv.unsqueeze(0))
    return state
