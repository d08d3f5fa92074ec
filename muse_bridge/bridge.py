"""LiveBridge: where the live parts are wired together, and the commands the front ends give.

Each part is built with the few parts it uses, and none of them knows the bridge (docs/design.md §2):

- clock.py: ClockFollower, the DAW's clock (or the internal one).
- context.py: LiveContext, the one owner of the live score and its lock; final tokens to the worker.
- worker.py: SessionWorker, the engine Session on a thread of its own.
- intake.py: Intake, MIDI in -> the context, the score thread.
- player.py: Player, a candidate on the output port, on the clock.
- port_pair.py: PortsInUse, the ports played on, switched, and the note-offs owed after a loss.
- suggester.py: Suggester, Suggest: candidate 1 streamed, candidates made in a pause, the rate.
- answers.py: Answers, call and response.
- audition.py: Audition, the candidates heard in turn, accepted, exported.
- filler.py: Filler, a range of the context's bars filled anew, auditioned in place, accepted in place.
- setting_changes.py: SettingChanges, settings changed while running, checked once, saved on request.
- command_thread.py: CommandThread, where commands run, in order.
- events.py: EventHub, what front ends hear; status.py: StatusLine.

Front ends use the protocol alone (muse_bridge/protocol.py): `send` a Command or a typed request with its
parameters (the panel, tray, hotkey, console, command socket and MIDI triggers), read `snapshot()`, and hear
the events they subscribed to. Requests run on the command thread, in order; a settings change is checked
where it is sent, so the sender hears at once of a value refused.
"""
from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from engine.checkpoint import Checkpoint
from engine.session import Session
from engine.state import State
from muse_bridge.answers import Answers
from muse_bridge.audition import Audition
from muse_bridge.clock import ClockFollower
from muse_bridge.command_thread import CommandThread
from muse_bridge.commands import Command
from muse_bridge.context import LiveContext
from muse_bridge.echo import EchoGuard
from muse_bridge.events import EventHub
from muse_bridge.filler import Filler
from muse_bridge.intake import Intake
from muse_bridge.live_score import LiveScore, LiveScoreConfig
from muse_bridge.midi_triggers import MidiTriggers
from muse_bridge.player import Player
from muse_bridge.port_pair import PortsInUse
from muse_bridge.protocol import (BridgeSnapshot, ChordsFromPlaying, DetectKey, ExportCandidate, FillBars,
                                  LearnTrigger, PlayCandidate, Request, Setting, ShowContext, change)
from muse_bridge.setting_changes import SettingChanges
from muse_bridge.settings import BridgeSettings, SettingsChange, SettingsInForce
from muse_bridge.status import StatusLine
from muse_bridge.suggester import Suggester
from muse_bridge.worker import SessionWorker

log = logging.getLogger(__name__)

__all__ = ["LiveBridge", "LiveStats"]


@dataclass(frozen=True)
class LiveStats:
    messages_in: int
    overflow: int
    callback_max_seconds: float
    notes_seen: int
    tokens_committed: int
    tokens_fed: int


def settle_heap() -> None:
    """Move what is alive now (the model, miditok, Qt, the imports) out of the garbage collector's reach, so that
    the live threads never wait on a collection of it: a full collection walks every object with the GIL held, about
    90 ms over the app's ~190,000 objects here, and MIDI input waited 101 ms (CI) and 247 ms (beside a test suite's
    heap), the notes its clock marked unplayed. Only cycles among these objects would be kept; what the live parts
    make later is collected as before."""
    gc.collect()
    gc.freeze()


