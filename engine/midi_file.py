"""MIDI files in and out: a file -> Phrase (every track merged into one piano stream, the sustain pedal
folded into durations), and notes -> a one-track file that a DAW plays as written.

- The sustain pedal: a note whose key is released while CC64 is down lasts until the pedal is released
  or the same pitch is struck again. Pedal spans are computed here from CC64 (value >= 64 is down)
  because symusic 0.6 mis-reports the first pedal of a track (it starts it at tick 0).
- Real-world files: a coarse clock is read at the timeline's ticks per quarter, a meter of the vocabulary's bar
  length stands for one outside it (2/2 as 4/4), the 4/4 before a file's first time signature counts,
  impossible tempos are ignored, notes outside the piano range are dropped; what cannot be read is a
  MidiFileError naming the file.
"""
from __future__ import annotations

import bisect
import math
from collections import Counter
from pathlib import Path

import mido
import symusic

from engine.music import TICKS_PER_QUARTER, Meter, MeterMap, Note, Phrase, ticks_per_bar
from engine.tokenizer import TokenizerSettings

DRUM_CHANNEL = 9   # 0-based: General MIDI's percussion, never read as piano

READ_TICKS_PER_QUARTER = TICKS_PER_QUARTER    # what files of a coarser clock are read at
MIN_TICKS_PER_QUARTER = 96      # below this a file's clock cannot hold the grid
MAX_TICK = 2**31 - 1             # symusic (and most MIDI tools) count ticks in 32 bits
MAX_BARS = 4096                  # a phrase is read up to this many bars (over two hours of 4/4 at 120 bpm)
SUSTAIN_CONTROLLER = 64
PEDAL_DOWN_THRESHOLD = 64  # CC64 value from which the pedal counts as down


class MidiFileError(ValueError):
    """A MIDI file that cannot be used; message names the file and the problem."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def bundled_phrase() -> Path:
    """The small phrase shipped in the package, for a first try and the panel's screenshot: the first 16 bars of
    POP909 song 001 (MIT licence: engine/assets/POP909_LICENSE beside it)."""
    return Path(__file__).parent / "assets" / "phrase.mid"


def read_phrase(path, settings: TokenizerSettings, time_signature: tuple[int, int] | None = None) -> Phrase:
    """All non-drum tracks merged, sustain pedal folded into durations; `time_signature` overrides the file's meter."""
    path = Path(path)
    if not path.is_file():
        raise MidiFileError(path, "file not found")
    try:
        score = symusic.Score(str(path))
    except (ValueError, RuntimeError, OSError, ZeroDivisionError, OverflowError) as e:
        raise MidiFileError(path, f"not a readable MIDI file ({type(e).__name__}: {e})") from e
    tpq = int(score.ticks_per_quarter)
    if tpq <= 0:
        raise MidiFileError(path, f"not a readable MIDI file (header division {tpq})")
    # a coarse clock (a few ticks per quarter) cannot place notes on the grid: read it finer
    scale = READ_TICKS_PER_QUARTER / tpq if tpq < MIN_TICKS_PER_QUARTER else 1.0
    ticks_per_quarter = READ_TICKS_PER_QUARTER if scale != 1.0 else tpq

    first_onset = min((n.time for t in score.tracks if not t.is_drum for n in t.notes), default=0)
    if any(ts.time < 0 for ts in score.time_signatures):   # symusic's 32-bit ticks wrapped
        raise MidiFileError(path, f"a time signature lies past the 32-bit tick range ({MAX_TICK:,} ticks); "
                                  "its delta times are too long")
    # by tick only: of two at one tick (a tool's default 4/4, then the real meter) the later in the file counts, as
    # a DAW reads it (symusic keeps the file's order); sorted by meter too, the larger numerator won
    events = sorted(((round(ts.time * scale), (ts.numerator, ts.denominator)) for ts in score.time_signatures),
                    key=lambda event: event[0])
    if events and events[0][0] > round(first_onset * scale):
        events.insert(0, (0, (4, 4)))   # the meter before the first time signature is 4/4 (the MIDI default)
    if time_signature is not None:
        events = [(0, tuple(time_signature))]
    file_changes = _meter_changes(events or [(0, (4, 4))], ticks_per_quarter)
    last_end = round(max((n.end for t in score.tracks if not t.is_drum for n in t.notes), default=0) * scale)
    changes, pads = _bars_read(path, file_changes, settings, ticks_per_quarter, last_end)
    meter, time_signature = file_changes[-1][1], changes[-1][1]
    file_bars = MeterMap(tuple(file_changes), ticks_per_quarter)
    file_meters = tuple((file_bars.bar_line(bar), m) for bar, m in file_changes)
    if ticks_per_bar(meter) != ticks_per_bar(time_signature):
        meter = time_signature   # a lone bar in another meter ends the file: continued in the meter it was read in
    tempos = [t.qpm for t in sorted(score.tempos, key=lambda t: t.time) if math.isfinite(t.qpm) and t.qpm > 0]
    low, high = settings.tempo_range
    tempo_bpm = min(max(float(tempos[-1]), low), high) if tempos else 120.0

    lowest, highest = settings.pitch_range
    notes, pedal_spans, outside = [], [], 0
    for track in score.tracks:
        if track.is_drum:
            continue
        track_end = max([n.end for n in track.notes] + [c.time for c in track.controls], default=0)
        spans = [(_padded(round(a * scale), pads), _padded(round(b * scale), pads, end=True))
                 for a, b in _pedal_spans(track.controls, track_end)]
        for n in track.notes:
            if n.time < 0 or n.duration < 0:   # symusic's 32-bit ticks wrapped: delta times past what tools read
                raise MidiFileError(path, f"a note lies past the 32-bit tick range ({MAX_TICK:,} ticks); "
                                          "its delta times are too long")
            if not lowest <= n.pitch < highest:
                outside += 1
                continue
            start = _padded(round(n.time * scale), pads)
            end = _padded(round((n.time + n.duration) * scale), pads, end=True)
            notes.append(Note(int(n.pitch), int(n.velocity), start, max(start + 1, end)))
            pedal_spans.append(spans)
    if not notes:
        raise MidiFileError(path, f"no notes in the piano range {lowest}-{highest - 1}" if outside else "no notes")
    notes = _fold_sustain(notes, pedal_spans)
    phrase = Phrase(notes, ticks_per_quarter, time_signature, tempo_bpm,
                    file_meter=meter if meter != time_signature else None,
                    meter_changes=tuple(changes) if len(changes) > 1 else None, file_scale=scale, pads=pads,
                    file_meter_changes=file_meters)
    _check_length(path, phrase)
    return phrase


