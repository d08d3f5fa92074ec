"""Shared fixtures: real POP909 files, a prepared dataset and a micro checkpoint, all small."""
import json
from pathlib import Path

import pytest
import torch

from engine.checkpoint import save_checkpoint
from engine.model import RWKV7, config_for_size
from engine.tokenizer import RemiTokenizer

DATA = Path(__file__).parent / "data"
POP909_FILES = sorted((DATA / "pop909").glob("*.mid"))


def hold_out(data_dir: Path, name: str) -> None:
    """Make the file `name` of a prepared dataset its only held-out (val) file, the others train."""
    index = json.loads((data_dir / "index.json").read_text())
    for f in index["files"]:
        f["split"] = "val" if f["path"] == name else "train"
    (data_dir / "index.json").write_text(json.dumps(index))


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
