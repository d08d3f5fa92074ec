"""`eval`: how well a checkpoint completes 2 bars after a 4-bar context, beside two baselines.

Windows are cut from each song on its Bar tokens: 4 context bars, then the 2 bars to complete, never
overlapping. The scored targets are the completion's tokens from its opening Bar through the Bar that
closes bar 2 (both Bars included: ending the bar on time is part of the task, and it is the token a
sampler stops on). The network sees only the 4 context bars; the n-gram sees its last order-1 tokens.

Sampled continuations (one per window) are compared with the real next 2 bars by their notes; the
"repeat the last 2 context bars" baseline has no probabilities, only those note metrics.

The loss is given per token and per note (the nats of the targets summed, over the completion's notes):
per note compares models across vocabularies. Windows carry no bar controls; a model with them is scored
with their tokens masked and the rest renormalised, as it samples with no control set.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.checkpoint import load_checkpoint
from engine.decode import EagerStepper
from engine.generate import sample_bars
from engine.grammar import RemiGrammar
from engine.midi_file import read_phrase
from engine.model import RWKV7
from engine.music import TICKS_PER_QUARTER, MeterMap, Note
from engine.sampler import SamplingConfig
from engine.song_memory import SongMemory, with_memory
from engine.state import State
from engine.tokenizer import RemiTokenizer, TokenizerSettings
from trainer.data import TokenWindows
from trainer.ngram import NGramModel
from trainer.sources import find_midi_files

log = logging.getLogger(__name__)

CONTEXT_BARS, COMPLETION_BARS = 4, 2
TICKS_PER_BEAT = TICKS_PER_QUARTER
TARGETS = "completion tokens from its opening Bar through the Bar that closes bar 2, both Bars included"


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str
    midi_dir: Path
    windows: int = 200              # at most this many windows in all, spread over the files
    seed: int = 0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    ngram_order: int = 6
    train_data: str | None = None   # n-gram training data (default: the checkpoint's, else --data's other splits)
    data: str | None = None         # with split: evaluate only the files DATA's index assigns to `split`
    split: str | None = None
    batch_size: int = 8             # windows per model pass
    sample_batch_size: int = 32     # windows sampled in lockstep


@dataclass
class Window:
    path: str
    bar: int                        # first context bar in the song
    context: list[int]              # 4 bars, starting with their Bar token
    completion: list[int]           # the targets: opening Bar .. closing Bar
    time_signature: tuple[int, int]


# ---- which files, which windows ---------------------------------------------------------------

def eval_files(cfg: EvalConfig) -> list[tuple[str, Path, tuple[int, int] | None]]:
    """(relative path, path, meter override) of every file to evaluate: DIR's, or those of DATA's split."""
    paths = find_midi_files(Path(cfg.midi_dir))
    if not paths:
        raise FileNotFoundError(f"{cfg.midi_dir}: no .mid or .midi files found")
    files = [(str(p.relative_to(cfg.midi_dir)), p, None) for p in paths]
    if cfg.data is None:
        return files
    index_path = Path(cfg.data) / "index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"{cfg.data}: not a prepared dataset (no index.json)")
    entries = {e["path"]: e for e in json.loads(index_path.read_text())["files"]}
    chosen = [(rel, p, _override(entries[rel])) for rel, p, _ in files
              if rel in entries and (cfg.split is None or entries[rel]["split"] == cfg.split)]
    if not chosen:
        raise ValueError(f"{cfg.midi_dir}: no file is in {cfg.data}'s {cfg.split or 'index'}")
    return chosen


def _override(entry: dict) -> tuple[int, int] | None:
    """The meter `prepare` read a file with: its --time-signature (None: the file's own meters; an index
    written before meter changes were read holds one meter per file, read as that one)."""
    if "read_with_meter" in entry:
        return tuple(entry["read_with_meter"]) if entry["read_with_meter"] else None
    return tuple(entry["time_signature"])


def read_songs(files, tokenizer: RemiTokenizer) -> tuple[list[tuple[str, list[int]]], list[dict]]:
    """Tokens of every readable file; the others with their reason."""
    songs, skipped = [], []
    need = CONTEXT_BARS + COMPLETION_BARS + 1  # the Bar closing the completion must exist
    for rel, path, meter in tqdm(files, desc="reading", unit="file"):
        try:
            tokens = tokenizer.encode(read_phrase(path, tokenizer.settings, time_signature=meter))
        except Exception as e:  # a file that breaks the parser is skipped and reported, never the run
            problem = getattr(e, "problem", f"unreadable ({type(e).__name__}: {e})")
            skipped.append({"path": rel, "reason": problem})
            log.warning("skipped %s: %s", path, problem)
            continue
        if tokenizer.count_bars(tokens) < need:
            skipped.append({"path": rel, "reason": f"{tokenizer.count_bars(tokens)} bars, a window needs {need}"})
            continue
        songs.append((rel, tokens))
    return songs, skipped


def select_windows(songs: list[tuple[str, list[int]]], tokenizer: RemiTokenizer, grammar: RemiGrammar,
                   n: int, seed: int) -> list[Window]:
    """Non-overlapping 4+2-bar windows, shuffled per song and taken round-robin over the songs."""
    rng = np.random.default_rng(seed)
    span = CONTEXT_BARS + COMPLETION_BARS
    per_song = []
    for rel, tokens in songs:
        bars = tokenizer.bar_starts(tokens)
        starts = list(range(0, len(bars) - span, span))  # bars[b + span] closes the completion
        rng.shuffle(starts)
        per_song.append([(rel, tokens, bars, b) for b in starts])
    order = rng.permutation(len(per_song))
    chosen = []
    for r in range(max((len(s) for s in per_song), default=0)):
        chosen += [per_song[i][r] for i in order if r < len(per_song[i])]
    windows = []
    for rel, tokens, bars, b in chosen[:n]:
        context = tokens[bars[b]:bars[b + CONTEXT_BARS]]
        completion = tokens[bars[b + CONTEXT_BARS]:bars[b + span] + 1]
        windows.append(Window(rel, b, context, completion, grammar.meter_after(context)))
    return windows


# ---- probabilities of the targets -----------------------------------------------------------

def control_ids(tokenizer: RemiTokenizer) -> torch.Tensor:
    """The bar-control token ids (none in a vocabulary without them)."""
    return torch.tensor([i for i in range(tokenizer.vocab_size) if tokenizer.vocabulary.is_control(i)], dtype=torch.long)


@torch.no_grad()
def model_scores(model: RWKV7, windows: list[Window], batch_size: int, pad_id: int,
                 masked: torch.Tensor | None = None, memories=(0.0,),
                 stops: tuple[int, ...] = ()) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Per song-memory strength in `memories` (0: the model alone), ln P and whether the argmax is right for
    every target token (window order), from one batched pass of the model: the ids `masked` get no
    probability (the rest renormalised), and the song memory of each window's tokens so far (`stops` never
    proposed) is mixed in at that strength, as the sampler mixes it."""
    order = sorted(range(len(windows)), key=lambda i: len(windows[i].context) + len(windows[i].completion))
    logp = {m: [None] * len(windows) for m in memories}
    correct = {m: [None] * len(windows) for m in memories}
    for start in tqdm(range(0, len(order), batch_size), desc="model NLL", unit="batch"):
        batch = [windows[i] for i in order[start:start + batch_size]]
        seqs = [w.context + w.completion[:-1] for w in batch]
        x = torch.full((len(seqs), max(map(len, seqs))), pad_id, dtype=torch.long)
        for row, s in enumerate(seqs):
            x[row, :len(s)] = torch.tensor(s)  # right padding: causal, so it never reaches real positions
        hidden, _ = model.hidden(x)
        for row, (i, w) in enumerate(zip(order[start:start + batch_size], batch)):
            at = slice(len(w.context) - 1, len(w.context) - 1 + len(w.completion))
            logits = model.head(hidden[row, at]).float()
            if masked is not None and len(masked):
                logits[:, masked] = float("-inf")
            y = torch.tensor(w.completion)
            for m in memories:
                mixed = with_memory(logits, w.context, w.completion, m, stops) if m else logits
                logp[m][i] = mixed.log_softmax(-1).gather(1, y[:, None])[:, 0].numpy()
                correct[m][i] = (mixed.argmax(-1) == y).numpy()
    return {m: (np.concatenate(logp[m]), np.concatenate(correct[m])) for m in memories}


