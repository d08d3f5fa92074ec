// kernels/cuda/wkv7.cu's kernels on CPU threads (emulation.h), behind a C interface for ctypes:
// the tests check this very source against the float64 reference where there is no GPU.
#include "emulation.h"

#include "../../kernels/cuda/wkv7.cu"

namespace {

template <typename F, typename W>
const char* forward(int64_t B, int64_t T, int64_t H, const void* r, const void* w, const void* k, const void* v,
                    const void* a, const void* b, const float* s0, void* y, float* s_out, float* saved_sa,
                    float* checkpoints) {
    host_launch(B * H, wkv7::N, [&] {
        wkv7::forward_kernel<F, W>(T, H, static_cast<const F*>(r), static_cast<const W*>(w),
                                   static_cast<const F*>(k), static_cast<const F*>(v), static_cast<const F*>(a),
                                   static_cast<const F*>(b), s0, static_cast<F*>(y), s_out, saved_sa, checkpoints);
    });
    return nullptr;
}

template <typename F, typename W>
const char* backward(int64_t B, int64_t T, int64_t H, const void* r, const void* w, const void* k, const void* v,
                     const void* a, const void* b, const float* saved_sa, const float* checkpoints,
                     const float* s_final, const void* dy, const float* ds_final, void* dr, void* dw, void* dk,
                     void* dv, void* da, void* db, float* ds0) {
    host_launch(B * H, wkv7::N, [&] {
        wkv7::backward_kernel<F, W>(T, H, static_cast<const F*>(r), static_cast<const W*>(w),
                                    static_cast<const F*>(k), static_cast<const F*>(v), static_cast<const F*>(a),
                                    static_cast<const F*>(b), saved_sa, checkpoints, s_final,
                                    static_cast<const F*>(dy), ds_final, static_cast<F*>(dr), static_cast<W*>(dw),
                                    static_cast<F*>(dk), static_cast<F*>(dv), static_cast<F*>(da),
                                    static_cast<F*>(db), ds0);
    });
    return nullptr;
}

}  // namespace

extern "C" {

int host_checkpoint_interval() { return wkv7::CHECKPOINT; }

const char* host_forward(int io, int decay, int64_t B, int64_t T, int64_t H, const void* r, const void* w,
                         const void* k, const void* v, const void* a, const void* b, const float* s0, void* y,
                         float* s_out, float* saved_sa, float* checkpoints) {
#define CALL(F, W) forward<F, W>(B, T, H, r, w, k, v, a, b, s0, y, s_out, saved_sa, checkpoints)
    WKV7_DISPATCH(io, decay, CALL)
#undef CALL
}

const char* host_backward(int io, int decay, int64_t B, int64_t T, int64_t H, const void* r, const void* w,
                          const void* k, const void* v, const void* a, const void* b, const float* saved_sa,
                          const float* checkpoints, const float* s_final, const void* dy, const float* ds_final,
                          void* dr, void* dw, void* dk, void* dv, void* da, void* db, float* ds0) {
#define CALL(F, W) backward<F, W>(B, T, H, r, w, k, v, a, b, saved_sa, checkpoints, s_final, dy, ds_final, dr, dw, \
                                  dk, dv, da, db, ds0)
    WKV7_DISPATCH(io, decay, CALL)
#undef CALL
}
}
