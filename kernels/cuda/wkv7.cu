// Fused WKV-7 forward and backward for head size 64: one thread block per (batch, head), one thread per
// row (forward) or column (backward) of the 64x64 state, the state in registers, time sequential.
//
//   S_t = S_{t-1} (diag(w_t) + a_t b_t^T) + v_t k_t^T,    y_t = S_t r_t      (rows: value i, columns: key j)
//
// The backward runs time in reverse with D = dL/dS:
//   D += dy r^T;  dr = S_t^T dy;  dv = D k;  dk = D^T v;  db = D^T (S_{t-1} a);  dSb = D b
//   dw = diag(S_{t-1}^T D);  da = S_{t-1}^T dSb;  D <- D diag(w) + dSb a^T
// S_{t-1} comes from S_t as (S_t - (S_{t-1} a) b^T - v k^T) diag(1/w), with S_{t-1} a saved by the forward,
// and exactly from a state the forward saved every CHECKPOINT steps, so no error is carried further than
// that (float32 arithmetic; checked against the float64 recurrence to ~2e-6 for RWKV-7's w > 0.545).
//
// Plain CUDA, no PyTorch headers: wkv7_binding.cpp calls the launchers below. The kernels also compile as
// host C++ (everything outside __CUDACC__ then comes from tests/cuda_host/emulation.h), which is how the
// tests run this very source on CPU threads where there is no GPU.
#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#endif

#include <cstdint>

