#include "reference/model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace llama::ref {

template <typename T>
Model<T>::Model(const ModelConfig& config)
    : config_(config),
      layout_(config),
      params_(layout_.total()),
      grads_(layout_.total()),
      m_(layout_.total()),
      v_(layout_.total()) {}

template <typename T>
void Model<T>::init(uint64_t seed) {
    std::vector<float> p(layout_.total());
    init_weights(config_, layout_, p.data(), seed);
    std::copy(p.begin(), p.end(), params_.begin());
    std::fill(m_.begin(), m_.end(), T(0));
    std::fill(v_.begin(), v_.end(), T(0));
}

template <typename T>
void Model<T>::zero_grad() {
    std::fill(grads_.begin(), grads_.end(), T(0));
}

template <typename T>
T Model<T>::forward(const int* tokens, const int* targets, int B, int seq_len, const int* doc_starts) {
    const ModelConfig& c = config_;
    const int C = c.hidden, H = c.n_heads, KV = c.n_kv_heads, D = c.head_dim, F = c.ffn_hidden, V = c.vocab_size;
    const int64_t N = int64_t(B) * seq_len;
    const T eps = T(c.norm_eps);
    if (B <= 0 || seq_len <= 0) throw std::invalid_argument("forward: batch and sequence length must be positive");
    if (seq_len > c.max_seq_len)
        throw std::invalid_argument("forward: sequence length " + std::to_string(seq_len) + " exceeds max_seq_len " +
                                    std::to_string(c.max_seq_len));
    check_batch(tokens, targets, N, V, kIgnoreIndex);
    check_doc_starts(doc_starts, B, seq_len);

    Activations<T>& a = acts_;
    a.B = B;
    a.seq_len = seq_len;
    a.tokens.assign(tokens, tokens + N);
    a.targets.assign(targets, targets + N);
    if (doc_starts) a.doc_starts.assign(doc_starts, doc_starts + N);
    else a.doc_starts.clear();
    const int* docs = doc_starts;
    rope_tables(a.rope_cos, a.rope_sin, seq_len, D, c.rope_theta, c.rope_scaling);
    a.layers.resize(c.n_layers);
    const ModelWeights<T> w = bind_weights(c, layout_, params_.data());

    std::vector<T> x(N * C), tmp(N * C);
    embedding_forward(x.data(), tokens, w.embed, N, C);

    for (int l = 0; l < c.n_layers; ++l) {
        const LayerWeights<T>& W = w.layers[l];
        LayerActivations<T>& A = a.layers[l];
        A.x_in = x;
        // Attention block.
        A.attn_norm.resize(N * C);
        A.attn_rstd.resize(N);
        rmsnorm_forward(A.attn_norm.data(), A.attn_rstd.data(), x.data(), W.attn_norm, N, C, eps);
        A.q.resize(N * H * D);
        A.k.resize(N * KV * D);
        A.v.resize(N * KV * D);
        linear_forward(A.q.data(), A.attn_norm.data(), W.wq, W.bq, N, C, H * D);
        linear_forward(A.k.data(), A.attn_norm.data(), W.wk, W.bk, N, C, KV * D);
        linear_forward(A.v.data(), A.attn_norm.data(), W.wv, W.bv, N, C, KV * D);
        const T* q_in = A.q.data();
        const T* k_in = A.k.data();
        if (c.qk_norm) {
            A.q_normed.resize(N * H * D);
            A.k_normed.resize(N * KV * D);
            A.q_rstd.resize(N * H);
            A.k_rstd.resize(N * KV);
            qk_norm_forward(A.q_normed.data(), A.q_rstd.data(), A.q.data(), W.q_norm, N, H, D, eps);
            qk_norm_forward(A.k_normed.data(), A.k_rstd.data(), A.k.data(), W.k_norm, N, KV, D, eps);
            q_in = A.q_normed.data();
            k_in = A.k_normed.data();
        }
        A.q_rope.resize(N * H * D);
        A.k_rope.resize(N * KV * D);
        rope_forward(A.q_rope.data(), q_in, a.rope_cos.data(), a.rope_sin.data(), B, seq_len, H, D, docs);
        rope_forward(A.k_rope.data(), k_in, a.rope_cos.data(), a.rope_sin.data(), B, seq_len, KV, D, docs);
        A.probs.resize(int64_t(B) * H * seq_len * seq_len);
        A.attn_out.resize(N * H * D);
        attention_forward(A.attn_out.data(), A.probs.data(), A.q_rope.data(), A.k_rope.data(), A.v.data(), B, seq_len,
                          H, KV, D, static_cast<T*>(nullptr), docs);
        linear_forward(tmp.data(), A.attn_out.data(), W.wo, W.bo, N, H * D, C);
        A.x_mid.resize(N * C);
        for (int64_t i = 0; i < N * C; ++i) A.x_mid[i] = x[i] + tmp[i];
        // MLP block.
        A.mlp_norm.resize(N * C);
        A.mlp_rstd.resize(N);
        rmsnorm_forward(A.mlp_norm.data(), A.mlp_rstd.data(), A.x_mid.data(), W.mlp_norm, N, C, eps);
        A.gate.resize(N * F);
        A.up.resize(N * F);
        A.act.resize(N * F);
        linear_forward(A.gate.data(), A.mlp_norm.data(), W.w_gate, W.b_gate, N, C, F);
        linear_forward(A.up.data(), A.mlp_norm.data(), W.w_up, W.b_up, N, C, F);
        swiglu_forward(A.act.data(), A.gate.data(), A.up.data(), N * F);
        linear_forward(tmp.data(), A.act.data(), W.w_down, W.b_down, N, F, C);
        for (int64_t i = 0; i < N * C; ++i) x[i] = A.x_mid[i] + tmp[i];
    }

    a.x_final = x;
    a.final_norm.resize(N * C);
    a.final_rstd.resize(N);
    rmsnorm_forward(a.final_norm.data(), a.final_rstd.data(), x.data(), w.final_norm, N, C, eps);
    a.logits.resize(N * V);
    a.probs.resize(N * V);
    linear_forward(a.logits.data(), a.final_norm.data(), w.lm_head, static_cast<const T*>(nullptr), N, C, V);
    return cross_entropy_forward(a.probs.data(), a.logits.data(), targets, N, V, kIgnoreIndex, &a.counted);
}

