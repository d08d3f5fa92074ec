"""The live decode step on a GPU: `RWKV7.step` for K streams on static buffers, captured once in a CUDA graph.

A step of a small model is dozens of tiny kernels, so on a GPU its time is launch overhead; replaying a
captured graph launches them all at once. The graph is the model's own step (the equations stay written
once, in engine/model.py), recorded with its inputs and its state in fixed buffers: each call writes the
tokens in, replays, and the graph itself copies the new state over the old one. Off CUDA the same
buffers are stepped eagerly, which is how the CPU tests check everything but the capture.
"""
from __future__ import annotations

import logging

import torch

from engine.model import RWKV7
from engine.state import State

log = logging.getLogger(__name__)

WARMUP_STEPS = 3   # run on a side stream before capture, as CUDA graphs require (allocator, lazy init)


class GraphStep:
    """`logits = step(tokens)` for a fixed batch of streams whose state lives in `step.state`."""

    def __init__(self, model: RWKV7, batch: int, capture: bool | None = None):
        self.model, self.batch = model, batch
        self.device = next(model.parameters()).device
        self.tokens = torch.zeros(batch, dtype=torch.long, device=self.device)
        self.state = model.initial_state(batch)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.logits: torch.Tensor | None = None
        if capture if capture is not None else self.device.type == "cuda":
            self._capture()

    @torch.no_grad()
    def _step_in_place(self) -> torch.Tensor:
        logits, new = self.model.step(self.tokens, self.state)
        self.state.copy_(new)
        return logits

    def _capture(self) -> None:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._step_in_place()
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = self._step_in_place()
        log.info("captured the decode step for %d streams in a CUDA graph", self.batch)

    def load(self, state: State) -> None:
        """Start from `state` (batch `self.batch`): copied into the static buffers."""
        if state.batch != self.batch:
            raise ValueError(f"this step runs {self.batch} streams, the state has {state.batch}")
        self.state.copy_(state)

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """One token per stream (batch,): next-token logits (batch, V), the state advanced in place."""
        self.tokens.copy_(tokens)
        if self.graph is None:
            return self._step_in_place()
        self.graph.replay()
        return self.logits.clone()   # the next replay overwrites the graph's own output


class GraphSteps:
    """The model's captured steps, one per batch size asked for (a few kB of graph each, made once)."""

    def __init__(self, model: RWKV7, capture: bool | None = None, keep: int = 8):
        self.model, self.capture, self.keep = model, capture, keep
        self._steps: dict[int, GraphStep] = {}

    def for_state(self, state: State) -> GraphStep:
        """The step for `state`'s batch size, loaded with it."""
        step = self._steps.pop(state.batch, None) or GraphStep(self.model, state.batch, self.capture)
        self._steps[state.batch] = step             # most recently used last
        while len(self._steps) > self.keep:
            self._steps.pop(next(iter(self._steps)))
        step.load(state)
        return step
