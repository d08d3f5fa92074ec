"""JackLink: the bridge's own small JACK client beside python-rtmidi's, on JACK only.

python-rtmidi's JACK ports tell neither the transport's time nor that the server went away. This client
(JACK-Client, the `jack` package) tells both:
- `cycle_seconds(at)`: the start of the JACK process cycle a moment fell in, in seconds on the frame clock: the
  transport's own clock. The ClockFollower measures the gaps between MIDI clocks on it: on a machine whose JACK
  cycles run late, arrival times show gaps the DAW never made, and a missing clock and a late one look
  alike by arrival time alone.
- `gone`: set by JACK's shutdown callback when the server stops or throws this client out.
- the ports in the graph and their connections, so that the bridge's ports can be found missing and
  their connections made again after they are reopened.

JACK-Client loads the system's libjack, another copy than the one python-rtmidi bundles, so this client's
life is independent of rtmidi's clients. Without JACK-Client or libjack the bridge runs as before, on
arrival times and without the server watch (`open_link` says so once).
"""
from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

FRAME_WRAP = 1 << 32     # jack_nframes_t wraps (about 25 h at 48 kHz)


class JackLink:
    """An active JACK client without ports. Raises OSError when no server answers."""

    def __init__(self, name: str, on_gone: Callable[[], None] = lambda: None):
        import jack

        try:
            self._client = jack.Client(name, no_start_server=True)
        except jack.JackOpenError as e:
            raise OSError(f"no JACK server answers ({e})") from e
        self.gone = threading.Event()
        self.reason = ""
        self._on_gone = on_gone
        self._client.set_shutdown_callback(self._shutdown)
        self._client.activate()
        self.samplerate = self._client.samplerate
        self._lock = threading.Lock()
        self._last_frame = self._client.last_frame_time
        self._wraps = 0

    def _shutdown(self, status, reason: str) -> None:   # on libjack's thread: no JACK call here
        self.reason = reason or "the JACK server went away"
        self.gone.set()
        self._on_gone()

    def cycle_seconds(self, at: float) -> float | None:
        """The start, in seconds on JACK's frame clock, of the process cycle during which the moment `at` (on
        time.monotonic: when the driver took a MIDI message) fell; None once the server is gone. That cycle's start
        is the message's time on the transport, exact to the cycle, where the moment itself carries the driver
        thread's lateness. The moment is placed against the frames since the current cycle began, read together
        with the time now: counted back by seconds alone, a cycle came out one too late whenever the read fell
        early in a cycle (at 256 frames a third of a clock interval: gaps of 1.6 intervals that were one)."""
        if self.gone.is_set():
            return None
        with self._lock:
            frame = self._client.last_frame_time
            since = (self._client.frame_time - frame) % FRAME_WRAP   # frames since that cycle began
            now = time.monotonic()
            if since > FRAME_WRAP // 2:   # the estimate a hair before the cycle's own start
                since = 0
            if frame < self._last_frame and self._last_frame - frame > FRAME_WRAP // 2:
                self._wraps += 1
            self._last_frame = frame
            period = self._client.blocksize
            cycles_ago = max(0, math.ceil(((now - at) * self.samplerate - since) / period))
            return (frame + self._wraps * FRAME_WRAP - cycles_ago * period) / self.samplerate

    def port_names(self) -> list[str]:
        return [p.name for p in self._client.get_ports(is_midi=True)]

    def connections(self, port: str) -> list[str]:
        return [p.name for p in self._client.get_all_connections(port)]

    def connect(self, source: str, destination: str) -> bool:
        """Connect two ports; False when either is missing or JACK refuses."""
        try:
            self._client.connect(source, destination)
        except Exception as e:   # jack.JackError, or a port that is not there (yet)
            log.debug("JACK connection %s -> %s not made: %s", source, destination, e)
            return False
        return True

    def close(self) -> None:
        try:
            self._client.deactivate(ignore_errors=True)
            self._client.close(ignore_errors=True)
        except Exception as e:   # the server is gone: nothing to tell it
            log.debug("closing the JACK link: %s", e)


def open_link(name: str, on_gone: Callable[[], None] = lambda: None) -> JackLink | None:
    """A JackLink, or None (said once in the log) where JACK-Client or the system's libjack is missing; OSError
    when no JACK server answers."""
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as e:
        log.warning("JACK-Client is not usable here (%s): MIDI clock gaps are measured on arrival times, and a "
                    "JACK server that goes away is not noticed", e)
        return None
    return JackLink(name, on_gone)
