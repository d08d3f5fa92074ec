"""The bridge against a MIDI clock nobody here wrote: x42's jack_midi_clock, recorded with jack_midi_dump.

A DAW's clock jitters, bunches and now and then drops a clock; bench/jack_daw.py's own clock does none of
that. Here JACK's transport drives `jack_midi_clock -b BPM -B -J JITTER` (package jack-midi-clock; `-J` adds
up to that percentage of an interval to every clock), a DAW-like client in a process of its own plays a
phrase locked to that clock (it counts the clocks it hears) and sends CC 20 (Suggest) before bars 5, 8, 11
and 14, and `jack_midi_dump -a` records the clock and "Muse Out" on one port, so every note-on has an
exact frame with the clock frames beside it.

Each note-on's error is its frame minus the frame of the nearest grid clock: a clock whose number, counted
from Start with any missing clock counted too, is a multiple of 3 (an eighth of a beat: every candidate
position lies on that grid). A note off by a whole clock lies more than half a clock from every grid clock.
A note whose grid clock x42 never sent (its transport jumped past it) is measured from where that clock
would have been, between its neighbours, and reported apart: no clock marked it.

    with X42Session(bridge_in, bridge_out, bpm=120, jitter=10, workdir=DIR) as x42:
        recording = x42.play(runs)          # runs: ClockRun, one transport run each
        rows = analyse(recording, runs, bpm)

`python -m bench.x42_clock --follow ...` is the DAW-like child process; X42Session starts and drives it.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.jackd import stop_process

CLOCKS_PER_QUARTER = 24
START, CONTINUE, STOP, CLOCK = 0xFA, 0xFB, 0xFC, 0xF8
GRID_CLOCKS = 3                      # an eighth of a beat
RUN_GAP_SECONDS = 1.0                # between one transport run's Stop and the next Start
DUMP_CLIENT = "x42-dump"


class X42Unavailable(RuntimeError):
    """jack_midi_clock or jack_midi_dump is not installed."""


def tools_missing() -> str | None:
    """Why this benchmark cannot run here (None when it can)."""
    missing = [t for t in ("jack_midi_clock", "jack_midi_dump") if shutil.which(t) is None]
    return (f"{', '.join(missing)} not installed (apt-get install -y --no-install-recommends jack-midi-clock "
            "jackd2)") if missing else None


@dataclass(frozen=True)
class ClockRun:
    """One transport run from the top: Start, `clocks` clocks, Stop; the DAW-like client's messages at clock
    positions (fractional: between clocks), counted from the first clock after Start."""

    clocks: int
    events: list[tuple[float, list[int]]] = field(default_factory=list)
    suggests: list[int] = field(default_factory=list)     # clock positions of the Suggest requests

    def to_json(self) -> dict:
        return {"clocks": self.clocks, "events": self.events, "suggests": self.suggests}


@dataclass(frozen=True)
class ClockRecording:
    """What jack_midi_dump recorded, split into transport runs: per run, the clock frames numbered from Start
    (a missing clock leaves a number out) and every other message with its frame."""

    samplerate: int
    frames_per_clock: float
    runs: list[dict]     # {"clock_frames": [...], "clock_numbers": [...], "missing": n, "messages": [(frame, bytes)]}


def parse_dump(lines: list[str]) -> list[tuple[int, list[int]]]:
    """jack_midi_dump -a's lines ("  51072: f8", "  53000: 90 3c 64 note on (channel 0): ...") as (frame, bytes)."""
    out = []
    for line in lines:
        head, sep, rest = line.partition(":")
        if not sep or not head.strip().isdigit():
            continue   # a line of jack_midi_dump's own
        data = []
        for token in rest.split():
            if len(token) != 2 or any(c not in "0123456789abcdef" for c in token):
                break  # the bytes end where its description begins
            data.append(int(token, 16))
        out.append((int(head), data))
    return out


