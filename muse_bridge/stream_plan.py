"""Where a streamed candidate starts: the first bar line from which every one of its bars will be made in time.

Candidate 1 plays while its later bars are still being made. Started too early, the playhead would
reach a bar that does not exist yet, and the phrase the model wrote would have a hole in it. So the
start waits for the first bar line at which the generation rate measured so far (seconds per bar of
the K candidates, measured at start-up before any suggestion) makes bar j ready before the playhead
reaches it, for every j, with a margin.

The rate planned with is the slower of this suggestion's own first bar and the rate measured before it,
the latter at most STORED_AT_MOST times the first bar's: after a dense performance a bar takes several
times the start-up measurement's, but one slow bar measured at start-up (a cold cache, a busy machine)
must not push the start dozens of bars away. Every plan says why it chose its bar line (`StartPlan.why`,
logged at -v).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from muse_bridge.clock import ClockFollower

SAFETY = 1.25            # the rate may be this much slower than measured
SAFETY_SECONDS = 0.05    # and each bar this much later (thread hand-offs, the Player's wake-up)
SMOOTHING = 0.5          # weight of each new measurement in the rate
MAX_BAR_LINES = 256      # a start further off than this many bar lines is not looked for
STORED_AT_MOST = 2.0     # the rate measured before counts up to this many times the suggestion's own first bar


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


def start_line(clock: ClockFollower, asked: int | None = None, at: float | None = None) -> int:
    """The bar line a candidate starts from, for every part that plays one (Suggest, an answer, Next and Previous, a
    fill with no DAW clock): the one `asked` for while the timeline is still before it, else the first bar line
    after timeline tick `at` (default: the position now)."""
    now = clock.position() if at is None else at
    return asked if asked is not None and asked > now else clock.bars.next_bar_line(now)


@dataclass(frozen=True)
class StartPlan:
    """The bar line a streamed candidate starts at, and why (for the log)."""

    line: int
    bars_late: int           # bar lines after the one asked for
    why: str


def planning_rate(own_first_bar: float, measured_before: float | None) -> float:
    """Seconds per bar to plan with: the slower of the suggestion's own first bar and the rate measured before,
    the latter at most STORED_AT_MOST times the first bar's."""
    if measured_before is None:
        return own_first_bar
    return max(own_first_bar, min(measured_before, STORED_AT_MOST * own_first_bar))


def first_bar_line_in_time(clock: ClockFollower, target: int, bars: int, bars_ready: int,
                           seconds_per_bar: float | None) -> StartPlan:
    """The first bar line at or after `target` (and after now) from which a candidate of `bars` bars, of which
    `bars_ready` exist now and the rest come at `seconds_per_bar`, never reaches a bar not made yet."""
    asked = start_line(clock, target)
    line = asked
    why = "the bar line asked for" if asked == target else \
        f"the next bar line (the one asked for, tick {target}, passed before the first bar was made)"
    if seconds_per_bar is None or bars_ready >= bars:
        return StartPlan(line, clock.bars.bar_of(line) - clock.bars.bar_of(target), f"{why}: all {bars} bar(s) made")
    per_bar = seconds_per_bar * SAFETY
    for _ in range(MAX_BAR_LINES):
        lead = clock.seconds_until(line)
        first_bar = clock.bars.bar_of(line)
        # bar j (counted from the first) starts lead + (its offset) seconds from now and is ready after
        # (j + 1 - bars_ready) more bars of generation
        short = [j for j in range(bars_ready, bars)
                 if lead + clock.seconds_between(line, clock.bars.bar_line(first_bar + j))
                 < (j + 1 - bars_ready) * per_bar + SAFETY_SECONDS]
        if not short:
            late = first_bar - clock.bars.bar_of(target)
            timing = (f"{bars_ready} of {bars} bar(s) made, the rest at {seconds_per_bar:.2f} s a bar "
                      f"(x{SAFETY} planned), a bar lasting {clock.seconds_between(0, clock.bars.bar_ticks()):.2f} s")
            if line != asked:
                return StartPlan(line, late, f"{first_bar - clock.bars.bar_of(asked)} bar line(s) after {why}: "
                                             f"from there every bar is made in time ({timing})")
            return StartPlan(line, late, f"{why}: {timing}, every bar in time")
        line = clock.bars.next_bar_line(line)
    return StartPlan(line, clock.bars.bar_of(line) - clock.bars.bar_of(target),
                     f"{MAX_BAR_LINES} bar lines on, the furthest looked at")
