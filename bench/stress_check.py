"""The stress test's invariant checker: one session's recording at JACK frames, held to what a composer relies on.

- every note-on on Muse Out has its note-off, and no pitch is struck again while it sounds;
- nothing is struck after Stop or Panic (one the bridge heard: not while the DAW had cut its connection) (allowing GRACE_SECONDS for the message to reach the bridge) until
  something asks for music again: Start, Continue, a Song Position Pointer, Suggest, Next, Previous, a command
  through the command channel (Fill, answer mode), or a note the composer plays (in answer mode a pause may be
  answered);
- every note-on lies inside the bars of a playback, on the DAW's own song position (counted from its Start, Continue
  and Song Position Pointer messages; the bridge logs where each playback's bars lie), while the transport runs
  and the bridge has followed it since its last Start or Song Position Pointer;
- every command is answered within ANSWER_SECONDS (the bridge's command thread logs each one done), but a trigger
  the recording lacks (JACK dropped it for every client);
- the bridge's log holds no traceback and never says that input was handled late.
"""
from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

from bench.jackd import SAMPLE_RATE

START, CONTINUE, STOP, CLOCK, SONG_POSITION = 0xFA, 0xFB, 0xFC, 0xF8, 0xF2
CLOCKS_PER_QUARTER = 24
DAW_CHANNEL = 1                      # the DAW plays and triggers on channel 2; the bridge answers on channel 1
TRIGGERS = {"suggest": 20, "next": 21, "previous": 22, "accept": 23, "panic": 24}
MARKER_CONTROL = 3                   # the DAW marks a command given through the command channel with it
LINK_CONTROL = 9                     # ... and the moments it cuts its connection to the bridge (0) and makes it (127)
GRACE_SECONDS = 0.1                  # a Stop or Panic reaches the bridge and is acted on within this
ANSWER_SECONDS = 1.0
HANG_SECONDS = 80.0                  # a DAW still running this long past its script's length prints its stacks...
KILL_SECONDS = 90.0                  # ... and this long past it, the harness kills it: the session proves nothing
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
DONE = re.compile(r"muse_bridge\.command_thread: (\w+) done")
PLAYBACK = re.compile(r"playback on the DAW's song position (-?\d+)-(-?\d+) clocks")


# ---- the checker ---------------------------------------------------------------------------------------

class SongPosition:
    """The DAW's song position, in clocks, from the transport messages it sent (as the bridge reads them): Start puts
    the next clock at 0, a Song Position Pointer at 6 per sixteenth, Continue goes on from the last; `clock` is
    None while the transport is stopped, and after the bridge lost the DAW until a Start or Pointer places it again."""

    def __init__(self) -> None:
        self.clock: int | None = None
        self._next, self._running, self._placed = 0, False, False

    def hear(self, data: list[int]) -> None:
        status = data[0]
        if status == CLOCK:
            if self._running:
                self.clock = self._next if self._placed else None
                self._next += 1
            return
        if status == START:
            self._next, self._running, self._placed = 0, True, True
        elif status == SONG_POSITION and len(data) == 3:
            self._next, self._placed = 6 * (data[1] | data[2] << 7), True
        elif status == CONTINUE:
            self._running = True
        elif status == STOP:
            self._running = False
        elif data[:2] == [0xB0 | DAW_CHANNEL, LINK_CONTROL]:
            self._placed = False
        else:
            return
        self.clock = None   # placed again by the next clock


def merge_recordings(a: list[tuple[int, list[int]]], b: list[tuple[int, list[int]]]
                     ) -> tuple[list[tuple[int, list[int]]], int, int]:
    """Two recorders' (frame, bytes) of the same ports as one: every message either holds, in order. A recorder that
    falls behind drops what no longer fits its buffer, without a word; a message the other holds was sent. Each
    stamps a message with the frames of the cycles it ran (jack_midi_dump -a counts them), which drift apart by a
    period at each cycle one of them missed: the two are aligned by their messages, and one that only `b` holds
    gets `a`'s frame of the last message both hold. Returns the merged recording and how many messages only `a`
    held and only `b` held."""
    from difflib import SequenceMatcher

    keys_a, keys_b = [tuple(d) for _, d in a], [tuple(d) for _, d in b]
    merged, only_a, only_b, shift = [], 0, 0, (a[0][0] - b[0][0]) if a and b else 0
    for tag, i, j, k, m in SequenceMatcher(None, keys_a, keys_b, autojunk=False).get_opcodes():
        if tag == "equal":
            merged += a[i:j]
            shift = a[j - 1][0] - b[m - 1][0]
            continue
        only_a, only_b = only_a + j - i, only_b + m - k
        merged += sorted(a[i:j] + [(f + shift, d) for f, d in b[k:m]], key=lambda message: message[0])
    return merged, only_a, only_b


