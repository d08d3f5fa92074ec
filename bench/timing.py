"""Every candidate note against the DAW's grid, as the DAW hears it over JACK; and the pianist's test.

Grid: a JACK DAW (bench/jack_daw.py, its own process, sample-accurate) sends MIDI clock, Start, a
phrase and CC 20 (Suggest) before two bar lines; then Stop, Continue and another Suggest; then Stop,
a Song Position Pointer, Continue and another Suggest. Each note-on from the bridge is stamped with
the frame it arrived at; its error is its distance from the nearest eighth-of-a-beat line of the
DAW's own timeline (every candidate position lies on that grid). p50 / p99 / max of |error| and the
mean (signed: late is positive), at each tempo, idle and with two single-core spin loops beside the
app (at its nice level), as a DAW keeps the CPU busy.

Pianist: a POP909 song played densely (40+ notes a bar), pedalled every bar, with onsets and releases
jittered by ±30 ms, for 20 s or more, then Suggest: does it play, from the next bar line, with every
note-on inside the candidate's bars and every note-on followed by its note-off without All Notes Off.

x42: the same against x42's jack_midi_clock, a clock nobody here wrote (bench/x42_clock.py), at each
`--jitter`, idle and beside the busy processes: per-note error from the grid clock, notes off by a whole
clock, missing clocks seen, note-ons without a note-off.

    python -m bench.timing [--period 64] [--bpm 90 120 180] [--pianist-runs 10] [--checkpoint CKPT]
    python -m bench.timing --only x42 [--jitter 0 5 10] [--x42-runs 10] [--x42-busy-jitter 10]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.jack_daw import CLOCKS_PER_QUARTER, JackDaw, Recording, Run, Script
from bench.performance import pianist
from bench.results import RESULTS, write
from bench.x42_clock import ClockRun, X42Session, analyse, summary
from engine.checkpoint import Checkpoint, load_checkpoint
from engine.fast_step import FastStep
from engine.music import MeterMap
from muse_bridge.bridge import LiveBridge
from muse_bridge.events import CandidatesReady, Notice
from bench.jackd import start_jackd, stop_jackd
from muse_bridge.settings import BridgeSettings

log = logging.getLogger("bench.timing")

SUGGEST = [0xB0, 20, 127]
ALL_NOTES_OFF = 123
DAW_BARS = MeterMap.constant((4, 4), CLOCKS_PER_QUARTER)   # the DAW's bars, in clocks
GRID_CLOCKS = 3                                             # an eighth of a beat
SECTIONS = ("grid", "x42", "pianist")


@dataclass
class TimedScript:
    """A DAW script and the script times of its Suggest requests."""

    script: Script
    suggests: list[float] = field(default_factory=list)

    def suggest(self, run: int, clock: float) -> None:
        self.script.at_clock(run, clock, SUGGEST)
        r = self.script.runs[run]
        self.suggests.append(r.at + clock * 60.0 / (self.script.bpm * CLOCKS_PER_QUARTER))


def grid_script(bpm: float) -> TimedScript:
    """Start, a 4-bar phrase, Suggest before bars 5 and 8; Stop. Continue, Suggest; Stop. Song Position
    Pointer to bar 3, Continue, Suggest; Stop."""
    bar_clocks = DAW_BARS.bar_ticks()
    bar_seconds = bar_clocks * 60.0 / (bpm * CLOCKS_PER_QUARTER)
    phrase = pianist(bpm, 4 * bar_seconds + 0.01, min_notes_per_bar=0)
    first = 10 * bar_clocks
    gap = 1.0
    runs = [Run(0.0, first), Run(first * bar_seconds / bar_clocks + gap, 5 * bar_clocks, "continue", first)]
    runs.append(Run(runs[1].at + 5 * bar_seconds + gap, 5 * bar_clocks, "songpos", DAW_BARS.bar_line(2)))
    timed = TimedScript(Script(bpm, runs, [(t, b) for t, b in phrase.events], tail=1.0))
    for bar in (4, 7):                        # during bars 4 and 7 (counted from 1), on beat 2
        timed.suggest(0, DAW_BARS.bar_line(bar - 1) + CLOCKS_PER_QUARTER)
    timed.suggest(1, CLOCKS_PER_QUARTER)      # a beat after Continue
    timed.suggest(2, CLOCKS_PER_QUARTER)      # a beat after the relocation
    return timed


def candidates(recording: Recording, suggests: list[float]) -> list[list[int]]:
    """The note-on frames of each suggestion's candidate (those between its request and the next)."""
    frames = [recording.frame_at(t) for t in suggests] + [float("inf")]
    ons = [f for f, _ in recording.note_ons()]
    return [[f for f in ons if frames[i] <= f < frames[i + 1]] for i in range(len(suggests))]


