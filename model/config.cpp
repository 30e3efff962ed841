#include "model/config.h"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace llama {

void ModelConfig::validate() const {
    auto fail = [&](const std::string& what) { throw std::invalid_argument("model config '" + name + "': " + what); };
    auto positive = [&](const char* field, long v) {
        if (v <= 0) fail(std::string(field) + " must be positive (got " + std::to_string(v) + ")");
    };
    positive("vocab_size", vocab_size);
    positive("hidden", hidden);
    positive("n_layers", n_layers);
    positive("n_heads", n_heads);
    positive("n_kv_heads", n_kv_heads);
    positive("head_dim", head_dim);
    positive("ffn_hidden", ffn_hidden);
    positive("max_seq_len", max_seq_len);
    if (n_heads % n_kv_heads != 0)
        fail("n_heads (" + std::to_string(n_heads) + ") must be a multiple of n_kv_heads (" +
             std::to_string(n_kv_heads) + ")");
    if (head_dim % 2 != 0) fail("head_dim must be even for RoPE (got " + std::to_string(head_dim) + ")");
    if (!(norm_eps > 0.0f)) fail("norm_eps must be positive");
    if (!(rope_theta > 0.0f)) fail("rope_theta must be positive");
    if (!(init_std > 0.0f)) fail("init_std must be positive");
    if (rope_scaling.enabled) {
        if (!(rope_scaling.factor >= 1.0f)) fail("rope_scaling.factor must be >= 1");
        if (!(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor))
            fail("rope_scaling.high_freq_factor must exceed low_freq_factor");
        if (rope_scaling.original_max_position <= 0) fail("rope_scaling.original_max_position must be positive");
    }
}

std::string ModelConfig::describe() const {
    std::ostringstream s;
    s << "model " << name << ": vocab " << vocab_size << ", hidden " << hidden << ", layers " << n_layers << ", heads "
      << n_heads << " (kv " << n_kv_heads << ", dim " << head_dim << "), ffn " << ffn_hidden << ", max seq "
      << max_seq_len << ", eps " << norm_eps << ", rope theta " << rope_theta;
    if (rope_scaling.enabled)
        s << " (llama3 scaling x" << rope_scaling.factor << ", low " << rope_scaling.low_freq_factor << ", high "
          << rope_scaling.high_freq_factor << ", original " << rope_scaling.original_max_position << ")";
    s << ", " << (tied_embeddings ? "tied" : "untied") << " embeddings" << (qk_norm ? ", qk-norm" : "")
      << (bias ? ", biases" : "");
    return s.str();
}

std::string ModelConfig::first_difference(const ModelConfig& o) const {
    std::ostringstream s;
#define LLAMA_CMP(field)                                                       \
    if (field != o.field) {                                                    \
        s << #field << " is " << field << " here but " << o.field << " there"; \
        return s.str();                                                        \
    }
    // clang-format off
    LLAMA_CMP(vocab_size)
    LLAMA_CMP(hidden)
    LLAMA_CMP(n_layers)
    LLAMA_CMP(n_heads)
    LLAMA_CMP(n_kv_heads)
    LLAMA_CMP(head_dim)
    LLAMA_CMP(ffn_hidden)
    LLAMA_CMP(norm_eps)
    LLAMA_CMP(rope_theta)
    LLAMA_CMP(rope_scaling.enabled)
    LLAMA_CMP(rope_scaling.factor)
    LLAMA_CMP(rope_scaling.low_freq_factor)
    LLAMA_CMP(rope_scaling.high_freq_factor)
    LLAMA_CMP(rope_scaling.original_max_position)
    LLAMA_CMP(tied_embeddings)
    LLAMA_CMP(qk_norm)
    LLAMA_CMP(bias)
    // clang-format on
#undef LLAMA_CMP
    return "";
}

