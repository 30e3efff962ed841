#include "reference/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "reference/model.h"
#include "reference/ops.h"

namespace llama::ref {

template <typename T>
KvCache<T>::KvCache(const ModelConfig& config, int max_len) : c_(config), max_len_(max_len) {
    if (max_len <= 0 || max_len > config.max_seq_len)
        throw std::invalid_argument("KV cache length " + std::to_string(max_len) + " must be in 1.." +
                                    std::to_string(config.max_seq_len));
    k_.assign(config.n_layers, std::vector<T>(size_t(max_len) * config.n_kv_heads * config.head_dim));
    v_ = k_;
    rope_tables(cos_, sin_, max_len, config.head_dim, config.rope_theta, config.rope_scaling);
}

template <typename T>
std::vector<T> KvCache<T>::step(const ModelWeights<T>& w, int token) {
    const int C = c_.hidden, H = c_.n_heads, KV = c_.n_kv_heads, D = c_.head_dim, F = c_.ffn_hidden, V = c_.vocab_size,
              group = H / KV;
    if (length_ >= max_len_) throw std::invalid_argument("KV cache full at " + std::to_string(max_len_) + " tokens");
    if (token < 0 || token >= V) throw std::invalid_argument("token id " + std::to_string(token) + " out of range");
    const int pos = length_;
    const T eps = T(c_.norm_eps);
    const T* cos_p = cos_.data() + size_t(pos) * (D / 2);  // RoPE tables from this position on
    const T* sin_p = sin_.data() + size_t(pos) * (D / 2);
    std::vector<T> x(C), h(C), tmp(C), q(H * D), k(KV * D), qn(H * D), kn(KV * D), att(H * D), gate(F), up(F), act(F),
        rstd(std::max(H, 1));
    embedding_forward(x.data(), &token, w.embed, 1, C);
    for (int l = 0; l < c_.n_layers; ++l) {
        const LayerWeights<T>& W = w.layers[l];
        rmsnorm_forward(h.data(), rstd.data(), x.data(), W.attn_norm, 1, C, eps);
        linear_forward(q.data(), h.data(), W.wq, W.bq, 1, C, H * D);
        linear_forward(k.data(), h.data(), W.wk, W.bk, 1, C, KV * D);
        T* vslot = v_[l].data() + size_t(pos) * KV * D;
        linear_forward(vslot, h.data(), W.wv, W.bv, 1, C, KV * D);
        const T* q_in = q.data();
        const T* k_in = k.data();
        if (c_.qk_norm) {
            qk_norm_forward(qn.data(), rstd.data(), q.data(), W.q_norm, 1, H, D, eps);
            qk_norm_forward(kn.data(), rstd.data(), k.data(), W.k_norm, 1, KV, D, eps);
            q_in = qn.data();
            k_in = kn.data();
        }
        std::vector<T> q_rope(H * D);
        rope_forward(q_rope.data(), q_in, cos_p, sin_p, 1, 1, H, D);
        rope_forward(k_[l].data() + size_t(pos) * KV * D, k_in, cos_p, sin_p, 1, 1, KV, D);
        // One query per head over the cached positions 0..pos.
        const Acc scale = 1.0 / std::sqrt(Acc(D));
        std::vector<Acc> s(pos + 1);
        for (int hd = 0; hd < H; ++hd) {
            const int g = hd / group;
            Acc mx = -INFINITY;
            for (int j = 0; j <= pos; ++j) {
                const T* kj = k_[l].data() + (size_t(j) * KV + g) * D;
                Acc dot = 0;
                for (int d = 0; d < D; ++d) dot += Acc(q_rope[hd * D + d]) * kj[d];
                s[j] = dot * scale;
                mx = std::max(mx, s[j]);
            }
            Acc sum = 0;
            for (int j = 0; j <= pos; ++j) sum += (s[j] = std::exp(s[j] - mx));
            for (int d = 0; d < D; ++d) {
                Acc o = 0;
                for (int j = 0; j <= pos; ++j) o += s[j] / sum * v_[l][(size_t(j) * KV + g) * D + d];
                att[hd * D + d] = T(o);
            }
        }
        linear_forward(tmp.data(), att.data(), W.wo, W.bo, 1, H * D, C);
        for (int i = 0; i < C; ++i) x[i] += tmp[i];
        rmsnorm_forward(h.data(), rstd.data(), x.data(), W.mlp_norm, 1, C, eps);
        linear_forward(gate.data(), h.data(), W.w_gate, W.b_gate, 1, C, F);
        linear_forward(up.data(), h.data(), W.w_up, W.b_up, 1, C, F);
        swiglu_forward(act.data(), gate.data(), up.data(), F);
        linear_forward(tmp.data(), act.data(), W.w_down, W.b_down, 1, F, C);
        for (int i = 0; i < C; ++i) x[i] += tmp[i];
    }
    rmsnorm_forward(h.data(), rstd.data(), x.data(), w.final_norm, 1, C, eps);
    std::vector<T> logits(V);
    linear_forward(logits.data(), h.data(), w.lm_head, static_cast<const T*>(nullptr), 1, C, V);
    ++length_;
    return logits;
}

template <typename T>
int sample_token(const std::vector<T>& logits, const Sampling& s, Rng& rng) {
    const int V = int(logits.size());
    if (s.temperature <= 0) return int(std::max_element(logits.begin(), logits.end()) - logits.begin());
    std::vector<int> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    int keep = (s.top_k > 0 && s.top_k < V) ? s.top_k : V;
    std::vector<double> p(keep);
    const double mx = double(logits[order[0]]);
    double sum = 0;
    for (int i = 0; i < keep; ++i) sum += (p[i] = std::exp((double(logits[order[i]]) - mx) / s.temperature));
    if (s.top_p < 1.0) {
        double cum = 0;
        int n = 0;
        while (n < keep) {
            cum += p[n] / sum;
            ++n;
            if (cum >= s.top_p) break;
        }
        keep = n;
        sum = std::accumulate(p.begin(), p.begin() + keep, 0.0);
    }
    double u = rng.uniform() * sum;
    for (int i = 0; i < keep; ++i) {
        u -= p[i];
        if (u < 0) return order[i];
    }
    return order[keep - 1];
}

template <typename T>
std::vector<int> generate(const ModelConfig& config, const ModelWeights<T>& w, const std::vector<int>& prompt, int n,
                          const Sampling& s, uint64_t seed, int stop) {
    if (prompt.empty()) throw std::invalid_argument("generate: the prompt is empty");
    KvCache<T> cache(config, std::min<int>(config.max_seq_len, int(prompt.size()) + n));
    std::vector<T> logits;
    for (int t : prompt) logits = cache.step(w, t);
    Rng rng(seed);
    std::vector<int> out;
    for (int i = 0; i < n; ++i) {
        int next = sample_token(logits, s, rng);
        out.push_back(next);
        if (next == stop || cache.length() == cache.capacity()) break;
        logits = cache.step(w, next);
    }
    return out;
}

template class KvCache<float>;
template class KvCache<double>;
template int sample_token(const std::vector<float>&, const Sampling&, Rng&);
template int sample_token(const std::vector<double>&, const Sampling&, Rng&);
template std::vector<int> generate(const ModelConfig&, const ModelWeights<float>&, const std::vector<int>&, int,
                                   const Sampling&, uint64_t, int);
template std::vector<int> generate(const ModelConfig&, const ModelWeights<double>&, const std::vector<int>&, int,
                                   const Sampling&, uint64_t, int);

}  // namespace llama::ref
