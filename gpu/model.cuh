// The Llama model on the GPU: the kernels of kernels/ composed into one
// micro-step (forward and backward) and the optimizer step, on buffers planned
// up front (model/memory_plan.h). It has the same interface as the CPU
// reference model (reference/model.h) that train_llama.cu also builds with, so
// one training loop drives either. Every op is called through `ops::` (below):
// the kernels' launchers, or their CPU twins of the same signatures.
//
// Precision: bf16 weights and activations, fp32 accumulation in every kernel,
// fp32 gradients (accumulated over micro-steps), fp32 master weights and AdamW
// moments; the bf16 working copy is written by the AdamW kernel.
//
// One layer, as the forward runs it (N = B*T rows, W = (H + 2 KV) D):
//   attn_norm = rmsnorm(residual)                 (fused with the previous residual add)
//   qkv       = attn_norm @ [Wq; Wk; Wv]^T (+ b)  one matrix product, [N, W]
//   qkv       = rope(qk_norm(qkv))                q and k heads in place, v untouched
//   attn_out  = attention(qkv)                    flash attention, lse saved
//   residual_mid = residual + attn_out @ Wo^T, mlp_norm = rmsnorm(residual_mid)   (one kernel)
//   gate_up   = mlp_norm @ [Wg; Wu]^T (+ b)       one matrix product, [N, 2F]
//   act       = silu(gate) * up
//   next residual = residual_mid + act @ Wd^T, and the next layer's rmsnorm (one kernel)
// then the classifier and cross-entropy in chunks (the logits are never all in memory).
// The fused matrices need no copy: model/params.cpp stores q, k, v (and gate,
// up, and their biases) side by side.
#ifndef GPU_MODEL_CUH
#define GPU_MODEL_CUH

#include <array>
#include <chrono>
#include <cmath>
#include <functional>
#include <cstdint>
#include <stdexcept>
#include <string>
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
#include "model/config.h"
#include "model/memory_plan.h"
#include "model/params.h"
#include "parallel/zero1.h"
#include "reference/ops.h"

// The ops the step calls, one function per op: the launchers of kernels/, or,
// built with LLAMA_CPU_TWINS (train_llama_twin), their CPU twins of the same
// signatures, computed by the reference ops (kernels/cpu_twins.h).
#ifdef LLAMA_CPU_TWINS
#include "kernels/cpu_twins.h"
namespace llama::gpu {
namespace ops = ::cpu_twin;
}
#else
namespace llama::gpu::ops {
using ::adamw_update, ::attention_backward, ::attention_forward, ::bias_grad, ::classifier_cross_entropy,
    ::embedding_backward, ::embedding_forward, ::float_to_bf16, ::grad_norm, ::linear_backward_input,
    ::linear_backward_weight, ::linear_forward, ::qk_norm_backward, ::qk_norm_forward, ::rmsnorm_backward,
    ::rmsnorm_forward, ::rope_backward, ::rope_forward, ::swiglu_backward, ::swiglu_forward;
}
#endif

#ifdef LLAMA_NCCL
#include <nccl.h>
#ifdef LLAMA_NCCL_DLOPEN
#include "gpu/nccl_runtime.h"  // NCCL loaded at run time, only when several ranks need it
#endif
inline void nccl_check_impl(ncclResult_t r, const char* what, const char* file, int line) {
    if (r != ncclSuccess) {
        std::fflush(stdout);
        std::fprintf(stderr, "NCCL error at %s:%d: %s failed: %s\n", file, line, what, ncclGetErrorString(r));
        std::exit(EXIT_FAILURE);
    }
}
#define NCCL_CHECK(call) nccl_check_impl((call), #call, __FILE__, __LINE__)
#endif

