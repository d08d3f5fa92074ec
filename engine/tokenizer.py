"""REMI tokens for one piano stream: MIDI file -> Phrase -> token ids -> notes -> MIDI file.

miditok (REMI) builds the token sequence; this module owns everything around it so that the
bar structure is exact:

- One stream: every non-drum track of a file is merged into one piano part (programs off).
- Sustain pedal is folded into note durations when a file is read: a note whose key is released
  while CC64 is down lasts until the pedal is released or the same pitch is struck again. No
  pedal tokens exist. Pedal spans are computed here from CC64 (value >= 64 is down) because
  symusic 0.6 mis-reports the first pedal of a track (it starts it at tick 0).
- Bars: `use_rests=False`, because miditok's rests swallow Bar tokens that a rest crosses.
  miditok writes one `Bar_None` per bar, empty bars between notes included, and a `TimeSig`
  token after every Bar; a `Tempo` token appears only where the tempo changes (here once, at
  bar 0 position 0). miditok stops at the last note's bar; `encode` appends Bar+TimeSig for
  any bars it did not reach, so `count_bars(encode(p)) == p.n_bars` always.
- Quantisation is done here, not by miditok: each onset is rounded to the grid
  (`grid_per_beat` steps per beat) but kept inside the bar it was played in, so a note played
  a hair before a bar line stays in its own bar (position 31 of 4/4, not 0 of the next bar).
  The Score handed to miditok is already on its grid, so miditok only bins durations,
  velocities and tempo.
- `decode` is our own parser of the token strings, the exact inverse of `encode` on the grid.

A Phrase has one meter and one tempo (the ones in force at its end); bar 0 starts at tick 0.
"""
from __future__ import annotations

import argparse
import bisect
import importlib.metadata
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mido
import miditok
import symusic

log = logging.getLogger(__name__)

READ_TICKS_PER_QUARTER = 480    # what files of a coarser clock are read at
MIN_TICKS_PER_QUARTER = 96      # below this a file's clock cannot hold the grid
SUSTAIN_CONTROLLER = 64
PEDAL_DOWN_THRESHOLD = 64  # CC64 value from which the pedal counts as down


def ticks_per_bar(time_signature: tuple[int, int], ticks_per_beat: int) -> int:
    """Bar length in ticks, `ticks_per_beat` being ticks per quarter note."""
    num, den = time_signature
    return ticks_per_beat * 4 * num // den


def parse_time_signature(text: str) -> tuple[int, int]:
    """'6/8' -> (6, 8); usable as an argparse type (the error names the bad value)."""
    try:
        num, den = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"time signature must look like 4/4, got {text!r}") from None
    return num, den


def quantize_onset(tick: int, bar_ticks: int, steps_per_bar: int) -> int:
    """The grid step (counted from bar 0) of an onset: the nearest step, but never past its own bar's last step."""
    bar, offset = divmod(tick, bar_ticks)
    return bar * steps_per_bar + min(round(offset * steps_per_bar / bar_ticks), steps_per_bar - 1)


