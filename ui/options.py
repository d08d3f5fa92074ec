"""The live bridge's command-line options (ports, clock, model, sampling), and the LaunchOptions they make.
Only front ends (ui/cli.py, ui/console.py, ui/app.py, trainer/__main__.py, bench/) parse a command line; the
parts below them take typed values."""
from __future__ import annotations

import argparse
from pathlib import Path

from muse_bridge.clock import SONG_POSITION_UNITS
from muse_bridge.ports import MIDI_APIS
from muse_bridge.settings import FLAT_NAMES, MAX_AFTER_BEATS, default_settings_path
from ui.startup import LaunchOptions
from cli.sampling_options import add_sampling_arguments, sampling_changes, time_signature


def add_live_arguments(parser: argparse.ArgumentParser) -> None:
    """The live bridge's options (ports, clock, model, sampling) on the main `muse-bridge` parser."""
    g = parser.add_argument_group("live bridge")
    g.add_argument("--headless", action="store_true", help="console mode even where a display exists")
    g.add_argument("--midi-api", choices=sorted(MIDI_APIS), default=None, help="rtmidi API (default: saved, else auto)")
    g.add_argument("--in", dest="input_port", metavar="NAME", default=None, help='input port (default "Muse In")')
    g.add_argument("--out", dest="output_port", metavar="NAME", default=None, help='output port (default "Muse Out")')
    g.add_argument("--virtual", dest="virtual_ports", action=argparse.BooleanOptionalAction, default=None,
                   help="create virtual ports (default where the API can) or open existing ones by name")
    g.add_argument("--checkpoint", type=Path, default=None, help="a model checkpoint (default: the bundled model)")
    g.add_argument("--style", type=Path, default=None, help="a style preset for the checkpoint")
    g.add_argument("--bpm", type=float, default=None, help="tempo without MIDI clock (default 120)")
    g.add_argument("--time-signature", type=time_signature, default=None, help="meter, e.g. 3/4 (default 4/4)")
    g.add_argument("--song-position", choices=sorted(SONG_POSITION_UNITS), default=None,
                   help="what the DAW's Song Position Pointer counts: sixteenths (the MIDI standard, the default) "
                        "or clocks (Ardour 7 and 8)")
    g.add_argument("--candidates", type=int, default=None)
    g.add_argument("--bars", type=int, default=None)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--channel", type=int, default=None, help="output MIDI channel, 1-16")
    g.add_argument("--fast-step", action=argparse.BooleanOptionalAction, default=None,
                   help="the fast decode step: ONNX Runtime once the model's step is exported on a CPU, "
                        "CUDA graphs on a GPU (default: on)")
    g.add_argument("--precompute", action=argparse.BooleanOptionalAction, default=None,
                   help="make candidates in pauses, ready before Suggest is pressed (default: on)")
    g.add_argument("--answer-after", type=int, metavar="BEATS", default=None,
                   help=f"answer mode: a pause of BEATS beats (1-{MAX_AFTER_BEATS}) is answered from the next bar line")
    g.add_argument("--answers-join", action=argparse.BooleanOptionalAction, default=None,
                   help="an answer played to its end joins the context, as Accept does (default: off)")
    g.add_argument("--device", default=None, help="torch device for the model (default: cuda if present, else cpu)")
    g.add_argument("--settings", type=Path, default=None,
                   help=f"settings file (default: $MUSE_BRIDGE_SETTINGS or {default_settings_path()})")
    add_sampling_arguments(parser, saved=True)


def launch_options(args: argparse.Namespace) -> LaunchOptions:
    # every option given is a setting for this run only (never saved)
    overrides = {path: getattr(args, name) for name, path in FLAT_NAMES.items()
                 if getattr(args, name, None) is not None}
    overrides.update({f"sampling.{name}": value for name, value in sampling_changes(args).items()})
    if args.channel is not None:
        overrides["ports.output_channel"] = args.channel - 1
    if args.answer_after is not None:
        overrides["answer.on"] = True
    if args.style is not None:
        overrides["style"] = str(args.style)
    return LaunchOptions(args.checkpoint, args.device, args.settings, overrides)