def error_summary(errors: list[float]) -> dict:
    if not errors:
        return {"n": 0}
    size = sorted(abs(e) for e in errors)
    pick = lambda q: size[min(len(size) - 1, round(q * (len(size) - 1)))]  # noqa: E731
    return {"n": len(errors), "p50_abs_ms": round(pick(0.5), 2), "p99_abs_ms": round(pick(0.99), 2),
            "max_abs_ms": round(size[-1], 2), "mean_ms": round(statistics.fmean(errors), 2)}


def bridge_settings(tag: str, bpm: float) -> BridgeSettings:
    return BridgeSettings().with_changes({"ports.api": "jack", "ports.input_name": f"Muse In {tag}",
                                          "ports.output_name": f"Muse Out {tag}", "clock.bpm": bpm})


@contextlib.contextmanager
def live(checkpoint: Checkpoint, tag: str, bpm: float, workdir: Path, script: Script,
         settings: BridgeSettings | None = None, fast_step: bool = True):
    """A bridge and a JACK DAW connected to it, the DAW ready to play `script`: yields (bridge, daw, events).
    The bridge decodes on the fast step, as the app does once it has made it (`fast_step=False`: the model's own)."""
    settings = settings or bridge_settings(tag, bpm)
    events: list = []
    fast = FastStep.for_model(checkpoint.model) if fast_step else None
    with LiveBridge(checkpoint, settings, settings_path=None, client_name=f"muse-{tag}") as bridge:
        bridge.worker.use_fast_step(fast)
        bridge.events.subscribe(lambda e: events.append(e) if isinstance(e, (Notice, CandidatesReady)) else None)
        with JackDaw(settings.ports.input_name, settings.ports.output_name, script, workdir,
                     name=f"daw-{tag}") as daw:
            daw.connected(lambda: bridge.stats().messages_in > 0)
            assert bridge.intake.settle(30), "the bridge did not settle"
            yield bridge, daw, events


def measure_grid(checkpoint: Checkpoint, bpm: float, workdir: Path, tag: str = "grid") -> dict:
    timed = grid_script(bpm)
    with live(checkpoint, f"{tag}{os.getpid()}", bpm, workdir, timed.script) as (bridge, daw, events):
        daw.go()
        recording = daw.wait()
    notices = [e for e in events if isinstance(e, Notice)]
    made = [len(e.suggestion.candidates[0].notes) for e in events if isinstance(e, CandidatesReady)]
    per_candidate = [[recording.grid_error_ms(f, GRID_CLOCKS) for f in c]
                     for c in candidates(recording, timed.suggests)]
    errors = [e for c in per_candidate for e in c]
    return {"bpm": bpm, "jack_period_frames": recording.period,
            "jack_period_ms": round(recording.ms(recording.period), 3),
            "suggestions": len(timed.suggests), "suggestions_heard": sum(1 for c in per_candidate if c),
            "candidate_1_notes_made": made, "candidate_1_notes_heard": [len(c) for c in per_candidate],
            "candidate_median_ms": [round(statistics.median(c), 2) if c else None for c in per_candidate],
            **error_summary(errors), "notices": [n.text for n in notices if n.error or "late" in n.text]}


def pianist_script(bpm: float, seconds: float, seed: int) -> tuple[TimedScript, int]:
    """The pianist's performance, then Suggest on beat 1 of the bar after it; the Suggest's bar line (DAW clocks)."""
    performance = pianist(bpm, seconds, seed)
    bars = performance.bars
    total = DAW_BARS.bar_line(bars + 4)
    timed = TimedScript(Script(bpm, [Run(0.0, total)], list(performance.events), tail=1.0))
    timed.suggest(0, DAW_BARS.bar_line(bars) + 2)
    return timed, DAW_BARS.bar_line(bars + 1)


