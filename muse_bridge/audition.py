"""Audition: what a composer does with the candidates of a suggestion: hear them in turn, accept one, export one.

It is given the clock, the player, the context (an accepted candidate joins it) and the event hub."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.session import Candidate, Suggestion
from muse_bridge.clock import ClockFollower
from muse_bridge.context import LiveContext
from muse_bridge.events import EventHub, PlayingCandidate
from muse_bridge.player import Playback, Player
from muse_bridge.stream_plan import start_line


class Audition:
    """The suggestion being auditioned (`current`) and which of its candidates (`index`, 0-based)."""

    def __init__(self, clock: ClockFollower, player: Player, context: LiveContext, events: EventHub):
        self.clock, self.player, self.context, self.events = clock, player, context, events
        self.show(None)

    @property
    def candidate(self) -> Candidate | None:
        return self.current.candidates[self.index] if self.current else None

    def show(self, suggestion: Suggestion | None, play: Callable[[Candidate], Playback | None] | None = None,
             accept: Callable[[Candidate], None] | None = None) -> None:
        """A new suggestion (its candidate 1 already on its way to the Player), or None when the context is gone.
        `play` plays a candidate (default: from the next bar line; None back: it plays later), `accept` takes one
        into the context (default: it joins before the next bar line): a fill's play in place and replace bars."""
        self.current, self.index = suggestion, 0
        self._play = play or (lambda candidate: self.player.play(candidate, start_line(self.clock)))
        self._accept = accept or self.join

    def step(self, step: int) -> None:
        """Play the candidate `step` places on (cycling) from the next bar line."""
        if self.current is None:
            self.events.tell("nothing to audition: suggest first")
            return
        self.play((self.index + step) % len(self.current.candidates))

    def play(self, index: int) -> None:
        """Play candidate `index` from the next bar line."""
        if self.current is None or not 0 <= index < len(self.current.candidates):
            raise ValueError(f"no candidate {index + 1} to play: suggest first")
        self.index = index
        playback = self._play(self.candidate)
        if playback is not None:
            self.events.emit(PlayingCandidate(index, playback.start_tick))
        else:
            self.events.tell(f"candidate {index + 1} plays when the DAW comes round to its bars")
        self.events.publish_now()

    def accept(self) -> None:
        """The candidate being auditioned joins the context, before the next bar line committed."""
        if self.candidate is None:
            self.events.tell("nothing to accept: suggest first")
            return
        self._accept(self.candidate)
        self.events.tell(f"candidate {self.index + 1} accepted")

    def join(self, candidate: Candidate, answer: bool = False) -> None:
        """`candidate`'s bars join the context before the next bar line committed (`answer`: marked as an answer's)."""
        self.context.join(candidate.tokens, answer=answer)

    def export(self, path: Path | None = None, index: int | None = None) -> Path:
        """Write candidate `index` (default: the one being auditioned) as a .mid file of exactly its bars."""
        index = self.index if index is None else index
        if self.current is None or not 0 <= index < len(self.current.candidates):
            raise ValueError(f"no candidate {index + 1} to export: suggest first")
        path = Path(path) if path is not None else Path.cwd() / f"muse_candidate_{index + 1}.mid"
        self.current.candidates[index].write_midi(path, self.clock.bpm)
        self.events.tell(f"exported {path}")
        return path