namespace wkv7 {

constexpr int N = 64;           // head size
constexpr int CHECKPOINT = 16;  // steps between states saved by the forward for the backward
constexpr int LANES = 4;        // independent partial sums per dot product

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float lane_sum(const float (&part)[LANES]) {
    return (part[0] + part[1]) + (part[2] + part[3]);
}

// A thread's row of a row-major N x N matrix in global memory, moved through shared memory so that
// the global accesses are coalesced (thread c touches column c of every row).
__device__ __forceinline__ void load_row(const float* __restrict__ m, float (&tile)[N][N + 1], float (&row)[N]) {
    const int c = threadIdx.x;
#pragma unroll
    for (int i = 0; i < N; ++i) tile[i][c] = m[i * N + c];
    __syncthreads();
#pragma unroll
    for (int j = 0; j < N; ++j) row[j] = tile[c][j];
    __syncthreads();
}

__device__ __forceinline__ void store_row(float* __restrict__ m, float (&tile)[N][N + 1], const float (&row)[N]) {
    const int c = threadIdx.x;
#pragma unroll
    for (int j = 0; j < N; ++j) tile[c][j] = row[j];
    __syncthreads();
#pragma unroll
    for (int i = 0; i < N; ++i) m[i * N + c] = tile[i][c];
    __syncthreads();
}

// Inputs (B, T, H, N), states (B, H, N, N) float32. s0 may be null (zeros). saved_sa (B, T, H, N) and
// checkpoints (B, H, ceil(T / CHECKPOINT), N, N) are written only when non-null (a forward for training).
template <typename F, typename W>
__global__ void __launch_bounds__(N) forward_kernel(
    int T, int H, const F* __restrict__ r, const W* __restrict__ w, const F* __restrict__ k,
    const F* __restrict__ v, const F* __restrict__ a, const F* __restrict__ b, const float* __restrict__ s0,
    F* __restrict__ y, float* __restrict__ s_out, float* __restrict__ saved_sa, float* __restrict__ checkpoints) {
    const int bh = blockIdx.x, batch = bh / H, head = bh % H, i = threadIdx.x;
    __shared__ float tile[N][N + 1];
    __shared__ float vec[2][5][N];  // r w k a b of one step, double-buffered: one barrier per step

    float s[N];  // row i of the state
    const int64_t state_at = static_cast<int64_t>(bh) * N * N;
    if (s0 != nullptr) {
        load_row(s0 + state_at, tile, s);
    } else {
#pragma unroll
        for (int j = 0; j < N; ++j) s[j] = 0.f;
    }
    const int chunks = (T + CHECKPOINT - 1) / CHECKPOINT;
    const int64_t stride = static_cast<int64_t>(H) * N;  // one time step
    int64_t at = (static_cast<int64_t>(batch) * T * H + head) * N + i;

    // the next step's inputs, loaded while the current one is computed
    float nr = 0.f, nw = 1.f, nk = 0.f, nv = 0.f, na = 0.f, nb = 0.f;
    if (T > 0) {
        nr = to_float(r[at]); nw = to_float(w[at]); nk = to_float(k[at]);
        nv = to_float(v[at]); na = to_float(a[at]); nb = to_float(b[at]);
    }
    for (int t = 0; t < T; ++t, at += stride) {
        if (checkpoints != nullptr && t % CHECKPOINT == 0)
            store_row(checkpoints + (static_cast<int64_t>(bh) * chunks + t / CHECKPOINT) * N * N, tile, s);
        const int p = t & 1;
        vec[p][0][i] = nr; vec[p][1][i] = nw; vec[p][2][i] = nk; vec[p][3][i] = na; vec[p][4][i] = nb;
        const float vi = nv;
        if (t + 1 < T) {
            const int64_t next = at + stride;
            nr = to_float(r[next]); nw = to_float(w[next]); nk = to_float(k[next]);
            nv = to_float(v[next]); na = to_float(a[next]); nb = to_float(b[next]);
        }
        __syncthreads();
        // the two dot products in LANES independent partial sums: a step is a chain of dependent
        // operations, and one long chain of 64 additions would be most of its latency
        float part[LANES] = {};
#pragma unroll
        for (int j = 0; j < N; ++j) part[j % LANES] += s[j] * vec[p][3][j];
        const float sa = lane_sum(part);
        float y_part[LANES] = {};
#pragma unroll
        for (int j = 0; j < N; ++j) {
            s[j] = s[j] * vec[p][1][j] + sa * vec[p][4][j] + vi * vec[p][2][j];
            y_part[j % LANES] += s[j] * vec[p][0][j];
        }
        const float yi = lane_sum(y_part);
        y[at] = from_float<F>(yi);
        if (saved_sa != nullptr) saved_sa[at] = sa;
    }
    store_row(s_out + state_at, tile, s);
}

// Thread c holds column c of S_{t+1} and of D in registers, and row c of D in shared memory (each thread
// touches only its own row, so no barrier guards it), so that every reduction is a dot product inside one
// thread; the vectors they need are shared through shared memory.
template <typename F, typename W>
__global__ void __launch_bounds__(N) backward_kernel(
    int T, int H, const F* __restrict__ r, const W* __restrict__ w, const F* __restrict__ k,
    const F* __restrict__ v, const F* __restrict__ a, const F* __restrict__ b, const float* __restrict__ saved_sa,
    const float* __restrict__ checkpoints, const float* __restrict__ s_final, const F* __restrict__ dy,
    const float* __restrict__ ds_final, F* __restrict__ dr, W* __restrict__ dw, F* __restrict__ dk,
    F* __restrict__ dv, F* __restrict__ da, F* __restrict__ db, float* __restrict__ ds0) {
    const int bh = blockIdx.x, batch = bh / H, head = bh % H, c = threadIdx.x;
    __shared__ float d_rows[N][N + 1];  // D; padded so that row and column walks are free of bank conflicts
    __shared__ float vec[2][8][N];      // r w k v a b dy sa of one step, double-buffered
    __shared__ float dsb_of[2][N];      // D b

    const int64_t state_at = static_cast<int64_t>(bh) * N * N;
    float s_col[N], d_col[N];
#pragma unroll
    for (int ii = 0; ii < N; ++ii) {
        s_col[ii] = s_final[state_at + ii * N + c];
        d_col[ii] = ds_final != nullptr ? ds_final[state_at + ii * N + c] : 0.f;
        d_rows[ii][c] = d_col[ii];
    }
    __syncthreads();  // from here on, thread c reads and writes only row c of d_rows
    float* d_row = d_rows[c];
    const int chunks = (T + CHECKPOINT - 1) / CHECKPOINT;
    const int64_t stride = static_cast<int64_t>(H) * N;
    int64_t at = ((static_cast<int64_t>(batch) * T + (T - 1)) * H + head) * N + c;

    float nxt[8] = {0.f, 1.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    auto fetch = [&](int64_t p) {
        nxt[0] = to_float(r[p]); nxt[1] = to_float(w[p]); nxt[2] = to_float(k[p]); nxt[3] = to_float(v[p]);
        nxt[4] = to_float(a[p]); nxt[5] = to_float(b[p]); nxt[6] = to_float(dy[p]); nxt[7] = saved_sa[p];
    };
    if (T > 0) fetch(at);
    for (int t = T - 1; t >= 0; --t, at -= stride) {
        const int p = t & 1;
#pragma unroll
        for (int q = 0; q < 8; ++q) vec[p][q][c] = nxt[q];
        const float rc = nxt[0], wc = nxt[1], kc = nxt[2], ac = nxt[4], bc = nxt[5], dyc = nxt[6];
        if (t > 0) fetch(at - stride);
        __syncthreads();
        const float* rv = vec[p][0];
        const float* wv = vec[p][1];
        const float* kv = vec[p][2];
        const float* vv = vec[p][3];
        const float* av = vec[p][4];
        const float* bv = vec[p][5];
        const float* dyv = vec[p][6];
        const float* sav = vec[p][7];

        float g_r = 0.f, g_v = 0.f, dsb = 0.f, g_k = 0.f, g_b = 0.f;
#pragma unroll
        for (int j = 0; j < N; ++j) {
            const float d = d_row[j] + dyc * rv[j];  // D += dy r^T, row c
            d_row[j] = d;
            g_v += d * kv[j];
            dsb += d * bv[j];
        }
        dsb_of[p][c] = dsb;
        // one pass over column c, each shared value read once: D += dy r^T, the reductions, then S_{t-1}
        const float inv_w = 1.f / wc;
#pragma unroll
        for (int ii = 0; ii < N; ++ii) {
            const float dyi = dyv[ii], vi = vv[ii], sai = sav[ii];
            d_col[ii] += dyi * rc;
            g_r += s_col[ii] * dyi;
            g_k += d_col[ii] * vi;
            g_b += d_col[ii] * sai;
            s_col[ii] = (s_col[ii] - sai * bc - vi * kc) * inv_w;
        }
        if (t % CHECKPOINT == 0) {  // S_t exactly, as the forward saved it
            const float* saved = checkpoints + (static_cast<int64_t>(bh) * chunks + t / CHECKPOINT) * N * N;
#pragma unroll
            for (int ii = 0; ii < N; ++ii) s_col[ii] = saved[ii * N + c];
        }
        __syncthreads();
        const float* dsbv = dsb_of[p];
        float g_w = 0.f, g_a = 0.f;
#pragma unroll
        for (int ii = 0; ii < N; ++ii) {
            g_w += s_col[ii] * d_col[ii];
            g_a += s_col[ii] * dsbv[ii];
            d_col[ii] = d_col[ii] * wc + dsbv[ii] * ac;
        }
#pragma unroll
        for (int j = 0; j < N; ++j) d_row[j] = d_row[j] * wv[j] + dsb * av[j];
        dr[at] = from_float<F>(g_r); dw[at] = from_float<W>(g_w); dk[at] = from_float<F>(g_k);
        dv[at] = from_float<F>(g_v); da[at] = from_float<F>(g_a); db[at] = from_float<F>(g_b);
    }
#pragma unroll
    for (int ii = 0; ii < N; ++ii) ds0[state_at + ii * N + c] = d_col[ii];
}

}  // namespace wkv7

// The three combinations of dtypes the binding accepts; anything else is refused there.
#define WKV7_DISPATCH(io, decay, CALL)                                            \
    if ((io) == 0 && (decay) == 0) return CALL(float, float);                     \
    if ((io) == 1 && (decay) == 1) return CALL(__nv_bfloat16, __nv_bfloat16);     \
    if ((io) == 1 && (decay) == 0) return CALL(__nv_bfloat16, float);             \
    return "unsupported dtype combination";

#ifdef __CUDACC__
namespace wkv7 {

// The launchers: dtype codes 0 = float32, 1 = bfloat16; io is the dtype of r, k, v, a, b, y and their
// gradients, decay the dtype of w and dw (float32 whenever io is). Return null, or CUDA's error message.
template <typename F, typename W>
const char* launch_forward(int64_t B, int64_t T, int64_t H, const void* r, const void* w, const void* k,
                           const void* v, const void* a, const void* b, const float* s0, void* y, float* s_out,
                           float* saved_sa, float* checkpoints, cudaStream_t stream) {
    forward_kernel<F, W><<<static_cast<unsigned>(B * H), N, 0, stream>>>(
        static_cast<int>(T), static_cast<int>(H), static_cast<const F*>(r), static_cast<const W*>(w),
        static_cast<const F*>(k), static_cast<const F*>(v), static_cast<const F*>(a), static_cast<const F*>(b),
        s0, static_cast<F*>(y), s_out, saved_sa, checkpoints);
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

template <typename F, typename W>
const char* launch_backward(int64_t B, int64_t T, int64_t H, const void* r, const void* w, const void* k,
                            const void* v, const void* a, const void* b, const float* saved_sa,
                            const float* checkpoints, const float* s_final, const void* dy, const float* ds_final,
                            void* dr, void* dw, void* dk, void* dv, void* da, void* db, float* ds0,
                            cudaStream_t stream) {
    backward_kernel<F, W><<<static_cast<unsigned>(B * H), N, 0, stream>>>(
        static_cast<int>(T), static_cast<int>(H), static_cast<const F*>(r), static_cast<const W*>(w),
        static_cast<const F*>(k), static_cast<const F*>(v), static_cast<const F*>(a), static_cast<const F*>(b),
        saved_sa, checkpoints, s_final, static_cast<const F*>(dy), ds_final, static_cast<F*>(dr),
        static_cast<W*>(dw), static_cast<F*>(dk), static_cast<F*>(dv), static_cast<F*>(da), static_cast<F*>(db), ds0);
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace wkv7

const char* wkv7_forward(int io, int decay, int64_t B, int64_t T, int64_t H, const void* r, const void* w,
                         const void* k, const void* v, const void* a, const void* b, const float* s0, void* y,
                         float* s_out, float* saved_sa, float* checkpoints, void* stream) {
#define CALL(F, W) wkv7::launch_forward<F, W>(B, T, H, r, w, k, v, a, b, s0, y, s_out, saved_sa, checkpoints, \
                                               static_cast<cudaStream_t>(stream))
    WKV7_DISPATCH(io, decay, CALL)
#undef CALL
}

const char* wkv7_backward(int io, int decay, int64_t B, int64_t T, int64_t H, const void* r, const void* w,
                          const void* k, const void* v, const void* a, const void* b, const float* saved_sa,
                          const float* checkpoints, const float* s_final, const void* dy, const float* ds_final,
                          void* dr, void* dw, void* dk, void* dv, void* da, void* db, float* ds0, void* stream) {
#define CALL(F, W) wkv7::launch_backward<F, W>(B, T, H, r, w, k, v, a, b, saved_sa, checkpoints, s_final, dy, \
                                                ds_final, dr, dw, dk, dv, da, db, ds0,                            \
                                                static_cast<cudaStream_t>(stream))
    WKV7_DISPATCH(io, decay, CALL)
#undef CALL
}

int wkv7_checkpoint_interval() { return wkv7::CHECKPOINT; }
#endif  // __CUDACC__
