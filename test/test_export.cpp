// Export checked by implementations nobody here wrote: a model trained for some
// steps on real text is exported to GGUF and llama.cpp (through
// llama-cpp-python, on the CPU: test/llamacpp/logits.py) computes the logits at
// every position of a fixed sequence; they must match this library's forward
// within 1e-4, and a greedy continuation of 32 tokens must be identical. A
// planted mistake (the q rows of one layer left in rotate-half order) must make
// them differ. Every GGUF file written here is also read with llama.cpp's own
// gguf package (test/llamacpp/gguf_check.py), which checks its metadata, tensor
// names, types and shapes against the model's config. Also: Hugging Face export
// then import is bit-exact, and the GGUF layout follows the format.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "lifecycle/export.h"
#include "lifecycle/file_io.h"
#include "lifecycle/safetensors.h"
#include "model/rng.h"
#include "reference/generate.h"
#include "reference/model.h"
#include "test/test_corpus.h"

// The Python of the environment scripts/install-deps makes (llama-cpp-python, gguf).
#ifndef LLAMA_PYTHON
#define LLAMA_PYTHON ".venv/bin/python"
#endif

using namespace llama;
namespace fs = std::filesystem;

namespace {

std::string temp_dir() {
    char t[] = "/tmp/llama_export_XXXXXX";
    REQUIRE(mkdtemp(t) != nullptr);
    return t;
}

// Trains `config` for `steps` AdamW steps on the King James Bible read as bytes.
std::vector<float> trained(const ModelConfig& config, int steps) {
    std::string text = fileio::read_file(testcorpus::kjv_path());
    ref::Model<float> m(config);
    m.init(11);
    Rng rng(5);
    const int B = 4, T = 32;
    std::vector<int> x(B * T), y(B * T);
    ref::AdamWHyper h;
    h.lr = 3e-3;
    for (int step = 1; step <= steps; ++step) {
        for (int b = 0; b < B; ++b) {
            size_t start = rng.below(text.size() - T - 1);
            for (int t = 0; t < T; ++t) {
                x[b * T + t] = (unsigned char)text[start + t];
                y[b * T + t] = (unsigned char)text[start + t + 1];
            }
        }
        m.zero_grad();
        m.forward(x.data(), y.data(), B, T);
        m.backward();
        m.update(h, step, 1.0);
    }
    return m.params();
}

// This library's logits at every position, in double precision from the fp32 weights.
std::vector<std::vector<double>> reference_logits(const ModelConfig& config, const std::vector<float>& params,
                                                  const std::vector<int>& tokens) {
    ref::Model<double> m(config);
    std::copy(params.begin(), params.end(), m.params().begin());
    std::vector<int> targets(tokens.size(), ref::kIgnoreIndex);
    m.forward(tokens.data(), targets.data(), 1, int(tokens.size()));
    std::vector<std::vector<double>> out;
    for (size_t t = 0; t < tokens.size(); ++t)
        out.emplace_back(m.activations().logits.begin() + t * config.vocab_size,
                         m.activations().logits.begin() + (t + 1) * config.vocab_size);
    return out;
}

// Greedy decoding with the KV cache.
std::vector<int> greedy(const ModelConfig& config, const std::vector<float>& params, const std::vector<int>& tokens,
                        int n) {
    const ParamLayout layout(config);
    std::vector<double> p(params.begin(), params.end());
    ref::Sampling s;
    s.temperature = 0;
    return ref::generate(config, bind_weights(config, layout, p.data()), tokens, n, s, 0);
}

std::vector<int> prompt_tokens() {
    const std::string text = "And God said, Let there be light: and there was light. And God saw the light";
    std::vector<int> t;
    for (unsigned char c : text) t.push_back(c);
    return t;
}

// What llama.cpp must find in the GGUF export of `c` with `vocab`: the
// expectation test/llamacpp/gguf_check.py verifies the file against.
nlohmann::json gguf_expectation(const ModelConfig& c, const exporter::Vocab& vocab) {
    nlohmann::json e = {{"architecture", "llama"},
                        {"name", c.name},
                        {"n_layers", c.n_layers},
                        {"d_model", c.hidden},
                        {"n_heads", c.n_heads},
                        {"n_kv_heads", c.n_kv_heads},
                        {"head_dim", c.head_dim},
                        {"ffn_hidden", c.ffn_hidden},
                        {"context_length", c.max_seq_len},
                        {"rope_theta", c.rope_theta},
                        {"rms_eps", c.norm_eps},
                        {"vocab_size", c.vocab_size},
                        {"tied_embeddings", c.tied_embeddings},
                        {"bias", c.bias}};
    e["rope_scaling"] = nullptr;
    if (c.rope_scaling.enabled)
        e["rope_scaling"] = {{"factor", c.rope_scaling.factor},
                             {"low_freq_factor", c.rope_scaling.low_freq_factor},
                             {"high_freq_factor", c.rope_scaling.high_freq_factor},
                             {"original_max_position", c.rope_scaling.original_max_position}};
    // n_tokens is the tokenizer's own count: the ids above it are padding.
    e["tokenizer"] = {
        {"model", "gpt2"},  {"pre", vocab.pre}, {"n_tokens", vocab.tokens.size()}, {"n_merges", vocab.merges.size()},
        {"bos", vocab.bos}, {"eos", vocab.eos}};
    return e;
}

// Runs gguf_check.py on the GGUF file at `path` with the expectation `expect`.
testcorpus::CommandResult run_gguf_check(const std::string& path, const nlohmann::json& expect) {
    const std::string expect_path = path + ".expect.json";
    std::ofstream(expect_path) << expect.dump(2);
    return testcorpus::run_command(std::string(LLAMA_PYTHON) + " test/llamacpp/gguf_check.py " + path + " " +
                                   expect_path);
}

// gguf_check.py's summary: its line "gguf: N checks passed" or "gguf: M of N checks failed ...".
std::string gguf_summary(const std::string& output) {
    const size_t at = output.rfind("\ngguf: ");
    if (at == std::string::npos) return "(no summary)";
    return output.substr(at + 1, output.find('\n', at + 1) - at - 1);
}

// The GGUF file at `path` holds what llama.cpp expects for `c` and `vocab`.
void check_gguf(const std::string& path, const ModelConfig& c, const exporter::Vocab& vocab) {
    const testcorpus::CommandResult r = run_gguf_check(path, gguf_expectation(c, vocab));
    INFO(r.output);
    REQUIRE(r.status == 0);
    std::printf("llama.cpp's gguf package on the %s export: %s\n", c.name.c_str(), gguf_summary(r.output).c_str());
}

// llama.cpp's view of a GGUF file (test/llamacpp/logits.py, with `options`
// first): its logits at every position of `tokens`, a greedy continuation of
// `n_greedy` tokens, and its tokenization of `text_file` when one is given.
nlohmann::json run_llamacpp(const std::string& dir, const std::string& model, const std::vector<int>& tokens,
                            int n_greedy, const std::string& text_file = "", const std::string& options = "") {
    std::ofstream(dir + "/tokens.json") << nlohmann::json(tokens).dump();
    std::string cmd = std::string(LLAMA_PYTHON) + " test/llamacpp/logits.py " + options + model + " " + dir +
                      "/tokens.json " + dir + "/out.json " + std::to_string(n_greedy);
    if (!text_file.empty()) cmd += " " + text_file;
    INFO("running: " << cmd);
    std::fflush(stdout);  // our lines before what the command prints
    REQUIRE(std::system(cmd.c_str()) == 0);
    auto out = nlohmann::json::parse(fileio::read_file(dir + "/out.json"));
    REQUIRE(out["logits"].size() == tokens.size());
    return out;
}

// The largest |difference| between llama.cpp's logits and ours, over every
// position and every token of the vocabulary.
double max_logit_difference(const nlohmann::json& out, const std::vector<std::vector<double>>& ours, int vocab) {
    double worst = 0;
    for (size_t t = 0; t < ours.size(); ++t) {
        REQUIRE(out["logits"][t].size() == size_t(vocab));
        for (int v = 0; v < vocab; ++v)
            worst = std::max(worst, std::abs(out["logits"][t][v].get<double>() - ours[t][v]));
    }
    return worst;
}

// Trains `config` for 100 steps, exports it to GGUF at `path` (byte vocabulary)
// and checks the file with the gguf package; returns the trained weights.
std::vector<float> trained_gguf(const ModelConfig& config, const std::string& path) {
    std::vector<float> params = trained(config, 100);
    exporter::write_gguf(config, ParamLayout(config), params.data(), exporter::byte_vocab(), path);
    check_gguf(path, config, exporter::byte_vocab());
    return params;
}

void check_against_llamacpp(const ModelConfig& config) {
    const std::string dir = temp_dir();
    const std::vector<float> params = trained_gguf(config, dir + "/model.gguf");
    const std::vector<int> tokens = prompt_tokens();
    const int n_greedy = 32;
    auto out = run_llamacpp(dir, dir + "/model.gguf", tokens, n_greedy);
    auto ours = reference_logits(config, params, tokens);
    const double worst = max_logit_difference(out, ours, config.vocab_size);
    double spread = 0;
    for (const auto& row : ours)
        for (double x : row) spread = std::max(spread, std::abs(x));
    std::printf("llama.cpp vs this library, %s: max |logit difference| %.2e over %zu positions (logits up to %.1f)\n",
                config.name.c_str(), worst, tokens.size(), spread);
    CHECK(worst < 1e-4);
    CHECK(spread > 1.0);  // a trained model, not near-uniform logits
    std::vector<int> theirs_greedy = out["greedy"].get<std::vector<int>>();
    std::vector<int> ours_greedy = greedy(config, params, tokens, n_greedy);
    std::string text;
    for (int t : ours_greedy) text += char(t);
    std::printf("greedy continuation (%d bytes): \"%s\"\n", n_greedy, text.c_str());
    CHECK(theirs_greedy == ours_greedy);
    fs::remove_all(dir);
}

ModelConfig byte_model(const char* name) {
    ModelConfig c = preset("tiny");
    c.name = name;
    c.n_layers = 2;
    return c;
}

// Two query heads over one KV head, tied embeddings, Llama 3.1 RoPE scaling.
ModelConfig llama32_style() {
    ModelConfig c = byte_model("llama3.2-style");
    c.rope_theta = 500000.0f;
    c.rope_scaling.enabled = true;
    c.rope_scaling.factor = 32;
    c.rope_scaling.original_max_position = 64;  // short, so every scaling regime occurs
    return c;
}

}  // namespace