def replace_notes(source, path, phrase: Phrase, start: int, end: int, notes: list[Note]) -> None:
    """Write `source` (the file `phrase` was read from) to `path` with its notes that start in the phrase's ticks
    [start, end) replaced by `notes` (phrase ticks): every other message stays as it was, and a note sounding into
    the range is released at its start, so none crosses into the new notes. The new notes go on the channel and
    track of the notes they replace (the first track with notes, channel 1, when there were none)."""
    to_file = lambda tick: round(phrase.on_file_timeline(tick) / phrase.file_scale)   # noqa: E731
    lo, hi = to_file(start), to_file(end)
    midi = mido.MidiFile(source)
    channels: Counter[int] = Counter()
    home: int | None = None
    tracks = []
    for index, track in enumerate(midi.tracks):
        events, now = [], 0
        for message in track:
            now += message.time
            events.append([now, 1, message])
        sounding: dict[tuple[int, int], list[int]] = {}
        dropped = set()
        for i, (tick, _, message) in enumerate(events):
            if message.type not in ("note_on", "note_off") or message.channel == DRUM_CHANNEL:
                continue
            key = (message.channel, message.note)
            if message.type == "note_on" and message.velocity > 0:
                sounding.setdefault(key, []).append(i)
                continue
            if not sounding.get(key):
                continue
            j = sounding[key].pop(0)
            struck = events[j]
            if lo <= struck[0] < hi:
                dropped |= {i, j}
                channels[message.channel] += 1
                home = index if home is None else home
            elif struck[0] < lo < tick:
                events[i][:2] = [lo, 0]              # released where the new bars begin
        dropped |= {i for held in sounding.values() for i in held if lo <= events[i][0] < hi}   # never released
        tracks.append([e for i, e in enumerate(events) if i not in dropped])
    if home is None:
        home = next((i for i, t in enumerate(midi.tracks) if any(m.type == "note_on" for m in t)), 0)
    channel = channels.most_common(1)[0][0] if channels else 0
    for n in notes:
        tracks[home] += [[to_file(n.end), 0, mido.Message("note_off", channel=channel, note=n.pitch, velocity=0)],
                         [to_file(n.start), 2, mido.Message("note_on", channel=channel, note=n.pitch,
                                                            velocity=max(1, min(127, n.velocity)))]]
    for track, events in zip(midi.tracks, tracks):
        ends = [e for e in events if e[2].type == "end_of_track"]
        events = sorted((e for e in events if e[2].type != "end_of_track"), key=lambda e: (e[0], e[1]))
        last = max([e[0] for e in events] + [e[0] for e in ends], default=0)
        track[:] = []
        now = 0
        for tick, _, message in events + [[last, 3, ends[0][2] if ends else mido.MetaMessage("end_of_track")]]:
            track.append(message.copy(time=tick - now))
            now = tick
    midi.save(path)


