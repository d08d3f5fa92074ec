"""`train` and `finetune --mode full`: the training loop, top to bottom.

RUN holds: train_state.pt (everything --resume needs), best.pt and last.pt (model checkpoints in the
engine's format), log.csv and loss.png. Every file is written atomically.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from engine.atomic import atomic_write
from engine.checkpoint import CheckpointError, atomic_save, load_checkpoint, read_payload, save_checkpoint
from engine.model import RWKV7, config_for_size
from engine.state import LayerState, State
from trainer.data import IGNORE, TokenWindows
from trainer.plot import plot_losses

log = logging.getLogger(__name__)
TRAIN_STATE = "muse-bridge-train-state"


@dataclass
class TrainConfig:
    data_dir: str
    out_dir: str
    size: str = "tiny"
    steps: int = 2000
    batch_size: int = 8
    seq_len: int = 512
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    max_transpose: int = 5
    completion_bars: int = 0          # >0: loss only on each window's last N bars
    val_every: int = 200
    val_windows: int = 64
    save_every: int = 100
    seed: int = 0
    grad_checkpointing: bool = False
    init_from: str | None = None      # finetune: start from this checkpoint's weights
    carry_state: bool = False         # rows play whole songs in consecutive windows, each window starting
                                      # from the state the row's previous one ended with (detached)
    cpu_bf16: bool = False            # bf16 autocast on a CPU too (on a GPU it is always on)
    thin_bars: float = 0.0            # data with controls: this share of bars thinned, keeping their density
    thin_runs: float = 0.0            # ... and this share of the windows thinned as one run of bars from their start
    fill_share: float = 0.0           # this share of the windows teaches filling a gap (trainer/fill.py)

    def __post_init__(self) -> None:
        if self.carry_state and (self.completion_bars or self.fill_share):
            raise ValueError("--carry-state trains on every token of whole songs in order; it cannot be combined "
                             "with --completion-bars or --fill-share")
        if self.completion_bars and self.fill_share:
            raise ValueError("--fill-share rearranges windows; it cannot be combined with --completion-bars")
        for name, share in (("--fill-share", self.fill_share), ("--thin-bars", self.thin_bars),
                            ("--thin-runs", self.thin_runs)):
            if not 0 <= share <= 1:
                raise ValueError(f"{name} must be 0-1, got {share}")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine from lr down to min_lr at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def loss_on(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, state: State | None = None) -> torch.Tensor:
    """Mean cross-entropy over the non-ignored targets; logits are computed only there. `model` is the
    RWKV7 or its DistributedDataParallel wrapper (whose forward is what synchronises the gradients)."""
    return loss_and_state(model, x, y, state)[0]


def loss_and_state(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   state: State | None = None) -> tuple[torch.Tensor, State]:
    """loss_on's loss, and the state after each row's last token."""
    keep = y != IGNORE
    logits, state = model(x, state, keep)
    return F.cross_entropy(logits.float(), y[keep]), state


def carried_on(state: State | None, fresh: torch.Tensor, model: RWKV7) -> State:
    """The state each row's next window starts from: empty where the row starts a new song, else the one
    its previous window ended with, detached (no gradient crosses windows)."""
    if state is None:
        return model.initial_state(len(fresh))
    go_on = (~fresh).to(state.layers[0].att_x.device)
    return state.map(lambda t: t.detach().float() * go_on.view(-1, *[1] * (t.dim() - 1)))


def state_tensors(state: State | None) -> list[list[torch.Tensor]] | None:
    """A State as plain nested lists of tensors, for the training state file (and back: state_from)."""
    return None if state is None else [[s.att_x, s.wkv, s.ffn_x] for s in state.layers]


def state_from(tensors: list[list[torch.Tensor]] | None, device: torch.device) -> State | None:
    return None if tensors is None else State([LayerState(*(t.to(device) for t in layer)) for layer in tensors])


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on projection matrices only (not on embeddings, norms, biases or mixing vectors)."""
    decay, rest = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim == 2 and not name.startswith("emb") else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@torch.no_grad()