namespace {

ModelConfig make(const char* name, int vocab, int hidden, int layers, int heads, int kv_heads, int ffn, int seq) {
    ModelConfig c;
    c.name = name;
    c.vocab_size = vocab;
    c.hidden = hidden;
    c.n_layers = layers;
    c.n_heads = heads;
    c.n_kv_heads = kv_heads;
    c.head_dim = hidden / heads;
    c.ffn_hidden = ffn;
    c.max_seq_len = seq;
    return c;
}

// open-sci-ref baselines: QK-norm, biases in every linear layer, SwiGLU, tied
// embeddings, GPT-NeoX vocabulary padded to 50304, full multi-head attention.
ModelConfig open_sci_ref(const char* name, int layers, int hidden, int heads, int ffn) {
    ModelConfig c = make(name, 50304, hidden, layers, heads, heads, ffn, 4096);
    c.qk_norm = true;
    c.bias = true;
    return c;
}

std::map<std::string, ModelConfig> all_presets() {
    std::map<std::string, ModelConfig> p;
    // Llama-3.2-style 0.4B model of the Zagreus recipe.
    ModelConfig z = make("zagreus-0.4b", 128256, 960, 32, 15, 5, 2560, 4096);
    z.init_std = 0.02f;
    p[z.name] = z;

    p["osr-0.13b"] = open_sci_ref("osr-0.13b", 22, 512, 8, 2256);
    p["osr-0.4b"] = open_sci_ref("osr-0.4b", 22, 1024, 16, 3840);
    p["osr-1.3b"] = open_sci_ref("osr-1.3b", 24, 2048, 32, 5440);
    p["osr-1.7b"] = open_sci_ref("osr-1.7b", 24, 2048, 32, 8192);

    // Meta's Llama-3.2-1B architecture (as in its config.json).
    ModelConfig l = make("llama-3.2-1b", 128256, 2048, 16, 32, 8, 8192, 131072);
    l.rope_theta = 500000.0f;
    l.rope_scaling.enabled = true;
    l.rope_scaling.factor = 32.0f;
    l.rope_scaling.low_freq_factor = 1.0f;
    l.rope_scaling.high_freq_factor = 4.0f;
    l.rope_scaling.original_max_position = 8192;
    p[l.name] = l;

    // Small enough to train on a CPU in minutes; byte-level vocabulary. Heads of
    // 64 as in the large presets (the GPU attention kernels take 64 and 128), two
    // query heads over one KV head in `tiny` (grouped-query attention).
    p["tiny"] = make("tiny", 256, 128, 2, 2, 1, 352, 256);
    ModelConfig t = make("tiny-osr", 256, 128, 2, 2, 2, 352, 256);
    t.qk_norm = true;
    t.bias = true;
    p[t.name] = t;
    return p;
}

}  // namespace

std::vector<std::string> preset_names() {
    std::vector<std::string> names;
    for (const auto& kv : all_presets()) names.push_back(kv.first);
    return names;
}

ModelConfig preset(const std::string& name) {
    auto presets = all_presets();
    auto it = presets.find(name);
    if (it == presets.end()) {
        std::string known;
        for (const auto& kv : presets) known += (known.empty() ? "" : ", ") + kv.first;
        throw std::invalid_argument("unknown preset '" + name + "' (known: " + known + ")");
    }
    it->second.validate();
    return it->second;
}

namespace {

// Numbers from JSON, checked before conversion: a value that is not a number of
// the right kind, or does not fit, is an error naming the field (a plain
// nlohmann get<int> of 1e300 would be undefined behaviour).
int json_int(const nlohmann::json& v, const std::string& field) {
    if (!v.is_number_integer())
        throw std::runtime_error("field '" + field + "' must be an integer (got " + v.dump() + ")");
    if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(INT32_MAX)
                               : (v.get<int64_t>() > INT32_MAX || v.get<int64_t>() < INT32_MIN))
        throw std::runtime_error("field '" + field + "' is out of range (" + v.dump() + ")");
    return int(v.get<int64_t>());
}

float json_float(const nlohmann::json& v, const std::string& field) {
    if (!v.is_number()) throw std::runtime_error("field '" + field + "' must be a number (got " + v.dump() + ")");
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > 3.0e38)
        throw std::runtime_error("field '" + field + "' is out of range (" + v.dump() + ")");
    return float(d);
}

bool json_bool(const nlohmann::json& v, const std::string& field) {
    if (!v.is_boolean()) throw std::runtime_error("field '" + field + "' must be true or false (got " + v.dump() + ")");
    return v.get<bool>();
}

int opt_int(const nlohmann::json& j, const char* key, int fallback) {
    return j.contains(key) && !j[key].is_null() ? json_int(j[key], key) : fallback;
}
float opt_float(const nlohmann::json& j, const char* key, float fallback) {
    return j.contains(key) && !j[key].is_null() ? json_float(j[key], key) : fallback;
}
bool opt_bool(const nlohmann::json& j, const char* key, bool fallback) {
    return j.contains(key) && !j[key].is_null() ? json_bool(j[key], key) : fallback;
}

}  // namespace

