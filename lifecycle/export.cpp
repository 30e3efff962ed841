#include "lifecycle/export.h"

#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "lifecycle/checkpoint.h"
#include "lifecycle/file_io.h"
#include "lifecycle/safetensors.h"
#include "reference/ops.h"

namespace fs = std::filesystem;

namespace llama::exporter {

namespace {

std::string utf8(uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s += char(cp);
    } else if (cp < 0x800) {
        s += char(0xC0 | (cp >> 6));
        s += char(0x80 | (cp & 0x3F));
    } else {
        s += char(0xE0 | (cp >> 12));
        s += char(0x80 | ((cp >> 6) & 0x3F));
        s += char(0x80 | (cp & 0x3F));
    }
    return s;
}

uint16_t to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);  // round to nearest even
    return uint16_t(u >> 16);
}

float from_bf16(uint16_t b) {
    uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Hugging Face tensor name -> llama.cpp tensor name.
std::string gguf_name(const std::string& hf) {
    if (hf == "model.embed_tokens.weight") return "token_embd.weight";
    if (hf == "model.norm.weight") return "output_norm.weight";
    if (hf == "lm_head.weight") return "output.weight";
    const std::string prefix = "model.layers.";
    if (hf.rfind(prefix, 0) != 0) throw std::runtime_error("no GGUF name for tensor " + hf);
    size_t dot = hf.find('.', prefix.size());
    std::string layer = hf.substr(prefix.size(), dot - prefix.size());
    std::string rest = hf.substr(dot + 1);
    static const std::pair<const char*, const char*> map[] = {
        {"input_layernorm.", "attn_norm."},    {"self_attn.q_proj.", "attn_q."},
        {"self_attn.k_proj.", "attn_k."},      {"self_attn.v_proj.", "attn_v."},
        {"self_attn.o_proj.", "attn_output."}, {"post_attention_layernorm.", "ffn_norm."},
        {"mlp.gate_proj.", "ffn_gate."},       {"mlp.up_proj.", "ffn_up."},
        {"mlp.down_proj.", "ffn_down."},       {"self_attn.q_norm.", "attn_q_norm."},
        {"self_attn.k_norm.", "attn_k_norm."}};
    for (const auto& [from, to] : map)
        if (rest.rfind(from, 0) == 0) return "blk." + layer + "." + to + rest.substr(std::strlen(from));
    throw std::runtime_error("no GGUF name for tensor " + hf);
}

// The configuration and modeling files of OpenSciForCausalLM (lifecycle/hf/),
// compiled in by the Makefile: {file name, text}.
const std::pair<const char*, const char*> kOpenSciFiles[] = {
#include "lifecycle/opensci_py.inc"
};

}  // namespace

Vocab byte_vocab() {
    // Byte-level BPE shows each byte as a printable character: the printable
    // Latin-1 bytes as themselves, the others as code points from 256 up.
    Vocab v;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        v.tokens.push_back(utf8(printable ? uint32_t(b) : next++));
        v.types.push_back(1);
    }
    return v;
}