def script_seconds(slots: int, bpm: float, lead: float, tail: float) -> float:
    """The longest a session's script can last: its slots at the slowest tempo a tempo change may set (90 bpm, where
    that is slower than its own), with its lead and tail."""
    return slots * 60.0 / (min(bpm, 90) * CLOCKS_PER_QUARTER) + lead + tail


def log_times(text: str) -> list[tuple[float, str]]:
    """The bridge's log lines with the times logging stamped them (seconds, as time.time)."""
    out = []
    for line in text.splitlines():
        m = LOG_TIME.match(line)
        if m:
            out.append((datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp(), line))
    return out


def check(dump: list[tuple[int, list[int]]], actions: list, log_text: str, samplerate: int = SAMPLE_RATE) -> list[str]:
    """The invariants broken by one session: `dump` is jack_midi_dump's (frame, bytes) of Muse Out and the DAW,
    `actions` what the DAW did ([slot, kind, value, wall time, connected]), `log_text` the bridge's log meanwhile."""
    problems = []
    sounding: dict[int, int] = {}
    quiet_from: int | None = None         # frame from which nothing may be struck (after Stop or Panic)
    grace = int(GRACE_SECONDS * samplerate)
    windows = [(int(a), int(b)) for a, b in PLAYBACK.findall(log_text)]
    song = SongPosition()
    linked = True                         # the DAW is connected to the bridge (it marks a cut and its end, LINK_CONTROL)
    for frame, data in dump:
        if not data:
            continue
        status, kind, channel = data[0], data[0] & 0xF0, data[0] & 0x0F
        song.hear(data)
        if data[:2] == [0xB0 | DAW_CHANNEL, LINK_CONTROL]:
            linked = data[2] > 0
        elif not linked and (status in (START, CONTINUE, SONG_POSITION, STOP) or channel == DAW_CHANNEL
                             and data[:2] != [0xB0 | DAW_CHANNEL, MARKER_CONTROL]):
            continue   # sent while the DAW was cut off from the bridge: the bridge never heard it (a command did)
        elif status in (START, CONTINUE, SONG_POSITION):
            quiet_from = None
        elif status == STOP:
            quiet_from = frame + grace
        elif channel == DAW_CHANNEL and kind == 0xB0 and len(data) == 3:
            if data[1] == TRIGGERS["panic"]:
                quiet_from = frame + grace
            elif data[1] in (TRIGGERS["suggest"], TRIGGERS["next"], TRIGGERS["previous"], MARKER_CONTROL):
                quiet_from = None
        elif channel == DAW_CHANNEL and kind == 0x90 and data[2] > 0:
            quiet_from = None    # the composer plays: a pause after it may be answered
        elif channel == 0 and kind in (0x80, 0x90) and len(data) == 3:
            pitch, on = data[1], kind == 0x90 and data[2] > 0
            if on:
                if sounding.get(pitch):
                    problems.append(f"pitch {pitch} struck again while sounding (frame {frame})")
                if quiet_from is not None and frame > quiet_from:
                    problems.append(f"pitch {pitch} struck after Stop or Panic (frame {frame})")
                at = song.clock
                if at is not None and not any(a - 1 <= at < b for a, b in windows):
                    problems.append(f"pitch {pitch} struck at song position {at} clocks, outside every playback's bars")
                sounding[pitch] = sounding.get(pitch, 0) + 1
            elif sounding.get(pitch):
                sounding[pitch] -= 1
    problems += [f"pitch {p} left sounding ({n} note-on(s) without a note-off)" for p, n in sounding.items() if n]

    lines = log_times(log_text)
    if "Traceback" in log_text:
        problems.append("a traceback in the bridge's log")
    problems += [f"the bridge says: {line[24:]}" for _, line in lines if "handled late" in line]
    done = [(t, m.group(1)) for t, line in lines if (m := DONE.search(line))]
    # a trigger the recording lacks never reached JACK's clients (dropped with the DAW's clocks in a cycle JACK
    # skipped): the bridge cannot have heard it either
    recorded = Counter(tuple(d) for _, d in dump if len(d) == 3 and d[0] == 0xB0 | DAW_CHANNEL)
    triggers = Counter(tuple(value) for _, kind, value, _, connected in actions
                       if connected and kind == "midi" and _command_of(kind, value) is not None)
    lost = {key: max(0, n - recorded[key]) for key, n in triggers.items()}
    for slot, kind, value, sent, connected in actions:
        name = _command_of(kind, value)
        if name is None or not connected:
            continue
        answer = next((i for i, (t, what) in enumerate(done) if what == name and t >= sent - 0.01), None)
        if answer is None and kind == "midi" and lost.get(tuple(value)):
            lost[tuple(value)] -= 1
            continue
        if answer is None:
            problems.append(f"{name} at slot {slot} was never answered")
            continue
        t, _ = done.pop(answer)
        if t - sent > ANSWER_SECONDS:
            problems.append(f"{name} at slot {slot} answered after {t - sent:.2f} s")
    return problems