def split_runs(messages: list[tuple[int, list[int]]], frames_per_clock: float) -> list[dict]:
    """The messages from each Start to the next, the clocks numbered by the frames between them: a gap of about
    n intervals is n clocks (one or more missing)."""
    runs: list[dict] = []
    run = None
    for frame, data in messages:
        if data and data[0] in (START, CONTINUE):
            run = {"start_frame": frame, "clock_frames": [], "clock_numbers": [], "missing": 0, "messages": [],
                   "missing_frames": {}}
            runs.append(run)
            continue
        if run is None:
            continue
        if data == [CLOCK]:
            frames, numbers = run["clock_frames"], run["clock_numbers"]
            step = max(1, round((frame - frames[-1]) / frames_per_clock)) if frames else 1
            run["missing"] += step - 1
            for k in range(1, step):   # where each missing clock would have been: between its neighbours
                run["missing_frames"][numbers[-1] + k] = frames[-1] + k * (frame - frames[-1]) / step
            numbers.append(numbers[-1] + step if numbers else 0)
            frames.append(frame)
        else:
            run["messages"].append((frame, data))
    return runs


def grid_error_frames(run: dict, frame: int) -> tuple[float, bool]:
    """Signed frames (late is positive) from the nearest grid clock of `run`, and whether that clock is one the
    DAW never sent (its frame then lies between its neighbours')."""
    grid = [(f, False) for f, n in zip(run["clock_frames"], run["clock_numbers"]) if n % GRID_CLOCKS == 0]
    grid += [(f, True) for n, f in run["missing_frames"].items() if n % GRID_CLOCKS == 0]
    nearest, missing = min(grid, key=lambda g: abs(frame - g[0]))
    return float(frame - nearest), missing


def left_sounding(messages: list[tuple[int, list[int]]]) -> int:
    """Note-ons never followed by a note-off of their pitch and channel."""
    sounding: dict[tuple[int, int], int] = {}
    for _, b in messages:
        if len(b) == 3 and b[0] & 0xF0 in (0x80, 0x90):
            key = (b[0] & 0x0F, b[1])
            if b[0] & 0xF0 == 0x90 and b[2] > 0:
                sounding[key] = sounding.get(key, 0) + 1
            elif sounding.get(key):
                sounding[key] -= 1
    return sum(sounding.values())