def check_pianist(recording: Recording, timed: TimedScript, line: int, bars: int) -> dict:
    """Did the Suggest play, from its bar line, inside its bars, every note-on with its own note-off?"""
    start = recording.frame_at(timed.suggests[0])
    out = [(f, b) for f, b in recording.received if f >= start]
    ons = [(f, b[1]) for f, b in out if len(b) == 3 and b[0] & 0xF0 == 0x90 and b[2] > 0]
    half = GRID_CLOCKS / 2
    positions = [recording.daw_clock_at(f) for f, _ in ons]
    # the candidate's own first bar line: the next one, or a later one the bridge chose and said so
    start = DAW_BARS.bar_line_at_or_before(min(positions) + half) if positions else line
    end = DAW_BARS.bar_line(DAW_BARS.bar_of(start) + bars)
    outside = sum(1 for p in positions if not start - half <= p < end - half)
    sounding: dict[int, int] = {}
    for _, b in out:
        if len(b) == 3 and b[0] & 0xF0 in (0x80, 0x90):
            if b[0] & 0xF0 == 0x90 and b[2] > 0:
                sounding[b[1]] = sounding.get(b[1], 0) + 1
            elif sounding.get(b[1]):
                sounding[b[1]] -= 1
    all_notes_off = sum(1 for _, b in out if len(b) == 3 and b[0] & 0xF0 == 0xB0 and b[1] == ALL_NOTES_OFF)
    return {"note_ons": len(ons), "played": bool(ons), "starts_on_the_next_bar_line": bool(positions) and start == line,
            "bars_late": DAW_BARS.bar_of(start) - DAW_BARS.bar_of(line),
            "outside_its_bars": outside, "left_without_note_off": sum(v for v in sounding.values() if v > 0),
            "all_notes_off_sent": all_notes_off}


def measure_pianist(checkpoint: Checkpoint, bpm: float, seconds: float, seed: int, workdir: Path,
                    tag: str = "pianist") -> dict:
    timed, line = pianist_script(bpm, seconds, seed)
    settings = bridge_settings(f"{tag}{os.getpid()}", bpm)
    with plan_log() as plans, \
            live(checkpoint, f"{tag}{os.getpid()}", bpm, workdir, timed.script, settings) as (bridge, daw, events):
        daw.go()
        recording = daw.wait()
        seconds_to_candidates = bridge.suggester.last_suggest_seconds
    notices = [e for e in events if isinstance(e, Notice)]
    result = check_pianist(recording, timed, line, settings.bars)
    messages = len(timed.script.events)
    return {"seed": seed, "messages_played": messages, "suggest_seconds": seconds_to_candidates,
            "late_or_cut": [n.text for n in notices if "late" in n.text or "fell behind" in n.text],
            "start_plan": plans, **result}


@contextlib.contextmanager
def plan_log():
    """The bridge's -v line on where candidate 1 starts and why (muse_bridge/stream_plan.py), as the run logs it."""
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage()) if "candidate 1 starts" in record.msg else None
    logger = logging.getLogger("muse_bridge.suggester")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def x42_runs(bpm: float, runs: int) -> list[ClockRun]:
    """Transport runs of 17 bars: a 4-bar phrase, Suggest on beat 2 of bars 4, 7, 10 and 13 (so before bars 5, 8,
    11 and 14), each candidate 2 bars from the next bar line."""
    clocks_per_second = bpm * CLOCKS_PER_QUARTER / 60.0
    bar_seconds = DAW_BARS.bar_ticks() / clocks_per_second
    phrase = pianist(bpm, 4 * bar_seconds + 0.01, min_notes_per_bar=0)
    suggests = [DAW_BARS.bar_line(bar - 1) + CLOCKS_PER_QUARTER for bar in (4, 7, 10, 13)]
    events = [(t * clocks_per_second, b) for t, b in phrase.events] + [(float(c), SUGGEST) for c in suggests]
    return [ClockRun(DAW_BARS.bar_line(17), sorted(events), suggests) for _ in range(runs)]


def measure_x42(checkpoint: Checkpoint, bpm: float, jitter: int, runs: int, workdir: Path, tag: str = "x42") -> dict:
    """`runs` transport runs of 4 suggestions each on jack_midi_clock at `jitter` percent: the summary and each run."""
    tag = f"{tag}{os.getpid()}"
    settings = bridge_settings(tag, bpm)
    events: list = []
    with LiveBridge(checkpoint, settings, settings_path=None, client_name=f"muse-{tag}") as bridge:
        bridge.worker.use_fast_step(FastStep.for_model(checkpoint.model))
        bridge.events.subscribe(lambda e: events.append(e) if isinstance(e, (Notice, CandidatesReady)) else None)
        assert bridge.worker.wait_idle(120), "the bridge did not measure its rate"
        with X42Session(settings.ports.input_name, settings.ports.output_name, bpm, jitter, workdir, tag) as x42:
            plan = x42_runs(bpm, runs)
            recording = x42.play(plan)
        missing_seen = bridge.clock.missing_clocks
    rows = analyse(recording, plan)
    made = sum(len(e.suggestion.candidates[0].notes) for e in events if isinstance(e, CandidatesReady))
    return {"bpm": bpm, "jitter_percent": jitter, **summary(rows), "missing_clocks_the_bridge_counted": missing_seen,
            "candidate_1_notes_made": made,
            "notices": sorted({n.text for n in events if isinstance(n, Notice) and (n.error or "late" in n.text)}),
            "per_run": [{k: v for k, v in r.items() if k not in ("errors_ms", "errors_frames")} for r in rows]}


