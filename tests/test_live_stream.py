"""Streaming a candidate to the Player bar by bar: bars play as they come, and a bar that is late waits
for the next bar line (whole bars only), with every note ended."""
import threading
import time
from types import SimpleNamespace

import mido
import pytest

from engine.session import Candidate
from engine.tokenizer import Note
from muse_bridge.clock import ClockFollower, ClockSettings
from muse_bridge.player import Player

BAR = 1920                 # ticks of a 4/4 bar at 480 per quarter
BPM = 400.0                # a bar is 0.6 s


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
    assert all(abs(t - (streaming.start + n.start)) < 60 for (t, _), n in zip(ons, notes))
    assert streaming.playback.waits == 0 and streaming.out.sounding() == set()


def test_a_late_bar_waits_for_the_next_bar_line_and_never_plays_broken(streaming):
    start = streaming.start
    wait_until(lambda: streaming.clock.position() > start + BAR + 200)   # the playhead is past bar 1: bar 2 is late
    assert streaming.playback.waits == 1 and streaming.player.playback is streaming.playback
    streaming.player.extend(streaming.playback, candidate(two_bars(), 2))
    wait_until(lambda: streaming.player.playback is None)
    late = [t for t, p in streaming.out.note_ons() if p >= 64]           # bar 2's notes
    assert len(late) == 4 and all(t >= start + 2 * BAR - 1 for t in late), "bar 2 did not wait a whole bar"
    assert abs(late[0] - (start + 2 * BAR)) < 60
    assert streaming.out.sounding() == set()                              # the note held into bar 2 ended too


def test_a_stream_that_ends_early_stops_at_its_bar_line(streaming):
    streaming.player.finish(streaming.playback)                           # replaced: no more bars will come
    wait_until(lambda: streaming.player.playback is None)
    assert [p for _, p in streaming.out.note_ons()] == [60, 61, 62, 63] and streaming.out.sounding() == set()