TEST_CASE("llama.cpp agrees with the GGUF export: Llama-3.2 style (GQA, tied, RoPE scaling)", "[export][llamacpp]") {
    check_against_llamacpp(llama32_style());
}

TEST_CASE("llama.cpp agrees with the GGUF export: untied embeddings", "[export][llamacpp]") {
    ModelConfig c = byte_model("untied");
    c.tied_embeddings = false;
    check_against_llamacpp(c);
}

TEST_CASE("llama.cpp agrees with the GGUF export: biases in every linear layer", "[export][llamacpp]") {
    ModelConfig c = byte_model("biases");
    c.bias = true;
    check_against_llamacpp(c);
}

TEST_CASE("the llama.cpp checks catch planted mistakes: q rows in the wrong order, a wrong head count",
          "[export][llamacpp]") {
    const ModelConfig c = llama32_style();
    const std::string dir = temp_dir();
    const std::vector<float> params = trained_gguf(c, dir + "/model.gguf");
    const std::vector<int> tokens = prompt_tokens();
    const int n_greedy = 32;
    // logits.py --plant-qk rewrites blk.0.attn_q.weight with its rows back in
    // Hugging Face's rotate-half order before llama.cpp runs: RoPE then turns
    // the wrong pairs of query elements, and the logits must move.
    auto out = run_llamacpp(dir, dir + "/model.gguf", tokens, n_greedy, "", "--plant-qk ");
    const double worst = max_logit_difference(out, reference_logits(c, params, tokens), c.vocab_size);
    const std::vector<int> theirs = out["greedy"].get<std::vector<int>>();
    const std::vector<int> ours = greedy(c, params, tokens, n_greedy);
    int same = 0;
    for (size_t i = 0; i < ours.size() && i < theirs.size() && theirs[i] == ours[i]; ++i) ++same;
    std::printf(
        "planted mistake, layer 0 q rows unpermuted: max |logit difference| %.2e; greedy agrees on the "
        "first %d of %d tokens\n",
        worst, same, n_greedy);
    CHECK(worst > 1e-3);
    // The metadata check, told to expect one query head more than the file has.
    nlohmann::json wrong = gguf_expectation(c, exporter::byte_vocab());
    wrong["n_heads"] = c.n_heads + 1;
    const testcorpus::CommandResult r = run_gguf_check(dir + "/model.gguf", wrong);
    INFO(r.output);
    std::printf("planted mistake, an expectation of %d query heads: exit status %d, %s\n", c.n_heads + 1, r.status,
                gguf_summary(r.output).c_str());
    CHECK(r.status != 0);
    CHECK_THAT(r.output, Catch::Contains("MISMATCH llama.attention.head_count:"));
    fs::remove_all(dir);
}

