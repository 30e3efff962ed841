// The whole Llama model on the CPU reference ops: forward (loss), backward
// (every parameter gradient) and the AdamW update, for float (the fp32
// reference and CPU trainer) and double (finite-difference tests).
//
// One layer, as the forward computes it (x is the residual stream, [N, C]):
//   h = rmsnorm(x) ; q, k, v = h Wq^T + bq, h Wk^T + bk, h Wv^T + bv
//   q, k = qk_norm(q), qk_norm(k)           (when qk_norm is on)
//   q, k = rope(q), rope(k)
//   x = x + attention(q, k, v) Wo^T + bo
//   h = rmsnorm(x) ; x = x + (silu(h Wg^T + bg) * (h Wu^T + bu)) Wd^T + bd
// then logits = rmsnorm(x) W_head^T and the mean cross-entropy over counted targets.
#ifndef REFERENCE_MODEL_H
#define REFERENCE_MODEL_H

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/params.h"
#include "reference/ops.h"

namespace llama::ref {

constexpr int kIgnoreIndex = -1;

// Everything the forward saves for the backward, for one layer.
template <typename T>
struct LayerActivations {
    std::vector<T> x_in;                                // [N, C] residual stream entering the layer
    std::vector<T> attn_norm;                           // [N, C]
    std::vector<T> attn_rstd;                           // [N]
    std::vector<T> q, k, v;                             // after the projections: [N, H*D], [N, KV*D], [N, KV*D]
    std::vector<T> q_normed, k_normed, q_rstd, k_rstd;  // QK-norm outputs and [N*H], [N*KV]
    std::vector<T> q_rope, k_rope;                      // after RoPE
    std::vector<T> probs;                               // [B, H, T, T]
    std::vector<T> attn_out;                            // [N, H*D]
    std::vector<T> x_mid;                               // [N, C] residual stream after attention
    std::vector<T> mlp_norm;                            // [N, C]
    std::vector<T> mlp_rstd;                            // [N]
    std::vector<T> gate, up, act;                       // [N, F]
};

template <typename T>
struct Activations {
    int B = 0, seq_len = 0;
    std::vector<int> tokens, targets;
    std::vector<int> doc_starts;  // [N] when the batch packs documents (see ops.h: rope_position), else empty
    std::vector<T> rope_cos, rope_sin;
    std::vector<LayerActivations<T>> layers;
    std::vector<T> x_final;     // [N, C]
    std::vector<T> final_norm;  // [N, C]
    std::vector<T> final_rstd;  // [N]
    std::vector<T> logits;      // [N, V]
    std::vector<T> probs;       // [N, V]
    int64_t counted = 0;        // targets that count toward the loss
};

// The reference model: a config, its parameter layout, and the parameters in
// one flat buffer (of layout.total() elements).
template <typename T>
class Model {
public:
    explicit Model(const ModelConfig& config);

    const ModelConfig& config() const { return config_; }
    const ParamLayout& layout() const { return layout_; }
    std::vector<T>& params() { return params_; }
    const std::vector<T>& params() const { return params_; }
    std::vector<T>& grads() { return grads_; }
    const Activations<T>& activations() const { return acts_; }

    // Initialises parameters as llama::init_weights does (computed in float).
    void init(uint64_t seed);

    // tokens and targets are [B, T]; a target of kIgnoreIndex does not count.
    // doc_starts ([B, T] or null) packs several documents into a sequence:
    // attention stays inside each and RoPE positions restart at each (ops.h).
    // Returns the mean loss over counted targets. Throws std::invalid_argument on
    // out-of-range tokens or targets, bad document starts or a sequence longer
    // than max_seq_len.
    T forward(const int* tokens, const int* targets, int B, int seq_len, const int* doc_starts = nullptr);

    // Gradients of the last forward's loss, ADDED into grads() (zero_grad() first
    // unless accumulating). `loss_scale` scales dloss (e.g. 1/accumulation steps).
    void backward(T loss_scale = T(1));
    void zero_grad();

    // Global gradient norm, then clip to max_norm (<= 0: no clipping) and one AdamW
    // step on every tensor with its own weight-decay flag. `step` counts from 1.
    // Returns the norm before clipping.
    double update(const AdamWHyper& hyper, int step, double max_norm);
    // The two halves of update(), for callers that inspect the norm first
    // (e.g. to skip a step whose gradient is not finite).
    double grad_norm() const;
    void apply_update(const AdamWHyper& hyper, int step, double grad_scale);

    // AdamW's first and second moments, one value per parameter (for checkpoints).
    std::vector<T>& adam_m() { return m_; }
    std::vector<T>& adam_v() { return v_; }

private:
    ModelConfig config_;
    ParamLayout layout_;
    std::vector<T> params_, grads_, m_, v_;
    Activations<T> acts_;
};

extern template class Model<float>;
extern template class Model<double>;

}  // namespace llama::ref

#endif  // REFERENCE_MODEL_H