Vocab vocab_from_tokenizer_json(const std::string& path) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(fileio::read_file(path));
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(path + ": not valid JSON: " + e.what());
    }
    Vocab v;
    try {
        const auto& model = j.at("model");
        if (model.at("type").get<std::string>() != "BPE")
            throw std::runtime_error("only BPE tokenizers can be exported to GGUF");
        size_t n = 0;
        for (const auto& [token, id] : model.at("vocab").items()) n = std::max(n, id.get<size_t>() + 1);
        if (j.contains("added_tokens"))
            for (const auto& t : j["added_tokens"]) n = std::max(n, t.at("id").get<size_t>() + 1);
        v.tokens.assign(n, "");
        v.types.assign(n, 5);  // unused, until a token claims the id
        for (const auto& [token, id] : model.at("vocab").items()) {
            v.tokens[id.get<size_t>()] = token;
            v.types[id.get<size_t>()] = 1;
        }
        if (j.contains("added_tokens"))
            for (const auto& t : j["added_tokens"]) {
                const size_t id = t.at("id").get<size_t>();
                v.tokens[id] = t.at("content").get<std::string>();
                v.types[id] = t.value("special", false) ? 3 : 4;  // control or user-defined
            }
        for (size_t i = 0; i < n; ++i)
            if (v.tokens[i].empty()) v.tokens[i] = "<unused_" + std::to_string(i) + ">";
        for (const auto& m : model.at("merges")) {
            if (m.is_string()) v.merges.push_back(m.get<std::string>());
            else v.merges.push_back(m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
        }
        auto id_of = [&](const char* name) -> int {
            for (size_t i = 0; i < n; ++i)
                if (v.tokens[i] == name) return int(i);
            return -1;
        };
        v.bos = id_of("<|begin_of_text|>");
        v.eos = id_of("<|end_of_text|>");
        if (v.eos < 0) v.eos = id_of("<|endoftext|>");
        if (v.bos < 0) v.bos = v.eos;
        const std::string pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"].dump() : "";
        if (pre.find("(?i:'s|'t|'re|'ve|'m|'ll|'d)") != std::string::npos) v.pre = "llama-bpe";
        else if (pre.find("\"ByteLevel\"") != std::string::npos && pre.find("Split") == std::string::npos)
            v.pre = "gpt-2";
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(path + ": " + e.what());
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(path + ": " + e.what());
    }
    return v;
}

std::vector<int64_t> rope_interleave_rows(int heads, int head_dim) {
    std::vector<int64_t> rows;
    const int half = head_dim / 2;
    for (int h = 0; h < heads; ++h)
        for (int i = 0; i < half; ++i) {
            rows.push_back(int64_t(h) * head_dim + i);
            rows.push_back(int64_t(h) * head_dim + i + half);
        }
    return rows;
}

