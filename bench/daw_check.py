"""What one pass with Ardour in the loop is held to, at JACK frames and on Ardour's own timeline.

- every candidate note-on lies within one JACK period of the Ardour clock that marks its grid position (the model's
  grid: an eighth of a beat, 3 clocks in 4/4 and 3/4, 1.5 in 6/8, where a step between two clocks is marked by
  the next), and none lies a clock off;
- every Suggest is heard from the first bar line after it, on Ardour's song position (or the log says why it
  starts later); every playback the bridge logs begins on a bar line of the meter;
- every note-on has its note-off;
- the context the bridge built from Ardour's Phrase track (`muse-bridge --command save-played`) holds the region's
  notes bar for bar: the same pitches, each onset within a grid step, each velocity within its bin;
- on Ardour's timeline, the notes its Muse track recorded sit on the grid of its tempo map, shifted by its latency
  compensation: the offset is reported, with the spread around it.

Song positions are counted as Ardour sends them: Start puts the next clock at 0, a Song Position Pointer (in clocks:
Ardour 7 counts its pointer in clocks, not sixteenths) places the next clock, Continue and Stop start and stop it.
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass

from bench.x42_clock import left_sounding

START, CONTINUE, STOP, CLOCK, SONG_POSITION = 0xFA, 0xFB, 0xFC, 0xF8, 0xF2
CLOCKS_PER_QUARTER = 24
GRID_CLOCKS = 3
GRID_STEPS_PER_QUARTER = 8           # the model's grid: an eighth of a beat
VELOCITY_TOLERANCE = 4               # the model's 32 velocity bins are 4 apart
BRIDGE_CHANNEL, HANDS_CHANNEL = 0, 1
SUGGEST_CONTROL, FILL_CONTROL = 20, 26
PLAYBACK = re.compile(r"playback on the DAW's song position (-?\d+)-(-?\d+) clocks")


def bar_clocks(meter: tuple[int, int]) -> int:
    return meter[0] * 4 * CLOCKS_PER_QUARTER // meter[1]


def clock_positions(messages: list[tuple[int, list[int]]]) -> list[tuple[int, int]]:
    """(frame, song position in clocks) of every clock Ardour sent while its transport rolled. A gap of about n
    intervals (the median of the last ones) between two clocks of one run counts n: Ardour skipped some."""
    out, following, running = [], 0, False
    last, gaps = None, []              # this run's last clock, and its gaps so far (each per clock)
    for frame, data in messages:
        if not data:
            continue
        if data[0] == START:
            following, running, last, gaps = 0, True, None, []
        elif data[0] == SONG_POSITION and len(data) == 3:
            following, last, gaps = data[1] | data[2] << 7, None, []
        elif data[0] == CONTINUE:
            running, last, gaps = True, None, []
        elif data[0] == STOP:
            running = False
        elif data == [CLOCK] and running:
            if last is not None:
                steps = max(1, round((frame - last) / statistics.median(gaps[-CLOCKS_PER_QUARTER:]))) if gaps else 1
                following += steps - 1
                gaps.append((frame - last) / steps)
            out.append((frame, following))
            following, last = following + 1, frame
    return out


def _note_ons(messages, channel: int) -> list[tuple[int, list[int]]]:
    return [(f, d) for f, d in messages if len(d) == 3 and d[0] == 0x90 | channel and d[2] > 0]


def _position_at(clocks: list[tuple[int, int]], frame: float) -> int | None:
    """The song position of the last clock sent at or before `frame`."""
    last = None
    for f, pos in clocks:
        if f > frame:
            break
        last = pos
    return last


def marking_clocks(step_clocks: float, last: int) -> set[int]:
    """The song positions of the clocks that mark the model's grid steps (`step_clocks` clocks apart: 3 in 4/4, 1.5
    in 6/8): a step between two clocks goes out on the next one (the Player never sends a note on a guess)."""
    return {math.ceil(k * step_clocks - 1e-9) for k in range(int(last / step_clocks) + 2)}


def grid_errors(messages, clocks: list[tuple[int, int]], frames_per_clock: float,
                step_clocks: float = GRID_CLOCKS) -> list[float | None]:
    """Per candidate note-on: frames from the nearest clock that marks a grid step (late positive), None where no
    clock lay near."""
    marks = marking_clocks(step_clocks, max((pos for _, pos in clocks), default=0))
    grid = [f for f, pos in clocks if pos in marks]
    errors = []
    for frame, _ in _note_ons(messages, BRIDGE_CHANNEL):
        near = min(grid, key=lambda g: abs(frame - g), default=None)
        errors.append(None if near is None or abs(frame - near) > 2 * GRID_CLOCKS * frames_per_clock
                      else float(frame - near))
    return errors


@dataclass
class SuggestCheck:
    heard_on_line: int
    late_with_reason: int
    problems: list[str]


def suggests_heard(messages, clocks, meter: tuple[int, int], log_text: str, samplerate: int) -> SuggestCheck:
    """Each Suggest heard from the first bar line after it (on Ardour's song position), or later with a reason."""
    per_bar = bar_clocks(meter)
    said_late = "bar(s) late" in log_text or "passed before the first bar was made" in log_text
    moved = [f for f, d in messages if d and d[0] in (START, CONTINUE, STOP, SONG_POSITION)]
    tolerance = samplerate * 0.005                       # a note sent on a clock lands in that clock's cycle
    ons = [f for f, _ in _note_ons(messages, BRIDGE_CHANNEL)]
    check = SuggestCheck(0, 0, [])
    for frame, data in messages:
        if data[:2] != [0xB0 | HANDS_CHANNEL, SUGGEST_CONTROL] or data[2] == 0:
            continue
        at = _position_at(clocks, frame)
        heard = next((f for f in ons if f > frame), None)
        if at is None or heard is None:
            check.problems.append(f"a Suggest at frame {frame} was never heard")
            continue
        if any(frame < m < heard for m in moved):
            continue                  # the transport moved before it played: shown, not played (docs/live.md)
        line = (at // per_bar + 1) * per_bar
        first = _position_at(clocks, heard + tolerance)
        if line <= first < line + per_bar:
            check.heard_on_line += 1
        elif first >= line + per_bar and said_late:
            check.late_with_reason += 1
        else:
            check.problems.append(f"a Suggest at song position {at} was first heard at {first}, not from the bar "
                                  f"line at {line}, and the log does not say why")
    for match in PLAYBACK.finditer(log_text):
        if int(match.group(1)) % per_bar:
            check.problems.append(f"a playback began at song position {match.group(1)}, not on a bar line of "
                                  f"{meter[0]}/{meter[1]} ({per_bar} clocks a bar)")
    return check


def rounds_heard(messages, clocks, bars: tuple[int, int], meter: tuple[int, int]) -> list[int]:
    """Per pass of the song over bars [first, last) (0-based): the candidate note-ons heard inside them."""
    per_bar = bar_clocks(meter)
    low, high = bars[0] * per_bar, bars[1] * per_bar
    rounds, inside = [], False
    for frame, pos in clocks:                 # a round: clocks running through the bars without leaving them
        now = low <= pos < high
        if now and not inside:
            rounds.append([frame, frame])
        if now:
            rounds[-1][1] = frame
        inside = now
    ons = [f for f, _ in _note_ons(messages, BRIDGE_CHANNEL)]
    frames_per_clock = (clocks[1][0] - clocks[0][0]) if len(clocks) > 1 else 1
    return [sum(1 for f in ons if a - frames_per_clock / 2 <= f <= b + frames_per_clock / 2) for a, b in rounds]


def timeline_offsets(notes: list[tuple[int, int, int, int]], sample_at_quarter, quarters: float) -> list[float]:
    """Samples from each recorded note-on to the nearest eighth of a beat of Ardour's tempo map (late positive)."""
    grid = [sample_at_quarter(k / 8) for k in range(int(quarters * 8) + 1)]
    return [float(on - min(grid, key=lambda g: abs(on - g))) for on, *_ in notes]


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]  # noqa: E731
    return {"n": len(ordered), "p50": pick(0.5), "p99": pick(0.99), "max": ordered[-1], "min": ordered[0],
            "median": statistics.median(ordered)}


def hanging(messages) -> int:
    """Candidate note-ons never followed by their note-off."""
    return left_sounding([(f, d) for f, d in messages if len(d) == 3 and d[0] & 0x0F == BRIDGE_CHANNEL])


def bars_of(onsets: list[tuple[float, int, int]], bar_quarters: float) -> list[list[tuple[int, int, int]]]:
    """Notes (onset in quarter notes, pitch, velocity) as bars of (pitch, step, velocity) on the model's grid (an
    eighth of a beat), from the bar of the first note."""
    steps = [(round(q * GRID_STEPS_PER_QUARTER), pitch, velocity) for q, pitch, velocity in onsets]
    if not steps:
        return []
    per_bar = round(bar_quarters * GRID_STEPS_PER_QUARTER)
    first = min(s for s, _, _ in steps) // per_bar
    bars: list[list[tuple[int, int, int]]] = []
    for step, pitch, velocity in sorted(steps):
        bar = step // per_bar - first
        bars += [[] for _ in range(bar + 1 - len(bars))]
        bars[bar].append((pitch, step % per_bar, velocity))
    return bars


def context_mismatches(region: list[list[tuple[int, int, int]]], context: list[list[tuple[int, int, int]]],
                       velocity_tolerance: int = VELOCITY_TOLERANCE) -> list[str]:
    """Bar by bar, where the context the bridge built differs from the notes of Ardour's region: a pitch missing or
    extra, an onset more than a grid step away, a velocity beyond the tolerance (the model's velocity bins)."""
    out = []
    for bar in range(max(len(region), len(context))):
        want = sorted(region[bar]) if bar < len(region) else []
        got = sorted(context[bar]) if bar < len(context) else []
        if sorted(p for p, _, _ in want) != sorted(p for p, _, _ in got):
            out.append(f"bar {bar + 1}: pitches {sorted(p for p, _, _ in want)} in Ardour's region, "
                       f"{sorted(p for p, _, _ in got)} in the context")
            continue
        for (p, step, velocity), (_, got_step, got_velocity) in zip(want, got):
            if abs(step - got_step) > 1 or abs(velocity - got_velocity) > velocity_tolerance:
                out.append(f"bar {bar + 1}: pitch {p} at step {step}, velocity {velocity} in Ardour's region; "
                           f"step {got_step}, velocity {got_velocity} in the context")
    return out
