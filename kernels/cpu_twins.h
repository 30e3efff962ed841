// The CPU twin of every launcher the training step calls: the same name, the
// same arguments, the same layouts and the same results (bf16 storage, fp32
// math, outputs written or added to exactly as the kernel does), computed by the
// CPU reference ops of reference/ops.h, which the tests prove against finite
// differences and PyTorch.
//
// gpu/model.cuh calls every op through `ops::`: the launchers of kernels/, or,
// built with LLAMA_CPU_TWINS, these. That build (train_llama_twin) is the GPU
// step itself (its buffers, fusions, streams and collectives) with each op
// replaced by its reference, so a difference between train_llama_emu and
// train_llama_twin is a kernel's, and a step can be followed op by op in a
// debugger without fibers.
//
// Each twin is queued on its stream with cudaLaunchHostFunc and runs when the
// work before it has run, so "device" memory must be host-readable (the
// emulator's is). Arguments are captured by value when the twin is called.
#ifndef KERNELS_CPU_TWINS_H
#define KERNELS_CPU_TWINS_H

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/adamw.cuh"
#include "kernels/attention.cuh"
#include "kernels/common.cuh"
#include "kernels/cross_entropy.cuh"
#include "kernels/embedding.cuh"
#include "kernels/matmul.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rope.cuh"
#include "kernels/swiglu.cuh"
#include "reference/ops.h"

