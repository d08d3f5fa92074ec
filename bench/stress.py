"""A seeded, randomised stress test of the live bridge over JACK, and an invariant checker at JACK frames.

Each session is made from its seed alone (`session_script`): a DAW client (bench/stress_daw.py, its own process
and rtmidi/JACK port) sends its clock from a timed loop at a random tempo and, at random, plays dense, pedalled
piano, sends Suggest, Next, Previous, Accept and Panic (their trigger CCs), Fill, answer mode and Clear (the
command channel), Start, Stop, Continue, Song Position Pointer, tempo changes, and cuts its connection to the
bridge and makes it again. It ends with Stop and Panic. Some sessions start the bridge afresh, the DAW started
at a random moment against the bridge's start-up (before its ports exist, during its start-up work, or after);
the others reuse the bridge, from a state that is checked (nothing sounding, the context cleared).

Two `jack_midi_dump -a` record Muse Out and the DAW's own port, each on one JACK port, so every message has its
frame; what one of them dropped (it does so without a word when it falls behind) the other holds, and the session
counts it. bench/stress_check.py holds each session to the invariants. A failing seed replays exactly (`--replay SEED`).

    python -m bench.stress random --sessions 1000 --out bench/results/stress   (resumable: done seeds are kept)
    python -m bench.stress dense --sessions 30 --out bench/results/stress_dense
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench.jackd import (connect_ports, exit_on_sigterm, may_use_realtime, start_jackd, stop_jackd, stop_process,
                         wait_port)
from bench.results import RESULTS, machine
from bench.stress_check import CLOCK, DAW_CHANNEL, TRIGGERS, check, dense_check, merge_recordings
from bench.x42_clock import parse_dump

log = logging.getLogger(__name__)

CLOCKS_PER_QUARTER = 24
BRIDGE_IN, BRIDGE_OUT = "Muse In", "Muse Out"
SERVER = f"muse-stress-{os.getpid()}"   # its own: two runs at once never share one
INCOMPLETE = "the recording is incomplete"   # JACK lost some of the DAW's own messages: the session proves nothing


# ---- the scripts ------------------------------------------------------------------------------------

@dataclass
class SessionScript:
    """What the DAW does in one session (slots are MIDI clocks at the tempo in force), and how the bridge starts."""

    seed: int
    bpm: float
    slots: int
    actions: list[tuple[int, str, object]] = field(default_factory=list)
    fresh_bridge: bool = False
    start_delay: float = 0.0         # seconds from the bridge's launch to the DAW's (a fresh bridge)
    lead: float = 0.5                # seconds from the DAW's connection to its first slot
    tail: float = 0.6
    dense: bool = False              # the dense scenario: its Start and Suggest checked too
    cold_cache: bool = False         # a fresh bridge exports its fast step first, as on a first start

    def to_json(self, client: str, recorders: list[str]) -> dict:
        return {"client": client, "bridge_in": BRIDGE_IN, "recorders": recorders, "bpm": self.bpm, "slots": self.slots,
                "actions": sorted(self.actions, key=lambda a: a[0]), "lead": self.lead, "tail": self.tail}


def _phrase(rng: random.Random, bpm: float, at: int, bars: int, seed: int) -> list[tuple[int, str, object]]:
    """Dense, pedalled piano (bench/performance.py) for `bars` bars from slot `at`, on the DAW's channel."""
    from bench.performance import pianist

    seconds_per_clock = 60.0 / (bpm * CLOCKS_PER_QUARTER)
    play = pianist(bpm, bars * 4 * 60.0 / bpm + 0.01, seed=seed, min_notes_per_bar=rng.choice([8, 20, 40]))
    return [(at + round(t / seconds_per_clock), "midi", [data[0] | DAW_CHANNEL, *data[1:]]) for t, data in play.events]


