// Every CPU twin (kernels/cpu_twins.h) against the launcher it stands for, in
// the emulator: the same arguments on the same random inputs, at shapes that
// are not multiples of 8 or of the block sizes, with the outputs that are
// written poisoned and those that are added to holding random values first.
// The twins compute with the reference ops (proven against finite differences
// and PyTorch), so agreement here says the launcher and its twin agree on
// layouts, fusions, strides and what is written or added to: the training
// step can be built with either (train_llama_twin, train_llama_emu).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "dev/cuda/dev_common.h"
#include "kernels/cpu_twins.h"

namespace {

// The same call on side 0 (the kernel's launcher) or side 1 (its CPU twin).
#define ON_SIDE(side, op, ...) ((side) == 0 ? ::op(__VA_ARGS__) : cpu_twin::op(__VA_ARGS__))

// A buffer the op writes or adds to, one copy per side, with the same start.
template <typename T>
struct Both {
    DeviceBuffer<T> side0, side1;
    explicit Both(const std::vector<float>& init) : side0(init), side1(init) {}
    explicit Both(size_t n) : side0(n), side1(n) {  // written by the op: poisoned
        side0.poison();
        side1.poison();
    }
    T* operator[](int side) { return side == 0 ? side0.ptr : side1.ptr; }
    // The kernel's result compared with the twin's.
    bool agree(const std::string& what, double atol, double rtol) {
        CUDA_CHECK(cudaDeviceSynchronize());
        return compare(what, side0.to_host(), side1.to_host(), atol, rtol);
    }
};

std::vector<float> normal(size_t n, uint64_t seed, float std = 1.0f, float mean = 0.0f) {
    return DevRng(seed).bf16_vector(n, mean, std);
}

}  // namespace

TEST_CASE("twin: token embedding forward and backward", "[twins]") {
    for (int C : {20, 64}) {
        INFO("C = " << C);
        const int N = 37, V = 11;  // more positions than ids: repeated tokens
        std::vector<int> tokens(N);
        for (int n = 0; n < N; ++n) tokens[n] = (n * 7 + 3) % V;
        int* d_tokens;
        CUDA_CHECK(cudaMalloc(&d_tokens, N * sizeof(int)));
        CUDA_CHECK(cudaMemcpy(d_tokens, tokens.data(), N * sizeof(int), cudaMemcpyHostToDevice));
        DeviceBuffer<bf16> wte(normal(size_t(V) * C, 1)), dout(normal(size_t(N) * C, 2));
        Both<bf16> out(size_t(N) * C);
        Both<float> dwte(normal(size_t(V) * C, 3));
        const EmbeddingPlan plan = embedding_backward_plan(tokens.data(), N, V);
        int* d_table;
        CUDA_CHECK(cudaMalloc(&d_table, plan.table.size() * sizeof(int)));
        CUDA_CHECK(cudaMemcpy(d_table, plan.table.data(), plan.table.size() * sizeof(int), cudaMemcpyHostToDevice));
        for (int s : {0, 1}) {
            ON_SIDE(s, embedding_forward, out[s], d_tokens, wte.ptr, N, C);
            ON_SIDE(s, embedding_backward, dwte[s], dout.ptr, plan, d_table, C);
        }
        CHECK(out.agree("embedding out", 0.0, 0.0));
        CHECK(dwte.agree("embedding dwte (added to)", 1e-5, 1e-5));
        cudaFree(d_tokens);
        cudaFree(d_table);
    }
}

