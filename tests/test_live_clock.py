"""ClockFollower: positions from MIDI clock (24 ppqn), transport messages and SPP; the tempo setting without clock."""
import mido
import pytest

from muse_bridge.clock import ClockFollower, ClockSettings

TICKS_PER_CLOCK = 20   # 480 ticks per quarter / 24
BAR = 1920


def clocks(follower, n, t0, bpm):
    period = 60 / (bpm * 24)
    for k in range(n):
        follower.on_message(mido.Message("clock"), t0 + k * period)
    return t0 + (n - 1) * period, period


def test_without_clock_the_tempo_setting_runs_the_timeline_from_the_first_note():
    follower = ClockFollower(ClockSettings(bpm=90))
    assert follower.position(10.0) == 0 and not follower.running
    follower.ensure_running(10.0)
    assert follower.position(12.0) == pytest.approx(2 * 90 / 60 * 480)
    assert follower.bpm == pytest.approx(90)


def test_start_then_clocks_count_24_per_quarter_from_position_zero():
    follower = ClockFollower()
    follower.on_message(mido.Message("start"), 1.0)
    last, period = clocks(follower, 25, 1.0, 120)   # the first clock is position 0
    assert follower.external
    assert follower.position(last) == pytest.approx(24 * TICKS_PER_CLOCK)
    assert follower.position(last + period / 2) == pytest.approx(24 * TICKS_PER_CLOCK + TICKS_PER_CLOCK / 2)
    assert follower.position(last + 0.4) == pytest.approx(25 * TICKS_PER_CLOCK)   # never past the next clock


def test_the_tempo_follows_the_clock_smoothly():
    follower = ClockFollower(ClockSettings(bpm=120))
    follower.on_message(mido.Message("start"), 0.0)
    clocks(follower, 200, 0.0, 100)
    assert follower.bpm == pytest.approx(100, rel=0.01)


def test_stop_freezes_the_daw_and_continue_after_a_song_position_pointer_keeps_the_bar_phase():
    follower = ClockFollower()
    follower.on_message(mido.Message("start"), 0.0)
    last, period = clocks(follower, 100, 0.0, 120)
    epoch = follower.epoch
    follower.on_message(mido.Message("stop"), last + 0.001)
    assert follower.epoch > epoch and not follower.external
    follower.on_message(mido.Message("songpos", pos=4), last + 0.1)   # beat 2 of a bar (4 sixteenths)
    follower.on_message(mido.Message("continue"), last + 0.2)
    follower.on_message(mido.Message("clock"), last + 0.2)
    pos = follower.position(last + 0.2)
    assert pos % BAR == 480 and pos >= 99 * TICKS_PER_CLOCK   # same place in the bar, never backwards


def test_a_restart_maps_to_the_next_bar_line_of_the_timeline():
    follower = ClockFollower()
    follower.on_message(mido.Message("start"), 0.0)
    last, _ = clocks(follower, 150, 0.0, 120)    # 150 clocks: bar 1, beat 3
    follower.on_message(mido.Message("start"), last + 0.01)
    follower.on_message(mido.Message("clock"), last + 0.02)
    assert follower.position(last + 0.02) == 2 * BAR


def test_lost_clock_hands_over_to_the_internal_clock_at_the_last_tempo():
    follower = ClockFollower(ClockSettings(bpm=120, clock_timeout=0.5))
    follower.on_message(mido.Message("start"), 0.0)
    last, period = clocks(follower, 97, 0.0, 90)
    later = follower.position(last + 2.0)
    assert not follower.external and follower.running
    assert later == pytest.approx(96 * TICKS_PER_CLOCK + (2.0 / period) * TICKS_PER_CLOCK, rel=0.02)


def test_continue_after_stop_goes_on_from_the_clock_after_the_last_one_heard():
    follower = ClockFollower()
    follower.on_message(mido.Message("start"), 0.0)
    last, period = clocks(follower, 96, 0.0, 120)     # positions 0..95: bar 1 played, stopped on its last clock
    follower.on_message(mido.Message("stop"), last + 0.001)
    follower.on_message(mido.Message("continue"), last + 1.0)
    follower.on_message(mido.Message("clock"), last + 1.0)   # the DAW's clock 96: bar 2's line
    pos = follower.position(last + 1.0)
    assert pos % BAR == 0, f"continue landed {pos % BAR} ticks after a bar line, not on it"


def test_clock_that_comes_back_late_is_counted_and_followed_again_without_a_jump():
    follower = ClockFollower(ClockSettings(bpm=120, clock_timeout=0.5))
    follower.on_message(mido.Message("start"), 0.0)
    last, period = clocks(follower, 48, 0.0, 120)       # positions 0..47
    gap = follower.position(last + 0.6)
    assert not follower.external                          # lost: the internal clock runs on
    epoch = follower.epoch
    late, _ = clocks(follower, 40, last + 0.6, 120 * 4)   # the late clocks arrive in a hurry
    assert follower.external and follower.epoch == epoch  # followed again, playback goes on
    assert follower.position(late) == 87 * TICKS_PER_CLOCK >= gap


def test_the_internal_clock_keeps_its_place_when_the_tempo_estimate_moves():
    follower = ClockFollower(ClockSettings(bpm=120))
    follower.ensure_running(0.0)                    # no transport: the internal clock runs
    before = follower.position(10.0)
    clocks(follower, 24, 10.0, 100)                 # clock without Start: tempo only
    after = follower.position(10.0 + 23 * 60 / (100 * 24))
    assert after >= before and after - before < 24 * TICKS_PER_CLOCK * 1.3   # no jump from the new tempo
