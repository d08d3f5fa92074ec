"""The decode step, one interface over its three forms: a Stepper advances K streams by one token each.

- eager: `RWKV7.step` in PyTorch (any device; the reference the others are tested against);
- ONNX Runtime: the same step exported by engine/fast_step.py (a CPU, once the export exists);
- CUDA graphs: the step on static buffers, replayed (engine/graph_step.py; on a CUDA device).

`Session.stepper` chooses among them once for every use (a note's tokens and a suggestion's sampling);
evaluation steps eagerly through the same interface.
"""
from __future__ import annotations

from typing import Protocol

import torch

from engine.fast_step import FastStep, PackedState
from engine.graph_step import GraphStep
from engine.model import RWKV7
from engine.state import State


class Stepper(Protocol):
    """`step(tokens)`: one token per stream (K,) in, next-token logits (K, V) out; `state()`: the streams' state."""

    def step(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def state(self) -> State: ...


class EagerStepper:
    def __init__(self, model: RWKV7, state: State):
        self.model, self._state = model, state
        self.device = next(model.parameters()).device

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        logits, self._state = self.model.step(tokens.to(self.device), self._state)
        return logits

    def state(self) -> State:
        return self._state


class OnnxStepper:
    def __init__(self, fast: FastStep, state: State):
        self.fast, self.device = fast, state.layers[0].wkv.device
        self._packed = PackedState.of(state)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        logits, self._packed = self.fast(tokens, self._packed)
        return logits

    def state(self) -> State:
        return self._packed.state(self.device)


class GraphStepper:
    def __init__(self, graph: GraphStep):
        self.graph = graph

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.graph(tokens)

    def state(self) -> State:
        return self.graph.state.clone()   # the buffers serve the next call
