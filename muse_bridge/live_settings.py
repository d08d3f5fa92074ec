"""Live settings: a LiveBridge's settings changed while it runs, checked first, applied in order, saved on request.

Values are checked where they are asked for (SettingsError naming the setting, nothing changed). Ports
and style are then opened on the command thread; if that fails, the old ones stay, with a Notice. Only
the changed settings go to the file: options given for one run stay out of it. Triggers learned on the
score thread are saved from there.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.chords import chords_of_last_bars
from engine.keys import Key, detect_key
from engine.session import Session
from engine.style import load_style
from muse_bridge.events import SettingsChanged
from muse_bridge.ports import BridgePorts, PortSettings
from muse_bridge.settings import BridgeSettings, SettingsError, read_settings, save_settings

if TYPE_CHECKING:
    from muse_bridge.bridge import LiveBridge

log = logging.getLogger(__name__)

KEY_DETECTION_BARS = 16      # the context's last bars that "detect key" looks at


class LiveSettings:
    """`update` (any thread), `apply` (the command thread), `save_triggers` (the score thread)."""

    def __init__(self, bridge: "LiveBridge", path: Path | None):
        self.bridge, self.path = bridge, path
        self._lock = threading.Lock()        # the settings object, between the command and score threads
        self._file_lock = threading.Lock()   # the settings file, likewise

    def update(self, changes: dict[str, Any], persist: bool = False) -> BridgeSettings:
        b = self.bridge
        wanted = b.settings.with_changes(changes)   # refused here, where the caller hears of it
        try:
            b.worker.session.grammar.check_controls(wanted.sampling)
        except ValueError as e:
            raise SettingsError(str(e)) from None
        b.submit(lambda: self.apply(changes, persist), "settings")
        return wanted

    def apply(self, changes: dict[str, Any], persist: bool) -> None:
        b = self.bridge
        # applied to the settings in force now: changes queued one after another all take effect
        wanted = b.settings.with_changes(changes)
        settings = replace(wanted, ports=b.settings.ports, style=b.settings.style)
        applied = dict(changes)
        for section, switch, what in (("ports", self._reopen_ports, "MIDI ports"), ("style", self._switch_style, "style")):
            retry = section == "ports" and any(k.startswith("ports.") for k in changes) and not b.ports_open
            if getattr(wanted, section) == getattr(b.settings, section) and not retry:
                continue
            try:
                switch(getattr(wanted, section))
            except (OSError, ValueError) as e:
                b.tell(f"{what} unchanged: {e}", error=True)
                applied = {k: v for k, v in applied.items() if k.split(".")[0] != section}
            else:
                settings = replace(settings, **{section: getattr(wanted, section)})
        if persist and applied:
            self.persist(applied)
        with self._lock:   # a trigger learned meanwhile (on the score thread) stays learned
            if "triggers" not in changes:
                settings = replace(settings, triggers=b.settings.triggers)
            old, b.settings = b.settings, settings
        if settings.answer.on != old.answer.on:
            b.answers.mode_changed(settings.answer.on)
        outside = settings.sampling.chords_outside_key()
        if outside and outside != old.sampling.chords_outside_key():
            b.tell(outside)   # once, when the chords or the key lock change
        b.emit(SettingsChanged(b.settings))

    # ---- settings from what was played --------------------------------------------------

    def _played_tokens(self) -> list[int]:
        b = self.bridge
        with b.score_lock:
            return b.score.committed + b.score.tail(int(b.clock.position()))

    def key_from_playing(self) -> Key:
        """Estimate the key of the context's last bars and lock sampling to it."""
        b, clock = self.bridge, self.bridge.settings.clock
        notes, _ = b.tokenizer.decode_last_bars(self._played_tokens(), KEY_DETECTION_BARS, clock.ticks_per_beat,
                                                clock.time_signature)
        key = detect_key(notes)
        self.update({"sampling.key_lock": str(key)})
        b.tell(f"key detected: {key}")
        return key

    def chords_from_playing(self) -> tuple[str, ...]:
        """Name the chords of the context's last `bars` bars (one a bar) and steer the suggestions with them."""
        b, clock = self.bridge, self.bridge.settings.clock
        chords = chords_of_last_bars(self._played_tokens(), b.settings.bars, b.tokenizer, clock.ticks_per_beat,
                                     clock.time_signature)
        if not chords:
            b.tell("no chords to take: nothing played yet")
            return ()
        self.update({"sampling.chords": chords}, persist=True)
        b.tell(f"chords from what you played: {' '.join(chords)}")
        return chords

    # ---- ports and style -----------------------------------------------------------------

    def _reopen_ports(self, new: PortSettings) -> None:
        """Close the ports (note-offs first), open the new ones; if they cannot be opened, reopen the old."""
        b = self.bridge
        b.player.stop()
        old = b.ports
        fresh = BridgePorts(new, b.intake.on_midi, on_change=b.port_lost_or_back)   # MidiApiError before closing
        old.close()
        try:
            fresh.open()
        except (OSError, ValueError):
            b.ports = BridgePorts(old.settings, b.intake.on_midi, on_change=b.port_lost_or_back)
            try:
                b.ports.open()
            except (OSError, ValueError) as e:
                log.warning("the previous MIDI ports cannot be reopened either: %s", e)
            b.ports_changed()
            raise
        b.ports = fresh
        b.player.channel = new.output_channel
        b.ports_changed()
        b.tell(f"MIDI in {fresh.input_name!r}, out {fresh.output_name!r} ({fresh.api})")

    def _switch_style(self, path: str | None) -> None:
        """Load a style preset (None: the model's own initial state); the context is kept, re-read from the new start."""
        b = self.bridge
        initial = load_style(path, b.checkpoint).to(b.worker.session.device) if path else None
        with b.score_lock:
            committed = list(b.score.committed)

            def switch(session: Session) -> None:
                session.set_initial_state(initial)
                session.feed(committed)
            b.worker.call(switch)
            b.suggestions.context_changed()
        b.tell(f"style: {Path(path).stem if path else 'none'}")

    def persist(self, changes: dict[str, Any]) -> None:
        """Save `changes` to the settings file (only those: options given for this run alone stay out of it)."""
        try:
            with self._file_lock:   # the score thread saves learned triggers, the command thread the rest
                stored, _ = read_settings(self.path)
                path = save_settings(stored.with_changes(changes), self.path)
        except (OSError, SettingsError) as e:
            self.bridge.tell(f"settings not saved: {e}", error=True)
            return
        log.info("settings saved to %s", path)

    def save_triggers(self, triggers: dict[str, list]) -> None:
        b = self.bridge
        with self._lock:
            b.settings = replace(b.settings, triggers=triggers)
        self.persist({"triggers": triggers})
        b.tell("triggers saved")
        b.emit(SettingsChanged(b.settings))
