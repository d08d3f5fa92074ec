"""`prepare`: a folder of MIDI files -> a token array, per-file bar offsets and a train/validation split.

Layout of DATA:
    tokens.npy      uint16, every file's tokens one after another (with `--controls`, every bar with notes
                    carries its controls: the training windows keep a random subset of them)
    index.json      tokenizer settings, and per file: path, split, token offset, bar offsets (relative)
    skipped.json    every file that was not used, with the reason
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.midi_file import MidiFileError, read_phrase
from engine.tokenizer import RemiTokenizer, TokenizerSettings

log = logging.getLogger(__name__)

MIDI_SUFFIXES = {".mid", ".midi"}
PLAUSIBLE_METERS = {(2, 4), (3, 4), (4, 4), (6, 4), (3, 8), (6, 8), (9, 8), (12, 8), (2, 2), (3, 2)}


@dataclass(frozen=True)
class PrepareConfig:
    midi_dir: Path
    out_dir: Path
    validation_fraction: float = 0.1
    time_signature: tuple[int, int] | None = None   # override the files' meters
    workers: int = max(1, (os.cpu_count() or 1))
    max_bars: int = 2000              # a longer file is an outlier (a 10-minute song at 120 bpm has 300 bars)
    max_silent_bars: int = 64         # so is one with a longer run of empty bars


def find_midi_files(root: Path) -> list[Path]:
    """Every .mid/.midi file below `root`, in a stable order."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


def split_of(relative_path: str, validation_fraction: float) -> str:
    """Deterministic by file name: the same file lands in the same split on every machine."""
    h = int.from_bytes(hashlib.sha1(relative_path.encode()).digest()[:8], "big") / 2 ** 64
    return "val" if h < validation_fraction else "train"


def longest_silence(tokens: list[int], bar_id: int, is_note: set[int]) -> int:
    """The longest run of bars without a note."""
    longest = run = 0
    for t in tokens:
        if t == bar_id:
            run += 1
            longest = max(longest, run - 1)
        elif t in is_note:
            run = 0
    return max(longest, run)


def _tokenize(args: tuple[Path, dict, tuple[int, int] | None, int, int]
              ) -> tuple[Path, list[int] | None, str, list[tuple[int, int]] | None]:
    path, settings, meter, max_bars, max_silent_bars = args
    tokenizer = _worker_tokenizer(settings)
    try:
        phrase = read_phrase(path, tokenizer.settings, time_signature=meter)
        tokens = tokenizer.encode(phrase, controls=tokenizer.settings.controls)
    except MidiFileError as e:
        return path, None, e.problem, None
    except Exception as e:  # a file that breaks the parser is skipped, never the run
        return path, None, f"unreadable ({type(e).__name__}: {e})", None
    bars = tokenizer.count_bars(tokens)
    if bars == 0 or len(tokens) < 2:
        return path, None, "no bars", None
    if bars > max_bars:
        return path, None, f"{bars} bars, an outlier (the limit is {max_bars})", None
    silence = longest_silence(tokens, tokenizer.bar_id, _pitch_ids(tokenizer))
    if silence > max_silent_bars:
        return path, None, f"{silence} empty bars in a row, an outlier (the limit is {max_silent_bars})", None
    return path, tokens, "", phrase.meters


def _pitch_ids(tokenizer: RemiTokenizer) -> set[int]:
    return set(tokenizer.vocabulary.pitch)


_TOKENIZERS: dict[str, RemiTokenizer] = {}


def _worker_tokenizer(settings: dict) -> RemiTokenizer:
    key = json.dumps(settings, sort_keys=True)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = RemiTokenizer(TokenizerSettings.from_dict(settings))
    return _TOKENIZERS[key]


def prepare(cfg: PrepareConfig, settings: TokenizerSettings = TokenizerSettings()) -> dict:
    """Tokenize every MIDI file under cfg.midi_dir into cfg.out_dir; returns a summary."""
    if not cfg.midi_dir.is_dir():
        raise FileNotFoundError(f"--midi {cfg.midi_dir}: no such folder")
    files = find_midi_files(cfg.midi_dir)
    if not files:
        raise FileNotFoundError(f"{cfg.midi_dir}: no .mid or .midi files found")
    tokenizer = RemiTokenizer(settings)
    if tokenizer.vocab_size > np.iinfo(np.uint16).max:
        raise ValueError(f"vocabulary of {tokenizer.vocab_size} tokens does not fit uint16")
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(p, settings.to_dict(), cfg.time_signature, cfg.max_bars, cfg.max_silent_bars) for p in files]
    entries, skipped, chunks, offset = [], [], [], 0
    with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
        results = pool.map(_tokenize, jobs, chunksize=4)
        for path, tokens, problem, meter in tqdm(results, total=len(files), desc="tokenizing", unit="file"):
            rel = str(path.relative_to(cfg.midi_dir))
            if tokens is None:
                skipped.append({"path": rel, "reason": problem})
                log.warning("skipped %s: %s", path, problem)
                continue
            for m in meter:
                if tuple(m) not in PLAUSIBLE_METERS:
                    log.warning("%s declares %d/%d, an unusual meter: its bars may not be real bars "
                                "(use --time-signature to override)", path, *m)
            entries.append({"path": rel, "split": split_of(rel, cfg.validation_fraction), "offset": offset,
                            "length": len(tokens), "bars": tokenizer.bar_starts(tokens),
                            "time_signature": list(meter[-1]), "meters": [list(m) for m in meter],
                            "read_with_meter": list(cfg.time_signature) if cfg.time_signature else None})
            chunks.append(np.asarray(tokens, dtype=np.uint16))
            offset += len(tokens)
    (cfg.out_dir / "skipped.json").write_text(json.dumps(skipped, indent=1))
    if not entries:
        raise ValueError(f"{cfg.midi_dir}: none of the {len(files)} MIDI files could be used; "
                         f"the reasons are in {cfg.out_dir / 'skipped.json'}")
    np.save(cfg.out_dir / "tokens.npy", np.concatenate(chunks))
    index = {"tokenizer": settings.to_dict(), "vocab_size": tokenizer.vocab_size, "files": entries}
    (cfg.out_dir / "index.json").write_text(json.dumps(index))
    summary = {
        "files": len(entries), "skipped": len(skipped), "tokens": offset,
        "train_files": sum(e["split"] == "train" for e in entries),
        "val_files": sum(e["split"] == "val" for e in entries),
    }
    log.info("prepared %s", summary)
    return summary
