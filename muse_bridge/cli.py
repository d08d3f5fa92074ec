"""The `muse-bridge` command."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from engine.checkpoint import CheckpointError
from engine.sampler import SamplingConfig
from engine.tokenizer import MidiFileError


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_suggest_parser(sub) -> None:
    d = SamplingConfig()
    p = sub.add_parser("suggest", help="continue a MIDI phrase: write K candidate continuations of N bars")
    p.add_argument("midi", type=Path, help="the phrase (.mid)")
    p.add_argument("--bars", type=positive_int, default=2)
    p.add_argument("--candidates", type=positive_int, default=4)
    p.add_argument("--temperature", type=float, default=d.temperature)
    p.add_argument("--top-p", type=float, default=d.top_p)
    p.add_argument("--top-k", type=int, default=d.top_k)
    p.add_argument("--seed", type=int, default=None, help="make the candidates reproducible")
    p.add_argument("--checkpoint", type=Path, default=None, help="a model checkpoint (default: the bundled model)")
    p.add_argument("--style", type=Path, default=None, help="a style preset made by `trainer finetune --mode state`")
    p.add_argument("--out", type=Path, required=True, help="folder for candidate_<i>.mid")


def run_suggest(args: argparse.Namespace) -> int:
    from muse_bridge.suggest import SuggestRequest, suggest_file

    try:
        sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k)
        result = suggest_file(SuggestRequest(args.midi, args.out, args.bars, args.candidates, sampling,
                                             args.seed, args.checkpoint, args.style))
    except (MidiFileError, CheckpointError, ValueError) as e:
        print(f"muse-bridge suggest: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["suggest"]:
        # A parser of its own, so the live bridge's options (same names, other defaults) never mix in.
        parser = argparse.ArgumentParser(prog="muse-bridge", description="Continue a MIDI phrase.")
        sub = parser.add_subparsers(dest="command", required=True)
        add_suggest_parser(sub)
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return run_suggest(args)

    from muse_bridge.headless import add_live_arguments, run_live

    parser = argparse.ArgumentParser(
        prog="muse-bridge",
        description="An RWKV-7 companion for composers: the live MIDI bridge (console mode). "
                    "`muse-bridge suggest IN.mid --out DIR …` continues a MIDI file instead.")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_live_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_live(args)


if __name__ == "__main__":
    sys.exit(main())
