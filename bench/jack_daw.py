"""A DAW on JACK, for timing what the bridge plays as a DAW hears it.

It runs in a process of its own (as a DAW does), as a JACK client whose process callback writes
MIDI clock, transport and a script of messages at exact frames, and stamps every message that comes
back with the frame at which it arrived. Those frames are the DAW's own clock: a note's error is its
distance, in frames, from the frame of the clock that carries its grid position.

    with JackDaw(bridge_in="Muse In", bridge_out="Muse Out", script=script) as daw:
        daw.connected(lambda: bridge.stats().messages_in > 0)
        recording = daw.run()

`python -m bench.jack_daw` is the child process; `JackDaw` starts and drives it.
"""
from __future__ import annotations

import argparse
import bisect
import json
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

CLOCKS_PER_QUARTER = 24
START, CONTINUE, STOP, CLOCK, SONG_POSITION = 0xFA, 0xFB, 0xFC, 0xF8, 0xF2
PROBE = (0xB0, 3, 0)           # a control change the bridge ignores: it shows the connection carries
PROBE_SECONDS = 0.02
LEAD_SECONDS = 0.3             # from "go" to the script's time zero


@dataclass(frozen=True)
class Run:
    """The transport running: `clocks` clock messages from `at` seconds, then Stop. It starts with Start
    (kind "start", from the top), Continue (kind "continue", from where it stopped: `daw_clock`), or a Song
    Position Pointer to `daw_clock` (a multiple of 6: it counts sixteenths) and Continue (kind "songpos")."""

    at: float
    clocks: int
    kind: str = "start"
    daw_clock: int = 0


@dataclass
class Script:
    """What the DAW sends: its tempo, transport runs, and messages at seconds from time zero."""

    bpm: float
    runs: list[Run]
    events: list[tuple[float, list[int]]] = field(default_factory=list)
    tail: float = 1.0          # seconds recorded after the last run ends

    def to_json(self) -> str:
        return json.dumps({"bpm": self.bpm, "runs": [asdict(r) for r in self.runs], "events": self.events,
                           "tail": self.tail})

    @classmethod
    def from_json(cls, text: str) -> "Script":
        d = json.loads(text)
        return cls(d["bpm"], [Run(**r) for r in d["runs"]], [(t, list(b)) for t, b in d["events"]], d["tail"])

    def at_clock(self, run: int, clock: float, *messages: list[int]) -> None:
        """Messages at clock `clock` (fractional: between clocks) of run `run`."""
        t = self.runs[run].at + clock * 60.0 / (self.bpm * CLOCKS_PER_QUARTER)
        self.events += [(t, list(m)) for m in messages]


@dataclass(frozen=True)
class Recording:
    """Every message from the bridge with its arrival frame, and the frame of every clock the DAW sent."""

    samplerate: int
    period: int                                  # frames per JACK cycle
    zero_frame: int                              # the frame of the script's time zero
    clock_frames: list[int]                      # frame of each clock sent, in order
    clock_positions: list[int]                   # the DAW's position of each, in clocks from its bar 1
    received: list[tuple[int, list[int]]]        # (frame, bytes)

    def ms(self, frames: float) -> float:
        return 1000.0 * frames / self.samplerate

    def frame_at(self, seconds: float) -> int:
        """The frame of a script time (seconds from time zero), as the DAW scheduled it."""
        return self.zero_frame + round(seconds * self.samplerate)

    def daw_clock_at(self, frame: int) -> float:
        """The DAW's position, in clocks, at a frame (between clocks: linear; before the first: its position)."""
        i = bisect.bisect_right(self.clock_frames, frame) - 1
        if i < 0:
            return float(self.clock_positions[0])
        if i + 1 < len(self.clock_frames) and self.clock_positions[i + 1] == self.clock_positions[i] + 1:
            span = self.clock_frames[i + 1] - self.clock_frames[i]
            return self.clock_positions[i] + (frame - self.clock_frames[i]) / span
        return float(self.clock_positions[i])

    def grid_error_ms(self, frame: int, clocks_per_line: int = 3) -> float:
        """How far (signed, ms; late is positive) a message at `frame` lies from the nearest grid line of the
        DAW's timeline: the clocks whose position is a multiple of `clocks_per_line` (3: an eighth of a beat)."""
        i = bisect.bisect_right(self.clock_frames, frame)
        near = [self.clock_frames[j] for j in range(max(0, i - clocks_per_line - 1),
                                                    min(len(self.clock_frames), i + clocks_per_line + 1))
                if self.clock_positions[j] % clocks_per_line == 0]
        return self.ms(frame - min(near, key=lambda f: abs(frame - f)))

    def note_ons(self) -> list[tuple[int, int]]:
        """(frame, pitch) of every note-on."""
        return [(f, b[1]) for f, b in self.received if len(b) == 3 and b[0] & 0xF0 == 0x90 and b[2] > 0]


def _schedule(script: Script, zero: int, samplerate: int) -> tuple[list[tuple[int, bytes]], list[int], list[int]]:
    """Every message the DAW sends, at its frame; and the frames and positions of its clocks."""
    out: list[tuple[int, int, bytes]] = []          # (frame, order, bytes): transport before its first clock
    frames_per_clock = samplerate * 60.0 / (script.bpm * CLOCKS_PER_QUARTER)
    clock_frames, positions = [], []
    for run in script.runs:
        first = zero + round(run.at * samplerate)
        if run.kind == "songpos":
            sixteenths = run.daw_clock // 6
            out.append((first - 1, 0, bytes([SONG_POSITION, sixteenths & 0x7F, sixteenths >> 7])))
            out.append((first, 0, bytes([CONTINUE])))
            base = sixteenths * 6
        elif run.kind == "continue":
            out.append((first, 0, bytes([CONTINUE])))
            base = run.daw_clock
        elif run.kind == "start":
            out.append((first, 0, bytes([START])))
            base = 0
        else:
            raise ValueError(f"a run starts with start, continue or songpos, not {run.kind!r}")
        for k in range(run.clocks):
            frame = first + round(k * frames_per_clock)
            out.append((frame, 1, bytes([CLOCK])))
            clock_frames.append(frame)
            positions.append(base + k)
        out.append((first + round(run.clocks * frames_per_clock), 0, bytes([STOP])))
    for t, data in script.events:
        out.append((zero + round(t * samplerate), 2, bytes(data)))
    out.sort(key=lambda e: (e[0], e[1]))
    return [(f, b) for f, _, b in out], clock_frames, positions


