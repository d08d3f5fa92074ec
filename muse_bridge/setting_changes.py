"""Setting changes while the bridge runs: checked once where they are asked for, applied in order, saved on request.

A `SettingsChange` is checked when it is asked for (`request`: SettingsError naming the setting, nothing
changed), on top of the changes asked for before it, so that the command thread, which applies them in
order, takes the checked settings as they are. Ports and style are opened there; if that fails, the old
ones stay, with a Notice. Only the changed settings go to the file: options given for one run stay out of
it. Triggers learned by MIDI-learn arrive as a change like any other. "Detect key" and "chords from
playing" read the context and ask for the change they imply.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from engine.checkpoint import Checkpoint
from engine.chords import chords_of_last_bars
from engine.grammar import ControlsError
from engine.keys import Key, detect_key
from engine.style import load_style
from muse_bridge.context import LiveContext
from muse_bridge.events import EventHub, SettingsChanged
from muse_bridge.player import Player
from muse_bridge.port_pair import PortsInUse
from muse_bridge.ports import PortSettings
from muse_bridge.protocol import Setting, change
from muse_bridge.settings import (BridgeSettings, SettingsChange, SettingsError, SettingsInForce, read_settings,
                                  save_settings)
from muse_bridge.worker import SessionWorker

log = logging.getLogger(__name__)

KEY_DETECTION_BARS = 16      # the context's last bars that "detect key" looks at
SWITCHED = ("ports", "style")   # sections that open something when they change


class SettingChanges:
    """`request` (any thread), applied on the command thread (`submit`); `on_applied(old, new)` hears of each."""

    def __init__(self, settings: SettingsInForce, path: Path | None, checkpoint: Checkpoint, worker: SessionWorker,
                 context: LiveContext, ports: PortsInUse, player: Player, events: EventHub,
                 submit: Callable[[Callable[[], Any], str], None],
                 on_applied: Callable[[BridgeSettings, BridgeSettings], None]):
        self.settings, self.path, self.checkpoint, self.worker = settings, path, checkpoint, worker
        self.context, self.ports, self.player, self.events = context, ports, player, events
        self._submit, self._on_applied = submit, on_applied
        self._lock = threading.Lock()        # `_asked`, between the threads that ask
        self._asked = settings.value         # the settings once every change asked for so far is applied
        self._file_lock = threading.Lock()

    def request(self, change: SettingsChange) -> BridgeSettings:
        """Check `change` (SettingsError naming the setting) and queue it; returns the settings it will make."""
        with self._lock:
            base = self._asked
            wanted = base.with_changes(change.values)   # refused here, where the caller hears of it
            try:
                self.worker.session.grammar.check_controls(wanted.sampling)
            except ControlsError as e:
                raise SettingsError(str(e)) from None
            self._asked = wanted
        self._submit(lambda: self._apply(change, base, wanted), "settings")
        return wanted

    def _apply(self, change: SettingsChange, base: BridgeSettings, wanted: BridgeSettings) -> None:
        current = self.settings.value
        if current != base:   # a section could not be switched meanwhile: the change goes on what is in force
            try:
                wanted = current.with_changes(change.values)
            except SettingsError as e:
                self.events.tell(f"settings unchanged: {e}", error=True)
                return
        settings = replace(wanted, ports=current.ports, style=current.style)
        applied = dict(change.values)
        for section in SWITCHED:
            retry = section == "ports" and any(k.startswith("ports.") for k in applied) and not self.ports.is_open
            if getattr(wanted, section) == getattr(current, section) and not retry:
                continue
            try:
                self._switch_ports(wanted.ports) if section == "ports" else self._switch_style(wanted.style)
            except (OSError, ValueError) as e:
                self.events.tell(f"{'MIDI ports' if section == 'ports' else 'style'} unchanged: {e}", error=True)
                applied = {k: v for k, v in applied.items() if k.split(".")[0] != section}
            else:
                settings = replace(settings, **{section: getattr(wanted, section)})
        if change.persist and applied:
            self._persist(settings, list(applied))
        old, new = self.settings.change(lambda _: settings)
        with self._lock:
            if self._asked == wanted:
                self._asked = new
        self._on_applied(old, new)
        outside = new.sampling.chords_outside_key()
        if outside and outside != old.sampling.chords_outside_key():
            self.events.tell(outside)   # once, when the chords or the key lock change
        self.events.emit(SettingsChanged(new))

    def triggers_learned(self, triggers: dict[str, list]) -> None:
        """MIDI-learn bound a control (the score thread): saved like any change."""
        self.request(SettingsChange({"triggers": triggers}, persist=True))
        self.events.tell("triggers saved")

    # ---- settings from what was played --------------------------------------------------

    def key_from_playing(self) -> Key:
        """Estimate the key of the context's last bars and lock sampling to it."""
        clock = self.settings.value.clock
        notes, _ = self.worker.session.tokenizer.decode_last_bars(self.context.tokens(), KEY_DETECTION_BARS,
                                                                  clock.ticks_per_beat, clock.time_signature)
        key = detect_key(notes)
        self.request(change({Setting.KEY_LOCK: str(key)}))
        self.events.tell(f"key detected: {key}")
        return key

    def chords_from_playing(self) -> tuple[str, ...]:
        """Name the chords of the context's last `bars` bars (one a bar) and steer the suggestions with them."""
        s = self.settings.value
        chords = chords_of_last_bars(self.context.tokens(), s.bars, self.worker.session.tokenizer,
                                     s.clock.ticks_per_beat, s.clock.time_signature)
        if not chords:
            self.events.tell("no chords to take: nothing played yet")
            return ()
        self.request(change({Setting.CHORDS: chords}, persist=True))
        self.events.tell(f"chords from what you played: {' '.join(chords)}")
        return chords

    # ---- ports and style -----------------------------------------------------------------

    def _switch_ports(self, new: PortSettings) -> None:
        self.player.stop()   # its note-offs on the old port
        self.ports.switch(new)
        self.player.channel = new.output_channel

    def _switch_style(self, path: str | None) -> None:
        """Load a style preset (None: the model's own initial state); the context is kept, re-read from its start."""
        initial = load_style(path, self.checkpoint).to(self.worker.session.device) if path else None
        self.context.reread(lambda session: session.set_initial_state(initial))
        self.events.tell(f"style: {Path(path).stem if path else 'none'}")

    def _persist(self, settings: BridgeSettings, paths: list[str]) -> None:
        """Save the settings at `paths` (only those: options given for this run alone stay out of the file), as
        they were checked when asked for."""
        try:
            with self._file_lock:
                stored, _ = read_settings(self.path)
                path = save_settings(_take_over(stored, settings, paths), self.path)
        except (OSError, SettingsError) as e:
            self.events.tell(f"settings not saved: {e}", error=True)
            return
        log.info("settings saved to %s", path)


def _take_over(stored: BridgeSettings, checked: BridgeSettings, paths: list[str]) -> BridgeSettings:
    """`stored` with the settings at `paths` taken from `checked` as they are (they were checked already)."""
    def take(into: Any, source: Any, names: list[str]) -> Any:
        value = getattr(source, names[0]) if len(names) == 1 else take(getattr(into, names[0]),
                                                                      getattr(source, names[0]), names[1:])
        return replace(into, **{names[0]: value})
    for path in paths:
        stored = take(stored, checked, path.split("."))
    return stored
