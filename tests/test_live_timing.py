"""Candidate notes as a DAW hears them over JACK: a DAW in its own process sends sample-accurate MIDI clock
and stamps every note from the bridge with the frame it arrived at (bench/jack_daw.py); the checks are
bench.timing's, with the bundled default model."""
from __future__ import annotations

import importlib.util
import os
import shutil
import time
from dataclasses import replace

import pytest

from bench.jack_daw import Run, Script
from bench.timing import DAW_BARS, TimedScript, bridge_settings, live, measure_grid, measure_pianist, measure_x42
from bench.x42_clock import tools_missing
from engine.checkpoint import load_checkpoint
from engine.model import RWKV7
from jack_fixtures import jack_server, live_checkpoint  # noqa: F401  (fixtures)
from muse_bridge.events import Notice

# A whole MIDI clock tick off the grid is 20.8 ms at 120 bpm; a candidate's median offset must stay well
# inside that (the JACK period here, 5.3 ms, delays what the bridge sends by up to one period).
MEDIAN_BOUND_MS = 8.0


@pytest.fixture(scope="module")
def default_model():
    if importlib.util.find_spec("jack") is None:
        pytest.skip("JACK-Client is not installed (the JACK DAW is a JACK client)")
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed")
    return load_checkpoint(None)


def test_every_candidate_note_lands_on_the_daws_grid_after_start_continue_and_song_position(
        jack_server, default_model, tmp_path):
    row = measure_grid(default_model, 120.0, tmp_path, tag="ci-grid")
    assert row["suggestions_heard"] == row["suggestions"], f"a Suggest played nothing: {row}"
    if any("bar(s) late" in n for n in row["notices"]):   # a slow machine: the next Suggest may cut it short
        assert sum(row["candidate_1_notes_heard"]) <= sum(row["candidate_1_notes_made"]), f"notes from nowhere: {row}"
    else:
        assert row["candidate_1_notes_heard"] == row["candidate_1_notes_made"], f"notes went missing: {row}"
    for i, median in enumerate(row["candidate_median_ms"]):
        assert abs(median) < MEDIAN_BOUND_MS, f"candidate of suggestion {i + 1} lies {median} ms off the grid: {row}"


def test_a_pianists_dense_pedalled_performance_gets_its_suggestion_played_inside_its_bars(
        jack_server, default_model, tmp_path):
    row = measure_pianist(default_model, 120.0, 20.0, seed=0, workdir=tmp_path, tag="ci-pianist")
    assert row["messages_played"] > 800
    # on a machine too slow to make the first bar in time (CI, 2 s a bar once), a bar later, and the bridge says so
    later = [n for n in row["late_or_cut"] if "so that every bar of it is ready in time" in n]
    assert row["played"] and (row["starts_on_the_next_bar_line"] or (row["bars_late"] == 1 and later)), row
    assert [n for n in row["late_or_cut"] if n not in later] == [], row   # no input handled late, no bar cut
    assert len(row["start_plan"]) == 1, row   # said at -v
    assert later or "the bar line asked for" in row["start_plan"][0], row
    assert row["outside_its_bars"] == 0, row
    assert row["left_without_note_off"] == 0 and row["all_notes_off_sent"] == 0, row


@pytest.mark.skipif(tools_missing() is not None, reason=tools_missing() or "")
def test_on_x42s_jittering_clock_no_note_is_off_by_a_whole_clock(jack_server, default_model, tmp_path):
    """jack_midi_clock -J 10 (a clock nobody here wrote, jittered by up to 10% of an interval, now and then one
    dropped), recorded with jack_midi_dump: every candidate note goes out on the clock that marks it."""
    row = measure_x42(default_model, 120.0, 10, 1, tmp_path, tag="ci-x42")
    assert row["suggestions_heard"] == row["suggestions"] == 4, row
    dropped = row["notes_on_a_missing_clock_ms"]   # notes whose clock x42 never sent: out once it was overdue
    assert row["notes"] + len(dropped) == row["candidate_1_notes_made"], f"notes went missing: {row}"
    assert row["off_by_a_whole_clock"] == 0 and all(abs(e) < 10.4 for e in dropped), row
    for i, median in enumerate(row["per_run"][0]["candidate_median_ms"]):
        assert abs(median) < MEDIAN_BOUND_MS, f"candidate of suggestion {i + 1} lies {median} ms off the grid: {row}"
    assert row["note_ons_without_note_off"] == 0, row


class SlowStepRWKV7(RWKV7):
    """The model, its decode step slowed by a fixed delay per token: generation slower than the music."""

    delay_seconds = 0.15

    def step(self, tokens, state):
        time.sleep(self.delay_seconds)
        return super().step(tokens, state)


