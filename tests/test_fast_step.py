"""The fast decode step (RWKV7.step exported to ONNX Runtime) against the model's own step: logits and
state in float32, on random and on trained weights; cached by weights; used by the Session."""
import pytest
import torch

pytest.importorskip("onnxruntime")

from engine.checkpoint import load_checkpoint  # noqa: E402
from engine.fast_step import FastStep, PackedState  # noqa: E402
from engine.model import RWKV7, ModelConfig  # noqa: E402
from engine.sampler import SamplingConfig  # noqa: E402
from engine.session import Session  # noqa: E402
from engine.state import LayerState, State  # noqa: E402


def random_state(model: RWKV7, batch: int, generator: torch.Generator) -> State:
    cfg = model.cfg
    return State([LayerState(torch.randn(batch, cfg.n_embd, generator=generator),
                             0.3 * torch.randn(batch, cfg.n_head, cfg.head_size, cfg.head_size, generator=generator),
                             torch.randn(batch, cfg.n_embd, generator=generator)) for _ in range(cfg.n_layer)])


def assert_steps_agree(model: RWKV7, fast: FastStep, batch: int, steps: int = 4) -> None:
    g = torch.Generator().manual_seed(batch)
    state = random_state(model, batch, g)
    packed = PackedState.of(state)
    for _ in range(steps):
        tokens = torch.randint(0, model.cfg.vocab_size, (batch,), generator=g)
        with torch.no_grad():
            ref, state = model.step(tokens, state)
        logits, packed = fast(tokens, packed)
        scale = ref.abs().max().item()
        assert (logits - ref).abs().max().item() <= 1e-5 * max(scale, 1.0)
        assert packed.state().max_abs_diff(state) <= 1e-5 * max(1.0, max(s.wkv.abs().max().item() for s in state.layers))


@pytest.fixture(scope="module")
def random_model(tokenizer):
    torch.manual_seed(3)
    model = RWKV7(ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_embd=128, head_size=64)).eval()
    with torch.no_grad():   # RWKV-LM's init zeroes some projections: move every weight off it
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("batch", [1, 4, 7])
def test_the_fast_step_equals_the_model_step_on_random_weights(random_model, tmp_path_factory, batch):
    fast = FastStep.for_model(random_model, tmp_path_factory.getbasetemp() / "onnx-random")
    assert_steps_agree(random_model, fast, batch)


def test_the_fast_step_equals_the_model_step_on_the_trained_default_model(tmp_path):
    model = load_checkpoint(None).model
    assert_steps_agree(model, FastStep.for_model(model, tmp_path), batch=4, steps=3)


def test_the_exported_step_is_cached_by_weights(random_model, tmp_path):
    assert FastStep.cached(random_model, tmp_path) is None
    first = FastStep.for_model(random_model, tmp_path)
    assert FastStep.cached(random_model, tmp_path).path == first.path
    changed = RWKV7(random_model.cfg)
    changed.load_state_dict(random_model.state_dict())
    with torch.no_grad():
        changed.head.weight[0, 0] += 1
    assert FastStep.cached(changed, tmp_path) is None


def test_a_session_with_the_fast_step_suggests_exactly_n_bars(random_model, tokenizer, tmp_path_factory):
    session = Session(random_model, tokenizer)
    session.feed([tokenizer.bar_id] * 4)
    session.fast_step = FastStep.for_model(random_model, tmp_path_factory.getbasetemp() / "onnx-random")
    for candidate in session.suggest(3, 2, SamplingConfig(max_tokens_per_bar=32), seed=1).candidates:
        assert tokenizer.count_bars(candidate.tokens) == 2


def test_an_export_stopped_by_a_signal_says_so_not_that_it_failed(random_model, tmp_path):
    """The bridge closing (or the system) stops a paced export: ExportStopped, which the bridge logs as what it is."""
    import concurrent.futures
    import signal
    import time

    import psutil

    from engine.fast_step import ExportPace, ExportStopped, export_step_apart

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        export = pool.submit(export_step_apart, random_model, tmp_path / "step.onnx", ExportPace())
        deadline = time.monotonic() + 30   # the export's process, not multiprocessing's resource tracker
        while not (children := [p for p in psutil.Process().children() if "spawn_main" in " ".join(p.cmdline())]):
            assert time.monotonic() < deadline, "the export's process never started"
            time.sleep(0.05)
        children[0].send_signal(signal.SIGTERM)
        with pytest.raises(ExportStopped, match="stopped by signal 15"):
            export.result(timeout=60)
    assert not (tmp_path / "step.onnx").exists()