def _check_length(path, phrase: Phrase) -> None:
    """One clear line for a file whose delta times put a note past what is read: past 32-bit ticks once read at
    the reading resolution (a coarse clock is scaled up), or past MAX_BARS bars."""
    last = max(phrase.notes, key=lambda n: n.end)
    if last.end > MAX_TICK:
        raise MidiFileError(path, f"a note lies past the 32-bit tick range once read at {phrase.ticks_per_beat} ticks "
                                  f"per quarter ({last.end:,} > {MAX_TICK:,} ticks); its delta times are too long")
    bar = phrase.bars.bar_of(last.start)
    if bar >= MAX_BARS:
        raise MidiFileError(path, f"a note lies in bar {bar + 1:,}: its delta times are too long "
                                  f"(a phrase is read up to bar {MAX_BARS:,})")


def _bars_read(path, file_changes: list[tuple[int, Meter]], settings: TokenizerSettings, ticks_per_quarter: int,
               last_end: int) -> tuple[list[tuple[int, Meter]], tuple[tuple[int, int], ...]]:
    """The bars a file is read as: (bar, meter of the vocabulary) from bar 0, and the pads put in (file tick, ticks).

    - A pickup written as a short bar of its own is padded at its start to a full bar of the meter after it.
    - A lone bar in a meter the vocabulary lacks is read in the meter around it (the one before, else the one
      after): a bar far longer than that, as a notated cadenza is (175/4 in 4/4), as that many bars of it, and
      what is left over as a short bar; a short bar as a bar of the vocabulary of its length (3/4) if there is
      one, else padded at its start to a full bar, as a pickup is.
    - Bars of such a meter one after another are a passage in it: refused, naming the first bar."""
    file_bars = MeterMap(tuple(file_changes), ticks_per_quarter)
    pads: list[tuple[int, int]] = []
    if len(file_changes) > 1 and file_changes[1][0] == 1:
        pickup = ticks_per_bar(file_changes[1][1], ticks_per_quarter) - file_bars.bar_ticks(0)
        if pickup > 0:
            pads.append((0, pickup))
            file_changes = [(0, file_changes[1][1])] + file_changes[2:]
    changes: list[tuple[int, Meter]] = []
    added = 0   # bars read so far beyond the file's own (a cadenza read as several)

    def read(bar: int, meter: Meter) -> None:
        if not changes or changes[-1][1] != meter:
            changes.append((bar + added, meter))

    for i, (bar, meter) in enumerate(file_changes):
        read_as = settings.vocabulary_meter(meter)
        if read_as is not None:
            read(bar, read_as)
            continue
        following = file_changes[i + 1] if i + 1 < len(file_changes) else None
        lone = following[0] == bar + 1 if following else last_end <= file_bars.bar_line(bar + 1)
        around = changes[-1][1] if changes else settings.vocabulary_meter(following[1]) if following else None
        if not lone or around is None:
            raise MidiFileError(path, f"bar {bar + 1} is in {meter[0]}/{meter[1]}, which this model does not read "
                                      f"(it reads {', '.join(settings.meters())} and meters of their bar lengths); "
                                      f"a lone bar in another meter is read in the meter around it, a passage only by "
                                      f"a model whose vocabulary has {meter[0]}/{meter[1]}")
        whole, rest = divmod(ticks_per_bar(meter, ticks_per_quarter), ticks_per_bar(around, ticks_per_quarter))
        if whole:
            read(bar, around)
        if rest:
            short = _meter_of_length(rest, settings, ticks_per_quarter, around[1])
            read(bar + whole, short or around)
            if short is None:
                pads.append((file_bars.bar_line(bar) + whole * ticks_per_bar(around, ticks_per_quarter),
                             ticks_per_bar(around, ticks_per_quarter) - rest))
            whole += 1
        added += whole - 1
    return changes, tuple(pads)


def _meter_of_length(ticks: int, settings: TokenizerSettings, ticks_per_quarter: int, beat: int) -> Meter | None:
    """A meter of the vocabulary whose bar lasts `ticks`, of the note value `beat` if there is one."""
    lengths = [(num, den) for den, nums in settings.time_signatures for num in nums
               if ticks_per_bar((num, den), ticks_per_quarter) == ticks]
    return min(lengths, key=lambda m: m[1] != beat, default=None)


def _padded(tick: int, pads: tuple[tuple[int, int], ...], end: bool = False) -> int:
    """A file's tick (at the reading resolution) on the timeline it is read as: every pad at or before it added (an
    `end` at a pad's tick ends before the pad, as a note released on the bar line before a short bar)."""
    return tick + sum(length for at, length in pads if at < tick or at == tick and not end)