def ngram_scores(ngram: NGramModel, windows: list[Window],
                 masked: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The same targets under the n-gram (the ids `masked` given no probability, the rest renormalised)."""
    h = ngram.order - 1
    histories, targets = [], []
    for w in windows:
        seq = w.context + w.completion
        for j in range(len(w.context), len(seq)):
            histories.append(seq[j - h:j] if h else [])
            targets.append(seq[j])
    histories, targets = np.array(histories, dtype=np.int64).reshape(len(targets), h), np.array(targets)
    logp, correct = [], []
    for s in range(0, len(targets), 2048):
        p = ngram.probabilities(histories[s:s + 2048])
        if masked is not None and len(masked):
            p[:, masked.numpy()] = 0
            p /= p.sum(-1, keepdims=True)
        logp.append(np.log(p[np.arange(len(p)), targets[s:s + 2048]]))
        correct.append(p.argmax(-1) == targets[s:s + 2048])
    return np.concatenate(logp), np.concatenate(correct)


def nll_metrics(logp: np.ndarray, correct: np.ndarray, targets: np.ndarray, tokenizer: RemiTokenizer) -> dict:
    kinds = np.array(tokenizer.vocabulary.kind)[targets]
    notes = int((kinds == "Pitch").sum())
    return {"nll": float(-logp.mean()), "nll_per_note": float(-logp.sum() / notes) if notes else None,
            "accuracy": float(correct.mean()),
            "nll_by_kind": {k: float(-logp[kinds == k].mean()) for k in sorted(set(kinds))}}


# ---- sampled continuations ------------------------------------------------------------------

@torch.no_grad()
def model_samples(model: RWKV7, grammar: RemiGrammar, windows: list[Window],
                  sampling: SamplingConfig | list[SamplingConfig], seed: int, batch_size: int,
                  stops: tuple[int, ...] = (), per_request: int = 1) -> list[list[int]]:
    """One continuation per window (`sampling`: one config, or one per window): each context is read on its own,
    then a batch of windows is sampled in lockstep, with the song memory of its context (`stops` never
    proposed); `per_request` windows in a row are one request's candidates (the same window, repeated)."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in tqdm(range(0, len(windows), batch_size), desc="model samples", unit="batch"):
        batch = windows[start:start + batch_size]
        stepper = EagerStepper(model, State.cat([model(torch.tensor([w.context]))[1] for w in batch]))
        configs = sampling[start:start + batch_size] if isinstance(sampling, list) else sampling
        out += sample_bars(stepper.step, grammar, [w.time_signature for w in batch], COMPLETION_BARS, configs,
                           generator, memory=[SongMemory(w.context, stops).stream() for w in batch],
                           requests=[(start + i) // per_request for i in range(len(batch))])
    return out


def ngram_samples(ngram: NGramModel, grammar: RemiGrammar, windows: list[Window], sampling: SamplingConfig,
                  seed: int) -> list[list[int]]:
    """All windows sampled in lockstep under the same grammar masks as the network's suggestions."""
    generator = torch.Generator().manual_seed(seed)
    h = max(ngram.order - 1, 0)
    histories = [list(w.context) for w in windows]

    def step(tokens: torch.Tensor) -> torch.Tensor:
        for hist, t in zip(histories, tokens.tolist()):
            hist.append(t)
        last = np.array([hist[len(hist) - h:] for hist in histories], dtype=np.int64).reshape(len(histories), h)
        return torch.from_numpy(np.log(ngram.probabilities(last)))

    return sample_bars(step, grammar, [w.time_signature for w in windows], COMPLETION_BARS, sampling, generator)


def repeat_samples(windows: list[Window], tokenizer: RemiTokenizer) -> list[list[int]]:
    """The last 2 context bars, played again."""
    return [w.context[tokenizer.bar_starts(w.context)[-COMPLETION_BARS]:] for w in windows]


def bar_notes(tokens: list[int], w: Window, tokenizer: RemiTokenizer) -> tuple[list[Note], bool]:
    """Notes of a 2-bar continuation (without its closing Bar) and whether it is exactly 2 bars."""
    end = MeterMap.constant(w.time_signature, TICKS_PER_BEAT).span(COMPLETION_BARS)
    notes = tokenizer.decode(tokens, TICKS_PER_BEAT, w.time_signature)
    inside = [n for n in notes if n.start < end]
    return inside, tokenizer.count_bars(tokens) == COMPLETION_BARS and len(inside) == len(notes)


def pitch_class_overlap(a: list[Note], b: list[Note]) -> float:
    """Sum over the 12 pitch classes of the smaller normalised share; 1 for two silences."""
    if not a or not b:
        return float(not a and not b)
    ha = np.bincount([n.pitch % 12 for n in a], minlength=12) / len(a)
    hb = np.bincount([n.pitch % 12 for n in b], minlength=12) / len(b)
    return float(np.minimum(ha, hb).sum())


def continuation_metrics(samples: list[list[int]], windows: list[Window], tokenizer: RemiTokenizer) -> dict:
    overlaps, ratios, generated, real, exact = [], [], 0, 0, 0
    for tokens, w in zip(samples, windows):
        got, is_exact = bar_notes(tokens, w, tokenizer)
        want, _ = bar_notes(w.completion[:-1], w, tokenizer)
        overlaps.append(pitch_class_overlap(got, want))
        if want:
            ratios.append(len(got) / len(want))
        generated, real, exact = generated + len(got), real + len(want), exact + is_exact
    return {"pitch_class_overlap": float(np.mean(overlaps)),
            "note_density_ratio_mean": float(np.mean(ratios)) if ratios else None,
            "note_density_ratio_of_totals": generated / real if real else None,
            "exactly_2_bars": exact / len(windows)}


# ---- the n-gram's training data -------------------------------------------------------------

def ngram_training_data(cfg: EvalConfig, meta: dict,
                        settings: TokenizerSettings) -> tuple[str, list[str], list[np.ndarray]] | None:
    """(data dir, splits, token sequences): --train-data's train split, else the checkpoint's training data
    when it exists here, else the splits of --data other than the evaluated one; None when there is none."""
    data_dir, splits = cfg.train_data or meta.get("train_config", {}).get("data_dir"), ["train"]
    if cfg.train_data is None and not (data_dir and (Path(data_dir) / "index.json").is_file()):
        if cfg.data is None or cfg.split is None:
            return None
        data_dir = cfg.data
        index = json.loads((Path(data_dir) / "index.json").read_text())
        splits = sorted({e["split"] for e in index["files"]} - {cfg.split})
    sequences = []
    for split in splits:
        data = TokenWindows(data_dir, split, markers=settings.fill_markers)   # data never holds the markers
        if data.settings != settings:
            raise ValueError(f"{data_dir}: tokenized with other settings than the checkpoint {cfg.checkpoint}")
        for f in data.files:   # without bar controls, as the windows are
            tokens = np.asarray(data.tokens[f["offset"]:f["offset"] + f["length"]])
            sequences.append(tokens[data.control_group[tokens] == 0])
    return str(data_dir), splits, sequences


# ---- the whole evaluation -------------------------------------------------------------------

def evaluate(cfg: EvalConfig) -> dict:
    """Every metric, for the checkpoint and both baselines, as one JSON-ready dict."""
    started = time.perf_counter()
    ckpt = load_checkpoint(cfg.checkpoint)
    tokenizer, grammar = ckpt.tokenizer, RemiGrammar(ckpt.tokenizer)
    sampling = cfg.sampling
    songs, skipped = read_songs(eval_files(cfg), tokenizer)
    windows = select_windows(songs, tokenizer, grammar, cfg.windows, cfg.seed)
    if not windows:
        raise ValueError(f"{cfg.midi_dir}: no file has the {CONTEXT_BARS + COMPLETION_BARS + 1} bars a window needs")
    log.info("%d windows from %d files", len(windows), len({w.path for w in windows}))

    targets = np.concatenate([w.completion for w in windows])
    pad_id = tokenizer.pad_id
    masked = control_ids(tokenizer)
    # scored as the engine samples, with the song memory; the model alone beside it
    scores = model_scores(ckpt.model, windows, cfg.batch_size, pad_id, masked, {sampling.memory, 0.0})
    model_metrics = nll_metrics(*scores[sampling.memory], targets, tokenizer)
    if sampling.memory:
        model_metrics["nll_per_note_model_alone"] = nll_metrics(*scores[0.0], targets, tokenizer)["nll_per_note"]
    model_metrics.update(continuation_metrics(
        model_samples(ckpt.model, grammar, windows, sampling, cfg.seed, cfg.sample_batch_size), windows, tokenizer))
    metrics = {"model": model_metrics}
    ngram_info, below_ngram = None, None
    training = ngram_training_data(cfg, ckpt.meta, tokenizer.settings)
    if training is None:
        log.info("no n-gram baseline: it needs training data (pass --train-data DATA; the checkpoint names none "
                 "that exists here)")
    else:
        fit_start = time.perf_counter()
        train_dir, train_splits, sequences = training
        ngram = NGramModel(tokenizer.vocab_size, cfg.ngram_order).fit(sequences)
        ngram_info = {"order": cfg.ngram_order, "smoothing": "interpolated modified Kneser-Ney",
                      "train_data": train_dir, "train_splits": train_splits,
                      "train_tokens": ngram.n_tokens, "fit_seconds": round(time.perf_counter() - fit_start, 2)}
        ngram_metrics = nll_metrics(*ngram_scores(ngram, windows, masked), targets, tokenizer)
        ngram_metrics.update(continuation_metrics(
            ngram_samples(ngram, grammar, windows, sampling, cfg.seed), windows, tokenizer))
        metrics["ngram"] = ngram_metrics
        below_ngram = 1 - model_metrics["nll"] / ngram_metrics["nll"]
    repeat_metrics = {"nll": None, "nll_per_note": None, "accuracy": None, "nll_by_kind": None,
                      **continuation_metrics(repeat_samples(windows, tokenizer), windows, tokenizer)}
    return {
        "checkpoint": str(cfg.checkpoint), "midi_dir": str(cfg.midi_dir),
        "data": cfg.data, "split": cfg.split,
        "files": len(songs), "skipped": skipped,
        "windows": len(windows), "window_files": len({w.path for w in windows}),
        "context_bars": CONTEXT_BARS, "completion_bars": COMPLETION_BARS,
        "targets": TARGETS, "target_tokens": int(len(targets)),
        "nll_unit": "nats/token; nll_per_note: nats summed over the targets / the completion's notes",
        "controls_masked": int(len(masked)),
        "sampling": {"candidates_per_window": 1, **asdict(sampling), "seed": cfg.seed},
        "ngram": ngram_info,
        "metrics": {**metrics, "repeat_last_2_bars": repeat_metrics},
        "model_nll_below_ngram": below_ngram,
        "seconds": round(time.perf_counter() - started, 1),
    }
