"""`muse-bridge suggest`: a MIDI phrase in, K continuations of N bars out, one .mid file each."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from engine.checkpoint import load_checkpoint
from engine.sampler import SamplingConfig
from engine.session import Session
from engine.style import load_style
from engine.tokenizer import MidiFileError


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


def suggest_file(req: SuggestRequest) -> dict:
    """Write out_dir/candidate_<i>.mid for i = 1..K, each the continuation alone, placed from the first
    bar line after the prompt's last bar; returns what the command prints."""
    start = time.perf_counter()
    ckpt = load_checkpoint(req.checkpoint)
    tokenizer = ckpt.tokenizer
    phrase = tokenizer.read_midi(req.midi)
    prompt = tokenizer.encode(phrase)
    if not prompt:
        raise MidiFileError(req.midi, "no notes in the piano range")
    initial = load_style(req.style, ckpt) if req.style else None
    session = Session(ckpt.model, tokenizer, initial_state=initial)
    session.feed(prompt)
    suggestion = session.suggest(req.candidates, req.bars, req.sampling, req.seed,
                                 ticks_per_beat=phrase.ticks_per_beat)

    offset = phrase.n_bars * phrase.ticks_per_bar
    end = offset + req.bars * phrase.ticks_per_bar
    req.out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i, cand in enumerate(suggestion.candidates, start=1):
        path = req.out_dir / f"candidate_{i}.mid"
        notes = [type(n)(n.pitch, n.velocity, n.start + offset, n.end + offset) for n in cand.notes]
        tokenizer.write_midi(notes, path, ticks_per_beat=phrase.ticks_per_beat, tempo_bpm=phrase.tempo_bpm,
                             time_signature=phrase.time_signature, end_tick=end)
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
