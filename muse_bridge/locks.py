"""The live side's locks, each with a rank: a thread takes them in rising rank only (docs/design.md §2, "Locks").

Two threads that take two locks in opposite orders can each wait for the other forever; on the live side
that is a bridge that stops hearing the DAW. So every lock that guards a part's state is made here, with
its rank in `RANKS`, and each thread keeps the ranks it holds. Taking a lock whose rank is not above every
rank the thread holds (re-entering an RLock it holds excepted) is a `LockOrderError` while `strict` is on
(the tests turn it on), and one logged error otherwise: the order is checked wherever the code runs, not
only where a deadlock happens to strike.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

# outermost first: a lock may be taken while holding only locks above it in this list
RANKS = {
    "context": 10,      # LiveContext: the live score (a job is queued, or a candidate started, with it held)
    "answer": 20,       # Suggester: an answer's start against its cut-off
    "fill": 25,         # Filler: the fill waiting for its round, placed again from the MIDI thread
    "player": 30,       # Player: what sounds (it sends while held)
    "ports": 40,        # PortsInUse: the open pair
    "echo": 50,         # EchoGuard: what was just sent
    "clock": 60,        # ClockFollower: the timeline (listeners are called after it is released)
    "events": 70,       # EventHub: the last thing told and the last status (never held to deliver them)
}

strict = False          # raise on a lock taken out of order (tests); otherwise log it once per pair
violations: list[str] = []   # while strict: every lock taken out of order (a raise on a part's thread may go unseen)
_held = threading.local()
_logged: set[tuple[str, str]] = set()


class LockOrderError(RuntimeError):
    """A lock was taken while the thread held one of equal or lower rank."""


def _stack() -> list["RankedLock"]:
    stack = getattr(_held, "stack", None)
    if stack is None:
        stack = _held.stack = []
    return stack


class RankedLock:
    """A re-entrant lock with a name and its rank from RANKS; usable wherever threading.RLock is, Condition
    included."""

    def __init__(self, name: str):
        self.name, self.rank = name, RANKS[name]
        self._lock = threading.RLock()

    def _check(self) -> None:
        stack = _stack()
        if not stack or self in stack:
            return
        top = max(stack, key=lambda lock: lock.rank)
        if top.rank < self.rank:
            return
        problem = (f"lock {self.name!r} (rank {self.rank}) taken while holding {top.name!r} (rank {top.rank}) "
                   f"on thread {threading.current_thread().name}")
        if strict:
            violations.append(problem)
            raise LockOrderError(problem)
        if (top.name, self.name) not in _logged:
            _logged.add((top.name, self.name))
            log.error("%s: two threads taking them in turn could wait for each other forever", problem)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self._check()
        got = self._lock.acquire(blocking, timeout)
        if got:
            _stack().append(self)
        return got

    def release(self) -> None:
        stack = _stack()
        stack.reverse()
        stack.remove(self)   # the innermost hold of this lock
        stack.reverse()
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()

    # what threading.Condition asks of its lock for wait(): the whole hold let go, then taken back
    def _is_owned(self) -> bool:
        return self._lock._is_owned()

    def _release_save(self):
        stack = _stack()
        holds = sum(1 for lock in stack if lock is self)
        _held.stack = [lock for lock in stack if lock is not self]
        return self._lock._release_save(), holds

    def _acquire_restore(self, saved) -> None:
        state, holds = saved
        self._check()
        self._lock._acquire_restore(state)
        _stack().extend([self] * holds)


def ranked_condition(name: str) -> threading.Condition:
    """A condition over a RankedLock of rank RANKS[name]."""
    return threading.Condition(RankedLock(name))