TEST_CASE("QK-norm models are refused by the GGUF export with a reason", "[export]") {
    ModelConfig c = preset("tiny-osr");
    ParamLayout layout(c);
    std::vector<float> p(layout.total(), 0.0f);
    CHECK_THROWS_WITH(exporter::write_gguf(c, layout, p.data(), exporter::byte_vocab(), "/tmp/unused.gguf"),
                      Catch::Contains("QK-norm"));
}

TEST_CASE("the q/k row permutation pairs element i with i + head_dim/2", "[export]") {
    auto rows = exporter::rope_interleave_rows(2, 6);
    CHECK(rows == std::vector<int64_t>{0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11});
}

TEST_CASE("the GGUF file starts with the documented header and aligns its data", "[export]") {
    const std::string dir = temp_dir();
    ModelConfig c = byte_model("header");
    ParamLayout layout(c);
    std::vector<float> p(layout.total(), 0.25f);
    exporter::write_gguf(c, layout, p.data(), exporter::byte_vocab(), dir + "/m.gguf");
    std::string f = fileio::read_file(dir + "/m.gguf");
    REQUIRE(f.size() > 24);
    CHECK(f.substr(0, 4) == "GGUF");
    uint32_t version;
    uint64_t n_tensors;
    std::memcpy(&version, f.data() + 4, 4);
    std::memcpy(&n_tensors, f.data() + 8, 8);
    CHECK(version == 3);
    CHECK(n_tensors == layout.tensors().size());
    // Tensor data ends the file: its size is the parameters, each padded to 32 bytes.
    uint64_t data = 0;
    for (const ParamTensor& t : layout.tensors()) data += (t.numel * 4 + 31) / 32 * 32;
    CHECK((f.size() - data) % 32 == 0);
    check_gguf(dir + "/m.gguf", c, exporter::byte_vocab());
    fs::remove_all(dir);
}

