// The trainer's dry run (train_llama --dry-run): what a configuration costs
// before any GPU is touched. Parameter counts by tensor group, the memory plan
// (the same buffers the GPU model allocates), the largest micro-batch that
// fits, model FLOPs per token, and a step time predicted from roofline bounds
// on known devices. Plain C++; nothing here knows about CUDA.
#ifndef MODEL_DRY_RUN_H
#define MODEL_DRY_RUN_H

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace llama {

// Datasheet figures of one GPU: memory bandwidth (bytes/s), dense bf16
// tensor-core peak (FLOP/s, without sparsity) and memory capacity (bytes, the
// datasheet's GB taken as 1e9 bytes).
struct DeviceSpec {
    std::string name;
    double mem_bw;
    double peak_flops;
    double mem_bytes;
};

// A100 (SXM4 40/80 GB, PCIe 40/80 GB), H100 (SXM, PCIe, NVL), H200 (SXM, NVL).
const std::vector<DeviceSpec>& known_devices();
// The entry of known_devices() with exactly this name; throws std::invalid_argument when none.
const DeviceSpec& device_spec(const std::string& name);
// The entry for a device name as cudaGetDeviceProperties reports it (e.g.
// "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe",
// "NVIDIA H200"); nullptr when unknown.
const DeviceSpec* device_for_name(const std::string& device_name);
// Peak dense bf16 TFLOP/s for such a name; 0 when unknown.
double peak_tflops_for_device(const std::string& device_name);

// Parameter count of one group of tensors: "embedding", "attention.q", "attention.k",
// "attention.v", "attention.o", "mlp.gate", "mlp.up", "mlp.down", "norms",
// "biases", "lm_head" (always listed; 0 when tied). Every tensor of the layout
// lands in exactly one group (std::logic_error otherwise), so the groups sum
// to ParamLayout(c).total().
struct ParamGroup {
    std::string name;
    int64_t count;
};
std::vector<ParamGroup> parameter_groups(const ModelConfig& c);

// Weights that take part in a matrix product per token: every linear layer and
// the LM head (the embedding matrix again when tied); not the embedding lookup,
// norms or biases.
int64_t matmul_weight_count(const ModelConfig& c);

// Model FLOPs per token: 6 * matmul_weight_count(c) + the causal attention term
// 6 * n_layers * n_heads * head_dim * seq_len (forward 2 and backward 4 FLOPs per
// multiply-add, QK^T and PV, half of the T x T scores under the causal mask).
// Recomputation is not counted (as in MFU).
double flops_per_token(const ModelConfig& c, int seq_len);
std::string flops_per_token_formula();

// A predicted optimizer step; times in seconds, each term summed over the step.
struct StepPrediction {
    std::string device;
    double step_seconds, tokens_per_second, mfu, matmul_seconds, attention_seconds, memory_bound_seconds,
        optimizer_seconds;
};
// One optimizer step of `accumulation` micro-steps of micro_batch x seq_len
// tokens on one GPU. Each matrix product (forward 2NK FLOPs, backward 4NK) takes
// the larger of its FLOPs at `matmul_efficiency` of peak and its bytes at full
// bandwidth; attention (forward 4*B*H*T^2*D/2 causal, backward 2.5x the forward)
// runs at `attention_efficiency` of peak; every elementwise, normalisation,
// embedding, RoPE, SwiGLU and cross-entropy kernel, and the classifier's logits
// traffic, at its memory roofline (bytes / bandwidth); with `recompute`, the
// extra RMSNorm and SwiGLU forwards too. AdamW and the gradient norm run once
// per step at the memory roofline. Kernels do not overlap and launch overhead
// is ignored.
StepPrediction predict_step(const ModelConfig& c, int micro_batch, int seq_len, int accumulation, bool recompute,
                            const DeviceSpec& device, double matmul_efficiency = 0.7,
                            double attention_efficiency = 0.5);

// Largest micro-batch (sequences) whose plan_memory(...).total_bytes() is at
// most `bytes` (0 if not even one sequence fits).
int largest_micro_batch(const ModelConfig& c, int seq_len, bool recompute, double bytes);

// Share of a device's capacity the report lets the memory plan use; the rest is
// left to the CUDA context, cuBLAS's handles and allocator fragmentation.
constexpr double kMemoryBudgetFraction = 0.95;

// The whole report as text (lines ending in '\n').
std::string dry_run_report(const ModelConfig& c, int micro_batch, int seq_len, int accumulation);

}  // namespace llama

#endif  // MODEL_DRY_RUN_H