TEST_CASE("twin: RMSNorm fused with the residual add, forward and backward", "[twins]") {
    for (int C : {36, 72}) {
        INFO("C = " << C);
        const int N = 37;
        DeviceBuffer<bf16> inp(normal(size_t(N) * C, 4)), residual(normal(size_t(N) * C, 5)),
            weight(normal(C, 6, 0.3f, 1.0f)), dout(normal(size_t(N) * C, 7));
        Both<bf16> out(size_t(N) * C), residual_out(size_t(N) * C), dinp(normal(size_t(N) * C, 8));
        Both<float> rstd(N), dweight(normal(C, 9));
        DeviceBuffer<float> scratch(rmsnorm_backward_scratch(C));
        for (int s : {0, 1}) {
            ON_SIDE(s, rmsnorm_forward, out[s], rstd[s], residual_out[s], inp.ptr, residual.ptr, weight.ptr, N, C,
                    1e-5f);
            // dinp holds d(residual) and receives the norm's gradient on top (aliased, as the step does).
            ON_SIDE(s, rmsnorm_backward, dinp[s], dweight[s], scratch.ptr, dinp[s], dout.ptr, residual_out[s],
                    weight.ptr, rstd[s], N, C);
        }
        CHECK(residual_out.agree("residual out", 0.0, 0.0));
        CHECK(out.agree("out", 1e-3, 8e-3));
        CHECK(rstd.agree("rstd", 1e-6, 1e-5));
        CHECK(dinp.agree("dinp = dresidual + d(norm)", 1e-3, 8e-3));
        CHECK(dweight.agree("dweight (added to)", 1e-3, 1e-4));
        // Without the residual.
        Both<bf16> out2(size_t(N) * C), dinp2(size_t(N) * C);
        for (int s : {0, 1}) {
            ON_SIDE(s, rmsnorm_forward, out2[s], rstd[s], nullptr, inp.ptr, nullptr, weight.ptr, N, C, 1e-5f);
            ON_SIDE(s, rmsnorm_backward, dinp2[s], dweight[s], scratch.ptr, nullptr, dout.ptr, inp.ptr, weight.ptr,
                    rstd[s], N, C);
        }
        CHECK(out2.agree("out, no residual", 1e-3, 8e-3));
        CHECK(dinp2.agree("dinp, no residual", 1e-3, 8e-3));
    }
}

TEST_CASE("twin: QK-norm and RoPE on the heads inside the fused QKV rows", "[twins]") {
    for (int D : {64, 128}) {
        INFO("D = " << D);
        const int B = 2, T = 19, N = B * T, H = 3, KV = 1, W = (H + 2 * KV) * D;
        DeviceBuffer<bf16> raw(normal(size_t(N) * W, 10)), q_w(normal(D, 11, 0.3f, 1.0f)),
            k_w(normal(D, 12, 0.3f, 1.0f)), dy(normal(size_t(N) * W, 13));
        DeviceBuffer<float> scratch(rmsnorm_backward_scratch(D));
        std::vector<float> cos_t, sin_t;
        llama::ref::rope_tables(cos_t, sin_t, T, D, 500000.0, llama::RopeScaling{});
        DeviceBuffer<float> cos_d(cos_t), sin_d(sin_t);
        Both<bf16> qkv(normal(size_t(N) * W, 14)), dqkv(normal(size_t(N) * W, 15)), d_raw(normal(size_t(N) * W, 16));
        Both<float> rstd(size_t(N) * (H + KV)), dq_w(normal(D, 17)), dk_w(normal(D, 18));
        for (int s : {0, 1}) {
            ON_SIDE(s, qk_norm_forward, qkv[s], rstd[s], raw.ptr, q_w.ptr, N, H, D, W, 0, 1e-6f);
            ON_SIDE(s, qk_norm_forward, qkv[s], rstd[s] + N * H, raw.ptr, k_w.ptr, N, KV, D, W, H * D, 1e-6f);
            ON_SIDE(s, rope_forward, qkv[s], cos_d.ptr, sin_d.ptr, N, T, W, 0, H, D);
            ON_SIDE(s, rope_forward, qkv[s], cos_d.ptr, sin_d.ptr, N, T, W, H * D, KV, D);
            CUDA_CHECK(cudaMemcpy(dqkv[s], dy.ptr, size_t(N) * W * sizeof(bf16), cudaMemcpyDeviceToDevice));
            ON_SIDE(s, rope_backward, dqkv[s], cos_d.ptr, sin_d.ptr, N, T, W, 0, H, D);
            ON_SIDE(s, rope_backward, dqkv[s], cos_d.ptr, sin_d.ptr, N, T, W, H * D, KV, D);
            ON_SIDE(s, qk_norm_backward, d_raw[s], dq_w[s], scratch.ptr, dqkv[s], raw.ptr, q_w.ptr, rstd[s], N, H, D, W,
                    0);
            ON_SIDE(s, qk_norm_backward, d_raw[s], dk_w[s], scratch.ptr, dqkv[s], raw.ptr, k_w.ptr, rstd[s] + N * H, N,
                    KV, D, W, H * D);
        }
        CHECK(rstd.agree("q and k rstd", 1e-6, 1e-5));
        CHECK(qkv.agree("rope(qk_norm(q, k)), v as it was", 1e-3, 8e-3));
        CHECK(dqkv.agree("rope backward (v columns untouched)", 1e-3, 8e-3));
        CHECK(d_raw.agree("qk_norm backward (v columns untouched)", 1e-3, 8e-3));
        CHECK(dq_w.agree("q_norm dweight (added to)", 1e-3, 1e-4));
        CHECK(dk_w.agree("k_norm dweight (added to)", 1e-3, 1e-4));
    }
}