TEST_CASE("Hugging Face export then import is bit-exact", "[export]") {
    const std::string dir = temp_dir();
    for (const char* name : {"tiny", "tiny-osr"}) {
        ModelConfig c = preset(name);
        c.rope_scaling.enabled = true;
        ParamLayout layout(c);
        std::vector<float> p(layout.total());
        init_weights(c, layout, p.data(), 3);
        exporter::write_hf(c, layout, p.data(), dir + "/" + name);
        ModelConfig back;
        std::vector<float> q;
        exporter::read_hf(dir + "/" + name, back, q);
        CHECK(back.first_difference(c) == "");
        REQUIRE(q.size() == p.size());
        CHECK(std::memcmp(q.data(), p.data(), p.size() * sizeof(float)) == 0);
        auto cfg = nlohmann::json::parse(fileio::read_file(dir + "/" + std::string(name) + "/config.json"));
        CHECK(cfg["tie_word_embeddings"] == c.tied_embeddings);
        CHECK(cfg["attention_bias"] == c.bias);
        CHECK(cfg["mlp_bias"] == c.bias);
        CHECK(cfg["rope_scaling"]["rope_type"] == "llama3");
        // QK-norm models are OpenSciForCausalLM, their code in the folder.
        const std::string code = dir + "/" + name + "/modeling_opensci.py";
        if (c.qk_norm) {
            CHECK(cfg["architectures"][0] == "OpenSciForCausalLM");
            CHECK(cfg["model_type"] == "opensci");
            CHECK(cfg["qk_layernorm"] == true);
            CHECK(cfg["auto_map"]["AutoModelForCausalLM"] == "modeling_opensci.OpenSciForCausalLM");
            CHECK(cfg["auto_map"]["AutoConfig"] == "configuration_opensci.OpenSciConfig");
            CHECK(fileio::read_file(code).find("class OpenSciForCausalLM(") != std::string::npos);
            CHECK(fileio::read_file(dir + "/" + name + "/configuration_opensci.py").find("class OpenSciConfig(") !=
                  std::string::npos);
        } else {
            CHECK(cfg["architectures"][0] == "LlamaForCausalLM");
            CHECK(cfg["model_type"] == "llama");
            CHECK_FALSE(cfg.contains("qk_layernorm"));
            CHECK_FALSE(cfg.contains("auto_map"));
            CHECK_FALSE(fs::exists(code));
        }
    }
    // QK-norm weights with a config.json that lost qk_layernorm are refused, not ignored.
    auto cfg = nlohmann::json::parse(fileio::read_file(dir + "/tiny-osr/config.json"));
    cfg.erase("qk_layernorm");
    fileio::write_file(dir + "/tiny-osr/config.json", cfg.dump(2));
    ModelConfig lost;
    std::vector<float> w;
    CHECK_THROWS_WITH(exporter::read_hf(dir + "/tiny-osr", lost, w),
                      Catch::Contains("_norm.weight") && Catch::Contains("qk_layernorm"));
    fs::remove(dir + "/tiny/model.safetensors");
    ModelConfig back;
    std::vector<float> q;
    CHECK_THROWS_WITH(exporter::read_hf(dir + "/tiny", back, q), Catch::Contains("model.safetensors"));
    fs::remove_all(dir);
}

