"""A JACK server with the dummy driver (no sound card), for MIDI loopback in tests, benchmarks and trials.

The tests use JACK's default server (one that is already running is used as it is, and not stopped); the stress
test and Ardour's rig start a server of their own by name (`server`), which every JACK client started with
JACK_DEFAULT_SERVER set to that name uses, rtmidi's included, so that they never meet the tests' ports.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

# 256 frames at 48 kHz (5.3 ms, a quarter of a MIDI clock tick at 120 bpm): with 64, cycles that come
# late on a loaded 2-core machine lost part of a 10,000-message flood inside JACK. --sync makes the server
# wait for every client each cycle: in its default asynchronous mode a client that finished late under
# CPU load lost a whole cycle of MIDI on its way (2 of 27 loaded floods; 0 of 25 with --sync).
PERIOD_FRAMES = 256
SAMPLE_RATE = 48_000
XRUN = re.compile(r"JackEngine::XRun: client = (.+?) was not finished")


def jackd_command(period: int = PERIOD_FRAMES, realtime: bool = False, server: str | None = None,
                  client_timeout_ms: int | None = None) -> list[str]:
    """The server's command line; `realtime`: as users run it (`-R`, asynchronous), else the tests' steady one;
    `server`: a named server; `client_timeout_ms`: how long a client may take before the server throws it out."""
    named = ["-n", server] if server else []
    named += ["-t", str(client_timeout_ms)] if client_timeout_ms else []
    mode = ["-R"] if realtime else ["--no-realtime", "--sync"]
    return ["jackd", *named, *mode, "-d", "dummy", "-r", str(SAMPLE_RATE), "-p", str(period)]


class JackUnavailable(RuntimeError):
    """jackd is not installed, or did not start."""


def jack_running(server: str | None = None) -> bool:
    if shutil.which("jack_wait") is None:
        return False
    check = subprocess.run(["jack_wait", "--check", *(["--server", server] if server else [])], capture_output=True,
                           text=True)
    return check.stdout.strip() == "running"


def start_jackd(timeout: float = 20.0, period: int = PERIOD_FRAMES, realtime: bool = False, server: str | None = None,
                client_timeout_ms: int | None = None) -> subprocess.Popen | None:
    """Start the dummy-driver server (`period` frames per cycle at 48 kHz; `server`: by that name) and wait until
    it answers; None when one was already running."""
    if shutil.which("jackd") is None:
        raise JackUnavailable("jackd is not installed (apt-get install -y --no-install-recommends jackd2)")
    if jack_running(server):
        return None
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    # its messages go to a file, never to a pipe nobody reads: under load jackd reports every xrun, and once a
    # pipe's buffer is full the server blocks writing to it, and the whole graph with it
    log_file = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(jackd_command(period, realtime, server, client_timeout_ms), stdout=subprocess.DEVNULL,
                               stderr=log_file, text=True, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_file.seek(0)
            raise JackUnavailable(f"jackd exited with {process.returncode}: {log_file.read()[-2000:]}")
        if jack_running(server):
            process.log_file = log_file   # read by `xruns`
            return process
        time.sleep(0.1)
    stop_jackd(process)
    raise JackUnavailable(f"jackd did not answer within {timeout:.0f} s")


def xruns(process: subprocess.Popen | None, since: int = 0) -> tuple[list[str], int]:
    """The clients that a server this module started reported late for a cycle (an xrun: what such a client sent or
    heard in it may be lost), in its log from offset `since`, and the log's end: the next call's `since`. A server
    found running (None) says nothing here."""
    log_file = getattr(process, "log_file", None)
    if log_file is None:
        return [], since
    fd = log_file.fileno()   # read without moving the offset the server writes at (it shares the file)
    data = os.pread(fd, max(0, os.fstat(fd).st_size - since), since)
    return XRUN.findall(data.decode(errors="replace")), since + len(data)


def stop_jackd(process: subprocess.Popen | None) -> None:
    """SIGTERM the server this module started (a server found running is left alone)."""
    if process is not None:
        stop_process(process, signal.SIGTERM)


def may_use_realtime() -> bool:
    """Whether `chrt -f` may run a process at realtime priority here."""
    return shutil.which("chrt") is not None and subprocess.run(["chrt", "-f", "1", "true"],
                                                                capture_output=True).returncode == 0


def wait_port(patchbay, suffix: str, timeout: float = 60.0, gone=lambda: None, **kind) -> str:
    """The one MIDI port (of `kind`: is_input=True, is_output=True) whose name ends with `suffix`, once it exists;
    JackUnavailable after `timeout` seconds, or at once when `gone()` says why it never will."""
    deadline = time.monotonic() + timeout
    while True:
        names = [p.name for p in patchbay.get_ports(is_midi=True, **kind) if p.name.endswith(suffix)]
        if len(names) == 1:
            return names[0]
        why = gone()
        if why:
            raise JackUnavailable(why)
        if time.monotonic() > deadline:
            raise JackUnavailable(f"JACK port ending {suffix!r} did not appear within {timeout:.0f} s")
        time.sleep(0.01)


def connect_ports(patchbay, source: str, destination: str, tries: int = 5) -> None:
    """Connect two ports; JACK refused now and then while a realtime client was starting: tried again."""
    import jack

    for attempt in range(tries):
        try:
            patchbay.connect(source, destination)
            return
        except jack.JackError:
            if attempt == tries - 1:
                raise
            time.sleep(0.1)


@contextmanager
def jack_server(server: str):
    """JACK clients this process opens meanwhile (rtmidi's, which read only the environment) use `server`; the
    environment is as it was afterwards, so that later clients (the tests' own) find the default server."""
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = server
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old


def exit_on_sigterm() -> None:
    """SIGTERM ends a long run as Ctrl-C does: its `with` blocks stop every process (and server) it started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def stop_process(process: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 10.0) -> None:
    """Send `sig` to a process that still runs and wait for it; killed after `timeout` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
