"""`prepare`: MIDI files -> a token array, per-file bar offsets and a train/validation split.

The files come from a folder (`--midi DIR`), or from named sources (`--source NAME=PATH`, repeated): a MIDI
folder, or a score collection that trainer.sources converts (Mutopia, OpenScore Lieder). A source whose
name has a list in trainer/heldout/ holds out exactly the files listed there; otherwise the split is by
a hash of the file name.

Layout of DATA:
    tokens.npy      uint16, every file's tokens one after another (with `--controls`, every bar with notes
                    carries its controls: the training windows keep a random subset of them)
    index.json      tokenizer settings, and per file: path (with sources: NAME/path), source, split, token
                    offset, bar offsets (relative)
    skipped.json    every file that was not used, with the reason
    manifest.json   with sources: per source its checkout, commit, licences, counts, refused and failed works
    ATTRIBUTIONS.md with sources: every CC-BY work used, with its title, composer and licence
    converted/      with score collections: their MIDI, kept so that the next run converts only what is new
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.midi_file import MidiFileError, read_phrase
from engine.tokenizer import RemiTokenizer, TokenizerSettings
from trainer.sources import Converted, Source, checkout_commit, find_midi_files, licence_kind, open_source

log = logging.getLogger(__name__)

PLAUSIBLE_METERS = {(2, 4), (3, 4), (4, 4), (6, 4), (3, 8), (6, 8), (9, 8), (12, 8), (2, 2), (3, 2)}
HELDOUT_DIR = Path(__file__).parent / "heldout"


@dataclass(frozen=True)
class PrepareConfig:
    midi_dir: Path | None             # one MIDI folder (paths as they are), or None with `sources`
    out_dir: Path
    validation_fraction: float = 0.1
    time_signature: tuple[int, int] | None = None   # override the files' meters
    workers: int = max(1, (os.cpu_count() or 1))
    max_bars: int = 2000              # a longer file is an outlier (a 10-minute song at 120 bpm has 300 bars)
    max_silent_bars: int = 64         # so is one with a longer run of empty bars
    sources: tuple[tuple[str, Path], ...] = ()   # (name, path): named sources, their files as NAME/path
    heldout_dir: Path = field(default=HELDOUT_DIR)


@dataclass
class MidiFile:
    """One MIDI file to tokenize: where it is, its name in the index, its source and split."""

    path: Path
    name: str
    source: str | None
    split: str


def split_of(relative_path: str, validation_fraction: float, heldout: set[str] | None = None) -> str:
    """The source's held-out list decides where there is one; otherwise a hash of the file name, so the same
    file lands in the same split on every machine."""
    if heldout is not None:
        return "val" if relative_path in heldout else "train"
    h = int.from_bytes(hashlib.sha1(relative_path.encode()).digest()[:8], "big") / 2 ** 64
    return "val" if h < validation_fraction else "train"


def read_heldout(heldout_dir: Path, source: str) -> set[str] | None:
    """The files (paths inside the source) that trainer/heldout/SOURCE.txt holds out, or None without a list."""
    path = heldout_dir / f"{source}.txt"
    if not path.is_file():
        return None
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


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
    """Tokenize every MIDI file of cfg's folder or sources into cfg.out_dir; returns a summary."""
    tokenizer = RemiTokenizer(settings)
    if tokenizer.vocab_size > np.iinfo(np.uint16).max:
        raise ValueError(f"vocabulary of {tokenizer.vocab_size} tokens does not fit uint16")
    if cfg.midi_dir is not None:
        if not cfg.midi_dir.is_dir():
            raise FileNotFoundError(f"--midi {cfg.midi_dir}: no such folder")
        files = [MidiFile(p, str(p.relative_to(cfg.midi_dir)), None,
                          split_of(str(p.relative_to(cfg.midi_dir)), cfg.validation_fraction))
                 for p in find_midi_files(cfg.midi_dir)]
        if not files:
            raise FileNotFoundError(f"{cfg.midi_dir}: no .mid or .midi files found")
        manifest = None
    else:
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        files, manifest = gather_sources(cfg)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(f.path, settings.to_dict(), cfg.time_signature, cfg.max_bars, cfg.max_silent_bars) for f in files]
    entries, skipped, chunks, offset = [], [], [], 0
    with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
        results = pool.map(_tokenize, jobs, chunksize=4)
        for file, (path, tokens, problem, meter) in tqdm(zip(files, results), total=len(files), desc="tokenizing",
                                                         unit="file"):
            if tokens is None:
                skipped.append({"path": file.name, "reason": problem})
                log.warning("skipped %s: %s", path, problem)
                continue
            for m in meter:
                if tuple(m) not in PLAUSIBLE_METERS:
                    log.warning("%s declares %d/%d, an unusual meter: its bars may not be real bars "
                                "(use --time-signature to override)", path, *m)
            entries.append({"path": file.name, **({"source": file.source} if file.source else {}),
                            "split": file.split, "offset": offset,
                            "length": len(tokens), "bars": tokenizer.bar_starts(tokens),
                            "time_signature": list(meter[-1]), "meters": [list(m) for m in meter],
                            "read_with_meter": list(cfg.time_signature) if cfg.time_signature else None})
            chunks.append(np.asarray(tokens, dtype=np.uint16))
            offset += len(tokens)
    (cfg.out_dir / "skipped.json").write_text(json.dumps(skipped, indent=1))
    if not entries:
        raise ValueError(f"{cfg.midi_dir or 'the sources'}: none of the {len(files)} MIDI files could be used; "
                         f"the reasons are in {cfg.out_dir / 'skipped.json'}")
    np.save(cfg.out_dir / "tokens.npy", np.concatenate(chunks))
    index = {"tokenizer": settings.to_dict(), "vocab_size": tokenizer.vocab_size, "files": entries}
    (cfg.out_dir / "index.json").write_text(json.dumps(index))
    summary = {
        "files": len(entries), "skipped": len(skipped), "tokens": offset,
        "train_files": sum(e["split"] == "train" for e in entries),
        "val_files": sum(e["split"] == "val" for e in entries),
    }
    if manifest is not None:
        for source in manifest["sources"]:
            mine = [e for e in entries if e.get("source") == source["name"]]
            source["tokenized"] = {"files": len(mine), "val_files": sum(e["split"] == "val" for e in mine),
                                   "tokens": sum(e["length"] for e in mine),
                                   "skipped": sum(s["path"].startswith(source["name"] + "/") for s in skipped)}
        (cfg.out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
        summary["sources"] = {s["name"]: {"works": s["works"], "refused": len(s["refused"]),
                                          "failed": len(s["failed"]), **s["tokenized"]} for s in manifest["sources"]}
    log.info("prepared %s", summary)
    return summary


def gather_sources(cfg: PrepareConfig) -> tuple[list[MidiFile], dict]:
    """Every source's works converted to MIDI (refusing those whose licence does not allow it), and the
    manifest that says what each source gave and why the rest was left out."""
    files, manifest, attributions = [], {"sources": []}, []
    for name, root in cfg.sources:
        source = open_source(name, root)
        works = source.works()
        allowed = [w for w in works if source.allows(w)]
        refused = [{"path": w.path, "reason": f"licence {w.licence or 'not stated'!r} (only Public Domain, CC0 "
                                              f"and CC-BY are used)"} for w in works if w not in allowed]
        out_dir = getattr(source, "midi_dir", cfg.out_dir / "converted" / name)
        with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
            converted = list(tqdm(pool.map(partial(_convert, source, out_dir), allowed, chunksize=1),
                                  total=len(allowed), desc=f"converting {name}", unit="work"))
        failed = [{"path": c.work.path, "reason": c.problem} for c in converted if c.problem]
        for f in failed:
            log.warning("%s: skipped %s: %s", name, f["path"], f["reason"])
        heldout = read_heldout(cfg.heldout_dir, name)
        for c in converted:
            for rel in c.midi:
                files.append(MidiFile(out_dir / rel, f"{name}/{rel}", name,   # a work's movements stay together
                                      split_of(c.work.path, cfg.validation_fraction, heldout)))
            if c.midi and (licence_kind(c.work.licence) or "").startswith("CC BY"):
                attributions.append((name, source.url, c.work))
        manifest["sources"].append({
            "name": name, "kind": type(source).__name__, "url": source.url, "checkout": str(root),
            "commit": checkout_commit(Path(root)), "works": len(works), "refused": refused,
            "failed": failed, "converted_works": sum(bool(c.midi) for c in converted),
            "midi_files": sum(len(c.midi) for c in converted),
            "licences": dict(Counter(licence_kind(c.work.licence) or c.work.licence for c in converted if c.midi)),
            "heldout_list": f"trainer/heldout/{name}.txt" if heldout is not None else None})
    (cfg.out_dir / "ATTRIBUTIONS.md").write_text(attribution_text(attributions))
    return files, manifest


def _convert(source: Source, out_dir: Path, work) -> Converted:
    """One work converted; a file that cannot be read or written skips the work, never the run."""
    try:
        return source.convert(work, out_dir)
    except OSError as e:   # shutil.Error (a copy that failed) is one too
        return Converted(work, problem=f"could not be converted ({type(e).__name__}: {str(e)[:160]})")


def attribution_text(attributions: list) -> str:
    """The CC-BY works a model trained on these sources learned from, as its licence asks them named."""
    lines = ["# Attributions", "", "Works licensed under Creative Commons Attribution (CC BY) in the training data",
             "of this model. Public Domain and CC0 works need no attribution and are counted in the manifest.", ""]
    for name, url, w in sorted(attributions, key=lambda a: (a[0], a[2].composer, a[2].title)):
        lines.append(f"- *{w.title or Path(w.path).stem}*, {w.composer or 'unknown composer'}: {w.licence} "
                     f"({name}, {url}, {w.path})")
    if not attributions:
        lines.append("No CC BY work is in this data.")
    return "\n".join(lines) + "\n"
