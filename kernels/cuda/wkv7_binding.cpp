// PyTorch binding of the fused WKV-7 kernels (wkv7.cu): checks shapes, dtypes and devices, allocates the
// outputs and calls the launchers on the stream Python passes in. No CUDA headers, so it also compiles
// against a CPU build of PyTorch (the CI compile check).
#include <torch/extension.h>

#include <cstdint>
#include <optional>
#include <vector>

const char* wkv7_forward(int io, int decay, int64_t B, int64_t T, int64_t H, const void* r, const void* w,
                         const void* k, const void* v, const void* a, const void* b, const float* s0, void* y,
                         float* s_out, float* saved_sa, float* checkpoints, void* stream);
const char* wkv7_backward(int io, int decay, int64_t B, int64_t T, int64_t H, const void* r, const void* w,
                          const void* k, const void* v, const void* a, const void* b, const float* saved_sa,
                          const float* checkpoints, const float* s_final, const void* dy, const float* ds_final,
                          void* dr, void* dw, void* dk, void* dv, void* da, void* db, float* ds0, void* stream);
int wkv7_checkpoint_interval();

namespace {

constexpr int64_t kHeadSize = 64;

int dtype_code(const torch::Tensor& x, const char* name) {
    if (x.scalar_type() == torch::kFloat32) return 0;
    if (x.scalar_type() == torch::kBFloat16) return 1;
    TORCH_CHECK(false, "wkv7 cuda: ", name, " must be float32 or bfloat16, got ", x.scalar_type());
}

void check_input(const torch::Tensor& x, const char* name, const torch::Tensor& like) {
    TORCH_CHECK(x.is_cuda(), "wkv7 cuda: ", name, " must be a CUDA tensor");
    TORCH_CHECK(x.is_contiguous(), "wkv7 cuda: ", name, " must be contiguous");
    TORCH_CHECK(x.sizes() == like.sizes(), "wkv7 cuda: ", name, " has shape ", x.sizes(), ", expected ", like.sizes());
    TORCH_CHECK(x.device() == like.device(), "wkv7 cuda: ", name, " is on ", x.device(), ", r on ", like.device());
}

void check_state(const torch::Tensor& s, const char* name, const torch::Tensor& r) {
    TORCH_CHECK(s.is_cuda() && s.is_contiguous() && s.scalar_type() == torch::kFloat32,
                "wkv7 cuda: ", name, " must be a contiguous float32 CUDA tensor");
    TORCH_CHECK(s.device() == r.device(), "wkv7 cuda: ", name, " is on ", s.device(), ", r on ", r.device());
    TORCH_CHECK(s.dim() == 4 && s.size(0) == r.size(0) && s.size(1) == r.size(2) && s.size(2) == kHeadSize &&
                    s.size(3) == kHeadSize,
                "wkv7 cuda: ", name, " has shape ", s.sizes(), ", expected (B, H, 64, 64)");
}

// r, k, v, a, b share one dtype (io); w may be float32 beside bfloat16 inputs (a decay near 1 needs it).
std::pair<int, int> check_inputs(const std::vector<torch::Tensor>& x) {
    const auto& r = x[0];
    TORCH_CHECK(r.dim() == 4 && r.size(3) == kHeadSize, "wkv7 cuda: inputs must be (B, T, H, 64), got ", r.sizes());
    const char* names[] = {"r", "w", "k", "v", "a", "b"};
    for (size_t i = 0; i < 6; ++i) check_input(x[i], names[i], r);
    const int io = dtype_code(r, "r");
    for (size_t i : {2, 3, 4, 5})
        TORCH_CHECK(x[i].scalar_type() == r.scalar_type(), "wkv7 cuda: ", names[i], " is ", x[i].scalar_type(),
                    ", r is ", r.scalar_type());
    const int decay = dtype_code(x[1], "w");
    TORCH_CHECK(!(io == 0 && decay == 1), "wkv7 cuda: w is bfloat16 beside float32 inputs");
    return {io, decay};
}

void raise_on(const char* error, const char* what) {
    TORCH_CHECK(error == nullptr, "wkv7 cuda: the ", what, " kernel failed to launch: ", error);
}

// (y, final state, saved S a, saved states); the last two are empty unless `save` (a forward for training).
std::vector<torch::Tensor> forward(torch::Tensor r, torch::Tensor w, torch::Tensor k, torch::Tensor v, torch::Tensor a,
                                   torch::Tensor b, std::optional<torch::Tensor> s0, bool save, int64_t stream) {
    const auto [io, decay] = check_inputs({r, w, k, v, a, b});
    if (s0) check_state(*s0, "state", r);
    const int64_t B = r.size(0), T = r.size(1), H = r.size(2);
    const int64_t interval = wkv7_checkpoint_interval();
    const auto f32 = r.options().dtype(torch::kFloat32);
    auto y = torch::empty_like(r);
    auto s_out = torch::empty({B, H, kHeadSize, kHeadSize}, f32);
    auto saved_sa = save ? torch::empty(r.sizes(), f32) : torch::empty({0}, f32);
    auto checkpoints = save ? torch::empty({B, H, (T + interval - 1) / interval, kHeadSize, kHeadSize}, f32)
                            : torch::empty({0}, f32);
    raise_on(wkv7_forward(io, decay, B, T, H, r.data_ptr(), w.data_ptr(), k.data_ptr(), v.data_ptr(), a.data_ptr(),
                          b.data_ptr(), s0 ? s0->data_ptr<float>() : nullptr, y.data_ptr(), s_out.data_ptr<float>(),
                          save ? saved_sa.data_ptr<float>() : nullptr, save ? checkpoints.data_ptr<float>() : nullptr,
                          reinterpret_cast<void*>(stream)),
             "forward");
    return {y, s_out, saved_sa, checkpoints};
}

// (dr, dw, dk, dv, da, db, d initial state).
std::vector<torch::Tensor> backward(torch::Tensor r, torch::Tensor w, torch::Tensor k, torch::Tensor v,
                                    torch::Tensor a, torch::Tensor b, torch::Tensor saved_sa,
                                    torch::Tensor checkpoints, torch::Tensor s_final, torch::Tensor dy,
                                    std::optional<torch::Tensor> ds_final, int64_t stream) {
    const auto [io, decay] = check_inputs({r, w, k, v, a, b});
    check_input(dy, "dy", r);
    TORCH_CHECK(dy.scalar_type() == r.scalar_type(), "wkv7 cuda: dy is ", dy.scalar_type(), ", y is ", r.scalar_type());
    check_state(s_final, "final state", r);
    if (ds_final) check_state(*ds_final, "final state's gradient", r);
    const int64_t B = r.size(0), T = r.size(1), H = r.size(2);
    const int64_t interval = wkv7_checkpoint_interval();
    TORCH_CHECK(saved_sa.sizes() == r.sizes() && checkpoints.numel() == B * H * ((T + interval - 1) / interval) *
                                                                          kHeadSize * kHeadSize,
                "wkv7 cuda: the forward saved nothing for a backward");
    auto dr = torch::empty_like(r), dw = torch::empty_like(w), dk = torch::empty_like(k);
    auto dv = torch::empty_like(v), da = torch::empty_like(a), db = torch::empty_like(b);
    auto ds0 = torch::empty_like(s_final);
    raise_on(wkv7_backward(io, decay, B, T, H, r.data_ptr(), w.data_ptr(), k.data_ptr(), v.data_ptr(), a.data_ptr(),
                           b.data_ptr(), saved_sa.data_ptr<float>(), checkpoints.data_ptr<float>(),
                           s_final.data_ptr<float>(), dy.data_ptr(), ds_final ? ds_final->data_ptr<float>() : nullptr,
                           dr.data_ptr(), dw.data_ptr(), dk.data_ptr(), dv.data_ptr(), da.data_ptr(), db.data_ptr(),
                           ds0.data_ptr<float>(), reinterpret_cast<void*>(stream)),
             "backward");
    return {dr, dw, dk, dv, da, db, ds0};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("forward", &forward, "WKV-7 forward (head size 64)");
    m.def("backward", &backward, "WKV-7 backward (head size 64)");
    m.def("checkpoint_interval", &wkv7_checkpoint_interval, "steps between states the forward saves");
}