void write_gguf(const ModelConfig& c, const ParamLayout& layout, const float* params, const Vocab& vocab,
                const std::string& path, gguf::TensorType type) {
    if (c.qk_norm)
        throw std::runtime_error(path + ": QK-norm has no place in llama.cpp's llama architecture; not exported");
    if (int(vocab.tokens.size()) > c.vocab_size)
        throw std::runtime_error(path + ": the tokenizer has " + std::to_string(vocab.tokens.size()) +
                                 " tokens but the model's vocabulary is only " + std::to_string(c.vocab_size));
    // A vocabulary padded for speed (e.g. 50304 for GPT-2's 50257) gets unused tokens.
    std::vector<std::string> tokens = vocab.tokens;
    std::vector<int32_t> types = vocab.types;
    while (int(tokens.size()) < c.vocab_size) {
        tokens.push_back("<unused_" + std::to_string(tokens.size()) + ">");
        types.push_back(5);
    }
    gguf::Writer w;
    w.add_string("general.architecture", "llama");
    w.add_string("general.name", c.name);
    w.add_u32("general.file_type", type == gguf::TensorType::F32 ? 0 : (type == gguf::TensorType::F16 ? 1 : 32));
    w.add_u32("llama.context_length", uint32_t(c.max_seq_len));
    w.add_u32("llama.embedding_length", uint32_t(c.hidden));
    w.add_u32("llama.block_count", uint32_t(c.n_layers));
    w.add_u32("llama.feed_forward_length", uint32_t(c.ffn_hidden));
    w.add_u32("llama.attention.head_count", uint32_t(c.n_heads));
    w.add_u32("llama.attention.head_count_kv", uint32_t(c.n_kv_heads));
    w.add_u32("llama.attention.key_length", uint32_t(c.head_dim));
    w.add_u32("llama.attention.value_length", uint32_t(c.head_dim));
    w.add_u32("llama.rope.dimension_count", uint32_t(c.head_dim));
    w.add_f32("llama.rope.freq_base", c.rope_theta);
    w.add_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
    w.add_u32("llama.vocab_size", uint32_t(c.vocab_size));
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", vocab.pre);
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_i32_array("tokenizer.ggml.token_type", types);
    w.add_string_array("tokenizer.ggml.merges", vocab.merges);
    if (vocab.bos >= 0) w.add_u32("tokenizer.ggml.bos_token_id", uint32_t(vocab.bos));
    if (vocab.eos >= 0) w.add_u32("tokenizer.ggml.eos_token_id", uint32_t(vocab.eos));
    if (!vocab.chat_template.empty()) w.add_string("tokenizer.chat_template", vocab.chat_template);
    w.add_bool("tokenizer.ggml.add_bos_token", false);

    if (c.rope_scaling.enabled) {
        // llama.cpp divides each frequency by its factor: factor = plain / scaled.
        RopeScaling none;
        std::vector<double> plain = ref::rope_inv_freq(c.head_dim, c.rope_theta, none);
        std::vector<double> scaled = ref::rope_inv_freq(c.head_dim, c.rope_theta, c.rope_scaling);
        std::vector<float> factors;
        for (size_t i = 0; i < plain.size(); ++i) factors.push_back(float(plain[i] / scaled[i]));
        w.add_tensor("rope_freqs.weight", {int64_t(factors.size())}, gguf::TensorType::F32, factors.data());
    }
    std::vector<float> buf;
    std::vector<uint16_t> half;
    for (const ParamTensor& t : layout.tensors()) {
        const float* src = params + t.offset;
        // q and k rows (and biases) to interleaved RoPE pairs.
        const bool is_q = t.name.find("self_attn.q_proj.") != std::string::npos;
        const bool is_k = t.name.find("self_attn.k_proj.") != std::string::npos;
        if (is_q || is_k) {
            std::vector<int64_t> rows = rope_interleave_rows(is_q ? c.n_heads : c.n_kv_heads, c.head_dim);
            const int64_t width = t.shape.size() == 2 ? t.shape[1] : 1;
            buf.resize(t.numel);
            for (size_t r = 0; r < rows.size(); ++r)
                std::memcpy(buf.data() + r * width, src + rows[r] * width, width * sizeof(float));
            src = buf.data();
        }
        // Norms and biases stay F32, as llama.cpp's converter keeps 1-D tensors.
        const bool one_d = t.shape.size() == 1;
        if (type == gguf::TensorType::F32 || one_d) {
            w.add_tensor(gguf_name(t.name), t.shape, gguf::TensorType::F32, src);
        } else if (type == gguf::TensorType::BF16) {
            half.resize(t.numel);
            for (int64_t i = 0; i < t.numel; ++i) half[i] = to_bf16(src[i]);
            w.add_tensor(gguf_name(t.name), t.shape, type, half.data());
        } else {
            throw std::runtime_error(path + ": only F32 and BF16 exports are written");
        }
    }
    w.write(path);
}