def test_a_candidate_made_slower_than_it_plays_starts_later_and_plays_without_a_gap(
        jack_server, live_checkpoint, tmp_path):
    bpm, bars = 240.0, 3                                    # a bar is 1 s; a bar of candidates takes longer
    slow = SlowStepRWKV7(live_checkpoint.model.cfg)
    slow.load_state_dict(live_checkpoint.model.state_dict())
    checkpoint = replace(live_checkpoint, model=slow.eval())
    tag = f"slow{os.getpid()}"
    settings = bridge_settings(tag, bpm).with_changes({
        "candidates": 2, "bars": bars, "sampling.max_tokens_per_bar": 16, "precompute": False, "seed": 3})
    script = TimedScript(Script(bpm, [Run(0.0, DAW_BARS.bar_line(16))], tail=0.5))
    for beat, pitch in enumerate((60, 64, 67, 72)):
        script.script.at_clock(0, beat * 24, [0x90, pitch, 90])
        script.script.at_clock(0, beat * 24 + 18, [0x80, pitch, 0])
    script.suggest(0, DAW_BARS.bar_line(1) + 30)
    with live(checkpoint, tag, bpm, tmp_path, script.script, settings, fast_step=False) as (bridge, daw, events):
        daw.go()
        recording = daw.wait()
        playback, suggestion = bridge.player.playback, bridge.audition.current
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert suggestion is not None and not any("fell behind" in n for n in notices), notices
    assert sum("starts" in n and "late" in n for n in notices) == 1, notices   # said once
    made = suggestion.candidates[0]
    heard = [recording.daw_clock_at(f) for f, _ in recording.note_ons()
             if f >= recording.frame_at(script.suggests[0])]
    assert len(heard) == len(made.notes), "notes of the candidate were lost or added"
    first_line = heard[0] - made.notes[0].start / 20
    assert abs(DAW_BARS.in_bar(first_line + 1.5) - 1.5) < 1.5, "the candidate did not start on a bar line"
    assert DAW_BARS.bar_of(first_line + 1.5) > DAW_BARS.bar_of(DAW_BARS.bar_line(1) + 30) + 1   # it started later
    for clock, note in zip(heard, made.notes):                  # every bar in its place: no silent bar inside
        assert abs(clock - (first_line + note.start / 20)) < 1.5, f"a note {clock - first_line} clocks in, " \
                                                                   f"its place is {note.start / 20}"


def test_a_fill_of_bars_5_and_6_plays_inside_them_when_a_12_bar_loop_comes_round(jack_server, tmp_path):
    """The DAW loops 12 bars (Start, then a Song Position Pointer back to bar 1 and Continue); a chord is played in
    each of bars 1-7, and CC 26 (Fill) in bar 7 fills the last 2 finished bars, 5 and 6. The candidate waits for
    the next round and plays inside bars 5-6 of the DAW's timeline, on its grid, every note-on with its note-off."""
    import torch

    from engine.checkpoint import save_checkpoint
    from engine.model import config_for_size
    from engine.tokenizer import RemiTokenizer, TokenizerSettings

    if importlib.util.find_spec("jack") is None:
        pytest.skip("JACK-Client is not installed (the JACK DAW is a JACK client)")
    torch.manual_seed(2)
    settings = TokenizerSettings().with_fill_markers()
    save_checkpoint(tmp_path / "fill.pt", RWKV7(config_for_size("micro", RemiTokenizer(settings).vocab_size)), settings)
    bpm, loop = 240.0, DAW_BARS.bar_line(12)                      # a bar is 1 s
    tag = f"fill{os.getpid()}"
    bridge_config = bridge_settings(tag, bpm).with_changes({"candidates": 2, "bars": 2, "precompute": False,
                                                            "seed": 5, "sampling.max_tokens_per_bar": 24})
    script = Script(bpm, [Run(0.0, loop), Run(12.5, loop, "songpos", 0)], tail=0.5)
    for bar in range(7):
        for beat, pitch in enumerate((60, 64, 67)):
            script.at_clock(0, DAW_BARS.bar_line(bar) + beat * 24, [0x90, pitch + bar, 90])
            script.at_clock(0, DAW_BARS.bar_line(bar) + beat * 24 + 18, [0x80, pitch + bar, 0])
    script.at_clock(0, DAW_BARS.bar_line(6) + 48, [0xB0, 26, 127])                  # Fill, half-way through bar 7
    with live(load_checkpoint(tmp_path / "fill.pt"), tag, bpm, tmp_path, script, bridge_config,
              fast_step=False) as (bridge, daw, events):
        daw.go()
        recording = daw.wait()
        fills = bridge.audition.current
    assert fills is not None and [e.fill for e in events if hasattr(e, "fill")] == [(4, 5)]
    second_round = recording.frame_at(12.5)
    ons = [(f, p) for f, p in recording.note_ons() if f >= second_round]
    offs = [b[1] for f, b in recording.received if len(b) == 3 and f >= second_round
            and (b[0] & 0xF0 == 0x80 or (b[0] & 0xF0 == 0x90 and b[2] == 0))]
    assert ons, "the fill played nothing in the second round"
    assert len(ons) == len(fills.candidates[0].notes)
    for frame, _ in ons:
        assert DAW_BARS.bar_line(4) - 0.5 <= recording.daw_clock_at(frame) < DAW_BARS.bar_line(6), \
            f"a note at DAW clock {recording.daw_clock_at(frame)}, outside bars 5-6"
        assert abs(recording.grid_error_ms(frame, 1)) < MEDIAN_BOUND_MS, "a note off the DAW's clock"
    assert sorted(offs) == sorted(p for _, p in ons)            # every note-on has its note-off
    assert not [f for f, _ in recording.note_ons() if f < second_round], "nothing plays before the loop comes round"
