"""MIDI ports through mido + python-rtmidi: API selection, virtual or by-name ports, the input's reading thread.

Virtual ports ("Muse In" / "Muse Out") are created where the rtmidi API can (ALSA, JACK, CoreMIDI).
WinMM cannot, so there the names refer to existing ports (e.g. made with loopMIDI). A name that is
not found raises `PortNotFoundError` listing the ports that do exist. The bridge's pair of ports, watched
and reopened when lost, is muse_bridge/port_pair.py.

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
    time.monotonic and `transport_t` the same moment on the transport's clock: `transport_time(t)`, the
    start of JACK's cycle in which it fell (None without one).

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
                try:
                    self._callback(message, at, None if self._transport_time is None else self._transport_time(at))
                except Exception:  # every later message comes through this thread: a bug in one must not end it
                    log.exception("handling %s from %r failed", message, self.name)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._rt.close_port()
        self._rt.delete()
