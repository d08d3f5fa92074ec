"""The live bridge end to end over a real JACK loopback: a test "DAW" sends clock, a phrase and CC triggers;
candidates come back on the output port in time, and no note is left sounding."""
from __future__ import annotations

import os
import threading
import time

import mido
import pytest

from jack_fixtures import (Daw, hanging, is_on, jack_backend, jack_server, live_checkpoint,  # noqa: F401  (fixtures)
                           port_named, wait_connected)
from muse_bridge.bridge import LiveBridge
from muse_bridge.commands import Command
from muse_bridge.events import CandidatesReady
from muse_bridge.port_pair import PortPair
from muse_bridge.ports import PortNotFoundError, PortSettings, close_output
from muse_bridge.settings import BridgeSettings, SettingsChange, load_settings

BPM = 120.0
CLOCKS_PER_BAR = 96          # 4/4 at 24 per quarter
TICKS_PER_CLOCK = 20         # the bridge's timeline: 480 ticks per quarter


def phrase(daw: Daw, bar: int = 0) -> None:
    """A bar of quarter notes (C E G C) from the given bar, each three quarters of a beat long."""
    for beat, pitch in enumerate((60, 64, 67, 72)):
        on = bar * CLOCKS_PER_BAR + beat * 24
        daw.at(on, mido.Message("note_on", note=pitch, velocity=90))
        daw.at(on + 18, mido.Message("note_off", note=pitch, velocity=0))


@pytest.fixture
def bridge(jack_server, live_checkpoint, tmp_path):
    tag = f"{os.getpid()}-{time.monotonic_ns() % 10**6}"
    settings = BridgeSettings().with_changes({
        "ports.api": "jack", "ports.input_name": f"Muse In {tag}", "ports.output_name": f"Muse Out {tag}",
        "candidates": 3, "bars": 1, "sampling.max_tokens_per_bar": 16, "seed": 1, "clock.bpm": BPM})
    b = LiveBridge(live_checkpoint, settings, settings_path=tmp_path / "settings.json", client_name=f"muse-{tag}")
    b.start()
    yield b
    b.close()


@pytest.fixture
def daw(bridge):
    d = Daw(bridge.settings.value.ports.input_name, bridge.settings.value.ports.output_name)
    wait_connected(d.out, bridge)
    yield d
    d.close()


def test_suggest_plays_the_candidate_from_the_next_bar_line(bridge, daw):
    """Where its notes land, to the millisecond of the DAW's clock, is test_live_timing's."""
    phrase(daw)
    daw.at(CLOCKS_PER_BAR + 6, mido.Message("control_change", control=20, value=127))
    daw.play()
    assert bridge.suggester.done.wait(20), "no suggestion came"
    playback = bridge.player.playback
    assert playback is not None
    candidate = playback.candidate
    assert candidate.notes, "the candidate has no notes"
    assert playback.start_tick % (CLOCKS_PER_BAR * TICKS_PER_CLOCK) == 0
    assert playback.start_tick == 2 * CLOCKS_PER_BAR * TICKS_PER_CLOCK   # the bar after the one CC 20 came in
    end_clock = playback.start_tick // TICKS_PER_CLOCK + CLOCKS_PER_BAR
    daw.wait_clock(end_clock + 12)
    notes = daw.notes()
    first = next(m for _, m in notes if is_on(m))
    assert first.note == candidate.notes[0].pitch
    assert sum(is_on(m) for _, m in notes) >= 1
    assert hanging(notes) == {}


def suggest_two_bars_by_cc20(bridge, daw) -> int:
    """Play the phrase, ask for 2-bar candidates by CC 20; returns the clock at which candidate 1 starts."""
    bridge.changes.request(SettingsChange({"bars": 2}))
    phrase(daw)
    daw.at(CLOCKS_PER_BAR + 6, mido.Message("control_change", control=20, value=127))
    daw.play()
    assert bridge.suggester.done.wait(20)
    return bridge.player.playback.start_tick // TICKS_PER_CLOCK