ModelConfig config_from_hf_json(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path + ": cannot open Hugging Face config");
    std::stringstream text;
    text << in.rdbuf();
    return config_from_hf_json_text(text.str(), path);
}

ModelConfig config_from_hf_json_text(const std::string& text, const std::string& path) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const std::exception& e) {
        throw std::runtime_error(path + ": not valid JSON: " + e.what());
    }
    if (!j.is_object()) throw std::runtime_error(path + ": not a JSON object");
    auto need = [&](const char* key) -> const nlohmann::json& {
        if (!j.contains(key)) throw std::runtime_error(path + ": missing field '" + key + "'");
        return j.at(key);
    };
    ModelConfig c;
    try {
        // OpenSciForCausalLM (lifecycle/hf/modeling_opensci.py): Llama with QK-norm
        // when qk_layernorm is true.
        bool opensci = false;
        if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()) {
            std::string arch = j["architectures"][0].get<std::string>();
            opensci = arch == "OpenSciForCausalLM";
            if (arch != "LlamaForCausalLM" && !opensci)
                throw std::runtime_error("architecture '" + arch + "' is not LlamaForCausalLM or OpenSciForCausalLM");
        }
        if (j.contains("model_type") && j["model_type"] == "opensci") opensci = true;
        c.name = path;
        c.vocab_size = json_int(need("vocab_size"), "vocab_size");
        c.hidden = json_int(need("hidden_size"), "hidden_size");
        c.n_layers = json_int(need("num_hidden_layers"), "num_hidden_layers");
        c.n_heads = json_int(need("num_attention_heads"), "num_attention_heads");
        c.n_kv_heads = opt_int(j, "num_key_value_heads", c.n_heads);
        if (j.contains("head_dim") && !j["head_dim"].is_null()) c.head_dim = json_int(j["head_dim"], "head_dim");
        else c.head_dim = c.n_heads > 0 ? c.hidden / c.n_heads : 0;
        c.ffn_hidden = json_int(need("intermediate_size"), "intermediate_size");
        c.max_seq_len = opt_int(j, "max_position_embeddings", 2048);
        c.norm_eps = opt_float(j, "rms_norm_eps", 1e-6f);
        c.rope_theta = opt_float(j, "rope_theta", 10000.0f);
        c.tied_embeddings = opt_bool(j, "tie_word_embeddings", false);  // LlamaConfig's default
        bool attention_bias = opt_bool(j, "attention_bias", false);
        bool mlp_bias = opt_bool(j, "mlp_bias", false);
        if (attention_bias != mlp_bias)
            throw std::runtime_error(
                "attention_bias and mlp_bias differ; this library has biases in all "
                "linear layers or in none");
        c.bias = attention_bias;
        // qk_layernorm is OpenSciConfig's key (its default: false); LlamaForCausalLM
        // has no QK-norm, and transformers would ignore the key there. qk_norm is
        // what earlier exports of this library wrote (as LlamaForCausalLM).
        if (opensci) {
            c.qk_norm = opt_bool(j, "qk_layernorm", false);
        } else {
            if (opt_bool(j, "qk_layernorm", false))
                throw std::runtime_error("qk_layernorm is true in a LlamaForCausalLM config (transformers ignores it)");
            c.qk_norm = opt_bool(j, "qk_norm", false);
        }
        c.init_std = opt_float(j, "initializer_range", 0.02f);
        if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
            const auto& rs = j["rope_scaling"];
            if (!rs.is_object()) throw std::runtime_error("rope_scaling is not an object");
            std::string type = rs.value("rope_type", rs.value("type", std::string("default")));
            if (type == "llama3") {
                c.rope_scaling.enabled = true;
                c.rope_scaling.factor = json_float(rs.at("factor"), "rope_scaling.factor");
                c.rope_scaling.low_freq_factor = json_float(rs.at("low_freq_factor"), "rope_scaling.low_freq_factor");
                c.rope_scaling.high_freq_factor =
                    json_float(rs.at("high_freq_factor"), "rope_scaling.high_freq_factor");
                c.rope_scaling.original_max_position = json_int(rs.at("original_max_position_embeddings"),
                                                                "rope_scaling.original_max_position_embeddings");
            } else if (type != "default") {
                throw std::runtime_error("rope_scaling type '" + type + "' is not supported (only llama3)");
            }
        }
        std::string act = j.value("hidden_act", std::string("silu"));
        if (act != "silu") throw std::runtime_error("hidden_act '" + act + "' is not supported (only silu)");
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(path + ": bad field type: " + e.what());
    } catch (const std::runtime_error& e) {
        std::string msg = e.what();
        if (msg.rfind(path, 0) == 0) throw;
        throw std::runtime_error(path + ": " + msg);
    }
    try {
        c.validate();
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(e.what());
    }
    return c;
}

