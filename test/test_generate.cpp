// Generation on the CPU reference: the KV-cache step gives the same logits as
// the full forward at every position, generation with the cache equals
// generation without it, and sampling keeps to temperature, top-k and top-p.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <vector>

#include "model/rng.h"
#include "reference/generate.h"
#include "reference/model.h"
#include "test/test_corpus.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

using namespace llama;
using namespace llama::ref;

namespace {

ModelConfig gen_config(bool osr) {
    ModelConfig c = preset(osr ? "tiny-osr" : "tiny");
    c.vocab_size = 61;
    c.n_heads = 6;
    c.n_kv_heads = osr ? 6 : 2;
    c.head_dim = 10;
    if (!osr) {
        c.rope_scaling.enabled = true;
        c.rope_scaling.factor = 8;
        c.rope_scaling.original_max_position = 16;
    }
    c.init_std = 0.2f;
    return c;
}

Model<double> random_model(const ModelConfig& c) {
    Model<double> m(c);
    m.init(17);
    Rng rng(4);
    for (const ParamTensor& t : m.layout().tensors())
        if (t.kind == ParamKind::Bias || t.kind == ParamKind::Norm)
            for (int64_t i = 0; i < t.numel; ++i) m.params()[t.offset + i] += 0.2 * rng.normal();
    return m;
}

// Logits for the next token after `tokens`, by the full forward.
std::vector<double> full_forward_last(Model<double>& m, const std::vector<int>& tokens) {
    std::vector<int> targets(tokens.size(), kIgnoreIndex);
    m.forward(tokens.data(), targets.data(), 1, int(tokens.size()));
    const int V = m.config().vocab_size;
    return std::vector<double>(m.activations().logits.end() - V, m.activations().logits.end());
}

}  // namespace

TEST_CASE("the KV-cache step equals the full forward at every position", "[generate]") {
    for (bool osr : {false, true}) {
        INFO((osr ? "open-sci-ref style" : "Llama-3.2 style"));
        ModelConfig c = gen_config(osr);
        Model<double> m = random_model(c);
        ModelWeights<double> w = bind_weights(c, m.layout(), m.params().data());
        Rng rng(8);
        std::vector<int> tokens;
        for (int i = 0; i < 23; ++i) tokens.push_back(int(rng.below(c.vocab_size)));
        std::vector<int> targets(tokens.size(), kIgnoreIndex);
        m.forward(tokens.data(), targets.data(), 1, int(tokens.size()));
        const std::vector<double> all = m.activations().logits;
        KvCache<double> cache(c, 32);
        double worst = 0;
        for (size_t t = 0; t < tokens.size(); ++t) {
            std::vector<double> step = cache.step(w, tokens[t]);
            for (int v = 0; v < c.vocab_size; ++v)
                worst = std::max(worst, std::abs(step[v] - all[t * c.vocab_size + v]));
        }
        CHECK(worst < 1e-12);
        CHECK(cache.length() == 23);
    }
}

TEST_CASE("generation with the KV cache equals generation without it", "[generate]") {
    ModelConfig c = gen_config(false);
    Model<double> m = random_model(c);
    ModelWeights<double> w = bind_weights(c, m.layout(), m.params().data());
    const std::vector<int> prompt = {3, 14, 15, 9, 26, 5};
    Sampling greedy;
    greedy.temperature = 0;
    Sampling sampled;
    sampled.temperature = 0.8;
    sampled.top_k = 20;
    sampled.top_p = 0.9;
    for (const Sampling& s : {greedy, sampled}) {
        const int n = 24;
        std::vector<int> cached = generate(c, w, prompt, n, s, 99);
        // Without the cache: the full forward over everything so far, each step.
        std::vector<int> seq = prompt, plain;
        Rng rng(99);
        for (int i = 0; i < n; ++i) {
            int next = sample_token(full_forward_last(m, seq), s, rng);
            plain.push_back(next);
            seq.push_back(next);
        }
        INFO("temperature " << s.temperature);
        CHECK(cached == plain);
    }
}

