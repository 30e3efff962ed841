// The CPU reference ops of a Llama training step, forward and backward, written
// to be read next to the math. Every CUDA kernel is checked against these.
//
// Each op is a template on the scalar type: float is the fp32 reference the
// kernels and the CPU trainer use; double is used by the finite-difference tests.
// Layouts are row-major and token-major: N = B*T rows of activations, q as
// [B, T, n_heads, head_dim], k and v as [B, T, n_kv_heads, head_dim].
// Backward functions ADD into their gradient outputs (the caller zeroes them),
// so gradients of tied or reused tensors accumulate naturally.
// Sums and dot products accumulate in double (Acc) whatever T is, so that the
// fp32 reference is as close to exact as fp32 storage allows.
#ifndef REFERENCE_OPS_H
#define REFERENCE_OPS_H

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/config.h"

namespace llama::ref {

using Acc = double;

// ---------------------------------------------------------------------------
// Token embedding: out[n, :] = wte[tokens[n], :]
// ---------------------------------------------------------------------------
template <typename T>
void embedding_forward(T* out, const int* tokens, const T* wte, int64_t N, int C) {
    for (int64_t n = 0; n < N; ++n)
        for (int c = 0; c < C; ++c) out[n * C + c] = wte[int64_t(tokens[n]) * C + c];
}

template <typename T>
void embedding_backward(T* dwte, const T* dout, const int* tokens, int64_t N, int C) {
    for (int64_t n = 0; n < N; ++n)
        for (int c = 0; c < C; ++c) dwte[int64_t(tokens[n]) * C + c] += dout[n * C + c];
}

// ---------------------------------------------------------------------------
// RMSNorm over rows of length C: out = x * rstd * w,  rstd = 1 / sqrt(mean(x^2) + eps)
// ---------------------------------------------------------------------------
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, int64_t N, int C, T eps) {
    for (int64_t n = 0; n < N; ++n) {
        const T* x = inp + n * C;
        Acc sum_sq = 0;
        for (int c = 0; c < C; ++c) sum_sq += Acc(x[c]) * x[c];
        T r = T(1.0 / std::sqrt(sum_sq / C + Acc(eps)));
        for (int c = 0; c < C; ++c) out[n * C + c] = x[c] * r * weight[c];
        rstd[n] = r;
    }
}

// With g = w * dy:  dx = r * g - r^3 / C * x * sum(g * x),   dw += dy * x * r
template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd, int64_t N,
                      int C) {
    for (int64_t n = 0; n < N; ++n) {
        const T* x = inp + n * C;
        const T* dy = dout + n * C;
        const T r = rstd[n];
        Acc dot = 0;  // sum over c of (w * dy) * x
        for (int c = 0; c < C; ++c) dot += Acc(weight[c]) * dy[c] * x[c];
        for (int c = 0; c < C; ++c) {
            dinp[n * C + c] += T(Acc(r) * weight[c] * dy[c] - Acc(r) * r * r / C * x[c] * dot);
            dweight[c] += dy[c] * x[c] * r;
        }
    }
}

// QK-norm: RMSNorm over each head of q (or k) separately, one weight of
// length head_dim shared by all heads. In the [N, heads, head_dim] layout this
// is RMSNorm over N*heads rows of head_dim.
template <typename T>
void qk_norm_forward(T* out, T* rstd, const T* inp, const T* weight, int64_t N, int heads, int head_dim, T eps) {
    rmsnorm_forward(out, rstd, inp, weight, N * heads, head_dim, eps);
}

template <typename T>
void qk_norm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd, int64_t N,
                      int heads, int head_dim) {
    rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N * heads, head_dim);
}

// ---------------------------------------------------------------------------
// Linear layer, Hugging Face convention: out = inp @ W^T + b, W is [OC, IC].
// ---------------------------------------------------------------------------
template <typename T>
void linear_forward(T* out, const T* inp, const T* W, const T* bias, int64_t N, int IC, int OC) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
        const T* x = inp + n * IC;
        for (int o = 0; o < OC; ++o) {
            const T* w = W + int64_t(o) * IC;
            Acc acc = bias ? Acc(bias[o]) : 0.0;
            for (int i = 0; i < IC; ++i) acc += Acc(x[i]) * w[i];
            out[n * OC + o] = T(acc);
        }
    }
}

