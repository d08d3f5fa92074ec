"""WKV-7: the RWKV-7 state-update operator (reference recurrence, chunk-parallel form, fused CUDA kernel, decode step)."""
from kernels.ops import wkv7
from kernels.wkv7_chunk import wkv7_chunk
from kernels.wkv7_cuda import CudaKernelUnavailable, wkv7_cuda
from kernels.wkv7_naive import wkv7_naive
from kernels.wkv7_step import wkv7_step

__all__ = ["CudaKernelUnavailable", "wkv7", "wkv7_chunk", "wkv7_cuda", "wkv7_naive", "wkv7_step"]
