"""LiveScore: MIDI note events, as they are played, turned into REMI tokens that are final (docs/design.md §2).

Notes are kept in ticks (`ticks_per_beat` per quarter) of a monotonic timeline whose bar lines are
those of a `MeterMap` (engine/music.py). Bar 0 of the score is the bar holding the first note (or the tick
given to `start`). The tokens are the tokenizer's own: every commit re-encodes, with
`RemiTokenizer.encode`, only the final notes from the last committed bar line on, and emits what
goes beyond what was already committed. The committed stream therefore equals the offline
encoding of the same performance, token for token.

Commit horizon. A grid position p is *closed* once no future onset can land on it, i.e. once the
quantised position of "now" is past p (a note played half a step late still snaps back, and the
last step of a bar stays open up to the bar line, because onsets are kept inside their bar). The
*frontier* is the first position that is not closed, or that holds, or comes after, a note whose
duration is still unknown. Everything before the frontier is final; a Bar token is final when the
frontier reaches its bar line. A note's duration is known once it has ended (key released with the
pedal up, or a sustained note ended by the pedal or by its pitch struck again) and time has moved
past its end (a pedal pressed at the very tick of the release still sustains it), or once it has
lasted longer than the longest Duration token, whose token cannot change any more.

Tempo: the stream has one Tempo token, at bar 0, holding the tempo given to `start` (the clock's
tempo when the first note was played); later tempo changes do not enter the tokens.

Accepted candidates are spliced into the committed stream before the next committed Bar token, so
the model hears them as bars of their own between what was played before and after. The bars of an
answer (muse_bridge/answers.py) spliced in are remembered, so that previews can draw them as answers.

Quiet: since the last key was released with the pedal up (or the pedal lifted with no key down),
nothing sounds; `quiet_since` is that tick, which is where an answer's pause is counted from.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from engine.midi_file import PEDAL_DOWN_THRESHOLD, SUSTAIN_CONTROLLER
from engine.music import TICKS_PER_QUARTER, MeterMap, Note, Phrase, beat_length
from engine.tokenizer import RemiTokenizer


@dataclass(frozen=True)
class LiveScoreConfig:
    ticks_per_beat: int = TICKS_PER_QUARTER   # ticks per quarter note of the timeline
    time_signature: tuple[int, int] = (4, 4)  # cannot be read from MIDI clock: a setting


@dataclass
class _LiveNote:
    pitch: int
    velocity: int
    start: int
    channel: int
    step: int                  # quantised grid position, counted in steps from bar 0
    end: int | None = None     # known end tick
    released_at: int | None = None
    sustained: bool = False    # released under the pedal, waiting for the pedal or a re-strike


class LiveScoreError(RuntimeError):
    """The live tokens stopped agreeing with the tokenizer: a bug, never a user error."""


class LiveScore:
    """Notes in, final tokens out; `advance(now)` returns the tokens that became final."""

    def __init__(self, tokenizer: RemiTokenizer, config: LiveScoreConfig = LiveScoreConfig(),
                 tempo_bpm: float = 120.0):
        if not tokenizer.settings.supports_time_signature(config.time_signature):
            num, den = config.time_signature
            raise ValueError(f"time signature {num}/{den} is not in this model's vocabulary; it reads "
                             f"{', '.join(tokenizer.settings.meters())}")
        self.tokenizer, self.config, self.default_tempo = tokenizer, config, tempo_bpm
        tpb = config.ticks_per_beat
        self.timeline = MeterMap.constant(config.time_signature, tpb)   # the timeline's bar lines
        self.bars = self.timeline                                          # the score's: bar 0 at its origin
        self.steps_per_bar = tokenizer.positions_per_bar(config.time_signature)
        max_beats = max(tokenizer.vocabulary.duration_beats.values())
        # one beat of margin: past this, any duration bins to the longest Duration token
        self.long_ticks = math.ceil((max_beats + 1) * beat_length(config.time_signature, tpb))
        num, den = config.time_signature
        self._bar_tokens = [tokenizer.bar_id, next(i for i, meter in tokenizer.vocabulary.meter.items()
                                                   if meter == (num, den))]
        self.reset()

    # ---- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything played; the next note starts bar 0 again."""
        self.origin: int | None = None
        self.tempo_bpm = self.default_tempo
        self.live_tokens: list[int] = []     # the performance's own tokens (what offline encoding gives)
        self.committed: list[int] = []       # what the Session was given: live tokens plus accepted candidates
        self._bar_index: list[int] = []      # index in live_tokens of each committed bar's Bar token
        self._frontier = 0
        self._now = 0
        self._open: list[_LiveNote] = []     # notes at or after the frontier
        self._final: list[_LiveNote] = []    # committed notes of the bars still being re-encoded
        self._held: dict[tuple[int, int], deque[_LiveNote]] = {}   # keys down, first struck first released
        self._pedal: dict[int, bool] = {}
        self._last_onset: dict[int, int] = {}
        self._insertion: list[int] = []
        self.answer_bars: set[int] = set()   # bar indices of the committed stream (and tail) that are answers
        self.inserted_bars: set[int] = set()  # ... that were spliced in (accepted or answered), not played
        self._last_sound_tick = 0            # the tick of the last key or pedal change
        self.notes_seen = 0

    @property
    def started(self) -> bool:
        return self.origin is not None

    def start(self, origin_tick: int, tempo_bpm: float | None = None) -> None:
        """Make `origin_tick` (a bar line of the timeline) bar 0, with the session's one tempo."""
        self.origin = int(origin_tick)
        self.bars = MeterMap.constant(self.config.time_signature, self.config.ticks_per_beat, self.origin)
        self._now = max(self._now, self.origin)
        if tempo_bpm is not None:
            self.tempo_bpm = float(tempo_bpm)

    def step_of(self, tick: int) -> int:
        """The grid position an onset at `tick` is quantised to (the tokenizer's rule: kept inside its bar)."""
        return self.bars.step_of(max(self.origin, int(tick)), self.steps_per_bar)

    @property
    def sounding(self) -> int:
        """Notes whose end is not known yet."""
        return sum(1 for n in self._open if n.end is None)

    @property
    def quiet_since(self) -> int | None:
        """The timeline tick since which nothing sounds (no key down, no pedal down), None while something does
        or before anything was played."""
        if self.origin is None or any(self._held.values()) or any(self._pedal.values()):
            return None
        return self._last_sound_tick

    # ---- events --------------------------------------------------------------------------

    def _clock(self, tick: int) -> int:
        # events come in time order; one stamped a hair before the last `advance` counts as now
        self._now = max(self._now, int(tick))
        return self._now

    def note_on(self, tick: int, pitch: int, velocity: int, channel: int = 0) -> None:
        if velocity == 0:
            self.note_off(tick, pitch, channel)
            return
        if self.origin is None:
            self.start(self.timeline.bar_line_at_or_before(int(tick)))
        t = self._last_sound_tick = self._clock(tick)
        for n in self._open:  # a sustained note ends where its pitch is struck again
            if n.sustained and n.pitch == pitch and n.start < t:
                n.end, n.sustained = t, False
        self._last_onset[pitch] = t
        note = _LiveNote(pitch, velocity, t, channel, self.step_of(t))
        self._held.setdefault((channel, pitch), deque()).append(note)
        self._open.append(note)
        self.notes_seen += 1

    def note_off(self, tick: int, pitch: int, channel: int = 0) -> None:
        t = self._last_sound_tick = self._clock(tick)
        held = self._held.get((channel, pitch))
        if not held:
            return  # a release without a press (e.g. the key was down before the score started)
        note = held.popleft()
        note.released_at = t
        struck_since = self._last_onset.get(pitch, note.start) > note.start
        if self._pedal.get(channel) and not struck_since:
            note.sustained = True
        else:
            note.end = t

    def control_change(self, tick: int, control: int, value: int, channel: int = 0) -> None:
        if control != SUSTAIN_CONTROLLER:
            return
        t = self._last_sound_tick = self._clock(tick)
        down = value >= PEDAL_DOWN_THRESHOLD
        if down and not self._pedal.get(channel):
            self._pedal[channel] = True
            for n in self._open:  # a pedal pressed at the very tick of a release still catches it
                if (n.channel == channel and n.released_at == t and n.end == t
                        and self._last_onset.get(n.pitch) == n.start):
                    n.end, n.sustained = None, True
        elif not down and self._pedal.get(channel):
            self._pedal[channel] = False
            for n in self._open:
                if n.sustained and n.channel == channel:
                    n.end, n.sustained = t, False

    def handle(self, message, tick: int) -> None:
        """Apply a mido message (note on/off, sustain pedal; anything else is ignored)."""
        if message.type == "note_on":
            self.note_on(tick, message.note, message.velocity, message.channel)
        elif message.type == "note_off":
            self.note_off(tick, message.note, message.channel)
        elif message.type == "control_change":
            self.control_change(tick, message.control, message.value, message.channel)

    def insert_at_next_bar(self, tokens: list[int], answer: bool = False) -> None:
        """Splice tokens (an accepted candidate, starting with Bar) in before the next committed Bar; `answer`
        marks its bars as an answer's."""
        # no Bar is committed before the splice, so the bars' indices are known now
        first = self.tokenizer.count_bars(self.committed) + self.tokenizer.count_bars(self._insertion)
        added = set(range(first, first + self.tokenizer.count_bars(tokens)))
        self.inserted_bars |= added
        self.answer_bars |= added if answer else set()
        self._insertion += list(tokens)

    # ---- commit horizon ---------------------------------------------------------------------

    def _is_final(self, n: _LiveNote, now: int) -> bool:
        if n.end is not None and n.end < now:
            return True
        return (now if n.end is None else n.end) - n.start >= self.long_ticks

    def _note_for_encoding(self, n: _LiveNote, now: int) -> Note:
        end = n.end if n.end is not None else max(now, n.start + 1)
        return Note(n.pitch, n.velocity, n.start, min(end, n.start + self.long_ticks))

    def frontier(self, now: int) -> int:
        """First grid position (in steps from bar 0) whose tokens are not final at `now`."""
        f = self.step_of(now)
        for n in self._open:
            if n.step < f and not self._is_final(n, now):
                f = n.step
        return f

    def advance(self, now: int) -> list[int]:
        """Move time to `now`; returns the tokens that became final (to feed to the Session)."""
        if self.origin is None:
            out, self._insertion = self._insertion, []
            self.committed += out
            return out
        now = self._clock(now)
        f = self.frontier(now)
        last_bar = f // self.steps_per_bar
        if f == self._frontier and last_bar < len(self._bar_index):
            return []
        self._frontier = f
        done = [n for n in self._open if n.step < f]
        self._open = [n for n in self._open if n.step >= f]
        self._final += done
        window = max(0, len(self._bar_index) - 1)
        notes = [self._note_for_encoding(n, now) for n in self._final if n.step >= window * self.steps_per_bar
                 and n.step < f]
        new = self._beyond_committed(self._window_tokens(notes, window, last_bar), window)
        # record the bar lines just committed, then drop notes of bars that will not be re-encoded
        base = len(self.live_tokens)
        for i, t in enumerate(new):
            if t == self.tokenizer.bar_id:
                self._bar_index.append(base + i)
        self.live_tokens += new
        window = max(0, len(self._bar_index) - 1)
        self._final = [n for n in self._final if n.step >= window * self.steps_per_bar]
        out = self._splice_insertion(new)
        self.committed += out
        return out

    def tail(self, now: int) -> list[int]:
        """The tokens that are not final yet, through the end of the bar holding `now`, sounding notes
        cut at `now`: what a suggestion made now should see after the committed tokens."""
        if self.origin is None:
            return list(self._insertion)
        now = max(self._now, int(now))
        window = max(0, len(self._bar_index) - 1)
        notes = [self._note_for_encoding(n, now) for n in self._final + self._open
                 if n.step >= window * self.steps_per_bar]
        last_bar = max(self.bars.bar_of(now), len(self._bar_index) - 1)
        tail = self._beyond_committed(self._window_tokens(notes, window, last_bar), window)
        if self._insertion:
            bars = self.tokenizer.bar_starts(tail)
            at = bars[0] if bars else len(tail)
            tail = tail[:at] + self._insertion + tail[at:]
        return tail

    # ---- tokens ---------------------------------------------------------------------------

    def _window_tokens(self, notes: list[Note], first_bar: int, last_bar: int) -> list[int]:
        """Tokens of bars first_bar..last_bar holding `notes`, exactly as in the encoding of the whole score."""
        shift = self.bars.bar_line(first_bar)
        phrase = Phrase(sorted((Note(n.pitch, n.velocity, n.start - shift, n.end - shift) for n in notes),
                            key=lambda n: (n.start, n.pitch)),
                        self.config.ticks_per_beat, self.config.time_signature, self.tempo_bpm)
        tokens = self.tokenizer.encode(phrase)
        if first_bar > 0 and tokens:
            # The one Tempo token belongs to bar 0: drop it, and the Position_0 opened only for it.
            del tokens[3]
            if len(tokens) == 3 or self.tokenizer.vocabulary.kind[tokens[3]] != "Pitch":
                del tokens[2]
        n_bars = last_bar - first_bar + 1
        for _ in range(n_bars - self.tokenizer.count_bars(tokens)):
            tokens += self._bar_tokens
        return tokens

    def _beyond_committed(self, tokens: list[int], window: int) -> list[int]:
        base = self._bar_index[window] if self._bar_index else 0
        done = self.live_tokens[base:]
        if tokens[:len(done)] != done:
            raise LiveScoreError(f"re-encoding bar {window} changed committed tokens "
                                 f"({len(done)} committed, {len(tokens)} re-encoded)")
        return tokens[len(done):]

    def _splice_insertion(self, new: list[int]) -> list[int]:
        if not self._insertion:
            return new
        bars = self.tokenizer.bar_starts(new)
        if not bars:
            return new
        at = bars[0]
        out = new[:at] + self._insertion + new[at:]
        self._insertion = []
        return out
