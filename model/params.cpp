#include "model/params.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "model/rng.h"

namespace llama {

ParamLayout::ParamLayout(const ModelConfig& c) {
    c.validate();
    const int64_t C = c.hidden, V = c.vocab_size, F = c.ffn_hidden, D = c.head_dim;
    const int64_t Dq = c.n_heads * D, Dkv = c.n_kv_heads * D;
    add("model.embed_tokens.weight", {V, C}, ParamKind::Embedding, -1);
    for (int l = 0; l < c.n_layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        add(p + "input_layernorm.weight", {C}, ParamKind::Norm, l);
        // Projections that read the same input are stored side by side, weights
        // then biases: q, k, v and gate, up. The GPU multiplies each group as one
        // fused matrix ([q; k; v] is [(H + 2 KV) D, C]) with no copy.
        auto linears = [&](std::vector<std::pair<std::string, int64_t>> outs, int64_t in) {
            for (const auto& [name, out] : outs) add(p + name + ".weight", {out, in}, ParamKind::Matrix, l);
            if (c.bias)
                for (const auto& [name, out] : outs) add(p + name + ".bias", {out}, ParamKind::Bias, l);
        };
        linears({{"self_attn.q_proj", Dq}, {"self_attn.k_proj", Dkv}, {"self_attn.v_proj", Dkv}}, C);
        if (c.qk_norm) {
            add(p + "self_attn.q_norm.weight", {D}, ParamKind::Norm, l);
            add(p + "self_attn.k_norm.weight", {D}, ParamKind::Norm, l);
        }
        linears({{"self_attn.o_proj", C}}, Dq);
        add(p + "post_attention_layernorm.weight", {C}, ParamKind::Norm, l);
        linears({{"mlp.gate_proj", F}, {"mlp.up_proj", F}}, C);
        linears({{"mlp.down_proj", C}}, F);
    }
    add("model.norm.weight", {C}, ParamKind::Norm, -1);
    if (!c.tied_embeddings) add("lm_head.weight", {V, C}, ParamKind::Matrix, -1);
}

void ParamLayout::add(const std::string& name, std::vector<int64_t> shape, ParamKind kind, int layer) {
    ParamTensor t;
    t.name = name;
    t.shape = std::move(shape);
    t.numel = 1;
    for (int64_t s : t.shape) t.numel *= s;
    t.offset = total_;
    t.kind = kind;
    t.decay = (kind == ParamKind::Matrix || kind == ParamKind::Embedding);
    t.layer = layer;
    index_[name] = tensors_.size();
    tensors_.push_back(t);
    total_ += t.numel;
}

const ParamTensor& ParamLayout::find(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw std::out_of_range("no parameter tensor named '" + name + "'");
    return tensors_[it->second];
}

static bool is_residual_projection(const std::string& name) {
    auto ends_with = [&](const char* s) {
        std::string suffix(s);
        return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    return ends_with("self_attn.o_proj.weight") || ends_with("mlp.down_proj.weight");
}

void init_weights(const ModelConfig& c, const ParamLayout& layout, float* params, uint64_t seed) {
    const double residual_scale = 1.0 / std::sqrt(2.0 * c.n_layers);
    for (size_t i = 0; i < layout.tensors().size(); ++i) {
        const ParamTensor& t = layout.tensors()[i];
        float* p = params + t.offset;
        // Each tensor gets its own stream, so adding a tensor never shifts the others.
        Rng rng(seed * 1000003ull + i);
        switch (t.kind) {
            case ParamKind::Norm:
                for (int64_t k = 0; k < t.numel; ++k) p[k] = 1.0f;
                break;
            case ParamKind::Bias:
                for (int64_t k = 0; k < t.numel; ++k) p[k] = 0.0f;
                break;
            case ParamKind::Embedding:
            case ParamKind::Matrix: {
                double std = c.init_std * (is_residual_projection(t.name) ? residual_scale : 1.0);
                for (int64_t k = 0; k < t.numel; ++k) p[k] = float(std * rng.normal());
                break;
            }
        }
    }
}

std::string format_count(int64_t n) {
    char buf[32];
    if (n >= 1000000000) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
    else if (n >= 1000000) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
    else if (n >= 1000) std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
    else std::snprintf(buf, sizeof buf, "%lld", (long long)n);
    return buf;
}

}  // namespace llama
