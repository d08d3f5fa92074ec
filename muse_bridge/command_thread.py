"""The command thread: the bridge's commands run one after another, in the order they were given.

Commands come from MIDI triggers, the console, the tray, the hotkey and the command channel. A command
that fails becomes a Notice (and a bug in one is logged with its traceback); the thread goes on. It is also
the one owner of what generation makes: the worker and the MIDI thread hand their results and events to it
(`submit(action, None)`), so the suggestion, the audition and the answers are changed on this thread alone.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)


class CommandThread:
    """`submit` returns at once; the action runs on the command thread after those submitted before it."""

    def __init__(self, tell: Callable[[str, bool], None]):
        self._tell = tell
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="muse-commands", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)

    def submit(self, action: Callable[[], Any], what: str | None) -> None:
        """Run `action` after those submitted before it; `what` names a command (logged once done), None a
        hand-off from another thread to this one (a part's own work, not logged)."""
        self._queue.put((action, what, time.monotonic()))

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until the commands submitted so far have run; False on timeout."""
        done = threading.Event()
        self.submit(done.set, None)
        return done.wait(timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            action, what, given = item
            name = what or getattr(action, "__qualname__", "a hand-off")
            try:
                action()
            except (ValueError, OSError) as e:
                self._tell(f"{name} failed: {e}", True)
            except Exception as e:  # a bug must not end the thread every later command runs on
                log.exception("%s failed", name)
                self._tell(f"{name} failed: {type(e).__name__}: {e}", True)
            if what is not None:   # every command answered, and how soon (bench/stress.py holds it to a second)
                log.info("%s done, %.0f ms after it was given", what, 1000 * (time.monotonic() - given))
