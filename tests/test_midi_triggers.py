"""MIDI triggers (defaults, MIDI-learn) and the settings file they are saved in."""
import json

import mido

from muse_bridge.commands import Command
from muse_bridge.midi_triggers import MidiTriggers
from muse_bridge.settings import SETTINGS_ENV, BridgeSettings, default_settings_path, load_settings, save_settings


def cc(control, value=127, channel=0):
    return mido.Message("control_change", channel=channel, control=control, value=value)


def test_default_triggers_are_cc_20_to_24_on_any_channel_with_a_value_above_zero():
    triggers = MidiTriggers(BridgeSettings().triggers)
    assert [triggers.command_for(cc(n, channel=9)) for n in range(20, 25)] == [
        Command.SUGGEST, Command.NEXT, Command.PREVIOUS, Command.ACCEPT, Command.PANIC]
    assert triggers.command_for(cc(20, value=0)) is None
    assert triggers.command_for(cc(64)) is None and not triggers.claims(cc(64))


def test_midi_learn_binds_the_next_control_and_reports_the_new_map():
    saved = []
    triggers = MidiTriggers(BridgeSettings().triggers, on_change=saved.append)
    triggers.learn("suggest")
    assert triggers.claims(mido.Message("note_on", note=36, velocity=100))
    assert triggers.command_for(mido.Message("note_on", note=36, velocity=100)) is None   # consumed by the learn
    assert triggers.command_for(mido.Message("note_on", note=36, velocity=5, channel=2)) is Command.SUGGEST
    assert triggers.command_for(cc(20)) is None
    assert saved[-1]["suggest"] == ["note", 36]


def test_learning_a_control_that_triggers_another_command_moves_it():
    triggers = MidiTriggers(BridgeSettings().triggers)
    triggers.learn(Command.CLEAR)
    triggers.command_for(cc(24))
    assert triggers.command_for(cc(24)) is Command.CLEAR
    assert "panic" not in triggers.as_dict()


def test_settings_round_trip_through_the_json_file(tmp_path):
    settings = BridgeSettings().with_changes({"ports.api": "jack", "clock.bpm": 97.5, "clock.time_signature": (3, 4),
                                              "triggers": {"suggest": ["cc", 50]}, "sampling.key_lock": "a minor",
                                              "sampling.pitch_range": [48, 84], "hotkey": "<ctrl>+<shift>+m"})
    path = save_settings(settings, tmp_path / "s.json")
    assert load_settings(path) == settings
    stored = json.loads(path.read_text())
    assert stored["clock"]["time_signature"] == [3, 4] and stored["sampling"]["key_lock"] == "A minor"


def test_the_settings_file_can_be_moved_with_an_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(SETTINGS_ENV, str(tmp_path / "elsewhere.json"))
    assert default_settings_path() == tmp_path / "elsewhere.json"
    assert load_settings() == BridgeSettings()   # no file yet: the defaults
