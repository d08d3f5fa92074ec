"""A Session: the context a composer has played, held as one RWKV state, and K-candidate suggestions from it."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from engine.decode import EagerStepper, GraphStepper, OnnxStepper, Stepper
from engine.fast_step import FastStep
from engine.generate import sample_bars
from engine.graph_step import GraphSteps
from engine.grammar import RemiGrammar
from engine.midi_file import write_notes
from engine.model import RWKV7
from engine.music import TICKS_PER_QUARTER, MeterMap, Note, Phrase
from engine.sampler import SamplingConfig
from engine.song_memory import SongMemory
from engine.state import State
from engine.tokenizer import RemiTokenizer


@dataclass
class Candidate:
    """One continuation: its tokens (opening Bar included) and its notes, in ticks from its first bar line."""

    tokens: list[int]
    notes: list[Note]
    bars: int
    ticks_per_beat: int
    time_signature: tuple[int, int]

    def write_midi(self, path, tempo_bpm: float, first_bar_tick: int = 0,
                   time_signature: tuple[int, int] | None = None,
                   lead_in: Sequence[tuple[int, tuple[int, int]]] | None = None) -> None:
        """The candidate alone as a .mid file: its first bar line at `first_bar_tick`, exactly `bars` bars long,
        every note ended inside them (the one writer of candidates: `suggest`, export and drag).
        `time_signature` writes the prompt's own spelling of the meter (2/2 for a 2/2 file read as 4/4) at the
        first bar line; `lead_in` (the prompt's meter changes as (tick, meter), at the candidate's resolution, e.g.
        `Phrase.file_meters()`) writes them before it."""
        notes = [Note(n.pitch, n.velocity, n.start + first_bar_tick, n.end + first_bar_tick) for n in self.notes]
        meter = time_signature or self.time_signature
        changes = list(lead_in or [])
        write_notes(notes, path, ticks_per_beat=self.ticks_per_beat, tempo_bpm=tempo_bpm,
                    time_signature=changes[0][1] if changes else meter,
                    end_tick=first_bar_tick + self.bar_map.span(self.bars),
                    meter_changes=tuple(c for c in changes[1:] if c[0] < first_bar_tick) + ((first_bar_tick, meter),)
                    if changes else ())

    @property
    def bar_map(self) -> MeterMap:
        """The candidate's bar lines, bar 0 at its tick 0."""
        return MeterMap.constant(self.time_signature, self.ticks_per_beat)


@dataclass
class Suggestion:
    candidates: list[Candidate]
    tokens_generated: int
    seconds: float
    seed: int
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


FAST_FEED_TOKENS = 4    # up to this many tokens (one note), stepping beats the chunk-parallel forward on a CPU