def analyse(recording: ClockRecording, runs: list[ClockRun]) -> list[dict]:
    """Per transport run: each Suggest's note-ons and their errors from the grid clock, missing clocks seen,
    notes off by a whole clock, note-ons without a note-off."""
    ms = 1000.0 / recording.samplerate
    half_clock = recording.frames_per_clock / 2
    rows = []
    for run, recorded in zip(runs, recording.runs):
        if not recorded["clock_frames"]:
            rows.append({"error": "no clock recorded in this run"})
            continue
        by_number = dict(zip(recorded["clock_numbers"], recorded["clock_frames"]))
        first = recorded["clock_frames"][0]
        suggest_frames = [by_number.get(c, first + c * recording.frames_per_clock) for c in run.suggests]
        ons = [f for f, b in recorded["messages"] if len(b) == 3 and b[0] & 0xF0 == 0x90 and b[2] > 0]
        bounds = suggest_frames + [math.inf]
        candidates = [[f for f in ons if bounds[i] <= f < bounds[i + 1]] for i in range(len(run.suggests))]
        measured = [[grid_error_frames(recorded, f) for f in c] for c in candidates]
        errors = [[e for e, missing in c if not missing] for c in measured]
        flat = [e for c in errors for e in c]
        dropped = [e for c in measured for e, missing in c if missing]
        rows.append({
            "suggestions": len(run.suggests), "suggestions_heard": sum(1 for c in candidates if c),
            "note_ons": len(flat) + len(dropped), "errors_ms": [round(e * ms, 3) for e in flat], "errors_frames": flat,
            # notes whose grid clock the DAW dropped: measured from where it would have been, and kept apart
            "on_a_missing_clock_ms": [round(e * ms, 2) for e in dropped],
            "candidate_median_ms": [round(sorted(c)[len(c) // 2] * ms, 2) if c else None for c in errors],
            "off_by_a_whole_clock": sum(1 for e in flat if abs(e) > half_clock),
            "missing_clocks": recorded["missing"], "clocks": len(recorded["clock_frames"]),
            "irregular_gaps": sum(1 for a, b in zip(recorded["clock_frames"], recorded["clock_frames"][1:])
                                  if abs(b - a - recording.frames_per_clock) > 32),
            "note_ons_without_note_off": left_sounding(recorded["messages"]),
        })
    return rows


def summary(rows: list[dict], bucket_frames: int = 64) -> dict:
    """p50 / p95 / p99 / max of |error| over every note of every run, the notes by their error in frames (in
    buckets of `bucket_frames`, a JACK period: "0" counts errors from 0 to 63 frames late), and the counts."""
    by_frames: dict[int, int] = {}
    for r in rows:
        for e in r.get("errors_frames", []):
            key = int(e // bucket_frames) * bucket_frames
            by_frames[key] = by_frames.get(key, 0) + 1
    errors = sorted(abs(e) for r in rows for e in r.get("errors_ms", []))
    pick = lambda q: errors[min(len(errors) - 1, math.ceil(q * len(errors)) - 1)] if errors else None  # noqa: E731
    notes = len(errors)
    off = sum(r.get("off_by_a_whole_clock", 0) for r in rows)
    return {"runs": len(rows), "notes": notes, "p50_abs_ms": pick(0.5), "p95_abs_ms": pick(0.95),
            "p99_abs_ms": pick(0.99), "max_abs_ms": errors[-1] if errors else None,
            "notes_by_error_frames": {str(k): by_frames[k] for k in sorted(by_frames)},
            "off_by_a_whole_clock": off, "off_per_100_notes": round(100 * off / notes, 2) if notes else None,
            "missing_clocks": sum(r.get("missing_clocks", 0) for r in rows),
            "notes_on_a_missing_clock_ms": [e for r in rows for e in r.get("on_a_missing_clock_ms", [])],
            "irregular_gaps": sum(r.get("irregular_gaps", 0) for r in rows),
            "suggestions": sum(r.get("suggestions", 0) for r in rows),
            "suggestions_heard": sum(r.get("suggestions_heard", 0) for r in rows),
            "note_ons_without_note_off": sum(r.get("note_ons_without_note_off", 0) for r in rows)}


# ---- the DAW-like client (its own process) -------------------------------------------------------


def follow(args: argparse.Namespace) -> None:
    """Lock to the clock heard on `in`, play each run's messages at their clock positions, drive JACK's transport."""
    import jack

    runs = [ClockRun(r["clocks"], [(c, list(b)) for c, b in r["events"]], r["suggests"])
            for r in json.loads(Path(args.runs).read_text())]
    client = jack.Client(args.name, no_start_server=True)
    in_port = client.midi_inports.register("in")
    out_port = client.midi_outports.register("out")
    frames_per_clock = client.samplerate * 60.0 / (args.bpm * CLOCKS_PER_QUARTER)
    state = {"run": None, "count": -1, "last": None, "next": 0, "pending": []}
    done = threading.Event()

    @client.set_process_callback
    def process(frames: int) -> None:
        now = client.last_frame_time
        out_port.clear_buffer()
        run = state["run"]
        for offset, buffer in in_port.incoming_midi_events():
            data = bytes(buffer)
            if run is None or not data:
                continue
            frame = now + offset
            if data[0] == START:
                state["count"], state["last"], state["next"] = -1, None, 0
            elif data[0] == CLOCK and state["count"] >= -1:
                gap = 1 if state["last"] is None else max(1, round((frame - state["last"]) / frames_per_clock))
                state["count"] += gap
                state["last"] = frame
                i = state["next"]
                while i < len(run.events) and run.events[i][0] < state["count"] + 1:
                    position, message = run.events[i]
                    state["pending"].append((frame + round((position - state["count"]) * frames_per_clock),
                                             bytes(message)))
                    i += 1
                state["next"] = i
                if state["count"] >= run.clocks - 1:
                    done.set()
        keep = []
        for frame, message in sorted(state["pending"]):
            if frame < now + frames:
                out_port.write_midi_event(max(0, frame - now), message)
            else:
                keep.append((frame, message))
        state["pending"] = keep

    with client:
        in_port.connect(args.clock)
        out_port.connect(args.to)
        print("connected", flush=True)
        sys.stdin.readline()                       # "go"
        for run in runs:
            client.transport_stop()
            client.transport_locate(0)
            time.sleep(0.2)
            done.clear()
            state["run"], state["count"], state["pending"] = run, -2, []
            client.transport_start()
            if not done.wait(run.clocks * frames_per_clock / client.samplerate + 30):
                print("the clock never reached the run's end", flush=True)
                return
            client.transport_stop()
            time.sleep(RUN_GAP_SECONDS)
    print("done", flush=True)


# ---- the session: clock, dump and DAW-like client ---------------------------------------------------


class X42Session:
    """jack_midi_clock, jack_midi_dump and the DAW-like client, wired to the bridge's ports (names ending with
    `bridge_in` / `bridge_out`): the clock and the client to Muse In, the clock and Muse Out to the dump."""

    def __init__(self, bridge_in: str, bridge_out: str, bpm: float, jitter: int, workdir: Path, tag: str = "x42"):
        import mido

        why = tools_missing()
        if why:
            raise X42Unavailable(why)
        self.bpm, self.workdir, self.tag = bpm, workdir, tag
        workdir.mkdir(parents=True, exist_ok=True)
        self._procs: list[subprocess.Popen] = []
        self._dump_file = workdir / "dump.txt"
        self._dump_name, self._daw_name = f"{DUMP_CLIENT}-{tag}", f"daw-{tag}"
        try:
            self._procs.append(subprocess.Popen(["jack_midi_clock", "-b", f"{bpm:g}", "-B", "-J", str(jitter)],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            with open(self._dump_file, "w") as dump:
                self._procs.append(subprocess.Popen(["jack_midi_dump", "-a", self._dump_name], stdout=dump,
                                                    stderr=subprocess.DEVNULL))
            backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
            self.clock_port = _wait_port(lambda: backend.get_input_names(), ":mclk_out")
            self.dump_port = _wait_port(lambda: backend.get_output_names(), f"{self._dump_name}:input")
            self.bridge_in = _wait_port(lambda: backend.get_output_names(), ":" + bridge_in)
            self.bridge_out = _wait_port(lambda: backend.get_input_names(), ":" + bridge_out)
            for source, dest in ((self.clock_port, self.bridge_in), (self.clock_port, self.dump_port),
                                 (self.bridge_out, self.dump_port)):
                subprocess.run(["jack_connect", source, dest], check=True, capture_output=True, timeout=20)
        except BaseException:
            self.close()
            raise

    def play(self, runs: list[ClockRun], timeout: float | None = None) -> ClockRecording:
        """Play the runs (each a transport run from the top) and return what the dump recorded."""
        runs_file = self.workdir / "runs.json"
        runs_file.write_text(json.dumps([r.to_json() for r in runs]))
        daw = subprocess.Popen([sys.executable, "-m", "bench.x42_clock", "--follow", "--name", self._daw_name,
                                "--runs", str(runs_file), "--bpm", f"{self.bpm}", "--clock", self.clock_port,
                                "--to", self.bridge_in], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._procs.append(daw)
        if daw.stdout.readline().strip() != "connected":
            raise RuntimeError("the DAW-like client did not connect to the clock and the bridge")
        daw.stdin.write("go\n")
        daw.stdin.flush()
        # JACK's cycles run late on a busy machine, and the transport with them: room for half as long again
        seconds = sum(r.clocks * 60.0 / (self.bpm * CLOCKS_PER_QUARTER) + RUN_GAP_SECONDS + 0.3 for r in runs)
        timeout = timeout or 1.5 * seconds + 60
        try:
            out, _ = daw.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the DAW-like client did not finish within {timeout:.0f} s") from None
        if out.strip() != "done":
            raise RuntimeError(f"the DAW-like client ended without finishing its runs: {out.strip()}")
        return self.recording()

    def recording(self) -> ClockRecording:
        """Stop the dump and read what it recorded."""
        stop_process(self._procs[1])   # jack_midi_dump writes what it holds on SIGINT
        samplerate = _samplerate()
        frames_per_clock = samplerate * 60.0 / (self.bpm * CLOCKS_PER_QUARTER)
        messages = parse_dump(self._dump_file.read_text().splitlines())
        return ClockRecording(samplerate, frames_per_clock, split_runs(messages, frames_per_clock))

    def close(self) -> None:
        for p in reversed(self._procs):
            stop_process(p)

    def __enter__(self) -> "X42Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _samplerate() -> int:
    out = subprocess.run(["jack_samplerate"], capture_output=True, text=True, timeout=20)
    return int(out.stdout.strip())


def _wait_port(names, suffix: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        matches = [n for n in names() if n.endswith(suffix)]
        if len(matches) == 1:
            return matches[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"JACK port ending {suffix!r} not found (or not one): {names()}")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the DAW-like client locked to jack_midi_clock (started by X42Session)")
    parser.add_argument("--follow", action="store_true", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--runs", required=True)
    parser.add_argument("--bpm", type=float, required=True)
    parser.add_argument("--clock", required=True, help="jack_midi_clock's output port")
    parser.add_argument("--to", required=True, help="the bridge's input port")
    follow(parser.parse_args(argv))


if __name__ == "__main__":
    main()