namespace cpu_twin {

namespace detail {

// Runs `work` on the host once the stream's earlier work has run.
inline void on_stream(cudaStream_t stream, std::function<void()> work) {
    auto* queued = new std::function<void()>(std::move(work));
    CUDA_CHECK(cudaLaunchHostFunc(
        stream,
        [](void* p) {
            std::unique_ptr<std::function<void()>> w(static_cast<std::function<void()>*>(p));
            (*w)();
        },
        queued));
}

// Rows of C, laid out as the RMSNorm kernels lay them out (rmsnorm_row_start):
// plain rows (group 1, stride C) or heads inside the fused QKV rows.
struct Rows {
    int64_t count;
    int C, group;
    size_t stride;
    size_t start(int64_t r) const { return rmsnorm_row_start(int(r), C, group, stride); }
    std::vector<float> load(const bf16* x) const {
        std::vector<float> out(size_t(count) * C);
        for (int64_t r = 0; r < count; ++r)
            for (int c = 0; c < C; ++c) out[size_t(r) * C + c] = __bfloat162float(x[start(r) + c]);
        return out;
    }
    void store(bf16* x, const std::vector<float>& v) const {
        for (int64_t r = 0; r < count; ++r)
            for (int c = 0; c < C; ++c) x[start(r) + c] = __float2bfloat16(v[size_t(r) * C + c]);
    }
};
inline Rows plain_rows(int64_t n, int C) { return {n, C, 1, size_t(C)}; }

inline std::vector<float> load(const bf16* x, size_t n) { return plain_rows(int64_t(n), 1).load(x); }
inline void store(bf16* x, const std::vector<float>& v) { plain_rows(int64_t(v.size()), 1).store(x, v); }

// `heads` heads of D inside rows of `width` (the fused QKV layout; the pointer
// given to load or store points at the first head's column), as [N, heads, D].
inline Rows qkv_heads(int N, int heads, int D, int width) { return {int64_t(N) * heads, D, heads, size_t(width)}; }

inline void rmsnorm_forward_rows(bf16* out, float* rstd, bf16* residual_out, const bf16* inp, const bf16* residual,
                                 const bf16* weight, const Rows& rows, float eps) {
    std::vector<float> h = rows.load(inp);
    if (residual) {  // the sum is rounded to bf16 as it is stored, and that is what is normalised
        const std::vector<float> r = rows.load(residual);
        for (size_t i = 0; i < h.size(); ++i) h[i] = __bfloat162float(__float2bfloat16(h[i] + r[i]));
        rows.store(residual_out, h);
    }
    std::vector<float> y(h.size());
    llama::ref::rmsnorm_forward(y.data(), rstd, h.data(), load(weight, size_t(rows.C)).data(), rows.count, rows.C, eps);
    rows.store(out, y);
}

inline void rmsnorm_backward_rows(bf16* dinp, float* dweight, const bf16* dresidual, const bf16* dout, const bf16* inp,
                                  const bf16* weight, const float* rstd, const Rows& rows) {
    std::vector<float> d = dresidual ? rows.load(dresidual) : std::vector<float>(size_t(rows.count) * rows.C, 0.0f);
    llama::ref::rmsnorm_backward(d.data(), dweight, rows.load(dout).data(), rows.load(inp).data(),
                                 load(weight, size_t(rows.C)).data(), rstd, rows.count, rows.C);
    rows.store(dinp, d);
}

}  // namespace detail

// ---------------------------------------------------------------- embedding
inline void embedding_forward(bf16* out, const int* tokens, const bf16* wte, int N, int C, cudaStream_t stream = 0) {
    detail::on_stream(stream, [=] { llama::ref::embedding_forward(out, tokens, wte, N, C); });
}

// The plan's positions grouped by token give back each position's token.
inline void embedding_backward(float* dwte, const bf16* dout, const EmbeddingPlan& plan, const int* d_table, int C,
                               cudaStream_t stream = 0) {
    (void)d_table;  // the same table, on the host
    detail::on_stream(stream, [=, plan = plan] {
        const int* base = plan.table.data();
        const int N = plan.unique == 0 ? 0 : plan.offsets(base)[plan.unique];
        std::vector<int> tokens(N);
        for (int u = 0; u < plan.unique; ++u)
            for (int i = plan.offsets(base)[u]; i < plan.offsets(base)[u + 1]; ++i)
                tokens[plan.rows(base)[i]] = plan.ids(base)[u];
        llama::ref::embedding_backward(dwte, detail::load(dout, size_t(N) * C).data(), tokens.data(), N, C);
    });
}

// ---------------------------------------------------------------- RMSNorm and QK-norm
inline void rmsnorm_forward(bf16* out, float* rstd, bf16* residual_out, const bf16* inp, const bf16* residual,
                            const bf16* weight, int N, int C, float eps, cudaStream_t stream = 0) {
    detail::on_stream(stream, [=] {
        detail::rmsnorm_forward_rows(out, rstd, residual_out, inp, residual, weight, detail::plain_rows(N, C), eps);
    });
}

inline void rmsnorm_backward(bf16* dinp, float* dweight, float* scratch, const bf16* dresidual, const bf16* dout,
                             const bf16* inp, const bf16* weight, const float* rstd, int N, int C,
                             cudaStream_t stream = 0) {
    (void)scratch;
    detail::on_stream(stream, [=] {
        detail::rmsnorm_backward_rows(dinp, dweight, dresidual, dout, inp, weight, rstd, detail::plain_rows(N, C));
    });
}

inline void qk_norm_forward(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int N, int heads, int head_dim,
                            int row_width, int col0, float eps, cudaStream_t stream = 0) {
    detail::on_stream(stream, [=] {
        detail::rmsnorm_forward_rows(out + col0, rstd, nullptr, inp + col0, nullptr, weight,
                                     detail::qkv_heads(N, heads, head_dim, row_width), eps);
    });
}

inline void qk_norm_backward(bf16* dinp, float* dweight, float* scratch, const bf16* dout, const bf16* inp,
                             const bf16* weight, const float* rstd, int N, int heads, int head_dim, int row_width,
                             int col0, cudaStream_t stream = 0) {
    (void)scratch;
    detail::on_stream(stream, [=] {
        detail::rmsnorm_backward_rows(dinp + col0, dweight, nullptr, dout + col0, inp + col0, weight, rstd,
                                      detail::qkv_heads(N, heads, head_dim, row_width));
    });
}

// ---------------------------------------------------------------- RoPE (in place, on heads of the fused rows)
inline void rope_rotate(bf16* x, const float* cos_table, const float* sin_table, int N, int T, int row_stride, int col0,
                        int heads, int D, bool backward, cudaStream_t stream, const int* doc_starts) {
    detail::on_stream(stream, [=] {
        const detail::Rows rows = detail::qkv_heads(N, heads, D, row_stride);
        const std::vector<float> in = rows.load(x + col0);
        std::vector<float> out(in.size(), 0.0f);
        // Row n is position n % T of sequence n / T (N is a whole number of sequences).
        if (backward)
            llama::ref::rope_backward(out.data(), in.data(), cos_table, sin_table, N / T, T, heads, D, doc_starts);
        else llama::ref::rope_forward(out.data(), in.data(), cos_table, sin_table, N / T, T, heads, D, doc_starts);
        rows.store(x + col0, out);
    });
}
inline void rope_forward(bf16* x, const float* cos_table, const float* sin_table, int N, int T, int row_stride,
                         int col0, int heads, int D, cudaStream_t stream = 0, const int* doc_starts = nullptr) {
    cpu_twin::rope_rotate(x, cos_table, sin_table, N, T, row_stride, col0, heads, D, false, stream, doc_starts);
}
inline void rope_backward(bf16* dx, const float* cos_table, const float* sin_table, int N, int T, int row_stride,
                          int col0, int heads, int D, cudaStream_t stream = 0, const int* doc_starts = nullptr) {
    cpu_twin::rope_rotate(dx, cos_table, sin_table, N, T, row_stride, col0, heads, D, true, stream, doc_starts);
}

// ---------------------------------------------------------------- attention
namespace detail {
struct QkvArrays {
    std::vector<float> q, k, v;
};
inline QkvArrays split_qkv(const bf16* qkv, int N, int H, int KV, int D) {
    const int W = (H + 2 * KV) * D;
    return {qkv_heads(N, H, D, W).load(qkv), qkv_heads(N, KV, D, W).load(qkv + H * D),
            qkv_heads(N, KV, D, W).load(qkv + (H + KV) * D)};
}
}  // namespace detail

// `version` (which kernel) makes no difference to the twin; the documents'
// starts are read where the GPU's kernels read them (device memory is host
// memory here). The twin counts no tiles.
inline void attention_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                              cudaStream_t stream = 0, int /*version*/ = kAttentionDefaultVersion, AttnDocs docs = {}) {
    attention_check_shape(H, KV, D);
    detail::on_stream(stream, [=] {
        const detail::QkvArrays a = detail::split_qkv(qkv, B * T, H, KV, D);
        std::vector<float> o(a.q.size()), probs(size_t(B) * H * T * T);
        llama::ref::attention_forward(o.data(), probs.data(), a.q.data(), a.k.data(), a.v.data(), B, T, H, KV, D, lse,
                                      docs.start);
        detail::store(out, o);
    });
}

