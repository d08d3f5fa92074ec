"""REMI tokens for one piano stream: Phrase -> token ids -> notes (MIDI files: engine/midi_file.py).

miditok (REMI) builds the token sequence; this module owns everything around it so that the
bar structure is exact:

- One stream: every non-drum track of a file is merged into one piano part (programs off).
- Sustain pedal is folded into note durations when a file is read (engine/midi_file.py); no pedal
  tokens exist.
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
- `decode` reads token ids through the Vocabulary's tables (never token strings), the exact inverse
  of `encode` on the grid.

A Phrase has one meter and one tempo (the ones in force at its end); bar 0 starts at tick 0.
"""
from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import asdict, dataclass, field, fields, replace

import miditok
import symusic

from engine.music import TICKS_PER_QUARTER, MeterMap, Note, Phrase, beat_length, quantize_onset
from engine.vocabulary import Vocabulary

log = logging.getLogger(__name__)

FILL_SUFFIX, FILL_MIDDLE = "FillSuffix", "FillMiddle"   # the fill markers' kinds (and their token strings)
FILL_GAP_BARS = (1, 4)   # a gap's bars, fewest and most: the gaps a model learns to fill (trainer/fill.py)
FILL_AFTER_BARS = 32     # the most bars after a gap a fill reads: the song memory finds in them what the gap
                         # repeats (held-out POP909, 32 bars before: -10% NLL with 32 after, -1.5% with 8)