TEST_CASE("twin: grouped-query attention forward and backward", "[twins]") {
    const int B = 2, T = 37, H = 3, KV = 1, D = 64, N = B * T, W = (H + 2 * KV) * D;
    DeviceBuffer<bf16> qkv(normal(size_t(N) * W, 20)), dout(normal(size_t(N) * H * D, 21));
    DeviceBuffer<float> scratch(attention_backward_scratch(B, T, H));
    Both<bf16> out(size_t(N) * H * D), dqkv(size_t(N) * W);
    Both<float> lse(size_t(B) * H * T);
    for (int s : {0, 1}) {
        ON_SIDE(s, attention_forward, out[s], lse[s], qkv.ptr, B, T, H, KV, D);
        ON_SIDE(s, attention_backward, dqkv[s], scratch.ptr, dout.ptr, qkv.ptr, out[s], lse[s], B, T, H, KV, D);
    }
    CHECK(out.agree("out", 1e-2, 2e-2));
    CHECK(lse.agree("lse", 1e-4, 1e-4));
    CHECK(dqkv.agree("dq, dk, dv", 1e-2, 2e-2));
}

TEST_CASE("twin: SwiGLU on the fused gate|up rows", "[twins]") {
    for (int F : {20, 40}) {
        INFO("F = " << F);
        const int N = 13;
        DeviceBuffer<bf16> gate_up(normal(size_t(N) * 2 * F, 22, 2.0f)), dout(normal(size_t(N) * F, 23));
        Both<bf16> out(size_t(N) * F), dgate_up(size_t(N) * 2 * F);
        for (int s : {0, 1}) {
            ON_SIDE(s, swiglu_forward, out[s], gate_up.ptr, N, F);
            ON_SIDE(s, swiglu_backward, dgate_up[s], dout.ptr, gate_up.ptr, N, F);
        }
        CHECK(out.agree("out", 1e-3, 8e-3));
        CHECK(dgate_up.agree("dgate|dup", 1e-3, 8e-3));
    }
}

TEST_CASE("twin: linear layers (cuBLASLt) and bias gradients", "[twins]") {
    const int N = 13, IC = 40, OC = 24;
    MatmulContext ctx;
    DeviceBuffer<bf16> inp(normal(size_t(N) * IC, 24)), W(normal(size_t(OC) * IC, 25, 0.2f)), bias(normal(OC, 26)),
        dout(normal(size_t(N) * OC, 27));
    DeviceBuffer<float> scratch(bias_grad_scratch(OC));
    Both<bf16> y(size_t(N) * OC), dinp(size_t(N) * IC), dinp_acc(normal(size_t(N) * IC, 28));
    Both<float> y32(size_t(N) * OC), dW(normal(size_t(OC) * IC, 29)), dbias(normal(OC, 30));
    for (int s : {0, 1}) {
        ON_SIDE(s, linear_forward, ctx, y[s], false, inp.ptr, W.ptr, bias.ptr, N, IC, OC);
        ON_SIDE(s, linear_forward, ctx, y32[s], true, inp.ptr, W.ptr, nullptr, N, IC, OC);
        ON_SIDE(s, linear_backward_input, ctx, dinp[s], dout.ptr, W.ptr, N, IC, OC, false);
        ON_SIDE(s, linear_backward_input, ctx, dinp_acc[s], dout.ptr, W.ptr, N, IC, OC, true);
        ON_SIDE(s, linear_backward_weight, ctx, dW[s], dout.ptr, inp.ptr, N, IC, OC);
        ON_SIDE(s, bias_grad, dbias[s], scratch.ptr, dout.ptr, N, OC);
    }
    CHECK(y.agree("forward (bf16, bias)", 1e-3, 8e-3));
    CHECK(y32.agree("forward (fp32)", 1e-4, 1e-4));
    CHECK(dinp.agree("dinp", 1e-3, 8e-3));
    CHECK(dinp_acc.agree("dinp (accumulated)", 1e-3, 8e-3));
    CHECK(dW.agree("dW (fp32, added to)", 1e-4, 1e-4));
    CHECK(dbias.agree("dbias (fp32, added to)", 1e-4, 1e-4));
}

