"""The fused CUDA kernels' own source (kernels/cuda/wkv7.cu), compiled as host C++ and run on CPU threads
(tests/cuda_host), against the float64 reference: outputs, final state and every gradient, in float32 and
with bfloat16 I/O, for lengths on both sides of the saved-state interval. Where there is no GPU this is
what checks the kernels' arithmetic, indexing and barriers; test_wkv7_cuda.py checks the real thing."""
import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from wkv7_cases import MODES, assert_kernel_matches

HOST = Path(__file__).parent / "cuda_host"
CODES = {torch.float32: 0, torch.bfloat16: 1}


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    lib = tmp_path_factory.mktemp("wkv7-host") / "wkv7_host.so"
    subprocess.run(["g++", "-std=c++20", "-O2", "-pthread", "-shared", "-fPIC", str(HOST / "wkv7_host.cpp"),
                    "-o", str(lib)], check=True, capture_output=True)
    kernels = ctypes.CDLL(str(lib))
    kernels.host_forward.restype = kernels.host_backward.restype = ctypes.c_char_p
    return kernels


def ptr(x: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if x is None else x.data_ptr())


def host_wkv7(kernels):
    """The host-compiled kernels behind the wkv7 signature, differentiable (as kernels.wkv7_cuda is)."""
    interval = kernels.host_checkpoint_interval()

    class HostWKV7(torch.autograd.Function):
        @staticmethod
        def forward(ctx, r, w, k, v, a, b, s0):
            batch, t, heads, n = r.shape
            codes = (CODES[r.dtype], CODES[w.dtype])
            y, s = torch.empty_like(r), torch.empty(batch, heads, n, n)
            sa = torch.empty(r.shape)
            saved = torch.empty(batch, heads, -(-t // interval), n, n)
            sizes = (ctypes.c_int64(batch), ctypes.c_int64(t), ctypes.c_int64(heads))
            assert kernels.host_forward(*codes, *sizes, *map(ptr, (r, w, k, v, a, b, s0, y, s, sa, saved))) is None
            ctx.save_for_backward(r, w, k, v, a, b, sa, saved, s)
            ctx.codes, ctx.sizes, ctx.with_state = codes, sizes, s0 is not None
            return y, s

        @staticmethod
        def backward(ctx, dy, ds):
            r, w, k, v, a, b, sa, saved, s = ctx.saved_tensors
            dy, ds = dy.to(r.dtype).contiguous(), ds.float().contiguous()
            grads = [torch.empty_like(x) for x in (r, w, k, v, a, b, s)]
            assert kernels.host_backward(*ctx.codes, *ctx.sizes,
                                         *map(ptr, (r, w, k, v, a, b, sa, saved, s, dy, ds, *grads))) is None
            return (*grads[:6], grads[6] if ctx.with_state else None)

    def wkv7(r, w, k, v, a, b, state=None):
        return HostWKV7.apply(*(x.contiguous() for x in (r, w, k, v, a, b)),
                              None if state is None else state.float().contiguous())
    return wkv7


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("batch,t,heads", [(1, 1, 1), (2, 15, 2), (1, 16, 1), (2, 17, 2), (1, 33, 2), (1, 50, 1)])
@pytest.mark.parametrize("with_state", [False, True])
def test_the_kernel_source_on_cpu_threads_matches_the_reference(host_kernels, batch, t, heads, mode, with_state):
    assert_kernel_matches(host_wkv7(host_kernels), "cpu", batch, t, heads, mode, with_state)
