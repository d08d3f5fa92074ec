"""Real scores through `suggest`, each candidate held to what a DAW holding the score shows (issue 41's acceptance).

For every MIDI file in the folders given, `suggest` writes K candidates of N bars; a file is valid when each of
them, dropped at bar 1 of a DAW holding the score, starts on the bar line after the prompt's last bar, lasts exactly
N bars in the meter the DAW shows there, and ends every note. The DAW's bar lines are read here from the score's
own time signatures with mido, as a DAW reads them (the MIDI default 4/4 before the first; of two at one tick the
later in the file; a change starts a bar where it stands), not by the engine's reader. A file `suggest` refuses
counts as refused, with its one line; a traceback is a failure of its own.

    python -m bench.real_scores DIR [DIR ...] --out bench/results/real_scores.json [--checkpoint CKPT]
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import mido

from bench.results import machine

log = logging.getLogger(__name__)


def daw_bar_lines(path: Path) -> tuple[list[tuple[int, tuple[int, int]]], int]:
    """The score's meter changes as a DAW reads them, (tick, meter) with each starting a bar, and its ticks per
    quarter."""
    midi = mido.MidiFile(str(path))
    changes: dict[int, tuple[int, int]] = {}
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "time_signature":
                changes[tick] = (message.numerator, message.denominator)   # the later at one tick
    if 0 not in changes:
        changes[0] = (4, 4)
    return sorted(changes.items()), midi.ticks_per_beat


def bar_line_after(changes: list[tuple[int, tuple[int, int]]], tpq: int, tick: int) -> tuple[int, tuple[int, int]]:
    """The first bar line after the bar holding `tick`, and the meter in force there."""
    for i, (at, meter) in enumerate(changes):
        until = changes[i + 1][0] if i + 1 < len(changes) else None
        if until is not None and tick >= until:
            continue
        length = tpq * 4 * meter[0] // meter[1]
        line = at + ((tick - at) // length + 1) * length
        if until is not None and line >= until:
            return until, changes[i + 1][1]
        return line, meter
    raise ValueError("no meter")


def last_onset(path: Path) -> int | None:
    """The last note-on's tick outside the drum channel."""
    midi = mido.MidiFile(str(path))
    last = None
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity > 0 and message.channel != 9:
                last = tick if last is None else max(last, tick)
    return last


def candidate_problems(path: Path, first: int, meter: tuple[int, int], bars: int, tpq: int) -> list[str]:
    """What keeps a candidate file from being valid where the DAW expects it."""
    midi = mido.MidiFile(str(path))
    problems = []
    scale = midi.ticks_per_beat / tpq                  # the candidate's ticks per the score's
    start, end = first * scale, (first + bars * tpq * 4 * meter[0] // meter[1]) * scale
    tick, sounding, meters, last = 0, {}, {}, 0
    for message in mido.merge_tracks(midi.tracks):
        tick += message.time
        last = max(last, tick)
        if message.type == "time_signature":
            meters[tick] = (message.numerator, message.denominator)
        elif message.type == "note_on" and message.velocity > 0:
            if not start <= tick < end:
                problems.append(f"a note at tick {tick} outside bars [{start:g}, {end:g})")
            sounding[message.note] = sounding.get(message.note, 0) + 1
        elif message.type in ("note_on", "note_off") and sounding.get(message.note):
            sounding[message.note] -= 1
            if tick > end:
                problems.append(f"a note ends at tick {tick}, after the last bar line {end:g}")
    at_start = [m for t, m in sorted(meters.items()) if t <= start]
    if not at_start or at_start[-1] != meter:
        problems.append(f"written in {at_start[-1] if at_start else None} at its first bar line, the DAW shows {meter}")
    if last != end:
        problems.append(f"ends at tick {last}, not {bars} bars of {meter[0]}/{meter[1]} after {start:g} ({end:g})")
    if any(sounding.values()):
        problems.append("notes never end")
    return problems


def check_file(path: Path, bars: int, candidates: int, checkpoint: Path | None, workdir: Path) -> dict:
    from cli.suggest_file import SuggestRequest, suggest_file
    from engine.midi_file import MidiFileError

    row = {"file": str(path)}
    try:
        changes, tpq = daw_bar_lines(path)
        onset = last_onset(path)
    except (OSError, ValueError, EOFError, KeyError, IndexError) as e:
        return {**row, "outcome": "refused", "line": f"mido cannot read it either: {type(e).__name__}: {e}"}
    try:
        result = suggest_file(SuggestRequest(path, workdir, bars=bars, candidates=candidates, seed=0,
                                             checkpoint=checkpoint))
    except (MidiFileError, ValueError, OSError) as e:
        return {**row, "outcome": "refused", "line": str(e)}
    except Exception as e:   # a traceback: counted apart, never as refused
        log.exception("%s", path)
        return {**row, "outcome": "crashed", "line": f"{type(e).__name__}: {e}"}
    if onset is None:
        return {**row, "outcome": "invalid", "problems": ["candidates for a score without notes"]}
    first, meter = bar_line_after(changes, tpq, onset)
    problems = []
    if result["first_bar_tick"] != first:
        problems.append(f"starts at tick {result['first_bar_tick']}, the DAW's bar line after the prompt is {first}")
    for file in result["files"]:
        problems += candidate_problems(Path(file), first, meter, bars, tpq)
    return {**row, "outcome": "invalid" if problems else "valid", "meter_there": f"{meter[0]}/{meter[1]}",
            "problems": sorted(set(problems))[:5]}


def main(argv: list[str] | None = None) -> None:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(description="suggest on real scores, each candidate checked where a DAW "
                                                 "holding the score expects it")
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--bars", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    files = sorted(p for folder in args.folders for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for i, path in enumerate(tqdm(files, desc="scores")):
            rows.append(check_file(path, args.bars, args.candidates, args.checkpoint, Path(work) / str(i)))
    counts = Counter(r["outcome"] for r in rows)
    summary = {"benchmark": "real_scores", "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "checkpoint": str(args.checkpoint or "engine/assets/default.pt"),
               "folders": [str(f) for f in args.folders], "bars": args.bars, "candidates": args.candidates,
               "files": len(rows), **{k: counts.get(k, 0) for k in ("valid", "invalid", "refused", "crashed")},
               "refusals_by_kind": dict(Counter(r["line"].split(": ", 1)[-1][:80] for r in rows
                                                if r["outcome"] == "refused")),
               "rows": rows}
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
