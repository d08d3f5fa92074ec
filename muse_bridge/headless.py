"""`muse-bridge --headless`: the live bridge in a terminal, with a status line and one-key commands.

Keys: s suggest, n next, p previous, a accept, c clear context, x panic, e export, L then a
command key to MIDI-learn its trigger, q quit. Ctrl-C and SIGTERM quit too; every note the bridge
started gets its note-off before it exits.
"""
from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from engine.checkpoint import CheckpointError
from engine.tokenizer import parse_time_signature
from muse_bridge.controller import Command
from muse_bridge.ports import MIDI_APIS, MidiApiError
from muse_bridge.settings import SettingsError, default_settings_path, load_settings

log = logging.getLogger(__name__)

KEYS = {"s": Command.SUGGEST, "n": Command.NEXT, "p": Command.PREVIOUS, "a": Command.ACCEPT,
        "c": Command.CLEAR, "x": Command.PANIC, "e": Command.EXPORT}
HELP = "keys: s suggest  n next  p previous  a accept  c clear  x panic  e export  L<key> learn  q quit"


def add_live_arguments(parser: argparse.ArgumentParser) -> None:
    """The live bridge's options (ports, clock, model, sampling) on the main `muse-bridge` parser."""
    g = parser.add_argument_group("live bridge")
    g.add_argument("--headless", action="store_true", help="console mode even where a display exists")
    g.add_argument("--midi-api", choices=sorted(MIDI_APIS), default=None, help="rtmidi API (default: saved, else auto)")
    g.add_argument("--in", dest="input_port", metavar="NAME", default=None, help='input port (default "Muse In")')
    g.add_argument("--out", dest="output_port", metavar="NAME", default=None, help='output port (default "Muse Out")')
    g.add_argument("--virtual", action=argparse.BooleanOptionalAction, default=None,
                   help="create virtual ports (default where the API can) or open existing ones by name")
    g.add_argument("--checkpoint", type=Path, default=None, help="a model checkpoint (default: the bundled model)")
    g.add_argument("--style", type=Path, default=None, help="a style preset for the checkpoint")
    g.add_argument("--bpm", type=float, default=None, help="tempo without MIDI clock (default 120)")
    g.add_argument("--time-signature", type=parse_time_signature, default=None, help="meter, e.g. 3/4 (default 4/4)")
    g.add_argument("--candidates", type=int, default=None)
    g.add_argument("--bars", type=int, default=None)
    g.add_argument("--temperature", type=float, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--channel", type=int, default=None, help="output MIDI channel, 1-16")
    g.add_argument("--device", default=None, help="torch device for the model (default: cuda if present, else cpu)")
    g.add_argument("--settings", type=Path, default=None,
                   help=f"settings file (default: $MUSE_BRIDGE_SETTINGS or {default_settings_path()})")


def settings_from_args(args: argparse.Namespace):
    """Saved settings, overridden by whatever was given on the command line."""
    settings = load_settings(args.settings)
    overrides = {"midi_api": args.midi_api, "input_port": args.input_port, "output_port": args.output_port,
                 "virtual_ports": args.virtual, "bpm": args.bpm, "time_signature": args.time_signature,
                 "candidates": args.candidates, "bars": args.bars, "temperature": args.temperature,
                 "top_p": args.top_p, "top_k": args.top_k, "seed": args.seed,
                 "output_channel": None if args.channel is None else args.channel - 1}
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def run_live(args: argparse.Namespace) -> int:
    """Open the bridge and run the console until quit; returns the exit status."""
    import torch

    from engine.checkpoint import load_checkpoint
    from engine.style import load_style
    from muse_bridge.bridge import LiveBridge

    try:
        settings = settings_from_args(args)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        ckpt = load_checkpoint(args.checkpoint, device=device)
        initial = load_style(args.style, ckpt).to(device) if args.style else None
        bridge = LiveBridge(ckpt, settings, initial, settings_path=args.settings).start()
    except (SettingsError, CheckpointError, MidiApiError, OSError, ValueError) as e:
        print(f"muse-bridge: {e}", file=sys.stderr)
        return 2

    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    print(f"Muse Bridge: in {bridge.ports.input_name!r}, out {bridge.ports.output_name!r} "
          f"({bridge.ports.api}, {'virtual' if bridge.ports.virtual else 'existing'} ports), model on {device}")
    print(HELP)
    try:
        _console(bridge, stop)
    finally:
        bridge.close()  # note-offs first
        for s, handler in previous.items():
            signal.signal(s, handler)
        print()
    return 0


def status_line(bridge) -> str:
    s = bridge.status()
    latency = f"{s.last_suggest_seconds:.2f}s" if s.last_suggest_seconds is not None else "-"
    cand = f"{s.candidate}/{s.candidates}{' >' if s.playing else ''}" if s.candidate else "-"
    line = (f"{s.bpm:6.1f} bpm ({s.clock}) | bar {s.bar} | context {s.context_tokens} tok"
            f"{f' (+{s.pending_tokens})' if s.pending_tokens else ''} | suggest {latency} | cand {cand} | {s.device}")
    if s.overflow:
        line += f" | {s.overflow} dropped"
    return line + (f" | {s.message}" if s.message else "")


@contextmanager
def _keys():
    """stdin one key at a time where it is a terminal; lines otherwise."""
    if not sys.stdin.isatty():
        yield False
        return
    import termios
    import tty
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _console(bridge, stop: threading.Event) -> None:
    learning = False
    with _keys() as tty_mode:
        while not stop.is_set():
            if tty_mode:
                print("\r\x1b[2K" + status_line(bridge)[:os.get_terminal_size().columns - 1], end="", flush=True)
            ready, _, _ = select.select([sys.stdin], [], [], 0.25)
            if not ready:
                continue
            text = sys.stdin.read(1) if tty_mode else sys.stdin.readline()
            if text == "":
                stop.wait()  # stdin closed: run until a signal
                continue
            for key in text.strip() or " ":
                if key == "q":
                    stop.set()
                elif key == "L":
                    learning = True
                    bridge.message = "learn: press the key of the command to learn"
                elif key in KEYS and learning:
                    learning = False
                    bridge.learn(KEYS[key])
                    bridge.message = f"learn: move a control or press a key for {KEYS[key].value}"
                elif key in KEYS:
                    bridge.do(KEYS[key])
            if not tty_mode:
                print(status_line(bridge), flush=True)
