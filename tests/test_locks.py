"""The live side's lock order (muse_bridge/locks.py, docs/design.md §2): taken out of order, a lock is refused."""
import threading

import pytest

from muse_bridge import locks
from muse_bridge.locks import LockOrderError, RankedLock, ranked_condition


def test_locks_are_taken_outermost_first_and_the_reverse_is_refused():
    context, player = RankedLock("context"), RankedLock("player")
    with context, player:
        pass
    with player:
        with pytest.raises(LockOrderError, match="'context'.*while holding 'player'"):
            context.acquire()
    locks.violations.clear()   # this one was on purpose


def test_a_held_lock_may_be_taken_again_and_a_condition_wait_lets_it_go():
    player, clock = ranked_condition("player"), RankedLock("clock")
    with player:
        with player:
            with clock:
                pass
    woke = threading.Event()

    def waiter():
        with player:
            player.wait(5)
            with clock:   # after the wait the thread holds the player's lock again, and only it
                woke.set()
    thread = threading.Thread(target=waiter)
    thread.start()
    while not woke.is_set():
        with player:
            player.notify_all()
    thread.join(5)
    with clock:
        pass


def test_every_rank_is_distinct():
    assert len(set(locks.RANKS.values())) == len(locks.RANKS)
