"""MIDI files as they come from outside the project, written with mido: a classical score with a pickup
and meter changes, a DAW export whose first bar starts late, a multitrack song with drums.

Each writer returns what a reader must find: the prompt's bar count, where its last bar ends (ticks at
the file's resolution, on the file's own timeline), and the meter of its last bar.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mido

TPQ = 480


@dataclass(frozen=True)
class Expected:
    bars: int
    end_tick: int
    last_meter: tuple[int, int]


def _write(path: Path, tracks: list[list[tuple[int, mido.Message]]], ticks_per_beat: int = TPQ) -> None:
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for events in tracks:
        track = mido.MidiTrack()
        now = 0
        for tick, message in sorted(events, key=lambda e: (e[0], not e[1].is_meta, e[1].type == "note_on")):
            track.append(message.copy(time=tick - now))
            now = tick
        mid.tracks.append(track)
    mid.save(str(path))


def _meter(tick: int, num: int, den: int) -> tuple[int, mido.MetaMessage]:
    return tick, mido.MetaMessage("time_signature", numerator=num, denominator=den)


def _note(tick: int, pitch: int, length: int, velocity: int = 80, channel: int = 0) -> list[tuple[int, mido.Message]]:
    return [(tick, mido.Message("note_on", note=pitch, velocity=velocity, channel=channel)),
            (tick + length, mido.Message("note_off", note=pitch, channel=channel))]


def classical_score(path: Path) -> Expected:
    """A one-beat pickup written as a 1/4 bar, four bars of 3/4, two of 4/4, one of 2/4, one of 4/4."""
    q = TPQ
    events = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(96))), _meter(0, 1, 4), _meter(q, 3, 4)]
    events += _note(0, 67, q - 40)                                     # the pickup
    tick = q
    for _ in range(4):                                                 # 3/4: a waltz bass and chord
        events += _note(tick, 48, q - 40) + _note(tick + q, 64, q - 40) + _note(tick + 2 * q, 67, q - 40)
        tick += 3 * q
    events.append(_meter(tick, 4, 4))
    for _ in range(2):
        events += [e for beat in range(4) for e in _note(tick + beat * q, 60 + 2 * beat, q // 2)]
        tick += 4 * q
    events.append(_meter(tick, 2, 4))
    events += _note(tick, 72, q) + _note(tick + q, 71, q)
    tick += 2 * q
    events.append(_meter(tick, 4, 4))
    events += _note(tick, 72, 4 * q - 40)
    tick += 4 * q
    _write(path, [events])
    # the pickup is a bar of its own (read padded to a full 3/4 bar): 1 + 4 + 2 + 1 + 1 bars, ending where the file's
    # own last bar ends
    return Expected(bars=9, end_tick=tick, last_meter=(4, 4))


def late_starting_export(path: Path) -> Expected:
    """A DAW's export: 4/4 from tick 0, the first notes on beat 3 of bar 1 (a pickup inside a full bar)."""
    q = TPQ
    events = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120))), _meter(0, 4, 4)]
    events += _note(2 * q, 62, q // 2) + _note(3 * q, 64, q // 2)
    for bar in range(1, 4):
        events += [e for beat in range(4) for e in _note(bar * 4 * q + beat * q, 60 + beat, q - 60)]
    _write(path, [events])
    return Expected(bars=4, end_tick=16 * q, last_meter=(4, 4))


def multitrack_with_drums(path: Path) -> Expected:
    """A conductor track, bass, chords and drums (channel 10) in 4/4 for four bars."""
    q = TPQ
    conductor = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100))), _meter(0, 4, 4)]
    bass = [e for bar in range(4) for e in _note(bar * 4 * q, 36 + bar, 2 * q)]
    chords = [e for bar in range(4) for pitch in (60, 64, 67) for e in _note(bar * 4 * q + q, pitch + bar, q)]
    drums = [e for k in range(16) for e in _note(k * q, 36 if k % 2 == 0 else 38, 60, channel=9)]
    _write(path, [conductor, bass, chords, drums])
    return Expected(bars=4, end_tick=16 * q, last_meter=(4, 4))


def concerto_with_cadenza(path: Path) -> Expected:
    """Two bars of 4/4, a cadenza notated as one 33/4 bar (runs of eighths), two bars of 4/4, a 3/16 bar (a short
    bar no meter of the vocabulary has), one bar of 4/4."""
    q = TPQ
    events = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(80))), _meter(0, 4, 4)]
    tick = 0
    for _ in range(2):
        events += [e for beat in range(4) for e in _note(tick + beat * q, 60 + beat, q - 40)]
        tick += 4 * q
    events.append(_meter(tick, 33, 4))
    events += [e for k in range(66) for e in _note(tick + k * q // 2, 72 + k % 12, q // 2 - 10)]
    tick += 33 * q
    events.append(_meter(tick, 4, 4))
    for _ in range(2):
        events += [e for beat in range(4) for e in _note(tick + beat * q, 65 + beat, q - 40)]
        tick += 4 * q
    events.append(_meter(tick, 3, 16))
    events += _note(tick, 70, q // 4) + _note(tick + q // 2, 69, q // 4)
    tick += 3 * q // 4
    events.append(_meter(tick, 4, 4))
    events += _note(tick, 60, 4 * q - 40)
    tick += 4 * q
    _write(path, [events])
    # 2 bars, the cadenza as 8 bars of 4/4 and a bar of 1/4, 2 bars, the 3/16 bar padded to a full 4/4 bar, 1 bar
    return Expected(bars=2 + 9 + 2 + 1 + 1, end_tick=tick, last_meter=(4, 4))


FIXTURES = {"concerto with a cadenza bar and a short bar": concerto_with_cadenza,
            "classical score with a pickup and meter changes": classical_score,
            "DAW export with a late-starting first bar": late_starting_export,
            "multitrack song with drums": multitrack_with_drums}
