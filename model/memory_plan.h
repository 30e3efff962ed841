// What one training process holds in GPU memory, from the config and the
// micro-batch alone: the parameters (bf16 working copy and fp32 master), the
// fp32 gradients, AdamW's two fp32 moments, every activation the forward saves
// for the backward, and the backward's working buffers. The GPU model
// (gpu/model.cuh) allocates exactly these buffers and finds each by its id
// (Buf), so the dry run's numbers are the allocation's numbers.
//
// With recomputation, the RMSNorm outputs and the SwiGLU product are not kept
// per layer: the backward recomputes them (one buffer each, shared by every
// layer), which costs one extra RMSNorm and SwiGLU forward per layer.
#ifndef MODEL_MEMORY_PLAN_H
#define MODEL_MEMORY_PLAN_H

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace llama {

// Every buffer a plan can hold. Per layer: residual .. act; then the rest once.
enum class Buf {
    residual,
    attn_norm,
    attn_rstd,
    qkv_raw,
    qk_rstd,
    qkv,
    attn_out,
    lse,
    residual_mid,
    mlp_norm,
    mlp_rstd,
    gate_up,
    act,
    final_residual,
    final_norm,
    final_rstd,
    tokens,
    targets,
    doc_bounds,
    loss,
    embed_plan,
    rope_cos,
    rope_sin,
    d_residual,
    d_norm,
    d_qkv,
    d_qkv_raw,
    d_attn_out,
    d_gate_up,
    d_act,
    attn_scratch,
    norm_scratch,
    bias_scratch,
    grad_norm,
    logits_chunk,
    dlogits_chunk,
    matmul_workspace,
    count  // the number of ids
};

struct MemoryPlan {
    struct Buffer {
        Buf id;
        std::string name;  // for reports, e.g. "layer.qkv" (one per layer) or "d_residual"
        int64_t elements = 0;
        int element_bytes = 0;  // 2 (bf16), 4 (fp32 or int32)
        int copies = 1;         // n_layers for a per-layer buffer, else 1
        int64_t bytes() const { return elements * element_bytes * copies; }
    };
    int micro_batch = 0, seq_len = 0;
    bool recompute = false;
    int64_t n_params = 0;
    int64_t param_bf16_bytes = 0, master_bytes = 0, grad_bytes = 0, adam_bytes = 0;
    std::vector<Buffer> activations;  // saved by the forward for the backward
    std::vector<Buffer> workspace;    // the backward's and the classifier's working buffers

    int64_t activation_bytes() const;
    int64_t workspace_bytes() const;
    int64_t state_bytes() const { return param_bf16_bytes + master_bytes + grad_bytes + adam_bytes; }
    int64_t total_bytes() const { return state_bytes() + activation_bytes() + workspace_bytes(); }
    // ZeRO-1 over `ranks`: each rank keeps 1/ranks of the fp32 master weights and AdamW moments.
    int64_t zero1_saving(int ranks) const { return (master_bytes + adam_bytes) - (master_bytes + adam_bytes) / ranks; }
    const Buffer* get(Buf id) const;  // null when this plan has no such buffer (qkv_raw without QK-norm)
};

// The plan for micro-batches of `micro_batch` sequences of `seq_len` tokens.
MemoryPlan plan_memory(const ModelConfig& config, int micro_batch, int seq_len, bool recompute);

// cuBLASLt workspace and the classifier's chunk budget, shared by the plan and the GPU model.
constexpr int64_t kMatmulWorkspaceBytes = int64_t(32) << 20;
constexpr int64_t kClassifierBudgetBytes = int64_t(768) << 20;
// Scratch the kernels need (the GPU model checks these against kernels/ at compile time):
// row slices of the RMSNorm weight gradient and of the bias gradient, and the
// gradient norm's partial sums plus its two outputs.
constexpr int64_t kNormScratchSlices = 64;
constexpr int64_t kBiasScratchSlices = 32;
constexpr int64_t kGradNormScratch = 256 + 2;

}  // namespace llama

#endif  // MODEL_MEMORY_PLAN_H
