"""engine.music: bar lines, the bar of a tick, the next bar line and the grid, for one meter and for a
meter that changes at a bar line."""
import pytest

from engine.music import TICKS_PER_QUARTER, MeterMap, quantize_onset, rescale, ticks_per_bar

Q = TICKS_PER_QUARTER


def test_a_bar_of_each_meter_is_its_length_in_quarters():
    assert ticks_per_bar((4, 4)) == 4 * Q
    assert ticks_per_bar((3, 4)) == 3 * Q
    assert ticks_per_bar((6, 8)) == 3 * Q
    assert ticks_per_bar((2, 2)) == 4 * Q


def test_one_meter_bar_lines_and_the_next_bar_line_after_a_position():
    bars = MeterMap.constant((4, 4))
    assert [bars.bar_line(b) for b in range(3)] == [0, 4 * Q, 8 * Q]
    assert bars.bar_of(4 * Q - 1) == 0 and bars.bar_of(4 * Q) == 1
    assert bars.next_bar_line(0) == 4 * Q                 # strictly after: a bar line is not its own next
    assert bars.next_bar_line(4 * Q - 0.5) == 4 * Q
    assert bars.bar_line_at_or_after(4 * Q) == 4 * Q and bars.bar_line_at_or_after(4 * Q + 1) == 8 * Q
    assert bars.bar_line_at_or_before(8 * Q - 1) == 4 * Q
    assert bars.in_bar(9 * Q + 7) == Q + 7


def test_a_meter_change_moves_every_later_bar_line():
    bars = MeterMap(((0, (4, 4)), (2, (3, 4)), (4, (6, 8))))
    lines = [bars.bar_line(b) for b in range(6)]
    assert lines == [0, 4 * Q, 8 * Q, 11 * Q, 14 * Q, 17 * Q]
    assert [bars.bar_of(line) for line in lines] == list(range(6))
    assert bars.meter(3) == (3, 4) and bars.bar_ticks(3) == 3 * Q and bars.meter(9) == (6, 8)
    assert bars.next_bar_line(8 * Q + 1) == 11 * Q
    assert bars.span(2, first_bar=1) == 7 * Q
    assert [bars.beat_ticks(b) for b in (0, 2, 4)] == [Q, Q, Q // 2]   # a beat is the meter's note value


def test_a_relocation_keeps_the_place_in_the_bar_and_never_goes_back():
    bars = MeterMap.constant((4, 4))
    assert bars.at_phase(5 * Q, Q) == 5 * Q              # already there
    assert bars.at_phase(5 * Q + 1, Q) == 9 * Q          # passed: the next bar's
    assert bars.at_phase(3 * Q, 0) == 4 * Q


def test_the_grid_step_of_an_onset_is_the_tokenizers_rule():
    bars = MeterMap.constant((4, 4), origin=8 * Q)       # bar 0 of a score that starts two bars into the timeline
    steps = 32
    for tick in (8 * Q, 8 * Q + 29, 8 * Q + 31, 12 * Q - 1, 12 * Q + 5):
        assert bars.step_of(tick, steps) == quantize_onset(tick - 8 * Q, 4 * Q, steps)
    assert bars.step_of(12 * Q - 1, steps) == 31           # a hair before the bar line stays in its bar
    changing = MeterMap(((0, (4, 4)), (1, (3, 4))))
    steps_of = {(4, 4): 32, (3, 4): 24}.__getitem__     # each bar counts its own meter's steps
    assert changing.step_of(4 * Q, steps_of) == 32        # bar 1's first step: after bar 0's 32
    assert changing.step_of(5 * Q + Q // 2, steps_of) == 32 + 12    # beat 2.5 of the 3/4 bar
    assert changing.step_of(7 * Q, steps_of) == 32 + 24


def test_candidate_ticks_rescale_onto_the_timeline():
    assert rescale(96, 96) == Q and rescale(Q, Q, 96) == 96


def test_a_meter_map_must_start_at_bar_zero_in_order():
    with pytest.raises(ValueError, match="bar 0"):
        MeterMap(((1, (4, 4)),))
    with pytest.raises(ValueError, match="bar 0"):
        MeterMap(((0, (4, 4)), (3, (3, 4)), (2, (4, 4))))