def session_script(seed: int, fresh_every: int = 5) -> SessionScript:
    """The random session of `seed`: 5-10 s at 100-170 bpm, 3-10 random actions over dense playing."""
    rng = random.Random(seed)
    bpm = float(rng.randrange(100, 171, 5))
    per_bar = 4 * CLOCKS_PER_QUARTER
    slots = int(rng.uniform(5, 10) * bpm * CLOCKS_PER_QUARTER / 60)
    s = SessionScript(seed, bpm, slots, fresh_bridge=seed % fresh_every == 0, start_delay=rng.uniform(0, 4),
                      lead=rng.uniform(0.2, 1.5), cold_cache=rng.random() < 0.3)
    if rng.random() < 0.85:
        s.actions.append((0, "start", None))
    at = 0
    while at < slots - 2 * per_bar:
        bars = rng.randint(1, 3)
        s.actions += _phrase(rng, bpm, at + rng.randrange(0, 12), bars, rng.randrange(1000))
        at += (bars + rng.randint(0, 1)) * per_bar
    last = slots - 2 * CLOCKS_PER_QUARTER
    kinds = ["suggest"] * 4 + ["next", "next", "previous", "accept", "panic", "fill", "answer", "clear", "stop",
                               "continue", "songpos", "tempo", "disconnect"]
    for _ in range(rng.randint(3, 10)):
        slot, kind = rng.randrange(12, last - per_bar), rng.choice(kinds)
        if kind in TRIGGERS:
            s.actions.append((slot, "midi", [0xB0 | DAW_CHANNEL, TRIGGERS[kind], 127]))
        elif kind in ("fill", "clear"):
            s.actions.append((slot, "command", kind))
        elif kind == "answer":   # on and off again: a bridge kept for the next session starts with it off
            s.actions += [(slot, "command", "answer"), (rng.randrange(slot + 1, last), "command", "answer")]
        elif kind in ("stop", "continue"):
            s.actions.append((slot, kind, None))
        elif kind == "songpos":
            s.actions.append((slot, "songpos", rng.randrange(0, 64)))
        elif kind == "tempo":
            s.actions.append((slot, "tempo", float(rng.randrange(90, 181, 5))))
        else:
            # made again before the final Stop at the latest: a bridge cut off then would never hear it
            back = min(slot + rng.randrange(12, 2 * per_bar), last - 1)
            s.actions += [(slot, "disconnect", None), (back, "connect", None)]
    s.actions += [(last, "stop", None), (last + 6, "midi", [0xB0 | DAW_CHANNEL, TRIGGERS["panic"], 127])]
    return s


def dense_script(seed: int, seconds: float = 24.0) -> SessionScript:
    """The dense scenario: 24 s of dense, pedalled piano at 120 bpm from Start, then Suggest (CC 20) 6 to 24 clocks
    before a bar line, then four bars, Stop and Panic; the bridge started afresh, the DAW at a random moment."""
    rng = random.Random(seed)
    per_bar = 4 * CLOCKS_PER_QUARTER
    bars = int(seconds / 2)
    s = SessionScript(seed, 120.0, (bars + 6) * per_bar, fresh_bridge=True, start_delay=rng.uniform(0, 6),
                      lead=rng.uniform(0.2, 3.0), dense=True, cold_cache=rng.random() < 0.3)
    s.actions = [(0, "start", None)] + _phrase(rng, 120.0, 0, bars, seed)
    suggest = (bars + 1) * per_bar - rng.choice([6, 12, 24])
    s.actions += [(suggest, "midi", [0xB0 | DAW_CHANNEL, TRIGGERS["suggest"], 127]),
                  (s.slots - 12, "stop", None), (s.slots - 6, "midi", [0xB0 | DAW_CHANNEL, TRIGGERS["panic"], 127])]
    return s


# ---- running sessions ----------------------------------------------------------------------------------

