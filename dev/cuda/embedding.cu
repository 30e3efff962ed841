// Token embedding forward and the deterministic backward against the CPU
// reference (reference/ops.h), with repeated tokens; prints a checksum of the
// weight gradient so runs under different block orders can be compared bit for bit.
//
//   embedding [--version 1] [--bench] [N C V]
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dev/cuda/dev_common.h"
#include "kernels/embedding.cuh"
#include "reference/ops.h"

static uint64_t checksum = 1469598103934665603ull;  // FNV-1a over the gradients' bits

static bool check_shape(int N, int C, int V, bool bench) {
    DevRng rng(N * 31 + C * 7 + V);
    std::vector<int> tokens(N);
    for (int n = 0; n < N; ++n) tokens[n] = int(rng.rng.below(uint64_t(V < 8 ? V : V / 4)));  // many repeats
    std::vector<float> wte = rng.bf16_vector(size_t(V) * C), dout = rng.bf16_vector(size_t(N) * C);
    std::vector<float> dw0 = rng.bf16_vector(size_t(V) * C, 0.0f, 0.1f);  // accumulates onto existing values
    std::vector<float> out_ref(size_t(N) * C), dw_ref = dw0;
    llama::ref::embedding_forward(out_ref.data(), tokens.data(), wte.data(), N, C);
    llama::ref::embedding_backward(dw_ref.data(), dout.data(), tokens.data(), N, C);

    EmbeddingPlan plan = embedding_backward_plan(tokens.data(), N, V);
    DeviceBuffer<bf16> d_wte(wte), d_dout(dout), d_out(out_ref.size());
    DeviceBuffer<float> d_dw(dw0);
    int *d_tokens = nullptr, *d_table = nullptr;
    CUDA_CHECK(cudaMalloc(&d_tokens, N * sizeof(int)));
    CUDA_CHECK(cudaMalloc(&d_table, plan.table.size() * sizeof(int)));
    CUDA_CHECK(cudaMemcpy(d_tokens, tokens.data(), N * sizeof(int), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_table, plan.table.data(), plan.table.size() * sizeof(int), cudaMemcpyHostToDevice));
    d_out.poison();
    embedding_forward(d_out.ptr, d_tokens, d_wte.ptr, N, C);
    embedding_backward(d_dw.ptr, d_dout.ptr, plan, d_table, C);
    CUDA_CHECK(cudaDeviceSynchronize());
    char label[64];
    std::snprintf(label, sizeof label, "N=%d C=%d V=%d", N, C, V);
    bool ok = compare(std::string(label) + " forward", d_out.to_host(), out_ref, 0.0, 0.0);
    std::vector<float> dw = d_dw.to_host();
    ok &= compare(std::string(label) + " dwte", dw, dw_ref, 1e-5, 1e-5);
    for (float f : dw) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        for (int b = 0; b < 4; ++b) checksum = (checksum ^ ((u >> (8 * b)) & 0xff)) * 1099511628211ull;
    }
    if (bench) {
        float ms = time_ms([&] { embedding_forward(d_out.ptr, d_tokens, d_wte.ptr, N, C); });
        report_bandwidth("forward", ms, double(N) * C * 4);
        ms = time_ms([&] { embedding_backward(d_dw.ptr, d_dout.ptr, plan, d_table, C); });
        std::printf("  backward: %.3f ms\n", ms);
    }
    CUDA_CHECK(cudaFree(d_tokens));
    CUDA_CHECK(cudaFree(d_table));
    return ok;
}

int main(int argc, char** argv) {
    DevArgs args(argc, argv, 1);
    struct Shape {
        int N, C, V;
    };
    std::vector<Shape> shapes = {{1, 8, 3}, {7, 64, 11}, {130, 960, 301}, {33, 37, 5}, {256, 100, 1000}};
    if (args.shape.size() == 3) shapes = {{args.shape[0], args.shape[1], args.shape[2]}};
    bool ok = true;
    for (const Shape& s : shapes) ok &= check_shape(s.N, s.C, s.V, args.bench);
    std::printf("checksum of the weight gradients: %016llx\n", (unsigned long long)checksum);
    std::printf("embedding: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