// dinp += dout @ W,  dW += dout^T @ inp,  dbias += sum over rows of dout.
// dinp may be nullptr when the input needs no gradient, dW (with dbias) when
// only the input's is wanted.
template <typename T>
void linear_backward(T* dinp, T* dW, T* dbias, const T* dout, const T* inp, const T* W, int64_t N, int IC, int OC) {
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < N; ++n) {
            std::vector<Acc> dx(IC, 0.0);
            for (int o = 0; o < OC; ++o) {
                const Acc d = dout[n * OC + o];
                const T* w = W + int64_t(o) * IC;
                for (int i = 0; i < IC; ++i) dx[i] += d * w[i];
            }
            for (int i = 0; i < IC; ++i) dinp[n * IC + i] += T(dx[i]);
        }
    }
    if (!dW) return;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; ++o) {
        std::vector<Acc> dw(IC, 0.0);
        for (int64_t n = 0; n < N; ++n) {
            const Acc d = dout[n * OC + o];
            const T* x = inp + n * IC;
            for (int i = 0; i < IC; ++i) dw[i] += d * x[i];
        }
        for (int i = 0; i < IC; ++i) dW[int64_t(o) * IC + i] += T(dw[i]);
        if (dbias) {
            Acc acc = 0;
            for (int64_t n = 0; n < N; ++n) acc += dout[n * OC + o];
            dbias[o] += T(acc);
        }
    }
}

// ---------------------------------------------------------------------------
// RoPE, Hugging Face / Llama "rotate half" layout: within each head of dim D,
// element i is paired with element i + D/2 and rotated by angle pos * inv_freq[i].
// ---------------------------------------------------------------------------

// Inverse frequencies theta^(-2i/D) for i < D/2, with Llama-3.1 scaling when on:
// long wavelengths are divided by `factor`, short ones kept, those in between
// blended smoothly.
inline std::vector<double> rope_inv_freq(int head_dim, double theta, const RopeScaling& s) {
    std::vector<double> inv(head_dim / 2);
    for (int i = 0; i < head_dim / 2; ++i) inv[i] = 1.0 / std::pow(theta, 2.0 * i / head_dim);
    if (!s.enabled) return inv;
    const double pi = 3.14159265358979323846;
    const double low_freq_wavelen = s.original_max_position / s.low_freq_factor;
    const double high_freq_wavelen = s.original_max_position / s.high_freq_factor;
    for (double& f : inv) {
        double wavelen = 2.0 * pi / f;
        if (wavelen < high_freq_wavelen) continue;  // high frequency: unchanged
        if (wavelen > low_freq_wavelen) {           // low frequency: scaled down
            f = f / s.factor;
        } else {  // in between: interpolate
            double smooth =
                (s.original_max_position / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
            f = (1.0 - smooth) * f / s.factor + smooth * f;
        }
    }
    return inv;
}

// cos and sin tables of shape [T, D/2] for positions 0..T-1.
template <typename T>
void rope_tables(std::vector<T>& cos_table, std::vector<T>& sin_table, int seq_len, int head_dim, double theta,
                 const RopeScaling& scaling) {
    const int half = head_dim / 2;
    std::vector<double> inv = rope_inv_freq(head_dim, theta, scaling);
    cos_table.resize(int64_t(seq_len) * half);
    sin_table.resize(int64_t(seq_len) * half);
    for (int t = 0; t < seq_len; ++t)
        for (int i = 0; i < half; ++i) {
            double angle = t * inv[i];
            cos_table[int64_t(t) * half + i] = T(std::cos(angle));
            sin_table[int64_t(t) * half + i] = T(std::sin(angle));
        }
}

// Documents packed into one sequence (doc_starts, [B, T], may be null): for the
// token at position t of sequence b, doc_starts[b*T + t] is the position where
// its document begins (0 <= it <= t). Null: every sequence is one document.
// Attention never crosses a document's start, and RoPE positions restart at it.

// The RoPE position of token t of sequence b: t, or t - its document's start.
inline int rope_position(const int* doc_starts, int b, int seq_len, int t) {
    return doc_starts ? t - doc_starts[int64_t(b) * seq_len + t] : t;
}

// x is [B, T, H, D]. out[i] = x[i] cos - x[i+D/2] sin;  out[i+D/2] = x[i+D/2] cos + x[i] sin.
template <typename T>
void rope_forward(T* out, const T* inp, const T* cos_table, const T* sin_table, int B, int seq_len, int H, int D,
                  const int* doc_starts = nullptr) {
    const int half = D / 2;
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < seq_len; ++t)
            for (int h = 0; h < H; ++h) {
                const int64_t base = ((int64_t(b) * seq_len + t) * H + h) * D;
                const int64_t pos = rope_position(doc_starts, b, seq_len, t);
                for (int i = 0; i < half; ++i) {
                    T c = cos_table[pos * half + i], s = sin_table[pos * half + i];
                    T x1 = inp[base + i], x2 = inp[base + i + half];
                    out[base + i] = x1 * c - x2 * s;
                    out[base + i + half] = x2 * c + x1 * s;
                }
            }
}

