"""One checkpoint format: model config, tokenizer settings, format version and weights in one file.

Files are written atomically (temporary file, then rename) and read with ``weights_only=True``, so a
checkpoint can carry nothing but tensors and plain values.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from engine.atomic import atomic_write
from engine.model import RWKV7, ModelConfig
from engine.tokenizer import RemiTokenizer, TokenizerSettings

FORMAT = "muse-bridge-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem


@dataclass
class Checkpoint:
    model: RWKV7
    tokenizer: RemiTokenizer
    meta: dict = field(default_factory=dict)
    path: str | None = None


def default_checkpoint_path() -> Path:
    """The model shipped inside the package."""
    return Path(str(resources.files("engine") / "assets" / "default.pt"))


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """torch.save, atomically: a crash never leaves half a file."""
    atomic_write(path, lambda f: torch.save(obj, f))


def save_checkpoint(path: str | os.PathLike, model: RWKV7, tokenizer_settings: TokenizerSettings,
                    meta: dict | None = None, dtype: torch.dtype | None = None) -> None:
    """Write model + configs; `dtype` (e.g. float16) shrinks the stored weights, loading restores float32."""
    weights = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu()
               for k, v in model.state_dict().items()}
    atomic_save({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.cfg.to_dict(),
        "tokenizer": tokenizer_settings.to_dict(),
        "meta": meta or {},
        "weights": weights,
    }, path)


def read_payload(path: str | os.PathLike, expected_format: str, what: str = "checkpoint") -> dict:
    """Load a torch file of ours with weights_only=True, checking it exists and carries `expected_format`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "empty file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, KeyError, ValueError,
            IndexError, TypeError, AttributeError, UnicodeDecodeError) as e:
        # torch's own message may advise weights_only=False, which must never be taken for a file like this
        raise CheckpointError(path, f"not a readable {what} ({type(e).__name__})") from e
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise CheckpointError(path, f"not a {expected_format} file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(path, f"format version {payload.get('format_version')!r}, this program reads {FORMAT_VERSION}")
    return payload


def load_checkpoint(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint (the bundled default when `path` is None) as an eval-mode model and its tokenizer."""
    path = Path(path) if path is not None else default_checkpoint_path()
    payload = read_payload(path, FORMAT)
    try:
        cfg = ModelConfig.from_dict(payload["model_config"])
        tokenizer = RemiTokenizer(TokenizerSettings.from_dict(payload["tokenizer"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(path, f"bad configuration ({e})") from e
    if tokenizer.vocab_size != cfg.vocab_size:
        raise CheckpointError(path, f"tokenizer has {tokenizer.vocab_size} tokens but the model expects {cfg.vocab_size}")
    model = RWKV7(cfg)
    try:
        model.load_state_dict(payload["weights"])
    except (KeyError, RuntimeError, TypeError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise CheckpointError(path, f"weights do not match the model configuration ({reason})") from e
    bad = [name for name, tensor in model.state_dict().items() if not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(path, f"weights hold NaN or infinity ({', '.join(bad[:3])}{' …' if len(bad) > 3 else ''})")
    return Checkpoint(model.to(device).eval(), tokenizer, dict(payload.get("meta", {})), str(path))
