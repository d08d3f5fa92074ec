"""`finetune --mode state`: learn only each layer's initial WKV state on a composer's MIDI (a style preset).

The model's weights stay frozen, so a preset is a few hundred kilobytes and presets can be switched live.
(`--mode full` is ordinary training started from the checkpoint's weights: see trainer.train.)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from engine.checkpoint import load_checkpoint
from engine.state import LayerState, State
from engine.style import save_style
from trainer.data import TokenWindows
from trainer.train import loss_on

log = logging.getLogger(__name__)


@dataclass
class StateTuneConfig:
    checkpoint: str
    data_dir: str
    out_dir: str
    steps: int = 300
    batch_size: int = 8
    seq_len: int = 256
    lr: float = 1e-2
    max_transpose: int = 5
    seed: int = 0
    val_windows: int = 32


def initial_state_from(wkv: list[torch.Tensor], batch: int, n_embd: int) -> State:
    zeros = torch.zeros(batch, n_embd)
    return State([LayerState(zeros, w.unsqueeze(0).expand(batch, *w.shape), zeros) for w in wkv])


def state_loss(model, wkv: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return loss_on(model, x, y, initial_state_from(wkv, x.shape[0], model.cfg.n_embd))


def state_tune(cfg: StateTuneConfig) -> dict:
    """Fit the initial states; writes RUN/style.pt (best on the validation split) and returns the losses."""
    ckpt = load_checkpoint(cfg.checkpoint)
    model = ckpt.model
    for p in model.parameters():
        p.requires_grad_(False)
    train_data, val_data = TokenWindows(cfg.data_dir, "train"), TokenWindows(cfg.data_dir, "val")
    if train_data.settings != ckpt.tokenizer.settings:
        raise ValueError(f"{cfg.data_dir} was prepared with another tokenizer than {cfg.checkpoint}")
    c = model.cfg
    wkv = [torch.zeros(c.n_head, c.head_size, c.head_size, requires_grad=True) for _ in range(c.n_layer)]
    optimizer = torch.optim.Adam(wkv, lr=cfg.lr)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def val_loss() -> float:
        with torch.no_grad():
            x, y = val_data.batch(cfg.seed + 1, 0, cfg.val_windows, cfg.seq_len)
            return float(state_loss(model, wkv, x, y))

    start = best = val_loss()
    save_style(out / "style.pt", wkv, ckpt, {"val_loss": best, "step": 0, "data": cfg.data_dir})
    for step in tqdm(range(cfg.steps), desc="state tuning", unit="step"):
        x, y = train_data.batch(cfg.seed, step, cfg.batch_size, cfg.seq_len, cfg.max_transpose)
        loss = state_loss(model, wkv, x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            v = val_loss()
            log.info("step %d: train %.4f val %.4f", step + 1, loss.item(), v)
            if v < best:
                best = v
                save_style(out / "style.pt", wkv, ckpt, {"val_loss": v, "step": step + 1, "data": cfg.data_dir})
    return {"style": str(out / "style.pt"), "val_loss_before": start, "val_loss_best": best}
