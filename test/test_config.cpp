// The model definition: presets, parameter layout and counts, Hugging Face config.json.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include "model/config.h"
#include "model/params.h"
#include "model/rng.h"

using namespace llama;

namespace {

std::string write_temp(const std::string& name, const std::string& text) {
    std::string path = "/tmp/llama_test_" + name;
    std::ofstream(path) << text;
    return path;
}

// Meta's published config.json for Llama-3.2-1B (architecture fields).
const char* kLlama32Config = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256
})";

}  // namespace

TEST_CASE("every preset is valid and its layout matches the parameter formula", "[config]") {
    for (const std::string& name : preset_names()) {
        INFO("preset " << name);
        ModelConfig c = preset(name);
        REQUIRE_NOTHROW(c.validate());
        ParamLayout layout(c);
        CHECK(layout.total() == parameter_count_formula(c));
        // Offsets are contiguous, names unique, shapes multiply to numel.
        int64_t offset = 0;
        std::set<std::string> names;
        for (const ParamTensor& t : layout.tensors()) {
            CHECK(t.offset == offset);
            int64_t prod = 1;
            for (int64_t s : t.shape) prod *= s;
            CHECK(prod == t.numel);
            offset += t.numel;
            CHECK(names.insert(t.name).second);
            bool no_decay = t.kind == ParamKind::Norm || t.kind == ParamKind::Bias;
            CHECK(t.decay == !no_decay);
        }
        CHECK(offset == layout.total());
        CHECK(layout.has("lm_head.weight") == !c.tied_embeddings);
        CHECK(layout.has("model.layers.0.self_attn.q_proj.bias") == c.bias);
        CHECK(layout.has("model.layers.0.self_attn.q_norm.weight") == c.qk_norm);
    }
}

TEST_CASE("preset sizes match the published model sizes", "[config]") {
    // Llama-3.2-1B: 1,235,814,400 parameters as published by Meta (tied embeddings).
    CHECK(parameter_count_formula(preset("llama-3.2-1b")) == 1235814400LL);
    // Counted by hand from the architecture: embedding 128256*960; per layer
    // q 960*960, k and v 960*320 each, o 960*960, MLP 3*960*2560, two norms of 960.
    const int64_t zagreus = 128256LL * 960 + 32LL * (960 * 960 * 2 + 2 * 960 * 320 + 3 * 960 * 2560 + 2 * 960) + 960;
    CHECK(parameter_count_formula(preset("zagreus-0.4b")) == zagreus);
    CHECK(ParamLayout(preset("zagreus-0.4b")).total() == zagreus);
    // open-sci-ref sizes are named after their non-embedding-dominated totals.
    auto near = [](const char* name, double billions) {
        double n = double(parameter_count_formula(preset(name))) / 1e9;
        INFO(name << ": " << n << "B");
        CHECK(n > billions * 0.8);
        CHECK(n < billions * 1.25);
    };
    near("osr-0.13b", 0.13);
    near("osr-0.4b", 0.4);
    near("osr-1.3b", 1.3);
    near("osr-1.7b", 1.7);
    ModelConfig osr = preset("osr-0.13b");
    CHECK(osr.qk_norm);
    CHECK(osr.bias);
    CHECK(osr.tied_embeddings);
    CHECK(osr.vocab_size == 50304);
}

TEST_CASE("bias and QK-norm tensors add what the formula says", "[config]") {
    ModelConfig c = preset("tiny");
    int64_t base = ParamLayout(c).total();
    c.bias = true;
    int64_t with_bias = ParamLayout(c).total();
    int64_t Dq = c.n_heads * c.head_dim, Dkv = c.n_kv_heads * c.head_dim;
    CHECK(with_bias - base == c.n_layers * (Dq + 2 * Dkv + c.hidden + 2 * c.ffn_hidden + c.hidden));
    c.qk_norm = true;
    CHECK(ParamLayout(c).total() - with_bias == c.n_layers * 2 * c.head_dim);
    c.tied_embeddings = false;
    CHECK(ParamLayout(c).total() - with_bias - c.n_layers * 2 * c.head_dim == int64_t(c.vocab_size) * c.hidden);
}

TEST_CASE("unknown presets and invalid configs are refused with a clear message", "[config]") {
    try {
        preset("llama-9b");
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        std::string msg = e.what();
        CHECK(msg.find("llama-9b") != std::string::npos);
        CHECK(msg.find("zagreus-0.4b") != std::string::npos);  // lists what exists
    }
    ModelConfig c = preset("tiny");
    c.n_kv_heads = 3;  // 4 heads over 3 KV heads
    CHECK_THROWS_WITH(c.validate(), Catch::Contains("multiple of n_kv_heads"));
    c = preset("tiny");
    c.head_dim = 7;
    CHECK_THROWS_WITH(c.validate(), Catch::Contains("head_dim must be even"));
    c = preset("tiny");
    c.vocab_size = 0;
    CHECK_THROWS_WITH(c.validate(), Catch::Contains("vocab_size"));
}

TEST_CASE("a Hugging Face config.json reads as the matching preset", "[config]") {
    std::string path = write_temp("llama32.json", kLlama32Config);
    ModelConfig c = config_from_hf_json(path);
    CHECK(c.first_difference(preset("llama-3.2-1b")) == "");
    CHECK(c.rope_scaling.enabled);
    CHECK(c.rope_scaling.factor == 32.0f);
    CHECK(c.tied_embeddings);

    std::string changed = kLlama32Config;
    changed.replace(changed.find("\"num_key_value_heads\": 8"), 24, "\"num_key_value_heads\": 4");
    ModelConfig d = config_from_hf_json(write_temp("llama32_kv4.json", changed));
    CHECK(d.first_difference(c).find("n_kv_heads") == 0);
}

