"""The `muse-bridge` command."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib import metadata
from pathlib import Path

from cli.file_commands import FILE_COMMANDS
from muse_bridge.command_socket import APP_COMMANDS, CommandSocketError, send_command
from muse_bridge.commands import Command


def version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("muse-bridge")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in FILE_COMMANDS:
        # A parser of its own, so the live bridge's options (same names, other defaults) never mix in.
        description, add_parser, run = FILE_COMMANDS[argv[0]]
        parser = argparse.ArgumentParser(prog="muse-bridge", description=description)
        add_parser(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return run(args)

    from ui.options import add_live_arguments

    parser = argparse.ArgumentParser(
        prog="muse-bridge",
        description="An RWKV-7 companion for composers: the live MIDI bridge, as a tray app where a display "
                    "exists and PyQt6 is installed, else (or with --headless) in the console. "
                    "`muse-bridge suggest IN.mid --out DIR …` continues a MIDI file instead, "
                    "`muse-bridge fill SONG.mid --bars 9-12 --out DIR …` fills a range of its bars.")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"muse-bridge {version()}")
    parser.add_argument("--command", choices=[c.value for c in Command] + list(APP_COMMANDS), default=None,
                        help="send a command to the running app and exit (for desktop shortcuts, e.g. on Wayland)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG", default=None,
                        help="render the panel with a POP909 phrase and real candidates to PNG, then exit")
    add_live_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command is not None:
        try:
            print(send_command(args.command))
        except CommandSocketError as e:
            print(f"muse-bridge: {e}", file=sys.stderr)
            return 2
        return 0
    if args.screenshot is not None:
        reason = tray_unavailable(need_display=False)
        if reason is not None:
            print(f"muse-bridge: cannot render the panel: {reason}", file=sys.stderr)
            return 2
        from ui.app import run_screenshot
        return run_screenshot(args)
    if not args.headless:
        reason = tray_unavailable()
        if reason is None:
            from ui.app import run_tray
            return run_tray(args)
        logging.getLogger(__name__).info("console mode: %s", reason)

    from ui.console import run_live
    return run_live(args)


def tray_unavailable(need_display: bool = True) -> str | None:
    """Why the tray app cannot start here (None when it can): PyQt6 missing, or no display."""
    try:
        import PyQt6.QtWidgets  # noqa: F401
    except ImportError as e:
        return f"PyQt6 is not installed ({e}); pip install -e '.[ui]'"
    display = (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
               or os.environ.get("QT_QPA_PLATFORM") == "offscreen")
    if need_display and sys.platform.startswith("linux") and not display:
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    return None


if __name__ == "__main__":
    sys.exit(main())
