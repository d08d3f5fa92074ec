"""LiveScore: the tokens it commits as notes arrive are the offline tokenization of the same performance."""
from __future__ import annotations

from pathlib import Path

import mido
import pytest

from engine.midi_file import read_phrase
from engine.tokenizer import RemiTokenizer
from muse_bridge.live_score import LiveScore, LiveScoreConfig

POP909 = sorted((Path(__file__).parent / "data" / "pop909").glob("*.mid"))
TPB = 480
BAR = 4 * TPB


@pytest.fixture(scope="module")
def tok():
    return RemiTokenizer()


def replay(tok, path, check_every_step=True):
    """Play a MIDI file's messages through a LiveScore at the file's tempo; returns (live, offline tokens).

    Tracks go on channels of their own (the pedal is per track offline, per channel live); a pedal
    still down at a track's end is lifted there, as the offline reader does."""
    phrase = read_phrase(path, tok.settings)
    offline = tok.encode(phrase)
    midi = mido.MidiFile(path)
    events = []
    for channel, track in enumerate(midi.tracks):
        now, last = 0, 0
        for message in track:
            now += message.time
            if message.is_meta:
                continue
            if message.type in ("note_on", "note_off", "control_change"):
                events.append((now, len(events), message.copy(channel=channel % 16)))
                last = now
        events.append((last, len(events), mido.Message("control_change", channel=channel % 16, control=64, value=0)))
    events.sort()
    live = LiveScore(tok, LiveScoreConfig(midi.ticks_per_beat, phrase.time_signature))
    live.start(0, phrase.tempo_bpm)
    for tick, _, message in events:
        live.advance(tick)
        live.handle(message, tick)
        if check_every_step:
            n = min(len(live.committed), len(offline))
            assert live.committed[:n] == offline[:n], f"wrong token committed by tick {tick}"
    live.advance(events[-1][0] + 1)
    return live, offline


def bars_only(tok, tokens):
    return all(tok.token_str(t).split("_")[0] in ("Bar", "TimeSig") for t in tokens)


@pytest.mark.parametrize("path", POP909, ids=lambda p: p.name)
def test_replaying_a_pop909_file_commits_its_offline_tokens(tok, path):
    live, offline = replay(tok, path)
    assert live.committed[:len(offline)] == offline
    assert bars_only(tok, live.committed[len(offline):])  # the bar lines the clock passed after the last note


def perform(tok, events, end_tick, time_signature=(4, 4), tempo=100.0, tmp_path=None):
    """Events [(tick, message)] played live and written to a file read offline; returns (committed, tail, offline)."""
    events = sorted(events, key=lambda e: e[0])
    path = tmp_path / "performance.mid"
    midi = mido.MidiFile(type=0, ticks_per_beat=TPB)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo)))
    track.append(mido.MetaMessage("time_signature", numerator=time_signature[0], denominator=time_signature[1]))
    now = 0
    for tick, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    midi.tracks.append(track)
    midi.save(str(path))
    live = LiveScore(tok, LiveScoreConfig(TPB, time_signature))
    live.start(0, tempo)
    for tick, message in events:
        live.advance(tick)
        live.handle(message, tick)
    live.advance(end_tick)
    return live, tok.encode(read_phrase(path, tok.settings))


def on(tick, pitch, velocity=80):
    return tick, mido.Message("note_on", note=pitch, velocity=velocity)


def off(tick, pitch, zero_velocity_on=False):
    if zero_velocity_on:
        return tick, mido.Message("note_on", note=pitch, velocity=0)
    return tick, mido.Message("note_off", note=pitch)


def pedal(tick, down):
    return tick, mido.Message("control_change", control=64, value=127 if down else 0)


def assert_exact(tok, live, offline):
    assert live.committed[:len(offline)] == offline
    assert bars_only(tok, live.committed[len(offline):])


def test_a_velocity_zero_note_on_ends_a_note(tok, tmp_path):
    live, offline = perform(tok, [on(0, 60), off(300, 60, zero_velocity_on=True), on(480, 62), off(700, 62)],
                            end_tick=BAR + 10, tmp_path=tmp_path)
    assert_exact(tok, live, offline)
    assert live.sounding == 0


def test_a_note_released_under_the_pedal_lasts_until_the_pedal_lifts(tok, tmp_path):
    events = [pedal(0, True), on(10, 60), off(200, 60), on(480, 64), off(500, 64), pedal(1500, False),
              on(1600, 67), off(1700, 67)]
    live, offline = perform(tok, events, end_tick=2 * BAR, tmp_path=tmp_path)
    assert_exact(tok, live, offline)
    assert "Duration_3.1.8" in [tok.token_str(t) for t in live.committed]   # 10 -> 1500 ticks: 3 1/8 beats


def test_a_sustained_note_ends_where_its_pitch_is_struck_again(tok, tmp_path):
    events = [pedal(0, True), on(0, 60), off(100, 60), on(960, 60), off(1000, 60), pedal(1200, False),
              pedal(1200, True), on(1440, 62), off(1450, 62), pedal(1500, False)]
    live, offline = perform(tok, events, end_tick=2 * BAR, tmp_path=tmp_path)
    assert_exact(tok, live, offline)