class Session:
    """Feed tokens as they become final; ask for suggestions at any time, at a cost independent of the context length."""

    def __init__(self, model: RWKV7, tokenizer: RemiTokenizer, initial_state: State | None = None,
                 prefill_chunk: int = 2048, graph_steps: bool | None = None):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.grammar = RemiGrammar(tokenizer)
        self.device = next(model.parameters()).device
        self._initial = initial_state
        self.prefill_chunk = prefill_chunk
        self.fast_step: FastStep | None = None   # the decode step on ONNX Runtime, when one has been made
        # the decode step on static buffers, captured in CUDA graphs (None: on a CUDA device; off CUDA the
        # same buffers are stepped eagerly)
        self.graph_steps = graph_steps
        self._graphs: GraphSteps | None = None
        self.reset()

    @classmethod
    def for_phrase(cls, model: RWKV7, tokenizer: RemiTokenizer, phrase: Phrase, bars: int | None = None,
                   **options) -> tuple["Session", list[int]]:
        """A Session holding `phrase` (its first `bars` bars when given), and the prompt's tokens: the one way from
        a phrase to candidates (`muse-bridge suggest`, the screenshot, the benchmarks). `options` go to Session."""
        prompt = tokenizer.encode(phrase)
        if bars is not None:
            prompt = tokenizer.first_bars(prompt, bars)
        session = cls(model, tokenizer, **options)
        session.feed(prompt)
        return session, prompt

    def _start_state(self) -> State:
        """The state before any context: the style's initial state, or the model's."""
        return self._initial.clone().to(self.device) if self._initial is not None else self.model.initial_state(1)

    def _empty_memory(self) -> SongMemory:
        """A song memory of nothing yet, which never proposes a fill marker (they end a passage)."""
        return SongMemory(stops=self.tokenizer.fill_marker_ids)

    def reset(self) -> None:
        """Forget the context (a loaded style's initial state stays)."""
        self.state = self._start_state()
        self.memory = self._empty_memory()   # the context's tokens, for the song memory (engine/song_memory.py)
        self.context_length = 0
        self.time_signature: tuple[int, int] = (4, 4)

    def to(self, device: str | torch.device) -> None:
        """Move the model, the live state and the style's initial state (e.g. to the CPU after CUDA ran out of memory)."""
        self.device = torch.device(device)
        self.model.to(self.device)
        self._graphs = None   # captured for the old device
        self.state = self.state.to(self.device)
        if self._initial is not None:
            self._initial = self._initial.to(self.device)

    def set_initial_state(self, initial_state: State | None) -> None:
        """Switch style preset; the context is cleared."""
        self._initial = initial_state
        self.reset()

    def _graph_steps(self) -> GraphSteps | None:
        """The captured steps, when this session decodes on them."""
        if not (self.graph_steps if self.graph_steps is not None else self.device.type == "cuda"):
            return None
        if self._graphs is None:
            self._graphs = GraphSteps(self.model, capture=self.device.type == "cuda")
        return self._graphs

    def stepper(self, state: State) -> Stepper:
        """The decode step for `state`'s streams, chosen here for every use: ONNX Runtime where its export
        exists on a CPU, CUDA graphs on a GPU (unless turned off), else the model's own step."""
        if self.fast_step is not None and self.device.type == "cpu":
            return OnnxStepper(self.fast_step, state)
        graphs = self._graph_steps()
        if graphs is not None:
            return GraphStepper(graphs.for_state(state))
        return EagerStepper(self.model, state)

    @torch.no_grad()
    def _advance(self, state: State, tokens: list[int]) -> State:
        """The state after `tokens`: a few (a note just played) by the decode step, more (a prompt, a catch-up)
        by the parallel forward, `prefill_chunk` tokens at a time."""
        if not tokens:
            return state
        if len(tokens) <= FAST_FEED_TOKENS and (self.fast_step is not None or self._graph_steps() is not None):
            stepper = self.stepper(state)
            for token in tokens:
                stepper.step(torch.tensor([token]))
            return stepper.state()
        for i in range(0, len(tokens), self.prefill_chunk):
            x = torch.tensor([tokens[i:i + self.prefill_chunk]], dtype=torch.long, device=self.device)
            _, state = self.model(x, state)
        return state

    def feed(self, tokens: list[int]) -> None:
        """Advance the live state by final tokens."""
        if not tokens:
            return
        self.state = self._advance(self.state, tokens)
        self.memory.extend(tokens)
        self.context_length += len(tokens)
        self.time_signature = self.grammar.meter_after(tokens, self.time_signature)

    @torch.no_grad()
    def suggest(self, k: int, bars: int, sampling: SamplingConfig = SamplingConfig(), seed: int | None = None,
                tail: list[int] = (), ticks_per_beat: int = TICKS_PER_QUARTER,
                on_bars: Callable[[int, Candidate], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> Suggestion:
        """K continuations of exactly `bars` bars from the next bar line; `tail` (not yet final) is seen
        by this suggestion only, never by the live state. `on_bars(i, partial)` streams candidate i as its
        bars complete (`partial.bars` of them; its notes are those of the final candidate that start in
        them); `cancelled()` stops the sampling (Cancelled) between steps."""
        meter = self.grammar.meter_after(list(tail), self.time_signature)
        return self._sample(k, bars, sampling, seed, list(tail), meter, ticks_per_beat, on_bars, cancelled)

    @torch.no_grad()
    def fill(self, k: int, bars: int, before: list[int], after: list[int],
             sampling: SamplingConfig = SamplingConfig(), seed: int | None = None,
             meter: tuple[int, int] | None = None, ticks_per_beat: int = TICKS_PER_QUARTER,
             on_bars: Callable[[int, Candidate], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> Suggestion:
        """K candidates of exactly `bars` bars for the gap between `before` (the song up to the gap, from its
        start) and `after` (the bars after the gap, from their Bar; empty: nothing follows). The model reads them
        from the state before any context (the style's, if one is loaded), as `RemiTokenizer.fill_reading`
        spells it, and writes the gap in the same sampling loop as `suggest`, in `meter` (default: the meter in
        force at the gap). The live state is neither read nor changed."""
        t = self.tokenizer
        if t.fill_suffix_id is None:
            raise ValueError("this model cannot fill a gap: its vocabulary has no fill markers (train it with "
                             "`python -m trainer finetune --fill-share`)")
        if meter is None:
            meter = self.grammar.meter_after(list(before), (4, 4))
        return self._sample(k, bars, sampling, seed, t.fill_reading(before, after), tuple(meter), ticks_per_beat,
                            on_bars, cancelled, self._start_state())

    def _sample(self, k: int, bars: int, sampling: SamplingConfig, seed: int | None, read: list[int],
                meter: tuple[int, int], ticks_per_beat: int, on_bars: Callable[[int, Candidate], None] | None,
                cancelled: Callable[[], bool] | None, state: State | None = None) -> Suggestion:
        """K streams of `bars` bars in `meter` after `state` (default: the context's) and `read` (seen by this
        sampling only); the song memory holds what the state has read."""
        if k < 1 or bars < 1:
            raise ValueError(f"need at least one candidate and one bar, got {k} candidates of {bars} bars")
        start = time.perf_counter()
        if seed is None:  # a fresh seed, kept in the Suggestion so a good one can be reproduced
            seed = secrets.randbits(63)
        generator = torch.Generator().manual_seed(seed)
        stepper = self.stepper(self._advance((self.state if state is None else state).clone(), read).expand(k))
        if state is None:   # the context's memory; each stream sees `read` as its own
            streams = [self.memory.stream(read) for _ in range(k)]
        else:   # a reading of its own (a fill's): remembered once, for every stream
            memory = self._empty_memory()
            memory.extend(read)
            streams = [memory.stream() for _ in range(k)]

        def bar_done(i: int, partial: list[int], complete: int) -> None:
            on_bars(i, self._candidate(partial, bars, meter, ticks_per_beat, complete))

        tokens = sample_bars(stepper.step, self.grammar, [meter] * k, bars, sampling, generator,
                             on_bar=bar_done if on_bars is not None else None, cancelled=cancelled,
                             memory=streams)
        generated = sum(len(t) - 1 for t in tokens)
        candidates = [self._candidate(t, bars, meter, ticks_per_beat) for t in tokens]
        return Suggestion(candidates, generated, time.perf_counter() - start, seed, sampling)

    def _candidate(self, tokens: list[int], bars: int, meter: tuple[int, int], ticks_per_beat: int,
                   complete: int | None = None) -> Candidate:
        """The candidate of `bars` bars, or its first `complete` bars (notes cut only at the end of all `bars`)."""
        bar_map = MeterMap.constant(meter, ticks_per_beat)
        end, starts_before = bar_map.span(bars), bar_map.span(bars if complete is None else complete)
        notes = [n if n.end <= end else Note(n.pitch, n.velocity, n.start, end)
                 for n in self.tokenizer.decode(tokens, ticks_per_beat, meter) if n.start < starts_before]
        return Candidate(tokens, notes, bars if complete is None else complete, ticks_per_beat, meter)

    def accept(self, candidate: Candidate) -> None:
        """The candidate becomes part of the context."""
        self.feed(candidate.tokens)