void write_hf(const ModelConfig& c, const ParamLayout& layout, const float* params, const std::string& dir,
              const std::string& tokenizer_path, const ChatTemplate* chat) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error(dir + ": cannot create: " + ec.message());
    nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                        {"model_type", "llama"},
                        {"vocab_size", c.vocab_size},
                        {"hidden_size", c.hidden},
                        {"intermediate_size", c.ffn_hidden},
                        {"num_hidden_layers", c.n_layers},
                        {"num_attention_heads", c.n_heads},
                        {"num_key_value_heads", c.n_kv_heads},
                        {"head_dim", c.head_dim},
                        {"hidden_act", "silu"},
                        {"max_position_embeddings", c.max_seq_len},
                        {"rms_norm_eps", c.norm_eps},
                        {"rope_theta", c.rope_theta},
                        {"tie_word_embeddings", c.tied_embeddings},
                        {"attention_bias", c.bias},
                        {"mlp_bias", c.bias},
                        {"initializer_range", c.init_std},
                        {"torch_dtype", "float32"}};
    j["rope_scaling"] = nullptr;
    if (c.rope_scaling.enabled)
        j["rope_scaling"] = {{"rope_type", "llama3"},
                             {"factor", c.rope_scaling.factor},
                             {"low_freq_factor", c.rope_scaling.low_freq_factor},
                             {"high_freq_factor", c.rope_scaling.high_freq_factor},
                             {"original_max_position_embeddings", c.rope_scaling.original_max_position}};
    // LlamaForCausalLM has no QK-norm: such models are OpenSciForCausalLM, whose
    // code goes with the folder (loaded with trust_remote_code=True).
    if (c.qk_norm) {
        j["architectures"] = {"OpenSciForCausalLM"};
        j["model_type"] = "opensci";
        j["auto_map"] = {{"AutoConfig", "configuration_opensci.OpenSciConfig"},
                         {"AutoModelForCausalLM", "modeling_opensci.OpenSciForCausalLM"}};
        j["qk_layernorm"] = true;
        for (const auto& [name, text] : kOpenSciFiles) fileio::write_file(dir + "/" + name, text);
    }
    fileio::write_file(dir + "/config.json", j.dump(2) + "\n");
    std::vector<safetensors::TensorRef> refs;
    for (const ParamTensor& t : layout.tensors())
        refs.push_back({t.name, safetensors::DType::F32, t.shape, params + t.offset});
    safetensors::write_file(dir + "/model.safetensors", refs, {{"format", "pt"}});
    if (tokenizer_path.empty()) {
        if (chat) throw std::runtime_error("a chat template needs the run's tokenizer.json; this run read bytes");
        return;
    }
    if (!chat) {
        fileio::write_file(dir + "/tokenizer.json", fileio::read_file(tokenizer_path));
        // Without a tokenizer_config.json, AutoTokenizer picks the class from
        // config.json's model_type (LlamaTokenizerFast), which adds <s>, </s>
        // and <unk> to the vocabulary and puts <s> before every text: ids the
        // model does not have, and not the ids it was trained on.
        nlohmann::json tc = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                             {"clean_up_tokenization_spaces", false},
                             {"model_max_length", c.max_seq_len}};
        try {
            const Vocab vocab = vocab_from_tokenizer_json(tokenizer_path);
            if (vocab.eos >= 0) tc["eos_token"] = vocab.tokens.at(size_t(vocab.eos));
        } catch (const std::exception&) {
            // Not a BPE tokenizer.json this library reads: the class alone.
        }
        fileio::write_file(dir + "/tokenizer_config.json", tc.dump(2) + "\n");
        return;
    }
    nlohmann::json tok = nlohmann::json::parse(fileio::read_file(tokenizer_path));
    for (auto& added : tok["added_tokens"])
        for (const auto& [name, id] : chat->renamed)
            if (added.value("id", -1) == id) added["content"] = name;
    fileio::write_file(dir + "/tokenizer.json", tok.dump(2) + "\n");
    Vocab vocab = vocab_from_tokenizer_json(tokenizer_path);
    apply_chat_template(vocab, *chat);
    nlohmann::json tc = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                         {"chat_template", chat->jinja},
                         {"eos_token", vocab.tokens.at(size_t(vocab.eos))},
                         {"clean_up_tokenization_spaces", false},
                         {"model_max_length", c.max_seq_len}};
    if (vocab.bos >= 0) tc["bos_token"] = vocab.tokens.at(size_t(vocab.bos));
    fileio::write_file(dir + "/tokenizer_config.json", tc.dump(2) + "\n");
    nlohmann::json gen = {{"eos_token_id", vocab.eos}};
    if (vocab.bos >= 0) gen["bos_token_id"] = vocab.bos;
    fileio::write_file(dir + "/generation_config.json", gen.dump(2) + "\n");
}

