"""ClockFollower: positions from MIDI clock (24 ppqn), transport messages and SPP; the tempo setting without clock."""
import time

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


@pytest.mark.parametrize("unit, pointer", [("sixteenths", 4), ("clocks", 24)])
def test_a_song_position_pointer_in_the_units_the_daw_counts_keeps_the_bar_phase(unit, pointer):
    """Beat 2 of a bar, as the MIDI standard sends it (4 sixteenths) and as Ardour does (24: clocks)."""
    follower = ClockFollower(ClockSettings(song_position=unit))
    follower.on_message(mido.Message("start"), 0.0)
    last, _ = clocks(follower, 100, 0.0, 120)
    follower.on_message(mido.Message("stop"), last + 0.001)
    follower.on_message(mido.Message("songpos", pos=pointer), last + 0.1)
    follower.on_message(mido.Message("continue"), last + 0.2)
    follower.on_message(mido.Message("clock"), last + 0.2)
    assert follower.position(last + 0.2) % BAR == 480


def test_a_song_position_unit_that_is_neither_is_refused_by_name():
    with pytest.raises(ValueError, match="'beats'"):
        ClockSettings(song_position="beats")


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


# ---- an irregular DAW clock: jitter, bursts, a missing clock -------------------------------------------


def irregular_clock_stream(bpm: float, clocks_total: int, seed: int = 1):
    """(arrival time, the DAW's clock number) of a clock as a real DAW sends it at `bpm`: every clock jittered by up
    to 10% of an interval; clocks 30-32 late and arriving together, clocks 40-41 together after a gap of two
    intervals (a late clock, not a missing one), clock 63 missing, clocks 90-93 in one burst."""
    import random

    rng = random.Random(seed)
    period = 60 / (bpm * 24)
    times = {k: k * period + rng.uniform(-0.1, 0.1) * period for k in range(clocks_total)}
    for burst in ((30, 31, 32), (40, 41), (90, 91, 92, 93)):
        for k in burst:
            times[k] = times[burst[-1]]
    del times[63]
    return sorted((t, k) for k, t in times.items())


def test_an_irregular_clock_moves_no_count_and_a_missing_one_is_counted():
    follower = ClockFollower(ClockSettings(bpm=120))
    follower.on_message(mido.Message("start"), 0.0)
    heard = {}
    for t, k in irregular_clock_stream(120, 120):
        follower.on_message(mido.Message("clock"), t)
        heard[t] = (k, follower.playable_until(t))
    # once the clocks that arrive together have all arrived, the count is the DAW's own clock number
    for k, until in heard.values():
        assert until == k * TICKS_PER_CLOCK + TICKS_PER_CLOCK / 2, f"clock {k} counted as {until / TICKS_PER_CLOCK - .5}"
    assert follower.missing_clocks == 1
    assert follower.bpm == pytest.approx(120, rel=0.05)


