"""The bridge's pair of MIDI ports: opened, watched, reopened when lost, and switched for another pair.

`PortPair` is one input and one output port. A port opened by name that disappears is reported and
reopened when it comes back; the session around it is untouched. On JACK a JackLink
(muse_bridge/jack_link.py) watches the server: when it stops, or throws the bridge's ports out of its
graph, the ports are closed (before any new JACK client of rtmidi's is opened: rtmidi's libjack frees the
dead clients then), the loss is said once, and every second the server is asked again; when it answers,
the ports are reopened and their connections made again as the DAW's ports reappear.

`PortsInUse` is the pair the bridge plays on now: it sends (and tells the EchoGuard what it sent), switches to
other ports on request (the old ones back if the new cannot be opened), and owes a note-off for every note
left sounding when a port was lost, sent when it is back: no note hangs on the DAW.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

import mido

from muse_bridge.echo import EchoGuard
from muse_bridge.events import EventHub, PortsChanged
from muse_bridge.jack_link import JackLink, open_link
from muse_bridge.locks import RankedLock
from muse_bridge.ports import (VIRTUAL_CAPABLE, MidiApiError, PolledInput, PortNotFoundError, PortSettings,
                               close_output, find_port, midi_backend)

log = logging.getLogger(__name__)

JACK_RETRY_SECONDS = 1.0      # how often a server that went away is asked again
RESTORE_SECONDS = 60.0        # how long the old connections are made again as the DAW's ports reappear


class PortPair:
    """The bridge's input and output port; input messages go to `callback(message, t, transport_t)` on the
    reading thread; `on_change(text, lost)` hears of a port (or JACK) lost or back."""

    def __init__(self, settings: PortSettings, callback: Callable[[mido.Message, float, float | None], None],
                 on_change: Callable[[str, bool], None] | None = None):
        self.settings = settings
        self.backend = midi_backend(settings.api)
        self.api = self.backend.api
        self.virtual = settings.virtual if settings.virtual is not None else self.api in VIRTUAL_CAPABLE
        if self.virtual and self.api not in VIRTUAL_CAPABLE:
            raise MidiApiError(f"the {self.api} MIDI API cannot create virtual ports; "
                               f"create {settings.input_name!r} and {settings.output_name!r} (e.g. with loopMIDI) "
                               "and open them by name")
        self._callback, self._on_change = callback, on_change or (lambda text, lost: None)
        self._lock = RankedLock("ports")
        self.input: PolledInput | None = None
        self.output: mido.ports.BaseOutput | None = None
        self.unsent = 0  # messages dropped while the output port was gone
        self.link: JackLink | None = None
        self._jack = self.api == "UNIX_JACK"     # JACK-Client here: the transport's time, and the server watched
        self._jack_lost = False
        self._restore: dict[str, set[str]] = {}     # our port's short name -> the ports it was connected to
        self._restore_until = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()           # the watcher looks now: JACK went away, or closing
        self._watcher: threading.Thread | None = None

    def open(self) -> None:
        """Open both ports; raises PortNotFoundError (or OSError) naming the port."""
        if self._jack:
            self.link = open_link(self._link_name, self._wake.set)
            self._jack = self.link is not None
        try:
            self._open_ports()
        except BaseException:
            self._close_link()
            raise
        if not self.virtual or self._jack:
            self._watcher = threading.Thread(target=self._watch, name="muse-port-watch", daemon=True)
            self._watcher.start()

    @property
    def _link_name(self) -> str:
        return f"{self.settings.client_name} Link"

    @property
    def _watch_server(self) -> bool:
        """The JACK server is watched (virtual ports on JACK, with JACK-Client here); ports opened by name are
        watched by name."""
        return self._jack and self.virtual

    def _open_ports(self) -> None:
        self.input = self._open_input()
        try:
            self.output = self._open_output()
        except BaseException:
            self.input.close()
            self.input = None
            raise

    @property
    def input_name(self) -> str:
        return self.input.name if self.input is not None else self.settings.input_name

    @property
    def output_name(self) -> str:
        return self.output.name if self.output is not None else self.settings.output_name

    def _open_input(self) -> PolledInput:
        s = self.settings
        name = s.input_name if self.virtual else find_port("input", s.input_name, self.backend.get_input_names())
        stamp = self.link.cycle_seconds if self.link is not None else None
        return PolledInput(self.api, name, self.virtual, f"{s.client_name} In", s.queue_size, self._callback, stamp)

    def _open_output(self) -> mido.ports.BaseOutput:
        s = self.settings
        if self.virtual:
            return self.backend.open_output(s.output_name, client_name=f"{s.client_name} Out")
        name = find_port("output", s.output_name, self.backend.get_output_names())
        return self.backend.open_output(name)

    def send(self, message: mido.Message) -> bool:
        """Send on the output port; False (and counted) while the port is gone."""
        with self._lock:
            if self.output is None:
                self.unsent += 1
                return False
            self.output.send(message)
            return True

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self._watch_server:
                self._watch_jack()
                wait = self.settings.poll_seconds if self.link is not None else JACK_RETRY_SECONDS
            else:
                self._check("input")
                self._check("output")
                wait = self.settings.poll_seconds
            self._wake.wait(wait)
            self._wake.clear()

    # ---- JACK: the server gone, the ports thrown out, and both back ------------------------------

    def _ours(self, names: list[str]) -> dict[str, str]:
        """Our ports among the graph's port names: short name -> full name."""
        s = self.settings
        return {short: full for short in (s.input_name, s.output_name) for full in names
                if full.endswith(":" + short) and full.startswith(s.client_name)}

    def _watch_jack(self) -> None:
        if self._stop.is_set():
            return
        if self.link is not None and not self.link.gone.is_set():
            try:
                ours = self._ours(self.link.port_names())
            except Exception as e:   # the server went away while we asked
                log.debug("asking JACK for its ports failed: %s", e)
                return
            if self.input is not None and len(ours) < 2:
                self._lose_jack("JACK threw the bridge's ports out of its graph")
            elif self.input is not None:
                self._remember_connections(ours)
            return
        if self.link is not None:
            self._lose_jack(f"the JACK server went away ({self.link.reason})")
        self._reopen_jack()

    def _remember_connections(self, ours: dict[str, str]) -> None:
        """What our ports are connected to now; after a reopen, the connections still to be made again."""
        now = time.monotonic()
        for short, full in ours.items():
            connected = set(self.link.connections(full))
            if now < self._restore_until and self._restore.get(short):
                missing = self._restore[short] - connected
                for other in missing:
                    source, dest = (other, full) if short == self.settings.input_name else (full, other)
                    if self.link.connect(source, dest):
                        log.info("JACK connection %s -> %s made again", source, dest)
                        connected.add(other)
                if not self._restore[short] - connected:
                    self._on_change(f"{short!r} connected again to {', '.join(sorted(connected))}", False)
                    self._restore[short] = set()
                continue
            self._restore[short] = connected

    @property
    def restoring(self) -> bool:
        """Connections of before a reopen are still to be made again."""
        return time.monotonic() < self._restore_until and any(self._restore.values())

    def _lose_jack(self, why: str) -> None:
        """Close the ports and the link (rtmidi's dead clients before any new one) and say so once."""
        self._close_ports()
        if not self._jack_lost:
            self._jack_lost = True
            log.warning("%s: the MIDI ports are closed; the context is kept, and they reopen when JACK is back", why)
            self._on_change(f"{why}: waiting for JACK to come back (the context is kept)", True)

    def _reopen_jack(self) -> None:
        try:
            self.link = JackLink(self._link_name, self._wake.set)
        except OSError:
            return   # not back yet
        try:
            with self._lock:
                self._open_ports()
        except OSError as e:
            log.warning("JACK is back but the MIDI ports cannot be opened yet: %s", e)
            self._close_link()
            return
        self._jack_lost = False
        self._restore_until = time.monotonic() + RESTORE_SECONDS
        log.warning("JACK is back: the MIDI ports %r and %r are open again", self.input_name, self.output_name)
        self._on_change(f"JACK is back: ports {self.input_name!r} and {self.output_name!r} open again", False)

    def _close_link(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.close()

    # ---- ports opened by name ------------------------------------------------------------------

    def _check(self, direction: str) -> None:
        names = (self.backend.get_input_names() if direction == "input" else self.backend.get_output_names())
        wanted = self.settings.input_name if direction == "input" else self.settings.output_name
        port = self.input if direction == "input" else self.output
        try:
            present = find_port(direction, wanted, names)
        except PortNotFoundError:
            present = None
        if port is not None and present is None:
            log.warning("MIDI %s port %r disappeared; waiting for it to come back", direction, wanted)
            with self._lock:
                setattr(self, direction, None)
            if direction == "input":
                port.close()
            else:
                close_output(port)
            self._on_change(f"{direction} port {wanted!r} lost", True)
        elif port is None and present is not None:
            try:
                new = self._open_input() if direction == "input" else self._open_output()
            except OSError as e:
                log.warning("MIDI %s port %r is back but cannot be opened yet: %s", direction, wanted, e)
                return
            with self._lock:
                setattr(self, direction, new)
            log.warning("MIDI %s port %r reopened", direction, wanted)
            self._on_change(f"{direction} port {wanted!r} reopened", False)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self._close_ports()

    def _close_ports(self) -> None:
        """Both ports and the link closed. The ports are closed outside the lock: the input's thread may be
        sending (the Player, on a clock) and wait for it."""
        with self._lock:
            port_in, port_out, self.input, self.output = self.input, self.output, None, None
        if port_in is not None:
            port_in.close()
        if port_out is not None:
            close_output(port_out)
        self._close_link()


class PortsInUse:
    """The pair the bridge plays on; input goes to `on_midi(message, t, transport_t)`. `on_lost()` stops what plays
    when a port goes away and returns the pitches it left sounding."""

    def __init__(self, settings: PortSettings, on_midi: Callable[[mido.Message, float, float | None], None],
                 echo: EchoGuard, events: EventHub, on_lost: Callable[[], Iterable[int]]):
        self._on_midi, self._echo, self._events, self._on_lost = on_midi, echo, events, on_lost
        self._hanging: set[int] = set()      # pitches sounding when the output port was lost
        self.channel = settings.output_channel
        self.pair = PortPair(settings, on_midi, on_change=self._lost_or_back)

    def open(self) -> None:
        self.pair.open()

    def close(self) -> None:
        self.pair.close()

    @property
    def is_open(self) -> bool:
        return self.pair.input is not None and self.pair.output is not None

    def send(self, message: mido.Message) -> bool:
        self._echo.sent(message)
        return self.pair.send(message)

    def state(self) -> PortsChanged:
        """Which ports are open now (None for one that is not)."""
        p = self.pair
        return PortsChanged(p.api, p.input.name if p.input else None, p.output.name if p.output else None, p.virtual)

    def switch(self, new: PortSettings) -> None:
        """Close the ports, open the new ones; if they cannot be opened, reopen the old and raise."""
        old = self.pair
        fresh = PortPair(new, self._on_midi, on_change=self._lost_or_back)   # MidiApiError before closing
        old.close()
        try:
            fresh.open()
        except (OSError, ValueError):
            self.pair = PortPair(old.settings, self._on_midi, on_change=self._lost_or_back)
            try:
                self.pair.open()
            except (OSError, ValueError) as e:
                log.warning("the previous MIDI ports cannot be reopened either: %s", e)
            self._events.emit(self.state())
            raise
        self.pair, self.channel = fresh, new.output_channel
        self._events.emit(self.state())
        self._events.tell(f"MIDI in {fresh.input_name!r}, out {fresh.output_name!r} ({fresh.api})")

    def _lost_or_back(self, text: str, lost: bool) -> None:
        """A port (or the JACK server) went away or came back (the port watcher's thread). Lost: playback stops,
        and the notes it left sounding are remembered; back: they get their note-offs, so none hangs on the DAW."""
        if lost:
            self._hanging |= set(self._on_lost())
        elif self._hanging:   # sent again as each connection is made again; kept until all are
            for pitch in sorted(self._hanging):
                self.send(mido.Message("note_off", channel=self.channel, note=pitch))
            if not self.pair.restoring:
                self._hanging.clear()
        self._events.tell(text, error=lost)
        self._events.emit(self.state())
