"""`muse-bridge --headless`: the live bridge in a terminal, with a status line and one-key commands.

Keys: s suggest, n next, p previous, a accept, c clear context, x panic, e export, t answer mode on/off,
L then a command key to MIDI-learn its trigger, q quit. Ctrl-C and SIGTERM quit too; every note the bridge
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

from engine.checkpoint import CheckpointError
from muse_bridge.command_socket import CommandSocket, CommandSocketError
from muse_bridge.commands import Command
from muse_bridge.ports import MidiApiError
from muse_bridge.protocol import LearnTrigger
from muse_bridge.settings import SettingsError
from ui.startup import launch_settings, open_bridge
from ui.options import launch_options

log = logging.getLogger(__name__)

KEYS = {"s": Command.SUGGEST, "n": Command.NEXT, "p": Command.PREVIOUS, "a": Command.ACCEPT,
        "c": Command.CLEAR, "x": Command.PANIC, "e": Command.EXPORT, "t": Command.ANSWER, "f": Command.FILL,
        "w": Command.SAVE_PLAYED}
HELP = ("keys: s suggest  f fill the last bars  n next  p previous  a accept  c clear  x panic  e export  "
        "w save what you played  t answer mode  L<key> learn  q quit")


def run_live(args: argparse.Namespace) -> int:
    """Open the bridge and run the console until quit; returns the exit status."""
    options = launch_options(args)
    try:
        settings, problems = launch_settings(options)
        for problem in problems:
            print(f"muse-bridge: {problem}", file=sys.stderr)
        bridge, problems = open_bridge(options, settings, lambda text, done: log.info("%s", text))
    except (SettingsError, CheckpointError, MidiApiError, OSError, ValueError) as e:
        print(f"muse-bridge: {e}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"muse-bridge: {problem}", file=sys.stderr)

    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    channel = CommandSocket(bridge.send, stop.set)
    try:
        channel.start()
    except (CommandSocketError, OSError) as e:   # e.g. another Muse Bridge answers there: this one goes on
        print(f"muse-bridge: no command channel: {e}", file=sys.stderr)
        channel = None
    now = bridge.snapshot()
    print(f"Muse Bridge: in {now.ports.input_name!r}, out {now.ports.output_name!r} "
          f"({now.ports.api}, {'virtual' if now.ports.virtual else 'existing'} ports), model on {now.device}")
    print(HELP)
    try:
        _console(bridge, stop)
    finally:
        if channel is not None:
            channel.close()
        bridge.close()  # note-offs first
        for s, handler in previous.items():
            signal.signal(s, handler)
        print()
    return 0


def status_line(bridge) -> str:
    s = bridge.snapshot().status
    latency = f"{s.last_suggest_seconds:.2f}s" if s.last_suggest_seconds is not None else "-"
    cand = f"{s.candidate}/{s.candidates}{' >' if s.playing else ''}" if s.candidate else "-"
    line = (f"{s.bpm:6.1f} bpm ({s.clock}) | bar {s.bar} | context {s.context_tokens} tok"
            f"{f' (+{s.pending_tokens})' if s.pending_tokens else ''} | suggest {latency} | cand {cand} | {s.device}")
    if s.overflow:
        line += f" | {s.overflow} dropped"
    if s.answer != "off":
        line += f" | answer {s.answer}"
    if s.unsent:
        line += f" | {s.unsent} unsent (output port gone)"
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
                    print("\nlearn: press the key of the command to learn", flush=True)
                elif key in KEYS and learning:
                    learning = False
                    bridge.send(LearnTrigger(KEYS[key]))
                elif key in KEYS:
                    bridge.send(KEYS[key])
            if not tty_mode:
                print(status_line(bridge), flush=True)