def test_each_note_goes_out_on_the_clock_that_marks_it_whatever_the_clock_does():
    """A Player on a DAW clock that jitters, bunches and drops one clock: every note-on and note-off goes out when
    the clock that marks its tick arrives, never before it and never a clock later; the note of the dropped clock
    goes out with the clock after it."""
    from engine.music import Note
    from engine.session import Candidate
    from muse_bridge.player import Player

    now = [0.0]
    follower = ClockFollower(ClockSettings(bpm=120, clock_timeout=5.0), now=lambda: now[0])
    sent = []                   # (the time of the clock being delivered, message)
    player = Player(lambda m: sent.append((now[0], m)) or True, follower)
    try:
        follower.on_message(mido.Message("start"), 0.0)
        # an eighth note every eighth of a beat (3 clocks) from bar 1's line, each 2 clocks long
        notes = [Note(60 + i % 12, 90, i * 60, i * 60 + 40) for i in range(40)]
        player.play(Candidate([], notes, 2, 480, (4, 4)), 0)
        stream = irregular_clock_stream(120, 130)
        arrival = dict((k, t) for t, k in stream)
        arrival[63] = arrival[64]                  # no clock marked it: it goes out with the next one
        for t, k in stream:
            now[0] = t
            follower.on_message(mido.Message("clock"), t)
        time.sleep(0.1)
        ons = [t for t, m in sent if m.type == "note_on"]
        offs = [t for t, m in sent if m.type == "note_off"]
        assert len(ons) == len(notes) and len(offs) == len(notes)
        assert ons == [arrival[n.start // TICKS_PER_CLOCK] for n in notes]
        assert offs == [arrival[n.end // TICKS_PER_CLOCK] for n in notes]
    finally:
        player.close()


def test_a_late_clock_is_not_taken_for_a_missing_one():
    """A clock stamped most of an interval late shows a gap of about two intervals before it, and about none after:
    it may count ahead for that moment, but the next clock puts the count back, and no clock is missing."""
    follower = ClockFollower()
    follower.on_message(mido.Message("start"), 0.0)
    period = 60 / (120 * 24)
    for k in range(80):
        t = k * period + (0.9 * period if k == 50 else 0.0)
        follower.on_message(mido.Message("clock"), t)
        if k != 50:
            assert follower.playable_until(t) == k * TICKS_PER_CLOCK + TICKS_PER_CLOCK / 2
    assert follower.missing_clocks == 0


def test_gaps_are_measured_on_the_transports_clock_where_there_is_one():
    """JACK's cycles ran late (arrival times show a gap of two intervals and stay shifted) but the transport's frame
    clock shows every clock in its place: nothing is missing. A gap on the transport's clock is a missing clock."""
    period = 60 / (120 * 24)
    follower = ClockFollower()
    follower.on_message(mido.Message("start"), 0.0, 0.0)
    for k in range(60):
        follower.on_message(mido.Message("clock"), k * period + (period if k >= 30 else 0.0), k * period)
    assert follower.playable_until(60 * period) == 59 * TICKS_PER_CLOCK + TICKS_PER_CLOCK / 2
    assert follower.missing_clocks == 0
    for k in range(60, 90):
        if k != 70:   # clock 70 never comes
            follower.on_message(mido.Message("clock"), k * period + period, k * period)
    assert follower.playable_until(90 * period) == 89 * TICKS_PER_CLOCK + TICKS_PER_CLOCK / 2
    assert follower.missing_clocks == 1


def clock_driven_player(now):
    """A Player on a DAW clock whose time is `now[0]`, and the messages it sends."""
    from muse_bridge.player import Player

    follower = ClockFollower(ClockSettings(bpm=120, clock_timeout=5.0), now=lambda: now[0])
    sent = []
    return follower, Player(lambda m: sent.append(m) or True, follower), sent


def test_a_pitch_struck_again_before_it_ends_is_released_first_and_every_note_on_has_its_note_off():
    from engine.music import Note
    from engine.session import Candidate

    now = [0.0]
    follower, player, sent = clock_driven_player(now)
    try:
        follower.on_message(mido.Message("start"), 0.0)
        # 64 overlaps itself across onsets; 67 is held past the candidate's end
        notes = [Note(64, 90, 0, 960), Note(64, 80, 480, 1440), Note(67, 70, 960, 9000)]
        player.play(Candidate([], notes, 2, 480, (4, 4)), 0)
        for k in range(4 * 24 * 2 + 4):
            now[0] = k * 60 / (120 * 24)
            follower.on_message(mido.Message("clock"), now[0])
        time.sleep(0.1)
        sounding, ons = set(), []
        for m in sent:
            if m.type == "note_on" and m.velocity:
                assert m.note not in sounding, f"pitch {m.note} struck while it sounds"
                sounding.add(m.note)
                ons.append(m.note)
            else:
                sounding.discard(m.note)
        assert ons == [64, 64, 67] and sounding == set()
        assert [m.note for m in sent if m.type == "note_off"].count(64) == 2
    finally:
        player.close()


def test_a_clock_handled_late_strikes_nothing_and_still_ends_what_sounds():
    """Never on a stale timeline: a clock counted 80 ms after it reached the port sends the note-offs it marks but
    not its note-ons."""
    from engine.music import Note
    from engine.session import Candidate

    now = [0.0]
    follower, player, sent = clock_driven_player(now)
    period = 60 / (120 * 24)
    try:
        follower.on_message(mido.Message("start"), 0.0)
        player.play(Candidate([], [Note(60, 90, 0, 240), Note(62, 90, 240, 400)], 1, 480, (4, 4)), 0)
        for k in range(13):
            now[0] = k * period + (0.08 if k == 12 else 0.0)   # clock 12 (60's end, 62's start) counted late
            follower.on_message(mido.Message("clock"), k * period)
        time.sleep(0.1)
        assert [(m.type, m.note) for m in sent] == [("note_on", 60), ("note_off", 60)]
    finally:
        player.close()


@pytest.mark.parametrize("before, after", [(145, 95), (120, 60), (180, 90), (170, 100)])
def test_a_tempo_that_falls_at_once_is_no_missing_clock(before, after):
    """A DAW's tempo map stepping down (found by bench.stress, seed 35: 145 -> 95 bpm put a candidate 3 clocks early):
    every clock after the step is one pulse, on the transport's clock and by arrival."""
    for transport in (True, False):
        follower, t = ClockFollower(), 0.0
        follower.on_message(mido.Message("start"), 0.0, 0.0 if transport else None)
        for k in range(200):
            t += 60 / ((before if k < 100 else after) * 24)
            follower.on_message(mido.Message("clock"), t, t if transport else None)
        assert follower.missing_clocks == 0
        assert follower.playable_until(t) == 199 * TICKS_PER_CLOCK + TICKS_PER_CLOCK / 2


def test_clocks_that_come_together_after_a_long_gap_count_one_pulse_each():
    """A burst (two clocks in one JACK cycle, the same stamp) right after a long gap: no division by a gap of zero."""
    follower, period = ClockFollower(), 60 / (120 * 24)
    follower.on_message(mido.Message("start"), 0.0, 0.0)
    stamps = [k * period for k in range(40)] + [41.6 * period, 41.6 * period, 44 * period, 46 * period]
    for s in stamps:
        follower.on_message(mido.Message("clock"), s, s)
    assert follower.playable_until(46 * period) >= 43 * TICKS_PER_CLOCK


def test_a_loops_next_round_counts_from_its_start_whatever_the_stamp_of_the_last_clock_before_it():
    """Ardour loops back with Stop, then Start and its first clock exactly one interval after the last one. At 256
    frames a stamp is only exact to a JACK cycle: the last clock before the wrap stamped a cycle early made the
    Start's first clock look 1.6 intervals after it, and the clocks after it fit two pulses better than one. The
    first clock marks the round's start itself: every clock of the round counts one pulse."""
    follower = ClockFollower()
    period = 60 / (150 * 24)
    follower.on_message(mido.Message("start"), 0.0, 0.0)
    for k in range(95):                                    # a bar, its last clock stamped 0.6 interval early
        t = k * period - (0.6 * period if k == 94 else 0.0)
        follower.on_message(mido.Message("clock"), t, t)
    start = 95 * period
    follower.on_message(mido.Message("stop"), start - 0.3 * period, start - 0.3 * period)
    follower.on_message(mido.Message("start"), start, start)
    for k in range(48):
        follower.on_message(mido.Message("clock"), start + k * period, start + k * period)
    begun = follower.passes.ahead(0, 0)
    assert follower.position(start + 47 * period) == begun + 47 * TICKS_PER_CLOCK


def test_a_long_gap_just_before_a_loops_wrap_does_not_move_the_next_round():
    """A clock late just before the DAW loops back (Stop, then Start where its next clock was due): whatever the
    count decides about that gap, the next round counts from its own Start, each of its clocks one pulse."""
    follower = ClockFollower()
    follower.on_message(mido.Message("start"), 0.0)
    period = 60 / (120 * 24)
    t = 0.0
    for k in range(94):                                    # a steady bar, less its last two clocks
        t = k * period
        follower.on_message(mido.Message("clock"), t, t)
    t += 1.8 * period                                      # the next clock late (a busy machine)
    follower.on_message(mido.Message("clock"), t, t)
    follower.on_message(mido.Message("stop"), t + 0.3 * period, t + 0.3 * period)
    start = t + 0.5 * period
    follower.on_message(mido.Message("start"), start, start)
    for k in range(48):                                    # the next round: half a bar of steady clocks
        follower.on_message(mido.Message("clock"), start + k * period, start + k * period)
    begun = follower.passes.ahead(0, 0)
    assert follower.position(start + 47 * period) == begun + 47 * TICKS_PER_CLOCK
