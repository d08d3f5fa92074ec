"""Where a streamed candidate starts: the first bar line from which every one of its bars will be made in time.

Candidate 1 plays while its later bars are still being made. Started too early, the playhead would
reach a bar that does not exist yet, and the phrase the model wrote would have a hole in it. So the
start waits for the first bar line at which the generation rate measured so far (seconds per bar of
the K candidates, measured at start-up before any suggestion) makes bar j ready before the playhead
reaches it, for every j, with a margin.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from muse_bridge.clock import ClockFollower

SAFETY = 1.25            # the rate may be this much slower than measured
SAFETY_SECONDS = 0.05    # and each bar this much later (thread hand-offs, the Player's wake-up)
SMOOTHING = 0.5          # weight of each new measurement in the rate
MAX_BAR_LINES = 256      # a start further off than this many bar lines is not looked for


@dataclass
class GenerationRate:
    """Seconds per generated bar for K candidates, smoothed over the suggestions made so far."""

    _seconds_per_bar: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def measured(self, candidates: int, seconds: float, bars: int) -> None:
        """A suggestion of `bars` bars of `candidates` candidates took `seconds` to make."""
        if bars < 1 or seconds <= 0:
            return
        sample = seconds / bars
        with self._lock:
            old = self._seconds_per_bar.get(candidates)
            self._seconds_per_bar[candidates] = sample if old is None else old + SMOOTHING * (sample - old)

    def seconds_per_bar(self, candidates: int) -> float | None:
        """The rate for K candidates (the nearest K measured when this one was not); None before any."""
        with self._lock:
            if not self._seconds_per_bar:
                return None
            nearest = min(self._seconds_per_bar, key=lambda k: (abs(k - candidates), -k))
            return self._seconds_per_bar[nearest]


def first_bar_line_in_time(clock: ClockFollower, target: int, bars: int, bars_ready: int,
                           seconds_per_bar: float | None) -> int:
    """The first bar line at or after `target` (and after now) from which a candidate of `bars` bars, of which
    `bars_ready` exist now and the rest come at `seconds_per_bar`, never reaches a bar not made yet."""
    now = clock.position()
    line = target if target > now else clock.bars.next_bar_line(now)
    if seconds_per_bar is None or bars_ready >= bars:
        return line
    per_bar = seconds_per_bar * SAFETY
    for _ in range(MAX_BAR_LINES):
        lead = clock.seconds_until(line)
        first_bar = clock.bars.bar_of(line)
        # bar j (counted from the first) starts lead + (its offset) seconds from now and is ready after
        # (j + 1 - bars_ready) more bars of generation
        if all(lead + clock.seconds_between(line, clock.bars.bar_line(first_bar + j))
               >= (j + 1 - bars_ready) * per_bar + SAFETY_SECONDS for j in range(bars_ready, bars)):
            return line
        line = clock.bars.next_bar_line(line)
    return line
