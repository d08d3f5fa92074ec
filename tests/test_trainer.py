"""The trainer end to end on a few real files: prepare, train, kill, resume, fine-tune."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import POP909_FILES
from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.model import RWKV7, config_for_size
from engine.style import load_style
from trainer.__main__ import main as trainer_main
from trainer.data import IGNORE, TokenWindows
from trainer.prepare import PrepareConfig, prepare

TRAIN_ARGS = ["--size", "micro", "--batch-size", "2", "--seq-len", "64", "--val-every", "4", "--val-windows", "2",
              "--save-every", "2", "--warmup-steps", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("midi")
    for f in POP909_FILES:
        (d / "songs").mkdir(exist_ok=True)
        (d / "songs" / f.name).write_bytes(f.read_bytes())
    (d / "broken.mid").write_bytes(b"MThd not really a midi file")
    return d


@pytest.fixture(scope="module")
def data_dir(midi_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    prepare(PrepareConfig(midi_dir, out, validation_fraction=0.34, workers=1))
    return out


def test_prepare_skips_a_corrupt_file_and_reports_why(data_dir):
    skipped = json.loads((data_dir / "skipped.json").read_text())
    assert [s["path"] for s in skipped] == ["broken.mid"]
    assert "broken" not in (data_dir / "index.json").read_text()


def test_prepare_keeps_every_bar_of_every_file(data_dir):
    index = json.loads((data_dir / "index.json").read_text())
    assert len(index["files"]) == len(POP909_FILES)
    for f in index["files"]:
        assert f["bars"][0] == 0 and len(f["bars"]) > 10


def test_split_is_by_file_and_deterministic(midi_dir, data_dir, tmp_path):
    again = tmp_path / "again"
    prepare(PrepareConfig(midi_dir, again, validation_fraction=0.34, workers=1))
    first = json.loads((data_dir / "index.json").read_text())["files"]
    second = json.loads((again / "index.json").read_text())["files"]
    assert [(f["path"], f["split"]) for f in first] == [(f["path"], f["split"]) for f in second]


def test_windows_start_on_a_bar_line_and_transpose_stays_in_range(data_dir):
    windows = TokenWindows(data_dir, "train")
    x, y = windows.batch(seed=0, step=3, batch_size=4, seq_len=64, max_transpose=6)
    assert (x[:, 0] == windows.tokenizer.bar_id).all()
    assert ((y == IGNORE) | (y >= 0)).all()
    shifts = set()
    for step in range(24):   # one window per step: the same window with and without transposition
        plain, _ = windows.batch(seed=0, step=step, batch_size=1, seq_len=256, max_transpose=0)
        moved, _ = windows.batch(seed=0, step=step, batch_size=1, seq_len=256, max_transpose=6)
        before, after = windows.pitch_of[plain[0].numpy()], windows.pitch_of[moved[0].numpy()]
        is_pitch = before >= 0
        assert ((after >= 0) == is_pitch).all()
        assert (moved[0][~torch.from_numpy(is_pitch)] == plain[0][~torch.from_numpy(is_pitch)]).all()
        [shift] = set((after - before)[is_pitch].tolist()) or {0}   # every pitch moves by the same interval
        assert abs(shift) <= 6
        assert windows.pitch_lo <= after[is_pitch].min() and after[is_pitch].max() <= windows.pitch_hi
        shifts.add(shift)
    assert len(shifts) > 3   # it does transpose, by several intervals


def test_completion_loss_masks_the_context_bars(data_dir):
    windows = TokenWindows(data_dir, "train")
    x, y = windows.batch(seed=0, step=0, batch_size=2, seq_len=128, completion_bars=1)
    for row_x, row_y in zip(x, y):
        last_bar = int((row_x == windows.tokenizer.bar_id).nonzero().max())
        assert (row_y[: last_bar - 1] == IGNORE).all()
        assert row_y[last_bar - 1] == windows.tokenizer.bar_id


def kill_after_first_checkpoint(run: subprocess.Popen, out: Path) -> Path:
    """SIGKILL a training run as soon as it has written its training state; that state's path."""
    state = out / "train_state.pt"
    deadline = time.monotonic() + 300
    while not state.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert state.exists(), "the run was killed before its first checkpoint"
    return state


