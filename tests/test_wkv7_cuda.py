"""On a GPU: the fused CUDA WKV-7 kernel against the float64 reference (outputs, final state and every
gradient) in float32 and with bfloat16 I/O, from one step up to B=8, T=4096, C=1024; the operator and the
model take it by default."""
import pytest
import torch

from engine.model import RWKV7, ModelConfig
from kernels import wkv7, wkv7_chunk, wkv7_cuda
from test_kernels import relative_error, rwkv7_inputs
from wkv7_cases import MODES, assert_kernel_matches

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("batch,t,heads", [(1, 1, 1), (2, 15, 2), (2, 16, 1), (2, 17, 2), (3, 33, 2),
                                           (1, 100, 3), (4, 257, 4)])
@pytest.mark.parametrize("with_state", [False, True])
def test_fused_kernel_matches_the_reference(batch, t, heads, mode, with_state):
    assert_kernel_matches(wkv7_cuda, "cuda", batch, t, heads, mode, with_state)


@pytest.mark.parametrize("mode", ["fp32", "bf16"])
def test_fused_kernel_matches_the_reference_at_b8_t4096_c1024(mode):
    # the float64 chunk-parallel form on the GPU serves as the reference here: it equals the recurrence
    # to 1e-10 (test_kernels), and the token-by-token loop would take minutes at this size
    assert_kernel_matches(wkv7_cuda, "cuda", 8, 4096, 16, mode, with_state=True, reference=wkv7_chunk,
                          ref_device="cuda")


def test_a_sequence_split_in_two_carries_the_state_exactly():
    r, w, k, v, a, b, s0 = (x.float().cuda() for x in rwkv7_inputs(70, torch.float64, n=64))
    y_all, s_all = wkv7_cuda(r, w, k, v, a, b, s0)
    y1, s1 = wkv7_cuda(r[:, :37], w[:, :37], k[:, :37], v[:, :37], a[:, :37], b[:, :37], s0)
    y2, s2 = wkv7_cuda(r[:, 37:], w[:, 37:], k[:, 37:], v[:, 37:], a[:, 37:], b[:, 37:], s1)
    assert relative_error(torch.cat([y1, y2], dim=1), y_all) < 1e-6 and relative_error(s2, s_all) < 1e-6


def test_the_operator_takes_the_fused_kernel_for_cuda_inputs():
    import kernels.wkv7_cuda as fused

    r, w, k, v, a, b, s0 = (x.float().cuda() for x in rwkv7_inputs(40, torch.float64, n=64))
    y, s = wkv7(r, w, k, v, a, b, s0)
    assert fused._module is not None
    y_ref, s_ref = wkv7_cuda(r, w, k, v, a, b, s0)
    assert torch.equal(y, y_ref) and torch.equal(s, s_ref)


def test_model_gradients_with_the_fused_kernel_match_the_cpu_chunk_path():
    torch.manual_seed(0)
    model = RWKV7(ModelConfig(vocab_size=64, n_layer=2, n_embd=128))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    tokens = torch.randint(0, 64, (2, 90))
    grads = []
    for device in ("cpu", "cuda"):
        model.to(device).zero_grad()
        logits, _ = model(tokens.to(device))
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.to(device).roll(-1, 1).flatten()).backward()
        grads.append(torch.cat([p.grad.flatten().cpu() for p in model.parameters()]))
    assert relative_error(grads[1], grads[0]) < 1e-4
