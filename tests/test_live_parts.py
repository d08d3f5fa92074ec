"""Each live part built alone, with the few real parts it names (a real ClockFollower, LiveScore, SessionWorker on an
untrained micro model, a real Player whose port is a recorder), and no LiveBridge."""
import time

import torch

import mido
import pytest
from jack_fixtures import jack_server, live_checkpoint  # noqa: F401  (fixtures)
from test_live_stream import Recorder

from engine.music import Note, Phrase
from engine.session import Session
from muse_bridge.answers import Answers
from muse_bridge.audition import Audition
from muse_bridge.clock import ClockFollower
from muse_bridge.command_thread import CommandThread
from muse_bridge.commands import Command
from muse_bridge.context import LiveContext
from muse_bridge.echo import EchoGuard
from muse_bridge.filler import Filler
from muse_bridge.events import AnswerEnded, CandidatesReady, EventHub
from muse_bridge.live_score import LiveScore, LiveScoreConfig
from muse_bridge.midi_triggers import MidiTriggers
from muse_bridge.player import Player
from muse_bridge.port_pair import PortsInUse
from muse_bridge.setting_changes import SettingChanges
from muse_bridge.intake import Intake
from muse_bridge.ports import PortNotFoundError, PortSettings
from muse_bridge.status import StatusLine
from muse_bridge.settings import (DEFAULT_TRIGGERS, BridgeSettings, SettingsChange, SettingsError, SettingsInForce,
                                  read_settings)
from muse_bridge.suggester import Suggester
from muse_bridge.worker import SessionWorker

BAR_SECONDS = 2.0   # a 4/4 bar at 120 bpm