namespace llama::gpu {

constexpr int kIgnoreIndex = -1;

class Model {
public:
    // Allocates everything for micro-batches of up to micro_batch x seq_len tokens.
    // attention_kernel: the version of kernels/attention.cuh (a row of its
    // table; 0: the default).
    Model(const ModelConfig& config, int micro_batch, int seq_len, bool recompute, int attention_kernel = 0)
        : config_(config),
          attention_kernel_(attention_kernel == 0 ? kAttentionDefaultVersion : attention_kernel),
          layout_(config),
          plan_(plan_memory(config, micro_batch, seq_len, recompute)),
          host_params_(layout_.total()),
          host_m_(layout_.total()),
          host_v_(layout_.total()) {
        const ModelConfig& c = config_;
        if (attention_kernel_ < 1 || attention_kernel_ > kAttentionVersions)
            throw std::invalid_argument("--attention-kernel must be 1 to " + std::to_string(kAttentionVersions) +
                                        ", not " + std::to_string(attention_kernel));
        int arch = 0;
        const AttentionVersion& version = kAttentionVersionTable[attention_kernel_ - 1];
        if (!attention_version_runs_here(version, arch))
            throw std::invalid_argument("--attention-kernel " + std::to_string(attention_kernel) + " needs an sm_" +
                                        std::to_string(version.min_arch) + " GPU" +
                                        (version.min_arch == 90 ? " (H100, H200)" : "") + "; this one is sm_" +
                                        std::to_string(arch));
        if (c.head_dim != 64 && c.head_dim != 128)
            throw std::invalid_argument("the GPU attention kernels take head_dim 64 or 128, the model has " +
                                        std::to_string(c.head_dim));
        for (const ParamTensor& t : layout_.tensors())
            if (t.offset % 8 != 0)
                throw std::invalid_argument("tensor " + t.name + " starts at element " + std::to_string(t.offset) +
                                            ", not a multiple of 8 (128-bit loads): widths must be multiples of 8");
        static_assert(kRmsnormDweightSlices <= kNormScratchSlices && kBiasGradSlices <= kBiasScratchSlices &&
                          kNormBlocks + 2 <= kGradNormScratch,
                      "model/memory_plan.h must plan the scratch the kernels use");
        allocate_state(Zero1(layout_.total(), 0, 1, false));
        // Every activation and working buffer in one arena, each copy 256-byte aligned.
        std::vector<size_t> offsets;
        for (const auto* list : {&plan_.activations, &plan_.workspace})
            for (const MemoryPlan::Buffer& b : *list) {
                offsets.push_back(arena_bytes_);
                arena_bytes_ += size_t(b.copies) * aligned(b);
            }
        CUDA_CHECK(cudaMalloc(&arena_, arena_bytes_));
        size_t i = 0;
        for (const auto* list : {&plan_.activations, &plan_.workspace})
            for (const MemoryPlan::Buffer& b : *list) slots_[size_t(b.id)] = {arena_ + offsets[i++], aligned(b)};
        for (int l = 0; l < c.n_layers; ++l) layers_.push_back(layer_buffers(l));
        // The matrix products' workspace comes from the arena too.
        matmul_.workspace_bytes = size_t(kMatmulWorkspaceBytes);
        CUDA_CHECK(cudaFree(matmul_.workspace));
        matmul_.workspace = slot(Buf::matmul_workspace);
        ce_plan_ = cross_entropy_plan(micro_batch * seq_len, c.vocab_size, size_t(kClassifierBudgetBytes));
        // The plan sizes these buffers itself (model/ includes nothing CUDA): it must agree with the kernels.
        const auto planned = [&](Buf id) { return size_t(plan_.get(id)->elements) * plan_.get(id)->element_bytes; };
        if (planned(Buf::logits_chunk) != ce_plan_.logits_bytes ||
            planned(Buf::dlogits_chunk) != ce_plan_.dlogits_bytes ||
            planned(Buf::attn_scratch) != attention_backward_scratch(micro_batch, seq_len, c.n_heads) * sizeof(float))
            throw std::logic_error(
                "model/memory_plan.cpp sizes the classifier chunks or the attention scratch "
                "unlike kernels/");
        // RoPE tables for positions 0 .. seq_len-1 (a shorter sequence uses their first rows).
        std::vector<float> cos_table, sin_table;
        ref::rope_tables(cos_table, sin_table, seq_len, c.head_dim, c.rope_theta, c.rope_scaling);
        CUDA_CHECK(cudaMemcpy(slot(Buf::rope_cos), cos_table.data(), cos_table.size() * sizeof(float),
                              cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(slot(Buf::rope_sin), sin_table.data(), sin_table.size() * sizeof(float),
                              cudaMemcpyHostToDevice));
        // Where each layer's tensors lie in the flat buffers (contiguous: the
        // gradient buckets of data parallelism).
        layer_begin_.assign(c.n_layers, layout_.total());
        layer_end_.assign(c.n_layers, 0);
        for (const ParamTensor& t : layout_.tensors())
            if (t.layer >= 0) {
                layer_begin_[t.layer] = std::min(layer_begin_[t.layer], t.offset);
                layer_end_[t.layer] = std::max(layer_end_[t.layer], t.offset + t.numel);
            }
    }
    ~Model() {
        free_state();
#ifdef LLAMA_NCCL
        if (nccl_) {
            for (cudaEvent_t e : bucket_events_) cudaEventDestroy(e);
            cudaStreamDestroy(comm_stream_);
        }
#endif
        matmul_.workspace = nullptr;  // part of the arena
        cudaFree(arena_);
    }
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    const ModelConfig& config() const { return config_; }
    const ParamLayout& layout() const { return layout_; }
    const MemoryPlan& plan() const { return plan_; }
    size_t device_bytes() const {
        const Shard& s = zero1_.shard();
        return arena_bytes_ + size_t(s.padded) * (2 + 4) + size_t(s.size) * 12;
    }

    // Host copies of the fp32 master weights and AdamW moments, for checkpoints,
    // export and sampling: download() fills them, upload() sends them back
    // (and writes the bf16 working copy).
    std::vector<float>& params() { return host_params_; }
    std::vector<float>& adam_m() { return host_m_; }
    std::vector<float>& adam_v() { return host_v_; }
    // With ZeRO-1 the shards are gathered first (a collective: every rank calls
    // it), through the gradient buffer, which holds nothing until the next step;
    // without `whole_moments` only this rank's shard of the moments is copied
    // (to its place in the host copies), for a checkpoint written in parts.
    void download(bool whole_moments = true) {
        const size_t P = host_params_.size();
        float* host[3] = {host_params_.data(), host_m_.data(), host_v_.data()};
        float* device[3] = {master_, m_, v_};
        const Shard& own = zero1_.shard();
        for (int i = 0; i < 3; ++i) {
            const float* full = device[i];
            if (i > 0 && zero1_.on() && !whole_moments) {
                CUDA_CHECK(cudaMemcpy(host[i] + own.begin, device[i], size_t(own.owned()) * sizeof(float),
                                      cudaMemcpyDeviceToHost));
                continue;
            }
#ifdef LLAMA_NCCL
            if (zero1_.on()) {  // step 4 of parallel/zero1.h, for the fp32 state
                NCCL_CHECK(ncclAllGather(device[i], grads_, size_t(own.size), ncclFloat, nccl_, 0));
                full = grads_;
            }
#endif
            CUDA_CHECK(cudaMemcpy(host[i], full, P * sizeof(float), cudaMemcpyDeviceToHost));
        }
        zero_grad();
    }
    void upload() {
        const size_t P = host_params_.size();
        // The bf16 working copy of every weight, from the fp32 values passing through the gradient buffer.
        CUDA_CHECK(cudaMemcpy(grads_, host_params_.data(), P * sizeof(float), cudaMemcpyHostToDevice));
        ops::float_to_bf16(weights_, grads_, P);
        // This rank's part of the fp32 master weights and moments (all of them without ZeRO-1).
        const Shard& shard = zero1_.shard();
        const size_t own = size_t(shard.owned());
        CUDA_CHECK(cudaMemset(master_, 0, size_t(shard.size) * sizeof(float)));
        CUDA_CHECK(cudaMemset(m_, 0, size_t(shard.size) * sizeof(float)));
        CUDA_CHECK(cudaMemset(v_, 0, size_t(shard.size) * sizeof(float)));
        CUDA_CHECK(cudaMemcpy(master_, host_params_.data() + shard.begin, own * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(m_, host_m_.data() + shard.begin, own * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(v_, host_v_.data() + shard.begin, own * sizeof(float), cudaMemcpyHostToDevice));
        zero_grad();
    }
    // The fp32 gradients, copied to the host (with ZeRO-1 only this rank's shard is summed).
    std::vector<float> gradients() const {
        std::vector<float> g(layout_.total());
        CUDA_CHECK(cudaMemcpy(g.data(), grads_, g.size() * sizeof(float), cudaMemcpyDeviceToHost));
        return g;
    }
    // Fault injection for tests: a NaN in the first gradient element (rank 0's shard).
    void poison_gradient() {
        const float nan = NAN;
        CUDA_CHECK(cudaMemcpy(grads_, &nan, sizeof nan, cudaMemcpyHostToDevice));
    }

    // Initialises the weights as the CPU model does (computed on the host, then uploaded).
    void init(uint64_t seed) {
        init_weights(config_, layout_, host_params_.data(), seed);
        std::fill(host_m_.begin(), host_m_.end(), 0.0f);
        std::fill(host_v_.begin(), host_v_.end(), 0.0f);
        upload();
    }

#ifdef LLAMA_NCCL
    // Data parallelism: on the last micro-step of each optimizer step the
    // gradients are summed over the ranks of `comm`, one bucket per layer,
    // launched on a separate stream as soon as that layer's backward is done
    // (an event orders each bucket after its layer), so the communication
    // overlaps the backward of the layers below. The embedding, final norm and
    // LM head go last.
    //
    // With ZeRO-1 (`zero`), parallel/zero1.h's steps: each bucket is instead
    // reduced to the ranks whose shards it covers, each rank holds the fp32
    // master weights and AdamW moments of its shard only and updates it, and
    // the bf16 weights are all-gathered after the update. `host_sum` sums a
    // number over the ranks (for the gradient norm of the shards). Call before
    // init() or upload(): the state is reallocated.
    void enable_gradient_sync(ncclComm_t comm, int rank, int world, bool zero, std::function<double(double)> host_sum) {
        nccl_ = comm;
        host_sum_ = std::move(host_sum);
        if (zero && world > 1) {
            free_state();
            allocate_state(Zero1(layout_.total(), rank, world, true));
        }
        CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
        bucket_events_.resize(config_.n_layers + 1);
        for (cudaEvent_t& e : bucket_events_) CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    }
#endif
    // Milliseconds the last synchronising micro-step waited for communication
    // after its own backward was done (what the overlap did not hide).
    double comm_wait_ms() const { return comm_wait_ms_; }

    void zero_grad() { CUDA_CHECK(cudaMemset(grads_, 0, size_t(zero1_.shard().padded) * sizeof(float))); }

    // The mean loss of a batch (evaluation: no gradients). doc_starts ([B*T],
    // host memory, or null): the documents packed into the sequences, as in
    // reference/ops.h (attention stays inside each, RoPE positions restart).
    float forward(const int* tokens, const int* targets, int B, int T, const int* doc_starts = nullptr) {
        return run(tokens, targets, B, T, false, 1, false, doc_starts);
    }

    // One micro-step: the mean loss, and its gradients times loss_scale added to
    // the gradient buffer.
    // With sync_gradients (the last micro-step of a step), the gradients are
    // then summed over the data-parallel ranks.
    float forward_backward(const int* tokens, const int* targets, int B, int T, float loss_scale,
                           bool sync_gradients = false, const int* doc_starts = nullptr) {
        return run(tokens, targets, B, T, true, loss_scale, sync_gradients, doc_starts);
    }

    // The global gradient norm (fp32, fixed order: the same bits on every run).
    // With ZeRO-1: the norm of each rank's shard, squared and summed over the ranks.
    double grad_norm() {
        float* out = slot(Buf::grad_norm);
        const Shard& own = zero1_.shard();  // everything without ZeRO-1
        ops::grad_norm(out + kNormBlocks, out, grads_ + own.begin, size_t(zero1_.on() ? own.size : own.total), 0.0f);
        float norm = 0;
        CUDA_CHECK(cudaMemcpy(&norm, out + kNormBlocks, sizeof norm, cudaMemcpyDeviceToHost));
        if (!zero1_.on()) return norm;
        return zero1_.global_norm(double(norm) * double(norm), host_sum_);
    }

    // AdamW on every tensor with its own weight decay; the gradient is first
    // multiplied by grad_scale (clipping). step counts from 1.
    void apply_update(const ref::AdamWHyper& h, int step, double grad_scale) {
        float* clip = slot(Buf::grad_norm) + kNormBlocks;  // [norm, scale], as grad_norm leaves them
        const float scale = float(grad_scale);
        CUDA_CHECK(cudaMemcpy(clip + 1, &scale, sizeof scale, cudaMemcpyHostToDevice));
        // The part [lo, hi) of each tensor in this rank's shard (all of it without
        // ZeRO-1), at `s` in the shard-sized buffers.
        zero1_.for_each_owned_piece(layout_, [&](const ParamTensor& t, long long lo, long long hi, long long s) {
            AdamWParams p;
            p.lr = float(h.lr);
            p.beta1 = float(h.beta1);
            p.beta2 = float(h.beta2);
            p.eps = float(h.eps);
            p.weight_decay = t.decay ? float(h.weight_decay) : 0.0f;
            p.step = step;
            ops::adamw_update(master_ + s, weights_ + lo, grads_ + lo, m_ + s, v_ + s, size_t(hi - lo), p, clip);
        });
#ifdef LLAMA_NCCL
        if (zero1_.on()) {  // every rank's updated bf16 shard to every rank (in place)
            const Shard& own = zero1_.shard();
            NCCL_CHECK(ncclAllGather(weights_ + own.begin, weights_, size_t(own.size), ncclBfloat16, nccl_, 0));
        }
#endif
    }

private:
    // The parameters' bf16 working copy and fp32 gradients (whole, padded to the
    // shards), and the fp32 master weights and AdamW moments (this rank's shard).
    void allocate_state(const Zero1& zero1) {
        zero1_ = zero1;
        const Shard& shard = zero1_.shard();
        CUDA_CHECK(cudaMalloc(&weights_, size_t(shard.padded) * sizeof(bf16)));
        CUDA_CHECK(cudaMalloc(&grads_, size_t(shard.padded) * sizeof(float)));
        CUDA_CHECK(cudaMalloc(&master_, size_t(shard.size) * sizeof(float)));
        CUDA_CHECK(cudaMalloc(&m_, size_t(shard.size) * sizeof(float)));
        CUDA_CHECK(cudaMalloc(&v_, size_t(shard.size) * sizeof(float)));
        CUDA_CHECK(cudaMemset(weights_, 0, size_t(shard.padded) * sizeof(bf16)));
        w_ = bind_weights(config_, layout_, weights_);
        g_ = bind_weights(config_, layout_, grads_);
        zero_grad();
    }
    void free_state() {
        for (void* p : {(void*)weights_, (void*)grads_, (void*)master_, (void*)m_, (void*)v_}) cudaFree(p);
        weights_ = nullptr, grads_ = master_ = m_ = v_ = nullptr;
    }

    struct Slot {
        char* base = nullptr;  // null: not in this plan
        size_t stride = 0;     // bytes between the copies of a per-layer buffer
    };
    static size_t aligned(const MemoryPlan::Buffer& b) {
        return (size_t(b.elements) * size_t(b.element_bytes) + 255) / 256 * 256;
    }
    // A buffer of the plan; `copy` picks a layer's copy of a per-layer buffer.
    template <typename T = float>
    T* slot(Buf id, int copy = 0) const {
        const Slot& s = slots_[size_t(id)];
        if (!s.base)
            throw std::logic_error("GPU model: buffer " + std::to_string(int(id)) + " is not in the memory plan");
        return reinterpret_cast<T*>(s.base + size_t(copy) * s.stride);
    }
    // A per-layer buffer that recomputation keeps only once.
    template <typename T>
    T* recomputed(Buf id, int layer) const {
        return slot<T>(id, plan_.recompute ? 0 : layer);
    }
    // What layer l saves for its backward, found once in the arena.
    struct LayerBuffers {
        bf16 *residual, *attn_norm, *qkv_raw, *qkv, *attn_out, *residual_mid, *mlp_norm, *gate_up, *act;
        float *attn_rstd, *qk_rstd, *lse, *mlp_rstd;  // qk_rstd: q's N*H values, then k's N*KV
    };
    LayerBuffers layer_buffers(int l) const {
        const bool qk = config_.qk_norm;
        return {slot<bf16>(Buf::residual, l),
                recomputed<bf16>(Buf::attn_norm, l),
                qk ? slot<bf16>(Buf::qkv_raw, l) : nullptr,
                slot<bf16>(Buf::qkv, l),
                slot<bf16>(Buf::attn_out, l),
                slot<bf16>(Buf::residual_mid, l),
                recomputed<bf16>(Buf::mlp_norm, l),
                slot<bf16>(Buf::gate_up, l),
                recomputed<bf16>(Buf::act, l),
                slot(Buf::attn_rstd, l),
                qk ? slot(Buf::qk_rstd, l) : nullptr,
                slot(Buf::lse, l),
                slot(Buf::mlp_rstd, l)};
    }

    // Sums the gradients [offset, offset + count) (and a second range, if any)
    // over the ranks, on the communication stream, once the main stream gets
    // here. With ZeRO-1 each part of a range goes only to the rank whose shard
    // holds it (one reduce per owner), so the reduce-scatter is bucketed and
    // overlapped like the all-reduce.
    void sync_bucket(int bucket, int64_t offset, int64_t count, int64_t offset2 = 0, int64_t count2 = 0) {
#ifdef LLAMA_NCCL
        if (!nccl_) return;
        CUDA_CHECK(cudaEventRecord(bucket_events_[bucket], 0));
        CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, bucket_events_[bucket], 0));
        NCCL_CHECK(ncclGroupStart());
        for (const auto& [begin, n] : {std::pair{offset, count}, std::pair{offset2, count2}}) {
            if (n <= 0) continue;
            if (!zero1_.on()) {
                NCCL_CHECK(
                    ncclAllReduce(grads_ + begin, grads_ + begin, size_t(n), ncclFloat, ncclSum, nccl_, comm_stream_));
                continue;
            }
            zero1_.owners(begin, n, [&](int owner, long long lo, long long hi) {
                NCCL_CHECK(ncclReduce(grads_ + lo, grads_ + lo, size_t(hi - lo), ncclFloat, ncclSum, owner, nccl_,
                                      comm_stream_));
            });
        }
        NCCL_CHECK(ncclGroupEnd());
#else
        (void)bucket, (void)offset, (void)count, (void)offset2, (void)count2;
#endif
    }

    float run(const int* tokens, const int* targets, int B, int T, bool backward, float loss_scale, bool sync,
              const int* doc_starts) {
        const ModelConfig& c = config_;
        const int C = c.hidden, H = c.n_heads, KV = c.n_kv_heads, D = c.head_dim, F = c.ffn_hidden, V = c.vocab_size,
                  L = c.n_layers, Wd = (H + 2 * KV) * D;
        const int N = B * T;
        const float eps = c.norm_eps;
        if (B <= 0 || T <= 0 || T > plan_.seq_len || int64_t(N) > int64_t(plan_.micro_batch) * plan_.seq_len)
            throw std::invalid_argument("GPU model: a batch of " + std::to_string(B) + " x " + std::to_string(T) +
                                        " tokens does not fit the planned " + std::to_string(plan_.micro_batch) +
                                        " x " + std::to_string(plan_.seq_len));
        const int64_t counted = ref::check_batch(tokens, targets, N, V, kIgnoreIndex);
        int* d_tokens = slot<int>(Buf::tokens);
        int* d_targets = slot<int>(Buf::targets);
        CUDA_CHECK(cudaMemcpy(d_tokens, tokens, size_t(N) * sizeof(int), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(d_targets, targets, size_t(N) * sizeof(int), cudaMemcpyHostToDevice));
        // The documents: each token's document start and end (N ints each), for RoPE and attention.
        AttnDocs docs;
        if (doc_starts) {
            ref::check_doc_starts(doc_starts, B, T);
            std::vector<int> bounds(2 * size_t(N));
            std::copy(doc_starts, doc_starts + N, bounds.begin());
            attention_doc_ends(bounds.data() + N, doc_starts, B, T);
            int* d_bounds = slot<int>(Buf::doc_bounds);
            CUDA_CHECK(cudaMemcpy(d_bounds, bounds.data(), bounds.size() * sizeof(int), cudaMemcpyHostToDevice));
            docs.start = d_bounds;
            docs.end = d_bounds + N;
        }
        const float* cos_table = slot(Buf::rope_cos);
        const float* sin_table = slot(Buf::rope_sin);
        bf16* tmp = slot<bf16>(Buf::d_norm);  // projection outputs in the forward

        // ------------------------------------------------------------ forward
        ops::embedding_forward(layers_[0].residual, d_tokens, w_.embed, N, C);
        ops::rmsnorm_forward(layers_[0].attn_norm, layers_[0].attn_rstd, nullptr, layers_[0].residual, nullptr,
                             w_.layers[0].attn_norm, N, C, eps);
        for (int l = 0; l < L; ++l) {
            const LayerWeights<bf16>& W = w_.layers[l];
            const LayerBuffers& a = layers_[l];
            ops::linear_forward(matmul_, c.qk_norm ? a.qkv_raw : a.qkv, false, a.attn_norm, W.wq, W.bq, N, C, Wd);
            if (c.qk_norm) {
                // The v columns pass through unchanged; q and k are normalised per head.
                CUDA_CHECK(cudaMemcpyAsync(a.qkv, a.qkv_raw, size_t(N) * Wd * sizeof(bf16), cudaMemcpyDeviceToDevice));
                ops::qk_norm_forward(a.qkv, a.qk_rstd, a.qkv_raw, W.q_norm, N, H, D, Wd, 0, eps);
                ops::qk_norm_forward(a.qkv, a.qk_rstd + size_t(N) * H, a.qkv_raw, W.k_norm, N, KV, D, Wd, H * D, eps);
            }
            ops::rope_forward(a.qkv, cos_table, sin_table, N, T, Wd, 0, H, D, 0, docs.start);
            ops::rope_forward(a.qkv, cos_table, sin_table, N, T, Wd, H * D, KV, D, 0, docs.start);
            ops::attention_forward(a.attn_out, a.lse, a.qkv, B, T, H, KV, D, 0, attention_kernel_, docs);
            ops::linear_forward(matmul_, tmp, false, a.attn_out, W.wo, W.bo, N, H * D, C);
            ops::rmsnorm_forward(a.mlp_norm, a.mlp_rstd, a.residual_mid, tmp, a.residual, W.mlp_norm, N, C, eps);
            ops::linear_forward(matmul_, a.gate_up, false, a.mlp_norm, W.w_gate, W.b_gate, N, C, 2 * F);
            ops::swiglu_forward(a.act, a.gate_up, N, F);
            ops::linear_forward(matmul_, tmp, false, a.act, W.w_down, W.b_down, N, F, C);
            // The residual add, fused with the next RMSNorm (the next layer's or the final one).
            if (l + 1 < L)
                ops::rmsnorm_forward(layers_[l + 1].attn_norm, layers_[l + 1].attn_rstd, layers_[l + 1].residual, tmp,
                                     a.residual_mid, w_.layers[l + 1].attn_norm, N, C, eps);
            else
                ops::rmsnorm_forward(slot<bf16>(Buf::final_norm), slot(Buf::final_rstd),
                                     slot<bf16>(Buf::final_residual), tmp, a.residual_mid, w_.final_norm, N, C, eps);
        }
        // Classifier and cross-entropy; with the backward, also d(final.norm) into
        // d_norm and the LM head's (or the tied embedding's) gradient.
        const float dloss = counted > 0 ? loss_scale / float(counted) : 0.0f;
        bf16* d_norm = slot<bf16>(Buf::d_norm);
        ops::classifier_cross_entropy(matmul_, slot(Buf::loss), backward ? d_norm : nullptr,
                                      backward ? g_.lm_head : nullptr, slot<bf16>(Buf::final_norm), w_.lm_head,
                                      d_targets, N, C, V, kIgnoreIndex, dloss, ce_plan_, slot(Buf::logits_chunk),
                                      slot<bf16>(Buf::dlogits_chunk));
        std::vector<float> row_loss(N);
        CUDA_CHECK(cudaMemcpy(row_loss.data(), slot(Buf::loss), size_t(N) * sizeof(float), cudaMemcpyDeviceToHost));
        double loss_sum = 0;
        for (float x : row_loss) loss_sum += x;
        const float loss = counted > 0 ? float(loss_sum / double(counted)) : 0.0f;
        if (!backward) return loss;

        // ------------------------------------------------------------ backward
        bf16* d_residual = slot<bf16>(Buf::d_residual);
        bf16* d_qkv = slot<bf16>(Buf::d_qkv);
        bf16* d_attn_out = slot<bf16>(Buf::d_attn_out);
        bf16* d_gate_up = slot<bf16>(Buf::d_gate_up);
        bf16* d_act = slot<bf16>(Buf::d_act);
        float* norm_scratch = slot(Buf::norm_scratch);
        float* bias_scratch = c.bias ? slot(Buf::bias_scratch) : nullptr;
        float* attn_scratch = slot(Buf::attn_scratch);
        ops::rmsnorm_backward(d_residual, g_.final_norm, norm_scratch, nullptr, d_norm, slot<bf16>(Buf::final_residual),
                              w_.final_norm, slot(Buf::final_rstd), N, C);
        for (int l = L - 1; l >= 0; --l) {
            const LayerWeights<bf16>& W = w_.layers[l];
            const LayerWeights<float>& G = g_.layers[l];
            const LayerBuffers& a = layers_[l];
            if (plan_.recompute) {  // what the forward did not keep
                ops::rmsnorm_forward(a.mlp_norm, a.mlp_rstd, nullptr, a.residual_mid, nullptr, W.mlp_norm, N, C, eps);
                ops::swiglu_forward(a.act, a.gate_up, N, F);
            }
            // MLP: d_residual holds d(layer output) and passes through the residual.
            ops::linear_backward_input(matmul_, d_act, d_residual, W.w_down, N, F, C, false);
            ops::linear_backward_weight(matmul_, G.w_down, d_residual, a.act, N, F, C);
            if (c.bias) ops::bias_grad(G.b_down, bias_scratch, d_residual, N, C);
            ops::swiglu_backward(d_gate_up, d_act, a.gate_up, N, F);
            ops::linear_backward_input(matmul_, d_norm, d_gate_up, W.w_gate, N, C, 2 * F, false);
            ops::linear_backward_weight(matmul_, G.w_gate, d_gate_up, a.mlp_norm, N, C, 2 * F);
            if (c.bias) ops::bias_grad(G.b_gate, bias_scratch, d_gate_up, N, 2 * F);
            ops::rmsnorm_backward(d_residual, G.mlp_norm, norm_scratch, d_residual, d_norm, a.residual_mid, W.mlp_norm,
                                  a.mlp_rstd, N, C);
            // Attention: d_residual now holds d(residual_mid).
            ops::linear_backward_input(matmul_, d_attn_out, d_residual, W.wo, N, H * D, C, false);
            ops::linear_backward_weight(matmul_, G.wo, d_residual, a.attn_out, N, H * D, C);
            if (c.bias) ops::bias_grad(G.bo, bias_scratch, d_residual, N, C);
            ops::attention_backward(d_qkv, attn_scratch, d_attn_out, a.qkv, a.attn_out, a.lse, B, T, H, KV, D, 0,
                                    attention_kernel_, docs);
            ops::rope_backward(d_qkv, cos_table, sin_table, N, T, Wd, 0, H, D, 0, docs.start);
            ops::rope_backward(d_qkv, cos_table, sin_table, N, T, Wd, H * D, KV, D, 0, docs.start);
            const bf16* d_proj = d_qkv;  // the gradient of the fused projection's output
            if (c.qk_norm) {
                bf16* d_raw = slot<bf16>(Buf::d_qkv_raw);
                CUDA_CHECK(cudaMemcpyAsync(d_raw, d_qkv, size_t(N) * Wd * sizeof(bf16), cudaMemcpyDeviceToDevice));
                ops::qk_norm_backward(d_raw, G.q_norm, norm_scratch, d_qkv, a.qkv_raw, W.q_norm, a.qk_rstd, N, H, D, Wd,
                                      0);
                ops::qk_norm_backward(d_raw, G.k_norm, norm_scratch, d_qkv, a.qkv_raw, W.k_norm,
                                      a.qk_rstd + size_t(N) * H, N, KV, D, Wd, H * D);
                d_proj = d_raw;
            }
            if (plan_.recompute)
                ops::rmsnorm_forward(a.attn_norm, a.attn_rstd, nullptr, a.residual, nullptr, W.attn_norm, N, C, eps);
            ops::linear_backward_input(matmul_, d_norm, d_proj, W.wq, N, C, Wd, false);
            ops::linear_backward_weight(matmul_, G.wq, d_proj, a.attn_norm, N, C, Wd);
            if (c.bias) ops::bias_grad(G.bq, bias_scratch, d_proj, N, Wd);
            ops::rmsnorm_backward(d_residual, G.attn_norm, norm_scratch, d_residual, d_norm, a.residual, W.attn_norm,
                                  a.attn_rstd, N, C);
            if (sync) sync_bucket(l, layer_begin_[l], layer_end_[l] - layer_begin_[l]);
        }
        // The embedding: positions grouped by token on the host, added in a fixed order.
        EmbeddingPlan embed = embedding_backward_plan(tokens, N, V);
        int* d_table = slot<int>(Buf::embed_plan);
        CUDA_CHECK(cudaMemcpy(d_table, embed.table.data(), embed.table.size() * sizeof(int), cudaMemcpyHostToDevice));
        ops::embedding_backward(g_.embed, d_residual, embed, d_table, C);
        // The tensors outside the layers: the embedding before them, the final
        // norm and an untied LM head after them.
        if (sync) sync_bucket(L, 0, layer_begin_[0], layer_end_[L - 1], layout_.total() - layer_end_[L - 1]);
        CUDA_CHECK(cudaStreamSynchronize(0));
        comm_wait_ms_ = 0;
#ifdef LLAMA_NCCL
        if (sync && nccl_) {
            const auto t0 = std::chrono::steady_clock::now();
            CUDA_CHECK(cudaStreamSynchronize(comm_stream_));
            comm_wait_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        }
#endif
        return loss;
    }

    ModelConfig config_;
    int attention_kernel_;
    ParamLayout layout_;
    MemoryPlan plan_;
    std::vector<int64_t> layer_begin_, layer_end_;
    double comm_wait_ms_ = 0;
    Zero1 zero1_;  // one shard, the whole buffer, unless ZeRO-1 is on
    std::function<double(double)> host_sum_;
#ifdef LLAMA_NCCL
    ncclComm_t nccl_ = nullptr;
    cudaStream_t comm_stream_ = nullptr;
    std::vector<cudaEvent_t> bucket_events_;
#endif
    std::vector<float> host_params_, host_m_, host_v_;
    bf16* weights_ = nullptr;
    float *master_ = nullptr, *grads_ = nullptr, *m_ = nullptr, *v_ = nullptr;
    char* arena_ = nullptr;
    size_t arena_bytes_ = 0;
    std::array<Slot, size_t(Buf::count)> slots_{};  // by Buf id
    std::vector<LayerBuffers> layers_;
    MatmulContext matmul_;
    CrossEntropyPlan ce_plan_;
    ModelWeights<bf16> w_;
    ModelWeights<float> g_;
};

}  // namespace llama::gpu

#endif  // GPU_MODEL_CUH
