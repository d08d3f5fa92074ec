"""Every WKV-7 backend against the float64 reference recurrence: outputs, final state and gradients."""
import pytest
import torch
import torch.nn.functional as F

from kernels import CudaKernelUnavailable, wkv7, wkv7_chunk, wkv7_naive, wkv7_step

B, H, N = 2, 2, 8


def rwkv7_inputs(t: int, dtype: torch.dtype, seed: int = 0, requires_grad: bool = False,
                 batch: int = B, heads: int = H, n: int = N):
    """Random inputs shaped like RWKV-7's: decay in (0.545, 1), a = -kk, b = kk * iclr."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, t, heads, n)
    r, k, v = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
    w = 0.545 + 0.455 * torch.rand(shape, generator=g, dtype=torch.float64)
    kk = F.normalize(torch.randn(shape, generator=g, dtype=torch.float64), dim=-1)
    iclr = torch.rand(shape, generator=g, dtype=torch.float64)
    state = torch.randn(batch, heads, n, n, generator=g, dtype=torch.float64)
    leaves = [x.to(dtype).requires_grad_(requires_grad) for x in (r, w, k, v, -kk, kk * iclr, state)]
    return leaves


def outputs_and_grads(fn, leaves, with_state: bool):
    r, w, k, v, a, b, s0 = leaves
    y, s = fn(r, w, k, v, a, b, s0 if with_state else None)
    g = torch.Generator().manual_seed(99)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype)
    ds = torch.randn(s.shape, generator=g, dtype=torch.float64).to(s.dtype)
    inputs = leaves if with_state else leaves[:-1]
    grads = torch.autograd.grad((y * dy).sum() + (s * ds).sum(), inputs)
    return [y, s, *grads]


def relative_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    # An exactly-zero reference (dw of a single step from a zero state) is compared absolutely.
    x, ref = x.detach().double(), ref.detach().double()
    return float((x - ref).norm() / ref.norm().clamp_min(1e-3))


def assert_backend_matches_reference(fn, t, dtype, tol, with_state):
    ref = outputs_and_grads(wkv7_naive, rwkv7_inputs(t, torch.float64, requires_grad=True), with_state)
    got = outputs_and_grads(fn, rwkv7_inputs(t, dtype, requires_grad=True), with_state)
    names = ["y", "state", "dr", "dw", "dk", "dv", "da", "db", "dstate"]
    for name, x, want in zip(names, got, ref):
        assert relative_error(x, want) < tol, f"{name}: relative error {relative_error(x, want):.2e}"


@pytest.mark.parametrize("t", [1, 15, 16, 17, 33, 48])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunk_matches_reference_in_float64(t, with_state):
    assert_backend_matches_reference(wkv7_chunk, t, torch.float64, 1e-10, with_state)


@pytest.mark.parametrize("t", [7, 16, 41])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunk_matches_reference_in_float32(t, with_state):
    assert_backend_matches_reference(wkv7_chunk, t, torch.float32, 1e-4, with_state)


@pytest.mark.parametrize("chunk_len", [1, 4, 8, 13, 16])
def test_chunk_length_does_not_change_the_result(chunk_len):
    fn = lambda *x: wkv7_chunk(*x, chunk_len=chunk_len)  # noqa: E731
    assert_backend_matches_reference(fn, 29, torch.float64, 1e-10, True)


def stepped(r, w, k, v, a, b, state):
    s = torch.zeros(B, H, N, N, dtype=r.dtype) if state is None else state
    ys = []
    for t in range(r.shape[1]):
        y, s = wkv7_step(r[:, t], w[:, t], k[:, t], v[:, t], a[:, t], b[:, t], s)
        ys.append(y)
    return torch.stack(ys, dim=1), s


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("with_state", [False, True])
def test_decode_step_matches_reference(dtype, tol, with_state):
    assert_backend_matches_reference(stepped, 19, dtype, tol, with_state)


def test_public_operator_agrees_with_reference_for_prefill_and_single_step():
    r, w, k, v, a, b, s0 = rwkv7_inputs(21, torch.float64)
    y_ref, s_ref = wkv7_naive(r, w, k, v, a, b, s0)
    y, s = wkv7(r[:, :20], w[:, :20], k[:, :20], v[:, :20], a[:, :20], b[:, :20], s0)
    y_last, s = wkv7(r[:, 20:], w[:, 20:], k[:, 20:], v[:, 20:], a[:, 20:], b[:, 20:], s)
    assert torch.allclose(torch.cat([y, y_last], dim=1), y_ref, atol=1e-10)
    assert torch.allclose(s, s_ref, atol=1e-10)


def test_splitting_a_sequence_carries_the_state_exactly():
    r, w, k, v, a, b, s0 = rwkv7_inputs(40, torch.float64)
    y_all, s_all = wkv7_chunk(r, w, k, v, a, b, s0)
    y1, s1 = wkv7_chunk(r[:, :23], w[:, :23], k[:, :23], v[:, :23], a[:, :23], b[:, :23], s0)
    y2, s2 = wkv7_chunk(r[:, 23:], w[:, 23:], k[:, 23:], v[:, 23:], a[:, 23:], b[:, 23:], s1)
    assert torch.allclose(torch.cat([y1, y2], dim=1), y_all, atol=1e-10)
    assert torch.allclose(s2, s_all, atol=1e-10)


def test_unknown_backend_is_rejected_by_name():
    r, w, k, v, a, b, _ = rwkv7_inputs(3, torch.float32)
    with pytest.raises(ValueError, match="'cuda-magic'"):
        wkv7(r, w, k, v, a, b, backend="cuda-magic")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where there is no GPU")
def test_cuda_backend_without_a_gpu_says_why_in_one_line():
    r, w, k, v, a, b, _ = rwkv7_inputs(3, torch.float32, n=64)
    with pytest.raises(CudaKernelUnavailable, match="fused CUDA WKV-7 kernel is unavailable: .*(CPU build|no CUDA device)") as err:
        wkv7(r, w, k, v, a, b, backend="cuda")
    assert "\n" not in str(err.value)