def test_a_pedal_pressed_at_the_tick_of_a_release_still_holds_the_note(tok, tmp_path):
    events = [on(0, 60), off(240, 60), pedal(240, True), pedal(900, False)]
    live, offline = perform(tok, events, end_tick=BAR + 1, tmp_path=tmp_path)
    assert_exact(tok, live, offline)


def test_repeated_and_overlapping_notes_of_one_pitch(tok, tmp_path):
    events = [on(0, 60), on(120, 60), off(200, 60), off(400, 60),      # overlapping: first struck, first released
              on(480, 60), off(540, 60), on(540, 60), off(600, 60),    # repeated at the release tick
              on(720, 60), on(725, 60), off(800, 60), off(801, 60)]    # struck twice on one grid step: merged
    live, offline = perform(tok, events, end_tick=BAR + 1, tmp_path=tmp_path)
    assert_exact(tok, live, offline)


def test_notes_across_bar_lines_and_empty_bars(tok, tmp_path):
    events = [on(BAR - 500, 60), off(BAR + 700, 60), on(BAR - 10, 64), off(BAR + 5, 64),   # 64 stays in bar 0
              on(4 * BAR + 20, 67), off(5 * BAR, 67)]
    live, offline = perform(tok, events, end_tick=5 * BAR + 1, tmp_path=tmp_path)
    assert_exact(tok, live, offline)
    assert tok.count_bars(live.committed) == 6


def test_a_note_longer_than_the_longest_duration_token_does_not_hold_back_the_score(tok):
    live = LiveScore(tok)
    live.start(0)
    live.note_on(0, 48, 80)
    live.note_on(480, 60, 80)
    live.note_off(600, 60)
    live.advance(3 * BAR)
    assert tok.count_bars(live.committed) == 1        # the held bass note keeps everything after it open
    live.advance(4 * BAR)                              # 16 beats: past Duration_12.0.4
    strings = [tok.token_str(t) for t in live.committed]
    assert "Duration_12.0.4" in strings and tok.count_bars(live.committed) == 5


def test_a_bar_token_is_final_once_the_clock_passes_its_bar_line(tok):
    live = LiveScore(tok)
    live.start(0)
    live.note_on(0, 60, 80)
    live.note_off(100, 60)
    live.advance(BAR - 1)
    assert tok.count_bars(live.committed) == 1
    live.advance(BAR)
    assert tok.count_bars(live.committed) == 2


def test_a_late_note_can_still_snap_back_onto_an_open_grid_position(tok):
    live = LiveScore(tok)
    live.start(0)
    step = TPB // tok.grid_per_beat
    live.note_on(0, 60, 80)
    live.note_off(10, 60)
    live.advance(step * 4 + step // 2)            # exactly half a step past position 4: still open
    committed_before = list(live.committed)
    live.note_on(step * 4 + step // 2, 62, 80)    # rounds back onto position 4
    live.note_off(step * 5, 62)
    live.advance(BAR)
    strings = [tok.token_str(t) for t in live.committed]
    assert "Position_4" in strings and strings.index("Position_4") >= len(committed_before)


def test_committed_tokens_plus_the_tail_are_the_performance_cut_at_now(tok, tmp_path):
    events = [on(0, 60), off(300, 60), on(900, 64)]           # 64 still sounding at 1500
    live, _ = perform(tok, events, end_tick=1500, tmp_path=tmp_path)
    _, offline = perform(tok, events + [off(1500, 64)], end_tick=1500, tmp_path=tmp_path)
    assert live.committed + live.tail(1500) == offline


def test_the_tail_reaches_the_end_of_the_current_bar(tok):
    live = LiveScore(tok)
    live.start(0)
    live.note_on(0, 60, 80)
    live.advance(2 * BAR + 100)     # 60 sounding since bar 0; now in bar 2
    assert tok.count_bars(live.committed + live.tail(2 * BAR + 100)) == 3


def test_a_pop909_replay_re_encodes_a_bounded_window(tok):
    """Cost does not grow with the context: what is kept for re-encoding is a bar or two of notes."""
    live, _ = replay(tok, POP909[0], check_every_step=False)
    assert len(live._final) + len(live._open) < 64


def test_an_accepted_candidate_is_spliced_in_before_the_next_bar_line(tok):
    live = LiveScore(tok)
    live.start(0)
    live.note_on(0, 60, 80)
    live.note_off(100, 60)
    live.advance(200)
    candidate = [tok.bar_id, tok.vocab().index("TimeSig_4/4")]
    live.insert_at_next_bar(candidate)
    assert live.tail(300)[-2:] == candidate
    live.advance(BAR)
    assert live.committed[-4:] == candidate + candidate   # the candidate's bar, then the live bar line
    assert tok.count_bars(live.live_tokens) == 2          # the performance's own tokens stay as played