std::string config_to_json(const ModelConfig& c) {
    nlohmann::json j = {{"name", c.name},
                        {"vocab_size", c.vocab_size},
                        {"hidden", c.hidden},
                        {"n_layers", c.n_layers},
                        {"n_heads", c.n_heads},
                        {"n_kv_heads", c.n_kv_heads},
                        {"head_dim", c.head_dim},
                        {"ffn_hidden", c.ffn_hidden},
                        {"max_seq_len", c.max_seq_len},
                        {"norm_eps", c.norm_eps},
                        {"rope_theta", c.rope_theta},
                        {"rope_scaling",
                         {{"enabled", c.rope_scaling.enabled},
                          {"factor", c.rope_scaling.factor},
                          {"low_freq_factor", c.rope_scaling.low_freq_factor},
                          {"high_freq_factor", c.rope_scaling.high_freq_factor},
                          {"original_max_position", c.rope_scaling.original_max_position}}},
                        {"tied_embeddings", c.tied_embeddings},
                        {"qk_norm", c.qk_norm},
                        {"bias", c.bias},
                        {"init_std", c.init_std}};
    return j.dump(2);
}

ModelConfig config_from_json(const std::string& json_text, const std::string& origin) {
    ModelConfig c;
    try {
        nlohmann::json j = nlohmann::json::parse(json_text);
        const nlohmann::json& m = j.contains("model") ? j.at("model") : j;
        c.name = m.at("name").get<std::string>();
        c.vocab_size = json_int(m.at("vocab_size"), "vocab_size");
        c.hidden = json_int(m.at("hidden"), "hidden");
        c.n_layers = json_int(m.at("n_layers"), "n_layers");
        c.n_heads = json_int(m.at("n_heads"), "n_heads");
        c.n_kv_heads = json_int(m.at("n_kv_heads"), "n_kv_heads");
        c.head_dim = json_int(m.at("head_dim"), "head_dim");
        c.ffn_hidden = json_int(m.at("ffn_hidden"), "ffn_hidden");
        c.max_seq_len = json_int(m.at("max_seq_len"), "max_seq_len");
        c.norm_eps = json_float(m.at("norm_eps"), "norm_eps");
        c.rope_theta = json_float(m.at("rope_theta"), "rope_theta");
        const nlohmann::json& rs = m.at("rope_scaling");
        c.rope_scaling.enabled = json_bool(rs.at("enabled"), "rope_scaling.enabled");
        c.rope_scaling.factor = json_float(rs.at("factor"), "rope_scaling.factor");
        c.rope_scaling.low_freq_factor = json_float(rs.at("low_freq_factor"), "rope_scaling.low_freq_factor");
        c.rope_scaling.high_freq_factor = json_float(rs.at("high_freq_factor"), "rope_scaling.high_freq_factor");
        c.rope_scaling.original_max_position =
            json_int(rs.at("original_max_position"), "rope_scaling.original_max_position");
        c.tied_embeddings = json_bool(m.at("tied_embeddings"), "tied_embeddings");
        c.qk_norm = json_bool(m.at("qk_norm"), "qk_norm");
        c.bias = json_bool(m.at("bias"), "bias");
        c.init_std = json_float(m.at("init_std"), "init_std");
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(origin + ": bad model config: " + e.what());
    }
    try {
        c.validate();
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(origin + ": " + e.what());
    }
    return c;
}

int64_t parameter_count_formula(const ModelConfig& c) {
    const int64_t C = c.hidden, V = c.vocab_size, F = c.ffn_hidden, Dq = int64_t(c.n_heads) * c.head_dim,
                  Dkv = int64_t(c.n_kv_heads) * c.head_dim, b = c.bias ? 1 : 0;
    int64_t attention = C * Dq + 2 * C * Dkv + Dq * C + b * (Dq + 2 * Dkv + C);
    int64_t mlp = 3 * C * F + b * (2 * F + C);
    int64_t norms = 2 * C + (c.qk_norm ? 2 * int64_t(c.head_dim) : 0);
    int64_t per_layer = attention + mlp + norms;
    return V * C + c.n_layers * per_layer + C + (c.tied_embeddings ? 0 : V * C);
}

}  // namespace llama
