"""ClockFollower: the DAW's musical time from MIDI clock, or from the tempo setting when no clock arrives.

Positions are ticks (`ticks_per_beat` per quarter) on one monotonic *timeline* whose bar lines are
those of `bars`, a `MeterMap` (engine/music.py) with bar 0 at tick 0. The timeline never runs backwards: when the DAW relocates (Start,
Continue after a Song Position Pointer), the DAW's new position is mapped to the first timeline
tick at or after the current one that has the same place in the bar, so what was played stays in
the past and bar lines stay bar lines. Each relocation or Stop bumps `epoch`, which tells the
Player to stop what it was playing.

MIDI clock is 24 pulses per quarter. After Start/Continue the first clock marks the position
itself; every further clock advances one pulse. A real DAW's clock jitters, bunches and now and then
drops a pulse, so the count, not the arrival time, is what places a note (docs/design.md, "Following
the DAW's clock"):
- clocks are timed on the transport's clock where there is one (JACK: the start frame of the cycle
  that brought them), else when they reached the port (muse_bridge/ports.py);
- at a steady tempo a gap of about two intervals is a missing clock: the clock after it counts two
  pulses (up to `max_missing` missing in a row). A clock that only came late shows the same gap, so
  the `confirm_clocks` clocks after it decide: if their times fit one pulse fewer, the count is
  mended (the clock that decides counts none), and the count never runs backwards;
- clocks that come together in one burst each count one pulse;
- the tempo is the pulses counted over the seconds they took in the last `tempo_window` clocks (never
  less than their middle gap), so jitter and bursts average out.

What the Player sends while the DAW's clock runs goes out on the clock that marks its tick
(`playable_until`, and the listeners called on every clock), never on a predicted time (the notes of
a clock the DAW dropped go out with the clock after it). Between clocks, `position` (the composer's notes, estimates) is interpolated with the tempo, never
past the next expected clock. Without clock (never seen, or none for `clock_timeout` seconds, or the
DAW stopped), the timeline runs on an internal clock at the last known tempo (the `bpm` setting before
any clock), started by the first note. Clock that comes back after such a gap while the DAW still
plays (it was late, not stopped) is counted on, and followed again once its count catches up with the
internal clock.
"""
from __future__ import annotations

import logging
import statistics
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from engine.music import TICKS_PER_QUARTER, MeterMap
from muse_bridge.clock_counting import DawPasses, PulseCounter
from muse_bridge.locks import RankedLock

log = logging.getLogger(__name__)

CLOCKS_PER_QUARTER = 24
# clocks a Song Position Pointer counts by: the MIDI standard counts sixteenth notes (6 clocks); Ardour 7 and 8
# send the position in clocks (their ticker's beat count times 24), six times too far
SONG_POSITION_UNITS = {"sixteenths": 6, "clocks": 1}
TEMPO_GAP_INTERVALS = 8  # clocks this far apart: the DAW stopped sending them for a while, no tempo
REALTIME_TYPES = frozenset({"clock", "start", "continue", "stop", "songpos"})


@dataclass(frozen=True)
class ClockSettings:
    bpm: float = 120.0                        # tempo when no MIDI clock arrives
    time_signature: tuple[int, int] = (4, 4)  # MIDI clock cannot tell the meter
    ticks_per_beat: int = TICKS_PER_QUARTER
    clock_timeout: float = 0.5                # seconds without clock before the internal clock takes over
    tempo_window: int = 24                    # clocks the tempo is measured over
    max_missing: int = 2                      # clocks missing in a row that are counted (a longer gap: a stall)
    confirm_clocks: int = 3                   # clocks after a long gap that confirm or mend its count
    steady_clocks: int = 6                    # clocks counted at a regular pace before a gap can be a missing clock
    song_position: str = "sixteenths"         # what the DAW's Song Position Pointer counts (SONG_POSITION_UNITS)

    def __post_init__(self) -> None:
        if not 20 <= self.bpm <= 400:  # also refuses NaN
            raise ValueError(f"tempo must be 20-400 bpm, got {self.bpm}")
        num, den = self.time_signature
        if num < 1 or den not in (1, 2, 4, 8, 16, 32):
            raise ValueError(f"time signature must be N/1, N/2, N/4, N/8 …, got {num}/{den}")
        if self.ticks_per_beat < 24 or self.clock_timeout <= 0 or self.tempo_window < 2:
            raise ValueError("ticks per beat >= 24, a positive clock timeout and a tempo window of 2+ clocks are needed")
        if self.song_position not in SONG_POSITION_UNITS:
            raise ValueError(f"song position must count {' or '.join(SONG_POSITION_UNITS)}, got {self.song_position!r}")
        if self.max_missing < 0 or self.steady_clocks < 2 or self.confirm_clocks < 1:
            raise ValueError(f"missing clocks counted: 0 or more, got {self.max_missing}; steady clocks: 2 or more, "
                             f"got {self.steady_clocks}; clocks that confirm a count: 1 or more, got {self.confirm_clocks}")


