"""`muse-bridge suggest` and `muse-bridge fill`: their parsers, and the runs that end in one JSON line or one error
line (exit status 2)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.sampling_options import add_sampling_arguments, sampling_changes
from engine.checkpoint import CheckpointError
from engine.midi_file import MidiFileError, bundled_phrase
from engine.sampler import SamplingConfig
from muse_bridge.settings import MAX_BARS, MAX_CANDIDATES


def count(most: int):
    """An argparse type: a whole number from 1 to `most`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if not 1 <= value <= most:
            raise argparse.ArgumentTypeError(f"must be 1-{most}, got {value}")
        return value
    return parse


def add_suggest_parser(sub) -> None:
    p = sub.add_parser("suggest", help="continue a MIDI phrase: write K candidate continuations of N bars")
    p.add_argument("midi", type=Path, nargs="?", default=None,
                   help="the phrase (.mid); left out: the phrase bundled for a first try (16 bars of POP909)")
    p.add_argument("--bars", type=count(MAX_BARS), default=2)
    p.add_argument("--candidates", type=count(MAX_CANDIDATES), default=4)
    add_sampling_arguments(p)
    p.add_argument("--seed", type=int, default=None, help="make the candidates reproducible")
    p.add_argument("--checkpoint", type=Path, default=None, help="a model checkpoint (default: the bundled model)")
    p.add_argument("--style", type=Path, default=None, help="a style preset made by `trainer finetune --mode state`")
    p.add_argument("--out", type=Path, required=True, help="folder for candidate_<i>.mid")


def run_suggest(args: argparse.Namespace) -> int:
    from cli.suggest_file import SuggestRequest, suggest_file

    if args.midi is None:
        args.midi = bundled_phrase()
    try:
        sampling = SamplingConfig(**sampling_changes(args))
        result = suggest_file(SuggestRequest(args.midi, args.out, args.bars, args.candidates, sampling,
                                             args.seed, args.checkpoint, args.style))
    except (MidiFileError, CheckpointError, ValueError, OSError) as e:
        print(f"muse-bridge suggest: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def add_fill_parser(sub) -> None:
    p = sub.add_parser("fill", help="write K versions of a song, each with a range of bars filled anew between "
                                    "what comes before and after")
    p.add_argument("midi", type=Path, help="the song (.mid)")
    p.add_argument("--bars", required=True, metavar="FIRST-LAST", help="the bars to fill, 1-based, e.g. 9-12")
    p.add_argument("-n", "--candidates", type=count(MAX_CANDIDATES), default=4)
    add_sampling_arguments(p)
    p.add_argument("--seed", type=int, default=None, help="make the candidates reproducible")
    p.add_argument("--checkpoint", type=Path, default=None, help="a model checkpoint (default: the bundled model)")
    p.add_argument("--out", type=Path, required=True, help="folder for fill_<i>.mid")


def run_fill(args: argparse.Namespace) -> int:
    from cli.fill_file import FillRequest, fill_file, parse_bar_range

    try:
        first, last = parse_bar_range(args.bars)
        sampling = SamplingConfig(**sampling_changes(args))
        result = fill_file(FillRequest(args.midi, args.out, first, last, args.candidates, sampling, args.seed,
                                       args.checkpoint))
    except (MidiFileError, CheckpointError, ValueError, OSError) as e:
        print(f"muse-bridge fill: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


FILE_COMMANDS = {"suggest": ("Continue a MIDI phrase.", add_suggest_parser, run_suggest),
                 "fill": ("Fill a range of bars of a MIDI song.", add_fill_parser, run_fill)}
