"""The bridge's status: one line's worth of what it is doing, for the console, the tray and the panel."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from muse_bridge.events import GENERATING, IDLE, LISTENING, PLAYING, BridgeStatus

if TYPE_CHECKING:
    from muse_bridge.bridge import LiveBridge

LISTENING_SECONDS = 4.0      # a note played this recently makes the bridge "listening"


def status_of(bridge: "LiveBridge") -> BridgeStatus:
    b = bridge
    now = b.clock.position()
    clock = "midi clock" if b.clock.external else ("internal" if b.clock.running else "stopped")
    bar = b.score.bar_of(int(now)) + 1 if b.score.started else 0
    playing = b.player.playback is not None
    if b.suggestions.generating:
        activity = GENERATING
    elif playing:
        activity = PLAYING
    elif time.monotonic() - b.intake.last_note_at < LISTENING_SECONDS:
        activity = LISTENING
    else:
        activity = IDLE
    suggestion = b.audition.current
    return BridgeStatus(round(b.clock.bpm, 1), clock, bar, b.worker.session.context_length,
                        b.worker.tokens_queued - b.worker.tokens_fed, b.suggestions.last_suggest_seconds,
                        b.worker.device, b.audition.index + 1 if suggestion else None,
                        len(suggestion.candidates) if suggestion else 0, playing, b.intake.overflow,
                        b.events.message, activity, b.ports.unsent, b.answers.describe())
