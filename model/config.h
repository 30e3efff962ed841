// The model definition shared by every build: the architecture hyper-parameters
// of a Llama-style decoder, the named presets, and reading a Hugging Face
// config.json. Plain C++; nothing here knows about CUDA.
#ifndef MODEL_CONFIG_H
#define MODEL_CONFIG_H

#include <cstdint>
#include <string>
#include <vector>

namespace llama {

// Llama-3.1-style RoPE frequency scaling ("rope_type": "llama3" in Hugging Face).
struct RopeScaling {
    bool enabled = false;
    float factor = 8.0f;
    float low_freq_factor = 1.0f;
    float high_freq_factor = 4.0f;
    int original_max_position = 8192;
};

struct ModelConfig {
    std::string name = "custom";
    int vocab_size = 0;
    int hidden = 0;  // model width (d_model)
    int n_layers = 0;
    int n_heads = 0;     // query heads
    int n_kv_heads = 0;  // key/value heads; n_heads must be a multiple (grouped-query attention)
    int head_dim = 0;    // usually hidden / n_heads
    int ffn_hidden = 0;  // SwiGLU inner width
    int max_seq_len = 0;
    float norm_eps = 1e-5f;  // RMSNorm epsilon
    float rope_theta = 10000.0f;
    RopeScaling rope_scaling;
    bool tied_embeddings = true;  // LM head shares the token embedding
    bool qk_norm = false;         // RMSNorm over each head of q and k, before RoPE
    bool bias = false;            // biases in every linear layer (q, k, v, o, gate, up, down)
    float init_std = 0.02f;       // std of the normal init of weight matrices

    // Throws std::invalid_argument naming the field and what is wrong.
    void validate() const;
    // One line per field, for logs.
    std::string describe() const;
    // Names the first field that differs ("" when equal); used to refuse a resume
    // with another model.
    std::string first_difference(const ModelConfig& other) const;
};

// Presets, selectable by name (see preset_names()). Throws std::invalid_argument
// listing the known names when `name` is unknown.
ModelConfig preset(const std::string& name);
std::vector<std::string> preset_names();

// Reads the architecture part of a Hugging Face Llama config.json (LlamaForCausalLM,
// or OpenSciForCausalLM: its qk_layernorm is QK-norm).
// Throws std::runtime_error naming the file and the field on bad input.
ModelConfig config_from_hf_json(const std::string& path);
// The same from the file's text; `path` names it in messages.
ModelConfig config_from_hf_json_text(const std::string& text, const std::string& path);

// The config as JSON (for checkpoints) and back; the reader names `origin` and
// the field on bad input (std::runtime_error).
std::string config_to_json(const ModelConfig& c);
ModelConfig config_from_json(const std::string& json_text, const std::string& origin);

// Parameter count from the closed formula (independent of the tensor layout).
int64_t parameter_count_formula(const ModelConfig& c);

}  // namespace llama

#endif  // MODEL_CONFIG_H
