// The whole reference model: every parameter's gradient against finite
// differences (double precision) for a Llama-3.2-style and an open-sci-ref-style
// tiny config, and the properties a training step relies on.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "model/rng.h"
#include "reference/model.h"
#include "test/fd_check.h"

using namespace llama;
using namespace llama::ref;

namespace {

// Odd sizes on purpose: 3 query heads over 1 KV head, head dim 6, sequence 7.
ModelConfig llama32_like() {
    ModelConfig c;
    c.name = "fd-llama3.2";
    c.vocab_size = 11;
    c.hidden = 10;
    c.n_layers = 2;
    c.n_heads = 3;
    c.n_kv_heads = 1;
    c.head_dim = 6;
    c.ffn_hidden = 9;
    c.max_seq_len = 16;
    c.rope_theta = 500000.0f;
    c.rope_scaling.enabled = true;
    c.rope_scaling.factor = 8;
    c.rope_scaling.original_max_position = 8;
    c.tied_embeddings = true;
    c.init_std = 0.5f;  // large weights so that no gradient is vanishingly small
    return c;
}

ModelConfig osr_like() {
    ModelConfig c = llama32_like();
    c.name = "fd-osr";
    c.n_kv_heads = 3;
    c.rope_theta = 10000.0f;
    c.rope_scaling.enabled = false;
    c.qk_norm = true;
    c.bias = true;
    return c;
}

struct Batch {
    std::vector<int> tokens, targets;
};

Batch random_batch(int B, int T, int V, uint64_t seed, bool with_ignored) {
    Rng rng(seed);
    Batch b;
    for (int i = 0; i < B * T; ++i) {
        b.tokens.push_back(int(rng.below(V)));
        b.targets.push_back(int(rng.below(V)));
    }
    if (with_ignored) {
        b.targets[2] = kIgnoreIndex;
        b.targets[B * T - 1] = kIgnoreIndex;
    }
    return b;
}

// Biases start at zero and norms at one; make them random so their gradients
// are tested away from the special point.
void randomize_all(Model<double>& m, uint64_t seed) {
    m.init(seed);
    Rng rng(seed + 99);
    for (const ParamTensor& t : m.layout().tensors())
        if (t.kind == ParamKind::Bias || t.kind == ParamKind::Norm)
            for (int64_t i = 0; i < t.numel; ++i)
                m.params()[t.offset + i] = (t.kind == ParamKind::Norm ? 1.0 : 0.0) + 0.3 * rng.normal();
}

void check_model_gradient(const ModelConfig& config) {
    const int B = 2, T = 7;
    Model<double> model(config);
    randomize_all(model, 1234);
    Batch batch = random_batch(B, T, config.vocab_size, 77, true);
    auto loss = [&] { return model.forward(batch.tokens.data(), batch.targets.data(), B, T); };
    loss();
    model.zero_grad();
    model.backward();
    const std::vector<double> grads = model.grads();
    // Check each named tensor on its own so a failure names it.
    for (const ParamTensor& t : model.layout().tensors()) {
        std::vector<double> x(model.params().begin() + t.offset, model.params().begin() + t.offset + t.numel);
        std::vector<double> g(grads.begin() + t.offset, grads.begin() + t.offset + t.numel);
        auto tensor_loss = [&] {
            std::copy(x.begin(), x.end(), model.params().begin() + t.offset);
            return loss();
        };
        fdtest::check_gradient(config.name + " " + t.name, x, g, tensor_loss, 1e-6, 1e-8, 1e-6);
        std::copy(x.begin(), x.end(), model.params().begin() + t.offset);
    }
}

}  // namespace

TEST_CASE("whole-model gradient of a Llama-3.2-style tiny config matches finite differences", "[model]") {
    check_model_gradient(llama32_like());
}

TEST_CASE("whole-model gradient of an open-sci-ref-style tiny config matches finite differences", "[model]") {
    check_model_gradient(osr_like());
}

TEST_CASE("whole-model gradient with untied embeddings matches finite differences", "[model]") {
    ModelConfig c = llama32_like();
    c.name = "fd-untied";
    c.tied_embeddings = false;
    check_model_gradient(c);
}

TEST_CASE("gradient accumulation over micro-batches equals the full batch", "[model]") {
    ModelConfig c = osr_like();
    const int B = 4, T = 5;
    Model<double> full(c), micro(c);
    full.init(5);
    micro.init(5);
    Batch batch = random_batch(B, T, c.vocab_size, 8, false);
    full.zero_grad();
    double loss_full = full.forward(batch.tokens.data(), batch.targets.data(), B, T);
    full.backward();
    micro.zero_grad();
    double loss_sum = 0;
    for (int half = 0; half < 2; ++half) {
        const int off = half * (B / 2) * T;
        loss_sum += micro.forward(batch.tokens.data() + off, batch.targets.data() + off, B / 2, T);
        micro.backward(0.5);
    }
    CHECK(loss_sum / 2 == Approx(loss_full).epsilon(1e-12));
    for (size_t i = 0; i < full.grads().size(); ++i)
        REQUIRE(micro.grads()[i] == Approx(full.grads()[i]).margin(1e-13).epsilon(1e-9));
}

TEST_CASE("a few AdamW steps on one batch drive the loss down", "[model]") {
    ModelConfig c = preset("tiny");
    Model<float> m(c);
    m.init(1);
    const int B = 2, T = 16;
    Batch batch = random_batch(B, T, c.vocab_size, 3, false);
    AdamWHyper h;
    h.lr = 3e-3;
    float first = 0, last = 0;
    for (int step = 1; step <= 30; ++step) {
        m.zero_grad();
        float loss = m.forward(batch.tokens.data(), batch.targets.data(), B, T);
        if (step == 1) first = loss;
        last = loss;
        m.backward();
        m.update(h, step, 1.0);
    }
    INFO("loss " << first << " -> " << last);
    CHECK(first == Approx(std::log(256.0)).margin(0.1));  // near uniform at init
    CHECK(last < first * 0.5f);
}

TEST_CASE("out-of-range tokens and over-long sequences are refused with a message", "[model]") {
    ModelConfig c = llama32_like();
    Model<float> m(c);
    m.init(1);
    std::vector<int> tokens(7, 1), targets(7, 2);
    tokens[3] = 11;  // vocab is 11
    CHECK_THROWS_WITH(m.forward(tokens.data(), targets.data(), 1, 7),
                      Catch::Contains("token id 11") && Catch::Contains("position 3"));
    tokens[3] = 1;
    targets[5] = -7;
    CHECK_THROWS_WITH(m.forward(tokens.data(), targets.data(), 1, 7), Catch::Contains("target id -7"));
    std::vector<int> long_tokens(17, 1), long_targets(17, 1);
    CHECK_THROWS_WITH(m.forward(long_tokens.data(), long_targets.data(), 1, 17), Catch::Contains("max_seq_len"));
}
