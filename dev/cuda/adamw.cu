// The optimizer step: global gradient norm and clipping scale, and the fused
// AdamW (fp32 master weights and moments, bf16 working copy written in the same
// pass), against the CPU reference (reference/ops.h) over several steps.
//
// Versions: 1 one thread per element; 2 four per thread with 128-bit loads and
// stores (what adamw_update runs when the pointers are aligned).
//
//   adamw [--version 1|2] [--bench] [N]       (without --version: both)
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "dev/cuda/dev_common.h"
#include "kernels/adamw.cuh"
#include "reference/ops.h"

static void run_version(int version, float* w, bf16* wb, const float* g, float* m, float* v, size_t n,
                        const AdamWParams& p, const float* clip) {
    if (version == 1) adamw_update_v1(w, wb, g, m, v, n, p, clip);
    else adamw_update(w, wb, g, m, v, n, p, clip);
}

static bool check_size(int version, size_t n, bool decay, bool bench) {
    DevRng rng(n * 3 + decay);
    std::vector<float> w = rng.bf16_vector(n, 0.0f, 0.05f), m(n, 0.0f), v(n, 0.0f);
    DeviceBuffer<float> d_w(w), d_m(m), d_v(v), d_g(n), d_scratch(kNormBlocks), d_norm(2);
    DeviceBuffer<bf16> d_wb(n);
    llama::ref::AdamWHyper h;
    h.lr = 1e-3;
    h.weight_decay = decay ? 0.1 : 0.0;
    const float max_norm = 1.0f;
    bool ok = true;
    const std::string label =
        "v" + std::to_string(version) + " n=" + std::to_string(n) + (decay ? " decay" : " no decay");
    for (int step = 1; step <= 3; ++step) {
        std::vector<float> g = rng.bf16_vector(n, 0.0f, 0.2f);
        CUDA_CHECK(cudaMemcpy(d_g.ptr, g.data(), n * 4, cudaMemcpyHostToDevice));
        d_wb.poison();
        d_norm.poison();
        grad_norm(d_norm.ptr, d_scratch.ptr, d_g.ptr, n, max_norm);
        AdamWParams p{float(h.lr), float(h.beta1), float(h.beta2), float(h.eps), float(h.weight_decay), step};
        run_version(version, d_w.ptr, d_wb.ptr, d_g.ptr, d_m.ptr, d_v.ptr, n, p, d_norm.ptr);
        CUDA_CHECK(cudaDeviceSynchronize());
        const double norm = std::sqrt(llama::ref::grad_norm_squared(g.data(), int64_t(n)));
        const double scale = llama::ref::clip_scale(norm, max_norm);
        llama::ref::adamw_update(w.data(), g.data(), m.data(), v.data(), int64_t(n), h, step, scale, decay);
        std::vector<float> norm_out = d_norm.to_host();
        const std::string s = label + " step " + std::to_string(step);
        ok &= compare(s + " norm, clip", norm_out, {float(norm), float(scale)}, 1e-6, 1e-5);
        ok &= compare(s + " master", d_w.to_host(), w, 1e-7, 1e-5);
        ok &= compare(s + " m, v", d_m.to_host(), m, 1e-8, 1e-5);
        ok &= compare(s + " v", d_v.to_host(), v, 1e-10, 1e-5);
        std::vector<float> wb(n);
        for (size_t i = 0; i < n; ++i) wb[i] = round_bf16(w[i]);
        ok &= compare(s + " bf16 copy (one ulp)", d_wb.to_host(), wb, 1e-8, 8e-3);
    }
    if (bench) {
        AdamWParams p{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 4};
        float ms =
            time_ms([&] { run_version(version, d_w.ptr, d_wb.ptr, d_g.ptr, d_m.ptr, d_v.ptr, n, p, d_norm.ptr); });
        report_bandwidth("adamw", ms, double(n) * (4 * 4 + 3 * 4 + 2));
    }
    return ok;
}

int main(int argc, char** argv) {
    DevArgs args(argc, argv, 2);
    // Without --version every version is checked.
    bool have_version = false;
    for (int i = 1; i < argc; ++i) have_version |= std::string(argv[i]) == "--version";
    const std::vector<int> versions = have_version ? std::vector<int>{args.version} : std::vector<int>{1, 2};
    std::vector<size_t> sizes = {1, 7, 1000, 4099, 65537};
    if (args.shape.size() == 1) sizes = {size_t(args.shape[0])};
    bool ok = true;
    for (size_t n : sizes)
        for (bool decay : {true, false})
            for (int version : versions) ok &= check_size(version, n, decay, args.bench);
    std::printf("adamw: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