template <typename T>
void Model<T>::backward(T loss_scale) {
    const ModelConfig& c = config_;
    const Activations<T>& a = acts_;
    if (a.B == 0) throw std::logic_error("backward called before forward");
    const int C = c.hidden, H = c.n_heads, KV = c.n_kv_heads, D = c.head_dim, F = c.ffn_hidden, V = c.vocab_size;
    const int B = a.B, seq_len = a.seq_len;
    const int64_t N = int64_t(B) * seq_len;
    const int* docs = a.doc_starts.empty() ? nullptr : a.doc_starts.data();
    const ModelWeights<T> w = bind_weights(c, layout_, params_.data());
    const ModelWeights<T> g = bind_weights(c, layout_, grads_.data());
    auto zeros = [](std::vector<T>& v, int64_t n) { v.assign(n, T(0)); };

    // Loss and LM head.
    std::vector<T> dlogits(N * V);
    cross_entropy_backward(dlogits.data(), a.probs.data(), a.targets.data(), N, V, kIgnoreIndex, a.counted);
    if (loss_scale != T(1))
        for (T& d : dlogits) d *= loss_scale;
    std::vector<T> dnorm, dx;
    zeros(dnorm, N * C);
    linear_backward(dnorm.data(), g.lm_head, static_cast<T*>(nullptr), dlogits.data(), a.final_norm.data(), w.lm_head,
                    N, C, V);
    zeros(dx, N * C);
    rmsnorm_backward(dx.data(), g.final_norm, dnorm.data(), a.x_final.data(), w.final_norm, a.final_rstd.data(), N, C);

    std::vector<T> dact, dgate, dup, dq, dk, dv, dq_rope, dk_rope, dq_normed, dk_normed, dattn_out;
    for (int l = c.n_layers - 1; l >= 0; --l) {
        const LayerWeights<T>& W = w.layers[l];
        const LayerWeights<T>& G = g.layers[l];
        const LayerActivations<T>& A = a.layers[l];
        // MLP block: x_out = x_mid + down(silu(gate) * up); dx holds d x_out.
        zeros(dact, N * F);
        linear_backward(dact.data(), G.w_down, G.b_down, dx.data(), A.act.data(), W.w_down, N, F, C);
        zeros(dgate, N * F);
        zeros(dup, N * F);
        swiglu_backward(dgate.data(), dup.data(), dact.data(), A.gate.data(), A.up.data(), N * F);
        zeros(dnorm, N * C);
        linear_backward(dnorm.data(), G.w_gate, G.b_gate, dgate.data(), A.mlp_norm.data(), W.w_gate, N, C, F);
        linear_backward(dnorm.data(), G.w_up, G.b_up, dup.data(), A.mlp_norm.data(), W.w_up, N, C, F);
        // The residual passes dx through; the norm adds its part.
        rmsnorm_backward(dx.data(), G.mlp_norm, dnorm.data(), A.x_mid.data(), W.mlp_norm, A.mlp_rstd.data(), N, C);
        // Attention block: x_mid = x_in + o_proj(attention(q, k, v)); dx now holds d x_mid.
        zeros(dattn_out, N * H * D);
        linear_backward(dattn_out.data(), G.wo, G.bo, dx.data(), A.attn_out.data(), W.wo, N, H * D, C);
        zeros(dq_rope, N * H * D);
        zeros(dk_rope, N * KV * D);
        zeros(dv, N * KV * D);
        attention_backward(dq_rope.data(), dk_rope.data(), dv.data(), dattn_out.data(), A.q_rope.data(),
                           A.k_rope.data(), A.v.data(), A.probs.data(), B, seq_len, H, KV, D);
        zeros(dq, N * H * D);
        zeros(dk, N * KV * D);
        if (c.qk_norm) {
            zeros(dq_normed, N * H * D);
            zeros(dk_normed, N * KV * D);
            rope_backward(dq_normed.data(), dq_rope.data(), a.rope_cos.data(), a.rope_sin.data(), B, seq_len, H, D,
                          docs);
            rope_backward(dk_normed.data(), dk_rope.data(), a.rope_cos.data(), a.rope_sin.data(), B, seq_len, KV, D,
                          docs);
            qk_norm_backward(dq.data(), G.q_norm, dq_normed.data(), A.q.data(), W.q_norm, A.q_rstd.data(), N, H, D);
            qk_norm_backward(dk.data(), G.k_norm, dk_normed.data(), A.k.data(), W.k_norm, A.k_rstd.data(), N, KV, D);
        } else {
            rope_backward(dq.data(), dq_rope.data(), a.rope_cos.data(), a.rope_sin.data(), B, seq_len, H, D, docs);
            rope_backward(dk.data(), dk_rope.data(), a.rope_cos.data(), a.rope_sin.data(), B, seq_len, KV, D, docs);
        }
        zeros(dnorm, N * C);
        linear_backward(dnorm.data(), G.wq, G.bq, dq.data(), A.attn_norm.data(), W.wq, N, C, H * D);
        linear_backward(dnorm.data(), G.wk, G.bk, dk.data(), A.attn_norm.data(), W.wk, N, C, KV * D);
        linear_backward(dnorm.data(), G.wv, G.bv, dv.data(), A.attn_norm.data(), W.wv, N, C, KV * D);
        rmsnorm_backward(dx.data(), G.attn_norm, dnorm.data(), A.x_in.data(), W.attn_norm, A.attn_rstd.data(), N, C);
    }
    embedding_backward(g.embed, dx.data(), a.tokens.data(), N, C);
}

template <typename T>
double Model<T>::grad_norm() const {
    return std::sqrt(grad_norm_squared(grads_.data(), int64_t(grads_.size())));
}

template <typename T>
void Model<T>::apply_update(const AdamWHyper& hyper, int step, double grad_scale) {
    for (const ParamTensor& t : layout_.tensors())
        adamw_update(params_.data() + t.offset, grads_.data() + t.offset, m_.data() + t.offset, v_.data() + t.offset,
                     t.numel, hyper, step, grad_scale, t.decay);
}

template <typename T>
double Model<T>::update(const AdamWHyper& hyper, int step, double max_norm) {
    const double norm = grad_norm();
    apply_update(hyper, step, clip_scale(norm, max_norm));
    return norm;
}

template class Model<float>;
template class Model<double>;

}  // namespace llama::ref
