"""Call and response over a real JACK loopback: the bridge answers the composer's pause from the next bar
line, once; the composer playing cuts the answer off with nothing left sounding; an echo loop does not."""
from __future__ import annotations

import argparse
import os
import time

import mido
import pytest

from jack_fixtures import Daw, hanging, is_on, jack_server, live_checkpoint, wait_connected  # noqa: F401  (fixtures)
from muse_bridge.settings import AnswerSettings, SettingsChange
from muse_bridge.bridge import LiveBridge
from muse_bridge.echo import EchoGuard
from muse_bridge.events import AnswerEnded, CandidatesReady, Notice
from muse_bridge.live_score import LiveScore
from muse_bridge.settings import BridgeSettings, SettingsError
from ui.options import add_live_arguments, launch_options
from engine.tokenizer import RemiTokenizer

BPM = 240.0                  # a bar a second: the tests wait bars
CLOCKS_PER_BAR = 96
TICKS_PER_CLOCK = 20


def note(daw: Daw, clock: int, pitch: int, length: int = 12) -> None:
    daw.at(clock, mido.Message("note_on", note=pitch, velocity=90))
    daw.at(clock + length, mido.Message("note_off", note=pitch, velocity=0))


def bridge_notes(daw: Daw, after_clock: int = -1) -> list[tuple[int, mido.Message]]:
    return [(c, m) for c, m in daw.notes() if c >= after_clock]


@pytest.fixture
def answering(jack_server, live_checkpoint, tmp_path):
    tag = f"{os.getpid()}-{time.monotonic_ns() % 10**6}"
    settings = BridgeSettings().with_changes({
        "ports.api": "jack", "ports.input_name": f"Muse In {tag}", "ports.output_name": f"Muse Out {tag}",
        "candidates": 2, "bars": 1, "sampling.max_tokens_per_bar": 24, "seed": 1, "clock.bpm": BPM,
        "answer.on": True, "answer.after_beats": 2})
    b = LiveBridge(live_checkpoint, settings, settings_path=tmp_path / "settings.json", client_name=f"muse-{tag}")
    events = []
    b.events.subscribe(events.append)
    b.start()
    b.test_events = events
    d = Daw(settings.ports.input_name, settings.ports.output_name, bpm=BPM)
    wait_connected(d.out, b)
    yield b, d
    d.close()
    b.close()


def test_an_answer_comes_after_a_pause_once_and_never_while_the_composer_plays(answering):
    bridge, daw = answering
    # bars 0-2: the composer plays, never silent for 2 beats; the last release at clock 3 * 96 + 12
    for k in range(12):
        note(daw, k * 24, 60 + k % 5)
    last_off = 11 * 24 + 12
    line = 4 * CLOCKS_PER_BAR           # the first bar line at least 2 beats (48 clocks) after it: bar 4
    daw.play()
    daw.wait_clock(line + 3 * CLOCKS_PER_BAR)
    notes = bridge_notes(daw)
    assert notes, "no answer came"
    assert all(c >= line - 1 for c, m in notes if is_on(m)), "the bridge played before the pause was long enough"
    assert all(c < line + CLOCKS_PER_BAR for c, m in notes if is_on(m)), "answered more than once (or too long)"
    assert bridge.answers.line == line * TICKS_PER_CLOCK
    assert last_off + 48 <= line
    assert hanging(notes) == {}


def test_no_answer_while_the_transport_is_stopped(answering):
    bridge, daw = answering
    note(daw, 0, 60)
    note(daw, 24, 64)
    daw.at(48, mido.Message("stop"))    # the DAW stops; its clock goes on (many DAWs send it stopped)
    daw.play()
    daw.wait_clock(4 * CLOCKS_PER_BAR)
    assert not any(is_on(m) for _, m in bridge_notes(daw))
    assert not bridge.clock.transport_running


def wait_answer_note(bridge, daw, timeout: float = 20) -> float:
    """Wait for the answer's first note-on to arrive at the DAW; returns the clock it came at."""
    deadline = time.monotonic() + timeout
    while True:
        ons = [c for c, m in daw.notes() if is_on(m)]
        if ons:
            return ons[0]
        assert time.monotonic() < deadline, f"no answer note came: {bridge.events.message}"
        time.sleep(0.002)


