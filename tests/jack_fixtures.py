"""Live-test fixtures: a real JACK server (dummy driver) for MIDI loopback, and a micro model checkpoint.

Import them into a test module (`from jack_fixtures import jack_server, live_checkpoint`).
"""
from __future__ import annotations

import shutil
import threading
import time

import mido
import pytest

from muse_bridge.jackd import start_jackd, stop_jackd

_server = {"process": None, "users": 0}
_server_lock = threading.Lock()


@pytest.fixture(scope="session")
def jack_server():
    """JACK's default server for the whole test session, stopped with SIGTERM at the end if we started it."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (apt-get install -y --no-install-recommends jackd2)")
    with _server_lock:
        if _server["users"] == 0:
            _server["process"] = start_jackd()
        _server["users"] += 1
    yield "default"
    with _server_lock:
        _server["users"] -= 1
        if _server["users"] == 0:
            stop_jackd(_server["process"])
            _server["process"] = None


def jack_backend() -> mido.Backend:
    return mido.Backend("mido.backends.rtmidi/UNIX_JACK")


@pytest.fixture(scope="session")
def live_checkpoint(tmp_path_factory):
    """An untrained micro RWKV-7 checkpoint (fast on CPU), loaded."""
    import torch

    from engine.checkpoint import load_checkpoint, save_checkpoint
    from engine.model import RWKV7, config_for_size
    from engine.tokenizer import RemiTokenizer

    torch.manual_seed(0)
    tok = RemiTokenizer()
    path = tmp_path_factory.mktemp("live") / "micro.pt"
    save_checkpoint(path, RWKV7(config_for_size("micro", tok.vocab_size)), tok.settings)
    return load_checkpoint(path)


@pytest.fixture(scope="session")
def controls_checkpoint(tmp_path_factory):
    """An untrained micro checkpoint whose vocabulary has bar controls (density, polyphony, pitch classes)."""
    import torch

    from engine.checkpoint import load_checkpoint, save_checkpoint
    from engine.model import RWKV7, config_for_size
    from engine.tokenizer import RemiTokenizer, TokenizerSettings

    torch.manual_seed(0)
    tok = RemiTokenizer(TokenizerSettings().with_controls())
    path = tmp_path_factory.mktemp("live") / "micro_controls.pt"
    save_checkpoint(path, RWKV7(config_for_size("micro", tok.vocab_size)), tok.settings)
    return load_checkpoint(path)


def port_named(names: list[str], name: str) -> str:
    [match] = [n for n in names if n.endswith(":" + name)]
    return match


def wait_connected(out, bridge) -> None:
    """Send a control change the bridge ignores until one arrives: what JACK carries before a new
    connection is in its graph is lost, which no test is about."""
    before = bridge.stats().messages_in
    deadline = time.monotonic() + 10
    while bridge.stats().messages_in == before:
        assert time.monotonic() < deadline, "the connection to the bridge never carried a message"
        out.send(mido.Message("control_change", control=3, value=0))
        time.sleep(0.02)
    time.sleep(0.1)             # the probes still on their way land too
    assert bridge.settle(10)


def left_sounding(messages: list[mido.Message]) -> set[int]:
    """Pitches whose last note-on has no note-off after it in `messages` (what a DAW would leave hanging)."""
    sounding = set()
    for m in messages:
        if m.type == "note_on" and m.velocity > 0:
            sounding.add(m.note)
        elif m.type in ("note_on", "note_off"):
            sounding.discard(m.note)
    return sounding