TEST_CASE("export_model turns a checkpoint into a Hugging Face folder and a GGUF file", "[export]") {
    const std::string dir = temp_dir();
    const std::string trainer = "build/train_llama_cpu --preset tiny --text " + testcorpus::kjv_path() +
                                " --steps 4 --batch 2 --seq-len 16 --val-every 0 --checkpoint-dir " + dir + "/ck";
    REQUIRE(std::system((trainer + " > /dev/null").c_str()) == 0);
    const std::string ck = dir + "/ck/step_00000004";
    REQUIRE(std::system(
                ("build/export_model --checkpoint " + ck + " --hf " + dir + "/hf --gguf " + dir + "/m.gguf > /dev/null")
                    .c_str()) == 0);
    ModelConfig config;
    std::vector<float> params;
    exporter::read_hf(dir + "/hf", config, params);
    CHECK(config.first_difference(preset("tiny")) == "");
    ParamLayout layout(config);
    safetensors::Reader ckpt(ck + "/model.safetensors");
    std::vector<float> expect(layout.total());
    for (const ParamTensor& t : layout.tensors())
        ckpt.read(t.name, safetensors::DType::F32, t.shape, expect.data() + t.offset);
    CHECK(std::memcmp(expect.data(), params.data(), params.size() * sizeof(float)) == 0);
    CHECK(fileio::read_file(dir + "/m.gguf").substr(0, 4) == "GGUF");
    {
        // The GGUF file against the checkpoint's own config and vocabulary.
        ModelConfig ck_config;
        std::vector<float> ck_params;
        std::string tokenizer;
        exporter::read_checkpoint_model(ck, ck_config, ck_params, &tokenizer);
        check_gguf(dir + "/m.gguf", ck_config, exporter::vocab_for(tokenizer));
    }
    // A corrupt checkpoint is refused with its file named.
    std::string model = fileio::read_file(ck + "/model.safetensors");
    model[100] ^= 1;
    std::ofstream(ck + "/model.safetensors", std::ios::binary | std::ios::trunc) << model;
    const std::string cmd = "build/export_model --checkpoint " + ck + " --hf " + dir + "/hf2 2> " + dir + "/err.txt";
    CHECK(std::system(cmd.c_str()) != 0);
    CHECK_THAT(fileio::read_file(dir + "/err.txt"), Catch::Contains("checksum mismatch"));
    fs::remove_all(dir);
}