def _meter_changes(events: list[tuple[int, Meter]], ticks_per_quarter: int) -> list[tuple[int, Meter]]:
    """(bar, meter) of a file's time signature events (tick, meter), each starting a bar: one that falls inside
    a bar starts the next bar; of several at one bar line, the last counts."""
    changes: list[tuple[int, Meter]] = []
    for tick, meter in events:
        if changes:
            bars = MeterMap(tuple(changes), ticks_per_quarter)
            bar = bars.bar_of(tick) if bars.in_bar(tick) == 0 else bars.bar_of(tick) + 1
        else:
            bar = 0
        if meter[0] < 1 or meter[1] < 1:
            continue
        changes = [c for c in changes if c[0] < bar] + [(bar, meter)]
    return changes


def write_notes(
    notes: list[Note],
    path,
    *,
    ticks_per_beat: int,
    tempo_bpm: float,
    time_signature: tuple[int, int],
    end_tick: int | None = None,
    meter_changes: tuple[tuple[int, Meter], ...] = (),
) -> None:
    """One track, piano (program 0), tempo and time signature at tick 0 (then each (tick, meter) of
    `meter_changes`), notes at absolute ticks. Notes are made playable first (see `playable_notes`):
    every note-on has its own later note-off."""
    events = []  # (tick, order, message); meters first, note-offs before note-ons at the same tick
    for tick, (num, den) in meter_changes:
        events.append((tick, -1, mido.MetaMessage("time_signature", numerator=num, denominator=den)))
    for n in playable_notes(notes):
        events.append((n.end, 0, mido.Message("note_off", note=n.pitch, velocity=0)))
        events.append((n.start, 1, mido.Message("note_on", note=n.pitch, velocity=max(1, min(127, n.velocity)))))
    events.sort(key=lambda e: (e[0], e[1], getattr(e[2], "note", 0)))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=time_signature[0], denominator=time_signature[1], time=0))
    track.append(mido.Message("program_change", program=0, time=0))
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    end = now if end_tick is None else max(now, end_tick)
    track.append(mido.MetaMessage("end_of_track", time=end - now))
    midi = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)
    midi.save(str(path))


def playable_notes(notes: list[Note]) -> list[Note]:
    """Notes a DAW plays as written: a pitch struck again while it sounds ends the earlier note there
    (as the live Player does), the same pitch twice at one tick is one note (the louder), and every
    note lasts at least one tick, so no note-off can come before its note-on or end another's."""
    out = []
    by_pitch: dict[int, list[Note]] = {}
    for n in notes:
        by_pitch.setdefault(n.pitch, []).append(n)
    for group in by_pitch.values():
        group.sort(key=lambda n: (n.start, -n.velocity))
        kept = [n for i, n in enumerate(group) if i == 0 or n.start != group[i - 1].start]
        for n, nxt in zip(kept, kept[1:] + [None]):
            end = max(n.end, n.start + 1)
            out.append(Note(n.pitch, n.velocity, n.start, end if nxt is None else min(end, nxt.start)))
    return sorted(out, key=lambda n: (n.start, n.pitch))


def _pedal_spans(controls, track_end: int) -> list[tuple[int, int]]:
    """(down, up) ticks of the sustain pedal from CC64 events; a pedal left down lifts at track_end."""
    spans = []
    down_at = None
    for cc in sorted((c for c in controls if c.number == SUSTAIN_CONTROLLER), key=lambda c: c.time):
        if cc.value >= PEDAL_DOWN_THRESHOLD and down_at is None:
            down_at = int(cc.time)
        elif cc.value < PEDAL_DOWN_THRESHOLD and down_at is not None:
            spans.append((down_at, int(cc.time)))
            down_at = None
    if down_at is not None:
        spans.append((down_at, track_end))
    return spans


def _fold_sustain(notes: list[Note], pedal_spans: list[list[tuple[int, int]]]) -> list[Note]:
    """Each note released under its track's pedal lasts until the pedal lifts or its pitch is struck again."""
    onsets_by_pitch: dict[int, list[int]] = {}
    for n in notes:
        onsets_by_pitch.setdefault(n.pitch, []).append(n.start)
    for onsets in onsets_by_pitch.values():
        onsets.sort()
    folded = []
    for n, spans in zip(notes, pedal_spans):
        end = n.end
        i = bisect.bisect_right(spans, (n.end, 2**63)) - 1  # last pedal pressed at or before the release
        if i >= 0 and spans[i][0] <= n.end < spans[i][1]:
            onsets = onsets_by_pitch[n.pitch]
            j = bisect.bisect_right(onsets, n.start)
            next_strike = onsets[j] if j < len(onsets) else spans[i][1]
            end = max(n.end, min(spans[i][1], next_strike))
        folded.append(Note(n.pitch, n.velocity, n.start, end))
    folded.sort(key=lambda n: (n.start, n.pitch))
    return folded
