"""Fidelity of the bar controls: how closely candidates follow density, polyphony and chords, beside auto.

On the 4+2-bar windows of the validation songs (as `trainer eval` cuts them), each window's 2 bars are
sampled once per setting, with one candidate per window:
- auto: no control (the model's own choice);
- the truth's own values: density (its notes per bar), polyphony (its most notes at one onset) and chords
  (each bar's chord named from the time its pitch classes sound);
- fixed values: --density 4, --density 16, --polyphony 1.
Measures: density, the mean |ln(candidate notes per bar / target)|; polyphony, the share of onsets within the
cap; chords, the share of note time on the bar's chord tones; and the share of candidates of exactly 2 bars.
"""
from __future__ import annotations

import argparse
import logging
import math
import statistics
from collections import Counter
from pathlib import Path

import numpy as np

from bench.results import add_threads_argument, apply_threads, write
from engine.checkpoint import load_checkpoint
from engine.chords import chord_pitch_classes, chords_of_bars
from engine.grammar import RemiGrammar
from engine.music import MeterMap, Note
from engine.sampler import MAX_DENSITY, SamplingConfig
from trainer.evaluate import (COMPLETION_BARS, TICKS_PER_BEAT, EvalConfig, Window, bar_notes, eval_files, read_songs,
                              select_windows, model_samples)

log = logging.getLogger("bench.controls")
DEFAULT_DATA = Path("data/pop909c")
DEFAULT_MIDI = Path(__file__).resolve().parents[2] / "shared" / "data" / "pop909"


def most_at_one_onset(notes: list[Note]) -> int:
    return max(Counter(n.start for n in notes).values(), default=0)


def onsets_within(notes: list[Note], cap: int) -> float | None:
    """The share of onsets with at most `cap` notes struck."""
    counts = Counter(n.start for n in notes).values()
    return sum(c <= cap for c in counts) / len(counts) if counts else None


def time_on_chords(notes: list[Note], chords: tuple[str, ...], bar_map: MeterMap) -> float | None:
    """The share of the notes' time (inside the 2 bars) on the chord tones of the bar it sounds in."""
    on = total = 0
    for bar, chord in enumerate(chords[:COMPLETION_BARS]):
        tones, start, end = chord_pitch_classes(chord), bar_map.bar_line(bar), bar_map.bar_line(bar + 1)
        for n in notes:
            t = max(0, min(n.end, end) - max(n.start, start))
            total += t
            on += t * (n.pitch % 12 in tones)
    return on / total if total else None


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="a model with bar controls (default: the bundled model)")
    parser.add_argument("--midi", type=Path, default=DEFAULT_MIDI, help="the songs")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="prepared DATA whose val split is used")
    parser.add_argument("--windows", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    apply_threads(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    ckpt = load_checkpoint(args.checkpoint)
    tokenizer, grammar = ckpt.tokenizer, RemiGrammar(ckpt.tokenizer)
    files = eval_files(EvalConfig(str(ckpt.path), args.midi, data=str(args.data), split="val"))
    songs, _ = read_songs(files, tokenizer)
    windows: list[Window] = select_windows(songs, tokenizer, grammar, args.windows, args.seed)
    truths = [bar_notes(w.completion[:-1], w, tokenizer)[0] for w in windows]
    windows, truths = zip(*[(w, t) for w, t in zip(windows, truths) if t])   # a silent truth has no density to match
    maps = [MeterMap.constant(w.time_signature, TICKS_PER_BEAT) for w in windows]
    density = [len(t) / COMPLETION_BARS for t in truths]
    polyphony = [min(max(most_at_one_onset(t), 1), 6) for t in truths]
    chords = [chords_of_bars(t, m, range(COMPLETION_BARS)) for t, m in zip(truths, maps)]
    log.info("%d windows from %d songs", len(windows), len({w.path for w in windows}))

    settings = {
        "auto": [SamplingConfig()] * len(windows),
        "density_truth": [SamplingConfig(density=min(round(d), MAX_DENSITY)) for d in density],
        "density_4": [SamplingConfig(density=4)] * len(windows),
        "density_16": [SamplingConfig(density=16)] * len(windows),
        "polyphony_truth": [SamplingConfig(polyphony=p) for p in polyphony],
        "polyphony_1": [SamplingConfig(polyphony=1)] * len(windows),
        "chords_truth": [SamplingConfig(chords=c) if len(c) == COMPLETION_BARS else SamplingConfig() for c in chords],
    }
    results = {}
    for name, configs in settings.items():
        samples = model_samples(ckpt.model, grammar, list(windows), configs, args.seed, args.batch_size)
        notes, exact = zip(*[bar_notes(s, w, tokenizer) for s, w in zip(samples, windows)])
        per_bar = [len(n) / COMPLETION_BARS for n in notes]
        row = {
            "exactly_2_bars": sum(exact) / len(exact),
            "median_notes_per_bar": statistics.median(per_bar),
            "density_abs_log_ratio_to_truth": mean(abs(math.log(max(p, 0.5) / d)) for p, d in zip(per_bar, density)),
            "onsets_within_truth_polyphony": mean(onsets_within(n, p) for n, p in zip(notes, polyphony)),
            "single_note_onsets": mean(onsets_within(n, 1) for n in notes),
            "time_on_truth_chords": mean(time_on_chords(n, c, m) for n, c, m in zip(notes, chords, maps)),
        }
        if name.startswith("density_") and name != "density_truth":
            target = int(name.split("_")[1])
            row["median_off_target"] = round(row["median_notes_per_bar"] / target - 1, 3)
        log.info("%s: %s", name, row)
        results[name] = row
    goals = {
        "density_4_vs_16_ratio": round(results["density_16"]["median_notes_per_bar"]
                                       / max(results["density_4"]["median_notes_per_bar"], 1e-9), 2),
        "density_4_within_30pct": abs(results["density_4"]["median_off_target"]) <= 0.3,
        "density_16_within_30pct": abs(results["density_16"]["median_off_target"]) <= 0.3,
        "polyphony_1_single_onsets": results["polyphony_1"]["single_note_onsets"],
        "chords_time_on_chord_tones": results["chords_truth"]["time_on_truth_chords"],
        "density_truth_abs_log_ratio": results["density_truth"]["density_abs_log_ratio_to_truth"],
        "density_auto_abs_log_ratio": results["auto"]["density_abs_log_ratio_to_truth"],
    }
    path = write("controls", {"checkpoint": ckpt.path, "windows": len(windows), "songs": len({w.path for w in windows}),
                              "split": f"{args.data} val", "seed": args.seed, "settings": results, "goals": goals})
    log.info("goals %s", goals)
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