TEST_CASE("training can start from an exported Hugging Face folder (--init-hf) or a checkpoint (--init-checkpoint)",
          "[export]") {
    const std::string dir = temp_dir();
    auto run = [](const std::string& cmd) { return testcorpus::run_command(cmd).output; };
    auto val_loss = [](const std::string& out) {
        size_t at = out.rfind("| val loss ");
        return at == std::string::npos ? std::string("none") : out.substr(at + 11, 6);
    };
    const std::string common = " --text " + testcorpus::kjv_path() + " --batch 2 --seq-len 32 --val-every 0 --seed 4";
    std::string a = run("build/train_llama_cpu --preset tiny --steps 20 --checkpoint-dir " + dir + "/ck" + common +
                        " --export-hf " + dir + "/hf_end");
    REQUIRE(std::system(("build/export_model --checkpoint " + dir + "/ck/step_00000020 --hf " + dir + "/hf > /dev/null")
                            .c_str()) == 0);
    // The trainer's own export at the end holds the same weights as the checkpoint's export.
    ModelConfig c1, c2;
    std::vector<float> p1, p2;
    exporter::read_hf(dir + "/hf", c1, p1);
    exporter::read_hf(dir + "/hf_end", c2, p2);
    CHECK(p1 == p2);
    // A step with a negligible learning rate: the validation loss is that of the imported weights.
    std::string b = run("build/train_llama_cpu --init-hf " + dir + "/hf --steps 1 --lr 1e-12 --warmup 0" + common);
    INFO(a << "\n" << b);
    CHECK_THAT(b, Catch::Contains("weights: " + dir + "/hf"));
    CHECK(val_loss(a) != "none");
    CHECK(val_loss(b) == val_loss(a));
    std::string fresh = run("build/train_llama_cpu --preset tiny --steps 1 --lr 1e-12 --warmup 0" + common);
    CHECK(val_loss(fresh) != val_loss(a));  // a fresh model scores differently
    std::string bad = run("build/train_llama_cpu --init-hf " + dir + "/ck" + common);
    CHECK_THAT(bad, Catch::Contains("--init-hf") && Catch::Contains("config.json"));
    // The checkpoint's weights, with a new run around them (its step count starts at 1).
    std::string c = run("build/train_llama_cpu --init-checkpoint " + dir +
                        "/ck/step_00000020 --steps 1 --lr 1e-12 --warmup 0" + common);
    INFO(c);
    CHECK_THAT(c, Catch::Contains("weights: " + dir + "/ck/step_00000020") && Catch::Contains("steps 1 to 1"));
    CHECK(val_loss(c) == val_loss(a));
    std::string bad_ck = run("build/train_llama_cpu --init-checkpoint " + dir + "/hf" + common);
    CHECK_THAT(bad_ck, Catch::Contains("--init-checkpoint: ") && Catch::Contains(dir + "/hf"));
    fs::remove_all(dir);
}

TEST_CASE("llama.cpp reads the tokenizer of a GGUF export and tokenizes as this library does", "[export][llamacpp]") {
    const std::string dir = temp_dir();
    for (const char* name : {"gpt2", "llama3"}) {
        const std::string tokenizer_json = std::string(LLAMA_TOKENIZERS) + "/" + name + "/tokenizer.json";
        INFO("tokenizer " << tokenizer_json);
        exporter::Vocab vocab = exporter::vocab_from_tokenizer_json(tokenizer_json);
        CHECK(vocab.merges.size() > 1000);
        // A small model over the tokenizer's vocabulary, padded to a multiple of 64.
        ModelConfig c = preset("tiny");
        c.name = std::string("tiny-") + name;
        c.n_layers = 1;
        c.vocab_size = int((vocab.tokens.size() + 63) / 64 * 64);
        c.init_std = 0.3f;
        ParamLayout layout(c);
        std::vector<float> p(layout.total());
        init_weights(c, layout, p.data(), 9);
        exporter::write_gguf(c, layout, p.data(), vocab, dir + "/m.gguf");
        check_gguf(dir + "/m.gguf", c, vocab);
        // Real text: English and Italian, with digits, punctuation and accents.
        std::string text = fileio::read_file(testcorpus::kjv_path()).substr(0, 1500);
        text += "\nChi va piano va sano e va lontano; perché l'età è più di 1234 anni? Così è, se vi pare!\n";
        std::ofstream(dir + "/text.txt") << text;
        // This library's tokenizer (the tokenize tool).
        const std::string ours_path = dir + "/ours.txt";
        REQUIRE(std::system(
                    ("build/tokenize encode --tokenizer " + tokenizer_json + " < " + dir + "/text.txt > " + ours_path)
                        .c_str()) == 0);
        std::vector<int> ours;
        {
            std::ifstream in(ours_path);
            int id;
            while (in >> id) ours.push_back(id);
        }
        REQUIRE(ours.size() > 100);
        std::vector<int> prompt(ours.begin(), ours.begin() + 40);
        auto out = run_llamacpp(dir, dir + "/m.gguf", prompt, 0, dir + "/text.txt");
        std::vector<int> theirs = out["tokenized"].get<std::vector<int>>();
        CHECK(theirs == ours);
        const double worst = max_logit_difference(out, reference_logits(c, p, prompt), c.vocab_size);
        std::printf("llama.cpp with the %s tokenizer: %zu tokens identical: %s; max |logit difference| %.2e\n", name,
                    ours.size(), theirs == ours ? "yes" : "no", worst);
        CHECK(worst < 1e-4);
    }
    fs::remove_all(dir);
}