TEST_CASE("an OpenSciForCausalLM config.json reads qk_layernorm as QK-norm", "[config]") {
    // The keys the export writes for osr-0.13b, as OpenSciConfig's save_pretrained adds to them.
    const std::string osr = R"({"architectures": ["OpenSciForCausalLM"], "model_type": "opensci",
        "auto_map": {"AutoConfig": "configuration_opensci.OpenSciConfig",
                     "AutoModelForCausalLM": "modeling_opensci.OpenSciForCausalLM"},
        "vocab_size": 50304, "hidden_size": 512, "intermediate_size": 2256, "num_hidden_layers": 22,
        "num_attention_heads": 8, "num_key_value_heads": 8, "head_dim": 64, "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "rope_scaling": null, "tie_word_embeddings": true,
        "initializer_range": 0.02, "attention_dropout": 0.0, "pretraining_tp": 1, "use_cache": true,
        "qk_layernorm": true, "attention_bias": true, "mlp_bias": true})";
    ModelConfig c = config_from_hf_json(write_temp("osr.json", osr));
    CHECK(c.first_difference(preset("osr-0.13b")) == "");
    CHECK(c.qk_norm);
    CHECK(c.bias);
    // Without the key, OpenSciConfig's default: no QK-norm.
    std::string no_key = osr;
    no_key.replace(no_key.find("\"qk_layernorm\": true, "), 22, "");
    CHECK_FALSE(config_from_hf_json(write_temp("osr_no_key.json", no_key)).qk_norm);
    // LlamaForCausalLM has no QK-norm: the key there is a mistake, not ignored.
    std::string llama = osr;
    llama.replace(llama.find("OpenSciForCausalLM\"]"), 18, "LlamaForCausalLM");
    llama.replace(llama.find("\"opensci\""), 9, "\"llama\"");
    CHECK_THROWS_WITH(config_from_hf_json(write_temp("osr_llama.json", llama)), Catch::Contains("qk_layernorm"));
}

TEST_CASE("bad config.json files name the file and the problem", "[config]") {
    CHECK_THROWS_WITH(config_from_hf_json("/nonexistent/config.json"), Catch::Contains("/nonexistent/config.json"));
    std::string bad = write_temp("bad.json", "{ \"vocab_size\": 10, ");
    CHECK_THROWS_WITH(config_from_hf_json(bad), Catch::Contains(bad) && Catch::Contains("not valid JSON"));
    std::string missing = write_temp("missing.json", R"({"vocab_size": 10, "hidden_size": 8})");
    CHECK_THROWS_WITH(config_from_hf_json(missing), Catch::Contains("num_hidden_layers"));
    std::string wrong_type = write_temp("type.json", R"({"vocab_size": "ten", "hidden_size": 8,
        "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 4})");
    CHECK_THROWS_WITH(config_from_hf_json(wrong_type), Catch::Contains(wrong_type));
    std::string gqa = write_temp("gqa.json", R"({"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 3, "intermediate_size": 4})");
    CHECK_THROWS_WITH(config_from_hf_json(gqa), Catch::Contains("multiple of n_kv_heads"));
    std::string arch = write_temp("arch.json", R"({"architectures": ["GPT2LMHeadModel"]})");
    CHECK_THROWS_WITH(config_from_hf_json(arch), Catch::Contains("LlamaForCausalLM"));
}

TEST_CASE("weight initialisation is seeded, reproducible and follows the recipe", "[config]") {
    ModelConfig c = preset("tiny");
    ParamLayout layout(c);
    std::vector<float> a(layout.total()), b(layout.total()), other(layout.total());
    init_weights(c, layout, a.data(), 42);
    init_weights(c, layout, b.data(), 42);
    init_weights(c, layout, other.data(), 43);
    CHECK(a == b);
    CHECK(a != other);
    auto stats = [&](const std::string& name) {
        const ParamTensor& t = layout.find(name);
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < t.numel; ++i) {
            s += a[t.offset + i];
            s2 += double(a[t.offset + i]) * a[t.offset + i];
        }
        double mean = s / t.numel;
        return std::make_pair(mean, std::sqrt(s2 / t.numel - mean * mean));
    };
    auto [m_embed, std_embed] = stats("model.embed_tokens.weight");
    CHECK(std::abs(m_embed) < 0.002);
    CHECK(std_embed == Approx(0.02).epsilon(0.05));
    auto [m_o, std_o] = stats("model.layers.1.self_attn.o_proj.weight");
    CHECK(std_o == Approx(0.02 / std::sqrt(2.0 * c.n_layers)).epsilon(0.1));
    (void)m_o;
    const ParamTensor& norm = layout.find("model.layers.0.input_layernorm.weight");
    for (int64_t i = 0; i < norm.numel; ++i) CHECK(a[norm.offset + i] == 1.0f);
}

TEST_CASE("the random number generator is uniform and normal as claimed", "[config]") {
    Rng rng(7);
    double s = 0, s2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; ++i) {
        double x = rng.normal();
        s += x;
        s2 += x * x;
    }
    CHECK(std::abs(s / n) < 0.01);
    CHECK(s2 / n == Approx(1.0).epsilon(0.02));
    Rng r1(5), r2(5);
    for (int i = 0; i < 10; ++i) CHECK(r1.next_u64() == r2.next_u64());
}