class Hand:
    """A controllable monotonic time for a ClockFollower."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def context_parts(live_checkpoint):
    hand = Hand()
    clock = ClockFollower(now=hand)
    worker = SessionWorker(Session(live_checkpoint.model, live_checkpoint.tokenizer)).start()
    context = LiveContext(LiveScore(live_checkpoint.tokenizer, LiveScoreConfig()), clock, worker)
    yield hand, clock, worker, context
    worker.stop()


def test_the_context_takes_notes_and_hands_exactly_its_final_tokens_to_the_worker(context_parts, live_checkpoint):
    hand, clock, worker, context = context_parts
    clock.ensure_running()
    start = clock.tick()
    played = context.played([(mido.Message("note_on", note=60, velocity=90), start + 10, hand.t)])
    assert played.struck and not played.released
    hand.t += 0.5
    assert context.played([(mido.Message("note_off", note=60), clock.tick(), hand.t)]).released
    assert context.sounding == 0 and context.bar_of(clock.tick()) == 0
    hand.t += BAR_SECONDS               # the bar is over: its tokens are final
    context.played()
    assert worker.wait_idle(10)
    with context.now() as now:
        assert worker.tokens_fed == len(now.committed) > 0 and now.tick == clock.tick()
    notes, _ = live_checkpoint.tokenizer.decode_last_bars(context.tokens(), 2, 480, (4, 4))
    assert [n.pitch for n in notes] == [60]
    assert context.timeline_tick_of_bar(0) == clock.bars.bar_line_at_or_before(start)
    tok = live_checkpoint.tokenizer
    context.join(tok.encode(Phrase([Note(72, 80, 0, 480)], 480, (4, 4), 120.0)))   # a bar accepted
    inserted = tok.count_bars(now.committed)
    assert context.timeline_tick_of_bar(inserted) is None                  # spliced in: never played on the timeline
    context.clear()
    assert context.tokens() == [] and not context.started


def test_intake_tells_triggers_from_music_once_and_never_lets_a_trigger_into_the_context(context_parts):
    hand, clock, worker, context = context_parts
    triggers = MidiTriggers(DEFAULT_TRIGGERS)
    claims, asked = [], []
    judge = triggers.claims
    triggers.claims = lambda message: claims.append(message) or judge(message)
    struck = []
    intake = Intake(clock, context, worker, triggers, EchoGuard(), on_struck=lambda: struck.append(1),
                    do=asked.append, tick=lambda: None, queue_size=64)
    intake.start()
    try:
        intake.on_midi(mido.Message("note_on", note=64, velocity=80), hand.t)
        intake.on_midi(mido.Message("control_change", control=20, value=127), hand.t)   # CC 20: Suggest
        hand.t += 0.25
        intake.on_midi(mido.Message("note_off", note=64), hand.t)
        assert intake.settle(10)
    finally:
        intake.stop()
    assert asked == [Command.SUGGEST] and struck == [1]
    assert len(claims) == 3                         # once per message, on the port's thread
    assert context.notes_seen == 1 and clock.running   # the first key started the internal clock


@pytest.fixture
def playing_parts(live_checkpoint, tmp_path):
    """The parts a Suggest uses, on the real time of an internal clock."""
    clock = ClockFollower()
    worker = SessionWorker(Session(live_checkpoint.model, live_checkpoint.tokenizer)).start()
    context = LiveContext(LiveScore(live_checkpoint.tokenizer, LiveScoreConfig()), clock, worker)
    recorder = Recorder(clock)
    player = Player(recorder.send, clock)
    settings = SettingsInForce(BridgeSettings().with_changes({"candidates": 2, "bars": 1, "seed": 3,
                                                              "sampling.max_tokens_per_bar": 24}))
    events, heard = EventHub(), []
    events.subscribe(heard.append)
    commands = CommandThread(events.tell)
    commands.start()
    audition = Audition(clock, player, context, events)
    suggester = Suggester(clock, context, worker, player, settings, events, live_checkpoint.tokenizer,
                          audition.show, commands.submit)
    clock.ensure_running()
    context.played([(mido.Message("note_on", note=n, velocity=80), clock.tick(), time.monotonic()) for n in (60, 64)])
    parts = dict(clock=clock, worker=worker, context=context, recorder=recorder, player=player, settings=settings,
                 events=events, heard=heard, commands=commands, audition=audition, suggester=suggester)
    yield parts
    player.close()
    commands.stop()
    worker.stop()


def status_line(p: dict) -> StatusLine:
    """The status read from the parts alone (an Intake and Answers that are never started, ports never opened)."""
    intake = Intake(p["clock"], p["context"], p["worker"], MidiTriggers({}), EchoGuard(), on_struck=lambda: None,
                    do=lambda command: None, tick=lambda: None, queue_size=8)
    answers = Answers(p["clock"], p["context"], p["player"], p["suggester"], p["settings"], p["events"],
                      lambda candidate, answer: None, p["commands"].submit)
    ports = PortsInUse(PortSettings(api="jack"), intake.on_midi, EchoGuard(), p["events"], on_lost=list)
    filler = Filler(p["clock"], p["context"], p["worker"], p["player"], p["settings"], p["events"],
                    p["worker"].session.tokenizer, p["audition"], on_replaced=lambda: None,
                    submit=p["commands"].submit)
    return StatusLine(p["clock"], p["context"], p["worker"], intake, p["suggester"], filler, p["audition"], answers,
                      p["player"], ports, p["events"])


def test_a_suggestion_is_made_played_from_the_next_bar_line_auditioned_and_accepted(playing_parts):
    p = playing_parts
    suggester, audition, player, clock = p["suggester"], p["audition"], p["player"], p["clock"]
    line = clock.next_bar_line()
    suggester.suggest()
    assert suggester.done.wait(60)
    assert len(audition.current.candidates) == 2 and any(isinstance(e, CandidatesReady) for e in p["heard"])
    assert player.playback.candidate is audition.current.candidates[0]
    assert player.playback.start_tick >= line and clock.bars.in_bar(player.playback.start_tick) == 0
    audition.step(+1)
    assert audition.index == 1 and player.playback.candidate is audition.current.candidates[1]
    status = status_line(p).now()
    assert (status.candidate, status.candidates, status.playing, status.activity) == (2, 2, True, "playing")
    assert status.bar == p["context"].bar_of(clock.tick()) + 1 >= 1 and status.clock == "internal"
    chosen = audition.current.candidates[1]
    audition.accept()
    context = p["context"].tokens()
    assert any(context[i:i + len(chosen.tokens)] == chosen.tokens for i in range(len(context)))
    player.stop()
    assert p["recorder"].sounding() == set()


def test_answers_stop_at_once_when_the_composer_plays(playing_parts):
    p = playing_parts
    suggester, player, clock = p["suggester"], p["player"], p["clock"]
    joined = []
    answers = Answers(clock, p["context"], player, suggester, p["settings"], p["events"],
                      lambda candidate, answer: joined.append(candidate), p["commands"].submit)
    suggester.suggest(target=clock.next_bar_line() + clock.bar_ticks, answer=True)
    assert suggester.done.wait(60) and player.playback is not None and player.playback.answer
    answers.composer_played()
    assert player.playback is None                                   # at once, on the thread that heard the note
    assert p["commands"].wait() and answers.cuts == 1                # and the command thread, which owns it, told
    assert AnswerEnded(cut=True) in p["heard"] and joined == []
    assert p["recorder"].sounding() == set()


def test_a_drag_of_fifty_values_is_checked_once_per_value_and_only_the_last_is_saved(live_checkpoint, tmp_path,
                                                                                      monkeypatch):
    settings = SettingsInForce(BridgeSettings())
    events = EventHub()
    commands = CommandThread(events.tell)
    commands.start()
    clock = ClockFollower()
    worker = SessionWorker(Session(live_checkpoint.model, live_checkpoint.tokenizer)).start()
    context = LiveContext(LiveScore(live_checkpoint.tokenizer, LiveScoreConfig()), clock, worker)
    player = Player(lambda message: True, clock)
    ports = PortsInUse(PortSettings(api="jack"), lambda *message: None, EchoGuard(), events, on_lost=list)
    applied = []
    changes = SettingChanges(settings, tmp_path / "settings.json", live_checkpoint, worker, context, ports, player,
                             events, commands.submit, lambda old, new: applied.append(new))
    checked = []
    check = BridgeSettings.with_changes
    monkeypatch.setattr(BridgeSettings, "with_changes", lambda self, values: checked.append(values) or check(self, values))
    try:
        values = [round(0.3 + i * 0.01, 2) for i in range(50)]
        for i, value in enumerate(values):
            changes.request(SettingsChange({"sampling.temperature": value}, persist=i == len(values) - 1))
        with pytest.raises(SettingsError, match="sampling.top_p"):
            changes.request(SettingsChange({"sampling.top_p": 3.0}))
        assert commands.wait(10)
    finally:
        player.close()
        commands.stop()
        worker.stop()
    assert len([c for c in checked if "sampling.temperature" in c]) == 50   # each value once, where it came in
    assert [s.sampling.temperature for s in applied] == values               # applied in order
    assert settings.value.sampling.temperature == values[-1]
    saved, _ = read_settings(tmp_path / "settings.json")
    assert saved.sampling.temperature == values[-1] and saved.sampling.top_p == BridgeSettings().sampling.top_p


def test_the_command_thread_runs_in_order_and_turns_a_failure_into_a_notice():
    told, ran = [], []
    commands = CommandThread(lambda text, error: told.append((text, error)))
    commands.start()
    try:
        commands.submit(lambda: ran.append(1), "first")
        commands.submit(lambda: int("x"), "broken")
        commands.submit(lambda: ran.append(2), "last")
        assert commands.wait(5)
    finally:
        commands.stop()
    assert ran == [1, 2] and told[0][1] and told[0][0].startswith("broken failed")


def test_the_event_hub_publishes_a_status_only_when_it_changed():
    statuses = iter([1, 1, 2])
    hub, heard = EventHub(status=lambda: next(statuses)), []
    hub.subscribe(heard.append)
    hub.publish_now()
    hub.publish_now()
    hub.tell("hello")
    assert [type(e).__name__ for e in heard] == ["StatusChanged", "Notice", "StatusChanged"]


def test_the_ports_in_use_go_back_to_the_old_ports_when_new_ones_cannot_be_opened(jack_server):
    events, heard, echo = EventHub(), [], EchoGuard()
    events.subscribe(heard.append)
    tag = f"{time.monotonic_ns() % 10**6}"
    ports = PortsInUse(PortSettings("jack", f"Parts In {tag}", f"Parts Out {tag}", client_name=f"parts-{tag}"),
                       lambda *message: None, echo, events, on_lost=list)
    ports.open()
    try:
        before = ports.state()
        assert ports.is_open and before.input_name.endswith(f"Parts In {tag}")
        with pytest.raises(PortNotFoundError, match="No Such Port"):
            ports.switch(PortSettings("jack", "No Such Port", "Muse Out", virtual=False))
        assert ports.is_open and ports.state() == before and heard[-1] == before
        note = mido.Message("note_on", note=60, velocity=71)
        assert ports.send(note) and echo.is_echo(note, time.monotonic())   # what was sent is known as ours
    finally:
        ports.close()
    assert not ports.is_open


def test_a_fill_plays_in_place_on_each_round_of_a_daw_loop_and_accepting_it_replaces_the_bars():
    from engine.model import RWKV7, config_for_size
    from engine.tokenizer import RemiTokenizer, TokenizerSettings

    torch.manual_seed(0)
    tok = RemiTokenizer(TokenizerSettings().with_fill_markers())
    hand = Hand()
    clock = ClockFollower(now=hand)
    worker = SessionWorker(Session(RWKV7(config_for_size("micro", tok.vocab_size)), tok)).start()
    context = LiveContext(LiveScore(tok, LiveScoreConfig()), clock, worker)
    sent = []
    player = Player(lambda m: sent.append((clock.passes.daw_tick(clock.position()), m)) or True, clock)
    settings = SettingsInForce(BridgeSettings().with_changes({"candidates": 2, "seed": 1,
                                                              "sampling.max_tokens_per_bar": 24}))
    events, heard, replaced = EventHub(), [], []
    events.subscribe(heard.append)
    audition = Audition(clock, player, context, events)
    commands = CommandThread(events.tell)
    commands.start()
    filler = Filler(clock, context, worker, player, settings, events, tok, audition,
                    on_replaced=lambda: replaced.append(1), submit=commands.submit)
    clock_ticks, bar = 20, 1920                                   # 480 per quarter: 20 ticks a MIDI clock

    def run_clocks(n: int) -> None:
        for _ in range(n):
            hand.t += 60 / (120 * 24)
            clock.on_message(mido.Message("clock"), hand.t)

    try:
        clock.on_message(mido.Message("start"), hand.t)
        for b in range(8):                                       # the DAW's bars 1-8, a chord in each
            run_clocks(1 if b == 0 else 0)
            context.played([(mido.Message("note_on", note=n + b, velocity=80), clock.tick(), hand.t) for n in (60, 64)])
            run_clocks(bar // clock_ticks // 2)
            context.played([(mido.Message("note_off", note=n + b), clock.tick(), hand.t) for n in (60, 64)])
            run_clocks(bar // clock_ticks // 2 - (1 if b == 0 else 0))
        run_clocks(2)
        context.played()
        assert context.closed_bars() >= 7
        with pytest.raises(ValueError, match="at most 4"):
            filler.fill(0, 5)
        filler.fill(4, 5)                                        # the DAW's bars 5-6
        assert filler.done.wait(60) and len(audition.current.candidates) == 2
        ready = [e for e in heard if isinstance(e, CandidatesReady)][-1]
        assert ready.fill == (4, 5) and player.playback is None   # bar 5 is behind: it waits for the loop
        clock.on_message(mido.Message("songpos", pos=0), hand.t)   # the loop: back to bar 1
        clock.on_message(mido.Message("continue"), hand.t)
        run_clocks(8 * bar // clock_ticks)
        ons = [(at, m.note) for at, m in sent if m.type == "note_on" and m.velocity]
        offs = [m.note for _, m in sent if m.type == "note_off" or (m.type == "note_on" and not m.velocity)]
        assert ons and all(4 * bar <= at < 6 * bar for at, _ in ons)     # only inside the DAW's bars 5-6
        assert all(at % clock_ticks == 0 for at, _ in ons)                # each on a clock of the grid
        assert sorted(offs) == sorted(n for _, n in ons)                   # every note-on has its note-off
        chosen = audition.current.candidates[0]
        audition.accept()
        assert replaced == [1] and worker.wait_idle(30)
        starts = tok.bar_starts(context.tokens())
        assert context.tokens()[starts[4]:starts[6]] == chosen.tokens
    finally:
        commands.stop()
        player.close()
        worker.stop()
