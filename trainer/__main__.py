"""Command line of the trainer: prepare | train | finetune | eval."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from engine.checkpoint import CheckpointError
from engine.midi_file import MidiFileError
from engine.model import SIZES
from engine.sampler import SamplingConfig
from trainer.context_eval import CONTEXT_LENGTHS, ContextEvalConfig
from trainer.data import DataError
from trainer.train import TrainConfig
from cli.sampling_options import add_sampling_arguments, sampling_changes, time_signature


def parse_source(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path or "/" in name:
        raise argparse.ArgumentTypeError(f"{text!r}: give a source as NAME=PATH, e.g. mutopia=../MutopiaProject")
    return name, Path(path)


def add_training_args(p: argparse.ArgumentParser) -> None:
    d = TrainConfig("", "")
    p.add_argument("--data", required=True, help="a folder written by `prepare`")
    p.add_argument("--out", required=True, help="the run folder")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seq-len", type=int, default=d.seq_len)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--min-lr", type=float, default=d.min_lr)
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--max-transpose", type=int, default=d.max_transpose, help="random transposition, ± semitones")
    p.add_argument("--completion-bars", type=int, default=d.completion_bars,
                   help="take the loss only on each window's last N bars (0: every token)")
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--val-windows", type=int, default=d.val_windows)
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--carry-state", action="store_true",
                   help="play whole songs in consecutive windows, each starting from the state the last one ended "
                        "with: the model learns to carry the song (long context at the cost of a short window)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on the CPU too (always on a GPU)")
    p.add_argument("--thin-bars", type=float, default=d.thin_bars,
                   help="data with controls: thin this share of bars (a random share of their notes kept, controls "
                        "rewritten, density kept), so the model learns to write to its density control")
    p.add_argument("--thin-runs", type=float, default=d.thin_runs,
                   help="data with controls: thin this share of the windows as one run of bars from their start, so "
                        "the bars after it ask for more notes than the model has just read")
    p.add_argument("--fill-share", type=float, default=d.fill_share,
                   help="this share of the windows teaches filling a gap of 1-4 bars between what comes before "
                        "and after (adds the two fill markers to the vocabulary)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")


def training_config(args: argparse.Namespace, **overrides) -> TrainConfig:
    return TrainConfig(
        data_dir=args.data, out_dir=args.out, steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len,
        lr=TrainConfig.lr if args.lr is None else args.lr, min_lr=args.min_lr, warmup_steps=args.warmup_steps, max_transpose=args.max_transpose,
        completion_bars=args.completion_bars, val_every=args.val_every, val_windows=args.val_windows,
        save_every=args.save_every, seed=args.seed, grad_checkpointing=args.grad_checkpointing,
        carry_state=args.carry_state, cpu_bf16=args.bf16, thin_bars=args.thin_bars,
        thin_runs=args.thin_runs, fill_share=args.fill_share, **overrides)


def add_eval_args(p: argparse.ArgumentParser) -> None:
    from trainer.evaluate import EvalConfig
    d = EvalConfig("", Path())
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--midi", type=Path, default=None,
                   help="folder of MIDI files to evaluate on (recursive): 4+2-bar windows beside the n-gram; without it, "
                        "--data's split per source at --context-bars")
    p.add_argument("--windows", type=int, default=None,
                   help=f"windows in all, spread over the files (default {d.windows}; per source with --data alone: 48)")
    p.add_argument("--context-bars", type=lambda t: tuple(int(v) for v in t.split(",")), default=CONTEXT_LENGTHS,
                   help="without --midi: the context lengths in bars, comma-separated (default 2,4,8,16,32)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument("--seed", type=int, default=d.seed)
    add_sampling_arguments(p)
    p.add_argument("--ngram-order", type=int, default=d.ngram_order)
    p.add_argument("--train-data", default=None,
                   help="prepared DATA whose train split fits the n-gram (default: the checkpoint's training data)")
    p.add_argument("--data", default=None, help="prepared DATA whose index.json assigns DIR's files to splits")
    p.add_argument("--split", default=None, help="with --data: evaluate only the files of this split, e.g. val")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="windows per model pass")


def eval_config(args: argparse.Namespace):
    from trainer.evaluate import EvalConfig
    if args.split is not None and args.data is None:
        raise ValueError("--split needs --data (the prepared dataset that defines the splits)")
    if args.midi is None:
        if args.data is None:
            raise ValueError("give --midi DIR (4+2-bar windows), or --data DATA (its held-out split, per source, "
                             "at several context lengths)")
        return ContextEvalConfig(args.checkpoint, args.data, split=args.split or "val", contexts=args.context_bars,
                                 seed=args.seed, sampling=SamplingConfig(**sampling_changes(args)),
                                 batch_size=args.batch_size, **({"windows": args.windows} if args.windows else {}))
    return EvalConfig(args.checkpoint, args.midi, windows=args.windows or EvalConfig.windows, seed=args.seed,
                      sampling=SamplingConfig(**sampling_changes(args)), ngram_order=args.ngram_order, train_data=args.train_data, data=args.data,
                      split=args.split, batch_size=args.batch_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show the traceback of a failure")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="tokenize a folder of MIDI files, or named sources (score collections)")
    p.add_argument("--midi", type=Path, default=None, help="a folder of MIDI files")
    p.add_argument("--source", action="append", default=[], type=parse_source, metavar="NAME=PATH",
                   help="a named source, repeated: mutopia=CHECKOUT (LilyPond), lieder=CHECKOUT (MusicXML), or any "
                        "other name for a MIDI folder (pop909=DIR); files are named NAME/path")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--time-signature", type=time_signature, default=None, help="override every file's meter, e.g. 4/4")
    p.add_argument("--workers", type=int, default=0, help="worker processes (0: one per CPU)")
    p.add_argument("--controls", action="store_true",
                   help="a vocabulary with bar controls (note density, polyphony, pitch classes) for steering")

    p = sub.add_parser("train", help="train a model from scratch")
    add_training_args(p)
    p.add_argument("--size", default="tiny", choices=list(SIZES), help="the model size")

    p = sub.add_parser("finetune", help="adapt a checkpoint to your own MIDI: all weights, or only the initial state")
    add_training_args(p)
    p.add_argument("--from", dest="checkpoint", required=True, help="the checkpoint to start from")
    p.add_argument("--mode", choices=["full", "state"], default="state",
                   help="full: fine-tune every weight; state: learn a style preset (per-layer initial state)")
    p.set_defaults(lr=None)  # each mode has its own default learning rate

    p = sub.add_parser("eval", help="completion NLL and sampled-continuation metrics, beside two baselines")
    add_eval_args(p)

    p = sub.add_parser("export", help="write a checkpoint for shipping: float16 weights, eval numbers in its meta")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--eval-json", type=Path, default=None, help="the output of `eval`, stored in the checkpoint's meta")
    p.add_argument("--note", action="append", default=[], help="KEY=VALUE facts to record (hardware, wall time …)")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    try:
        return run(args)
    except (CheckpointError, MidiFileError, DataError, ValueError, OSError, KeyError) as e:
        if args.verbose:
            raise
        reason = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"python -m trainer {args.command}: {reason}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:

    if args.command == "prepare":
        from engine.tokenizer import TokenizerSettings
        from trainer.prepare import PrepareConfig, prepare
        if (args.midi is None) == (not args.source):
            raise ValueError("give either --midi DIR or one or more --source NAME=PATH")
        cfg = PrepareConfig(args.midi, args.out, args.validation_fraction, args.time_signature,
                            sources=tuple(args.source), **({"workers": args.workers} if args.workers else {}))
        settings = TokenizerSettings().with_controls() if args.controls else TokenizerSettings()
        print(json.dumps(prepare(cfg, settings)))
    elif args.command == "train":
        from trainer.train import train
        print(json.dumps(train(training_config(args, size=args.size), resume=args.resume)))
    elif args.command == "finetune" and args.mode == "full":
        from trainer.train import train
        print(json.dumps(train(training_config(args, init_from=args.checkpoint), resume=args.resume)))
    elif args.command == "finetune":
        from trainer.finetune import StateTuneConfig, state_tune
        cfg = StateTuneConfig(args.checkpoint, args.data, args.out, steps=args.steps, batch_size=args.batch_size,
                              seq_len=args.seq_len, max_transpose=args.max_transpose, seed=args.seed,
                              val_windows=args.val_windows, **({} if args.lr is None else {"lr": args.lr}))
        print(json.dumps(state_tune(cfg)))
    elif args.command == "eval":
        from trainer.context_eval import evaluate_contexts, summary_lines
        from trainer.evaluate import evaluate
        cfg = eval_config(args)
        if isinstance(cfg, ContextEvalConfig):
            report = evaluate_contexts(cfg)
            for line in summary_lines(report):
                logging.getLogger("trainer").info(line)
            print(json.dumps(report, indent=1))
        else:
            print(json.dumps(evaluate(cfg), indent=1))
    elif args.command == "export":
        from engine.checkpoint import load_checkpoint, save_checkpoint
        ckpt = load_checkpoint(args.checkpoint)
        meta = {**ckpt.meta, "exported_from": str(args.checkpoint), **dict(n.split("=", 1) for n in args.note)}
        if args.eval_json:
            meta["eval"] = json.loads(args.eval_json.read_text())
        save_checkpoint(args.out, ckpt.model, ckpt.tokenizer.settings, meta, dtype=torch.float16)
        print(json.dumps({"out": str(args.out), "bytes": args.out.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
