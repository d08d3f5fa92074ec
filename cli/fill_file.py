"""`muse-bridge fill`: a song in, K versions of it out, each with a range of bars written anew between what comes
before and what comes after (Session.fill); every other message of the file is kept as it was."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cli.suggest_file import check_out_dir
from engine.checkpoint import load_checkpoint
from engine.grammar import RemiGrammar
from engine.midi_file import MidiFileError, read_phrase, replace_notes
from engine.music import Note
from engine.sampler import SamplingConfig
from engine.session import Session
from muse_bridge.settings import MAX_FILL_BARS



class FillRangeError(ValueError):
    """A range of bars that cannot be filled; the message names the range and the song's bars."""


@dataclass(frozen=True)
class FillRequest:
    midi: Path
    out_dir: Path
    first_bar: int                 # 1-based, inclusive
    last_bar: int
    candidates: int = 4
    sampling: SamplingConfig = SamplingConfig()
    seed: int | None = None
    checkpoint: Path | None = None


def parse_bar_range(text: str) -> tuple[int, int]:
    """'9-12' -> (9, 12); '5' -> (5, 5); FillRangeError naming the text otherwise."""
    first, _, last = text.partition("-")
    try:
        lo, hi = int(first), int(last or first)
    except ValueError:
        raise FillRangeError(f"--bars {text!r}: give bars as FIRST-LAST, e.g. 9-12") from None
    if hi < lo:
        raise FillRangeError(f"--bars {text!r}: the range is empty (the last bar comes before the first)")
    return lo, hi


def check_range(first: int, last: int, song_bars: int) -> None:
    if first < 1 or last > song_bars:
        raise FillRangeError(f"--bars {first}-{last}: outside the song, which has bars 1-{song_bars}")
    if last - first + 1 > MAX_FILL_BARS:
        raise FillRangeError(f"--bars {first}-{last}: {last - first + 1} bars; fill at most {MAX_FILL_BARS} at once")


def fill_file(req: FillRequest) -> dict:
    """Write out_dir/fill_<i>.mid for i = 1..K: the song with bars first..last written by candidate i."""
    began = time.perf_counter()
    check_out_dir(req.out_dir)
    ckpt = load_checkpoint(req.checkpoint)
    tokenizer = ckpt.tokenizer
    RemiGrammar(tokenizer).check_controls(req.sampling)
    phrase = read_phrase(req.midi, tokenizer.settings)
    if not phrase.notes:
        raise MidiFileError(req.midi, "no notes in the piano range")
    check_range(req.first_bar, req.last_bar, phrase.n_bars)
    gap_first, gap_end = req.first_bar - 1, req.last_bar          # 0-based bars [gap_first, gap_end)
    prefix, suffix = tokenizer.around_gap(tokenizer.encode(phrase), gap_first, gap_end - 1)
    bars = phrase.bars
    suggestion = Session(ckpt.model, tokenizer).fill(req.candidates, gap_end - gap_first, prefix, suffix, req.sampling,
                                                     req.seed, meter=bars.meter(gap_first),
                                                     ticks_per_beat=phrase.ticks_per_beat)
    start, end = bars.bar_line(gap_first), bars.bar_line(gap_end)
    files = []
    for i, candidate in enumerate(suggestion.candidates, start=1):
        path = req.out_dir / f"fill_{i}.mid"
        replace_notes(req.midi, path, phrase, start, end,
                      [Note(n.pitch, n.velocity, n.start + start, n.end + start) for n in candidate.notes])
        files.append(str(path))
    return {"files": files, "bars": [req.first_bar, req.last_bar], "song_bars": phrase.n_bars,
            "tokens_generated": suggestion.tokens_generated, "seed": suggestion.seed,
            "prefix_tokens": len(prefix), "suffix_tokens": len(suffix),
            "seconds": round(time.perf_counter() - began, 3), "sample_seconds": round(suggestion.seconds, 3),
            "checkpoint": ckpt.path}