class MidiFileError(ValueError):
    """A MIDI file that cannot be used; message names the file and the problem."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class TokenizerSettings:
    """Fully describes the vocabulary; saved in every checkpoint."""

    num_velocities: int = 32
    beat_res: tuple[tuple[int, int, int], ...] = ((0, 4, 8), (4, 12, 4))  # (start_beat, end_beat, steps_per_beat)
    num_tempos: int = 32
    tempo_range: tuple[int, int] = (40, 250)
    pitch_range: tuple[int, int] = (21, 109)  # [low, high)
    # (denominator, numerators) pairs of the TimeSig tokens; miditok 3.1.0's default range.
    time_signatures: tuple[tuple[int, tuple[int, ...]], ...] = field(
        default=((8, (3, 12, 6)), (4, (5, 6, 3, 2, 1, 4)))
    )
    # miditok's switches, recorded with the version that made the vocabulary; this engine reads only these
    use_tempos: bool = True
    use_time_signatures: bool = True
    use_rests: bool = False           # rests swallow Bar tokens (DESIGN §4)
    use_chords: bool = False
    use_programs: bool = False        # one piano stream
    use_sustain_pedals: bool = False  # the pedal is folded into durations
    miditok_version: str = "3.1.0"

    def to_dict(self) -> dict:
        """Plain lists and numbers only, loadable with torch.load(weights_only=True)."""
        d = asdict(self)
        d["beat_res"] = [list(r) for r in self.beat_res]
        d["tempo_range"] = list(self.tempo_range)
        d["pitch_range"] = list(self.pitch_range)
        d["time_signatures"] = [[den, list(nums)] for den, nums in self.time_signatures]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TokenizerSettings":
        """Settings stored by any version (the switches and miditok's version are absent from 0.1's files)."""
        recorded = {k: d[k] for k in ("use_tempos", "use_time_signatures", "use_rests", "use_chords", "use_programs",
                                      "use_sustain_pedals", "miditok_version") if k in d}
        return cls(
            **recorded,
            num_velocities=int(d["num_velocities"]),
            beat_res=tuple(tuple(int(v) for v in r) for r in d["beat_res"]),
            num_tempos=int(d["num_tempos"]),
            tempo_range=tuple(int(v) for v in d["tempo_range"]),
            pitch_range=tuple(int(v) for v in d["pitch_range"]),
            time_signatures=tuple(
                (int(den), tuple(int(n) for n in nums)) for den, nums in d["time_signatures"]
            ),
        )

    def supports_time_signature(self, time_signature: tuple[int, int]) -> bool:
        num, den = time_signature
        return any(den == d and num in nums for d, nums in self.time_signatures)

    def vocabulary_meter(self, time_signature: tuple[int, int]) -> tuple[int, int] | None:
        """The meter of the vocabulary a file's meter is read as: itself, or one with the same bar length
        (2/2 as 4/4, 3/2 as 6/4, 6/16 as 3/8); None when there is none."""
        num, den = time_signature
        if self.supports_time_signature((num, den)):
            return num, den
        for d, nums in sorted(self.time_signatures):
            if (num * d) % den == 0 and num * d // den in nums:
                return num * d // den, d
        return None

    def meters(self) -> list[str]:
        """The vocabulary's meters, as people write them."""
        return [f"{n}/{d}" for d, nums in sorted(self.time_signatures, key=lambda x: x[0]) for n in sorted(nums)]


@dataclass(frozen=True)
class Note:
    pitch: int
    velocity: int
    start: int  # ticks at Phrase.ticks_per_beat, from the start of bar 0
    end: int


@dataclass
class Phrase:
    notes: list[Note]  # sorted by (start, pitch); all tracks merged into one piano stream
    ticks_per_beat: int  # ticks per quarter note
    time_signature: tuple[int, int]  # (numerator, denominator) in force at the end of the phrase
    tempo_bpm: float  # tempo in force at the end of the phrase

    @property
    def ticks_per_bar(self) -> int:
        return ticks_per_bar(self.time_signature, self.ticks_per_beat)

    @property
    def n_bars(self) -> int:
        """Bars spanned by the note onsets: the last onset's bar index + 1 (0 without notes)."""
        if not self.notes:
            return 0
        return max(n.start for n in self.notes) // self.ticks_per_bar + 1


@dataclass(frozen=True)
class Vocabulary:
    """Every token id's kind and value, read once from miditok's typed queries. The rest of the program asks
    here (`kind[i] == "Pitch"`, `pitch[i]`) and never takes token strings apart."""

    kind: tuple[str, ...]                       # per id: "Bar", "TimeSig", "Position", "Pitch", "Velocity", ...
    pitch: dict[int, int]                       # Pitch id -> MIDI pitch
    velocity: dict[int, int]
    position: dict[int, int]                    # Position id -> grid step in the bar
    duration_beats: dict[int, float]            # Duration id -> length in beats of the meter
    meter: dict[int, tuple[int, int]]           # TimeSig id -> (numerator, denominator)

    @classmethod
    def of(cls, tokenizer: "miditok.MusicTokenizer") -> "Vocabulary":
        size = len(tokenizer.vocab)
        kind = [""] * size
        values: dict[str, dict[int, str]] = {}
        for name in {token.split("_", 1)[0] for token in tokenizer.vocab}:
            for i in tokenizer.token_ids_of_type(name):
                kind[i] = name
                values.setdefault(name, {})[i] = tokenizer[i].split("_", 1)[1]

        def numbers(name: str, read) -> dict:
            return {i: read(v) for i, v in values.get(name, {}).items()}

        def beats(value: str) -> float:
            whole, steps, resolution = (int(x) for x in value.split("."))
            return whole + steps / resolution

        return cls(tuple(kind), numbers("Pitch", int), numbers("Velocity", int), numbers("Position", int),
                   numbers("Duration", beats), numbers("TimeSig", lambda v: tuple(int(x) for x in v.split("/"))))

    def ids(self, kind: str) -> list[int]:
        return [i for i, k in enumerate(self.kind) if k == kind]


