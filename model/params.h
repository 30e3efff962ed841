// Parameters as named tensors in one flat buffer. The layout (names, shapes,
// offsets, weight-decay flags) is derived from the config alone, so every build
// agrees on where each tensor lives; the names are Hugging Face's, so export and
// import need no table of magic indices.
#ifndef MODEL_PARAMS_H
#define MODEL_PARAMS_H

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/config.h"

namespace llama {

enum class ParamKind { Embedding, Matrix, Norm, Bias };

struct ParamTensor {
    std::string name;            // e.g. "model.layers.3.self_attn.q_proj.weight"
    std::vector<int64_t> shape;  // row-major; linear weights are [out, in]
    int64_t offset = 0;          // in elements, from the start of the buffer
    int64_t numel = 0;
    ParamKind kind = ParamKind::Matrix;
    bool decay = true;  // AdamW weight decay applies (not to norms and biases)
    int layer = -1;     // -1 for tensors outside the layer stack
};

class ParamLayout {
public:
    explicit ParamLayout(const ModelConfig& config);
    const std::vector<ParamTensor>& tensors() const { return tensors_; }
    int64_t total() const { return total_; }
    bool has(const std::string& name) const { return index_.count(name) != 0; }
    // Throws std::out_of_range naming the tensor when it does not exist.
    const ParamTensor& find(const std::string& name) const;

private:
    void add(const std::string& name, std::vector<int64_t> shape, ParamKind kind, int layer);
    std::vector<ParamTensor> tensors_;
    std::map<std::string, size_t> index_;
    int64_t total_ = 0;
};

// Typed views of one layer's tensors inside a flat buffer; absent tensors
// (biases or QK-norm switched off) are nullptr.
template <typename T>
struct LayerWeights {
    T* attn_norm = nullptr;  // [C]
    T* wq = nullptr;
    T* bq = nullptr;  // [H*D, C], [H*D]
    T* wk = nullptr;
    T* bk = nullptr;  // [KV*D, C], [KV*D]
    T* wv = nullptr;
    T* bv = nullptr;  // [KV*D, C], [KV*D]
    T* q_norm = nullptr;
    T* k_norm = nullptr;  // [D] each (QK-norm)
    T* wo = nullptr;
    T* bo = nullptr;        // [C, H*D], [C]
    T* mlp_norm = nullptr;  // [C]
    T* w_gate = nullptr;
    T* b_gate = nullptr;  // [F, C], [F]
    T* w_up = nullptr;
    T* b_up = nullptr;  // [F, C], [F]
    T* w_down = nullptr;
    T* b_down = nullptr;  // [C, F], [C]
};

template <typename T>
struct ModelWeights {
    T* embed = nullptr;  // [V, C]
    std::vector<LayerWeights<T>> layers;
    T* final_norm = nullptr;  // [C]
    T* lm_head = nullptr;     // [V, C]; the same pointer as embed when tied
};

// Points the views into `base`, a buffer of layout.total() elements. The same
// call binds parameters, gradients or optimizer moments.
template <typename T>
ModelWeights<T> bind_weights(const ModelConfig& config, const ParamLayout& layout, T* base) {
    auto at = [&](const std::string& name) -> T* {
        return layout.has(name) ? base + layout.find(name).offset : nullptr;
    };
    ModelWeights<T> w;
    w.embed = at("model.embed_tokens.weight");
    w.final_norm = at("model.norm.weight");
    w.lm_head = config.tied_embeddings ? w.embed : at("lm_head.weight");
    for (int l = 0; l < config.n_layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        LayerWeights<T> L;
        L.attn_norm = at(p + "input_layernorm.weight");
        L.wq = at(p + "self_attn.q_proj.weight");
        L.bq = at(p + "self_attn.q_proj.bias");
        L.wk = at(p + "self_attn.k_proj.weight");
        L.bk = at(p + "self_attn.k_proj.bias");
        L.wv = at(p + "self_attn.v_proj.weight");
        L.bv = at(p + "self_attn.v_proj.bias");
        L.q_norm = at(p + "self_attn.q_norm.weight");
        L.k_norm = at(p + "self_attn.k_norm.weight");
        L.wo = at(p + "self_attn.o_proj.weight");
        L.bo = at(p + "self_attn.o_proj.bias");
        L.mlp_norm = at(p + "post_attention_layernorm.weight");
        L.w_gate = at(p + "mlp.gate_proj.weight");
        L.b_gate = at(p + "mlp.gate_proj.bias");
        L.w_up = at(p + "mlp.up_proj.weight");
        L.b_up = at(p + "mlp.up_proj.bias");
        L.w_down = at(p + "mlp.down_proj.weight");
        L.b_down = at(p + "mlp.down_proj.bias");
        w.layers.push_back(L);
    }
    return w;
}

// Initialises parameters as the reference recipes do: weight matrices and the
// embedding ~ N(0, init_std^2), the residual projections (o_proj, down_proj)
// scaled by 1/sqrt(2 * n_layers) as in GPT-2, norms to 1, biases to 0. The
// result depends only on the config and the seed (same on every machine).
void init_weights(const ModelConfig& config, const ParamLayout& layout, float* params, uint64_t seed);

// Human-readable parameter count, e.g. "361.82M".
std::string format_count(int64_t n);

}  // namespace llama

#endif  // MODEL_PARAMS_H