@dataclass(frozen=True)
class TokenizerSettings:
    """Fully describes the vocabulary; saved in every checkpoint."""

    num_velocities: int = 32
    beat_res: tuple[tuple[int, int, int], ...] = ((0, 4, 8), (4, 12, 4))  # (start_beat, end_beat, steps_per_beat)
    num_tempos: int = 32
    tempo_range: tuple[int, int] = (40, 250)
    pitch_range: tuple[int, int] = (21, 109)  # [low, high)
    # (denominator, numerators) pairs of the TimeSig tokens: miditok 3.1.0's default range with the odd meters
    # composers write (5/8, 7/8, 9/8, 11/8, 7/4); a vocabulary without them grows into this one (`grows_into`)
    time_signatures: tuple[tuple[int, tuple[int, ...]], ...] = field(
        default=((8, (3, 5, 6, 7, 9, 11, 12)), (4, (1, 2, 3, 4, 5, 6, 7)))
    )
    # miditok's switches, recorded with the version that made the vocabulary; this engine reads only these
    use_tempos: bool = True
    use_time_signatures: bool = True
    use_rests: bool = False           # rests swallow Bar tokens (docs/design.md §3)
    use_chords: bool = False
    use_programs: bool = False        # one piano stream
    use_sustain_pedals: bool = False  # the pedal is folded into durations
    miditok_version: str = "3.1.0"
    # miditok's bar attribute controls, written after a bar's Bar and TimeSig (their ids follow all others,
    # so a vocabulary with them keeps every id of the one without): the bar's note count (0 .. max-1, then
    # "max+"), its fewest and most notes struck at one onset, and the pitch classes it holds
    ac_note_density_bar: bool = False
    ac_note_density_bar_max: int = 64     # dense two-hand piano holds 20-60 notes a bar
    ac_polyphony_bar: bool = False
    ac_polyphony_min: int = 1
    ac_polyphony_max: int = 6
    ac_pitch_class_bar: bool = False
    # two tokens after all of miditok's, for filling a gap (docs/design.md §3): FillSuffix (the bars after the
    # gap follow) and FillMiddle (the gap's bars follow); a vocabulary with them keeps every other id
    fill_markers: bool = False

    @property
    def controls(self) -> bool:
        """True when the vocabulary has bar controls."""
        return self.ac_note_density_bar or self.ac_polyphony_bar or self.ac_pitch_class_bar

    def with_controls(self) -> "TokenizerSettings":
        """These settings with every bar control this engine reads: density, polyphony and pitch class."""
        return replace(self, ac_note_density_bar=True, ac_polyphony_bar=True, ac_pitch_class_bar=True)

    def with_fill_markers(self) -> "TokenizerSettings":
        return replace(self, fill_markers=True)

    def grows_into(self, other: "TokenizerSettings") -> bool:
        """Whether a model of this vocabulary extends to `other`'s, every token of this one kept: meters added, bar
        controls added, fill markers added, or any of them (`RemiTokenizer.rows_from` says where each row goes:
        the ids after a new meter move)."""
        if not set(self.meters()) <= set(other.meters()) or self.fill_markers and not other.fill_markers:
            return False
        grown = replace(self, time_signatures=other.time_signatures)
        grown = grown.with_controls() if other.controls and not self.controls else grown
        return (grown.with_fill_markers() if other.fill_markers else grown) == other

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
        """Settings stored by any version (the switches and miditok's version are absent from 0.1's files, the
        bar controls and fill markers from every file before them: off)."""
        recorded = {f.name: d[f.name] for f in fields(cls)
                    if (f.name.startswith(("use_", "ac_")) or f.name in ("miditok_version", "fill_markers"))
                    and f.name in d}
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
            ac_note_density_bar=settings.ac_note_density_bar,
            ac_note_density_bar_max=settings.ac_note_density_bar_max,
            ac_polyphony_bar=settings.ac_polyphony_bar,
            ac_polyphony_min=settings.ac_polyphony_min,
            ac_polyphony_max=settings.ac_polyphony_max,
            ac_pitch_class_bar=settings.ac_pitch_class_bar,
        )
        self._miditok = miditok.REMI(config)
        self._id_to_str = [""] * len(self._miditok.vocab)
        for token, token_id in self._miditok.vocab.items():
            self._id_to_str[token_id] = token
        self.vocabulary = Vocabulary.of(self._miditok)
        self.fill_suffix_id = self.fill_middle_id = None
        if settings.fill_markers:
            self.fill_suffix_id, self.fill_middle_id = len(self._id_to_str), len(self._id_to_str) + 1
            self._id_to_str += [FILL_SUFFIX, FILL_MIDDLE]
            self.vocabulary = replace(self.vocabulary, kind=self.vocabulary.kind + (FILL_SUFFIX, FILL_MIDDLE))
        self.fill_marker_ids = tuple(i for i in (self.fill_suffix_id, self.fill_middle_id) if i is not None)
        self.vocab_size = len(self._id_to_str)
        self.grid_per_beat = self._miditok.config.max_num_pos_per_beat
        self.bar_id = self._miditok.vocab["Bar_None"]
        self.pad_id = self._miditok.pad_token_id
        # miditok's ticks per quarter: grid_per_beat, times 2 when x/8 meters are in the vocabulary
        self._score_tpq = self._miditok.time_division

    def rows_from(self, old: "RemiTokenizer") -> list[int | None]:
        """For each id of this vocabulary, the id of `old` whose model rows it takes (`RWKV7.grow_vocabulary`): the
        same token; for a meter `old` lacks, its nearest meter (the same beat, then the closest bar length, then the
        shorter: 7/8 as 6/8, 7/4 as 6/4), so a new meter starts as the one it is most like; None for a token new in
        kind (a bar control, a fill marker)."""
        if not old.settings.grows_into(self.settings):
            raise ValueError(f"a vocabulary of {old.settings} does not grow into one of {self.settings}")
        ids = {token: i for i, token in enumerate(old.vocab())}
        meters = old.vocabulary.meter.items()

        def nearest(meter: tuple[int, int]) -> int:
            def distance(item):
                (num, den), length = item[1], item[1][0] / item[1][1]
                return den != meter[1], abs(length - meter[0] / meter[1]), length

            return min(meters, key=distance)[0]

        return [ids.get(token, nearest(self.vocabulary.meter[i]) if i in self.vocabulary.meter else None)
                for i, token in enumerate(self.vocab())]

    def token_str(self, token_id: int) -> str:
        return self._id_to_str[token_id]

    def vocab(self) -> list[str]:
        """token_str of every id; index = id."""
        return list(self._id_to_str)

    def positions_per_bar(self, time_signature: tuple[int, int]) -> int:
        """Grid steps in a bar: miditok counts the meter's own beat (an eighth in x/8)."""
        return time_signature[0] * self.grid_per_beat

    def fill_reading(self, before: list[int], after: list[int]) -> list[int]:
        """What a model reads to fill a gap: the bars before it, FillSuffix, the bars after it, FillMiddle, then the
        bar after the gap and the bar before it once more (then it writes the gap from its Bar); the one spelling
        of it for training, filling and evaluation. The two bars are read again because a recurrent state holds
        little of what it read more than a few bars ago: without them, the bar the gap must lead into lies the
        whole suffix back, and the bar it must follow further still."""
        starts = self.bar_starts(before)
        recap = list(before[starts[-1]:]) if starts else []
        return (list(before) + [self.fill_suffix_id] + list(after) + [self.fill_middle_id]
                + self.first_bars(list(after), 1) + recap)

    def around_gap(self, tokens, first: int, last: int, after_bars: int = FILL_AFTER_BARS
                   ) -> tuple[list[int], list[int]]:
        """For filling bars first..last (0-based) of `tokens`: the tokens before them (from the start) and those of
        up to `after_bars` bars after them (from their Bar; an unfinished bar's tail included). The gap's own tokens
        are in neither: a fill never reads what it replaces (the one split, for files and live)."""
        starts = self.bar_starts(tokens) + [len(tokens)]
        end = starts[min(last + 1 + after_bars, len(starts) - 1)]
        return list(tokens[:starts[first]]), list(tokens[starts[last + 1]:end])

    def count_bars(self, tokens) -> int:
        return sum(1 for t in tokens if t == self.bar_id)

    def bar_starts(self, tokens) -> list[int]:
        """The index of every Bar token in `tokens`: where each bar begins."""
        return [i for i, t in enumerate(tokens) if t == self.bar_id]

    def first_bars(self, tokens: list[int], bars: int) -> list[int]:
        """The tokens of the first `bars` bars (all of them when there are no more)."""
        starts = self.bar_starts(tokens)
        return tokens[:starts[bars]] if len(starts) > bars else tokens

    # ---- Phrase -> tokens --------------------------------------------------------------

    def encode(self, phrase: Phrase, controls: bool = False) -> list[int]:
        """REMI ids; starts with Bar and holds one Bar token per bar of the phrase ([] without notes). With
        `controls` (a vocabulary with bar controls), every bar with notes carries its controls after its
        TimeSig, as miditok computes them on the grid (miditok leaves the first bar without)."""
        if not phrase.notes:
            return []
        if controls and not self.settings.controls:
            raise ValueError("this vocabulary has no bar controls")
        bars = phrase.bars
        for bar, meter in bars.changes:
            if not self.settings.supports_time_signature(meter):
                raise ValueError(f"time signature {meter[0]}/{meter[1]} (bar {bar + 1}) is not in the vocabulary")
        score = self._grid_score(phrase)
        every_bar = {0: {i: list(range(phrase.n_bars)) for i in range(len(self._miditok.attribute_controls))}}
        tokens = list(self._miditok.encode(score, attribute_controls_indexes=every_bar if controls else None)[0].ids)
        # miditok stops at its last note; bars whose notes it dropped (pitch out of range) come back empty
        for bar in range(self.count_bars(tokens), phrase.n_bars):
            num, den = bars.meter(bar)
            tokens += [self.bar_id, self._miditok.vocab[f"TimeSig_{num}/{den}"]]
        return tokens

    def _grid_score(self, phrase: Phrase) -> symusic.Score:
        """The phrase as a symusic Score already on miditok's grid (onsets kept in their bar), each bar in its meter."""
        bars, tpq_out = phrase.bars, self._score_tpq
        score_bars = MeterMap(bars.changes, tpq_out)

        def step_ticks(meter) -> int:
            return int(beat_length(meter, tpq_out)) // self.grid_per_beat   # score ticks per grid step

        # One key struck once per grid step: same-pitch onsets merge (longest, loudest), which
        # also leaves miditok no order to choose among notes that share a tick.
        grid_notes: dict[tuple[int, int], tuple[int, int]] = {}
        for n in phrase.notes:
            bar = bars.bar_of(n.start)
            meter = bars.meter(bar)
            step = quantize_onset(n.start - bars.bar_line(bar), bars.bar_ticks(bar), self.positions_per_bar(meter))
            start = score_bars.bar_line(bar) + step * step_ticks(meter)
            duration = max(1, round((n.end - n.start) * tpq_out / phrase.ticks_per_beat))
            velocity = max(1, min(127, n.velocity))
            old = grid_notes.get((start, n.pitch), (0, 0))
            grid_notes[start, n.pitch] = (max(old[0], duration), max(old[1], velocity))
        track = symusic.Track(name="piano", program=0, is_drum=False)
        for (start, pitch), (duration, velocity) in sorted(grid_notes.items()):
            track.notes.append(symusic.Note(start, duration, pitch, velocity))
        score = symusic.Score(tpq_out)
        score.tempos.append(symusic.Tempo(0, qpm=phrase.tempo_bpm))
        for bar, (num, den) in bars.changes:
            score.time_signatures.append(symusic.TimeSignature(score_bars.bar_line(bar), num, den))
        score.tracks.append(track)
        return score

    # ---- tokens -> notes ---------------------------------------------------------------

    def decode(self, tokens: list[int], ticks_per_beat: int = TICKS_PER_QUARTER, time_signature=(4, 4)) -> list[Note]:
        """Notes from token ids; Pitch/Velocity/Duration runs that are incomplete are skipped."""
        notes = []
        time_signature = tuple(time_signature)
        bar_start = None  # tick of the current bar; None before the first Bar token
        position = 0
        pitch = velocity = None

        def beat_ticks() -> float:
            return beat_length(time_signature, ticks_per_beat)

        vocabulary = self.vocabulary
        for token_id in tokens:
            kind = vocabulary.kind[token_id]
            if kind == "Bar":
                if bar_start is None:
                    bar_start = 0
                else:
                    bar_start += MeterMap.constant(time_signature, ticks_per_beat).bar_ticks()
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


    def decode_last_bars(self, tokens: list[int], bars: int, ticks_per_beat: int = TICKS_PER_QUARTER,
                         time_signature=(4, 4)) -> tuple[list[Note], int]:
        """The notes of the last `bars` bars of `tokens`, in ticks that end at 0 (earlier notes start
        below 0, notes are cut at 0), and how many bars there were (fewer when `tokens` is shorter)."""
        bar_at = self.bar_starts(tokens)[-bars:] if bars > 0 else []
        if not bar_at:
            return [], 0
        meter = tuple(time_signature)
        for t in tokens[bar_at[0]:bar_at[0] + 2]:   # miditok writes the TimeSig right after each Bar
            meter = self.vocabulary.meter.get(t, meter)
        notes = self.decode(tokens[bar_at[0]:], ticks_per_beat, meter)
        end = MeterMap.constant(meter, ticks_per_beat).span(len(bar_at))
        return [Note(n.pitch, n.velocity, n.start - end, min(n.end, end) - end) for n in notes], len(bar_at)
