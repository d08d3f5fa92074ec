"""On a GPU: the operator and the model agree with the CPU reference, in float32 and under bf16 autocast."""
import pytest
import torch

from engine.model import RWKV7, ModelConfig
from kernels import wkv7, wkv7_naive
from test_kernels import relative_error, rwkv7_inputs

pytestmark = pytest.mark.gpu


def test_chunk_backend_on_gpu_matches_the_reference():
    leaves = rwkv7_inputs(45, torch.float32)
    y_ref, s_ref = wkv7_naive(*leaves)
    y, s = wkv7(*(x.cuda() for x in leaves))
    assert relative_error(y.cpu(), y_ref) < 1e-4 and relative_error(s.cpu(), s_ref) < 1e-4


def test_model_under_bf16_autocast_stays_close_to_float32():
    torch.manual_seed(0)
    model = RWKV7(ModelConfig(vocab_size=64, n_layer=2, n_embd=128)).cuda()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    tokens = torch.randint(0, 64, (2, 70), device="cuda")
    with torch.no_grad():
        ref, _ = model(tokens)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low, _ = model(tokens)
    assert relative_error(low.float().cpu(), ref.cpu()) < 5e-2


def test_a_session_moved_from_the_gpu_to_the_cpu_keeps_its_context(micro_checkpoint, tokenizer):
    from engine.checkpoint import load_checkpoint
    from engine.session import Session

    ckpt = load_checkpoint(micro_checkpoint, device="cuda")
    session = Session(ckpt.model, tokenizer)
    session.feed([tokenizer.bar_id] * 8)
    on_gpu = session.state.clone().to("cpu")
    session.to("cpu")
    assert session.state.max_abs_diff(on_gpu) == 0 and session.device.type == "cpu"
    assert session.suggest(2, 1, seed=0).candidates