// The rotation is orthogonal: the gradient rotates back by the opposite angle.
template <typename T>
void rope_backward(T* dinp, const T* dout, const T* cos_table, const T* sin_table, int B, int seq_len, int H, int D,
                   const int* doc_starts = nullptr) {
    const int half = D / 2;
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < seq_len; ++t)
            for (int h = 0; h < H; ++h) {
                const int64_t base = ((int64_t(b) * seq_len + t) * H + h) * D;
                const int64_t pos = rope_position(doc_starts, b, seq_len, t);
                for (int i = 0; i < half; ++i) {
                    T c = cos_table[pos * half + i], s = sin_table[pos * half + i];
                    T d1 = dout[base + i], d2 = dout[base + i + half];
                    dinp[base + i] += d1 * c + d2 * s;
                    dinp[base + i + half] += d2 * c - d1 * s;
                }
            }
}

// ---------------------------------------------------------------------------
// Causal grouped-query attention. Query head h reads KV head h / (H / KV).
// q: [B, T, H, D], k and v: [B, T, KV, D], out: [B, T, H, D].
// Query t sees keys j with first <= j <= t, first being its document's start
// (doc_starts, as for RoPE above; 0 without documents).
// probs: [B, H, T, T], the softmax saved for the backward (zero where not seen).
// lse (optional): [B, H, T], the log-sum-exp of each row of scaled scores, which
// the flash-attention kernels keep instead of probs.
// ---------------------------------------------------------------------------
template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v, int B, int seq_len, int H, int KV, int D,
                       T* lse = nullptr, const int* doc_starts = nullptr) {
    const int group = H / KV;
    const Acc scale = 1.0 / std::sqrt(Acc(D));
    auto q_at = [&](int b, int t, int h) { return q + ((int64_t(b) * seq_len + t) * H + h) * D; };
    auto kv_at = [&](const T* base, int b, int t, int g) { return base + ((int64_t(b) * seq_len + t) * KV + g) * D; };
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h) {
            const int g = h / group;
            for (int t = 0; t < seq_len; ++t) {
                T* p = probs + ((int64_t(b) * H + h) * seq_len + t) * seq_len;
                const T* qt = q_at(b, t, h);
                const int first = t - rope_position(doc_starts, b, seq_len, t);
                Acc max_score = -INFINITY;
                std::vector<Acc> e(t + 1, 0.0);
                for (int j = first; j <= t; ++j) {
                    const T* kj = kv_at(k, b, j, g);
                    Acc s = 0;
                    for (int d = 0; d < D; ++d) s += Acc(qt[d]) * kj[d];
                    e[j] = s * scale;
                    if (e[j] > max_score) max_score = e[j];
                }
                Acc sum = 0;
                for (int j = first; j <= t; ++j) {
                    e[j] = std::exp(e[j] - max_score);
                    sum += e[j];
                }
                if (lse) lse[(int64_t(b) * H + h) * seq_len + t] = T(max_score + std::log(sum));
                for (int j = 0; j < seq_len; ++j) p[j] = j >= first && j <= t ? T(e[j] / sum) : T(0);
                std::vector<Acc> o(D, 0.0);
                for (int j = first; j <= t; ++j) {
                    const T* vj = kv_at(v, b, j, g);
                    for (int d = 0; d < D; ++d) o[d] += e[j] / sum * vj[d];
                }
                T* out_t = out + ((int64_t(b) * seq_len + t) * H + h) * D;
                for (int d = 0; d < D; ++d) out_t[d] = T(o[d]);
            }
        }
}

