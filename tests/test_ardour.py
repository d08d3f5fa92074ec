"""Ardour 7 in the loop (bench/ardour.py, bench/daw.py): the checker on recordings made by hand, and one pass of
every scenario with a real, headless Ardour session on a JACK server of its own (skipped where Ardour is missing)."""
from __future__ import annotations

import os

import pytest

from bench.ardour import tools_missing
from bench.daw import SCENARIOS, Scenario, run_scenario
from bench.daw_check import (CLOCK, CONTINUE, SONG_POSITION, START, STOP, bars_of, clock_positions,
                             context_mismatches, grid_errors, hanging, marking_clocks, rounds_heard, suggests_heard)

FPC = 1000          # frames a clock: 120 bpm at 48 kHz
MEDIAN_BOUND_MS = 8.0   # generous (a JACK period of 256 frames is 5.3 ms), yet a whole clock (17-26 ms here) fails


def transport(*runs) -> list[tuple[int, list[int]]]:
    """Clock runs at FPC frames a clock: (first frame, clocks, how it starts: [START] or a pointer in clocks)."""
    out = []
    for first, clocks, how in runs:
        if how == "start":
            out.append((first, [START]))
        else:
            out += [(first, [SONG_POSITION, how & 0x7F, how >> 7]), (first, [CONTINUE])]
        out += [(first + k * FPC, [CLOCK]) for k in range(clocks)]
        out.append((first + clocks * FPC, [STOP]))
    return out


def with_notes(messages, notes):
    return sorted(messages + notes, key=lambda m: m[0])


def test_song_positions_follow_ardours_pointer_in_clocks_and_count_a_skipped_clock():
    messages = transport((0, 50, "start"), (100_000, 30, 2 * 96))      # Stop, then on from bar 3 (192 clocks)
    messages = [m for m in messages if m[0] != 20 * FPC]                # Ardour skipped clock 20
    positions = dict(clock_positions(messages))
    assert positions[19 * FPC] == 19 and positions[21 * FPC] == 21     # the gap counts as two clocks
    assert positions[100_000] == 192 and positions[100_000 + 5 * FPC] == 197


def test_a_note_a_whole_clock_late_is_told_from_one_inside_a_period():
    messages = transport((0, 100, "start"))
    notes = [(24 * FPC + 40, [0x90, 60, 90]), (25 * FPC, [0x80, 60, 0]),        # 40 frames late: fine
             (48 * FPC + FPC, [0x90, 62, 90]), (50 * FPC, [0x80, 62, 0])]       # on clock 49, not its grid's 48
    errors = grid_errors(with_notes(messages, notes), clock_positions(messages), FPC)
    assert errors[0] == 40 and abs(errors[1]) == FPC


def test_in_6_8_a_step_between_two_clocks_is_marked_by_the_next_clock():
    messages = transport((0, 100, "start"))
    notes = [(2 * FPC + 40, [0x90, 60, 90]),            # step 1 (1.5 clocks) on clock 2: on time
             (1 * FPC + 40, [0x90, 62, 90])]            # ... on clock 1: a note sent on a guess, a clock early
    errors = grid_errors(with_notes(messages, notes), clock_positions(messages), FPC, step_clocks=1.5)
    assert errors == [-FPC + 40, 40]                    # in the order they were heard
    assert sorted(m for m in marking_clocks(1.5, 9) if m <= 9) == [0, 2, 3, 5, 6, 8, 9]


def test_a_note_on_without_its_note_off_is_counted_and_the_hands_notes_are_not():
    notes = [(10, [0x90, 60, 90]), (20, [0x80, 60, 0]), (30, [0x90, 61, 90]), (40, [0x91, 62, 90])]
    assert hanging(notes) == 1


def test_a_suggest_heard_a_bar_late_needs_the_logs_reason():
    meter = (4, 4)
    messages = transport((0, 400, "start"))
    press = [(150 * FPC + 10, [0xB1, 20, 127])]                          # in bar 2: the next bar line is 192
    late = with_notes(messages, press + [(288 * FPC, [0x90, 60, 90]), (290 * FPC, [0x80, 60, 0])])
    clocks = clock_positions(messages)
    assert suggests_heard(late, clocks, meter, "", 48_000).problems
    said = "the suggestion starts 1 bar(s) late, so that every bar of it is ready in time"
    assert suggests_heard(late, clocks, meter, said, 48_000).late_with_reason == 1
    on_time = with_notes(messages, press + [(200 * FPC, [0x90, 60, 90]), (202 * FPC, [0x80, 60, 0])])
    assert suggests_heard(on_time, clocks, meter, "", 48_000).heard_on_line == 1
    off_line = "playback on the DAW's song position 200-392 clocks"
    assert suggests_heard(on_time, clocks, meter, off_line, 48_000).problems


def test_a_fill_is_counted_on_each_round_of_the_loop_it_was_heard_in():
    loop = [(k * 400_000, 96 * 4, "start" if k == 0 else 0) for k in range(3)]   # 3 rounds of bars 1-4
    messages = transport(*loop)
    fill = [(400_000 + 200 * FPC, [0x90, 60, 90]), (400_000 + 201 * FPC, [0x80, 60, 0])]   # bar 3, round 2 only
    assert rounds_heard(with_notes(messages, fill), clock_positions(messages), (2, 4), (4, 4)) == [0, 1, 0]


