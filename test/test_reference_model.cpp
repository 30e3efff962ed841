// The whole reference model: every parameter's gradient against finite
// differences (double precision) for a Llama-3.2-style and an open-sci-ref-style
// tiny config, and the properties a training step relies on; documents packed
// into sequences (doc_starts) give what they give one per sequence.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
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

// ||a - b|| / ||b|| over one tensor of two flat buffers.
template <typename T>
double relative_error(const std::vector<T>& a, const std::vector<T>& b, int64_t off, int64_t n) {
    double diff = 0, ref = 0;
    for (int64_t i = off; i < off + n; ++i) {
        diff += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
        ref += double(b[i]) * double(b[i]);
    }
    return std::sqrt(diff) / std::max(std::sqrt(ref), 1e-30);
}

// K documents of different lengths, some targets ignored, run packed into two
// sequences of 12 with doc_starts, and run one per sequence (each padded to 12
// with random tokens whose targets are ignored, documents in reverse order): the loss is the mean over the
// same counted targets, and every gradient and every query and key after RoPE
// is the same, up to rounding.
template <typename T>
void check_packing_invisible(const ModelConfig& config, double tolerance) {
    const int kLen = 12;
    const std::vector<int> lengths = {5, 1, 6, 3, 8};  // 5 + 1 + 6 | 3 + 8 + one padding token
    const std::vector<int> row = {0, 0, 0, 1, 1};      // the packed sequence of each document
    const int K = int(lengths.size());
    Rng rng(31);
    std::vector<std::vector<int>> doc_tokens(K), doc_targets(K);
    for (int d = 0; d < K; ++d)
        for (int i = 0; i < lengths[d]; ++i) {
            doc_tokens[d].push_back(int(rng.below(config.vocab_size)));
            doc_targets[d].push_back(int(rng.below(config.vocab_size)));
        }
    doc_targets[0][4] = kIgnoreIndex;  // a document's last target
    doc_targets[2][0] = kIgnoreIndex;  // a document's first target
    doc_targets[4][3] = kIgnoreIndex;
    doc_targets[4][5] = kIgnoreIndex;

    // Packed: [2, kLen]; the token after the last document is a document of its
    // own with its target ignored.
    std::vector<int> packed_tokens(2 * kLen), packed_targets(2 * kLen, kIgnoreIndex), starts(2 * kLen);
    std::vector<int> fill = {0, 0}, begins(K);
    for (int d = 0; d < K; ++d) {
        const int b = row[d], begin = fill[b];
        begins[d] = begin;
        for (int i = 0; i < lengths[d]; ++i) {
            packed_tokens[b * kLen + begin + i] = doc_tokens[d][i];
            packed_targets[b * kLen + begin + i] = doc_targets[d][i];
            starts[b * kLen + begin + i] = begin;
        }
        fill[b] += lengths[d];
    }
    REQUIRE(fill[0] == kLen);
    REQUIRE(fill[1] == kLen - 1);
    packed_tokens[2 * kLen - 1] = int(rng.below(config.vocab_size));
    starts[2 * kLen - 1] = kLen - 1;

    // One per sequence: [K, kLen], padded, in the reverse order (so that the
    // sums over tokens run in another order than packed).
    std::vector<int> single_tokens(K * kLen), single_targets(K * kLen, kIgnoreIndex);
    for (int d = 0; d < K; ++d)
        for (int i = 0; i < kLen; ++i) {
            const int b = K - 1 - d;
            single_tokens[b * kLen + i] = i < lengths[d] ? doc_tokens[d][i] : int(rng.below(config.vocab_size));
            if (i < lengths[d]) single_targets[b * kLen + i] = doc_targets[d][i];
        }

    Model<double> init(config);
    randomize_all(init, 4321);
    Model<T> packed(config), single(config);
    std::copy(init.params().begin(), init.params().end(), packed.params().begin());
    std::copy(init.params().begin(), init.params().end(), single.params().begin());
    packed.zero_grad();
    const double loss_packed = packed.forward(packed_tokens.data(), packed_targets.data(), 2, kLen, starts.data());
    packed.backward();
    single.zero_grad();
    const double loss_single = single.forward(single_tokens.data(), single_targets.data(), K, kLen);
    single.backward();
    CHECK(packed.activations().counted == single.activations().counted);
    INFO(config.name << ": loss packed " << loss_packed << ", one per sequence " << loss_single);
    CHECK(std::abs(loss_packed - loss_single) <= tolerance * std::abs(loss_single));
    double worst = 0;
    for (const ParamTensor& t : packed.layout().tensors()) {
        const double e = relative_error(packed.grads(), single.grads(), t.offset, t.numel);
        INFO(t.name << ": gradient relative error " << e);
        CHECK(e < tolerance);
        worst = std::max(worst, e);
    }
    // Every layer's queries and keys after RoPE, token by token: RoPE positions
    // restart at each document (the loss alone would not show positions
    // shifted alike within a document, attention depending on differences).
    double worst_rope = 0;
    for (int l = 0; l < config.n_layers; ++l) {
        const LayerActivations<T>& P = packed.activations().layers[l];
        const LayerActivations<T>& S = single.activations().layers[l];
        for (int which = 0; which < 2; ++which) {
            const std::vector<T>& p = which ? P.k_rope : P.q_rope;
            const std::vector<T>& s = which ? S.k_rope : S.q_rope;
            const int64_t width = (which ? config.n_kv_heads : config.n_heads) * config.head_dim;
            std::vector<T> from_packed, from_single;
            for (int d = 0; d < K; ++d)
                for (int i = 0; i < lengths[d]; ++i) {
                    const int64_t at_p = (int64_t(row[d]) * kLen + begins[d] + i) * width;
                    const int64_t at_s = (int64_t(K - 1 - d) * kLen + i) * width;
                    from_packed.insert(from_packed.end(), p.begin() + at_p, p.begin() + at_p + width);
                    from_single.insert(from_single.end(), s.begin() + at_s, s.begin() + at_s + width);
                }
            const double e = relative_error(from_packed, from_single, 0, int64_t(from_single.size()));
            INFO("layer " << l << (which ? " keys" : " queries") << " after RoPE: relative error " << e);
            CHECK(e < tolerance);
            worst_rope = std::max(worst_rope, e);
        }
    }
    // The same packed batch without doc_starts lets documents see each other:
    // the test's batch is one where that shows.
    const double loss_unmasked = packed.forward(packed_tokens.data(), packed_targets.data(), 2, kLen);
    CHECK(std::abs(loss_unmasked - loss_single) > 1e-3 * std::abs(loss_single));
    std::printf(
        "packed vs one document per sequence, %s %s: relative error of the loss %.2e, worst gradient %.2e, worst "
        "queries or keys after RoPE %.2e\n",
        sizeof(T) == 4 ? "fp32" : "fp64", config.name.c_str(),
        std::abs(loss_packed - loss_single) / std::abs(loss_single), worst, worst_rope);
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

TEST_CASE("packing documents into sequences is invisible: same loss and gradients as one per sequence", "[model]") {
    check_packing_invisible<float>(llama32_like(), 1e-5);
    check_packing_invisible<float>(osr_like(), 1e-5);
    check_packing_invisible<double>(llama32_like(), 1e-10);
    check_packing_invisible<double>(osr_like(), 1e-10);
}

TEST_CASE("doc_starts of one document per sequence change nothing", "[model]") {
    ModelConfig c = osr_like();
    const int B = 2, T = 7;
    Model<double> with(c), without(c);
    randomize_all(with, 6);
    randomize_all(without, 6);
    Batch batch = random_batch(B, T, c.vocab_size, 9, true);
    std::vector<int> zeros(B * T, 0);
    with.zero_grad();
    without.zero_grad();
    CHECK(with.forward(batch.tokens.data(), batch.targets.data(), B, T, zeros.data()) ==
          without.forward(batch.tokens.data(), batch.targets.data(), B, T));
    with.backward();
    without.backward();
    CHECK(with.grads() == without.grads());
}

TEST_CASE("bad document starts are refused with std::invalid_argument", "[model]") {
    ModelConfig c = llama32_like();
    Model<float> m(c);
    m.init(1);
    const int T = 6;
    std::vector<int> tokens(2 * T, 1), targets(2 * T, 2);
    auto forward = [&](std::vector<int> starts) {
        REQUIRE(starts.size() == tokens.size());
        return m.forward(tokens.data(), targets.data(), 2, T, starts.data());
    };
    CHECK_NOTHROW(forward({0, 0, 2, 2, 2, 5, /**/ 0, 1, 1, 1, 1, 1}));
    CHECK_NOTHROW(check_doc_starts(nullptr, 2, T));
    // A start past its position.
    CHECK_THROWS_AS(forward({0, 0, 3, 3, 3, 3, /**/ 0, 0, 0, 0, 0, 0}), std::invalid_argument);
    CHECK_THROWS_AS(forward({0, 0, 0, 0, 0, 0, /**/ 0, 0, 4, 4, 4, 4}), std::invalid_argument);
    // A jump back to an earlier document, and into the middle of one.
    CHECK_THROWS_WITH(forward({0, 0, 2, 2, 0, 0, /**/ 0, 0, 0, 0, 0, 0}),
                      Catch::Contains("sequence 0") && Catch::Contains("position 4"));
    CHECK_THROWS_AS(forward({0, 0, 0, 3, 3, 1, /**/ 0, 0, 0, 0, 0, 0}), std::invalid_argument);
    // A negative start.
    CHECK_THROWS_AS(forward({0, 0, -1, -1, -1, -1, /**/ 0, 0, 0, 0, 0, 0}), std::invalid_argument);
    // A nonzero first entry: of the first sequence, and of the second (which
    // must not continue the first's last document).
    CHECK_THROWS_AS(forward({1, 1, 1, 1, 1, 1, /**/ 0, 0, 0, 0, 0, 0}), std::invalid_argument);
    CHECK_THROWS_WITH(forward({0, 0, 2, 2, 2, 5, /**/ 5, 5, 5, 5, 5, 5}),
                      Catch::Contains("sequence 1") && Catch::Contains("position 0"));
    CHECK_THROWS_AS(check_doc_starts(std::vector<int>{0, 0, 2, 2, 0, 0}.data(), 1, T), std::invalid_argument);
}
