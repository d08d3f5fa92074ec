"""Ardour in the loop: a headless Ardour 7 session, the bridge and a recorder on a JACK server of their own.

`ArdourRig` starts jackd (a server of its own, `muse-daw-<pid>`: a JACK server the user runs is never touched),
the bridge (`muse-bridge --headless`), Ardour's Lua session interpreter `ardour7-lua` with
bench/ardour_session.lua, and a composer's hands (`Hands`: a client that follows Ardour's MIDI clock and plays at
clock counts). It routes them
as a composer would:

    ardour:MIDI Clock out ──> Muse In, the hands, the recorder
    ardour:Phrase/midi_out ─> Muse In, the recorder          (the composer's phrase, played back by Ardour)
    hands:keys ─────────────> ardour:Phrase/midi_in         (the take that records that phrase)
    hands:triggers ─────────> Muse In, the recorder          (Suggest, Fill: buttons pressed during the song)
    Muse Out ───────────────> ardour:Muse/midi_in, the recorder (Ardour records the candidates)

`jack_midi_dump -a` records on one port, so every message has its JACK frame; Ardour reports the notes its Muse
track recorded on its own timeline; the bridge's log is kept. Every process it started is stopped by its id.

    with ArdourRig(workdir, period=256, bridge_args=["--time-signature", "3/4"]) as rig:
        rig.setup(bpm=97, meter=(3, 4))
        rig.take(phrase_events, clocks)              # Ardour records the phrase on its Phrase track
        recorded = rig.play(pass_script)             # one pass: Ardour rolls, the bridge answers
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.jackd import (JackUnavailable, connect_ports, jack_server, start_jackd, stop_jackd, stop_process, xruns,
                         wait_port)
from bench.x42_clock import parse_dump

log = logging.getLogger(__name__)

SERVER = f"muse-daw-{os.getpid()}"      # its own: two runs at once never share one
LUA = Path(__file__).with_name("ardour_session.lua")
CLOCK_OUT, PHRASE, MUSE = "ardour:MIDI Clock out", "Phrase", "Muse"
START, CONTINUE, STOP, CLOCK = 0xFA, 0xFB, 0xFC, 0xF8
LUA_SECONDS = 60.0        # one Lua call (building the session included) answers within this
JACK_HALTED = "JACK HALTED"   # Ardour's line when the server throws it out: it runs on, its ports gone


class ArdourUnavailable(RuntimeError):
    """Ardour's Lua interpreter, jackd or jack_midi_dump is not installed, or Ardour could not start."""


def tools_missing() -> str | None:
    """Why Ardour cannot run here (None when it can)."""
    missing = [t for t in ("ardour7-lua", "jackd", "jack_midi_dump") if shutil.which(t) is None]
    return (f"{', '.join(missing)} not installed (apt-get install -y --no-install-recommends ardour jackd2)"
            if missing else None)


