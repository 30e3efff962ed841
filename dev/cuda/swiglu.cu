// SwiGLU forward and backward on the fused [gate | up] layout: the kernels of
// kernels/swiglu.cuh against the CPU reference (reference/ops.h) on random
// inputs at several shapes, odd ones included, outputs poisoned first.
//
//   swiglu [--version 1] [--bench] [N F]
#include <cstdio>
#include <string>
#include <vector>

#include "dev/cuda/dev_common.h"
#include "kernels/swiglu.cuh"
#include "reference/ops.h"

static bool check_shape(int N, int F, bool bench) {
    DevRng rng(N * 7919 + F);
    std::vector<float> gate_up = rng.bf16_vector(size_t(N) * 2 * F, 0.0f, 2.0f), dout = rng.bf16_vector(size_t(N) * F);
    std::vector<float> gate(size_t(N) * F), up(size_t(N) * F);
    for (int n = 0; n < N; ++n)
        for (int f = 0; f < F; ++f) {
            gate[size_t(n) * F + f] = gate_up[size_t(n) * 2 * F + f];
            up[size_t(n) * F + f] = gate_up[size_t(n) * 2 * F + F + f];
        }
    std::vector<float> out_ref(gate.size()), dgate(gate.size(), 0.0f), dup(gate.size(), 0.0f);
    llama::ref::swiglu_forward(out_ref.data(), gate.data(), up.data(), int64_t(gate.size()));
    llama::ref::swiglu_backward(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), int64_t(gate.size()));
    std::vector<float> dgate_up_ref(gate_up.size());
    for (int n = 0; n < N; ++n)
        for (int f = 0; f < F; ++f) {
            dgate_up_ref[size_t(n) * 2 * F + f] = dgate[size_t(n) * F + f];
            dgate_up_ref[size_t(n) * 2 * F + F + f] = dup[size_t(n) * F + f];
        }
    DeviceBuffer<bf16> d_gu(gate_up), d_dout(dout), d_out(out_ref.size()), d_dgu(gate_up.size());
    d_out.poison();
    d_dgu.poison();
    swiglu_forward(d_out.ptr, d_gu.ptr, N, F);
    swiglu_backward(d_dgu.ptr, d_dout.ptr, d_gu.ptr, N, F);
    CUDA_CHECK(cudaDeviceSynchronize());
    const std::string label = "N=" + std::to_string(N) + " F=" + std::to_string(F);
    bool ok = compare(label + " out", d_out.to_host(), out_ref, 1e-3, 8e-3);
    ok &= compare(label + " dgate|dup", d_dgu.to_host(), dgate_up_ref, 1e-3, 8e-3);
    if (bench) {
        float ms = time_ms([&] { swiglu_forward(d_out.ptr, d_gu.ptr, N, F); });
        report_bandwidth("forward", ms, double(N) * F * 2 * 3);
        ms = time_ms([&] { swiglu_backward(d_dgu.ptr, d_dout.ptr, d_gu.ptr, N, F); });
        report_bandwidth("backward", ms, double(N) * F * 2 * 5);
    }
    return ok;
}

int main(int argc, char** argv) {
    DevArgs args(argc, argv, 1);
    std::vector<std::pair<int, int>> shapes = {{1, 8}, {3, 2560}, {17, 176}, {5, 37}, {64, 512}, {7, 1}};
    if (args.shape.size() == 2) shapes = {{args.shape[0], args.shape[1]}};
    bool ok = true;
    for (auto [N, F] : shapes) ok &= check_shape(N, F, args.bench);
    std::printf("swiglu: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