// The probabilities are recomputed by the reference forward (not from lse);
// dq, dk and dv are written into the fused layout.
inline void attention_backward(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                               const float* lse, int B, int T, int H, int KV, int D, cudaStream_t stream = 0,
                               int /*version*/ = kAttentionDefaultVersion, AttnDocs docs = {}) {
    (void)scratch, (void)out, (void)lse;
    attention_check_shape(H, KV, D);
    detail::on_stream(stream, [=] {
        const int N = B * T, W = (H + 2 * KV) * D;
        const detail::QkvArrays a = detail::split_qkv(qkv, N, H, KV, D);
        std::vector<float> o(a.q.size()), probs(size_t(B) * H * T * T);
        llama::ref::attention_forward(o.data(), probs.data(), a.q.data(), a.k.data(), a.v.data(), B, T, H, KV, D,
                                      static_cast<float*>(nullptr), docs.start);
        std::vector<float> dq(a.q.size(), 0.0f), dk(a.k.size(), 0.0f), dv(a.v.size(), 0.0f);
        llama::ref::attention_backward(dq.data(), dk.data(), dv.data(), detail::load(dout, a.q.size()).data(),
                                       a.q.data(), a.k.data(), a.v.data(), probs.data(), B, T, H, KV, D);
        detail::qkv_heads(N, H, D, W).store(dqkv, dq);
        detail::qkv_heads(N, KV, D, W).store(dqkv + H * D, dk);
        detail::qkv_heads(N, KV, D, W).store(dqkv + (H + KV) * D, dv);
    });
}