def test_a_note_on_cuts_the_answer_off_within_10_ms_and_nothing_is_left_sounding(answering):
    bridge, daw = answering
    bridge.changes.request(SettingsChange({"bars": 4}))
    arrived: list[tuple[float, mido.Message]] = []
    record = daw._record
    daw.inp._callback = lambda m, when, *_: (arrived.append((when, m)), record(m, when))
    note(daw, 0, 60)
    note(daw, 24, 64)
    daw.play()
    wait_answer_note(bridge, daw)
    time.sleep(0.01)
    sounding = {m.note for _, m in arrived if is_on(m)} - {m.note for _, m in arrived if not is_on(m)}
    sent = time.monotonic()
    daw.out.send(mido.Message("note_on", note=72, velocity=80))   # the composer plays again
    time.sleep(0.5)
    after = [(when, m) for when, m in arrived if when >= sent]
    offs = {m.note: when for when, m in after if not is_on(m)}
    assert sounding <= set(offs), f"notes left sounding after the cut: {sounding - set(offs)}"
    if sounding:
        assert max(offs[p] for p in sounding) - sent < 0.010 + 0.010, "the cut took longer than 10 ms (and slack)"
    assert not any(is_on(m) for _, m in after), "the answer went on after the composer played"
    assert hanging(daw.notes()) == {}
    assert bridge.answers.cuts == 1
    assert any(isinstance(e, AnswerEnded) and e.cut for e in bridge.test_events)
    daw.out.send(mido.Message("note_off", note=72, velocity=0))


def test_turning_the_mode_off_during_an_answer_stops_it(answering):
    bridge, daw = answering
    bridge.changes.request(SettingsChange({"bars": 4}))
    note(daw, 0, 60)
    daw.play()
    first = wait_answer_note(bridge, daw)
    bridge.changes.request(SettingsChange({"answer.on": False}))
    assert bridge.commands.wait(5)
    time.sleep(0.1)
    assert bridge.player.playback is None
    quiet_from = daw.clocks_sent + 2
    daw.wait_clock(quiet_from + CLOCKS_PER_BAR)
    assert not any(is_on(m) for c, m in bridge_notes(daw, quiet_from)), "the answer went on after the mode went off"
    assert hanging(daw.notes()) == {} and first >= 0


def test_an_echo_loop_neither_cuts_the_answer_off_nor_joins_the_context(answering):
    bridge, daw = answering
    bridge.changes.request(SettingsChange({"bars": 2}))
    record = daw._record

    def monitor(message: mido.Message, when: float, *_) -> None:   # a DAW track monitoring Muse Out into Muse In
        if message.type in ("note_on", "note_off"):
            daw.out.send(message)
        record(message, when)
    daw.inp._callback = monitor
    note(daw, 0, 60)
    note(daw, 24, 64)
    daw.play()
    wait_answer_note(bridge, daw)
    seen = bridge.score.notes_seen
    deadline = time.monotonic() + 10
    while not any(isinstance(e, AnswerEnded) for e in bridge.test_events):
        assert time.monotonic() < deadline, "the answer never ended"
        time.sleep(0.05)
    [ended] = [e for e in bridge.test_events if isinstance(e, AnswerEnded)]
    assert not ended.cut and bridge.answers.cuts == 0
    assert bridge.score.notes_seen == seen == 2, "echoed notes joined the context"
    assert bridge.intake.echoes > 0
    time.sleep(0.3)
    loops = [e for e in bridge.test_events if isinstance(e, Notice) and "echo loop" in e.text]
    assert len(loops) == 1 and bridge.ports.pair.output_name in loops[0].text