// dv_j += p_j * dout;  dp_j = dout . v_j;  ds_j = p_j (dp_j - sum_i p_i dp_i);
// dq += scale * sum_j ds_j k_j;  dk_j += scale * ds_j q.
// dK/dV accumulate over the query heads of each group. probs is zero where a
// query does not see a key (past it, or before its document), so the sums can
// run over every key up to the query.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* probs, int B,
                        int seq_len, int H, int KV, int D) {
    const int group = H / KV;
    const Acc scale = 1.0 / std::sqrt(Acc(D));
    std::vector<Acc> dp(seq_len), dq_acc(D);
    auto at = [&](const T* base, int heads, int b, int t, int h) {
        return base + ((int64_t(b) * seq_len + t) * heads + h) * D;
    };
    auto at_mut = [&](T* base, int heads, int b, int t, int h) {
        return base + ((int64_t(b) * seq_len + t) * heads + h) * D;
    };
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h) {
            const int g = h / group;
            for (int t = 0; t < seq_len; ++t) {
                const T* p = probs + ((int64_t(b) * H + h) * seq_len + t) * seq_len;
                const T* dy = at(dout, H, b, t, h);
                const T* qt = at(q, H, b, t, h);
                Acc weighted = 0;  // sum_j p_j dp_j
                for (int j = 0; j <= t; ++j) {
                    const T* vj = at(v, KV, b, j, g);
                    T* dvj = at_mut(dv, KV, b, j, g);
                    Acc s = 0;
                    for (int d = 0; d < D; ++d) {
                        s += Acc(dy[d]) * vj[d];
                        dvj[d] += p[j] * dy[d];
                    }
                    dp[j] = s;
                    weighted += p[j] * s;
                }
                std::fill(dq_acc.begin(), dq_acc.end(), 0.0);
                for (int j = 0; j <= t; ++j) {
                    const Acc ds = p[j] * (dp[j] - weighted) * scale;
                    const T* kj = at(k, KV, b, j, g);
                    T* dkj = at_mut(dk, KV, b, j, g);
                    for (int d = 0; d < D; ++d) {
                        dq_acc[d] += ds * kj[d];
                        dkj[d] += T(ds * qt[d]);
                    }
                }
                T* dqt = at_mut(dq, H, b, t, h);
                for (int d = 0; d < D; ++d) dqt[d] += T(dq_acc[d]);
            }
        }
}

// ---------------------------------------------------------------------------
// SwiGLU: out = silu(gate) * up,  silu(x) = x * sigmoid(x).
// ---------------------------------------------------------------------------
template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        T sig = T(1) / (T(1) + std::exp(-gate[i]));
        out[i] = gate[i] * sig * up[i];
    }
}

// d silu(x)/dx = sig * (1 + x * (1 - sig))
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        T sig = T(1) / (T(1) + std::exp(-gate[i]));
        T silu = gate[i] * sig;
        dgate[i] += dout[i] * up[i] * sig * (T(1) + gate[i] * (T(1) - sig));
        dup[i] += dout[i] * silu;
    }
}

// ---------------------------------------------------------------------------
// Cross-entropy over logits [N, V]; targets equal to ignore_index do not count.
// Returns the mean loss over counted rows (0 when none counts) and stores the
// softmax in probs for the backward.
// ---------------------------------------------------------------------------
template <typename T>
T cross_entropy_forward(T* probs, const T* logits, const int* targets, int64_t N, int V, int ignore_index,
                        int64_t* counted = nullptr) {
    Acc total = 0;
    int64_t count = 0;
    for (int64_t n = 0; n < N; ++n) {
        const T* z = logits + n * V;
        T* p = probs + n * V;
        Acc max_z = z[0];
        for (int i = 1; i < V; ++i) max_z = z[i] > max_z ? Acc(z[i]) : max_z;
        Acc sum = 0;
        for (int i = 0; i < V; ++i) sum += std::exp(z[i] - max_z);
        for (int i = 0; i < V; ++i) p[i] = T(std::exp(z[i] - max_z) / sum);
        if (targets[n] == ignore_index) continue;
        total += -(z[targets[n]] - max_z - std::log(sum));  // -log softmax, computed stably
        ++count;
    }
    if (counted) *counted = count;
    return count > 0 ? T(total / Acc(count)) : T(0);
}

