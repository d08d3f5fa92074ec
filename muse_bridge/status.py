"""The bridge's status: one line's worth of what it is doing, for the console, the tray and the panel."""
from __future__ import annotations

import time

from muse_bridge.answers import Answers
from muse_bridge.audition import Audition
from muse_bridge.clock import ClockFollower
from muse_bridge.context import LiveContext
from muse_bridge.events import GENERATING, IDLE, LISTENING, PLAYING, BridgeStatus, EventHub
from muse_bridge.filler import Filler
from muse_bridge.intake import Intake
from muse_bridge.player import Player
from muse_bridge.port_pair import PortsInUse
from muse_bridge.suggester import Suggester
from muse_bridge.worker import SessionWorker

LISTENING_SECONDS = 4.0      # a note played this recently makes the bridge "listening"


class StatusLine:
    """Reads the status from the parts it names; `now()` from any thread."""

    def __init__(self, clock: ClockFollower, context: LiveContext, worker: SessionWorker, intake: Intake,
                 suggester: Suggester, filler: Filler, audition: Audition, answers: Answers, player: Player,
                 ports: PortsInUse, events: EventHub):
        self.clock, self.context, self.worker, self.intake = clock, context, worker, intake
        self.suggester, self.filler, self.audition, self.answers = suggester, filler, audition, answers
        self.player, self.ports, self.events = player, ports, events

    def now(self) -> BridgeStatus:
        clock = "midi clock" if self.clock.external else ("internal" if self.clock.running else "stopped")
        playing = self.player.playback is not None
        if self.suggester.generating or self.filler.generating:
            activity = GENERATING
        elif playing:
            activity = PLAYING
        elif time.monotonic() - self.intake.last_note_at < LISTENING_SECONDS:
            activity = LISTENING
        else:
            activity = IDLE
        suggestion, worker = self.audition.current, self.worker
        return BridgeStatus(
            bpm=round(self.clock.bpm, 1), clock=clock, bar=self.context.bar_of(self.clock.tick()) + 1,
            context_tokens=worker.session.context_length, pending_tokens=worker.tokens_queued - worker.tokens_fed,
            last_suggest_seconds=self.suggester.last_suggest_seconds, device=worker.device,
            candidate=self.audition.index + 1 if suggestion else None,
            candidates=len(suggestion.candidates) if suggestion else 0, playing=playing,
            overflow=self.intake.overflow, message=self.events.message, activity=activity,
            unsent=self.ports.pair.unsent, answer=self.answers.describe())
