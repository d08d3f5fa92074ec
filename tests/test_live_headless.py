"""`muse-bridge --headless` as a user runs it: a separate process, driven by keys, stopped by SIGTERM."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido

from jack_fixtures import jack_backend, jack_server, left_sounding, live_checkpoint  # noqa: F401  (fixtures)
from muse_bridge.ports import close_output

ROOT = Path(__file__).resolve().parent.parent
MAIN = "import sys; from ui.cli import main; sys.exit(main(sys.argv[1:]))"


def test_headless_bridge_suggests_on_a_key_and_sigterm_leaves_no_note_sounding(jack_server, live_checkpoint, tmp_path):
    tag = f"{os.getpid()}-hl"
    process = subprocess.Popen(
        [sys.executable, "-c", MAIN, "--headless", "--midi-api", "jack", "--in", f"HL In {tag}", "--out", f"HL Out {tag}",
         "--checkpoint", live_checkpoint.path, "--settings", str(tmp_path / "s.json"), "--bars", "4",
         "--candidates", "2", "--bpm", "240", "--seed", "3", "--device", "cpu", "--no-fast-step"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    backend = jack_backend()
    received = []
    try:
        assert "Muse Bridge: in" in process.stdout.readline()
        process.stdout.readline()  # the key help
        names = backend.get_input_names()
        [out_name] = [n for n in names if n.endswith(f"HL Out {tag}")]
        recorder = backend.open_input(out_name, callback=received.append)
        [in_name] = [n for n in backend.get_output_names() if n.endswith(f"HL In {tag}")]
        keys = backend.open_output(in_name)
        keys.send(mido.Message("note_on", note=60, velocity=90))
        time.sleep(0.2)
        keys.send(mido.Message("note_off", note=60))
        process.stdin.write("s\n")
        process.stdin.flush()
        deadline = time.monotonic() + 30
        while not any(m.type == "note_on" and m.velocity > 0 for m in received):
            assert time.monotonic() < deadline, "no candidate note came out"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)   # mid-candidate: 4 bars at 240 bpm take 4 s
        assert process.wait(timeout=20) == 0
        time.sleep(0.2)
        assert left_sounding(received) == set()
        close_output(keys)
        recorder.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