def validate(model: RWKV7, val: TokenWindows, cfg: TrainConfig, device: torch.device, autocast) -> float:
    """Mean NLL (nats/token) over a fixed set of validation windows."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, cfg.val_windows, cfg.batch_size):
        x, y = val.batch(cfg.seed + 1, i, min(cfg.batch_size, cfg.val_windows - i), cfg.seq_len,
                         completion_bars=cfg.completion_bars)
        x, y = x.to(device), y.to(device)
        with autocast():
            n = int((y != IGNORE).sum())
            total += float(loss_on(model, x, y)) * n
            count += n
    model.train()
    return total / max(count, 1)


class Distributed:
    """torchrun's environment, or a single process."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1:
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.device = torch.device(f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or fully fine-tune) per cfg; returns the last and best validation losses."""
    env = Distributed()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    base = load_checkpoint(cfg.init_from) if cfg.init_from else None
    markers = bool(cfg.fill_share) or (base is not None and base.tokenizer.settings.fill_markers)
    train_data = TokenWindows(cfg.data_dir, "train", cfg.thin_bars, fill_share=cfg.fill_share, markers=markers,
                              thin_runs=cfg.thin_runs)
    val_data = TokenWindows(cfg.data_dir, "val", markers=markers)
    settings = train_data.settings

    if base is not None:
        model = base.model.train()
        if base.tokenizer.settings != settings and base.tokenizer.settings.grows_into(settings):
            # meters, bar controls (data prepared with them) or fill markers: every old token keeps its rows
            model.grow_vocabulary(train_data.tokenizer.vocab_size, train_data.tokenizer.rows_from(base.tokenizer))
            log.info("%s: %d rows added (meters, bar controls, fill markers)", cfg.init_from,
                     model.cfg.vocab_size - base.tokenizer.vocab_size)
        elif base.tokenizer.settings != settings:
            raise ValueError(f"{cfg.init_from}: its tokenizer differs from the one {cfg.data_dir} was prepared with")
    else:
        model = RWKV7(config_for_size(cfg.size, train_data.tokenizer.vocab_size))
    model.to(env.device).train()
    model.gradient_checkpointing = cfg.grad_checkpointing
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.99), eps=1e-8)

    step, best, history, carried = 0, float("inf"), [], None
    state_path = out / "train_state.pt"
    if resume and state_path.is_file():
        saved = read_payload(state_path, TRAIN_STATE, "training state")
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            torch.set_rng_state(saved["rng"])
            step, best, history = saved["step"], saved["best"], saved["history"]
            carried = state_from(saved.get("carried"), env.device)
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(state_path, "a training state of another run (other model size or settings): "
                                              "resume with the run's own options, or use a new --out") from e
        log.info("resumed %s at step %d", out, step)
    elif resume:
        log.warning("%s has no train_state.pt; starting from step 0", out)

    ddp = torch.nn.parallel.DistributedDataParallel(model) if env.world > 1 else model
    use_bf16 = env.device.type == "cuda" or cfg.cpu_bf16
    autocast = (lambda: torch.autocast(env.device.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext
    meta = {"train_config": asdict(cfg), "train_tokens": train_data.n_tokens}

    def save(final: bool = False) -> None:
        if not env.main:
            return
        atomic_save({"format": TRAIN_STATE, "format_version": 1, "model": model.state_dict(),
                     "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), "step": step,
                     "best": best, "history": history, "carried": state_tensors(carried)}, state_path)
        save_checkpoint(out / "last.pt", model, settings, {**meta, "step": step, "best_val_loss": best})
        write_log(out / "log.csv", history)
        plot_losses(history, out / "loss.png")

    tokens_per_step = cfg.batch_size * cfg.seq_len * env.world
    bar = tqdm(total=cfg.steps, initial=step, desc="training", unit="step", disable=not env.main)
    t_last, loss_sum, loss_n = time.perf_counter(), 0.0, 0
    while step < cfg.steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        if cfg.carry_state:
            x, y, fresh = train_data.stream_batch(cfg.seed, step, cfg.batch_size, cfg.seq_len, cfg.max_transpose,
                                                  env.rank)
            start = carried_on(carried, fresh, model)
        else:
            x, y = train_data.batch(cfg.seed, step, cfg.batch_size, cfg.seq_len, cfg.max_transpose,
                                    cfg.completion_bars, env.rank)
            start = None
        x, y = x.to(env.device), y.to(env.device)
        with autocast():
            loss, end = loss_and_state(ddp, x, y, start)
        if cfg.carry_state:
            carried = end.map(lambda t: t.detach().float())
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum / loss_n:.3f}")

        val_due = step % cfg.val_every == 0 or step == cfg.steps
        if val_due or step % cfg.save_every == 0:
            now = time.perf_counter()
            row = {"step": step, "lr": lr_at(step - 1, cfg), "train_loss": loss_sum / loss_n,
                   "grad_norm": float(grad_norm), "tokens_per_s": tokens_per_step * loss_n / (now - t_last),
                   "val_loss": ""}
            if val_due:
                row["val_loss"] = validate(model, val_data, cfg, env.device, autocast)
                log.info("step %d: train %.4f val %.4f (%.0f tokens/s)", step, row["train_loss"],
                         row["val_loss"], row["tokens_per_s"])
                if row["val_loss"] < best:
                    best = row["val_loss"]
                    if env.main:
                        save_checkpoint(out / "best.pt", model, settings, {**meta, "step": step, "val_loss": best})
            history.append(row)
            save()
            t_last, loss_sum, loss_n = time.perf_counter(), 0.0, 0
    bar.close()
    env.close()
    return {"step": step, "best_val_loss": best, "last_val_loss": history[-1]["val_loss"] if history else None}


def write_log(path: Path, history: list[dict]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=["step", "lr", "train_loss", "val_loss", "grad_norm", "tokens_per_s"])
    writer.writeheader()
    writer.writerows(history)
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))
