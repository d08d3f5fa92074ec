"""Bad and odd MIDI files, made from a seed: what real-world MIDI and broken files throw at the readers.

`fuzz_corpus(folder, seed, per_kind)` writes `per_kind` files of every kind and returns (kind, path) pairs.
"""
from __future__ import annotations

import random
import struct
from pathlib import Path

import mido

METERS = [(4, 4), (3, 4), (2, 2), (3, 2), (6, 8), (9, 8), (7, 8), (12, 8), (5, 4), (6, 16), (1, 1), (13, 16)]


def _song(rng: random.Random, ticks_per_beat: int, meter_at: int | None = 0, meter=(4, 4), tempo: int | None = 500000,
          pitches=(48, 84), notes: int = 12, spread_beats: float = 8.0, extra=()) -> mido.MidiFile:
    mid = mido.MidiFile(ticks_per_beat=max(1, ticks_per_beat))
    track = mido.MidiTrack()
    mid.tracks.append(track)
    events = []
    if tempo is not None:
        events.append((0, mido.MetaMessage("set_tempo", tempo=tempo)))
    if meter_at is not None:
        events.append((meter_at, mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1])))
    beat = mid.ticks_per_beat
    for _ in range(notes):
        start = int(rng.random() * spread_beats * beat)
        length = int(rng.choice([0, 1, beat // 4, beat, 3 * beat]))
        pitch = rng.randint(*pitches)
        events.append((start, mido.Message("note_on", note=pitch, velocity=rng.randint(1, 127))))
        events.append((start + length, mido.Message("note_off" if rng.random() < 0.7 else "note_on", note=pitch,
                                                    velocity=0)))
    events += list(extra)
    events.sort(key=lambda e: e[0])
    now = 0
    for tick, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    return mid


def _changing(rng: random.Random, meters: list[tuple[int, int]], empty_bar: bool = False) -> mido.MidiFile:
    """A bar of `meters[0]`, then two bars of each further meter, a few notes in each bar but the one after the
    first change when `empty_bar`."""
    beat, extra, tick = 480, [], 0
    for i, (num, den) in enumerate(meters):
        extra.append((tick, mido.MetaMessage("time_signature", numerator=num, denominator=den)))
        length = beat * 4 * num // den
        for bar in range(1 if i == 0 else 2):
            if not (empty_bar and i == 1 and bar == 0):
                for _ in range(rng.randint(1, 4)):
                    start = tick + rng.randrange(length)
                    pitch = rng.randint(48, 84)
                    extra += [(start, mido.Message("note_on", note=pitch, velocity=70)),
                              (start + rng.randint(1, beat), mido.Message("note_off", note=pitch))]
            tick += length
    return _song(rng, beat, meter_at=None, notes=0, extra=extra)


def _kinds(rng: random.Random):
    """(kind, maker) where maker(path) writes one file of that kind."""
    def save(mid):
        return lambda path: mid.save(str(path))

    def raw(data: bytes):
        return lambda path: Path(path).write_bytes(data)

    good = _song(rng, 480)
    good_path_bytes = []

    def good_bytes() -> bytes:
        if not good_path_bytes:
            import io
            buffer = io.BytesIO()
            good.save(file=buffer)
            good_path_bytes.append(buffer.getvalue())
        return good_path_bytes[0]

    yield "random bytes", raw(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 400))))
    yield "truncated", raw(good_bytes()[:rng.randint(0, len(good_bytes()) - 1)])
    yield "text renamed .mid", raw(b"These are my lyrics, not a MIDI file.\n" * rng.randint(0, 5))
    yield "header division", raw(good_bytes()[:12] + struct.pack(">H", rng.choice([0, 1, 2, 3, 0x8000, 0xE728]))
                                 + good_bytes()[14:])
    yield "coarse clock", save(_song(rng, rng.choice([1, 2, 3, 5, 24]), meter=rng.choice(METERS)))
    yield "huge delta", save(_song(rng, rng.choice([1, 480]), extra=[(rng.choice([10**5, 10**6]),
                                                                       mido.Message("note_on", note=60, velocity=50))]))
    limit = 0x0FFFFFFF                 # the longest delta time a MIDI file can write (28 bits)
    yield "deltas past 32-bit ticks", save(_song(rng, 480, extra=[
        (k * limit + d, mido.Message(kind, note=60 + k, velocity=50 if kind == "note_on" else 0))
        for k in range(1, rng.randint(10, 12)) for d, kind in ((0, "note_on"), (rng.randint(1, 960), "note_off"))]))
    yield "meter", save(_song(rng, 480, meter=rng.choice(METERS)))
    for kind, meters in (("pickup as a short bar", [(1, 8), (4, 4)]), ("2/4 inside 4/4", [(4, 4), (2, 4), (4, 4)]),
                         ("3/4 and 4/4 back and forth", [(3, 4), (4, 4), (3, 4), (4, 4)]),
                         ("6/8 and 9/8", [(6, 8), (9, 8), (6, 8)]), ("a meter change at an empty bar", [(4, 4), (3, 4)])):
        yield kind, save(_changing(rng, meters, empty_bar=kind.startswith("a meter change")))
    yield "meter after the start", save(_song(rng, 480, meter_at=rng.choice([480, 1920, 7680]), meter=rng.choice(METERS)))
    yield "tempo", save(_song(rng, 480, tempo=rng.choice([0, 1, 100, 10**7, 2**24 - 1, None])))
    yield "pitches outside the piano", save(_song(rng, 480, pitches=rng.choice([(0, 20), (109, 127), (0, 127)])))
    yield "no notes", save(_song(rng, 480, notes=0))
    yield "one long note", save(_song(rng, 480, notes=1, spread_beats=0.0))
    yield "dense", save(_song(rng, 480, notes=400, spread_beats=16.0))
    yield "sparse with a long gap", save(_song(rng, 96, notes=3, spread_beats=2000.0))
    drums = _song(rng, 480)
    for message in drums.tracks[0]:
        if message.type in ("note_on", "note_off"):
            message.channel = 9
    yield "drums only", save(drums)


def fuzz_corpus(folder: Path, seed: int = 0, per_kind: int = 6) -> list[tuple[str, Path]]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for round_ in range(per_kind):
        for i, (kind, make) in enumerate(_kinds(rng)):
            path = folder / f"{round_:02d}_{i:02d}.mid"
            make(path)
            out.append((kind, path))
    return out
