// RMSNorm forward (with and without the fused residual add) and backward:
// the kernels of kernels/rmsnorm.cuh checked against the CPU reference
// (reference/ops.h) on random inputs at several shapes, odd ones included,
// with outputs poisoned before each launch; with --bench, timed.
//
//   rmsnorm [--version 1] [--bench] [N C]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "dev/cuda/dev_common.h"
#include "kernels/rmsnorm.cuh"
#include "reference/ops.h"

static bool check_shape(int N, int C, bool fused, bool bench) {
    const float eps = 1e-5f;
    DevRng rng(N * 131 + C + (fused ? 7 : 0));
    std::vector<float> x = rng.bf16_vector(size_t(N) * C), res = rng.bf16_vector(size_t(N) * C),
                       w = rng.bf16_vector(C, 1.0f, 0.3f), dy = rng.bf16_vector(size_t(N) * C),
                       dres = rng.bf16_vector(size_t(N) * C);
    // CPU reference in fp32 on the same bf16-rounded inputs.
    std::vector<float> h = x;
    if (fused)
        for (size_t i = 0; i < h.size(); ++i) h[i] = round_bf16(x[i] + res[i]);
    std::vector<float> out_ref(h.size()), rstd_ref(N), dx_ref = dres, dw_ref(C, 0.0f);
    llama::ref::rmsnorm_forward(out_ref.data(), rstd_ref.data(), h.data(), w.data(), N, C, eps);
    llama::ref::rmsnorm_backward(dx_ref.data(), dw_ref.data(), dy.data(), h.data(), w.data(), rstd_ref.data(), N, C);

    DeviceBuffer<bf16> d_x(x), d_res(res), d_w(w), d_dy(dy), d_dx(dres), d_out(h.size()), d_h(h.size());
    DeviceBuffer<float> d_rstd(N), d_dw(std::vector<float>(C, 0.0f)), d_scratch(rmsnorm_backward_scratch(C));
    d_out.poison();
    d_rstd.poison();
    d_h.poison();
    rmsnorm_forward(d_out.ptr, d_rstd.ptr, fused ? d_h.ptr : nullptr, d_x.ptr, fused ? d_res.ptr : nullptr, d_w.ptr,
                    N, C, eps);
    const bf16* saved = fused ? d_h.ptr : d_x.ptr;
    rmsnorm_backward(d_dx.ptr, d_dw.ptr, d_scratch.ptr, d_dx.ptr, d_dy.ptr, saved, d_w.ptr, d_rstd.ptr, N, C);
    CUDA_CHECK(cudaDeviceSynchronize());

    char label[96];
    std::snprintf(label, sizeof label, "N=%d C=%d%s", N, C, fused ? " fused residual" : "");
    bool ok = true;
    if (fused) ok &= compare(std::string(label) + " residual out", d_h.to_host(), h, 0.0, 0.0);
    ok &= compare(std::string(label) + " out", d_out.to_host(), out_ref, 1e-3, 8e-3);
    ok &= compare(std::string(label) + " rstd", d_rstd.to_host(), rstd_ref, 1e-6, 1e-5);
    ok &= compare(std::string(label) + " dinp", d_dx.to_host(), dx_ref, 1e-3, 8e-3);
    ok &= compare(std::string(label) + " dweight", d_dw.to_host(), dw_ref, 1e-3, 1e-4);
    if (bench) {
        float ms = time_ms([&] {
            rmsnorm_forward(d_out.ptr, d_rstd.ptr, fused ? d_h.ptr : nullptr, d_x.ptr, fused ? d_res.ptr : nullptr,
                            d_w.ptr, N, C, eps);
        });
        double bytes = double(N) * C * 2 * (fused ? 4 : 2);
        std::printf("  forward: %.3f ms, %.1f GB/s\n", ms, bytes / ms / 1e6);
        ms = time_ms([&] {
            rmsnorm_backward(d_dx.ptr, d_dw.ptr, d_scratch.ptr, d_dx.ptr, d_dy.ptr, saved, d_w.ptr, d_rstd.ptr, N, C);
        });
        bytes = double(N) * C * 2 * 6;  // dout and inp twice, dresidual, dinp
        std::printf("  backward: %.3f ms, %.1f GB/s\n", ms, bytes / ms / 1e6);
    }
    return ok;
}

int main(int argc, char** argv) {
    DevArgs args(argc, argv, 1);
    std::vector<std::pair<int, int>> shapes = {{1, 8}, {7, 64}, {33, 960}, {5, 37}, {9, 100}, {130, 2048}, {257, 24}};
    if (args.shape.size() == 2) shapes = {{args.shape[0], args.shape[1]}};
    bool ok = true;
    for (auto [N, C] : shapes)
        for (bool fused : {false, true}) ok &= check_shape(N, C, fused, args.bench);
    std::printf("rmsnorm: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
