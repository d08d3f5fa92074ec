"""A small local command channel to the running app: `muse-bridge --command suggest` from a desktop shortcut.

Where a global hotkey cannot be grabbed (Wayland), the desktop's own shortcut settings run
`muse-bridge --command suggest`; that connects to the running app over a Unix socket (a loopback TCP
port, written to a file, where there are no Unix sockets) and sends one line; the app answers
"ok" or "error: …". The socket is `$MUSE_BRIDGE_SOCKET`, else `muse-bridge.sock` in
`$XDG_RUNTIME_DIR` (or the temp folder, with the user id).
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Callable

from muse_bridge.commands import Command

log = logging.getLogger(__name__)

SOCKET_ENV = "MUSE_BRIDGE_SOCKET"
APP_COMMANDS = ("show", "quit")       # besides the bridge's Commands
TIMEOUT_SECONDS = 5.0


class CommandSocketError(OSError):
    """No app is listening, or it refused the command; the message says which."""


def socket_path() -> Path:
    if os.environ.get(SOCKET_ENV):
        return Path(os.environ[SOCKET_ENV])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "muse-bridge.sock"
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return Path(tempfile.gettempdir()) / f"muse-bridge-{uid}.sock"


def _unix() -> bool:
    return hasattr(socket, "AF_UNIX")


def _connect(path: Path, timeout: float) -> socket.socket:
    if _unix():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address = str(path)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = ("127.0.0.1", int(path.read_text()))
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def send_command(name: str, path: Path | None = None, timeout: float = TIMEOUT_SECONDS) -> str:
    """Send one command to the running app; returns its answer, CommandSocketError when none is running."""
    path = path or socket_path()
    if name not in APP_COMMANDS and name not in {c.value for c in Command}:
        raise ValueError(f"unknown command {name!r}; use one of {', '.join([c.value for c in Command] + list(APP_COMMANDS))}")
    try:
        with _connect(path, timeout) as sock:
            sock.sendall(name.encode() + b"\n")
            answer = sock.makefile().readline().strip()
    except (OSError, ValueError) as e:
        raise CommandSocketError(f"Muse Bridge is not running (nothing answers at {path}: {e})") from None
    if answer.startswith("error"):
        raise CommandSocketError(f"Muse Bridge refused {name!r}: {answer}")
    return answer


class CommandSocket:
    """Listens for command lines; bridge commands go to `on_command(Command)`, "show" and "quit" to
    `on_show()` / `on_quit()`. Both are called on the channel's thread, so they must only queue work."""

    def __init__(self, on_command: Callable[[Command], None], on_quit: Callable[[], None],
                 on_show: Callable[[], None] = lambda: None, path: Path | None = None):
        self.path = path or socket_path()
        self._on_command, self._on_quit, self._on_show = on_command, on_quit, on_show
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def start(self) -> "CommandSocket":
        """Listen; raises CommandSocketError when another running app already answers at the path."""
        try:
            _connect(self.path, 0.5).close()
        except (OSError, ValueError):
            self.path.unlink(missing_ok=True)   # a stale socket of an app that ended without cleaning up
        else:
            raise CommandSocketError(f"another Muse Bridge already answers at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if _unix():
            self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._server.bind(str(self.path))
        else:
            self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._server.bind(("127.0.0.1", 0))
            self.path.write_text(str(self._server.getsockname()[1]))
        self._server.listen(4)
        self._server.settimeout(0.2)   # accept() wakes up to see close()
        self._thread = threading.Thread(target=self._serve, name="muse-command-channel", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return   # closed
            with client:
                client.settimeout(TIMEOUT_SECONDS)
                try:
                    name = client.makefile().readline().strip()
                    client.sendall((self._handle(name) + "\n").encode())
                except OSError as e:
                    log.warning("command channel: %s", e)

    def _handle(self, name: str) -> str:
        if name == "quit":
            self._on_quit()
        elif name == "show":
            self._on_show()
        else:
            try:
                command = Command(name)
            except ValueError:
                return f"error: unknown command {name!r}"
            self._on_command(command)
        log.info("command channel: %s", name)
        return "ok"

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._server is not None:
            self._server.close()
            self._server = None
        self.path.unlink(missing_ok=True)
