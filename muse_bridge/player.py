"""Player: a candidate on the output port from a bar line of the timeline, following the DAW's clock.

While the DAW's clock runs, each note-on and note-off goes out on the clock message that marks its
tick: the ClockFollower calls `_on_clock` on the MIDI thread as each clock is counted, and the due
messages are sent from there (an event between two clocks goes out on the nearer one), with no wait
that guesses. On the internal clock (no DAW clock, or the clock lost) the Player's thread sends them when the
position, run at the tempo, reaches them.

Every note-on it sends is matched by exactly one note-off: when the note ends, or when the
candidate ends, is switched, stopped, panicked, or the DAW relocates (the clock's epoch changes),
or the app exits. A pitch struck again while it sounds is released first, so overlapping notes of
one pitch never leave a key down. No note-on lies outside the candidate's bars, and no note-off
after its last bar line.

A streamed candidate (`bars_expected` above the bars it has) plays its bars as they are made. Its
bar line was chosen so that every bar is made in time (muse_bridge/stream_plan.py); if one is late
anyway, the candidate ends cleanly at its last complete bar: it never has a silent bar inside it.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Callable

import mido

from engine.music import rescale
from engine.session import Candidate
from muse_bridge.clock import ClockFollower
from muse_bridge.locks import ranked_condition

log = logging.getLogger(__name__)

ALL_NOTES_OFF = 123
STALE_SECONDS = 0.05          # a clock counted this late marks a moment gone: its note-ons are not struck
EXTERNAL_WAIT_SECONDS = 0.02   # on the DAW's clock the thread only ends and cuts playbacks: the clock sends
INTERNAL_WAIT_SECONDS = 0.005  # on the internal clock, the longest the thread sleeps between looks


@dataclass(frozen=True)
class _Event:
    tick: float       # timeline tick
    on: bool
    pitch: int
    velocity: int
    note: int         # index of the note in the candidate


@dataclass
class Playback:
    """What the Player is doing: which candidate (or the bars of it streamed so far), from which timeline tick."""

    candidate: Candidate
    start_tick: int
    epoch: int
    bars_expected: int = 0               # the bars the candidate will have; more than candidate.bars while streaming
    scheduled: int = 0                   # notes of the candidate scheduled so far
    cut: bool = False                    # a bar was not made in time: it ended at its last complete bar
    answer: bool = False                 # an answer to the composer's pause (muse_bridge/answers.py)

    @property
    def complete(self) -> bool:
        return self.candidate.bars >= self.bars_expected


class Player:
    """Schedules on its own thread; `play`, `stop`, `panic` return at once."""

    def __init__(self, send: Callable[[mido.Message], bool], clock: ClockFollower, channel: int = 0,
                 on_cut: Callable[[Playback], None] | None = None, on_end: Callable[[Playback], None] | None = None):
        self._send, self.clock, self.channel = send, clock, channel
        self.on_cut, self.on_end = on_cut, on_end   # on_end: a playback played to its last bar line
        self._cv = ranked_condition("player")
        self._playback: Playback | None = None
        self._events: list[_Event] = []
        self._next = 0
        self._owner: dict[int, int] = {}    # sounding pitch -> the note that struck it
        self._closed = False
        clock.add_listener(self._on_clock)
        self._thread = threading.Thread(target=self._run, name="muse-player", daemon=True)
        self._thread.start()

    @property
    def playback(self) -> Playback | None:
        return self._playback

    @property
    def sounding(self) -> list[int]:
        with self._cv:
            return sorted(self._owner)

    def play(self, candidate: Candidate, start_tick: int, bars_expected: int | None = None,
             answer: bool = False) -> Playback:
        """Stop what plays, then play `candidate` with its first bar line at timeline tick `start_tick`.
        With `bars_expected` above `candidate.bars` the candidate is streamed: `extend` adds its bars as they
        are made, and if the playhead reaches a bar not made yet, the candidate ends there (`on_cut`)."""
        with self._cv:
            self._release_all()
            self._playback = Playback(candidate, int(start_tick), self.clock.epoch,
                                      max(bars_expected or 0, candidate.bars), answer=answer)
            self._events, self._next = [], 0
            self._schedule(candidate)
            self._cv.notify_all()
            pb = self._playback
            song = self.clock.passes.daw_tick(pb.start_tick) if self.clock.external else None
            if song is not None:   # where its bars lie on the DAW's own timeline (bench/stress_check.py reads it)
                end = song + self._timeline(pb, candidate.bar_map.span(pb.bars_expected)) - pb.start_tick
                log.info("playback on the DAW's song position %d-%d clocks", round(song / self.clock.ticks_per_clock),
                         round(end / self.clock.ticks_per_clock))
            return pb

    def extend(self, playback: Playback, candidate: Candidate) -> bool:
        """More bars of the streamed candidate of `playback` (the same notes first); False when it no longer plays."""
        with self._cv:
            if self._playback is not playback or playback.cut:
                return False
            self._schedule(candidate)
            self._cv.notify_all()
            return True

    def finish(self, playback: Playback) -> None:
        """No more bars will come for `playback`: it ends after those it has, at their last bar line."""
        with self._cv:
            playback.bars_expected = playback.candidate.bars
            if self._playback is playback:
                end = self._ready_until(playback)
                self._events = self._events[:self._next] + [
                    e if e.tick <= end else replace(e, tick=end)
                    for e in self._events[self._next:] if not (e.on and e.tick >= end)]
            self._cv.notify_all()

    def _timeline(self, pb: Playback, tick: float) -> float:
        """A tick of the candidate of `pb` on the timeline."""
        return pb.start_tick + rescale(tick, pb.candidate.ticks_per_beat, self.clock.settings.ticks_per_beat)

    def _schedule(self, candidate: Candidate) -> None:
        pb = self._playback
        pb.candidate = candidate
        end = self._timeline(pb, candidate.bar_map.span(pb.bars_expected))
        new = []
        for i, n in enumerate(candidate.notes[pb.scheduled:], start=pb.scheduled):
            on = self._timeline(pb, n.start)
            if on >= end:
                continue   # never past the candidate's last bar line
            new.append(_Event(on, True, n.pitch, n.velocity, i))
            new.append(_Event(min(self._timeline(pb, max(n.end, n.start + 1)), end), False, n.pitch, 0, i))
        pb.scheduled = len(candidate.notes)
        # offs before ons at the same tick
        self._events = self._events[:self._next] + sorted(self._events[self._next:] + new,
                                                          key=lambda e: (e.tick, e.on, e.pitch))

    def _ready_until(self, pb: Playback) -> float:
        """The timeline tick where the bars made so far end."""
        return self._timeline(pb, pb.candidate.bar_map.span(pb.candidate.bars))

    def _cut(self, pb: Playback) -> None:
        """A bar is late and the playhead is at its bar line: the candidate ends here, what sounds stops."""
        pb.bars_expected, pb.cut = pb.candidate.bars, True
        self._events = self._events[:self._next]
        self._release_all()
        log.warning("generation behind the playhead: the candidate ends after %d of its bars", pb.candidate.bars)

    def stop(self, playback: Playback | None = None) -> bool:
        """Stop playing (only if `playback` is what plays, when given); every note this player started gets its
        note-off. False when `playback` was not playing."""
        with self._cv:
            if playback is not None and self._playback is not playback:
                return False
            self._release_all()
            self._playback, self._events, self._next = None, [], 0
            self._cv.notify_all()
            return True

    def stop_for_lost_port(self) -> list[int]:
        """The output port went away: stop, and return the pitches that were sounding (their note-offs are owed)."""
        sounding = self.sounding
        self.stop()
        return sounding

    def panic(self) -> None:
        """Stop, then All Notes Off on every channel."""
        self.stop()
        for channel in range(16):
            self._send(mido.Message("control_change", channel=channel, control=ALL_NOTES_OFF, value=0))

    def close(self) -> None:
        self.stop()
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout=5)

    # ---- scheduling --------------------------------------------------------------------

    def _release_all(self) -> None:
        for pitch in list(self._owner):
            self._note_off(pitch)

    def _note_off(self, pitch: int) -> None:
        del self._owner[pitch]
        self._send(mido.Message("note_off", channel=self.channel, note=pitch, velocity=0))

    def _fire(self, e: _Event) -> None:
        if e.on:
            if e.pitch in self._owner:
                self._note_off(e.pitch)
            self._owner[e.pitch] = e.note
            self._send(mido.Message("note_on", channel=self.channel, note=e.pitch, velocity=max(1, min(127, e.velocity))))
        elif self._owner.get(e.pitch) == e.note:
            self._note_off(e.pitch)

    def _on_clock(self) -> None:
        """A clock or transport message was heard (the MIDI thread): what its clock marks goes out now; the
        thread then ends or cuts the playback if need be."""
        with self._cv:
            if self._playback is not None and self._send_due():
                self._cv.notify_all()

    def _send_due(self) -> bool:
        """Send every event the clock has reached (all of them released when the DAW relocated or stopped);
        True when something was sent or the playback ended."""
        if self.clock.epoch != self._playback.epoch:
            log.info("DAW transport moved: playback stopped")
            self._release_all()
            self._playback, self._events = None, []
            return True
        until = self.clock.playable_until()
        start = self._next
        stale = self.clock.external and self.clock.handled_late > STALE_SECONDS
        while self._next < len(self._events) and self._events[self._next].tick < until:
            event = self._events[self._next]
            if not (stale and event.on):   # never on a stale timeline; a note it struck still ends
                self._fire(event)
            self._next += 1
        if stale and self._next != start:
            log.warning("the DAW's clock was handled %.0f ms late: the notes it marked were not struck",
                        1000 * self.clock.handled_late)
        return self._next != start

    def _run(self) -> None:
        while True:
            with self._cv:
                if self._closed:
                    return
                told = self._step()
            # after the condition is released: a listener may take other parts' locks (docs/design.md §2, locks)
            for tell, pb in told:
                if tell is not None:
                    tell(pb)

    def _step(self) -> list[tuple[Callable[[Playback], None] | None, Playback]]:
        """One look at the playback (the condition held): send what is due, cut or end it, then wait a little.
        Returns the listeners to tell, and what about."""
        if self._playback is None:
            self._cv.wait()
            return []
        self._send_due()
        pb = self._playback
        if pb is None:
            return []
        told = []
        pos = self.clock.playable_until()
        ready_until = self._ready_until(pb)
        if not pb.complete and pos > ready_until:
            self._cut(pb)
            told.append((self.on_cut, pb))
        if self._next == len(self._events) and pb.complete:
            self._release_all()
            self._playback, self._events = None, []
            return told + [(self.on_end, pb)]
        if self.clock.external:   # the clock sends, and wakes this thread
            self._cv.wait(EXTERNAL_WAIT_SECONDS)
            return told
        due = self._events[self._next].tick if self._next < len(self._events) else ready_until
        if not pb.complete:
            due = min(due, ready_until)
        wait = self.clock.seconds_until(due)
        self._cv.wait(min(max(wait - 0.001, 0.0005), INTERNAL_WAIT_SECONDS))
        return told