class BridgeProcess:
    """`muse-bridge --headless --midi-api jack -v` in a process of its own, its log in a file."""

    def __init__(self, workdir: Path, checkpoint: Path | None, cold_cache: bool = False, extra: list[str] = (),
                 env: dict[str, str] | None = None):
        self.workdir = workdir
        self.log_path = workdir / f"bridge-{time.time_ns()}.log"
        self.socket = workdir / "muse.sock"
        command = [sys.executable, "-m", "ui", "--headless", "--midi-api", "jack", "-v", "--bpm", "120",
                   "--settings", str(workdir / "settings.toml"), *extra]
        if checkpoint is not None:
            command += ["--checkpoint", str(checkpoint)]
        env = dict(env or os.environ, MUSE_BRIDGE_SOCKET=str(self.socket),
                   MUSE_BRIDGE_CACHE=str(workdir / "cache" if cold_cache else workdir.parent / "cache"))
        self._log = open(self.log_path, "w")
        self.launched = time.time()
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=env, cwd=Path(__file__).resolve().parent.parent)

    def log_from(self, offset: int) -> str:
        with open(self.log_path) as f:
            f.seek(offset)
            return f.read()

    @property
    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def close(self) -> None:
        stop_process(self.process, timeout=20)
        self._log.close()


@dataclass
class SessionResult:
    seed: int
    problems: list[str]
    notes_out: int                  # note-ons on Muse Out
    fresh_bridge: bool
    seconds: float
    suggests_heard: int = 0         # (dense) Suggests whose first note came from the next bar line
    start_logged_ms: float | None = None   # (dense) the Start's log line after it was sent
    daw_realtime: bool = False      # the DAW's clock loop ran at realtime priority
    recorder_losses: list[int] = field(default_factory=lambda: [0, 0])   # messages each recorder lost, the other held

    def to_json(self) -> dict:
        return self.__dict__


