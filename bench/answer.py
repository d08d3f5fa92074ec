"""Call and response as a DAW hears it over JACK: is the answer on its bar line, and how fast is it cut off?

A JACK DAW (bench/jack_daw.py, sample-accurate) runs its transport and plays a composer who takes
turns: a phrase of 4 to 8 eighth notes (onsets and releases jittered by up to ±1/3 of a clock), a pause,
and the next phrase from 1 to 1.5 beats into the answer's second bar, which cuts it off. With
`--answer-after` 2 and 4 at each tempo, 20 pauses each. Per pause:
- on its bar line: the answer's first note-on lies in the bar that starts at the first bar line at least
  the set beats after the phrase's last note-off (heard by the DAW, its own clock); an answer whose
  first bar is silent is heard a bar late and counts as a miss;
- cut-off: from the composer's note-on to the last note-off of the answer's notes sounding then (DAW
  frames), and any note-on of the answer more than two JACK periods after it (a note due within the
  period the composer's note-on is on its way is sent, and stopped at once);
- CPU: the app's process CPU seconds over the whole run, per bar of pause (last note-off to the next
  phrase).

    python -m bench.answer [--bpm 120 180] [--after 2 4] [--pauses 20] [--checkpoint CKPT] [--period 64]
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.jack_daw import CLOCKS_PER_QUARTER, Recording, Run, Script
from bench.results import write
from bench.timing import DAW_BARS, bridge_settings, error_summary, live
from engine.checkpoint import Checkpoint, load_checkpoint
from bench.jackd import start_jackd, stop_jackd

log = logging.getLogger("bench.answer")

BAR = DAW_BARS.bar_ticks()          # clocks per bar (4/4)
EIGHTH = CLOCKS_PER_QUARTER // 2
ANSWER_BARS = 2
GOAL_ON_THE_LINE = 0.95
GOAL_CUT_P99_MS = 10.0


@dataclass(frozen=True)
class Pause:
    last_off: float      # DAW clock of the phrase's last note-off
    line: int            # the bar line the answer should start on
    cut: float           # DAW clock of the next phrase's first note-on


def turns_script(bpm: float, after_beats: int, pauses: int, seed: int) -> tuple[Script, list[Pause]]:
    rng = random.Random(seed)
    events: list[tuple[float, list[int]]] = []
    spc = 60.0 / (bpm * CLOCKS_PER_QUARTER)          # seconds per clock
    start, turns = float(BAR), []
    for _ in range(pauses + 1):
        notes = rng.randint(4, 8)
        offs = []
        for k in range(notes):
            on = start + k * EIGHTH + (rng.uniform(-1, 1) / 3 if k else 0)
            off = on + 9 + rng.uniform(-1, 1) / 3
            pitch = rng.choice((60, 62, 64, 65, 67, 69, 71, 72))
            events += [(on * spc, [0x90, pitch, 90]), (off * spc, [0x80, pitch, 0])]
            offs.append(off)
        last_off = max(offs)
        line = math.ceil((last_off + after_beats * CLOCKS_PER_QUARTER) / BAR) * BAR
        start = line + BAR + CLOCKS_PER_QUARTER + rng.choice((0, 6, 12)) + rng.uniform(-1, 1) / 3
        turns.append(Pause(last_off, line, start))
    turns = turns[:pauses]                          # the last phrase cuts the last answer off
    total = int(turns[-1].cut) + 2 * BAR
    return Script(bpm, [Run(0.0, total)], sorted(events), tail=1.0), turns


def note_messages(recording: Recording) -> list[tuple[int, bool, int]]:
    """(frame, is note-on, pitch) of every note message the bridge sent."""
    out = []
    for f, b in recording.received:
        if len(b) == 3 and b[0] & 0xF0 in (0x80, 0x90):
            out.append((f, b[0] & 0xF0 == 0x90 and b[2] > 0, b[1]))
    return out


def check_pause(recording: Recording, notes: list[tuple[int, bool, int]], pause: Pause, spc: float) -> dict:
    clock = recording.daw_clock_at
    first_frame, cut_frame = recording.frame_at(pause.last_off * spc), recording.frame_at(pause.cut * spc)
    ons = [(f, p) for f, on, p in notes if on and first_frame <= f < cut_frame]
    half_grid = 1.5   # a note-on a hair before its bar line (JACK's period) is on it
    first = clock(ons[0][0]) if ons else None
    on_line = first is not None and pause.line - half_grid <= first < pause.line + BAR - half_grid
    sounding: dict[int, int] = {}
    for f, on, p in notes:
        if f >= cut_frame:
            break
        if f >= first_frame:
            if on:
                sounding[p] = f
            else:
                sounding.pop(p, None)
    after = [(f, on, p) for f, on, p in notes if f >= cut_frame]
    stopped = []
    for p in sounding:
        off = next((f for f, on, q in after if q == p and not on), None)
        stopped.append(recording.ms(off - cut_frame) if off is not None else float("inf"))
    next_line = pause.line + ANSWER_BARS * BAR
    started_after_cut = sum(1 for f, on, _ in after
                            if on and f > cut_frame + 2 * recording.period and clock(f) < next_line)
    return {"answered": bool(ons), "on_its_bar_line": on_line,
            "first_note_clock": round(first, 2) if first is not None else None, "line_clock": pause.line,
            "sounding_at_cut": len(sounding), "stopped_ms": round(max(stopped), 3) if stopped else None,
            "note_ons_after_cut": started_after_cut}


def measure(checkpoint: Checkpoint, bpm: float, after_beats: int, pauses: int, seed: int, workdir: Path) -> dict:
    script, turns = turns_script(bpm, after_beats, pauses, seed)
    tag = f"answer{os.getpid()}-{int(bpm)}-{after_beats}"
    settings = bridge_settings(tag, bpm).with_changes({"answer.on": True, "answer.after_beats": after_beats,
                                                       "bars": ANSWER_BARS})
    with live(checkpoint, tag, bpm, workdir, script, settings) as (bridge, daw, events):
        cpu = time.process_time()
        daw.go()
        recording = daw.wait()
        cpu = time.process_time() - cpu
        cuts = bridge.answers.cuts
    spc = 60.0 / (bpm * CLOCKS_PER_QUARTER)
    notes = note_messages(recording)
    rows = [check_pause(recording, notes, p, spc) for p in turns]
    stopped = [r["stopped_ms"] for r in rows if r["stopped_ms"] is not None]
    pause_bars = sum((p.cut - p.last_off) / BAR for p in turns)
    answered = [r for r in rows if r["answered"]]
    summary = error_summary(stopped)
    return {
        "bpm": bpm, "answer_after_beats": after_beats, "pauses": len(rows), "answered": len(answered),
        "on_its_bar_line": sum(r["on_its_bar_line"] for r in rows) / len(rows),
        "cut_offs_with_notes_sounding": len(stopped), "cut_offs_counted_by_the_app": cuts,
        "stopped_ms": summary, "note_ons_after_a_cut": sum(r["note_ons_after_cut"] for r in rows),
        "cpu_seconds_per_bar_of_pause": round(cpu / pause_bars, 4), "pause_bars": round(pause_bars, 1),
        "jack_period_frames": recording.period,
        "started_late": sum(1 for e in events if "starts" in getattr(e, "text", "") and "late" in e.text),
        "notices": sorted({e.text for e in events if getattr(e, "error", False)}), "per_pause": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="default: the bundled model")
    parser.add_argument("--bpm", type=float, nargs="+", default=[120.0, 180.0])
    parser.add_argument("--after", type=int, nargs="+", default=[2, 4], help="--answer-after values (beats)")
    parser.add_argument("--pauses", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--period", type=int, default=64, help="JACK frames per cycle (48 kHz) of the server started here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("muse_bridge").setLevel(logging.WARNING)

    checkpoint = load_checkpoint(args.checkpoint)
    rows = []
    server = start_jackd(period=args.period)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for bpm in args.bpm:
                for after in args.after:
                    row = measure(checkpoint, bpm, after, args.pauses, args.seed, Path(tmp) / f"{bpm}-{after}")
                    log.info("%s", {k: v for k, v in row.items() if k != "per_pause"})
                    rows.append(row)
    finally:
        stop_jackd(server)
    stopped = sorted(ms for r in rows for p in r["per_pause"] if (ms := p["stopped_ms"]) is not None)
    p99 = stopped[min(len(stopped) - 1, round(0.99 * (len(stopped) - 1)))] if stopped else None
    on_line = sum(r["on_its_bar_line"] * r["pauses"] for r in rows) / sum(r["pauses"] for r in rows)
    goals = {"on_its_bar_line": round(on_line, 3), "on_its_bar_line_met": on_line >= GOAL_ON_THE_LINE,
             "stopped_p99_ms": p99, "stopped_p99_met": p99 is not None and p99 <= GOAL_CUT_P99_MS}
    path = write("answer", {"checkpoint": checkpoint.path, "answer_bars": ANSWER_BARS,
                            "transport": f"JACK dummy driver, 48 kHz, {args.period}-frame periods requested",
                            "goals": goals, "runs": rows})
    log.info("goals %s", goals)
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
