"""Answers: call and response. When the composer pauses, the bridge answers from the next bar line.

A pause is counted from the moment nothing sounds (no key down, pedal up: LiveScore.quiet_since) while
the DAW's transport runs (or, with no DAW clock, the internal clock a first note started). Once it has lasted
`after_beats`, the answer plays: candidate 1 of a suggestion from the first bar line at least that many
beats after the last release, for the `bars` setting's bars. Its candidates are asked for as soon as the
pause has lasted PAUSE_SECONDS, so they are made by its bar line; in answer mode they take the place of
the candidates otherwise made in a pause (suggester.py), so answering costs no more CPU than not.
A pause the composer ends before its bar line stops them after one step. One answer per pause: the
silence after it is not answered again.

The composer playing a note-on stops the answer at once, from the MIDI input thread: every note it
started gets its note-off before the note-on reaches the score (an answer still being made never
starts); the rest (the count, the notice) is handed to the command thread, which owns this state and runs
`tick`. Turning the mode off does the same; Suggest replaces the answer, Accept accepts it, Panic
stops it, as for any suggestion. With `join_context`, an answer that played to its end (not cut off)
joins the context as Accept does, marked as an answer for the previews.

Answers is given what it uses: the clock, the context, the player, the suggester, the settings in force,
the event hub, `join` (a candidate joins the context) and `submit` (the command thread).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from engine.session import Candidate
from muse_bridge.clock import ClockFollower
from muse_bridge.context import PAUSE_SECONDS, LiveContext
from muse_bridge.events import AnswerEnded, EventHub
from muse_bridge.player import Playback, Player
from muse_bridge.settings import AnswerSettings, SettingsInForce
from muse_bridge.stream_plan import start_line
from muse_bridge.suggester import Suggester

log = logging.getLogger(__name__)


class Answers:
    """`tick` (the command thread) starts answers; `composer_played` (the MIDI thread) cuts them off."""

    def __init__(self, clock: ClockFollower, context: LiveContext, player: Player, suggester: Suggester,
                 settings: SettingsInForce, events: EventHub, join: Callable[[Candidate, bool], None],
                 submit: Callable[[Callable[[], Any], str], None]):
        self.clock, self.context, self.player, self.suggester = clock, context, player, suggester
        self._settings, self.events, self._join, self._submit = settings, events, join, submit
        self._answered: int | None = None      # quiet_since of the pause answered (or being answered)
        self.line: int | None = None           # the bar line of the answer asked for
        self.cuts = 0                          # answers the composer cut off

    @property
    def settings(self) -> AnswerSettings:
        return self._settings.value.answer

    def answer_line(self, quiet_since: int) -> int:
        """The first bar line at least `after_beats` beats after `quiet_since` (timeline ticks)."""
        bars = self.clock.bars
        beat = bars.beat_ticks(bars.bar_of(quiet_since))
        return bars.bar_line_at_or_after(quiet_since + self.settings.after_beats * beat)

    def tick(self) -> None:
        """Every tenth of a second (the command thread): in a pause, ask for the answer to it."""
        if not self.settings.on or not self.clock.transport_running:
            return
        quiet = self.context.quiet_since
        if quiet is None or quiet == self._answered:
            return
        if self.player.playback is not None or self.suggester.generating:
            self._answered = quiet   # a suggestion asked for plays in this pause: it is the answer
            return
        now = self.clock.tick()
        if self.clock.seconds_between(quiet, now) < PAUSE_SECONDS:
            return
        # the line after_beats after the pause; the next one if the mode came on (or the transport ran on) later
        line = start_line(self.clock, self.answer_line(quiet))
        self._answered, self.line = quiet, line
        self._ask(quiet, line)

    def _ask(self, quiet: int, line: int) -> None:
        """The answer, unless the composer played meanwhile or the mode went off."""
        if not self.settings.on or self.context.quiet_since != quiet or not self.clock.transport_running:
            return
        log.info("answering the pause from tick %d", line)
        self.suggester.suggest(target=line, answer=True)

    def composer_played(self) -> None:
        """A note-on from the composer (the MIDI thread): the answer stops at once; the command thread is told."""
        if self.suggester.cut_answer():
            self._submit(self._was_cut, None)

    def _was_cut(self) -> None:
        self.cuts += 1
        self.events.emit(AnswerEnded(cut=True))
        self.events.tell("answer cut off: you played")

    def mode_changed(self, on: bool) -> None:
        """The mode was turned on or off (the command thread): off stops an answer."""
        if not on and self.suggester.cut_answer():
            self.events.emit(AnswerEnded(cut=True))
        if on:   # a pause going on now is answered too, from the next bar line
            self._answered = None

    def ended(self, playback: Playback) -> None:
        """An answer played to its last bar line (the command thread): it joins the context if so set."""
        joined = self.settings.join_context and not playback.cut
        if joined:
            self._join(playback.candidate, True)
            self.events.tell(f"the answer joins the context ({playback.candidate.bars} bars)")
        self.events.emit(AnswerEnded(cut=False, joined=joined))

    def describe(self) -> str:
        """The status's word on answers: off, waiting, or which bar of the answer plays."""
        if not self.settings.on:
            return "off"
        playback = self.player.playback
        if playback is not None and playback.answer:
            bars = self.clock.bars
            bar = bars.bar_of(self.clock.tick()) - bars.bar_of(playback.start_tick) + 1
            if bar < 1:
                return f"answer in {self.clock.seconds_until(playback.start_tick):.1f} s"
            return f"answering {min(bar, playback.bars_expected)}/{playback.bars_expected}"
        beats = self.settings.after_beats
        return f"on, after {beats} beat{'s' if beats > 1 else ''}"
