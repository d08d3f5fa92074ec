"""WKV-7: the RWKV-7 state-update operator (reference recurrence, chunk-parallel form, decode step)."""
from kernels.ops import wkv7
from kernels.wkv7_chunk import wkv7_chunk
from kernels.wkv7_naive import wkv7_naive
from kernels.wkv7_step import wkv7_step

__all__ = ["wkv7", "wkv7_chunk", "wkv7_naive", "wkv7_step"]
