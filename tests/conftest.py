"""Shared fixtures: real POP909 files, a prepared dataset and a micro checkpoint, all small."""
import json
from pathlib import Path

import pytest
import torch

from engine.checkpoint import save_checkpoint
from engine.model import RWKV7, config_for_size
from engine.tokenizer import RemiTokenizer, TokenizerSettings

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def locks_taken_in_order():
    """Every test runs with the live side's lock order checked (muse_bridge/locks.py): a lock taken out of order
    fails the test, whichever thread took it."""
    from muse_bridge import locks

    locks.strict = True
    locks.violations.clear()
    yield
    assert not locks.violations, f"locks taken out of order: {locks.violations}"
POP909_FILES = sorted((DATA / "pop909").glob("*.mid"))


def hold_out(data_dir: Path, name: str) -> None:
    """Make the file `name` of a prepared dataset its only held-out (val) file, the others train."""
    index = json.loads((data_dir / "index.json").read_text())
    for f in index["files"]:
        f["split"] = "val" if f["path"] == name else "train"
    (data_dir / "index.json").write_text(json.dumps(index))


def prepare_songs(tmp_path_factory, settings: TokenizerSettings, held_out: str = "003.mid") -> Path:
    """The POP909 test songs prepared with `settings`, `held_out` the only validation song."""
    from trainer.prepare import PrepareConfig, prepare

    midi = tmp_path_factory.mktemp("songs")
    for f in POP909_FILES:
        (midi / f.name).write_bytes(f.read_bytes())
    out = tmp_path_factory.mktemp("data")
    prepare(PrepareConfig(midi, out, workers=1), settings)
    hold_out(out, held_out)
    return out


@pytest.fixture(scope="session")
def tokenizer() -> RemiTokenizer:
    return RemiTokenizer()


@pytest.fixture(scope="session")
def micro_checkpoint(tmp_path_factory, tokenizer) -> Path:
    """An untrained micro model in the engine's checkpoint format."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "micro.pt"
    save_checkpoint(path, RWKV7(config_for_size("micro", tokenizer.vocab_size)), tokenizer.settings, {"note": "test"})
    return path


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
