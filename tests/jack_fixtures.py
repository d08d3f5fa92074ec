"""Live-test fixtures: a real JACK server (dummy driver) for MIDI loopback, and a micro model checkpoint.

Import them into a test module (`from jack_fixtures import jack_server, live_checkpoint`).
"""
from __future__ import annotations

import shutil
import threading
import time
from collections import Counter

import mido
import pytest

from bench.jackd import start_jackd, stop_jackd
from muse_bridge.ports import PolledInput, close_output

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


def kill_jack_server() -> None:
    """SIGKILL the session's JACK server, as a crash would end it (the test is skipped where a server was already
    running when the tests began: it is not ours to kill)."""
    with _server_lock:
        process = _server["process"]
        if process is None:
            pytest.skip("the JACK server was not started by the tests")
        process.kill()
        process.wait()


def restart_jack_server() -> None:
    """Start the session's JACK server again after kill_jack_server (stopped at the session's end as before)."""
    with _server_lock:
        _server["process"] = start_jackd()


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
    assert bridge.intake.settle(10)


class Daw:
    """A test DAW: MIDI clock from a thread (messages scheduled at clock counts), and a recorder of
    what the bridge plays, each message stamped with the last clock sent when it arrived."""

    def __init__(self, bridge_in: str, bridge_out: str, bpm: float = 120.0):
        backend = jack_backend()
        self.out = backend.open_output(port_named(backend.get_output_names(), bridge_in))
        self.received: list[tuple[int, mido.Message]] = []
        self.clocks_sent = 0
        self.period = 60.0 / (bpm * 24)
        self.schedule: dict[int, list[mido.Message]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # Read by a thread of ours, as the bridge reads: an rtmidi callback runs on JACK's process
        # thread, waits there for the GIL under load, and JACK then drops what arrives meanwhile.
        self.inp = PolledInput("UNIX_JACK", port_named(backend.get_input_names(), bridge_out), virtual=False,
                               client_name="muse-test-daw", queue_size=65536, callback=self._record)
        self._thread: threading.Thread | None = None

    def _record(self, message: mido.Message, *_when) -> None:
        with self._lock:
            self.received.append((self.clocks_sent - 1, message))

    def at(self, clock: int, *messages: mido.Message) -> None:
        self.schedule.setdefault(clock, []).extend(messages)

    def play(self) -> None:
        """Start, then clock forever (until close); scheduled messages go right after their clock."""
        self._thread = threading.Thread(target=self._clock, daemon=True)
        self._thread.start()

    def _clock(self) -> None:
        self.out.send(mido.Message("start"))
        t0 = time.perf_counter()
        k = 0
        while not self._stop.is_set():
            delay = t0 + k * self.period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.out.send(mido.Message("clock"))
            with self._lock:
                self.clocks_sent = k + 1
            for message in self.schedule.pop(k, []):
                self.out.send(message)
            k += 1

    def wait_clock(self, clock: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.clocks_sent <= clock:
            assert time.monotonic() < deadline, f"clock {clock} never came"
            time.sleep(0.01)

    def notes(self) -> list[tuple[int, mido.Message]]:
        with self._lock:
            return [(c, m) for c, m in self.received if m.type in ("note_on", "note_off")]

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        close_output(self.out)
        self.inp.close()


def is_on(m: mido.Message) -> bool:
    return m.type == "note_on" and m.velocity > 0


def hanging(notes) -> dict[int, int]:
    """Pitches left sounding, and overlapping note-ons of one pitch (which would be hanging notes)."""
    sounding: Counter = Counter()
    for _, m in notes:
        if is_on(m):
            sounding[m.note] += 1
            assert sounding[m.note] == 1, f"pitch {m.note} struck again while sounding"
        elif sounding[m.note] > 0:
            sounding[m.note] -= 1
    return {p: n for p, n in sounding.items() if n}


def left_sounding(messages: list[mido.Message]) -> set[int]:
    """Pitches whose last note-on has no note-off after it in `messages` (what a DAW would leave hanging)."""
    sounding = set()
    for m in messages:
        if m.type == "note_on" and m.velocity > 0:
            sounding.add(m.note)
        elif m.type in ("note_on", "note_off"):
            sounding.discard(m.note)
    return sounding