def test_an_answer_that_joins_the_context_is_the_next_answers_context(answering):
    bridge, daw = answering
    bridge.changes.request(SettingsChange({"answer.join_context": True}))
    note(daw, 0, 60)
    note(daw, 24, 64)
    daw.play()
    wait_answer_note(bridge, daw)
    deadline = time.monotonic() + 10
    while not any(isinstance(e, AnswerEnded) and e.joined for e in bridge.test_events):
        assert time.monotonic() < deadline, f"the answer did not join the context: {bridge.events.message}"
        time.sleep(0.05)
    answer = bridge.audition.current.candidates[0].tokens
    daw.wait_clock(daw.clocks_sent + CLOCKS_PER_BAR)
    assert bridge.intake.settle(10)
    committed = bridge.score.committed
    at = [i for i in range(len(committed)) if committed[i:i + len(answer)] == answer]
    assert at, "the answer is not in the context"
    assert bridge.score.answer_bars
    # the composer plays again and pauses: the next answer continues a context that holds the first
    contexts = []
    bridge.events.subscribe(lambda e: isinstance(e, CandidatesReady) and contexts.append(bridge.worker.session.context_length))
    note(daw, daw.clocks_sent + 12, 67)
    deadline = time.monotonic() + 20
    while not contexts:
        assert time.monotonic() < deadline, "no second answer"
        time.sleep(0.05)
    assert contexts[0] >= at[0] + len(answer)


# ---- the parts, without JACK -----------------------------------------------------------------

def test_answer_settings_are_checked_saved_and_an_older_file_reads_as_off(tmp_path):
    assert BridgeSettings().answer == AnswerSettings(on=False)
    with pytest.raises(SettingsError, match="answer after must be 1-16 beats"):
        BridgeSettings().with_changes({"answer.after_beats": 17})
    old, problems = BridgeSettings.from_dict({"bars": 4, "candidates": 2})
    assert not problems and not old.answer.on
    new, _ = BridgeSettings.from_dict(BridgeSettings().with_changes({"answer.on": True, "answer.after_beats": 8}).to_dict())
    assert new.answer == AnswerSettings(True, 8, False)
    assert BridgeSettings().triggers["answer"] == ["cc", 25]


def test_answer_after_on_the_command_line_turns_the_mode_on():
    parser = argparse.ArgumentParser()
    add_live_arguments(parser)
    options = launch_options(parser.parse_args(["--answer-after", "3", "--answers-join"]))
    assert options.overrides["answer.on"] is True and options.overrides["answer.after_beats"] == 3
    assert options.overrides["answer.join_context"] is True
    assert "answer.on" not in launch_options(parser.parse_args([])).overrides


def test_an_echo_is_the_same_note_message_back_within_the_window():
    now = [100.0]
    guard = EchoGuard(window=0.06, now=lambda: now[0])
    guard.sent(mido.Message("note_on", note=60, velocity=90, channel=0))
    guard.sent(mido.Message("note_on", note=64, velocity=90, channel=0))
    assert not guard.is_echo(mido.Message("note_on", note=64, velocity=70), 100.01)           # the composer's own
    assert guard.is_echo(mido.Message("note_on", note=60, velocity=90, channel=3), 100.01)    # any channel
    assert not guard.is_echo(mido.Message("note_on", note=60, velocity=90), 100.02)           # matched once
    guard.sent(mido.Message("note_off", note=60))
    guard.sent(mido.Message("note_off", note=64))
    assert not guard.is_echo(mido.Message("note_off", note=64), 100.03)   # its note-on was the composer's
    assert guard.is_echo(mido.Message("note_on", note=60, velocity=0), 100.03)                # an off, as on 0
    guard.sent(mido.Message("note_on", note=62, velocity=80))
    assert not guard.is_echo(mido.Message("note_on", note=62, velocity=80), 100.2)            # too late
    assert not guard.is_echo(mido.Message("control_change", control=64, value=127), 100.0)


def test_quiet_counts_from_the_last_release_with_the_pedal_up():
    score = LiveScore(RemiTokenizer())
    assert score.quiet_since is None
    score.handle(mido.Message("note_on", note=60, velocity=80), 0)
    score.handle(mido.Message("control_change", control=64, value=127), 100)
    score.handle(mido.Message("note_off", note=60), 400)
    assert score.quiet_since is None                     # the pedal holds it
    score.handle(mido.Message("control_change", control=64, value=0), 900)
    assert score.quiet_since == 900
    score.handle(mido.Message("note_on", note=62, velocity=80), 1000)
    assert score.quiet_since is None
