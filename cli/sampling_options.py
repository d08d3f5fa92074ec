"""The options every command line that samples shares, declared once: the sampling options (of `muse-bridge
suggest`, the live app and `trainer eval`) and the time signature, with the argparse types that read them. It
imports only engine/, so the trainer's command line uses it too."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from engine.chords import parse_chords
from engine.music import parse_time_signature
from engine.sampler import MAX_DENSITY, MAX_POLYPHONY, SamplingConfig


def time_signature(text: str) -> tuple[int, int]:
    """'6/8' -> (6, 8), as an argparse type (the error names the bad value)."""
    try:
        return parse_time_signature(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# the sampling options of `muse-bridge suggest`, the live app and `trainer eval`, declared once:
# option -> (SamplingConfig field, argparse type, help)
def _chords_argument(text: str) -> tuple[str, ...] | str:
    if text.strip().lower() == "auto":
        return AUTO
    try:
        return parse_chords(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _whole_or_auto(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number or auto, got {text!r}") from None


AUTO = "auto"   # an option given as "auto": the model's own choice, whatever is saved
SAMPLING_OPTIONS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "--temperature": ("temperature", float, "0 picks the most likely token; higher is wilder"),
    "--top-p": ("top_p", float, "keep the smallest set of tokens holding this much probability, (0, 1]"),
    "--top-k": ("top_k", int, "keep only the k most likely tokens (0: no limit)"),
    "--memory": ("memory", float, "0-1: how strongly candidates follow what came after the same notes earlier in "
                                  "the song (0: the model alone)"),
    "--key": ("key_lock", str, 'key lock, e.g. "A minor", "D dorian" or "off"'),
    "--density": ("density", _whole_or_auto, f"notes per bar, 0-{MAX_DENSITY}, or auto (a model with bar controls)"),
    "--polyphony": ("polyphony", _whole_or_auto,
                    f"at most N notes struck at once, 1-{MAX_POLYPHONY} (1: a single line), or auto"),
    "--chords": ("chords", _chords_argument,
                 'one chord per bar, cycling over the bars, e.g. "C Am F G" or "Dm7 G7 Cmaj7", or auto'),
}


def add_sampling_arguments(parser: argparse.ArgumentParser, saved: bool = False) -> None:
    """The sampling options, in a group of their own. With `saved` (the live app) every default is None, so
    an option left out keeps the saved setting; else the defaults are SamplingConfig's."""
    group, defaults = parser.add_argument_group("sampling"), SamplingConfig()
    for option, (name, kind, help_text) in SAMPLING_OPTIONS.items():
        default = None if saved else getattr(defaults, name)
        group.add_argument(option, dest=name, type=kind, default=default, help=help_text)


def sampling_changes(args: argparse.Namespace) -> dict[str, Any]:
    """{SamplingConfig field: value} of the sampling options given ("auto" -> the model's own choice)."""
    given = {name: getattr(args, name) for name, _, _ in SAMPLING_OPTIONS.values() if getattr(args, name) is not None}
    return {name: SamplingConfig.__dataclass_fields__[name].default if value == AUTO else value
            for name, value in given.items()}