class ArdourLua:
    """`ardour7-lua -i` with bench/ardour_session.lua loaded: `call(code)` runs one line of Lua and returns what it
    printed; a Lua error is an ArdourUnavailable naming the call."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(["stdbuf", "-oL", "ardour7-lua", "-i", str(LUA)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.halted: str | None = None   # what Ardour said when JACK threw it out (it runs on, without ports)
        threading.Thread(target=self._read, daemon=True, name="ardour-lua").start()
        self._calls = 0

    def _read(self) -> None:
        for line in self.process.stdout:
            self._log.write(line)
            self._log.flush()
            if JACK_HALTED in line:
                self.halted = line.strip()
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def call(self, code: str, timeout: float = LUA_SECONDS) -> list[str]:
        self._calls += 1
        marker = f"@@done {self._calls}"
        self.process.stdin.write(f'{code}; print("{marker}")\n')
        self.process.stdin.flush()
        said, deadline = [], time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise ArdourUnavailable(f"Ardour did not answer {code!r} within {timeout:.0f} s") from None
            if line is None:
                raise ArdourUnavailable(f"Ardour exited ({self.process.poll()}) during {code!r}: "
                                        f"{' | '.join(said[-5:])}")
            if line.startswith(">"):
                continue                                   # the interpreter's echo of what it was given
            if line == marker:
                return said
            if line.startswith("Error:"):
                raise ArdourUnavailable(f"Ardour's Lua failed on {code!r}: {line}")
            if JACK_HALTED in line:
                raise ArdourUnavailable(f"JACK threw Ardour out during {code!r}: {line}")
            said.append(line)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit()\n")
                self.process.stdin.flush()
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                stop_process(self.process)
        self._log.close()


@dataclass
class Hands:
    """The composer's hands and buttons: a JACK client that counts Ardour's clocks (every clock heard while the
    transport rolls, from 0 at the roll: a locate or a loop does not reset it) and sends, at each count, what is
    scheduled for it on its `keys` or `triggers` port."""

    name: str = "hands"
    schedule: dict[int, list[tuple[str, list[int]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import mido

        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
        # one rtmidi client a port: `port("keys")` is its JACK name
        self._outs = {port: backend.open_output(port, virtual=True, client_name=f"{self.name}-{port}")
                      for port in ("keys", "triggers")}
        self._count, self._rolling = -1, False
        self._heard = threading.Condition()
        self._in = backend.open_input("clock", virtual=True, client_name=f"{self.name}-clock", callback=self._hear)

    def port(self, name: str) -> str:
        return f"{self.name}-{name}:{name}"

    def _hear(self, message) -> None:
        import mido

        if message.type in ("start", "continue"):
            self._rolling = True
        elif message.type == "stop":
            self._rolling = False
        elif message.type == "clock" and self._rolling:
            with self._heard:
                self._count += 1
                count = self._count
                self._heard.notify_all()
            for port, data in self.schedule.get(count, ()):
                self._outs[port].send(mido.Message.from_bytes(data))

    def begin(self, schedule: dict[int, list[tuple[str, list[int]]]]) -> None:
        """A new pass: the count starts again at the next roll."""
        with self._heard:
            self.schedule, self._count = schedule, -1

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._heard:
            return self._heard.wait_for(lambda: self._count >= count, timeout)

    @property
    def count(self) -> int:
        return self._count

    def close(self) -> None:
        import mido

        for out in self._outs.values():
            for channel in range(16):   # nothing of ours left sounding in Ardour or the bridge
                out.send(mido.Message("control_change", channel=channel, control=123, value=0))
            out.close()
        self._in.close()


@dataclass
class PassRecord:
    """One pass: the recording at JACK frames, Ardour's Muse track on its timeline, the bridge's log meanwhile."""

    messages: list[tuple[int, list[int]]]
    ardour_notes: list[tuple[int, int, int, int]]     # (on sample, off sample, pitch, velocity) on Ardour's timeline
    log_text: str
    samplerate: int
    period: int
    first_roll_sample: int = 0
    xruns: list[str] = field(default_factory=list)    # clients JACK reported late for a cycle during the pass


class ArdourRig:
    """jackd, the bridge, Ardour and the hands, routed (see the module's doc); a context manager."""

    def __init__(self, workdir: Path, period: int = 256, realtime: bool = True, bridge_args: list[str] = (),
                 checkpoint: Path | None = None):
        import jack

        why = tools_missing()
        if why:
            raise ArdourUnavailable(why)
        self.workdir, self.period = workdir, period
        workdir.mkdir(parents=True, exist_ok=True)
        root = str(Path(__file__).resolve().parent.parent)
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=SERVER, JACK_NO_AUDIO_RESERVATION="1",
                        MUSE_BRIDGE_SOCKET=str(workdir / "muse.sock"),
                        PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self._processes: list[subprocess.Popen] = []
        self._files = []
        # a long client timeout: Ardour building its session must not be thrown out of the graph
        self._jackd = start_jackd(period=period, realtime=realtime, server=SERVER, client_timeout_ms=10_000)
        self.patchbay = jack.Client("daw-patchbay", no_start_server=True, servername=SERVER)
        self.samplerate = self.patchbay.samplerate
        command = [sys.executable, "-m", "ui", "--headless", "--midi-api", "jack", "-v", "--song-position", "clocks",
                   "--settings", str(workdir / "settings.toml"), *bridge_args]
        if checkpoint is not None:
            command += ["--checkpoint", str(checkpoint)]
        self.bridge_log = workdir / "bridge.log"
        # in the work folder: what it saves (muse-bridge --command save-played) lands there
        self.bridge = self._spawn(command, "bridge.log", cwd=workdir)
        with jack_server(SERVER):   # rtmidi's clients find their server only in the environment
            self.hands = Hands()
        self.lua = ArdourLua(self.env, workdir / "ardour.log")
        self._processes.append(self.lua.process)
        self.muse_in = self._port(":Muse In", is_input=True)
        self.muse_out = self._port(":Muse Out", is_output=True)
        self._dump: subprocess.Popen | None = None

    # ---- processes and ports ----------------------------------------------------------------------------

    def _spawn(self, command: list[str], log_name: str, cwd: Path | None = None) -> subprocess.Popen:
        out = open(self.workdir / log_name, "w")
        self._files.append(out)
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   env=self.env, cwd=cwd)
        self._processes.append(process)
        return process

    def _port(self, suffix: str, **kind) -> str:
        def gone() -> str | None:
            if self.bridge.poll() is not None:
                return f"the bridge exited: {self.bridge_log.read_text()[-1500:]}"
            if self.lua.halted:   # its ports will never come: a new session at once, not after a minute
                return f"JACK threw Ardour out: {self.lua.halted}"
            return None
        try:
            return wait_port(self.patchbay, suffix, gone=gone, **kind)
        except JackUnavailable as e:
            raise ArdourUnavailable(str(e)) from e

    def connect(self, source: str, destination: str) -> None:
        if destination not in [p.name for p in self.patchbay.get_all_connections(source)]:
            connect_ports(self.patchbay, source, destination)

    def disconnect(self, source: str, destination: str) -> None:
        if destination in [p.name for p in self.patchbay.get_all_connections(source)]:
            self.patchbay.disconnect(source, destination)

    def close(self) -> None:
        self.hands.close()
        self.patchbay.close()
        self.lua.close()
        for process in reversed(self._processes):
            stop_process(process, timeout=20)
        stop_jackd(self._jackd)                     # the server after every client of it
        for f in self._files:
            f.close()

    def __enter__(self) -> ArdourRig:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the session ------------------------------------------------------------------------------------

    def setup(self, bpm: float, meter: tuple[int, int], tempo_changes: list[tuple[float, float]] = (),
              loop: tuple[float, float] | None = None) -> None:
        """A new session: the tempo map, the Phrase and Muse tracks, the loop range (quarter notes), MIDI clock
        out, everything routed."""
        folder = self.workdir / "session"
        self.lua.call(f'muse_open("{folder}", "session", {self.samplerate})')
        self.lua.call(f"muse_tempo({bpm}, {meter[0]}, {meter[1]})")
        for quarters, new_bpm in tempo_changes:
            self.lua.call(f"muse_tempo_at({quarters}, {new_bpm})")
        for track in (PHRASE, MUSE):
            self.lua.call(f'muse_track("{track}")')
        if loop is not None:
            self._add_loop_range(folder, loop)
        phrase_out = self._port(f"ardour:{PHRASE}/midi_out 1", is_output=True)
        for source, destination in [(CLOCK_OUT, self.muse_in), (CLOCK_OUT, self.hands.port("clock")),
                                    (self.hands.port("triggers"), self.muse_in),
                                    (self.muse_out, f"ardour:{MUSE}/midi_in 1"), (phrase_out, self.muse_in)]:
            self.connect(source, destination)

    def _add_loop_range(self, folder: Path, loop: tuple[float, float], tries: int = 3) -> None:
        """Lua cannot make a loop range: it goes into the saved session, which a new interpreter loads."""
        first, last = self.lua.call(f"muse_loop_range({loop[0]}, {loop[1]})")[-1].split()[1:]
        self.lua.call("muse_save_and_close()")
        self.lua.close()
        state = folder / "session.ardour"
        state.write_text(state.read_text().replace("<Locations/>", (
            f'<Locations><Location id="900001" name="Loop" start="{first}" end="{last}" '
            'flags="IsAutoLoop,IsHidden" locked="0" timestamp="0" cue="0"/></Locations>'), 1))
        for attempt in range(tries):
            self._processes.remove(self.lua.process)
            self.lua = ArdourLua(self.env, self.workdir / f"ardour-{attempt + 2}.log")
            self._processes.append(self.lua.process)
            try:
                self.lua.call(f'muse_load("{folder}", "session")')
                return
            except ArdourUnavailable as e:   # Ardour 7.3 crashes loading a session now and then
                log.warning("Ardour failed to load its session (try %d of %d): %s", attempt + 1, tries, e)
                self.lua.close()
        raise ArdourUnavailable(f"Ardour could not load the session with its loop range in {tries} tries")

    def take(self, events: dict[int, list[list[int]]], clocks: int) -> None:
        """Ardour records `events` (clock count -> messages, played by the hands) on its Phrase track, from the top."""
        self.connect(self.hands.port("keys"), f"ardour:{PHRASE}/midi_in 1")
        self.hands.begin({c: [("keys", d) for d in data] for c, data in events.items()})
        self.lua.call(f'muse_arm("{PHRASE}", true); muse_locate(0, false)')
        time.sleep(0.3)
        self.lua.call("muse_record(true); muse_roll()")
        self.hands.wait_for(clocks, timeout=clocks * 0.2 + 10)
        self.lua.call(f'muse_stop(); muse_record(false); muse_arm("{PHRASE}", false)')
        self.disconnect(self.hands.port("keys"), f"ardour:{PHRASE}/midi_in 1")
        time.sleep(0.5)

    def notes(self, track: str) -> list[tuple[int, int, int, int]]:
        """The notes of `track`'s regions on Ardour's timeline: (on sample, off sample, pitch, velocity)."""
        return sorted(tuple(int(v) for v in line.split()[1:5]) for line in self.lua.call(f'muse_notes("{track}")')
                      if line.startswith("NOTE"))

    def save_played(self, timeout: float = 20.0) -> Path:
        """What the bridge played into its context, as it saves it for a composer (`--command save-played`)."""
        from muse_bridge.command_socket import send_command

        path = self.workdir / "muse_played.mid"
        path.unlink(missing_ok=True)
        send_command("save-played", self.workdir / "muse.sock")
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise ArdourUnavailable(f"the bridge did not save what was played within {timeout:.0f} s")
            time.sleep(0.05)
        time.sleep(0.2)                           # written whole
        return path

    def lua_at(self, count: int, code: str, timeout: float) -> None:
        """Run `code` in Ardour once the hands have counted `count` clocks of this pass."""
        if not self.hands.wait_for(count, timeout):
            raise ArdourUnavailable(f"Ardour's clock did not reach {count} (at {self.hands.count}) for {code!r}")
        self.lua.call(code)

    def play(self, triggers: dict[int, list[list[int]]], actions: list[tuple[int, str]], clocks: int,
             loop: bool = False, tail: float = 1.0) -> PassRecord:
        """One pass from the top: Ardour rolls and records the Muse track, the hands press `triggers` (clock count ->
        messages), Ardour runs each action (clock count, Lua) as its count comes, and stops after `clocks` clocks;
        `loop`: Ardour plays its loop range over and over."""
        from muse_bridge.command_socket import send_command

        send_command("clear", self.workdir / "muse.sock")
        self.lua.call(f'muse_unloop(); muse_stop(); muse_clear("{MUSE}"); muse_arm("{MUSE}", true); '
                      "muse_locate(0, false)")
        time.sleep(0.3)
        offset = self.bridge_log.stat().st_size
        _, since = xruns(self._jackd)
        dump_file = self.workdir / f"dump-{time.time_ns()}.txt"
        with open(dump_file, "w") as out:
            dump = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", "-a", "daw-dump"], stdout=out,
                                    stderr=subprocess.DEVNULL, env=self.env)
        try:
            dump_in = self._port("daw-dump:input", is_input=True)
            for source in (CLOCK_OUT, self.muse_out, f"ardour:{PHRASE}/midi_out 1", self.hands.port("triggers")):
                self.connect(source, dump_in)
            self.hands.begin({c: [("triggers", d) for d in data] for c, data in triggers.items()})
            self.lua.call("muse_record(true); " + ("muse_loop()" if loop else "muse_roll()"))
            seconds_per_clock = 2.5 / 24       # 24 bpm: any tempo a scenario uses is faster
            for count, code in sorted(actions):   # Ardour stops recording at a locate or Stop: armed again
                self.lua_at(count, f"{code}; muse_record(true)", timeout=count * seconds_per_clock + 10)
            self.hands.wait_for(clocks, timeout=clocks * seconds_per_clock + 10)
            # stopped before the loop is left: leaving a loop while recording dropped the take
            self.lua.call(f'muse_stop(); muse_pause(0.5); muse_unloop(); muse_record(false); muse_arm("{MUSE}", false)')
            time.sleep(tail)
        finally:
            stop_process(dump)
        with open(self.bridge_log) as f:
            f.seek(offset)
            log_text = f.read()
        return PassRecord(parse_dump(dump_file.read_text().splitlines()), self.notes(MUSE), log_text, self.samplerate,
                          self.period, xruns=xruns(self._jackd, since)[0])