def test_cc21_switches_candidate_without_hanging_notes(bridge, daw):
    start_clock = suggest_two_bars_by_cc20(bridge, daw)
    daw.wait_clock(start_clock + 30)                 # candidate 1 is playing
    daw.out.send(mido.Message("control_change", channel=3, control=21, value=64))
    deadline = time.monotonic() + 5
    while bridge.audition.index != 1:
        assert time.monotonic() < deadline, "CC 21 did not switch candidate"
        time.sleep(0.01)
    second = bridge.player.playback
    assert second.candidate is bridge.audition.current.candidates[1]
    assert second.start_tick % (CLOCKS_PER_BAR * TICKS_PER_CLOCK) == 0
    daw.wait_clock(second.start_tick // TICKS_PER_CLOCK + 2 * CLOCKS_PER_BAR + 12)
    assert bridge.player.playback is None
    assert hanging(daw.notes()) == {}


def test_panic_leaves_nothing_sounding(bridge, daw):
    start_clock = suggest_two_bars_by_cc20(bridge, daw)
    daw.wait_clock(start_clock + 40)
    daw.out.send(mido.Message("control_change", control=24, value=127))
    daw.wait_clock(start_clock + 52)
    assert bridge.player.playback is None
    assert hanging(daw.notes()) == {}
    all_off = {m.channel for _, m in daw.received if m.type == "control_change" and m.control == 123}
    assert all_off == set(range(16))


# JACK carries one period's worth of MIDI per cycle and the *sending* client drops the rest, so a test
# keeps at most IN_FLIGHT messages on the wire: still a flood as fast as JACK moves it, and every loss
# left to see is the bridge's own.
IN_FLIGHT = 64


def wait_taken(bridge: LiveBridge, sent: int, in_flight: int = 0, timeout: float = 10) -> None:
    """Wait until the bridge has taken all but `in_flight` of `sent` messages off its input port."""
    deadline = time.monotonic() + timeout
    while sent - bridge.stats().messages_in > in_flight:
        assert time.monotonic() < deadline, f"the bridge took only {bridge.stats().messages_in} of {sent} messages"
        time.sleep(0.0005)


def test_a_flood_of_10000_messages_loses_no_committed_note(bridge):
    backend = jack_backend()
    out = backend.open_output(port_named(backend.get_output_names(), bridge.settings.value.ports.input_name))
    try:
        wait_connected(out, bridge)
        bridge.changes.request(SettingsChange({"bars": 8, "sampling.max_tokens_per_bar": 64}))
        assert bridge.commands.wait()
        bridge.suggester.suggest()          # keeps the model busy while the flood comes in
        sent = bridge.stats().messages_in    # the probes
        for i in range(5000):
            pitch = 21 + i % 88
            out.send(mido.Message("note_on", note=pitch, velocity=1 + i % 127))
            out.send(mido.Message("note_off", note=pitch, velocity=0))
            sent += 2
            if i % 8 == 7:
                wait_taken(bridge, sent, IN_FLIGHT)
        wait_taken(bridge, sent, timeout=30)
    finally:
        close_output(out)
    time.sleep(bridge.clock.seconds_until(bridge.clock.next_bar_line()) + 0.1)  # every note final
    assert bridge.intake.settle(60)
    stats = bridge.stats()
    assert stats.overflow == 0
    assert stats.notes_seen == 5000
    assert bridge.score.sounding == 0
    assert stats.tokens_fed == stats.tokens_committed == bridge.worker.session.context_length
    assert bridge.tokenizer.count_bars(bridge.score.live_tokens) >= 1
    pitches = {bridge.tokenizer.token_str(t) for t in bridge.score.live_tokens if bridge.tokenizer.token_str(t).startswith("Pitch_")}
    assert pitches == {f"Pitch_{p}" for p in range(21, 109)}


def test_the_midi_callback_never_waits_for_the_score_or_the_model(bridge):
    """With the score thread and the model both held up, every message is still taken off the port
    (and reaches the score once they go on)."""
    backend = jack_backend()
    out = backend.open_output(port_named(backend.get_output_names(), bridge.settings.value.ports.input_name))
    release = threading.Event()
    try:
        wait_connected(out, bridge)
        bridge.worker.call(lambda session: release.wait(60))
        assert bridge.worker.busy.wait(10), "the model never got busy"
        sent = bridge.stats().messages_in
        with bridge.context.now():              # the context's lock, which the score thread takes messages in under
            for i in range(200):
                out.send(mido.Message("note_on", note=40 + i % 40, velocity=80))
                out.send(mido.Message("note_off", note=40 + i % 40, velocity=0))
                sent += 2
                wait_taken(bridge, sent, IN_FLIGHT)
            wait_taken(bridge, sent)
            assert bridge.stats().notes_seen == 0 and bridge.worker.busy.is_set()
    finally:
        release.set()
        close_output(out)
    assert bridge.intake.settle(30)
    assert bridge.stats().notes_seen == 200 and bridge.stats().overflow == 0


def test_an_unknown_port_name_lists_the_available_ports(jack_server):
    backend = jack_backend()
    keys = backend.open_output("Present Keys", virtual=True, client_name="muse-test-keys")
    try:
        with pytest.raises(PortNotFoundError) as e:
            PortPair(PortSettings("jack", "No Such Port", "Muse Out", virtual=False), lambda m: None).open()
        assert "'No Such Port'" in str(e.value) and "Present Keys" in str(e.value)
    finally:
        close_output(keys)


def test_a_learned_trigger_works_and_is_saved_in_the_settings_file(bridge, daw):
    bridge.triggers.learn(Command.SUGGEST)
    daw.out.send(mido.Message("control_change", channel=5, control=50, value=100))
    assert bridge.triggers.wait_learned(5) and bridge.commands.wait()   # saved on the command thread, like any change
    saved = load_settings(bridge.changes.path)
    assert saved.triggers["suggest"] == ["cc", 50]
    daw.out.send(mido.Message("control_change", control=50, value=1))
    assert bridge.suggester.done.wait(20)
    assert bridge.audition.current is not None


def test_a_port_that_disappears_is_reopened_and_the_session_kept(jack_server, live_checkpoint, tmp_path):
    backend = jack_backend()
    tag = f"{os.getpid()}-{time.monotonic_ns() % 10**6}"
    keys = backend.open_output(f"Keys {tag}", virtual=True, client_name=f"keys-{tag}")
    sink = backend.open_input(f"Sink {tag}", virtual=True, client_name=f"sink-{tag}")
    settings = BridgeSettings().with_changes({
        "ports.api": "jack", "ports.input_name": f"Keys {tag}", "ports.output_name": f"Sink {tag}",
        "ports.virtual": False, "sampling.max_tokens_per_bar": 16})
    bridge = LiveBridge(live_checkpoint, settings, settings_path=tmp_path / "s.json").start()
    try:
        def wait_for(condition, what):
            deadline = time.monotonic() + 10
            while not condition():
                assert time.monotonic() < deadline, what
                time.sleep(0.02)

        keys.send(mido.Message("note_on", note=60, velocity=80))
        keys.send(mido.Message("note_off", note=60))
        wait_for(lambda: bridge.stats().notes_seen == 1, "the first note never arrived")
        close_output(keys)
        wait_for(lambda: "lost" in bridge.events.message, "the lost port was not reported")
        keys = backend.open_output(f"Keys {tag}", virtual=True, client_name=f"keys-{tag}")
        wait_for(lambda: "reopened" in bridge.events.message, "the port was not reopened")
        keys.send(mido.Message("note_on", note=62, velocity=80))
        keys.send(mido.Message("note_off", note=62))
        wait_for(lambda: bridge.stats().notes_seen == 2, "no note after reopening")
        assert bridge.score.started   # same score, same session: the first note is still in it
        sink.close()
        wait_for(lambda: "output port" in bridge.events.message and "lost" in bridge.events.message, "the lost output was not reported")
        bridge.panic()                # All Notes Off on 16 channels, with nowhere to go
        assert bridge.status.now().unsent >= 16   # counted and shown, as the lost port is
    finally:
        bridge.close()
        close_output(keys)
        sink.close()


def test_a_midi_api_that_is_not_here_is_refused_naming_the_ones_that_are():
    from muse_bridge.ports import MidiApiError, midi_backend
    import rtmidi

    missing = [api for api, rt in (("winmm", "WINDOWS_MM"), ("coremidi", "MACOSX_CORE"), ("alsa", "LINUX_ALSA"))
               if getattr(rtmidi, "API_" + rt) not in rtmidi.get_compiled_api()]
    if not missing:
        pytest.skip("every MIDI API is compiled in here")
    with pytest.raises(MidiApiError, match="compiled in"):
        midi_backend(missing[0])
    with pytest.raises(MidiApiError, match="choose one of"):
        midi_backend("oss")


def test_candidate_one_is_scheduled_before_all_candidates_are_made(bridge, daw):
    bridge.changes.request(SettingsChange({"bars": 4, "precompute": False}))
    phrase(daw)
    daw.at(CLOCKS_PER_BAR + 6, mido.Message("control_change", control=20, value=127))
    daw.play()
    assert bridge.suggester.done.wait(30)
    assert bridge.suggester.last_first_note_seconds < bridge.suggester.last_suggest_seconds   # its first bar went ahead
    playback = bridge.player.playback
    assert playback is not None and playback.candidate is bridge.audition.current.candidates[0]
    daw.wait_clock(playback.start_tick // TICKS_PER_CLOCK + 4 * CLOCKS_PER_BAR + 12)
    assert not playback.cut
    assert hanging(daw.notes()) == {}


def test_a_suggestion_asked_while_one_is_made_replaces_it(bridge, daw):
    ready = []
    bridge.events.subscribe(lambda event: ready.append(event) if isinstance(event, CandidatesReady) else None)
    bridge.changes.request(SettingsChange({"bars": 3, "sampling.max_tokens_per_bar": 48}))
    phrase(daw)
    daw.play()
    daw.wait_clock(CLOCKS_PER_BAR + 6)
    bridge.do(Command.SUGGEST)
    bridge.commands.submit(lambda: bridge.suggester.suggest(seed=77), "suggest")    # at once, while the first is being made
    assert bridge.suggester.done.wait(60) and bridge.commands.wait() and bridge.worker.wait_idle(30)
    assert [event.suggestion.seed for event in ready] == [77]       # the first never finished
    deadline = time.monotonic() + 30
    while bridge.player.playback is not None:
        assert time.monotonic() < deadline, "the candidate never ended"
        time.sleep(0.05)
    daw.wait_clock(daw.clocks_sent + 12)
    assert hanging(daw.notes()) == {}


def wait_prepared(bridge, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while bridge.suggester.prepared is None:
        assert time.monotonic() < deadline, "no candidates were made in the pause"
        time.sleep(0.02)
    return bridge.suggester.prepared


def test_candidates_made_in_a_pause_are_played_at_once_and_new_notes_discard_them(bridge, daw):
    bridge.changes.request(SettingsChange({"bars": 4}))                                     # long enough to take a while to make
    phrase(daw)
    daw.play()
    daw.wait_clock(CLOCKS_PER_BAR)
    wait_prepared(bridge)                                          # the pause after the phrase
    bridge.do(Command.SUGGEST)
    assert bridge.suggester.done.wait(10) and bridge.commands.wait()
    assert bridge.suggester.last_suggest_seconds < 0.05 and bridge.suggester.last_first_note_seconds < 0.05
    assert bridge.player.playback.start_tick % (CLOCKS_PER_BAR * TICKS_PER_CLOCK) == 0
    bridge.panic()
    before_notes = wait_prepared(bridge)                           # a fresh set for the next request
    for pitch in (62, 65, 69):                                     # the composer plays on
        daw.out.send(mido.Message("note_on", note=pitch, velocity=80))
        time.sleep(0.05)
        daw.out.send(mido.Message("note_off", note=pitch))
    assert bridge.intake.settle(10)
    assert bridge.suggester.prepared is not before_notes
    bridge.do(Command.SUGGEST)
    assert bridge.suggester.done.wait(20) and bridge.commands.wait()
    assert bridge.audition.current is not before_notes


def test_save_played_writes_what_was_played_bar_for_bar(bridge, daw, tmp_path):
    """`w` / `--command save-played`: the context as a .mid file, its bars from bar 1, on the model's grid."""
    from engine.midi_file import read_phrase
    from engine.tokenizer import TokenizerSettings

    phrase(daw, 0)
    phrase(daw, 1)
    daw.play()
    daw.wait_clock(3 * CLOCKS_PER_BAR + 12)                     # both bars finished, and the next begun
    path = bridge.filler.save_played(tmp_path / "played.mid")
    played = read_phrase(path, TokenizerSettings())
    assert [(n.pitch, round(n.start / 480)) for n in sorted(played.notes, key=lambda n: n.start)] == \
        [(p, bar * 4 + beat) for bar in range(2) for beat, p in enumerate((60, 64, 67, 72))]
    bridge.clear()
    with pytest.raises(ValueError, match="nothing played"):
        bridge.filler.save_played(tmp_path / "empty.mid")