class RemiTokenizer:
    """REMI token ids for a Phrase, built by miditok from the settings."""

    def __init__(self, settings: TokenizerSettings = TokenizerSettings()):
        switches = (settings.use_tempos, settings.use_time_signatures, settings.use_rests, settings.use_chords,
                    settings.use_programs, settings.use_sustain_pedals)
        if switches != (True, True, False, False, False, False):
            raise ValueError("this engine reads REMI with tempos and time signatures, without rests, chords, "
                             f"programs or pedal tokens; these settings ask for {settings}")
        installed = importlib.metadata.version("miditok")
        if settings.miditok_version != installed:
            log.warning("the vocabulary was made with miditok %s, this is %s: token ids may differ",
                        settings.miditok_version, installed)
        self.settings = settings
        config = miditok.TokenizerConfig(
            pitch_range=tuple(settings.pitch_range),
            beat_res={(s, e): r for s, e, r in settings.beat_res},
            num_velocities=settings.num_velocities,
            use_tempos=settings.use_tempos,
            num_tempos=settings.num_tempos,
            tempo_range=tuple(settings.tempo_range),
            use_time_signatures=settings.use_time_signatures,
            time_signature_range={den: list(nums) for den, nums in settings.time_signatures},
            use_rests=settings.use_rests,
            use_chords=settings.use_chords,
            use_programs=settings.use_programs,
            use_sustain_pedals=settings.use_sustain_pedals,
        )
        self._miditok = miditok.REMI(config)
        self._id_to_str = [""] * len(self._miditok.vocab)
        for token, token_id in self._miditok.vocab.items():
            self._id_to_str[token_id] = token
        self.vocab_size = len(self._id_to_str)
        self.vocabulary = Vocabulary.of(self._miditok)
        self.grid_per_beat = self._miditok.config.max_num_pos_per_beat
        self.bar_id = self._miditok.vocab["Bar_None"]
        self.pad_id = self._miditok.pad_token_id
        # miditok's ticks per quarter: grid_per_beat, times 2 when x/8 meters are in the vocabulary
        self._score_tpq = self._miditok.time_division

    def token_str(self, token_id: int) -> str:
        return self._id_to_str[token_id]

    def vocab(self) -> list[str]:
        """token_str of every id; index = id."""
        return list(self._id_to_str)

    def positions_per_bar(self, time_signature: tuple[int, int]) -> int:
        """Grid steps in a bar: miditok counts the meter's own beat (an eighth in x/8)."""
        return time_signature[0] * self.grid_per_beat

    def count_bars(self, tokens) -> int:
        return sum(1 for t in tokens if t == self.bar_id)

    # ---- files -> Phrase -------------------------------------------------------------

    def read_midi(self, path, time_signature: tuple[int, int] | None = None) -> Phrase:
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
        # a coarse clock (a few ticks per quarter) cannot place notes on the grid: read it at 480
        scale = READ_TICKS_PER_QUARTER / tpq if tpq < MIN_TICKS_PER_QUARTER else 1.0
        ticks_per_quarter = READ_TICKS_PER_QUARTER if scale != 1.0 else tpq

        first_onset = min((n.time for t in score.tracks if not t.is_drum for n in t.notes), default=0)
        events = sorted((ts.time, (ts.numerator, ts.denominator)) for ts in score.time_signatures)
        if events and events[0][0] > first_onset:
            events.insert(0, (0, (4, 4)))   # the meter before the first time signature is 4/4 (the MIDI default)
        time_signatures = sorted({meter for _, meter in events})
        if time_signature is not None:
            time_signatures = [tuple(time_signature)]
        if len(time_signatures) > 1:
            listed = ", ".join(f"{n}/{d}" for n, d in time_signatures)
            raise MidiFileError(path, f"several time signatures ({listed}); a phrase has one meter")
        meter = time_signatures[0] if time_signatures else (4, 4)
        time_signature = self.settings.vocabulary_meter(meter)
        if time_signature is None:
            raise MidiFileError(path, f"time signature {meter[0]}/{meter[1]} is not supported; "
                                      f"supported: {', '.join(self.settings.meters())} (and meters of the same bar length)")
        tempos = [t.qpm for t in sorted(score.tempos, key=lambda t: t.time) if math.isfinite(t.qpm) and t.qpm > 0]
        low, high = self.settings.tempo_range
        tempo_bpm = min(max(float(tempos[-1]), low), high) if tempos else 120.0

        lowest, highest = self.settings.pitch_range
        notes, pedal_spans, outside = [], [], 0
        for track in score.tracks:
            if track.is_drum:
                continue
            track_end = max([n.end for n in track.notes] + [c.time for c in track.controls], default=0)
            spans = [(round(a * scale), round(b * scale)) for a, b in _pedal_spans(track.controls, track_end)]
            for n in track.notes:
                if not lowest <= n.pitch < highest:
                    outside += 1
                    continue
                start = round(n.time * scale)
                notes.append(Note(int(n.pitch), int(n.velocity), start, max(start + 1, round((n.time + n.duration) * scale))))
                pedal_spans.append(spans)
        if not notes:
            raise MidiFileError(path, f"no notes in the piano range {lowest}-{highest - 1}" if outside else "no notes")
        notes = _fold_sustain(notes, pedal_spans)
        return Phrase(notes, ticks_per_quarter, time_signature, tempo_bpm)

    def write_midi(
        self,
        notes: list[Note],
        path,
        *,
        ticks_per_beat: int,
        tempo_bpm: float,
        time_signature: tuple[int, int],
        end_tick: int | None = None,
    ) -> None:
        """One track, piano (program 0), tempo and time signature at tick 0, notes at absolute ticks.
        Notes are made playable first (see `playable_notes`): every note-on has its own later note-off."""
        events = []  # (tick, order, message); note-offs before note-ons at the same tick
        for n in playable_notes(notes):
            events.append((n.end, 0, mido.Message("note_off", note=n.pitch, velocity=0)))
            events.append((n.start, 1, mido.Message("note_on", note=n.pitch, velocity=max(1, min(127, n.velocity)))))
        events.sort(key=lambda e: (e[0], e[1], e[2].note))
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

    # ---- Phrase -> tokens --------------------------------------------------------------

    def encode(self, phrase: Phrase) -> list[int]:
        """REMI ids; starts with Bar and holds one Bar token per bar of the phrase ([] without notes)."""
        if not phrase.notes:
            return []
        if not self.settings.supports_time_signature(phrase.time_signature):
            raise ValueError(f"time signature {phrase.time_signature} is not in the vocabulary")
        score = self._grid_score(phrase)
        tokens = list(self._miditok.encode(score)[0].ids)
        num, den = phrase.time_signature
        time_sig_id = self._miditok.vocab[f"TimeSig_{num}/{den}"]
        # miditok stops at its last note; bars whose notes it dropped (pitch out of range) come back empty
        for _ in range(phrase.n_bars - self.count_bars(tokens)):
            tokens += [self.bar_id, time_sig_id]
        return tokens

    def encode_file(self, path) -> list[int]:
        return self.encode(self.read_midi(path))

    def _grid_score(self, phrase: Phrase) -> symusic.Score:
        """The phrase as a symusic Score already on miditok's grid (onsets kept in their bar)."""
        num, den = phrase.time_signature
        tpb_in, tpq_out = phrase.ticks_per_beat, self._score_tpq
        step_out = tpq_out * 4 // den // self.grid_per_beat  # score ticks per grid step
        steps_per_bar = num * self.grid_per_beat
        bar_in = phrase.ticks_per_bar
        # One key struck once per grid step: same-pitch onsets merge (longest, loudest), which
        # also leaves miditok no order to choose among notes that share a tick.
        grid_notes: dict[tuple[int, int], tuple[int, int]] = {}
        for n in phrase.notes:
            start = quantize_onset(n.start, bar_in, steps_per_bar) * step_out
            duration = max(1, round((n.end - n.start) * tpq_out / tpb_in))
            velocity = max(1, min(127, n.velocity))
            old = grid_notes.get((start, n.pitch), (0, 0))
            grid_notes[start, n.pitch] = (max(old[0], duration), max(old[1], velocity))
        track = symusic.Track(name="piano", program=0, is_drum=False)
        for (start, pitch), (duration, velocity) in sorted(grid_notes.items()):
            track.notes.append(symusic.Note(start, duration, pitch, velocity))
        score = symusic.Score(tpq_out)
        score.tempos.append(symusic.Tempo(0, qpm=phrase.tempo_bpm))
        score.time_signatures.append(symusic.TimeSignature(0, num, den))
        score.tracks.append(track)
        return score

    # ---- tokens -> notes ---------------------------------------------------------------

    def decode(self, tokens: list[int], ticks_per_beat: int = 480, time_signature=(4, 4)) -> list[Note]:
        """Notes from token ids; Pitch/Velocity/Duration runs that are incomplete are skipped."""
        notes = []
        time_signature = tuple(time_signature)
        bar_start = None  # tick of the current bar; None before the first Bar token
        position = 0
        pitch = velocity = None

        def beat_ticks() -> float:
            return ticks_per_beat * 4 / time_signature[1]

        vocabulary = self.vocabulary
        for token_id in tokens:
            kind = vocabulary.kind[token_id]
            if kind == "Bar":
                if bar_start is None:
                    bar_start = 0
                else:
                    bar_start += ticks_per_bar(time_signature, ticks_per_beat)
                position = bar_start
                pitch = velocity = None
            elif kind == "TimeSig":
                time_signature = vocabulary.meter[token_id]
            elif bar_start is None:
                continue
            elif kind == "Position":
                position = bar_start + round(vocabulary.position[token_id] * beat_ticks() / self.grid_per_beat)
                pitch = velocity = None
            elif kind == "Pitch":
                pitch, velocity = vocabulary.pitch[token_id], None
            elif kind == "Velocity" and pitch is not None:
                velocity = vocabulary.velocity[token_id]
            elif kind == "Duration" and pitch is not None and velocity is not None:
                duration = round(vocabulary.duration_beats[token_id] * beat_ticks())
                notes.append(Note(pitch, velocity, position, position + duration))
                pitch = velocity = None
            else:
                pitch = velocity = None
        notes.sort(key=lambda n: (n.start, n.pitch))
        return notes


    def decode_last_bars(self, tokens: list[int], bars: int, ticks_per_beat: int = 480,
                         time_signature=(4, 4)) -> tuple[list[Note], int]:
        """The notes of the last `bars` bars of `tokens`, in ticks that end at 0 (earlier notes start
        below 0, notes are cut at 0), and how many bars there were (fewer when `tokens` is shorter)."""
        bar_at = [i for i, t in enumerate(tokens) if t == self.bar_id][-bars:] if bars > 0 else []
        if not bar_at:
            return [], 0
        meter = tuple(time_signature)
        for t in tokens[bar_at[0]:bar_at[0] + 2]:   # miditok writes the TimeSig right after each Bar
            meter = self.vocabulary.meter.get(t, meter)
        notes = self.decode(tokens[bar_at[0]:], ticks_per_beat, meter)
        end = len(bar_at) * ticks_per_bar(meter, ticks_per_beat)
        return [Note(n.pitch, n.velocity, n.start - end, min(n.end, end) - end) for n in notes], len(bar_at)


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