def child(args: argparse.Namespace) -> None:
    """The DAW process: connect, probe until told to go, play the script, write the recording."""
    import jack

    script = Script.from_json(Path(args.script).read_text())
    client = jack.Client(args.name, no_start_server=True)
    out_port = client.midi_outports.register("out")
    in_port = client.midi_inports.register("in")
    sr = client.samplerate
    state = {"events": None, "next": 0, "probe_at": 0, "end": None}
    received: list[tuple[int, bytes]] = []
    finished = threading.Event()
    shutdown: list[str] = []

    @client.set_shutdown_callback
    def gone(status, reason: str) -> None:
        shutdown.append(reason)
        finished.set()

    @client.set_process_callback
    def process(frames: int) -> None:
        now = client.last_frame_time
        for offset, data in in_port.incoming_midi_events():
            received.append((now + offset, bytes(data)))
        out_port.clear_buffer()
        events = state["events"]
        if events is None:
            if now >= state["probe_at"]:
                out_port.write_midi_event(0, bytes(PROBE))
                state["probe_at"] = now + int(PROBE_SECONDS * sr)
            return
        i = state["next"]
        while i < len(events) and events[i][0] < now + frames:
            frame, data = events[i]
            out_port.write_midi_event(max(0, frame - now), data)
            i += 1
        state["next"] = i
        if i == len(events) and now >= state["end"]:
            finished.set()

    with client:
        out_port.connect(args.to)
        in_port.connect(args.listen)
        print("connected", flush=True)
        sys.stdin.readline()                         # "go"
        zero = client.frame_time + int(LEAD_SECONDS * sr)
        events, clock_frames, positions = _schedule(script, zero, sr)
        state["end"] = (events[-1][0] if events else zero) + int(script.tail * sr)
        state["events"] = events
        finished.wait()
        period = client.blocksize
    Path(args.out).write_text(json.dumps({
        "samplerate": sr, "period": period, "zero_frame": zero, "clock_frames": clock_frames, "clock_positions": positions,
        "received": [(f, list(b)) for f, b in received]}))
    print(f"JACK shut the DAW down: {shutdown[0]}" if shutdown else "done", flush=True)


class JackDaw:
    """The DAW process, connected to the bridge's ports (their names end with `bridge_in` / `bridge_out`)."""

    def __init__(self, bridge_in: str, bridge_out: str, script: Script, workdir: Path, name: str = "muse-daw"):
        import mido

        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
        to = _port(backend.get_output_names(), bridge_in)
        listen = _port(backend.get_input_names(), bridge_out)
        workdir.mkdir(parents=True, exist_ok=True)
        self._script, self._out = workdir / "script.json", workdir / "recording.json"
        self._script.write_text(script.to_json())
        self.duration = max(r.at + r.clocks * 60.0 / (script.bpm * CLOCKS_PER_QUARTER) for r in script.runs) \
            + script.tail + LEAD_SECONDS
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.jack_daw", "--name", name, "--script", str(self._script),
             "--out", str(self._out), "--to", to, "--listen", listen],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self._process.stdout.readline().strip() != "connected":
            self.close()
            raise RuntimeError("the JACK DAW did not connect to the bridge's ports")

    def connected(self, carried: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `carried()` says the probes arrive: what JACK carries before a connection is in its
        graph is lost, which no measurement is about."""
        deadline = time.monotonic() + timeout
        while not carried():
            if time.monotonic() > deadline:
                raise RuntimeError("the connection from the JACK DAW to the bridge never carried a message")
            time.sleep(0.02)
        time.sleep(0.1)

    def go(self) -> float:
        """Start the script; returns the monotonic time of its time zero (approximately)."""
        self._process.stdin.write("go\n")
        self._process.stdin.flush()
        return time.monotonic() + LEAD_SECONDS

    def wait(self, timeout: float | None = None) -> Recording:
        """Block until the script has played (and its tail been recorded); the recording."""
        timeout = self.duration + 30 if timeout is None else timeout
        try:
            out, _ = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise RuntimeError(f"the JACK DAW did not finish its script within {timeout:.0f} s") from None
        if out.strip() != "done":
            raise RuntimeError(f"the JACK DAW ended without a recording (exit {self._process.returncode}): "
                               f"{out.strip()}")
        d = json.loads(self._out.read_text())
        return Recording(d["samplerate"], d["period"], d["zero_frame"], d["clock_frames"], d["clock_positions"],
                         [(f, b) for f, b in d["received"]])

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> "JackDaw":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _port(names: list[str], name: str) -> str:
    matches = [n for n in names if n.endswith(":" + name)]
    if len(matches) != 1:
        raise RuntimeError(f"JACK port {name!r} not found (or not one): {names}")
    return matches[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the JACK DAW process (started by JackDaw)")
    parser.add_argument("--name", default="muse-daw")
    parser.add_argument("--script", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--to", required=True, help="the bridge's input port")
    parser.add_argument("--listen", required=True, help="the bridge's output port")
    child(parser.parse_args(argv))


if __name__ == "__main__":
    main()