ChatTemplate read_chat_template(const std::string& path) {
    ChatTemplate chat;
    try {
        const nlohmann::json j = nlohmann::json::parse(fileio::read_file(path));
        chat.jinja = j.at("chat_template").get<std::string>();
        chat.end_of_turn = j.at("end_of_turn").get<int>();
        if (j.contains("renamed_tokens"))
            for (const auto& [name, id] : j["renamed_tokens"].items()) chat.renamed.push_back({name, id.get<int>()});
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(path + ": not a chat template of tokenize sft (" + e.what() + ")");
    }
    return chat;
}

void apply_chat_template(Vocab& vocab, const ChatTemplate& chat) {
    for (const auto& [name, id] : chat.renamed) {
        if (id < 0 || size_t(id) >= vocab.tokens.size())
            throw std::runtime_error("chat template: token " + std::to_string(id) + " (" + name +
                                     ") is outside the vocabulary");
        vocab.tokens[size_t(id)] = name;
    }
    if (chat.end_of_turn < 0 || size_t(chat.end_of_turn) >= vocab.tokens.size())
        throw std::runtime_error("chat template: the end-of-turn token " + std::to_string(chat.end_of_turn) +
                                 " is outside the vocabulary");
    vocab.eos = chat.end_of_turn;
    vocab.chat_template = chat.jinja;
}

Vocab vocab_for(const std::string& tokenizer_path) {
    return tokenizer_path.empty() ? byte_vocab() : vocab_from_tokenizer_json(tokenizer_path);
}

void read_checkpoint_model(const std::string& dir, ModelConfig& config, std::vector<float>& params,
                           std::string* tokenizer_path) {
    checkpoint::verify(dir);
    nlohmann::json state = checkpoint::read_state(dir);
    try {
        config = config_from_json(state.at("model").dump(), dir + "/state.json");
        if (tokenizer_path) *tokenizer_path = state.value("tokenizer", std::string());
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(dir + "/state.json: " + e.what());
    }
    ParamLayout layout(config);
    params.assign(layout.total(), 0.0f);
    safetensors::Reader weights(dir + "/model.safetensors");
    for (const ParamTensor& t : layout.tensors())
        weights.read(t.name, safetensors::DType::F32, t.shape, params.data() + t.offset);
}

void read_hf(const std::string& dir, ModelConfig& config, std::vector<float>& params) {
    config = config_from_hf_json(dir + "/config.json");
    ParamLayout layout(config);
    params.assign(layout.total(), 0.0f);
    safetensors::Reader r(dir + "/model.safetensors");
    // QK-norm weights in a model read without QK-norm: its config.json lacks
    // qk_layernorm (or is not OpenSciForCausalLM), and the model would not be
    // the one that was trained.
    if (!config.qk_norm)
        for (const safetensors::TensorInfo& t : r.tensors())
            if (t.name.find("self_attn.q_norm.") != std::string::npos ||
                t.name.find("self_attn.k_norm.") != std::string::npos)
                throw std::runtime_error(dir + "/model.safetensors holds '" + t.name +
                                         "' but config.json has no QK-norm (OpenSciForCausalLM with qk_layernorm)");
    for (const ParamTensor& t : layout.tensors()) {
        if (!r.has(t.name)) {
            // Checkpoints that store a tied head as a separate copy are fine; a missing tensor is not.
            throw std::runtime_error(dir + "/model.safetensors: missing tensor '" + t.name + "'");
        }
        const safetensors::TensorInfo& info = r.info(t.name);
        if (info.dtype == safetensors::DType::F32) {
            r.read(t.name, info.dtype, t.shape, params.data() + t.offset);
        } else if (info.dtype == safetensors::DType::BF16) {
            std::vector<uint16_t> tmp(t.numel);
            r.read(t.name, info.dtype, t.shape, tmp.data());
            for (int64_t i = 0; i < t.numel; ++i) params[t.offset + i] = from_bf16(tmp[i]);
        } else {
            throw std::runtime_error(dir + "/model.safetensors: tensor '" + t.name + "' is " +
                                     safetensors::dtype_name(info.dtype) + "; only F32 and BF16 are read");
        }
    }
}

}  // namespace llama::exporter
