"""Streaming a candidate to the Player bar by bar: bars play as they come, in time; a bar that is late ends
the candidate cleanly at its last complete bar (never a silent bar inside it), with every note ended."""
import threading
import time
from types import SimpleNamespace

import mido
import pytest

from engine.music import Note
from engine.session import Candidate
from muse_bridge.clock import ClockFollower, ClockSettings
from muse_bridge.player import Player

BAR = 1920                 # ticks of a 4/4 bar at 480 per quarter
BPM = 240.0                # a bar is 1 s; a MIDI clock tick is 20 ticks, 10.4 ms
ON_TIME_TICKS = 10         # half a clock tick: a note a whole tick off fails


def two_bars() -> list[Note]:
    """Quarter notes on every beat of two bars, the last one of bar 1 held into bar 2."""
    notes = [Note(60 + beat, 80, beat * 480, beat * 480 + 400) for beat in range(8)]
    notes[3] = Note(63, 80, 3 * 480, 4 * 480 + 200)
    return notes


def candidate(notes: list[Note], bars: int) -> Candidate:
    return Candidate([], notes, bars, 480, (4, 4))


class Recorder:
    """The Player's output, each message with the timeline tick at which it went out."""

    def __init__(self, clock: ClockFollower):
        self.clock, self.sent, self.lock = clock, [], threading.Lock()

    def send(self, message: mido.Message) -> bool:
        with self.lock:
            self.sent.append((self.clock.position(), message))
        return True

    def note_ons(self) -> list[tuple[float, int]]:
        with self.lock:
            return [(t, m.note) for t, m in self.sent if m.type == "note_on" and m.velocity > 0]

    def sounding(self) -> set[int]:
        on = set()
        with self.lock:
            for _, m in self.sent:
                if m.type == "note_on" and m.velocity > 0:
                    on.add(m.note)
                elif m.type in ("note_on", "note_off"):
                    on.discard(m.note)
        return on


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.fixture
def streaming():
    """A Player on a running internal clock, playing the first of two bars, the second still to come."""
    clock = ClockFollower(ClockSettings(bpm=BPM))
    clock.ensure_running()
    out = Recorder(clock)
    player = Player(out.send, clock)
    start = clock.next_bar_line()
    playback = player.play(candidate([n for n in two_bars() if n.start < BAR], 1), start, bars_expected=2)
    yield SimpleNamespace(clock=clock, out=out, player=player, start=start, playback=playback)
    player.close()


def test_bars_streamed_in_time_play_as_one_candidate(streaming):
    notes = two_bars()
    assert streaming.player.extend(streaming.playback, candidate(notes, 2))   # long before the playhead gets there
    wait_until(lambda: streaming.player.playback is None)
    ons = streaming.out.note_ons()
    assert [p for _, p in ons] == [n.pitch for n in notes]
    late = [t - (streaming.start + n.start) for (t, _), n in zip(ons, notes)]
    assert all(0 <= d < ON_TIME_TICKS for d in late), f"note-ons this many ticks after their place: {late}"
    assert not streaming.playback.cut and streaming.out.sounding() == set()


def test_a_late_bar_ends_the_candidate_at_its_last_complete_bar(streaming):
    cut = []
    streaming.player.on_cut = cut.append
    start = streaming.start
    wait_until(lambda: streaming.clock.position() > start + BAR + 200)   # the playhead is past bar 1: bar 2 is late
    assert cut == [streaming.playback] and streaming.playback.cut
    assert streaming.player.playback is None                              # it ended at bar 1's end
    assert not streaming.player.extend(streaming.playback, candidate(two_bars(), 2))   # bar 2 comes too late
    time.sleep(0.3)
    ons = streaming.out.note_ons()
    assert [p for _, p in ons] == [60, 61, 62, 63], "a bar of the candidate played after a silent one"
    assert streaming.out.sounding() == set()                              # the note held into bar 2 ended too
    off_63 = max(t for t, m in streaming.out.sent if m.type == "note_off" and m.note == 63)
    assert start + BAR <= off_63 < start + BAR + ON_TIME_TICKS + 200


def test_a_stream_that_ends_early_stops_at_its_bar_line(streaming):
    streaming.player.finish(streaming.playback)                           # replaced: no more bars will come
    wait_until(lambda: streaming.player.playback is None)
    assert [p for _, p in streaming.out.note_ons()] == [60, 61, 62, 63] and streaming.out.sounding() == set()
    off_63 = max(t for t, m in streaming.out.sent if m.type == "note_off" and m.note == 63)
    assert off_63 < streaming.start + BAR + ON_TIME_TICKS, "a note sounded past the candidate's last bar line"


def test_no_note_on_lies_past_the_candidates_last_bar_line():
    clock = ClockFollower(ClockSettings(bpm=BPM))
    clock.ensure_running()
    out = Recorder(clock)
    player = Player(out.send, clock)
    try:
        start = clock.next_bar_line()
        stray = Note(72, 80, BAR, BAR + 240)                              # a note of a second bar the candidate lacks
        player.play(candidate([Note(60, 80, 0, BAR + 480), stray], 1), start)
        wait_until(lambda: player.playback is None)
        assert [p for _, p in out.note_ons()] == [60]
        off = max(t for t, m in out.sent if m.type == "note_off")
        assert off < start + BAR + ON_TIME_TICKS and out.sounding() == set()
    finally:
        player.close()


def test_one_slow_bar_measured_at_start_up_does_not_push_the_first_suggestion_dozens_of_bars_away():
    from muse_bridge.stream_plan import STORED_AT_MOST, first_bar_line_in_time, planning_rate

    clock = ClockFollower(ClockSettings(bpm=120))        # a bar is 2 s
    clock.ensure_running()
    rate = planning_rate(0.3, 20.4)                       # 20.4 s a bar stored at start-up; this suggestion: 0.3
    assert rate == pytest.approx(0.3 * STORED_AT_MOST)
    plan = first_bar_line_in_time(clock, clock.next_bar_line(), 4, 1, rate)
    assert plan.bars_late <= 1, plan
    assert planning_rate(1.5, 0.4) == 1.5                  # after a dense performance its own first bar counts
    slow = first_bar_line_in_time(clock, clock.next_bar_line(), 4, 1, 3.0)
    assert slow.bars_late >= 2 and "made in time" in slow.why and "3.00 s a bar" in slow.why
