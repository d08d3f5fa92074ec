"""The stress test's DAW: a client with its own rtmidi/JACK port that sends its clock from a timed loop.

It waits for the bridge's input port (the bridge may still be starting), connects to it, waits until the
recorders hear its port too, and begins after the script's lead.

It plays one session's script (bench/stress.py makes it from a seed): every slot of the loop lasts one MIDI
clock at the tempo in force, and a clock goes out in it while the transport runs. At its slot each action goes
out: notes and pedal (channel 2), trigger control changes, Start, Stop, Continue, Song Position Pointer, a
tempo change, the connection to the bridge cut or made again, or a command through the bridge's command
channel (a marker control change goes out first, so the recording shows when it was given). It prints one JSON
line: the wall time of every action, and whether the bridge's input was connected then.

    python -m bench.stress_daw SCRIPT.json     (started by bench/stress.py)
"""
from __future__ import annotations

import faulthandler
import json
import os
import sys
import threading
import time

from bench.stress_check import HANG_SECONDS, LINK_CONTROL, MARKER_CONTROL, script_seconds

CLOCKS_PER_QUARTER = 24
PORT_WAIT_SECONDS = 60.0


def _ours(names: list[str], suffix: str) -> str | None:
    matches = [n for n in names if n.endswith(suffix)]
    return matches[0] if len(matches) == 1 else None


def main(argv: list[str] | None = None) -> None:
    import jack
    import mido

    from muse_bridge.command_socket import CommandSocketError, send_command

    script = json.loads(open((argv or sys.argv[1:])[0]).read())
    seconds = script_seconds(script["slots"], script["bpm"], script["lead"], script["tail"])
    faulthandler.dump_traceback_later(seconds + HANG_SECONDS, exit=False)   # where a hung DAW hangs, for its log
    out = mido.Backend("mido.backends.rtmidi/UNIX_JACK").open_output(
        "out", virtual=True, client_name=script["client"])
    patchbay = jack.Client(script["client"] + "-patchbay", no_start_server=True)
    deadline = time.monotonic() + PORT_WAIT_SECONDS
    while True:   # the bridge may not be up yet: the DAW waits for its port, as a DAW's saved routing does
        names = [p.name for p in patchbay.get_ports(is_midi=True)]
        ours, bridge = _ours(names, f"{script['client']}:out"), _ours(names, ":" + script["bridge_in"])
        if ours and bridge:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the bridge's port {script['bridge_in']!r} never appeared")
        time.sleep(0.02)
    patchbay.connect(ours, bridge)
    while not set(script["recorders"]) <= {p.name for p in patchbay.get_all_connections(ours)}:
        if time.monotonic() > deadline:   # what is not recorded cannot be checked
            raise SystemExit(f"the recorders {script['recorders']} never connected")
        time.sleep(0.01)
    time.sleep(script["lead"])

    connected = True
    commands: list[threading.Thread] = []
    done: list[tuple[int, str, object, float, bool]] = []   # (slot, kind, value, wall time, connected)

    def command(name: str) -> None:
        try:
            send_command(name)
        except CommandSocketError:
            pass   # the checker sees that the command was never answered

    actions: dict[int, list] = {}
    for slot, kind, value in script["actions"]:
        actions.setdefault(slot, []).append((kind, value))
    period = 60.0 / (script["bpm"] * CLOCKS_PER_QUARTER)
    running = False
    clocks = 0
    next_at = time.perf_counter()
    for slot in range(script["slots"]):
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        next_at += period
        if running:
            out.send(mido.Message("clock"))
            clocks += 1
        for kind, value in actions.get(slot, []):
            done.append((slot, kind, value, time.time(), connected))
            if kind == "midi":
                out.send(mido.Message.from_bytes(value))
            elif kind in ("start", "continue", "stop"):
                out.send(mido.Message(kind))
                running = kind != "stop"
            elif kind == "songpos":
                out.send(mido.Message("songpos", pos=value))
                out.send(mido.Message("continue"))
                running = True
            elif kind == "tempo":
                period = 60.0 / (value * CLOCKS_PER_QUARTER)
            elif kind == "disconnect" and connected:   # marked first: the recording shows where the bridge lost it
                out.send(mido.Message("control_change", channel=1, control=LINK_CONTROL, value=0))
                patchbay.disconnect(ours, bridge)
                connected = False
            elif kind == "connect" and not connected:   # two cuts may overlap: the first connect ends both
                patchbay.connect(ours, bridge)
                connected = True
                out.send(mido.Message("control_change", channel=1, control=LINK_CONTROL, value=127))
            elif kind == "command":
                out.send(mido.Message("control_change", channel=1, control=MARKER_CONTROL, value=len(done) % 128))
                commands.append(threading.Thread(target=command, args=(value,), daemon=True))
                commands[-1].start()
    for thread in commands:
        thread.join(10)
    time.sleep(script["tail"])
    print(json.dumps({"actions": done, "clocks": clocks}), flush=True)
    out.close()
    # no jack_client_close for the patchbay: it hung the process for good now and then (2 of 15 sessions, the
    # stack dump in jack.Client.close); the server drops a client whose process has ended
    os._exit(0)


if __name__ == "__main__":
    main()
