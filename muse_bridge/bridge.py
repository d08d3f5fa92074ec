"""LiveBridge: the facade front ends and tests call. It owns the parts and wires them; each job lives in its module.

- intake.py: MIDI in -> the live score -> final tokens to the session worker (the port's callback never
  waits; a bounded queue; the score thread).
- suggestions.py: Suggest, candidate 1 streamed to the Player, candidates made in a pause, the rate.
- answers.py: call and response: the answer to a pause, cut off when the composer plays.
- echo.py: the notes that come back from the output port, told apart from the composer's.
- live_settings.py: settings changed at run time, ports and style switched, saved on request.
- events.py: the events told to front ends, through `subscribe`.
- audition.py: the candidates of a suggestion heard in turn, accepted, exported.
- commands.py: the commands (suggest, next, previous, accept, clear, panic, export, answer) from MIDI triggers,
  the console, the tray and the command channel come through `do` and run in order on one thread.
- status.py: the status line.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import mido

from engine.checkpoint import Checkpoint
from engine.keys import Key
from engine.session import Session, Suggestion
from engine.state import State
from muse_bridge.answers import Answers
from muse_bridge.audition import Audition
from muse_bridge.clock import ClockFollower
from muse_bridge.commands import CommandQueue
from muse_bridge.controller import Command, MidiTriggers
from muse_bridge.echo import EchoGuard
from muse_bridge.events import BridgeEvent, BridgeStatus, EventHub, Listener, PortsChanged
from muse_bridge.intake import Intake, LiveStats
from muse_bridge.live_score import LiveScore, LiveScoreConfig
from muse_bridge.live_settings import LiveSettings
from muse_bridge.player import Player
from muse_bridge.ports import BridgePorts
from muse_bridge.settings import BridgeSettings
from muse_bridge.status import status_of
from muse_bridge.suggestions import Suggestions
from muse_bridge.worker import FeedTiming, SessionWorker

log = logging.getLogger(__name__)

__all__ = ["LiveBridge", "LiveStats"]


class LiveBridge:
    """Open with `start()`, drive with the command methods, end with `close()` (also sends the note-offs)."""

    def __init__(self, checkpoint: Checkpoint, settings: BridgeSettings = BridgeSettings(),
                 initial_state: State | None = None, settings_path: Path | None = None,
                 client_name: str | None = None):
        if client_name is not None:
            settings = replace(settings, ports=replace(settings.ports, client_name=client_name))
        self.settings, self.settings_path = settings, settings_path
        self.checkpoint, self.tokenizer = checkpoint, checkpoint.tokenizer
        self.clock = ClockFollower(settings.clock)
        self.score = LiveScore(self.tokenizer, LiveScoreConfig(settings.clock.ticks_per_beat,
                                                               tuple(settings.clock.time_signature)),
                               tempo_bpm=settings.clock.bpm)
        self.score_lock = threading.RLock()   # the LiveScore, and what is handed to the worker with it
        # --no-fast-step also keeps a GPU session off CUDA graphs (None: on them where there is CUDA)
        self.worker = SessionWorker(Session(checkpoint.model, self.tokenizer, initial_state,
                                            graph_steps=None if settings.fast_step else False))
        self.events = EventHub()
        self.echo = EchoGuard()
        self.intake = Intake(self, settings.ports.queue_size)
        self.suggestions = Suggestions(self)
        self.answers = Answers(self)
        self.audition = Audition(self)
        self._echo_told = False
        self._hanging: set[int] = set()      # pitches sounding when the output port was lost
        self.live_settings = LiveSettings(self, settings_path)
        self.triggers = MidiTriggers(settings.triggers, on_change=self.live_settings.save_triggers)
        self.ports = BridgePorts(settings.ports, self.intake.on_midi, on_change=self.port_lost_or_back)
        self.player = Player(self._send, self.clock, settings.ports.output_channel,
                             on_cut=lambda pb: self.tell(f"generation fell behind: the candidate ended after "
                                                         f"its {pb.candidate.bars} complete bar(s)", error=True),
                             on_end=lambda pb: pb.answer and self.submit(lambda: self.answers.ended(pb), "answer"))
        self.commands = CommandQueue(self.tell)

    # ---- life cycle ---------------------------------------------------------------------

    def start(self, require_ports: bool = True) -> "LiveBridge":
        """Start the threads and open the ports. A port that cannot be opened raises, or with
        `require_ports=False` is reported (a Notice) and the bridge runs without it until ports are changed."""
        self.worker.start()
        self.worker.call(self.suggestions.measure_rate)
        self.intake.start()
        self.commands.start()
        try:
            self.ports.open()
        except (OSError, ValueError) as e:
            if require_ports:
                self.close()
                raise
            self.tell(f"MIDI ports not open: {e}", error=True)
        else:
            log.info("listening on %r, playing on %r (%s)", self.ports.input_name, self.ports.output_name,
                     self.ports.api)
            self.ports_changed()
        return self

    def close(self) -> None:
        """Note-offs for everything playing, then ports and threads down."""
        self.player.close()
        self.intake.stop()
        self.commands.stop()
        self.ports.close()
        self.worker.stop()

    def __enter__(self) -> "LiveBridge":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _send(self, message) -> bool:
        self.echo.sent(message)
        return self.ports.send(message)

    def tick(self) -> None:
        """Every tenth of a second (the score thread): the status, answers, and candidates made in a pause."""
        if self.intake.echoes and not self._echo_told:
            self._echo_told = True
            self.tell(f"echo loop: notes sent on {self.ports.output_name!r} come back on {self.ports.input_name!r}; "
                      "they are ignored (turn off the DAW track's monitoring of Muse Out, or route it elsewhere)",
                      error=True)
        self.publish_status()
        self.answers.tick()
        self.suggestions.maybe_precompute(self.intake.last_note_at)

    def settle(self, timeout: float) -> bool:
        """Wait until every message received so far, and the time up to now, have reached the score, and the
        tokens final by then the Session (tests, benchmarks); False after `timeout` seconds."""
        return self.intake.settle(timeout)

    # ---- commands ----------------------------------------------------------------------------

    def do(self, command: Command | str) -> None:
        """Queue a command by name (MIDI triggers, console keys, tray, command channel); commands run in
        order on the command thread, and a failure becomes a Notice."""
        command = Command(command)
        actions = {Command.SUGGEST: self.suggest, Command.NEXT: self.next, Command.PREVIOUS: self.previous,
                   Command.ACCEPT: self.accept, Command.CLEAR: self.clear, Command.PANIC: self.panic,
                   Command.EXPORT: self.export, Command.ANSWER: self.toggle_answers}
        self.submit(actions[command], command.value)

    def submit(self, action: Callable[[], Any], what: str) -> None:
        """Run `action()` on the command thread after the commands queued before it."""
        self.commands.submit(action, what)

    def wait_commands(self, timeout: float = 10.0) -> bool:
        """Block until the commands queued so far have run (tests, scripts); False on timeout."""
        return self.commands.wait(timeout)

    def suggest(self, seed: int | None = None) -> None:
        """K candidates of N bars from the next bar line. Candidate 1 is streamed to the Player bar by bar, so
        it starts as soon as its first bar exists; a suggestion still being made is replaced (it stops at a
        bar line)."""
        self.suggestions.suggest(seed)

    @property
    def suggestion(self) -> Suggestion | None:
        """The suggestion being auditioned."""
        return self.audition.current

    @property
    def index(self) -> int:
        return self.audition.index

    def play(self, index: int) -> None:
        """Audition candidate `index` (0-based) of the current suggestion from the next bar line."""
        self.audition.play(index)

    def next(self) -> None:
        """Play the next candidate from the next bar line."""
        self.audition.step(+1)

    def previous(self) -> None:
        self.audition.step(-1)

    def accept(self) -> None:
        """The candidate being auditioned joins the context, before the next bar line committed."""
        self.audition.accept()

    def export(self, path: Path | None = None, index: int | None = None) -> Path:
        """Write candidate `index` (default: the one being auditioned) as a .mid file of exactly its bars."""
        return self.audition.export(path, index)

    def clear(self) -> None:
        """Forget the context (the style's initial state stays) and stop playing."""
        self.player.stop()
        with self.score_lock:
            self.score.reset()
            self.worker.reset()
            self.audition.show(None)
            self.suggestions.context_changed()
        self.tell("context cleared")

    def panic(self) -> None:
        """Stop playing; note-offs and All Notes Off on every channel."""
        self.player.panic()
        self.tell("panic: all notes off")

    def toggle_answers(self) -> None:
        """Answer mode on or off (saved): the bridge answers the composer's pauses."""
        wanted = self.update({"answer.on": not self.settings.answer.on}, persist=True)
        self.tell(f"answer mode on: a pause of {wanted.answer.after_beats} beats is answered" if wanted.answer.on
                  else "answer mode off")

    def learn(self, command: Command | str) -> None:
        """Bind the next control or key that arrives to `command` (saved in the settings file)."""
        self.triggers.learn(command)

    # ---- settings ------------------------------------------------------------------------------

    def detect_key(self) -> Key:
        """Estimate the key of the context's last bars and lock sampling to it."""
        return self.live_settings.key_from_playing()

    def chords_from_playing(self) -> tuple[str, ...]:
        """Name the chords of the context's last `bars` bars (one a bar) and steer the suggestions with them."""
        return self.live_settings.chords_from_playing()

    @property
    def has_controls(self) -> bool:
        """Whether the model has bar controls (density, polyphony, chords)."""
        return self.tokenizer.settings.controls

    def update(self, changes: dict[str, Any], persist: bool = False) -> BridgeSettings:
        """Change settings at run time ({"sampling.temperature": 0.8, "bars": 4, "style": PATH}), checked here
        (SettingsError), applied in order (muse_bridge/live_settings.py); `persist` saves them."""
        return self.live_settings.update(changes, persist)

    @property
    def ports_open(self) -> bool:
        return self.ports.input is not None and self.ports.output is not None

    def use_fast_step(self, fast_step) -> None:
        """Decode on `fast_step` (engine.fast_step.FastStep; None: the model's own step) from the next job on."""
        self.worker.call(lambda session: setattr(session, "fast_step", fast_step))

    @property
    def device(self) -> str:
        """Where the model runs."""
        return self.worker.device

    @property
    def bpm(self) -> float:
        """The tempo followed now (the DAW's clock, or the setting without one)."""
        return self.clock.bpm

    def next_bar_line(self) -> tuple[int, float]:
        """The timeline's next bar line (the tick a Suggest now would start at) and the seconds until it."""
        line = self.clock.next_bar_line()
        return line, self.clock.seconds_until(line)

    def seconds_per_bar(self) -> float:
        """A bar's length in seconds at the tempo followed now."""
        return self.clock.seconds_between(0, self.clock.bars.bar_ticks())

    def playing(self) -> tuple[int, bool] | None:
        """What the Player plays: its first bar line's tick and whether generation fell behind and cut it
        (None when nothing plays)."""
        playback = self.player.playback
        return (playback.start_tick, playback.cut) if playback is not None else None

    def wait_idle(self, timeout: float) -> bool:
        """Block until the model has done every job given so far (the start-up rate measurement among them)."""
        return self.worker.wait_idle(timeout)

    def feed_timings(self) -> list[FeedTiming]:
        """Where the time went for the latest notes, from the input port to the state (bench.live)."""
        return list(self.worker.feed_timings)

    # ---- reporting ---------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every event from now on (on the bridge's threads); returns the unsubscribe."""
        return self.events.subscribe(listener)

    def emit(self, event: BridgeEvent) -> None:
        self.events.emit(event)

    def tell(self, text: str, error: bool = False) -> None:
        """Say something worth telling (a Notice, and the status's message)."""
        self.events.tell(text, error)
        self.publish_status()

    @property
    def message(self) -> str:
        """The last thing told."""
        return self.events.message

    def publish_status(self) -> None:
        self.events.publish(self.status())

    def port_state(self) -> PortsChanged:
        """Which ports are open now (None for one that is not)."""
        p = self.ports
        return PortsChanged(p.api, p.input.name if p.input else None, p.output.name if p.output else None, p.virtual)

    def ports_changed(self) -> None:
        self.emit(self.port_state())

    def port_lost_or_back(self, text: str, lost: bool) -> None:
        """A port (or the JACK server) went away or came back (the port watcher's thread). Lost: playback stops,
        and the notes it left sounding are remembered; back: they get their note-offs, so none hangs on the DAW."""
        if lost:
            self._hanging |= set(self.player.sounding)
            self.player.stop()
        elif self._hanging:   # sent again as each connection is made again; kept until all are
            for pitch in sorted(self._hanging):
                self._send(mido.Message("note_off", channel=self.settings.ports.output_channel, note=pitch))
            if not self.ports.restoring:
                self._hanging.clear()
        self.tell(text, error=lost)
        self.ports_changed()

    def status(self) -> BridgeStatus:
        return status_of(self)

    def stats(self) -> LiveStats:
        i = self.intake
        return LiveStats(i.messages_in, i.overflow, i.callback_max_seconds, self.score.notes_seen,
                         len(self.score.committed), self.worker.tokens_fed)
