"""MIDI ports through mido + python-rtmidi: API selection, virtual or by-name ports, and reopening lost ones.

Virtual ports ("Muse In" / "Muse Out") are created where the rtmidi API can (ALSA, JACK, CoreMIDI).
WinMM cannot, so there the names refer to existing ports (e.g. made with loopMIDI). A name that is
not found raises `PortNotFoundError` listing the ports that do exist. A port opened by name that
disappears is reported and reopened when it comes back; the session around it is untouched.

On JACK a JackLink (muse_bridge/jack_link.py) watches the server: when it stops, or throws the bridge's
ports out of its graph, the ports are closed (before any new JACK client of rtmidi's is opened: rtmidi's
libjack frees the dead clients then), the loss is said once, and every second the server is asked again;
when it answers, the ports are reopened and their connections made again as the DAW's ports reappear.

Input is read from python-rtmidi's own queue by a thread of ours, never through an rtmidi callback:
with JACK the callback would run Python on JACK's process thread, which then waits for the GIL,
misses cycles and loses MIDI. The driver thread only ever appends to rtmidi's (bounded) queue.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import mido
import rtmidi

from muse_bridge.jack_link import JackLink, open_link

log = logging.getLogger(__name__)

# --midi-api value -> rtmidi API name as mido spells it (None: rtmidi's default for the platform)
MIDI_APIS = {"auto": None, "alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE",
             "winmm": "WINDOWS_MM"}
VIRTUAL_CAPABLE = {"LINUX_ALSA", "UNIX_JACK", "MACOSX_CORE"}


class MidiApiError(ValueError):
    """An rtmidi API that does not exist or is not compiled into python-rtmidi here."""


class PortNotFoundError(OSError):
    """No port of that name; the message lists the available ones."""

    def __init__(self, direction: str, name: str, available: list[str]):
        listing = ", ".join(repr(n) for n in available) or "none"
        super().__init__(f"MIDI {direction} port {name!r} not found; available {direction} ports: {listing}")
        self.direction, self.name, self.available = direction, name, available


@dataclass(frozen=True)
class PortSettings:
    api: str = "auto"                 # one of MIDI_APIS
    input_name: str = "Muse In"
    output_name: str = "Muse Out"
    virtual: bool | None = None       # None: virtual ports where the API can make them
    output_channel: int = 0           # 0-based MIDI channel the candidates play on
    client_name: str = "Muse Bridge"  # how the virtual ports' owner shows up (JACK/ALSA client)
    poll_seconds: float = 1.0         # how often ports opened by name are checked
    queue_size: int = 65536           # messages waiting to be read, in rtmidi and before the live score

    def __post_init__(self) -> None:
        if self.api not in MIDI_APIS:
            raise MidiApiError(f"unknown MIDI API {self.api!r}; choose one of {', '.join(MIDI_APIS)}")
        for what, name in (("input", self.input_name), ("output", self.output_name)):
            if not name.strip():
                raise ValueError(f"the MIDI {what} port needs a name")
        if not 0 <= self.output_channel <= 15:
            raise ValueError(f"output channel must be 1-16, got {self.output_channel + 1}")
        if self.poll_seconds <= 0 or self.queue_size < 1:
            raise ValueError(f"poll seconds and queue size must be positive, got {self.poll_seconds}, {self.queue_size}")


def midi_backend(api: str) -> mido.Backend:
    """The mido rtmidi backend for a --midi-api value; "auto" takes the first compiled-in API that works here."""
    if api not in MIDI_APIS:
        raise MidiApiError(f"unknown MIDI API {api!r}; choose one of {', '.join(MIDI_APIS)}")
    compiled = [rtmidi.get_api_name(a) for a in rtmidi.get_compiled_api()]
    names = {rtmidi.get_api_name(getattr(rtmidi, "API_" + n)): n for n in VIRTUAL_CAPABLE | {"WINDOWS_MM"}}
    if api == "auto":
        for a in rtmidi.get_compiled_api():
            try:
                rtmidi.MidiOut(rtapi=a).delete()
            except rtmidi.SystemError:
                continue  # e.g. ALSA without /dev/snd/seq, JACK without a server
            return mido.Backend(f"mido.backends.rtmidi/{names[rtmidi.get_api_name(a)]}")
        raise MidiApiError(f"no MIDI API works here (compiled in: {', '.join(compiled) or 'none'}); "
                           "for JACK, is the server running?")
    rt_name = MIDI_APIS[api]
    if rtmidi.get_api_name(getattr(rtmidi, "API_" + rt_name)) not in compiled:
        raise MidiApiError(f"MIDI API {api!r} is not available in python-rtmidi here; "
                           f"compiled in: {', '.join(compiled) or 'none'}")
    return mido.Backend(f"mido.backends.rtmidi/{rt_name}")


def find_port(direction: str, name: str, available: list[str]) -> str:
    """The available port called `name`: exact match, else the one port whose name contains it."""
    if name in available:
        return name
    matches = [p for p in available if name.lower() in p.lower()]
    if len(matches) == 1:
        return matches[0]
    raise PortNotFoundError(direction, name, available)


OUTPUT_CLOSE_GRACE_SECONDS = 0.05
OUTPUT_FLUSH_SECONDS = 0.03   # several JACK cycles: what was just sent (the last note-offs) goes out first


def close_output(port: mido.ports.BaseOutput) -> None:
    """Close an rtmidi output port. Messages sent last (note-offs at exit) are still in RtMidi's ring
    buffer until JACK's next cycles carry them, so those cycles pass first. RtMidi's JACK output frees its
    ring buffer while JACK's process thread may still be inside the port's callback (a segfault seen
    under CPU load), so the port is unregistered next and a few more cycles pass before the rest is freed."""
    rt = getattr(port, "_rt", None)
    if rt is not None and not port.closed:
        time.sleep(OUTPUT_FLUSH_SECONDS)
        rt.close_port()
        time.sleep(OUTPUT_CLOSE_GRACE_SECONDS)
    port.close()


class PolledInput:
    """An rtmidi input port drained by a thread of ours: `callback(message, t, transport_t)` with `t` on
    time.monotonic and `transport_t` the same moment on the transport's clock: `transport_time(ago)`, the
    start of JACK's cycle that ran `ago` seconds before (None without one).

    Each message is timed by the driver, not by when this thread got to it: the driver's deltas between
    messages, summed, give every message's time on the driver's clock exactly, and that clock is placed on
    time.monotonic by the smallest lag seen between a message's time and the moment it was read (allowed to
    rise by DRIFT a second, should the clocks drift). A thread held up for 20 ms (a busy machine, the GIL)
    then still reads a clock message at the time it came."""

    POLL_SECONDS = 0.001
    DRIFT = 0.001                      # seconds a second the two clocks may drift apart
    DROPPED = frozenset({0xF0, 0xFE})  # sysex and active sensing: read (their deltas count) but not passed on

    def __init__(self, api: str, name: str, virtual: bool, client_name: str, queue_size: int,
                 callback: Callable[[mido.Message, float, float | None], None],
                 transport_time: Callable[[float], float | None] | None = None):
        self._rt = rtmidi.MidiIn(rtapi=getattr(rtmidi, "API_" + api), name=client_name, queue_size_limit=queue_size)
        try:
            if virtual:
                self._rt.open_virtual_port(name)
            else:
                self._rt.open_port(self._rt.get_ports().index(name))
        except (rtmidi.SystemError, rtmidi.InvalidPortError, ValueError) as e:
            self._rt.delete()
            raise OSError(f"cannot open MIDI input port {name!r}: {e}") from e
        # nothing ignored by rtmidi: a message it ignores takes its delta with it
        self._rt.ignore_types(sysex=False, timing=False, active_sense=False)
        self.name, self._callback, self._transport_time = name, callback, transport_time
        self._driver_t = 0.0                 # the driver's clock: its deltas summed
        self._offset: float | None = None    # time.monotonic minus the driver's clock
        self._last_read = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"muse-midi-in {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = []
            while len(batch) < 1024:
                item = self._rt.get_message()
                if item is None:
                    break
                batch.append(item)
            if not batch:
                time.sleep(self.POLL_SECONDS)
                continue
            t = time.monotonic()
            times = []
            for _, delta in batch:
                self._driver_t += delta
                times.append(self._driver_t)
            lag = t - times[-1]
            self._offset = lag if self._offset is None else min(self._offset + self.DRIFT * (t - self._last_read), lag)
            self._last_read = t
            for (data, _), when in zip(batch, times):
                if not data or data[0] in self.DROPPED:
                    continue
                try:
                    message = mido.Message.from_bytes(data)
                except ValueError:
                    continue  # not a complete MIDI message
                at = when + self._offset
                self._callback(message, at, None if self._transport_time is None else self._transport_time(t - at))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._rt.close_port()
        self._rt.delete()


JACK_RETRY_SECONDS = 1.0      # how often a server that went away is asked again
RESTORE_SECONDS = 60.0        # how long the old connections are made again as the DAW's ports reappear


class BridgePorts:
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
        self._lock = threading.Lock()
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