class LiveBridge:
    """Open with `start()`, drive with `do` and the parts, end with `close()` (also sends the note-offs)."""

    def __init__(self, checkpoint: Checkpoint, settings: BridgeSettings = BridgeSettings(),
                 initial_state: State | None = None, settings_path: Path | None = None,
                 client_name: str | None = None):
        if client_name is not None:
            settings = replace(settings, ports=replace(settings.ports, client_name=client_name))
        self.settings = SettingsInForce(settings)
        self.checkpoint, self.tokenizer = checkpoint, checkpoint.tokenizer
        self.events = EventHub()
        self.commands = CommandThread(self.events.tell)
        submit = self.commands.submit
        self.clock = ClockFollower(settings.clock)
        self.score = LiveScore(self.tokenizer, LiveScoreConfig(settings.clock.ticks_per_beat,
                                                               tuple(settings.clock.time_signature)),
                               tempo_bpm=settings.clock.bpm)
        # --no-fast-step also keeps a GPU session off CUDA graphs (None: on them where there is CUDA)
        self.worker = SessionWorker(Session(checkpoint.model, self.tokenizer, initial_state,
                                            graph_steps=None if settings.fast_step else False))
        self.context = LiveContext(self.score, self.clock, self.worker)
        self.echo = EchoGuard()
        self.ports = PortsInUse(settings.ports, lambda *message: self.intake.on_midi(*message), self.echo,
                                self.events, on_lost=lambda: self.player.stop_for_lost_port())
        self.player = Player(self.ports.send, self.clock, settings.ports.output_channel,
                             on_cut=lambda pb: self.events.tell(f"generation fell behind: the candidate ended after "
                                                                f"its {pb.candidate.bars} complete bar(s)", error=True),
                             on_end=lambda pb: pb.answer and submit(lambda: self.answers.ended(pb), None))
        self.audition = Audition(self.clock, self.player, self.context, self.events)
        self.suggester = Suggester(self.clock, self.context, self.worker, self.player, self.settings, self.events,
                                   self.tokenizer, self.audition.show, submit)
        self.answers = Answers(self.clock, self.context, self.player, self.suggester, self.settings, self.events,
                               self.audition.join, submit)
        self.filler = Filler(self.clock, self.context, self.worker, self.player, self.settings, self.events,
                             self.tokenizer, self.audition, on_replaced=self.suggester.context_changed, submit=submit)
        self.changes = SettingChanges(self.settings, settings_path, checkpoint, self.worker, self.context,
                                      self.ports, self.player, self.events, submit, self._applied)
        self.triggers = MidiTriggers(settings.triggers, on_change=self.changes.triggers_learned)
        self.intake = Intake(self.clock, self.context, self.worker, self.triggers, self.echo,
                             on_struck=self._struck, do=self.do, tick=self._tick, queue_size=settings.ports.queue_size)
        self.status = StatusLine(self.clock, self.context, self.worker, self.intake, self.suggester, self.filler,
                                 self.audition, self.answers, self.player, self.ports, self.events)
        self.events.status = self.status.now
        self._echo_told = self._late_told = False
        self._owner_tick_queued = threading.Event()

    # ---- life cycle ---------------------------------------------------------------------

    def start(self, require_ports: bool = True) -> "LiveBridge":
        """Start the threads and open the ports. A port that cannot be opened raises, or with
        `require_ports=False` is reported (a Notice) and the bridge runs without it until ports are changed."""
        self.worker.start()
        self.worker.call(self.suggester.measure_rate)
        self.intake.start()
        self.commands.start()
        settle_heap()
        try:
            self.ports.open()
        except (OSError, ValueError) as e:
            if require_ports:
                self.close()
                raise
            self.events.tell(f"MIDI ports not open: {e}", error=True)
        else:
            pair = self.ports.pair
            log.info("listening on %r, playing on %r (%s)", pair.input_name, pair.output_name, pair.api)
            self.events.emit(self.ports.state())
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

    # ---- wiring -------------------------------------------------------------------------------

    def _tick(self) -> None:
        """Every tenth of a second (the score thread): the status, answers, and candidates made in a pause."""
        if self.intake.echoes and not self._echo_told:
            self._echo_told = True
            pair = self.ports.pair
            self.events.tell(f"echo loop: notes sent on {pair.output_name!r} come back on {pair.input_name!r}; they "
                             "are ignored (turn off the DAW track's monitoring of Muse Out, or route it elsewhere)",
                             error=True)
        if self.intake.late and not self._late_told:
            self._late_told = True
            self.events.tell(f"MIDI input handled late: a message waited {1000 * self.intake.latest:.0f} ms before "
                             "the bridge took it (a busy machine?); notes its clock marked late are not played",
                             error=True)
        self.events.publish_now()
        if not self._owner_tick_queued.is_set():   # never more than one waiting, however busy the thread is
            self._owner_tick_queued.set()
            self.commands.submit(self._owner_tick, None)

    def _owner_tick(self) -> None:
        """Every tenth of a second, on the command thread that owns them: answers, and candidates made in a pause."""
        self._owner_tick_queued.clear()
        self.answers.tick()
        self.suggester.maybe_precompute(self.intake.last_note_at)

    def _struck(self) -> None:
        """The composer struck a key (the MIDI thread): an answer stops, candidates made ahead no longer fit."""
        self.answers.composer_played()
        self.commands.submit(self.suggester.discard_prepared, None)

    def _applied(self, old: BridgeSettings, new: BridgeSettings) -> None:
        """A settings change took effect (the command thread)."""
        if new.answer.on != old.answer.on:
            self.answers.mode_changed(new.answer.on)
        if new.style != old.style:
            self.suggester.context_changed()

    # ---- commands ----------------------------------------------------------------------------

    def do(self, command: Command) -> None:
        """Queue a command; commands run in order on the command thread, and a failure becomes a Notice."""
        actions = {Command.SUGGEST: self.suggester.suggest, Command.NEXT: lambda: self.audition.step(+1),
                   Command.PREVIOUS: lambda: self.audition.step(-1), Command.ACCEPT: self.audition.accept,
                   Command.CLEAR: self.clear, Command.PANIC: self.panic, Command.EXPORT: self.audition.export,
                   Command.ANSWER: self.toggle_answers, Command.FILL: self.filler.fill_last,
                   Command.SAVE_PLAYED: self.filler.save_played}
        self.commands.submit(actions[command], command.value)

    def send(self, request: Request) -> None:
        """What a front end asks (muse_bridge/protocol.py): a Command or a request with its parameters, run on the
        command thread; a SettingsChange is checked here (SettingsError names a refused value) and applied in
        order with the rest."""
        if isinstance(request, Command):
            self.do(request)
        elif isinstance(request, SettingsChange):
            self.changes.request(request)
        elif isinstance(request, LearnTrigger):
            self.triggers.learn(request.command)
            self.events.tell(f"learn: move a control or press a key for {request.command.value}")
        else:
            actions = {PlayCandidate: (lambda r: self.audition.play(r.index), "play candidate"),
                       ExportCandidate: (lambda r: self.audition.export(r.path, r.index), "export"),
                       FillBars: (lambda r: self.filler.fill(r.first, r.last), "fill bars"),
                       ShowContext: (lambda r: self.filler.show_context(), "show the context"),
                       DetectKey: (lambda r: self.changes.key_from_playing(), "detect key"),
                       ChordsFromPlaying: (lambda r: self.changes.chords_from_playing(), "chords from playing")}
            action, what = actions[type(request)]
            self.commands.submit(lambda: action(request), what)

    def snapshot(self) -> BridgeSnapshot:
        """What the front ends read, all at one moment (any thread)."""
        return BridgeSnapshot(self.status.now(), self.settings.value, self.ports.state(), self.worker.device,
                              self.tokenizer.settings.controls, self.clock.bpm, self.events.message)

    def clear(self) -> None:
        """Forget the context (the style's initial state stays), stop making candidates and stop playing."""
        self.suggester.cancel()
        self.filler.cancel()
        self.player.stop()
        self.context.clear()
        self.audition.show(None)
        self.suggester.context_changed()
        self.events.tell("context cleared")

    def panic(self) -> None:
        """Stop making candidates and stop playing; note-offs and All Notes Off on every channel."""
        self.suggester.cancel()
        self.filler.cancel()
        self.player.panic()
        self.events.tell("panic: all notes off")

    def toggle_answers(self) -> None:
        """Answer mode on or off (saved): the bridge answers the composer's pauses."""
        wanted = self.changes.request(change({Setting.ANSWER_ON: not self.settings.value.answer.on}, persist=True))
        self.events.tell(f"answer mode on: a pause of {wanted.answer.after_beats} beats is answered"
                         if wanted.answer.on else "answer mode off")

    def stats(self) -> LiveStats:
        i = self.intake
        return LiveStats(i.messages_in, i.overflow, i.callback_max_seconds, self.context.notes_seen,
                         self.context.committed_tokens, self.worker.tokens_fed)