TEST_CASE("twin: classifier + cross-entropy in chunks, with ignored targets", "[twins]") {
    for (int V : {100, 101}) {
        INFO("V = " << V);
        const int N = 13, C = 32, ignore = -1;
        MatmulContext ctx;
        std::vector<int> targets(N);
        for (int n = 0; n < N; ++n) targets[n] = n % 5 == 2 ? ignore : (n * 13 + 1) % V;
        int* d_targets;
        CUDA_CHECK(cudaMalloc(&d_targets, N * sizeof(int)));
        CUDA_CHECK(cudaMemcpy(d_targets, targets.data(), N * sizeof(int), cudaMemcpyHostToDevice));
        const CrossEntropyPlan plan = cross_entropy_plan(N, V, size_t(5) * V * 6);  // chunks of 5 rows
        REQUIRE(plan.chunk_rows == 5);
        DeviceBuffer<bf16> h(normal(size_t(N) * C, 31)), Wv(normal(size_t(V) * C, 32, 0.5f));
        DeviceBuffer<float> logits(plan.logits_bytes / sizeof(float));
        DeviceBuffer<bf16> dlogits(plan.dlogits_bytes / sizeof(bf16));
        Both<float> loss(N), dW(normal(size_t(V) * C, 33)), eval_loss(N);
        Both<bf16> dh(size_t(N) * C);
        for (int s : {0, 1}) {
            ON_SIDE(s, classifier_cross_entropy, ctx, loss[s], dh[s], dW[s], h.ptr, Wv.ptr, d_targets, N, C, V, ignore,
                    0.1f, plan, logits.ptr, dlogits.ptr);
            ON_SIDE(s, classifier_cross_entropy, ctx, eval_loss[s], nullptr, nullptr, h.ptr, Wv.ptr, d_targets, N, C, V,
                    ignore, 0.1f, plan, logits.ptr, dlogits.ptr);
        }
        CHECK(loss.agree("loss per row (0 where ignored)", 1e-5, 1e-5));
        CHECK(eval_loss.agree("loss per row, evaluation", 1e-5, 1e-5));
        CHECK(dh.agree("dh", 2e-4, 1.6e-2));
        CHECK(dW.agree("dW (added to)", 2e-4, 1.6e-2));
        cudaFree(d_targets);
    }
}

TEST_CASE("twin: gradient norm and the fused AdamW", "[twins]") {
    const size_t n = 1001;
    const std::vector<float> grad = normal(n, 40, 0.1f);
    DeviceBuffer<float> d_grad(grad), scratch(kNormBlocks);
    std::vector<float> m0 = normal(n, 42, 0.01f), v0 = normal(n, 43, 0.001f);
    for (float& x : v0) x = std::fabs(x);
    Both<float> norm(2), master(normal(n, 41)), m(m0), v(v0);
    Both<bf16> weight(n), copy(n);
    AdamWParams p{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 3};
    for (int s : {0, 1}) {
        ON_SIDE(s, grad_norm, norm[s], scratch.ptr, d_grad.ptr, n, 0.5f);  // the norm is about 3: clipped
        ON_SIDE(s, adamw_update, master[s], weight[s], d_grad.ptr, m[s], v[s], n, p, norm[s]);
        ON_SIDE(s, float_to_bf16, copy[s], master[s], n);
    }
    CHECK(norm.agree("norm, clip scale", 1e-6, 1e-5));
    CHECK(master.agree("master", 1e-7, 1e-5));
    CHECK(m.agree("m", 1e-8, 1e-5));
    CHECK(v.agree("v", 1e-10, 1e-5));
    CHECK(weight.agree("bf16 copy (one ulp)", 1e-8, 8e-3));
    CHECK(copy.agree("float_to_bf16", 1e-8, 8e-3));
}