// ---------------------------------------------------------------- SwiGLU on the fused [gate | up] rows
inline void swiglu_forward(bf16* out, const bf16* gate_up, int N, int F, cudaStream_t stream = 0) {
    detail::on_stream(stream, [=] {
        const detail::Rows gate{N, F, 1, size_t(2) * F}, up{N, F, 1, size_t(2) * F};
        std::vector<float> y(size_t(N) * F);
        llama::ref::swiglu_forward(y.data(), gate.load(gate_up).data(), up.load(gate_up + F).data(), int64_t(N) * F);
        detail::store(out, y);
    });
}

inline void swiglu_backward(bf16* dgate_up, const bf16* dout, const bf16* gate_up, int N, int F,
                            cudaStream_t stream = 0) {
    detail::on_stream(stream, [=] {
        const detail::Rows half{N, F, 1, size_t(2) * F};
        std::vector<float> dgate(size_t(N) * F, 0.0f), dup(size_t(N) * F, 0.0f);
        llama::ref::swiglu_backward(dgate.data(), dup.data(), detail::load(dout, size_t(N) * F).data(),
                                    half.load(gate_up).data(), half.load(gate_up + F).data(), int64_t(N) * F);
        half.store(dgate_up, dgate);
        half.store(dgate_up + F, dup);
    });
}

// ---------------------------------------------------------------- matrix products (Hugging Face Linear)
// out[N, OC] (bf16, or fp32 when out_fp32) = inp[N, IC] @ W[OC, IC]^T + bias.
inline void linear_forward(MatmulContext& ctx, void* out, bool out_fp32, const bf16* inp, const bf16* W,
                           const bf16* bias, int N, int IC, int OC, cudaStream_t stream = 0) {
    (void)ctx;
    detail::on_stream(stream, [=] {
        std::vector<float> y(size_t(N) * OC);
        const std::vector<float> b = bias ? detail::load(bias, size_t(OC)) : std::vector<float>();
        llama::ref::linear_forward(y.data(), detail::load(inp, size_t(N) * IC).data(),
                                   detail::load(W, size_t(OC) * IC).data(), bias ? b.data() : nullptr, N, IC, OC);
        if (out_fp32) std::copy(y.begin(), y.end(), static_cast<float*>(out));
        else detail::store(static_cast<bf16*>(out), y);
    });
}

// dinp[N, IC] = dout[N, OC] @ W[OC, IC] (+ dinp when accumulate).
inline void linear_backward_input(MatmulContext& ctx, bf16* dinp, const bf16* dout, const bf16* W, int N, int IC,
                                  int OC, bool accumulate, cudaStream_t stream = 0) {
    (void)ctx;
    detail::on_stream(stream, [=] {
        std::vector<float> d(size_t(N) * IC, 0.0f);
        if (accumulate) d = detail::load(dinp, d.size());
        llama::ref::linear_backward<float>(d.data(), nullptr, nullptr, detail::load(dout, size_t(N) * OC).data(),
                                           nullptr, detail::load(W, size_t(OC) * IC).data(), N, IC, OC);
        detail::store(dinp, d);
    });
}

// dW[OC, IC] (fp32) += dout[N, OC]^T @ inp[N, IC].
inline void linear_backward_weight(MatmulContext& ctx, float* dW, const bf16* dout, const bf16* inp, int N, int IC,
                                   int OC, cudaStream_t stream = 0) {
    (void)ctx;
    detail::on_stream(stream, [=] {
        llama::ref::linear_backward<float>(nullptr, dW, nullptr, detail::load(dout, size_t(N) * OC).data(),
                                           detail::load(inp, size_t(N) * IC).data(), nullptr, N, IC, OC);
    });
}

