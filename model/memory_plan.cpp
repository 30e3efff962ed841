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

const MemoryPlan::Buffer* MemoryPlan::get(Buf id) const {
    for (const auto* list : {&activations, &workspace})
        for (const Buffer& b : *list)
            if (b.id == id) return &b;
    return nullptr;
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

    const int64_t N = int64_t(micro_batch) * seq_len, C = c.hidden, D = c.head_dim, H = c.n_heads, KV = c.n_kv_heads,
                  F = c.ffn_hidden, V = c.vocab_size, L = c.n_layers;
    const int64_t W = (H + 2 * KV) * D;  // fused q, k, v columns
    const int recomputed = recompute ? 1 : int(L);
    auto act = [&](Buf id, const char* name, int64_t elements, int element_bytes, int copies) {
        p.activations.push_back({id, name, elements, element_bytes, copies});
    };
    auto work = [&](Buf id, const char* name, int64_t elements, int element_bytes) {
        p.workspace.push_back({id, name, elements, element_bytes, 1});
    };
    // Saved by the forward, per layer.
    act(Buf::residual, "layer.residual", N * C, 2, int(L));  // the residual stream entering the layer
    act(Buf::attn_norm, "layer.attn_norm", N * C, 2, recomputed);
    act(Buf::attn_rstd, "layer.attn_rstd", N, 4, int(L));
    if (c.qk_norm) {
        act(Buf::qkv_raw, "layer.qkv_raw", N * W, 2, int(L));  // the projection, before QK-norm
        act(Buf::qk_rstd, "layer.qk_rstd", N * (H + KV), 4, int(L));
    }
    act(Buf::qkv, "layer.qkv", N * W, 2, int(L));  // after QK-norm and RoPE: attention's input
    act(Buf::attn_out, "layer.attn_out", N * H * D, 2, int(L));
    act(Buf::lse, "layer.lse", N * H, 4, int(L));
    act(Buf::residual_mid, "layer.residual_mid", N * C, 2, int(L));  // the residual stream after attention
    act(Buf::mlp_norm, "layer.mlp_norm", N * C, 2, recomputed);
    act(Buf::mlp_rstd, "layer.mlp_rstd", N, 4, int(L));
    act(Buf::gate_up, "layer.gate_up", N * 2 * F, 2, int(L));
    act(Buf::act, "layer.act", N * F, 2, recomputed);
    // After the last layer.
    act(Buf::final_residual, "final.residual", N * C, 2, 1);
    act(Buf::final_norm, "final.norm", N * C, 2, 1);
    act(Buf::final_rstd, "final.rstd", N, 4, 1);
    // The batch on the device: tokens, targets, the documents' starts and ends
    // (packed sequences), per-row losses and the embedding backward's table
    // (ids, offsets, rows: at most 3N + 1 ints).
    act(Buf::tokens, "tokens", N, 4, 1);
    act(Buf::targets, "targets", N, 4, 1);
    act(Buf::doc_bounds, "doc_bounds", 2 * N, 4, 1);
    act(Buf::loss, "loss", N, 4, 1);
    act(Buf::embed_plan, "embed_plan", 3 * N + 1, 4, 1);
    act(Buf::rope_cos, "rope_cos", int64_t(seq_len) * (D / 2), 4, 1);
    act(Buf::rope_sin, "rope_sin", int64_t(seq_len) * (D / 2), 4, 1);

    // Working buffers of the backward (the forward uses d_norm for projection outputs).
    work(Buf::d_residual, "d_residual", N * C, 2);
    work(Buf::d_norm, "d_norm", N * C, 2);
    work(Buf::d_qkv, "d_qkv", N * W, 2);
    if (c.qk_norm) work(Buf::d_qkv_raw, "d_qkv_raw", N * W, 2);
    work(Buf::d_attn_out, "d_attn_out", N * H * D, 2);
    work(Buf::d_gate_up, "d_gate_up", N * 2 * F, 2);
    work(Buf::d_act, "d_act", N * F, 2);
    work(Buf::attn_scratch, "attn_scratch", N * H, 4);
    work(Buf::norm_scratch, "norm_scratch", kNormScratchSlices * std::max(C, D), 4);
    if (c.bias) work(Buf::bias_scratch, "bias_scratch", kBiasScratchSlices * std::max({W, 2 * F, C}), 4);
    work(Buf::grad_norm, "grad_norm", kGradNormScratch, 4);
    // The classifier: one chunk of fp32 logits and bf16 logit gradients at a time.
    const int64_t rows = std::max<int64_t>(1, std::min<int64_t>(N, kClassifierBudgetBytes / (V * 6)));
    work(Buf::logits_chunk, "logits_chunk", rows * V, 4);
    work(Buf::dlogits_chunk, "dlogits_chunk", rows * V, 2);
    work(Buf::matmul_workspace, "matmul_workspace", kMatmulWorkspaceBytes, 1);
    return p;
}

}  // namespace llama
