"""The tray app as a composer runs it: `muse-bridge` under Xvfb with a real system tray (trayer), answering
the global hotkey and its tray menu with candidates played over a JACK loopback, and quitting from the
menu with no note left sounding."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

from jack_fixtures import jack_backend, jack_server, left_sounding, port_named  # noqa: F401  (fixtures)
from muse_bridge.command_socket import CommandSocketError, send_command
from muse_bridge.ports import PolledInput

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("Xvfb", "trayer", "xdotool")


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def desktop(tmp_path):
    """A private X display with a tray host; yields the environment that reaches it."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install xvfb trayer xdotool)")
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    env = dict(os.environ, DISPLAY=f":{xvfb.stdout.readline().strip()}", QT_QPA_PLATFORM="xcb")
    tray = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
                             "--height", "32", "--transparent", "false"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: tray_window(env) is not None, "trayer never showed its window", 10)
        yield env
    finally:
        for process in (tray, xvfb):
            process.terminate()
            process.wait(timeout=10)


def xdotool(env: dict, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=10).stdout


def tray_window(env: dict) -> str | None:
    ids = xdotool(env, "search", "--onlyvisible", "--class", "trayer").split()
    return ids[0] if ids else None


def tray_menu(env: dict, *keys: str) -> None:
    """Right-click the tray icon (the tray's only one), then choose with the keyboard as a user can."""
    geometry = dict(line.split("=") for line in xdotool(env, "getwindowgeometry", "--shell", tray_window(env)).split())
    x = int(geometry["X"]) + int(geometry["WIDTH"]) // 2
    y = int(geometry["Y"]) + int(geometry["HEIGHT"]) // 2
    xdotool(env, "mousemove", str(x), str(y), "click", "3")
    time.sleep(0.5)
    xdotool(env, "key", *keys, "Return")


def test_the_tray_app_answers_the_hotkey_and_its_menu_over_jack(desktop, jack_server, tmp_path):
    tag = f"{os.getpid()}-tray"
    socket_path = tmp_path / "muse.sock"
    env = dict(desktop, MUSE_BRIDGE_SETTINGS=str(tmp_path / "settings.json"), MUSE_BRIDGE_SOCKET=str(socket_path))
    log_path = tmp_path / "app.log"
    with open(log_path, "w") as log:
        app = subprocess.Popen([sys.executable, "-m", "ui", "-v", "--midi-api", "jack",
                                "--in", f"Tray In {tag}", "--out", f"Tray Out {tag}", "--bars", "1",
                                "--candidates", "2", "--seed", "5", "--bpm", "240", "--device", "cpu", "--no-fast-step"],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    received: list[mido.Message] = []
    recorder = None
    try:
        wait_for(lambda: "listening on" in log_path.read_text() or app.poll() is not None, "the bridge never started")
        assert app.poll() is None, log_path.read_text()
        assert "global hotkey" in log_path.read_text(), "no global hotkey: " + log_path.read_text()
        backend = jack_backend()
        recorder = PolledInput("UNIX_JACK", port_named(backend.get_input_names(), f"Tray Out {tag}"), virtual=False,
                               client_name="tray-test-daw", queue_size=65536,
                               callback=lambda m, *_: received.append(m))
        time.sleep(0.3)   # the connection is in JACK's graph

        def note_ons() -> int:
            return sum(1 for m in received if m.type == "note_on" and m.velocity > 0)

        xdotool(env, "key", "ctrl+alt+s")
        wait_for(lambda: note_ons() > 0, "the hotkey's suggestion played no note")

        wait_for(lambda: "candidates in" in log_path.read_text(), "no suggestion logged")
        heard = note_ons()
        time.sleep(1.5)    # the 1-bar candidate (1 s at 240 bpm) ends
        heard = note_ons()
        tray_menu(env, "Down")                                   # Suggest
        wait_for(lambda: note_ons() > heard, "the menu's Suggest played no note")

        tray_menu(env, *["Down"] * 6)                            # Panic
        wait_for(lambda: {m.channel for m in received if m.type == "control_change" and m.control == 123}
                 == set(range(16)), "the menu's Panic sent no All Notes Off")

        xdotool(env, "key", "ctrl+alt+s")
        heard = note_ons()
        wait_for(lambda: note_ons() > heard, "the second hotkey suggestion played no note")
        tray_menu(env, "Up")                                     # Quit
        assert app.wait(timeout=20) == 0
        time.sleep(0.3)
        assert left_sounding(received) == set()
        with pytest.raises(CommandSocketError):
            send_command("show", socket_path, timeout=1)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        if recorder is not None:
            recorder.close()