def test_the_context_is_compared_with_ardours_region_bar_for_bar():
    region = bars_of([(0.0, 60, 80), (1.02, 64, 70), (3.5, 67, 90), (4.0, 72, 60)], 4)    # 2 bars of 4/4
    assert region == [[(60, 0, 80), (64, 8, 70), (67, 28, 90)], [(72, 0, 60)]]
    same = bars_of([(0.0, 60, 82), (1.0, 64, 68), (3.5, 67, 91), (4.0, 72, 60)], 4)       # the model's bins
    assert context_mismatches(region, same) == []
    moved = bars_of([(0.0, 60, 80), (1.5, 64, 70), (3.5, 67, 90), (4.0, 72, 60)], 4)      # half a beat late
    assert context_mismatches(region, moved) == ["bar 1: pitch 64 at step 8, velocity 70 in Ardour's region; "
                                                 "step 12, velocity 70 in the context"]
    lost = bars_of([(0.0, 60, 80), (1.0, 64, 70), (3.5, 67, 90)], 4)                       # bar 2 never came
    assert context_mismatches(region, lost) == ["bar 2: pitches [72] in Ardour's region, [] in the context"]


def test_the_scenarios_tempo_map_places_quarters_as_ardour_does():
    s = Scenario("t", 100, tempo_changes=((24.0, 130.0),))
    assert s.sample_at_quarter(24, 48_000) == pytest.approx(24 * 0.6 * 48_000)
    assert s.sample_at_quarter(26, 48_000) == pytest.approx((24 * 0.6 + 2 * 60 / 130) * 48_000)


@pytest.fixture(scope="module")
def micro_checkpoint(tmp_path_factory):
    """A micro model that can fill: Ardour's scenarios measure time, which any model's notes show as well."""
    import torch

    from engine.checkpoint import save_checkpoint
    from engine.model import RWKV7, config_for_size
    from engine.tokenizer import RemiTokenizer, TokenizerSettings

    torch.manual_seed(0)
    tok = RemiTokenizer(TokenizerSettings(fill_markers=True))
    path = tmp_path_factory.mktemp("ardour") / "micro.pt"
    save_checkpoint(path, RWKV7(config_for_size("micro", tok.vocab_size)), tok.settings)
    return path


# open (issue 41, meters): in 6/8 at 140 bpm, a micro model's notes, which fill every 1.5-clock step of the grid,
# land a clock off the clock that marks their step in some passes (127 of 207 note-ons in one, all on half-clock
# steps); the Player alone, fed the same clocks, sends each on its marking clock
SIX_EIGHT = pytest.mark.xfail(reason="issue 41: half-clock steps in 6/8 land a clock off with Ardour", strict=False)
# open (issue 40): now and then one round of the loop counts a clock ahead after a long gap misjudged from stamps that
# are exact only to a JACK cycle (a third of a clock interval at 256 frames and 150 bpm); seen in 1 of 3 CI runs
LOOP = pytest.mark.xfail(reason="issue 40: a pass now and then a clock early at 256 frames", strict=False)
OPEN = {"meter_6_8": SIX_EIGHT, "loop_fill": LOOP, "transport": LOOP}   # transport: the same, after a locate


@pytest.mark.ardour
@pytest.mark.skipif(tools_missing() is not None, reason=f"Ardour is not installed here: {tools_missing()}")
@pytest.mark.parametrize("name", [pytest.param(n, marks=OPEN[n]) if n in OPEN else n for n in sorted(SCENARIOS)])
def test_with_ardour_in_the_loop_every_candidate_note_lands_on_its_clock(name, micro_checkpoint, tmp_path):
    """One pass: every candidate note within one JACK period of Ardour's clock, every Suggest heard from its bar
    line, nothing left sounding, the fill heard on every round of the loop, the pause answered, the context as
    Ardour's region holds it."""
    period = 256
    row = run_scenario(SCENARIOS[name], 1, period, tmp_path, checkpoint=micro_checkpoint)[0]
    assert row["problems"] == []                              # none a clock off, every Suggest heard, ...
    assert row["note_ons"] > 0 and row["abs_error_ms"]["median"] < MEDIAN_BOUND_MS
    if not SCENARIOS[name].actions:                            # (Ardour drops a take at a locate or Stop)
        # Ardour recorded every note the bridge played that the recorder heard, and at times more: jack_midi_dump loses
        # the messages of a cycle it missed (two recorders of one stress session disagreed in 19 of 89 sessions)
        assert row["ardour_recorded"] >= row["note_ons"]


def test_a_rigs_jack_server_is_this_processs_only_while_its_clients_open():
    """The tests after an Ardour or stress run still find JACK's default server."""
    from bench.jackd import jack_server

    before = os.environ.get("JACK_DEFAULT_SERVER")
    with jack_server("muse-daw-test"):
        assert os.environ["JACK_DEFAULT_SERVER"] == "muse-daw-test"
    assert os.environ.get("JACK_DEFAULT_SERVER") == before