def _command_of(kind: str, value) -> str | None:
    """The command an action gave, if any: a trigger CC, or a command through the command channel."""
    if kind == "command":
        return value
    if kind == "midi" and value[0] == 0xB0 | DAW_CHANNEL and value[2] > 0:
        return next((name for name, cc in TRIGGERS.items() if cc == value[1]), None)
    return None


def dense_check(dump: list, actions: list, log_text: str, samplerate: int) -> tuple[list[str], int, float | None]:
    """The dense scenario's own checks: the Start logged within 50 ms of being sent, and each Suggest heard from
    the first bar line after it (or the log says it starts later and why). Returns the problems, the Suggests heard
    from the next bar line, and the Start's log line's ms after it was sent."""
    problems, heard_on_line, start_logged_ms = [], 0, None
    sent_start = next((a[3] for a in actions if a[1] == "start"), None)
    logged = next((t for t, line in log_times(log_text) if "DAW transport at clock 0 ->" in line), None)
    if sent_start is not None:
        if logged is None:
            problems.append("the DAW's Start was never logged")
        else:
            start_logged_ms = round(1000 * (logged - sent_start), 1)
            if logged - sent_start > 0.05:
                problems.append(f"the DAW's Start was logged {1000 * (logged - sent_start):.0f} ms after it was sent")
    clocks, started = [], False
    for frame, data in dump:
        if data == [START]:
            started, clocks = True, []
        elif data == [CLOCK] and started:
            clocks.append(frame)
    per_bar = 4 * CLOCKS_PER_QUARTER
    late_said = "bar(s) late" in log_text or "passed before the first bar was made" in log_text
    tolerance = samplerate * 0.005                               # a note sent on a clock lands in its cycle

    def clock_at(f: float) -> int:
        """The number of the last clock (0: the first after Start) sent at or before frame `f`."""
        return sum(1 for c in clocks if c <= f) - 1

    for frame, data in dump:
        if data[:2] != [0xB0 | DAW_CHANNEL, TRIGGERS["suggest"]] or not clocks:
            continue
        line = -(-(clock_at(frame) + 1) // per_bar) * per_bar    # the first bar line after the Suggest
        heard = next((f for f, d in dump if f > frame and len(d) == 3 and d[0] == 0x90 and d[2] > 0), None)
        if heard is None:
            problems.append("a Suggest was never heard")
            continue
        first_note = clock_at(heard + tolerance)                 # a candidate may begin with a rest
        if line <= first_note < line + per_bar:
            heard_on_line += 1
        elif first_note < line or not late_said:
            problems.append(f"a Suggest's first note came at clock {first_note}, not in the bar from the next "
                            f"bar line ({line}), and the log does not say why")
    return problems, heard_on_line, start_logged_ms
