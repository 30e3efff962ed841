// The linear layer's three matrix products through cuBLASLt (forward with bias,
// input gradient, fp32 weight gradient accumulated) and the bias gradient,
// against the CPU reference (reference/ops.h) at several shapes, odd ones included.
//
//   matmul [--version 1] [--bench] [N IC OC]
#include <cstdio>
#include <string>
#include <vector>

#include "dev/cuda/dev_common.h"
#include "kernels/matmul.cuh"
#include "reference/ops.h"

static bool check_shape(MatmulContext& ctx, int N, int IC, int OC, bool bench) {
    DevRng rng(N * 17 + IC * 3 + OC);
    std::vector<float> x = rng.bf16_vector(size_t(N) * IC), W = rng.bf16_vector(size_t(OC) * IC, 0.0f, 0.1f),
                       b = rng.bf16_vector(OC), dy = rng.bf16_vector(size_t(N) * OC),
                       dW0 = rng.bf16_vector(size_t(OC) * IC, 0.0f, 0.01f), db0 = rng.bf16_vector(OC, 0.0f, 0.01f);
    std::vector<float> y_ref(size_t(N) * OC), dx_ref(size_t(N) * IC, 0.0f), dW_ref = dW0, db_ref = db0;
    llama::ref::linear_forward(y_ref.data(), x.data(), W.data(), b.data(), N, IC, OC);
    llama::ref::linear_backward(dx_ref.data(), dW_ref.data(), db_ref.data(), dy.data(), x.data(), W.data(), N, IC, OC);
    std::vector<float> y_ref_nobias(size_t(N) * OC);
    llama::ref::linear_forward(y_ref_nobias.data(), x.data(), W.data(), static_cast<const float*>(nullptr), N, IC, OC);

    DeviceBuffer<bf16> d_x(x), d_W(W), d_b(b), d_dy(dy), d_y(y_ref.size()), d_dx(dx_ref.size());
    DeviceBuffer<float> d_y32(y_ref.size()), d_dW(dW0), d_db(db0), d_scratch(bias_grad_scratch(OC));
    d_y.poison();
    d_y32.poison();
    d_dx.poison();
    linear_forward(ctx, d_y.ptr, false, d_x.ptr, d_W.ptr, d_b.ptr, N, IC, OC);
    linear_forward(ctx, d_y32.ptr, true, d_x.ptr, d_W.ptr, nullptr, N, IC, OC);
    linear_backward_input(ctx, d_dx.ptr, d_dy.ptr, d_W.ptr, N, IC, OC, false);
    linear_backward_weight(ctx, d_dW.ptr, d_dy.ptr, d_x.ptr, N, IC, OC);
    bias_grad(d_db.ptr, d_scratch.ptr, d_dy.ptr, N, OC);
    CUDA_CHECK(cudaDeviceSynchronize());
    char label[64];
    std::snprintf(label, sizeof label, "N=%d IC=%d OC=%d", N, IC, OC);
    const std::string l = label;
    // bf16 outputs: one rounding of an fp32 sum; fp32 outputs: summation order only.
    bool ok = compare(l + " forward (bf16, bias)", d_y.to_host(), y_ref, 1e-3, 8e-3);
    ok &= compare(l + " forward (fp32)", d_y32.to_host(), y_ref_nobias, 1e-4, 1e-4);
    ok &= compare(l + " dinp", d_dx.to_host(), dx_ref, 1e-3, 8e-3);
    ok &= compare(l + " dW (fp32, accumulated)", d_dW.to_host(), dW_ref, 1e-4, 1e-4);
    ok &= compare(l + " dbias (fp32, accumulated)", d_db.to_host(), db_ref, 1e-4, 1e-4);
    if (bench) {
        float ms = time_ms([&] { linear_forward(ctx, d_y.ptr, false, d_x.ptr, d_W.ptr, d_b.ptr, N, IC, OC); });
        std::printf("  forward: %.3f ms, %.1f TFLOP/s\n", ms, 2.0 * N * IC * OC / ms / 1e9);
    }
    return ok;
}

int main(int argc, char** argv) {
    DevArgs args(argc, argv, 1);
    struct Shape {
        int N, IC, OC;
    };
    std::vector<Shape> shapes = {{1, 8, 8}, {7, 64, 24}, {33, 96, 160}, {5, 37, 11}, {64, 128, 256}};
    if (args.shape.size() == 3) shapes = {{args.shape[0], args.shape[1], args.shape[2]}};
    MatmulContext ctx;
    bool ok = true;
    for (const Shape& s : shapes) ok &= check_shape(ctx, s.N, s.IC, s.OC, args.bench);
    std::printf("matmul: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
