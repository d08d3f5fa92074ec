// What kernels/cuda/wkv7.cu needs from CUDA, on the host: a block is run as real threads that meet at
// __syncthreads() on a std::barrier, and __shared__ arrays become function statics that the block's
// threads share (blocks run one after another). Enough for that file's kernels, nothing more.
#pragma once

#include <barrier>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

struct HostDim3 {
    unsigned x = 0, y = 0, z = 0;
};
inline thread_local HostDim3 threadIdx, blockIdx;
inline std::barrier<>* host_block_barrier = nullptr;

inline void __syncthreads() { host_block_barrier->arrive_and_wait(); }

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(threads)
#define __shared__ static

struct __nv_bfloat16 {
    uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 x) {
    const uint32_t u = static_cast<uint32_t>(x.bits) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float f) {  // round to nearest, ties to even (finite values)
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return {static_cast<uint16_t>(u >> 16)};
}

// Run `kernel()` as `blocks` blocks of `threads` threads.
inline void host_launch(unsigned blocks, unsigned threads, const std::function<void()>& kernel) {
    for (unsigned b = 0; b < blocks; ++b) {
        std::barrier<> barrier(threads);
        host_block_barrier = &barrier;
        std::vector<std::thread> pool;
        for (unsigned t = 0; t < threads; ++t)
            pool.emplace_back([&, b, t] {
                blockIdx.x = b;
                threadIdx.x = t;
                kernel();
            });
        for (auto& thread : pool) thread.join();
    }
}
