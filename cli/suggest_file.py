"""`muse-bridge suggest`: a MIDI phrase in, K continuations of N bars out, one .mid file each."""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from engine.checkpoint import load_checkpoint
from engine.grammar import RemiGrammar
from engine.midi_file import MidiFileError, read_phrase
from engine.sampler import SamplingConfig
from engine.session import Session
from engine.style import load_style


log = logging.getLogger(__name__)

PROGRESS_FROM_BARS = 64   # candidates x bars from which a progress bar is shown


@dataclass(frozen=True)
class SuggestRequest:
    midi: Path
    out_dir: Path
    bars: int = 2
    candidates: int = 4
    sampling: SamplingConfig = SamplingConfig()
    seed: int | None = None
    checkpoint: Path | None = None
    style: Path | None = None


def check_out_dir(out_dir: Path) -> None:
    """The output folder exists (made if need be) and can be written; OSError naming it otherwise."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir}: is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"--out {out_dir}: cannot make the folder ({e.strerror or type(e).__name__})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out_dir}: the folder cannot be written")


def suggest_file(req: SuggestRequest) -> dict:
    """Write out_dir/candidate_<i>.mid for i = 1..K, each the continuation alone, placed from the first
    bar line after the prompt's last bar; returns what the command prints."""
    start = time.perf_counter()
    check_out_dir(req.out_dir)   # before any model work
    ckpt = load_checkpoint(req.checkpoint)
    tokenizer = ckpt.tokenizer
    RemiGrammar(tokenizer).check_controls(req.sampling)
    if req.sampling.chords_outside_key():
        log.warning(req.sampling.chords_outside_key())
    phrase = read_phrase(req.midi, tokenizer.settings)
    initial = load_style(req.style, ckpt) if req.style else None
    session, prompt = Session.for_phrase(ckpt.model, tokenizer, phrase, initial_state=initial)
    if not prompt:
        raise MidiFileError(req.midi, "no notes in the piano range")
    total = req.candidates * req.bars
    with tqdm(total=total, desc="bars", unit="bar", disable=None if total >= PROGRESS_FROM_BARS else True,
              file=sys.stderr) as progress:
        suggestion = session.suggest(req.candidates, req.bars, req.sampling, req.seed,
                                     ticks_per_beat=phrase.ticks_per_beat, on_bars=lambda i, c: progress.update())

    # on the file's own timeline (a pickup was read padded to a full bar), as `fill` writes: dropped at bar 1 of a
    # DAW holding the song, the candidate starts on the bar line after the prompt
    offset = round(phrase.on_file_timeline(phrase.bars.bar_line(phrase.n_bars)))
    files = []
    for i, cand in enumerate(suggestion.candidates, start=1):
        path = req.out_dir / f"candidate_{i}.mid"
        cand.write_midi(path, phrase.tempo_bpm, first_bar_tick=offset, time_signature=phrase.written_meter,
                        lead_in=phrase.file_meters() if phrase.meter_changes or phrase.pads else None)
        files.append(str(path))
    return {
        "files": files,
        "tokens_generated": suggestion.tokens_generated,
        "seed": suggestion.seed,
        "seconds": round(time.perf_counter() - start, 3),
        "sample_seconds": round(suggestion.seconds, 3),
        "prompt_tokens": len(prompt),
        "prompt_bars": phrase.n_bars,
        "first_bar_tick": offset,
        "checkpoint": ckpt.path,
    }