def run_trainer(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.Popen([sys.executable, "-m", "trainer", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kwargs)


def test_killed_and_resumed_run_ends_with_the_same_weights(data_dir, tmp_path):
    steps = ["--steps", "8"]
    whole = run_trainer(["train", "--data", str(data_dir), "--out", str(tmp_path / "whole"), *steps, *TRAIN_ARGS])
    assert whole.wait(300) == 0, whole.stderr.read().decode()[-2000:]

    kill_after_first_checkpoint(run_trainer(["train", "--data", str(data_dir), "--out", str(tmp_path / "cut"),
                                             *steps, *TRAIN_ARGS]), tmp_path / "cut")

    resumed = run_trainer(["train", "--data", str(data_dir), "--out", str(tmp_path / "cut"), *steps, *TRAIN_ARGS,
                           "--resume"])
    assert resumed.wait(300) == 0, resumed.stderr.read().decode()[-2000:]
    a = load_checkpoint(tmp_path / "whole" / "last.pt").model.state_dict()
    b = load_checkpoint(tmp_path / "cut" / "last.pt").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(tmp_path / "cut" / "last.pt").meta["step"] == 8


def test_training_writes_log_curve_and_loadable_checkpoints(data_dir, tmp_path):
    assert trainer_main(["train", "--data", str(data_dir), "--out", str(tmp_path), "--steps", "4", *TRAIN_ARGS]) == 0
    assert (tmp_path / "loss.png").stat().st_size > 0
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 3
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.meta["val_loss"] > 0 and best.model.cfg.n_layer == 2


def test_state_finetune_writes_a_style_preset_the_session_can_load(data_dir, micro_checkpoint, tmp_path):
    assert trainer_main(["finetune", "--from", str(micro_checkpoint), "--mode", "state", "--data", str(data_dir),
                         "--out", str(tmp_path), "--steps", "3", "--batch-size", "2", "--seq-len", "32",
                         "--val-windows", "2"]) == 0
    ckpt = load_checkpoint(micro_checkpoint)
    state = load_style(tmp_path / "style.pt", ckpt)
    assert state.batch == 1 and len(state.layers) == ckpt.model.cfg.n_layer
    assert (tmp_path / "style.pt").stat().st_size < 200_000


def test_full_finetune_starts_from_the_checkpoint(data_dir, micro_checkpoint, tmp_path):
    assert trainer_main(["finetune", "--from", str(micro_checkpoint), "--mode", "full", "--data", str(data_dir),
                         "--out", str(tmp_path), "--steps", "2", *TRAIN_ARGS[2:]]) == 0
    tuned = load_checkpoint(tmp_path / "last.pt").model.state_dict()
    base = load_checkpoint(micro_checkpoint).model.state_dict()
    assert tuned.keys() == base.keys()
    assert not all(torch.equal(tuned[k], base[k]) for k in base)


def test_torchrun_trains_with_two_processes_using_the_same_command(data_dir, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--nproc-per-node", "2", "-m", "trainer", "train", "--data", str(data_dir),
                           "--out", str(tmp_path), "--steps", "2", *TRAIN_ARGS], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert load_checkpoint(tmp_path / "last.pt").meta["step"] == 2


def test_state_finetune_uses_the_learning_rate_given(data_dir, tokenizer, tmp_path):
    torch.manual_seed(0)
    model = RWKV7(config_for_size("micro", tokenizer.vocab_size))
    with torch.no_grad():  # a fresh model's zero output projections would give the state no gradient
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    save_checkpoint(tmp_path / "model.pt", model, tokenizer.settings)
    ckpt = load_checkpoint(tmp_path / "model.pt")
    moved = {}
    for lr in ("0", "0.01"):
        assert trainer_main(["finetune", "--from", str(tmp_path / "model.pt"), "--mode", "state", "--data",
                             str(data_dir), "--out", str(tmp_path / lr), "--steps", "2", "--batch-size", "2",
                             "--seq-len", "32", "--val-windows", "2", "--lr", lr]) == 0
        state = load_style(tmp_path / lr / "style.pt", ckpt)
        moved[lr] = max(float(layer.wkv.abs().max()) for layer in state.layers)
    assert moved["0"] == 0 < moved["0.01"]
