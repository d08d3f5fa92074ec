"""The one settings object: validated as a whole, refused values name the setting and change nothing,
a file with wrong types keeps the last good value of each bad field."""
import json

import pytest

from muse_bridge.settings import BridgeSettings, SettingsError, read_settings, save_settings


def test_a_change_that_cannot_apply_names_the_setting_and_changes_nothing():
    settings = BridgeSettings()
    with pytest.raises(SettingsError, match="sampling.top_p"):
        settings.with_changes({"sampling.temperature": 0.5, "sampling.top_p": 1.5})
    with pytest.raises(SettingsError, match="bars must be a whole number"):
        settings.with_changes({"bars": "four"})
    with pytest.raises(SettingsError, match="unknown setting 'sampling.warmth'"):
        settings.with_changes({"sampling.warmth": 1})
    assert settings == BridgeSettings()


def test_a_settings_file_with_wrong_types_keeps_the_good_values_and_names_the_bad(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"bars": "two", "candidates": 6, "ports": {"api": "oss", "input_name": "Keys"},
                                "sampling": {"temperature": -1, "top_k": 40, "key_lock": "H major"},
                                "clock": {"time_signature": [3, 4]}, "seed": True}))
    settings, problems = read_settings(path)
    assert (settings.candidates, settings.ports.input_name, settings.sampling.top_k) == (6, "Keys", 40)
    assert settings.clock.time_signature == (3, 4)
    assert (settings.bars, settings.ports.api, settings.sampling.temperature) == (2, "auto", 1.0)
    assert settings.seed is None and settings.sampling.key_lock == "off"
    named = "\n".join(problems)
    for setting in ("bars", "ports.api", "sampling.temperature", "sampling.key_lock", "seed"):
        assert f"{setting}" in named
    assert all(str(path) in p for p in problems) and len(problems) == 5


def test_a_settings_file_that_is_not_json_gives_the_defaults_and_one_line(tmp_path):
    path = tmp_path / "settings.json"
    path.write_bytes(b"\x00\xff not json")
    settings, [problem] = read_settings(path)
    assert settings == BridgeSettings() and str(path) in problem


def test_a_flat_settings_file_of_version_0_1_is_read_into_its_sections(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"midi_api": "jack", "input_port": "Keys", "bpm": 90, "temperature": 0.7,
                                "time_signature": [6, 8], "output_channel": 3}))
    settings, problems = read_settings(path)
    assert problems == []
    assert (settings.ports.api, settings.ports.input_name, settings.ports.output_channel) == ("jack", "Keys", 3)
    assert (settings.clock.bpm, settings.clock.time_signature, settings.sampling.temperature) == (90.0, (6, 8), 0.7)


def test_the_pitch_range_and_key_lock_are_part_of_the_sampling_the_session_gets():
    settings = BridgeSettings().with_changes({"sampling.pitch_range": (48, 72), "sampling.key_lock": "d dorian"})
    assert settings.sampling.pitch_range == (48, 72)
    assert str(settings.sampling.key) == "D dorian"


def test_saving_keeps_what_loading_reads(tmp_path):
    settings = BridgeSettings().with_changes({"style": str(tmp_path / "jazz.pt"), "seed": 7, "bars": 8})
    assert read_settings(save_settings(settings, tmp_path / "s.json")) == (settings, [])
