"""Shared by the fused kernel's tests (on a GPU, and its source on CPU threads): random RWKV-7 cases in
each precision mode, and the comparison of outputs, final state and every gradient with a reference."""
from __future__ import annotations

import torch

from kernels import wkv7_naive
from test_kernels import relative_error, rwkv7_inputs

NAMES = ["y", "state", "dr", "dw", "dk", "dv", "da", "db", "dstate"]
MODES = {  # name: (dtype of r, k, v, a, b; dtype of w; tolerance)
    "fp32": (torch.float32, torch.float32, 1e-4),
    "bf16": (torch.bfloat16, torch.float32, 5e-3),      # what the model gives under bf16 autocast
    "bf16-decay": (torch.bfloat16, torch.bfloat16, 5e-3),
}


def outputs_and_grads(fn, leaves, dy, ds, with_state):
    xs = [x.detach().clone().requires_grad_() for x in leaves]
    r, w, k, v, a, b, s0 = xs
    y, s = fn(r, w, k, v, a, b, s0 if with_state else None)
    loss = (y.double() * dy).sum() + (s.double() * ds).sum()
    return [y, s, *torch.autograd.grad(loss, xs if with_state else xs[:-1])]


def assert_kernel_matches(kernel, device, batch, t, heads, mode, with_state, reference=wkv7_naive, ref_device="cpu"):
    """`kernel` (the wkv7 signature, differentiable) on `device` against `reference` in float64, both fed
    the same inputs rounded to the mode's dtypes (so only the kernel's own arithmetic is measured)."""
    io, decay, tol = MODES[mode]
    leaves = rwkv7_inputs(t, torch.float64, seed=batch * 1000 + t, batch=batch, heads=heads, n=64)
    rounded = [x.to(decay if i == 1 else torch.float32 if i == 6 else io) for i, x in enumerate(leaves)]
    g = torch.Generator().manual_seed(t)
    dy = torch.randn(batch, t, heads, 64, generator=g, dtype=torch.float64).to(io).double()
    ds = torch.randn(batch, heads, 64, 64, generator=g, dtype=torch.float64)
    want = outputs_and_grads(reference, [x.double().to(ref_device) for x in rounded], dy.to(ref_device),
                             ds.to(ref_device), with_state)
    got = outputs_and_grads(kernel, [x.to(device) for x in rounded], dy.to(device), ds.to(device), with_state)
    for name, x, ref in zip(NAMES, got, want):
        assert torch.isfinite(x).all(), f"{name} has non-finite values"
        err = relative_error(x.cpu(), ref.cpu())
        assert err <= tol, f"{mode} B{batch} T{t} H{heads}: {name} relative error {err:.2e} > {tol:.0e}"
