// The fused, chunked classifier + cross-entropy against the CPU reference
// (reference/ops.h: linear, cross_entropy, their backward), with ignored
// targets and chunks smaller than the batch; and the memory plan at the size of
// a zagreus-0.4b batch (16 x 4096 tokens, vocabulary 128256), which must stay
// under 1 GB beyond inputs and outputs.
//
//   cross_entropy [--version 1] [--bench] [N C V]
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "dev/cuda/dev_common.h"
#include "kernels/cross_entropy.cuh"
#include "model/memory_plan.h"
#include "reference/ops.h"

static bool check_shape(MatmulContext& ctx, int N, int C, int V, size_t budget, bool bench) {
    DevRng rng(N * 13 + C * 5 + V);
    std::vector<float> h = rng.bf16_vector(size_t(N) * C), W = rng.bf16_vector(size_t(V) * C, 0.0f, 0.3f),
                       dW0 = rng.bf16_vector(size_t(V) * C, 0.0f, 0.01f);
    std::vector<int> targets(N);
    for (int n = 0; n < N; ++n) targets[n] = (n % 5 == 3) ? -1 : int(rng.rng.below(V));
    // Reference: fp32 logits, mean loss over counted rows, gradients.
    std::vector<float> logits(size_t(N) * V), probs(logits.size()), dlogits(logits.size());
    llama::ref::linear_forward(logits.data(), h.data(), W.data(), static_cast<const float*>(nullptr), N, C, V);
    int64_t counted = 0;
    llama::ref::cross_entropy_forward(probs.data(), logits.data(), targets.data(), N, V, -1, &counted);
    llama::ref::cross_entropy_backward(dlogits.data(), probs.data(), targets.data(), N, V, -1, counted);
    std::vector<float> loss_ref(N, 0.0f);
    for (int n = 0; n < N; ++n) {
        if (targets[n] < 0) continue;
        double mx = -1e30, s = 0;
        for (int v = 0; v < V; ++v) mx = std::max(mx, double(logits[size_t(n) * V + v]));
        for (int v = 0; v < V; ++v) s += std::exp(logits[size_t(n) * V + v] - mx);
        loss_ref[n] = float(mx + std::log(s) - logits[size_t(n) * V + targets[n]]);
    }
    std::vector<float> dh_ref(size_t(N) * C, 0.0f), dW_ref = dW0;
    llama::ref::linear_backward(dh_ref.data(), dW_ref.data(), static_cast<float*>(nullptr), dlogits.data(), h.data(),
                                W.data(), N, C, V);

    CrossEntropyPlan plan = cross_entropy_plan(N, V, budget);
    DeviceBuffer<bf16> d_h(h), d_W(W), d_dh(dh_ref.size()), d_dlogits(size_t(plan.chunk_rows) * V);
    DeviceBuffer<float> d_loss(N), d_dW(dW0), d_logits(size_t(plan.chunk_rows) * V);
    int* d_targets = nullptr;
    CUDA_CHECK(cudaMalloc(&d_targets, N * sizeof(int)));
    CUDA_CHECK(cudaMemcpy(d_targets, targets.data(), N * sizeof(int), cudaMemcpyHostToDevice));
    d_loss.poison();
    d_dh.poison();
    classifier_cross_entropy(ctx, d_loss.ptr, d_dh.ptr, d_dW.ptr, d_h.ptr, d_W.ptr, d_targets, N, C, V, -1,
                             1.0f / float(counted), plan, d_logits.ptr, d_dlogits.ptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    char label[80];
    std::snprintf(label, sizeof label, "N=%d C=%d V=%d (chunks of %d)", N, C, V, plan.chunk_rows);
    const std::string l = label;
    bool ok = compare(l + " loss per row", d_loss.to_host(), loss_ref, 1e-5, 1e-5);
    // The logit gradient is stored in bf16 (relative error up to 2^-9 per element).
    ok &= compare(l + " dh", d_dh.to_host(), dh_ref, 2e-4, 1.6e-2);
    ok &= compare(l + " dW", d_dW.to_host(), dW_ref, 2e-4, 1.6e-2);
    if (bench) {
        float ms = time_ms([&] {
            classifier_cross_entropy(ctx, d_loss.ptr, d_dh.ptr, d_dW.ptr, d_h.ptr, d_W.ptr, d_targets, N, C, V, -1,
                                     1.0f / float(counted), plan, d_logits.ptr, d_dlogits.ptr);
        });
        std::printf("  classifier + cross-entropy: %.3f ms, %.1f TFLOP/s\n", ms, 6.0 * N * C * V / ms / 1e9);
    }
    CUDA_CHECK(cudaFree(d_targets));
    return ok;
}

int main(int argc, char** argv) {
    DevArgs args(argc, argv, 1);
    struct Shape {
        int N, C, V;
        size_t budget;
    };
    // Small budgets force several chunks, the last one partial.
    std::vector<Shape> shapes = {
        {7, 16, 37, 1000}, {33, 64, 256, 16 * 256 * 6}, {20, 24, 1000, 7 * 1000 * 6}, {5, 8, 5, 1 << 20}};
    if (args.shape.size() == 3)
        shapes = {{args.shape[0], args.shape[1], args.shape[2], size_t(llama::kClassifierBudgetBytes)}};
    MatmulContext ctx;
    bool ok = true;
    for (const Shape& s : shapes) ok &= check_shape(ctx, s.N, s.C, s.V, s.budget, args.bench);
    // The plan at the size of a zagreus-0.4b batch, with the trainer's budget.
    CrossEntropyPlan big = cross_entropy_plan(16 * 4096, 128256, size_t(llama::kClassifierBudgetBytes));
    const bool fits = big.working_bytes() < (size_t(1) << 30);
    std::printf(
        "  plan at 16 x 4096 tokens, vocabulary 128256: chunks of %d rows, %.2f GB of working memory "
        "(the full fp32 logits would be %.1f GB): %s\n",
        big.chunk_rows, big.working_bytes() / 1e9, 16.0 * 4096 * 128256 * 4 / 1e9, fits ? "ok" : "FAIL");
    ok &= fits;
    std::printf("cross_entropy: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