class ClockFollower:
    """Thread-safe: `on_message` from the MIDI thread, `position` from anywhere."""

    def __init__(self, settings: ClockSettings = ClockSettings(), now=time.monotonic):
        self.settings, self._now = settings, now
        self.bars = MeterMap.constant(settings.time_signature, settings.ticks_per_beat)
        self.ticks_per_clock = settings.ticks_per_beat / CLOCKS_PER_QUARTER
        self._lock = RankedLock("clock")
        self._interval = 60.0 / (settings.bpm * CLOCKS_PER_QUARTER)  # seconds per clock, measured
        self._last_clock_at: float | None = None
        # the gaps between clocks are measured on the transport's clock where there is one (`stamp`), else on `t`
        self._last_stamp: float | None = None
        self._on_transport = False
        self._stamp_interval = self._interval
        self._tempo: deque[tuple[float, float, int]] = deque(maxlen=settings.tempo_window)   # (t, stamp, pulses)
        self._pulses = 0              # pulses counted since the follower began (missing ones included)
        self._counter = PulseCounter(settings.confirm_clocks, settings.max_missing)
        self._listeners: list[Callable[[], None]] = []
        self.handled_late = 0.0       # seconds between the last clock or transport message's arrival and its count
        # the timeline is anchored: position(t) = anchor_pos + (t - anchor_t) * rate while moving
        self._anchor_t = now()
        self._anchor_pos = 0.0
        self._moving = False          # internal clock running
        self._external = False        # following DAW clock (transport running)
        self._waiting_first_clock = False
        self._lost = False            # the DAW plays, but its clock stopped coming: on the internal clock meanwhile
        self._offset = 0.0            # timeline tick of DAW position 0
        self.passes = DawPasses()     # where the DAW's song position lay on the timeline, pass by pass
        self._daw_clocks = 0          # DAW position in clocks of the last clock heard
        self._heard = False           # a clock heard since the last relocation
        self._songpos: int | None = None   # a Song Position Pointer received while stopped
        self._daw_stopped = False     # the DAW sent Stop (and not Start or Continue since)
        self.epoch = 0

    # ---- reading ----------------------------------------------------------------------

    @property
    def bar_ticks(self) -> int:
        return self.bars.bar_ticks()

    @property
    def bpm(self) -> float:
        return 60.0 / (self._interval * CLOCKS_PER_QUARTER)

    @property
    def external(self) -> bool:
        """True while the DAW's clock drives the timeline."""
        return self._external and not self._lost

    @property
    def running(self) -> bool:
        return self._external or self._moving

    @property
    def transport_running(self) -> bool:
        """The DAW's transport runs: its clock is followed, or no DAW ever stopped the running internal clock."""
        return self.running and not self._daw_stopped

    def position(self, t: float | None = None) -> float:
        """Timeline ticks at monotonic time `t` (default: now)."""
        t = self._now() if t is None else t
        with self._lock:
            self._check_timeout(t)
            return self._position(t)

    def tick(self, t: float | None = None) -> int:
        """The whole timeline tick at monotonic time `t` (default: now): the one place a position becomes ticks."""
        return int(self.position(t))

    def seconds_per_bar(self) -> float:
        """A bar's length in seconds at the tempo followed now."""
        return self.seconds_between(0, self.bars.bar_ticks())

    def playable_until(self, t: float | None = None) -> float:
        """The timeline tick up to which (exclusive) events may go out now. While the DAW's clock is followed:
        every tick nearer the last clock heard than the next one, so a note goes out on the clock that marks
        it and never on a guess; before the first clock after Start or Continue, none. Without DAW clock:
        the position now (the internal clock)."""
        t = self._now() if t is None else t
        with self._lock:
            self._check_timeout(t)
            if self._external and not self._lost:
                if self._waiting_first_clock:
                    return self._anchor_pos - self.ticks_per_clock / 2
                return self._anchor_pos + self.ticks_per_clock / 2
            return self._position(t)

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after every clock and transport message (on the MIDI thread: it must not wait)."""
        self._listeners.append(listener)

    def _position(self, t: float) -> float:
        if self._external and not self._lost:
            if self._waiting_first_clock:
                return self._anchor_pos
            ahead = min(max(0.0, t - self._anchor_t), self._interval)  # never past the next clock
            return self._anchor_pos + ahead / self._interval * self.ticks_per_clock
        if self._moving:
            return self._anchor_pos + max(0.0, t - self._anchor_t) * self._ticks_per_second()
        return self._anchor_pos

    def _ticks_per_second(self) -> float:
        return self.ticks_per_clock / self._interval

    def seconds_until(self, tick: float, t: float | None = None) -> float:
        """Estimated seconds from `t` until the timeline reaches `tick` (0 if it has)."""
        ahead = tick - self.position(t)
        return max(0.0, ahead / self._ticks_per_second()) if ahead > 0 else 0.0

    def seconds_between(self, tick: float, later: float) -> float:
        """Seconds from timeline tick `tick` to `later` at the current tempo."""
        return (later - tick) / self._ticks_per_second()

    def next_bar_line(self, t: float | None = None) -> int:
        """The first bar line strictly after the current position."""
        return self.bars.next_bar_line(self.position(t))

    # ---- internal clock ---------------------------------------------------------------------

    def ensure_running(self, t: float | None = None) -> None:
        """Start the internal clock (if neither it nor DAW clock runs) so that `t` falls on a bar line."""
        t = self._now() if t is None else t
        with self._lock:
            self._check_timeout(t)
            if self._external or self._moving:
                return
            self._anchor_pos = float(self.bars.bar_line_at_or_after(self._position(t)))
            self._anchor_t, self._moving = t, True

    # ---- MIDI -------------------------------------------------------------------------------

    def on_message(self, message, t: float | None = None, transport_t: float | None = None) -> bool:
        """Apply a real-time message received at monotonic time `t`; `transport_t`: the same moment on the MIDI
        transport's own clock (JACK's frame time, in seconds) where there is one. Returns False for anything that
        is not clock/transport."""
        if message.type not in REALTIME_TYPES:
            return False
        now = self._now()
        t = now if t is None else t
        with self._lock:
            self.handled_late = now - t
            getattr(self, "_on_" + message.type)(message, t, transport_t)
        for listener in self._listeners:
            listener()
        return True

    def _pulses_of(self, stamp: float, on_transport: bool) -> int:
        """How many pulses the clock stamped `stamp` counts (PulseCounter; on the transport's clock where there is
        one). The first clock after a relocation marks the position: its gap from the last pass is not judged."""
        judged = not (self._last_stamp is None or self._lost or on_transport != self._on_transport
                      or len(self._tempo) < self.settings.steady_clocks or self._waiting_first_clock)
        return self._counter.count(stamp, self._last_stamp if judged else None, self._stamp_interval)

    @property
    def missing_clocks(self) -> int:
        """Missing clocks recognised (and counted)."""
        return self._counter.missing_clocks

    def _measure_tempo(self, t: float, stamp: float, on_transport: bool, steps: int) -> None:
        """The tempo from the pulses counted over the last `tempo_window` clocks' seconds (on both clocks)."""
        if self._last_stamp is not None and (on_transport != self._on_transport or
                                             stamp - self._last_stamp > TEMPO_GAP_INTERVALS * self._stamp_interval):
            self._tempo.clear()      # a gap (transport stopped, port lost) is no tempo
        self._pulses += steps
        if self._lost:
            return                   # late clocks catching up are no tempo either
        self._tempo.append((t, stamp, self._pulses))
        (t0, s0, p0), (t1, s1, p1) = self._tempo[0], self._tempo[-1]
        if p1 - p0 >= self.settings.steady_clocks and t1 > t0 and s1 > s0:   # a burst alone is no tempo
            if not self._external:   # the internal clock keeps its place at the new tempo
                self._anchor_pos, self._anchor_t = self._position(t), t
            # the seconds per pulse counted; never less than the middle gap between clocks, so that a pulse
            # counted wrongly cannot shorten the interval and make the next gap look like a missing clock
            entries = list(self._tempo)
            middle = [statistics.median(b[i] - a[i] for a, b in zip(entries, entries[1:])) for i in (0, 1)]
            self._interval = max((t1 - t0) / (p1 - p0), middle[0])
            self._stamp_interval = max((s1 - s0) / (p1 - p0), middle[1])

    def _on_clock(self, message, t: float, transport_t: float | None) -> None:
        on_transport = transport_t is not None
        stamp = transport_t if on_transport else t
        steps = self._pulses_of(stamp, on_transport)
        self._measure_tempo(t, stamp, on_transport, steps)
        self._last_clock_at, self._last_stamp, self._on_transport = t, stamp, on_transport
        if not self._external:
            return  # clock while the DAW is stopped: tempo only
        if self._waiting_first_clock:
            self._waiting_first_clock = False   # it marks the position itself
        else:
            self._daw_clocks += steps
        self._heard = True
        counted = self._offset + self._daw_clocks * self.ticks_per_clock
        if self._lost:
            # late clocks (the DAW never stopped) are counted; they are followed again once they catch
            # up with the internal clock, so the timeline never runs backwards
            if counted < self._position(t):
                return
            log.warning("MIDI clock is back: following the DAW again")
            self._lost, self._moving = False, False
        self._anchor_t, self._anchor_pos = t, counted

    def _on_start(self, message, t: float, transport_t: float | None) -> None:
        self._relocate(0, t)

    def _on_continue(self, message, t: float, transport_t: float | None) -> None:
        if self._songpos is not None:            # a Song Position Pointer while stopped: its place
            self._relocate(self._songpos, t)
        else:                                    # on from the clock after the last one heard
            self._relocate(self._daw_clocks + 1 if self._heard else self._daw_clocks, t)

    def _on_stop(self, message, t: float, transport_t: float | None) -> None:
        self._daw_stopped = True
        if self._external:
            self._freeze(t, keep_moving=True)
        self.epoch += 1

    def _on_songpos(self, message, t: float, transport_t: float | None) -> None:
        clocks = message.pos * SONG_POSITION_UNITS[self.settings.song_position]
        if self._external:
            self._relocate(clocks, t)
        else:
            self._songpos = clocks

    def _relocate(self, daw_clocks: int, t: float) -> None:
        """DAW transport (re)starts at `daw_clocks`: the next tick with its bar phase, or up to half a clock back."""
        daw_ticks = daw_clocks * self.ticks_per_clock
        target = self.bars.at_phase(max(0.0, self._position(t) - self.ticks_per_clock / 2), self.bars.in_bar(daw_ticks))
        self._offset = target - daw_ticks
        self.passes.relocated(target, self._offset)
        self._counter.forget()   # a mend decided after a loop's wrap once moved the whole next round a clock
        self._daw_clocks, self._heard, self._songpos = daw_clocks, False, None
        self._anchor_pos, self._anchor_t = float(target), t
        self._external, self._moving, self._waiting_first_clock, self._lost = True, False, True, False
        self._daw_stopped = False
        self.epoch += 1
        log.info("DAW transport at clock %d -> timeline tick %d", daw_clocks, target)

    def _freeze(self, t: float, keep_moving: bool) -> None:
        """Leave DAW clock: the internal clock carries on from here at the last tempo (or stands still)."""
        self._anchor_pos, self._anchor_t = self._position(t), t
        self._external, self._moving, self._lost = False, keep_moving, False

    def _check_timeout(self, t: float) -> None:
        if self._external and not self._lost and not self._waiting_first_clock and self._last_clock_at is not None \
                and t - self._last_clock_at > self.settings.clock_timeout:
            log.warning("MIDI clock lost for %.1f s: continuing on the internal clock at %.1f bpm",
                        t - self._last_clock_at, self.bpm)
            resume = self._last_clock_at + self._interval
            self._anchor_pos, self._anchor_t = self._position(resume), resume
            self._lost, self._moving = True, True