@contextlib.contextmanager
def busy(processes: int):
    """Single-core spin loops beside the app, at its nice level."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for p in spinners:
            p.terminate()
            p.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="default: the bundled model")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="measure these parts; the others are kept from the last results file")
    parser.add_argument("--period", type=int, default=64, help="JACK frames per cycle (48 kHz) of the server started here")
    parser.add_argument("--bpm", type=float, nargs="+", default=[90.0, 120.0, 180.0])
    parser.add_argument("--busy", type=int, default=2, help="spin loops for the loaded runs")
    parser.add_argument("--busy-bpm", type=float, nargs="*", default=None, help="tempos of the loaded runs (default: --bpm)")
    parser.add_argument("--pianist-runs", type=int, default=10)
    parser.add_argument("--pianist-seconds", type=float, default=24.0)
    parser.add_argument("--jitter", type=int, nargs="*", default=[0, 5, 10], help="jack_midi_clock -J values, idle")
    parser.add_argument("--x42-busy-jitter", type=int, nargs="*", default=[0, 10], help="... beside the busy processes")
    parser.add_argument("--x42-runs", type=int, default=10, help="transport runs of 4 suggestions at each setting")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("muse_bridge").setLevel(logging.WARNING)

    load_before = os.getloadavg()
    checkpoint = load_checkpoint(args.checkpoint)
    last = json.loads((RESULTS / "timing.json").read_text()) if (RESULTS / "timing.json").exists() else {}
    grid = [] if "grid" in args.only else last.get("grid", [])
    pianist_runs = [] if "pianist" in args.only else last.get("pianist", {}).get("runs", [])
    x42_plan = [(0, args.jitter), (args.busy, args.x42_busy_jitter if args.busy else [])]
    measuring = {(load, jitter) for load, jitters in x42_plan for jitter in jitters} if "x42" in args.only else set()
    x42 = [r for r in last.get("x42", []) if (r.get("busy_processes"), r.get("jitter_percent")) not in measuring]

    def save() -> Path:   # after every run: a run that hangs (JACK's server, under load) keeps the rest
        counts = {
            "runs": len(pianist_runs),
            "played": sum(r.get("played", 0) for r in pianist_runs),
            "started_on_the_next_bar_line": sum(r.get("starts_on_the_next_bar_line", 0) for r in pianist_runs),
            "note_ons_outside_their_bars": sum(r.get("outside_its_bars", 0) for r in pianist_runs),
            "note_ons_without_note_off": sum(r.get("left_without_note_off", 0) for r in pianist_runs),
            "all_notes_off_sent": sum(r.get("all_notes_off_sent", 0) for r in pianist_runs),
        }
        return write("timing", {
            "checkpoint": checkpoint.path, "transport": f"JACK dummy driver, 48 kHz, --sync, {args.period}-frame "
            "periods requested (jack_period_frames: what the server ran at)",
            "error": "note-on arrival frame minus the frame of the nearest eighth-of-a-beat clock of the DAW",
            "grid": grid, "pianist": {"bpm": 120.0, "seconds": args.pianist_seconds, **counts, "runs": pianist_runs},
            "x42": x42, "load_average_1_5_15_min_before": [round(x, 2) for x in load_before],
        })

    def measured(rows: list, row_of, **labels) -> None:
        try:
            row = {**labels, **row_of()}
        except RuntimeError as e:   # a client thrown out of JACK's graph under load: said, not hidden
            row = {**labels, "error": str(e)}
        log.info("%s", row)
        rows.append(row)
        save()

    server = start_jackd(period=args.period)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            if "grid" in args.only:
                loads = [(0, args.bpm)] + ([(args.busy, args.busy_bpm or args.bpm)] if args.busy else [])
                for load, tempos in loads:
                    with busy(load) if load else contextlib.nullcontext():
                        for bpm in tempos:
                            measured(grid, lambda: measure_grid(checkpoint, bpm, work / "grid"), busy_processes=load)
            if "x42" in args.only:
                for load, jitters in x42_plan:
                    with busy(load) if load else contextlib.nullcontext():
                        for jitter in jitters:
                            measured(x42, lambda: measure_x42(checkpoint, 120.0, jitter, args.x42_runs,
                                                              work / f"x42-{load}-{jitter}"),
                                     busy_processes=load, jitter_percent=jitter)
            if "pianist" in args.only:
                for seed in range(args.pianist_runs):
                    measured(pianist_runs, lambda: measure_pianist(checkpoint, 120.0, args.pianist_seconds, seed,
                                                                   work / "pianist"), seed=seed)
    finally:
        stop_jackd(server)
    log.info("wrote %s", save())


if __name__ == "__main__":
    main()
