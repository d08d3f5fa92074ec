"""Audition: what a composer does with the candidates of a suggestion: hear them in turn, accept one, export one."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.session import Candidate, Suggestion
from muse_bridge.events import PlayingCandidate

if TYPE_CHECKING:
    from muse_bridge.bridge import LiveBridge


class Audition:
    """The suggestion being auditioned (`current`) and which of its candidates (`index`, 0-based)."""

    def __init__(self, bridge: "LiveBridge"):
        self.bridge = bridge
        self.current: Suggestion | None = None
        self.index = 0

    @property
    def candidate(self) -> Candidate | None:
        return self.current.candidates[self.index] if self.current else None

    def show(self, suggestion: Suggestion | None) -> None:
        """A new suggestion (its candidate 1 already on its way to the Player), or None when the context is gone."""
        self.current, self.index = suggestion, 0

    def step(self, step: int) -> None:
        """Play the candidate `step` places on (cycling) from the next bar line."""
        if self.current is None:
            self.bridge.tell("nothing to audition: suggest first")
            return
        self.play((self.index + step) % len(self.current.candidates))

    def play(self, index: int) -> None:
        """Play candidate `index` from the next bar line."""
        b = self.bridge
        if self.current is None or not 0 <= index < len(self.current.candidates):
            raise ValueError(f"no candidate {index + 1} to play: suggest first")
        self.index = index
        playback = b.player.play(self.candidate, b.clock.next_bar_line())
        b.emit(PlayingCandidate(index, playback.start_tick))
        b.publish_status()

    def accept(self) -> None:
        """The candidate being auditioned joins the context, before the next bar line committed."""
        b = self.bridge
        if self.candidate is None:
            b.tell("nothing to accept: suggest first")
            return
        self.join(self.candidate)
        b.tell(f"candidate {self.index + 1} accepted")

    def join(self, candidate: Candidate, answer: bool = False) -> None:
        """`candidate`'s bars join the context before the next bar line committed (`answer`: marked as an answer's)."""
        b = self.bridge
        with b.score_lock:
            b.score.insert_at_next_bar(candidate.tokens, answer=answer)
            b.intake.commit()

    def export(self, path: Path | None = None, index: int | None = None) -> Path:
        """Write candidate `index` (default: the one being auditioned) as a .mid file of exactly its bars."""
        index = self.index if index is None else index
        if self.current is None or not 0 <= index < len(self.current.candidates):
            raise ValueError(f"no candidate {index + 1} to export: suggest first")
        path = Path(path) if path is not None else Path.cwd() / f"muse_candidate_{index + 1}.mid"
        self.current.candidates[index].write_midi(path, self.bridge.clock.bpm)
        self.bridge.tell(f"exported {path}")
        return path
