"""The decode step on static buffers (captured in a CUDA graph on a GPU) against the model's own step, and
the Session on it: same logits, same state, same candidates for the same seed."""
import pytest
import torch

from engine.checkpoint import load_checkpoint
from engine.graph_step import GraphStep, GraphSteps
from engine.model import RWKV7, ModelConfig
from engine.session import Session
from engine.state import LayerState, State


def random_model(device: str) -> RWKV7:
    torch.manual_seed(3)
    model = RWKV7(ModelConfig(vocab_size=389, n_layer=2, n_embd=128, head_size=64)).eval()
    with torch.no_grad():   # RWKV-LM's init zeroes some projections: move every weight off it
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.to(device)


def random_state(model: RWKV7, batch: int, device: str) -> State:
    g = torch.Generator().manual_seed(batch)
    cfg = model.cfg

    def layer() -> LayerState:
        return LayerState(torch.randn(batch, cfg.n_embd, generator=g).to(device),
                          (0.3 * torch.randn(batch, cfg.n_head, cfg.head_size, cfg.head_size, generator=g)).to(device),
                          torch.randn(batch, cfg.n_embd, generator=g).to(device))
    return State([layer() for _ in range(cfg.n_layer)])


def assert_static_step_follows_the_model(device: str, batch: int, steps: int = 6) -> None:
    model = random_model(device)
    state = random_state(model, batch, device)
    static = GraphStep(model, batch)
    assert (static.graph is not None) == (device == "cuda")
    static.load(state)
    g = torch.Generator().manual_seed(7)
    for _ in range(steps):
        tokens = torch.randint(0, model.cfg.vocab_size, (batch,), generator=g)
        with torch.no_grad():
            ref, state = model.step(tokens.to(device), state)
        logits = static(tokens)
        assert (logits - ref).abs().max().item() <= 1e-5 * max(ref.abs().max().item(), 1.0)
        assert static.state.max_abs_diff(state) <= 1e-5


@pytest.mark.parametrize("batch", [1, 4])
def test_the_static_buffer_step_equals_the_model_step(batch):
    assert_static_step_follows_the_model("cpu", batch)


def test_a_state_of_another_batch_size_is_refused_by_name():
    model = random_model("cpu")
    with pytest.raises(ValueError, match="runs 2 streams, the state has 3"):
        GraphStep(model, 2).load(model.initial_state(3))


def test_steps_are_kept_per_batch_size_and_the_oldest_is_dropped():
    model = random_model("cpu")
    steps = GraphSteps(model, keep=2)
    first = steps.for_state(model.initial_state(1))
    assert steps.for_state(model.initial_state(1)) is first
    steps.for_state(model.initial_state(2))
    steps.for_state(model.initial_state(3))
    assert steps.for_state(model.initial_state(1)) is not first


def assert_sessions_agree(device: str) -> None:
    ckpt = load_checkpoint(None, device=device)
    on_buffers = Session(ckpt.model, ckpt.tokenizer, graph_steps=True)
    eager = Session(ckpt.model, ckpt.tokenizer, graph_steps=False)
    prompt = [ckpt.tokenizer.bar_id] + list(range(5, 60, 7))
    for session in (on_buffers, eager):
        session.feed(prompt)            # a prompt: the parallel forward
        session.feed(prompt[1:4])       # one note's tokens: the step
    assert on_buffers.state.max_abs_diff(eager.state) <= 1e-5
    ours = on_buffers.suggest(4, 2, seed=11)
    theirs = eager.suggest(4, 2, seed=11)
    assert [c.tokens for c in ours.candidates] == [c.tokens for c in theirs.candidates]


def test_a_session_on_static_buffers_suggests_what_the_model_step_suggests():
    assert_sessions_agree("cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("batch", [1, 8])
def test_the_captured_cuda_graph_step_equals_the_model_step(batch):
    assert_static_step_follows_the_model("cuda", batch)


@pytest.mark.gpu
def test_a_session_on_cuda_graphs_suggests_what_the_model_step_suggests():
    assert_sessions_agree("cuda")
    ckpt = load_checkpoint(None, device="cuda")
    session = Session(ckpt.model, ckpt.tokenizer)
    session.suggest(4, 2, seed=0)
    assert session._graphs is not None and session._graphs.for_state(session.state.expand(4)).graph is not None
