"""How the DAW's clocks are counted: the pulses each clock stands for (a missing clock mended), and the passes of
its transport over the timeline (where each song position lay), for muse_bridge/clock.py."""
from __future__ import annotations

import logging
import statistics
import threading
from dataclasses import dataclass, field
log = logging.getLogger(__name__)


TEMPO_FELL = 0.25   # two long gaps in a row this near in length are a slower tempo, not missing clocks
SLOWER = 1.25       # ... and so are clocks after a long gap that all keep at least this many intervals apart


@dataclass
class _LongGap:
    """A gap of 1.5 intervals or more, until the clocks after it confirm or mend the pulses it counted."""

    before: float            # the stamp of the clock before the gap
    end: float               # the stamp of the (last) clock that ended it
    counted: int             # pulses counted by the clocks that ended it
    clocks: int = 1          # clocks that ended it (several: a burst)
    after: list[float] = field(default_factory=list)   # stamps of the clocks since


class PulseCounter:
    """How many pulses each clock counts. A gap of 1.5 intervals or more may be missing clocks or clocks that came
    late: the clocks that end it (one, or several in a burst) count what the gap rounds to (at least one each; a
    gap under 1.75 intervals, one), and the `confirm_clocks` clocks after them decide: the count whose times fit
    them best stands, and the clock that decides makes up the difference (0 or 2 pulses). A long gap that comes
    right after another of its length, or whose clocks after it all keep a slower pace, is a tempo that fell (a
    DAW's tempo map stepping down), not clocks missing: each of its clocks counts one pulse."""

    def __init__(self, confirm_clocks: int, max_missing: int):
        self.confirm_clocks, self.max_missing = confirm_clocks, max_missing
        self._pending: _LongGap | None = None   # a long gap's count, until the clocks after it confirm or mend it
        self._owed = 0                          # pulses counted too many, still to be taken off
        self.missing_clocks = 0                 # missing clocks recognised (and counted)
        self._last_gaps: float | None = None    # the previous clock's gap, in intervals

    def forget(self) -> None:
        """The DAW relocated: a long gap still to be judged, and pulses owed, belong to the pass that ended."""
        self._pending, self._owed, self._last_gaps = None, 0, None

    def count(self, stamp: float, last_stamp: float | None, interval: float) -> int:
        """Pulses of the clock stamped `stamp`; `last_stamp` None where the gap cannot be judged (the first clock, a
        tempo not steady yet, the clock lost or moved to another clock): one pulse, and nothing pending."""
        if last_stamp is None:
            self._pending, self._owed, self._last_gaps = None, 0, None
            return 1
        gaps = (stamp - last_stamp) / interval
        slower = gaps >= 1.5 and bool(self._last_gaps) and abs(gaps / self._last_gaps - 1) < TEMPO_FELL
        self._last_gaps = gaps
        adjust, steps = 0, 1
        pending = self._pending
        if slower:   # the tempo fell: this clock is one pulse, and so was the one that ended the gap before it
            if pending is not None and not pending.after:
                adjust, self._pending = 1 - pending.counted, None
        elif pending is not None and not pending.after and gaps < 0.5:   # the burst that ends a gap goes on
            pending.clocks += 1
            steps = 1 if pending.clocks > pending.counted else 0
            pending.counted = max(pending.counted, pending.clocks)
            pending.end = stamp
        elif pending is not None and len(pending.after) < self.confirm_clocks and gaps < 1.5:
            pending.after.append(stamp)
        else:
            if pending is not None:
                adjust, self._pending = self._decide(pending, interval), None
            if 1.5 <= gaps < 2.5 + self.max_missing:
                steps = min(1 + self.max_missing, round(gaps)) if gaps >= 1.75 else 1
                self._pending = _LongGap(last_stamp, stamp, steps)
        steps = steps + adjust + self._owed      # a mend larger than a pulse is made up over the next clocks
        self._owed = min(0, steps)
        steps = max(0, steps)
        self.missing_clocks += steps - 1
        return steps

    def _decide(self, gap: _LongGap, interval: float) -> int:
        """After a long gap: how many pulses the clocks that ended it should have counted (the count that puts the
        clocks since nearest their times, at the tempo), less what they counted."""
        stamps = [gap.end] + gap.after
        paces = [b - a for a, b in zip(stamps, stamps[1:])]
        if paces and min(paces) >= SLOWER * interval:   # the clocks after it keep a slower pace: the tempo fell
            return gap.clocks - gap.counted

        def misfit(pulses: int) -> float:
            return statistics.median(abs(s - gap.before - (pulses + j) * interval) for j, s in enumerate(stamps))
        best = min(range(gap.clocks, gap.clocks + 1 + self.max_missing), key=misfit)
        if best != gap.counted:
            log.debug("a long gap counted %d pulse(s) after all, not %d", best, gap.counted)
        return best - gap.counted


class DawPasses:
    """Each relocation of the DAW's transport (Start, Continue, a Song Position Pointer) starts a pass: from timeline
    tick `at` on, the DAW's song position p stands at timeline tick `offset + p`. A loop is a pass per round."""

    def __init__(self):
        self._passes: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def relocated(self, at: float, offset: float) -> None:
        with self._lock:
            self._passes.append((float(at), float(offset)))

    def daw_tick(self, tick: float) -> int | None:
        """The DAW's song position (ticks from its start) when the timeline was at `tick`; None before any pass."""
        with self._lock:
            offsets = [offset for at, offset in self._passes if at <= tick]
        return int(tick - offsets[-1]) if offsets else None

    def ahead(self, daw_tick: int, now: float) -> int | None:
        """The timeline tick at which the current pass reaches song position `daw_tick`; None when it is behind
        `now` (the next round of a loop brings it again) or there has been no pass."""
        with self._lock:
            if not self._passes:
                return None
            tick = int(self._passes[-1][1] + daw_tick)
        return tick if tick >= now else None