// dlogits = (probs - onehot(target)) / counted, zero for ignored rows. Overwrites.
template <typename T>
void cross_entropy_backward(T* dlogits, const T* probs, const int* targets, int64_t N, int V, int ignore_index,
                            int64_t counted) {
    const T inv = counted > 0 ? T(1) / T(counted) : T(0);
    for (int64_t n = 0; n < N; ++n) {
        T* d = dlogits + n * V;
        const T* p = probs + n * V;
        if (targets[n] == ignore_index) {
            for (int i = 0; i < V; ++i) d[i] = 0;
            continue;
        }
        for (int i = 0; i < V; ++i) d[i] = p[i] * inv;
        d[targets[n]] -= inv;
    }
}

// ---------------------------------------------------------------------------
// Optimizer: global gradient norm, clipping scale, AdamW.
// ---------------------------------------------------------------------------
template <typename T>
double grad_norm_squared(const T* grad, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += double(grad[i]) * double(grad[i]);
    return s;
}

// Checks a batch's token ids and targets against the vocabulary (a target of
// ignore_index does not count) and returns how many targets count. Throws
// std::invalid_argument naming the position and the id.
inline int64_t check_batch(const int* tokens, const int* targets, int64_t N, int vocab, int ignore_index) {
    int64_t counted = 0;
    for (int64_t n = 0; n < N; ++n) {
        if (tokens[n] < 0 || tokens[n] >= vocab)
            throw std::invalid_argument("forward: token id " + std::to_string(tokens[n]) + " at position " +
                                        std::to_string(n) + " is outside the vocabulary of " + std::to_string(vocab));
        if (targets[n] != ignore_index && (targets[n] < 0 || targets[n] >= vocab))
            throw std::invalid_argument("forward: target id " + std::to_string(targets[n]) + " at position " +
                                        std::to_string(n) + " is outside the vocabulary of " + std::to_string(vocab));
        counted += targets[n] != ignore_index;
    }
    return counted;
}

// Checks a batch's document starts (see rope_position; null passes): each
// entry is its own position (a document starts there) or the entry before
// it, and a sequence's first entry is 0. Throws std::invalid_argument naming
// the sequence and position.
inline void check_doc_starts(const int* doc_starts, int B, int seq_len) {
    if (!doc_starts) return;
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < seq_len; ++t) {
            const int s = doc_starts[int64_t(b) * seq_len + t];
            const bool ok = s == t || (t > 0 && s == doc_starts[int64_t(b) * seq_len + t - 1]);
            if (!ok)
                throw std::invalid_argument("forward: document start " + std::to_string(s) + " of sequence " +
                                            std::to_string(b) + ", position " + std::to_string(t) +
                                            " is neither the position nor the start before it");
        }
}

// The factor that brings the global norm down to max_norm (1 when already below,
// or when clipping is off with max_norm <= 0). Same rule as torch's clip_grad_norm_.
inline double clip_scale(double norm, double max_norm) {
    if (max_norm <= 0) return 1.0;
    double s = max_norm / (norm + 1e-6);
    return s < 1.0 ? s : 1.0;
}

struct AdamWHyper {
    double lr = 3e-4;
    double beta1 = 0.9;
    double beta2 = 0.95;
    double eps = 1e-8;
    double weight_decay = 0.1;
};

// One AdamW step (decoupled weight decay, bias correction) on n elements.
// `step` counts from 1; `grad_scale` multiplies the gradient first (clipping);
// `decay` says whether weight decay applies to this tensor.
template <typename T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, const AdamWHyper& h, int step, double grad_scale,
                  bool decay) {
    const double bc1 = 1.0 - std::pow(h.beta1, step);
    const double bc2 = 1.0 - std::pow(h.beta2, step);
    const double wd = decay ? h.weight_decay : 0.0;
    for (int64_t i = 0; i < n; ++i) {
        double g = double(grad[i]) * grad_scale;
        double mi = h.beta1 * double(m[i]) + (1.0 - h.beta1) * g;
        double vi = h.beta2 * double(v[i]) + (1.0 - h.beta2) * g * g;
        double p = double(param[i]) * (1.0 - h.lr * wd);
        p -= h.lr * (mi / bc1) / (std::sqrt(vi / bc2) + h.eps);
        m[i] = T(mi);
        v[i] = T(vi);
        param[i] = T(p);
    }
}

}  // namespace llama::ref

#endif  // REFERENCE_OPS_H