TEST_CASE("sampling keeps to temperature, top-k and top-p", "[generate]") {
    const std::vector<double> logits = {1.0, 3.0, 2.0, 0.5, 2.9};  // order: 1, 4, 2, 0, 3
    Rng rng(1);
    Sampling s;
    s.temperature = 0;
    CHECK(sample_token(logits, s, rng) == 1);
    s.temperature = 1;
    s.top_k = 1;
    for (int i = 0; i < 50; ++i) CHECK(sample_token(logits, s, rng) == 1);
    s.top_k = 2;
    std::map<int, int> seen;
    for (int i = 0; i < 2000; ++i) seen[sample_token(logits, s, rng)]++;
    CHECK(seen.size() == 2);
    CHECK(seen.count(1));
    CHECK(seen.count(4));
    // Empirical frequencies follow softmax(logits / temperature).
    s.top_k = 0;
    s.temperature = 0.7;
    std::vector<double> p(5);
    double z = 0;
    for (int i = 0; i < 5; ++i) z += (p[i] = std::exp(logits[i] / 0.7));
    std::vector<int> count(5);
    const int draws = 40000;
    for (int i = 0; i < draws; ++i) count[sample_token(logits, s, rng)]++;
    for (int i = 0; i < 5; ++i) {
        double expect = p[i] / z;
        double sd = std::sqrt(expect * (1 - expect) / draws);
        INFO("token " << i << ": " << double(count[i]) / draws << " vs " << expect);
        CHECK(std::abs(double(count[i]) / draws - expect) < 5 * sd);
    }
    // top-p: with probabilities about (0.41, 0.37, 0.15, ...) p = 0.5 keeps the top two.
    s.temperature = 1;
    s.top_p = 0.5;
    seen.clear();
    for (int i = 0; i < 2000; ++i) seen[sample_token(logits, s, rng)]++;
    CHECK(seen.size() == 2);
    CHECK(seen.count(1));
    CHECK(seen.count(4));
}

TEST_CASE("a full KV cache and bad tokens are refused", "[generate]") {
    ModelConfig c = gen_config(true);
    Model<double> m = random_model(c);
    ModelWeights<double> w = bind_weights(c, m.layout(), m.params().data());
    KvCache<double> cache(c, 2);
    cache.step(w, 1);
    CHECK_THROWS_WITH(cache.step(w, 61), Catch::Contains("token id 61"));
    cache.step(w, 2);
    CHECK_THROWS_WITH(cache.step(w, 3), Catch::Contains("full"));
}

TEST_CASE("the generate command samples reproducibly from a checkpoint and an exported folder", "[generate]") {
    char dir_t[] = "/tmp/llama_gen_XXXXXX";
    REQUIRE(mkdtemp(dir_t));
    const std::string dir = dir_t;
    REQUIRE(std::system(("build/train_llama_cpu --preset tiny --text " + testcorpus::kjv_path() +
                         " --steps 3 --batch 2 --seq-len 16 --val-every 0 --checkpoint-dir " + dir + "/ck > /dev/null")
                            .c_str()) == 0);
    REQUIRE(std::system(("build/export_model --checkpoint " + dir + "/ck/step_00000003 --hf " + dir + "/hf > /dev/null")
                            .c_str()) == 0);
    auto run = [&](const std::string& args) {
        testcorpus::CommandResult r = testcorpus::run_command("build/generate " + args);
        return std::make_pair(r.status, r.output);
    };
    auto a = run("--checkpoint " + dir + "/ck/step_00000003 --prompt Amen --tokens 30 --seed 5");
    auto b = run("--hf " + dir + "/hf --prompt Amen --tokens 30 --seed 5");
    auto c = run("--hf " + dir + "/hf --prompt Amen --tokens 30 --seed 6");
    CHECK(a.first == 0);
    CHECK(a.second.rfind("Amen", 0) == 0);
    CHECK(a.second.size() >= 34);
    CHECK(a.second == b.second);  // the same weights through either container
    CHECK(a.second != c.second);  // another seed, another sample
    auto bad = run("--checkpoint " + dir + "/nowhere");
    CHECK(bad.first != 0);
    CHECK_THAT(bad.second, Catch::Contains("nowhere"));
    std::system(("rm -rf " + dir).c_str());
}
