"""JACK going away under a running bridge: the loss is said once, the composer's context is kept, and when the
server is back the bridge's ports are open again and Suggest plays, with nothing left sounding and no traceback."""
from __future__ import annotations

import logging
import os
import threading
import time

import mido
import pytest

from jack_fixtures import (Daw, hanging, is_on, jack_server, kill_jack_server, live_checkpoint,  # noqa: F401
                           restart_jack_server, wait_connected)
from muse_bridge.bridge import LiveBridge
from muse_bridge.events import Notice
from muse_bridge.settings import BridgeSettings

CLOCKS_PER_BAR = 96


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_jack_killed_and_restarted_under_a_running_bridge(jack_server, live_checkpoint, tmp_path, caplog):
    tag = f"{os.getpid()}-{time.monotonic_ns() % 10**6}"
    settings = BridgeSettings().with_changes({
        "ports.api": "jack", "ports.input_name": f"Muse In {tag}", "ports.output_name": f"Muse Out {tag}",
        "candidates": 2, "bars": 1, "sampling.max_tokens_per_bar": 16, "seed": 1, "precompute": False})
    crashes: list = []
    threading.excepthook, hook = (lambda args: crashes.append(args)), threading.excepthook
    notices: list[Notice] = []
    caplog.set_level(logging.WARNING)
    bridge = LiveBridge(live_checkpoint, settings, settings_path=None, client_name=f"muse-{tag}").start()
    try:
        bridge.events.subscribe(lambda e: notices.append(e) if isinstance(e, Notice) else None)
        daw = Daw(settings.ports.input_name, settings.ports.output_name)
        wait_connected(daw.out, bridge)
        for beat, pitch in enumerate((60, 64, 67, 72)):
            daw.out.send(mido.Message("note_on", note=pitch, velocity=90))
            time.sleep(0.1)
            daw.out.send(mido.Message("note_off", note=pitch))
        daw.close()                      # the test's own JACK ports go before the server does
        assert bridge.intake.settle(10)
        context = list(bridge.score.committed) + bridge.score.tail(int(bridge.clock.position()))
        assert bridge.score.notes_seen == 4

        kill_jack_server()
        wait_for(lambda: any("went away" in n.text for n in notices), 15, "the bridge never said JACK went away")
        assert not bridge.ports.is_open
        restart_jack_server()
        wait_for(lambda: bridge.ports.is_open, 20, "the bridge's ports never came back")
        assert sum("went away" in n.text for n in notices) == 1, [n.text for n in notices]   # said once
        assert any("JACK is back" in n.text for n in notices)
        kept = list(bridge.score.committed) + bridge.score.tail(int(bridge.clock.position()))
        assert kept[:len(context)] == context, "the composer's context was not kept"

        daw = Daw(settings.ports.input_name, settings.ports.output_name)   # the DAW, back on the new server
        try:
            wait_connected(daw.out, bridge)
            daw.at(12, mido.Message("control_change", control=20, value=127))
            daw.play()
            assert bridge.suggester.done.wait(20), "no suggestion after JACK came back"
            playback = bridge.player.playback
            assert playback is not None and playback.candidate.notes
            daw.wait_clock(playback.start_tick // 20 + 2 * CLOCKS_PER_BAR)
            notes = daw.notes()
            assert any(is_on(m) for _, m in notes), "Suggest played nothing after JACK came back"
            assert hanging(notes) == {}
        finally:
            daw.close()
    finally:
        bridge.close()
        threading.excepthook = hook
    assert crashes == [], crashes
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
