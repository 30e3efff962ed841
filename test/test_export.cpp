// Export checked by implementations nobody here wrote: a model trained for some
// steps on real text is exported to GGUF and llama.cpp (through node-llama-cpp,
// on the CPU) computes the logits at every position of a fixed sequence; they
// must match this library's forward within 1e-4, and a greedy continuation of
// 32 tokens must be identical. Also: Hugging Face export then import is
// bit-exact, and the GGUF layout follows the format.
#include <catch2/catch.hpp>

#include <cmath>
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

void check_against_llamacpp(const ModelConfig& config) {
    const std::string dir = temp_dir();
    const std::vector<float> params = trained(config, 100);
    const ParamLayout layout(config);
    exporter::write_gguf(config, layout, params.data(), exporter::byte_vocab(), dir + "/model.gguf");
    const std::vector<int> tokens = prompt_tokens();
    std::ofstream(dir + "/tokens.json") << nlohmann::json(tokens).dump();
    const int n_greedy = 32;
    const std::string cmd = "node test/llamacpp/logits.mjs " + dir + "/model.gguf " + dir + "/tokens.json " + dir +
                            "/out.json " + std::to_string(n_greedy);
    INFO("running: " << cmd);
    REQUIRE(std::system(cmd.c_str()) == 0);
    auto out = nlohmann::json::parse(fileio::read_file(dir + "/out.json"));
    auto ours = reference_logits(config, params, tokens);
    REQUIRE(out["logits"].size() == tokens.size());
    double worst = 0, spread = 0;
    for (size_t t = 0; t < tokens.size(); ++t) {
        REQUIRE(out["logits"][t].size() == size_t(config.vocab_size));
        for (int v = 0; v < config.vocab_size; ++v) {
            double theirs = out["logits"][t][v].get<double>();
            worst = std::max(worst, std::abs(theirs - ours[t][v]));
            spread = std::max(spread, std::abs(ours[t][v]));
        }
    }
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

}  // namespace

TEST_CASE("llama.cpp agrees with the GGUF export: Llama-3.2 style (GQA, tied, RoPE scaling)", "[export][llamacpp]") {
    ModelConfig c = byte_model("llama3.2-style");
    c.rope_theta = 500000.0f;
    c.rope_scaling.enabled = true;
    c.rope_scaling.factor = 32;
    c.rope_scaling.original_max_position = 64;  // short, so every scaling regime occurs
    check_against_llamacpp(c);
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
        CHECK(cfg["architectures"][0] == "LlamaForCausalLM");
        CHECK(cfg["tie_word_embeddings"] == c.tied_embeddings);
        CHECK(cfg["attention_bias"] == c.bias);
        CHECK(cfg["rope_scaling"]["rope_type"] == "llama3");
    }
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
    REQUIRE(std::system(("build/export_model --checkpoint " + ck + " --hf " + dir + "/hf --gguf " + dir +
                         "/m.gguf > /dev/null").c_str()) == 0);
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
    // A corrupt checkpoint is refused with its file named.
    std::string model = fileio::read_file(ck + "/model.safetensors");
    model[100] ^= 1;
    std::ofstream(ck + "/model.safetensors", std::ios::binary | std::ios::trunc) << model;
    const std::string cmd = "build/export_model --checkpoint " + ck + " --hf " + dir + "/hf2 2> " + dir + "/err.txt";
    CHECK(std::system(cmd.c_str()) != 0);
    CHECK_THAT(fileio::read_file(dir + "/err.txt"), Catch::Contains("checksum mismatch"));
    fs::remove_all(dir);
}

TEST_CASE("training can start from an exported Hugging Face folder (--init-hf)", "[export]") {
    const std::string dir = temp_dir();
    auto run = [](const std::string& cmd) { return testcorpus::run_command(cmd).output; };
    auto val_loss = [](const std::string& out) {
        size_t at = out.rfind("| val loss ");
        return at == std::string::npos ? std::string("none") : out.substr(at + 11, 6);
    };
    const std::string common = " --text " + testcorpus::kjv_path() + " --batch 2 --seq-len 32 --val-every 0 --seed 4";
    std::string a = run("build/train_llama_cpu --preset tiny --steps 20 --checkpoint-dir " + dir + "/ck" + common +
                        " --export-hf " + dir + "/hf_end");
    REQUIRE(std::system(("build/export_model --checkpoint " + dir + "/ck/step_00000020 --hf " + dir +
                         "/hf > /dev/null").c_str()) == 0);
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
        // Real text: English and Italian, with digits, punctuation and accents.
        std::string text = fileio::read_file(testcorpus::kjv_path()).substr(0, 1500);
        text += "\nChi va piano va sano e va lontano; perché l'età è più di 1234 anni? Così è, se vi pare!\n";
        std::ofstream(dir + "/text.txt") << text;
        // This library's tokenizer (the tokenize tool).
        const std::string ours_path = dir + "/ours.txt";
        REQUIRE(std::system(("build/tokenize encode --tokenizer " + tokenizer_json + " < " + dir + "/text.txt > " +
                             ours_path).c_str()) == 0);
        std::vector<int> ours;
        {
            std::ifstream in(ours_path);
            int id;
            while (in >> id) ours.push_back(id);
        }
        REQUIRE(ours.size() > 100);
        std::vector<int> prompt(ours.begin(), ours.begin() + 40);
        std::ofstream(dir + "/tokens.json") << nlohmann::json(prompt).dump();
        const std::string cmd = "node test/llamacpp/logits.mjs " + dir + "/m.gguf " + dir + "/tokens.json " + dir +
                                "/out.json 0 " + dir + "/text.txt";
        REQUIRE(std::system(cmd.c_str()) == 0);
        auto out = nlohmann::json::parse(fileio::read_file(dir + "/out.json"));
        std::vector<int> theirs = out["tokenized"].get<std::vector<int>>();
        CHECK(theirs == ours);
        auto logits = reference_logits(c, p, prompt);
        double worst = 0;
        for (size_t t = 0; t < prompt.size(); ++t)
            for (int v = 0; v < c.vocab_size; ++v)
                worst = std::max(worst, std::abs(out["logits"][t][v].get<double>() - logits[t][v]));
        std::printf("llama.cpp with the %s tokenizer: %zu tokens identical: %s; max |logit difference| %.2e\n", name,
                    ours.size(), theirs == ours ? "yes" : "no", worst);
        CHECK(worst < 1e-4);
    }
    fs::remove_all(dir);
}
