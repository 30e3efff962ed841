#include "model/memory_plan.h"

#include <algorithm>
#include <stdexcept>

#include "model/params.h"

namespace llama {

int64_t MemoryPlan::activation_bytes() const {
    int64_t s = 0;
    for (const Buffer& b : activations) s += b.bytes();
    return s;
}

int64_t MemoryPlan::workspace_bytes() const {
    int64_t s = 0;
    for (const Buffer& b : workspace) s += b.bytes();
    return s;
}

const MemoryPlan::Buffer& MemoryPlan::find(const std::string& name) const {
    for (const auto* list : {&activations, &workspace})
        for (const Buffer& b : *list)
            if (b.name == name) return b;
    throw std::out_of_range("memory plan: no buffer named '" + name + "'");
}

MemoryPlan plan_memory(const ModelConfig& c, int micro_batch, int seq_len, bool recompute) {
    MemoryPlan p;
    p.micro_batch = micro_batch;
    p.seq_len = seq_len;
    p.recompute = recompute;
    p.n_params = ParamLayout(c).total();
    p.param_bf16_bytes = 2 * p.n_params;
    p.master_bytes = 4 * p.n_params;
    p.grad_bytes = 4 * p.n_params;
    p.adam_bytes = 8 * p.n_params;

    const int64_t N = int64_t(micro_batch) * seq_len, C = c.hidden, D = c.head_dim, H = c.n_heads,
                  KV = c.n_kv_heads, F = c.ffn_hidden, V = c.vocab_size, L = c.n_layers;
    const int64_t W = (H + 2 * KV) * D;  // fused q, k, v columns
    const int recomputed = recompute ? 1 : int(L);
    auto act = [&](const char* name, int64_t elements, int element_bytes, int copies) {
        p.activations.push_back({name, elements, element_bytes, copies});
    };
    auto work = [&](const char* name, int64_t elements, int element_bytes) {
        p.workspace.push_back({name, elements, element_bytes, 1});
    };
    // Saved by the forward, per layer.
    act("layer.residual", N * C, 2, int(L));       // the residual stream entering the layer
    act("layer.attn_norm", N * C, 2, recomputed);
    act("layer.attn_rstd", N, 4, int(L));
    if (c.qk_norm) {
        act("layer.qkv_raw", N * W, 2, int(L));    // the projection, before QK-norm
        act("layer.qk_rstd", N * (H + KV), 4, int(L));
    }
    act("layer.qkv", N * W, 2, int(L));            // after QK-norm and RoPE: attention's input
    act("layer.attn_out", N * H * D, 2, int(L));
    act("layer.lse", N * H, 4, int(L));
    act("layer.residual_mid", N * C, 2, int(L));   // the residual stream after attention
    act("layer.mlp_norm", N * C, 2, recomputed);
    act("layer.mlp_rstd", N, 4, int(L));
    act("layer.gate_up", N * 2 * F, 2, int(L));
    act("layer.act", N * F, 2, recomputed);
    // After the last layer.
    act("final.residual", N * C, 2, 1);
    act("final.norm", N * C, 2, 1);
    act("final.rstd", N, 4, 1);
    // The batch on the device: tokens, targets, per-row losses and the embedding
    // backward's table (ids, offsets, rows: at most 3N + 1 ints).
    act("tokens", N, 4, 1);
    act("targets", N, 4, 1);
    act("loss", N, 4, 1);
    act("embed_plan", 3 * N + 1, 4, 1);
    act("rope_cos", int64_t(seq_len) * (D / 2), 4, 1);
    act("rope_sin", int64_t(seq_len) * (D / 2), 4, 1);

    // Working buffers of the backward (the forward uses d_norm for projection outputs).
    work("d_residual", N * C, 2);
    work("d_norm", N * C, 2);
    work("d_qkv", N * W, 2);
    if (c.qk_norm) work("d_qkv_raw", N * W, 2);
    work("d_attn_out", N * H * D, 2);
    work("d_gate_up", N * 2 * F, 2);
    work("d_act", N * F, 2);
    work("attn_scratch", N * H, 4);
    work("norm_scratch", kNormScratchSlices * std::max(C, D), 4);
    if (c.bias) work("bias_scratch", kBiasScratchSlices * std::max({W, 2 * F, C}), 4);
    work("grad_norm", kGradNormScratch, 4);
    // The classifier: one chunk of fp32 logits and bf16 logit gradients at a time.
    const int64_t rows = std::max<int64_t>(1, std::min<int64_t>(N, kClassifierBudgetBytes / (V * 6)));
    work("logits_chunk", rows * V, 4);
    work("dlogits_chunk", rows * V, 2);
    work("matmul_workspace", kMatmulWorkspaceBytes, 1);
    return p;
}

}  // namespace llama