class StressRun:
    """One JACK server (ours, or one already running), one bridge at a time, sessions one after another."""

    def __init__(self, workdir: Path, checkpoint: Path | None = None, period: int = 64, realtime: bool = True):
        import jack

        self.workdir, self.checkpoint = workdir, checkpoint
        workdir.mkdir(parents=True, exist_ok=True)
        # a server of its own, by name: the tests (and a user's JACK) never meet its ports
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=SERVER)   # every process it starts (never this one's own)
        self._jackd = start_jackd(period=period, realtime=realtime, server=SERVER)
        # a DAW sends its clock from a realtime thread: with `realtime`, the DAW's timed loop runs at realtime
        # priority too (where this user may), so that other work on the machine cannot make its clock stumble;
        # the lowest (1), below JACK's own threads: a higher one starved the server (connections refused)
        self._daw_priority = ["chrt", "-f", "1"] if realtime and may_use_realtime() else []
        self.patchbay = jack.Client("stress-patchbay", no_start_server=True, servername=SERVER)
        self.samplerate = self.patchbay.samplerate
        self.bridge: BridgeProcess | None = None

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
        self.patchbay.close()
        stop_jackd(self._jackd)

    def __enter__(self) -> "StressRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def session(self, script: SessionScript) -> SessionResult:
        """Run one session and check it."""
        import jack

        began = time.monotonic()
        if script.fresh_bridge or self.bridge is None or self.bridge.process.poll() is not None:
            if self.bridge is not None:
                self.bridge.close()
            self.bridge = BridgeProcess(Path(tempfile.mkdtemp(dir=self.workdir)), self.checkpoint, script.cold_cache,
                                        env=self.env)
            time.sleep(script.start_delay)
        else:
            self._ready_for_next()
        bridge, client = self.bridge, f"stress-daw-{script.seed}"
        offset = bridge.log_size
        script_file = bridge.workdir / f"script-{script.seed}.json"
        # two recorders: jack_midi_dump drops what no longer fits its buffer without a word, so a message missing
        # from one recording is told from one the bridge never sent by the other
        names = [f"stress-dump-{script.seed}", f"stress-dump-{script.seed}-b"]
        script_file.write_text(json.dumps(script.to_json(client, [f"{name}:input" for name in names])))
        dump_files = [bridge.workdir / f"{name}.txt" for name in names]
        dumps = []
        for name, dump_file in zip(names, dump_files):
            with open(dump_file, "w") as out:
                # line by line: what it heard is on disk whatever becomes of it
                dumps.append(subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", "-a", name], stdout=out,
                                              stderr=subprocess.DEVNULL, env=self.env))
        daw = subprocess.Popen([*self._daw_priority, sys.executable, "-m", "bench.stress_daw", str(script_file)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(self.env, MUSE_BRIDGE_SOCKET=str(bridge.socket)),
                               cwd=Path(__file__).resolve().parent.parent)
        try:
            for source in (wait_port(self.patchbay, f"{client}:out", is_output=True),
                           wait_port(self.patchbay, ":" + BRIDGE_OUT, is_output=True)):
                for name in names:
                    connect_ports(self.patchbay, source,
                                  wait_port(self.patchbay, f"{name}:input", timeout=10, is_input=True))
            seconds = script.slots * 60.0 / (min(script.bpm, 90) * CLOCKS_PER_QUARTER)
            out, err = daw.communicate(timeout=seconds + script.lead + script.tail + 90)
        except (subprocess.TimeoutExpired, jack.JackError) as e:   # the harness failed: the session proves nothing
            daw.kill()
            _, err = daw.communicate()
            (bridge.workdir / f"daw-{script.seed}.err").write_text(err)   # a hung DAW's stacks (bench/stress_daw.py)
            log.warning("seed %d: the harness failed (%s): %s", script.seed, e, err[-500:])
            return SessionResult(script.seed, [f"{INCOMPLETE}: the harness failed ({type(e).__name__})"], 0,
                                 script.fresh_bridge, time.monotonic() - began, daw_realtime=bool(self._daw_priority))
        finally:
            if daw.poll() is None:
                daw.kill()
            for dump in dumps:
                stop_process(dump)
        if daw.returncode != 0:
            raise RuntimeError(f"the DAW of session {script.seed} failed: {err[-2000:]}")
        daw_said = json.loads(out)
        actions = daw_said["actions"]
        messages, *lost = merge_recordings(*(parse_dump(f.read_text().splitlines()) for f in dump_files))
        log_text = bridge.log_from(offset)
        problems = check(messages, actions, log_text, self.samplerate)
        recorded = sum(1 for _, d in messages if d == [CLOCK])
        if recorded < daw_said["clocks"]:   # the recorder missed some: what it holds cannot clear the session
            problems.append(f"{INCOMPLETE}: {recorded} of the DAW's {daw_said['clocks']} clocks")
        notes = sum(1 for _, d in messages if len(d) == 3 and d[0] == 0x90 and d[2] > 0)
        result = SessionResult(script.seed, problems, notes, script.fresh_bridge, time.monotonic() - began,
                               daw_realtime=bool(self._daw_priority), recorder_losses=lost)
        if script.dense:
            problems, result.suggests_heard, result.start_logged_ms = dense_check(messages, actions, log_text,
                                                                                  self.samplerate)
            result.problems += problems
        return result

    def _ready_for_next(self) -> None:
        """A kept bridge begins the next session from a known state: the context cleared, nothing sounding."""
        from muse_bridge.command_socket import send_command

        send_command("clear", self.bridge.socket)
        time.sleep(0.2)


def run(kind: str, seeds: list[int], out: Path, checkpoint: Path | None = None, period: int = 64,
        realtime: bool = True, cold_cache: bool = False) -> list[SessionResult]:
    """Run the sessions of `seeds` not yet in `out`/sessions.jsonl (a run cut short goes on where it stopped);
    `cold_cache`: every fresh bridge exports its fast step first, as at a first start."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    rows = out / "sessions.jsonl"
    done = {json.loads(line)["seed"] for line in rows.read_text().splitlines()} if rows.exists() else set()
    results = []
    make = dense_script if kind == "dense" else session_script
    work = Path(tempfile.mkdtemp(prefix="muse-stress-"))   # the logs and recordings: a seed replays exactly
    log.info("each session's bridge log, script and recording: %s", work)
    with StressRun(work, checkpoint, period, realtime) as stress:
        for seed in tqdm([s for s in seeds if s not in done], desc=f"{kind} sessions"):
            script = make(seed)
            script.cold_cache |= cold_cache
            result = stress.session(script)
            results.append(result)
            with open(rows, "a") as f:
                f.write(json.dumps(result.to_json()) + "\n")
            if result.problems:
                log.warning("seed %d: %s", seed, "; ".join(result.problems[:5]))
    return results


def summarise(out: Path) -> dict:
    """Counts over every session in `out`/sessions.jsonl, with the seeds that failed. A session whose recording lost
    some of the DAW's own messages (JACK dropped them on the way, under load) proves nothing either way: it is
    counted apart, not as the bridge's violation."""
    rows = [json.loads(line) for line in (out / "sessions.jsonl").read_text().splitlines()]
    incomplete = sorted(r["seed"] for r in rows if any(p.startswith(INCOMPLETE) for p in r["problems"]))
    failed = {r["seed"]: r["problems"] for r in rows if r["problems"] and r["seed"] not in incomplete}
    kinds: dict[str, int] = {}
    for problems in failed.values():
        for p in problems:
            key = re.sub(r"\d+(\.\d+)?", "N", p)
            kinds[key] = kinds.get(key, 0) + 1
    starts = sorted(r["start_logged_ms"] for r in rows if r.get("start_logged_ms") is not None)
    return {"sessions": len(rows), "fresh_bridges": sum(r["fresh_bridge"] for r in rows),
            "sessions_with_violations": len(failed), "violations_by_kind": kinds, "failed_seeds": sorted(failed),
            "sessions_with_an_incomplete_recording": len(incomplete), "incomplete_seeds": incomplete,
            "sessions_where_one_recorder_lost_messages": sum(1 for r in rows if any(r.get("recorder_losses", ()))),
            "messages_one_recorder_lost": sum(sum(r.get("recorder_losses", ())) for r in rows),
            "notes_out": sum(r["notes_out"] for r in rows),
            "suggests_heard_on_the_next_bar_line": sum(r.get("suggests_heard", 0) for r in rows),
            "start_logged_ms_max": starts[-1] if starts else None,
            "session_seconds_mean": round(sum(r["seconds"] for r in rows) / max(1, len(rows)), 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="randomised live sessions against the bridge over JACK, checked "
                                                 "at JACK frames")
    parser.add_argument("kind", choices=["random", "dense"])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--period", type=int, default=64, help="JACK frames per cycle (a server we start)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--replay", type=int, default=None, metavar="SEED", help="run one seed again and print it")
    parser.add_argument("--cold-cache", action="store_true", help="every fresh bridge exports its fast step first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    exit_on_sigterm()
    out = args.out or RESULTS / f"stress_{args.kind}"
    if args.replay is not None:
        with StressRun(Path(tempfile.mkdtemp()), args.checkpoint, args.period) as stress:
            make = dense_script if args.kind == "dense" else session_script
            print(json.dumps(stress.session(make(args.replay)).to_json(), indent=1))
        return
    run(args.kind, list(range(args.first_seed, args.first_seed + args.sessions)), out, args.checkpoint, args.period,
        cold_cache=args.cold_cache)
    summary = {"benchmark": f"stress_{args.kind}", "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "checkpoint": str(args.checkpoint or "engine/assets/default.pt"),
               "transport": f"JACK dummy driver, 48 kHz, {args.period} frames, jackd -R (a server found running: as it is)",
               **summarise(out)}
    path = out.parent / f"{out.name}.json"
    if path.exists():   # what was written there about earlier runs (their provenance, by hand) stays
        summary = {**json.loads(path.read_text()), **summary}
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