// dbias[c] (fp32) += sum over rows of dout[n, c].
inline void bias_grad(float* dbias, float* scratch, const bf16* dout, int N, int C, cudaStream_t stream = 0) {
    (void)scratch;
    detail::on_stream(stream, [=] {
        for (int c = 0; c < C; ++c) {
            llama::ref::Acc sum = 0;
            for (int n = 0; n < N; ++n) sum += __bfloat162float(dout[size_t(n) * C + c]);
            dbias[c] += float(sum);
        }
    });
}

// ---------------------------------------------------------------- classifier + cross-entropy
// The same chunks as the kernel's plan, each: fp32 logits, the loss of each row
// and the bf16 gradient of the logits, then dh and dW from the twins above.
inline void classifier_cross_entropy(MatmulContext& ctx, float* loss, bf16* dh, float* dW, const bf16* h, const bf16* W,
                                     const int* targets, int N, int C, int V, int ignore_index, float dloss,
                                     const CrossEntropyPlan& plan, float* logits, bf16* dlogits,
                                     cudaStream_t stream = 0) {
    for (int start = 0; start < N; start += plan.chunk_rows) {
        const int rows = std::min(plan.chunk_rows, N - start);
        const bf16* h_chunk = h + size_t(start) * C;
        cpu_twin::linear_forward(ctx, logits, true, h_chunk, W, nullptr, rows, C, V, stream);
        detail::on_stream(stream, [=] {
            std::vector<float> probs(V), d(V);
            for (int r = 0; r < rows; ++r) {
                const float* z = logits + size_t(r) * V;
                const int* target = targets + start + r;
                loss[start + r] = llama::ref::cross_entropy_forward(probs.data(), z, target, 1, V, ignore_index);
                llama::ref::cross_entropy_backward(d.data(), probs.data(), target, 1, V, ignore_index, 1);
                for (int i = 0; i < V; ++i) dlogits[size_t(r) * V + i] = __float2bfloat16(d[i] * dloss);
            }
        });
        if (dh == nullptr) continue;
        cpu_twin::linear_backward_input(ctx, dh + size_t(start) * C, dlogits, W, rows, C, V, false, stream);
        cpu_twin::linear_backward_weight(ctx, dW, dlogits, h_chunk, rows, C, V, stream);
    }
}

// ---------------------------------------------------------------- optimizer
// out[0] = the norm of grad[0, n), out[1] = the clipping scale (1 when max_norm <= 0).
inline void grad_norm(float* out, float* scratch, const float* grad, size_t n, float max_norm,
                      cudaStream_t stream = 0) {
    (void)scratch;
    detail::on_stream(stream, [=] {
        const double norm = std::sqrt(llama::ref::grad_norm_squared(grad, int64_t(n)));
        out[0] = float(norm);
        out[1] = float(llama::ref::clip_scale(norm, max_norm));
    });
}

// AdamW on one tensor (p.weight_decay already 0 where it does not apply), the
// gradient scaled by clip[1] (clip may be nullptr), and the bf16 copy written.
inline void adamw_update(float* master, bf16* weight, const float* grad, float* m, float* v, size_t n,
                         const AdamWParams& p, const float* clip, cudaStream_t stream = 0) {
    detail::on_stream(stream, [=] {
        llama::ref::AdamWHyper hyper;
        hyper.lr = p.lr, hyper.beta1 = p.beta1, hyper.beta2 = p.beta2, hyper.eps = p.eps;
        hyper.weight_decay = p.weight_decay;
        llama::ref::adamw_update(master, grad, m, v, int64_t(n), hyper, p.step, clip ? clip[1] : 1.0, true);
        for (size_t i = 0; i < n; ++i) weight[i] = __float2bfloat16(master[i]);
    });
}

inline void float_to_bf16(bf16* out, const float* in, size_t n, cudaStream_t stream = 0) {
    detail::on_stream(stream, [=] {
        for (size_t i = 0; i < n; ++i) out[i] = __float2bfloat16(in[i]);
    });
}

}  // namespace cpu_twin

#endif  // KERNELS_CPU_TWINS_H
