// The C++ reference against an independent PyTorch implementation
// (test/torch_reference.py, float64 autograd): the loss, every parameter
// gradient, every layer's queries and keys after RoPE (on the first batch),
// and the weights after 5 AdamW steps with clipping, for the fp32
// reference (relative error < 1e-5 per tensor) and the double one (< 1e-10);
// also with documents packed into the sequences (doc_starts), which PyTorch
// masks with an explicit block-diagonal causal mask and RoPE position ids that
// restart at each document.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "model/rng.h"
#include "reference/model.h"

#ifndef LLAMA_PYTHON
#define LLAMA_PYTHON "/usr/bin/python3"
#endif

using namespace llama;
using namespace llama::ref;
using nlohmann::json;

namespace {

const int kSteps = 5, kB = 2, kT = 9;

// A realistic pretraining learning rate. Adam's normalised step turns the fp32
// rounding of near-zero gradient elements into weight changes of order lr times
// their relative error, so the fp32 comparison of the weights after the steps
// tightens as lr falls; the fp64 comparison does not depend on it.
AdamWHyper test_hyper() {
    AdamWHyper h;
    h.lr = 1e-3;
    h.beta1 = 0.9;
    h.beta2 = 0.95;
    h.eps = 1e-8;
    h.weight_decay = 0.1;
    return h;
}
const double kMaxNorm = 1.0;

template <typename T>
void write_raw(const std::string& path, const std::vector<T>& v) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
    REQUIRE(out.good());
}

std::vector<double> read_f64(const std::string& path, size_t n) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    std::vector<double> v(n);
    in.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * sizeof(double)));
    REQUIRE(in.gcount() == std::streamsize(n * sizeof(double)));
    return v;
}

json config_json(const ModelConfig& c) {
    return {{"vocab_size", c.vocab_size},
            {"hidden", c.hidden},
            {"n_layers", c.n_layers},
            {"n_heads", c.n_heads},
            {"n_kv_heads", c.n_kv_heads},
            {"head_dim", c.head_dim},
            {"ffn_hidden", c.ffn_hidden},
            {"norm_eps", double(c.norm_eps)},
            {"rope_theta", double(c.rope_theta)},
            {"rope_scaling",
             {{"enabled", c.rope_scaling.enabled},
              {"factor", double(c.rope_scaling.factor)},
              {"low_freq_factor", double(c.rope_scaling.low_freq_factor)},
              {"high_freq_factor", double(c.rope_scaling.high_freq_factor)},
              {"original_max_position", c.rope_scaling.original_max_position}}},
            {"tied_embeddings", c.tied_embeddings},
            {"qk_norm", c.qk_norm},
            {"bias", c.bias}};
}

// ||a - b|| / ||b|| over n elements.
double relative_error(const double* a, const double* b, int64_t n) {
    double diff = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) {
        diff += (a[i] - b[i]) * (a[i] - b[i]);
        ref += b[i] * b[i];
    }
    return std::sqrt(diff) / std::max(std::sqrt(ref), 1e-30);
}

// The same over one tensor of two flat buffers.
double relative_error(const std::vector<double>& a, const std::vector<double>& b, int64_t off, int64_t n) {
    return relative_error(a.data() + off, b.data() + off, n);
}

// Packed batches: the document lengths of one sequence of kT tokens, in turns:
// documents of length 1 at the start, in the middle and at the end of a
// sequence, and a sequence that is one whole document. (Ignored targets fall
// where the random ones above do.)
const std::vector<std::vector<int>> kDocLayouts = {{3, 1, 5}, {9}, {1, 2, 6}, {4, 4, 1}, {2, 1, 1, 5}};

// doc_starts for kSteps batches of kB sequences, sequence i taking layout i mod
// the number of layouts, so that each layout appears at both batch rows.
std::vector<int> packed_doc_starts() {
    std::vector<int> starts;
    for (int i = 0; i < kSteps * kB; ++i) {
        const std::vector<int>& lengths = kDocLayouts[i % kDocLayouts.size()];
        int begin = 0;
        for (int n : lengths) {
            for (int j = 0; j < n; ++j) starts.push_back(begin);
            begin += n;
        }
        REQUIRE(begin == kT);
    }
    return starts;
}

template <typename T>
std::vector<double> as_double(const std::vector<T>& v) {
    return std::vector<double>(v.begin(), v.end());
}

template <typename T>
void compare_with_torch(const ModelConfig& config, double tolerance, bool packed = false) {
    // Weights: the project's init, with norms and biases perturbed so that they
    // are not at their special values 1 and 0.
    Model<double> init_model(config);
    init_model.init(2024);
    Rng rng(7);
    for (const ParamTensor& t : init_model.layout().tensors())
        if (t.kind == ParamKind::Bias || t.kind == ParamKind::Norm)
            for (int64_t i = 0; i < t.numel; ++i) init_model.params()[t.offset + i] += 0.1 * rng.normal();
    std::vector<int> tokens, targets;
    for (int i = 0; i < kSteps * kB * kT; ++i) {
        tokens.push_back(int(rng.below(config.vocab_size)));
        targets.push_back(rng.below(10) == 0 ? kIgnoreIndex : int(rng.below(config.vocab_size)));
    }
    const std::vector<int> doc_starts = packed ? packed_doc_starts() : std::vector<int>();

    char dir_template[] = "/tmp/llama_torch_XXXXXX";
    REQUIRE(mkdtemp(dir_template) != nullptr);
    const std::string dir = dir_template;
    json tensors = json::array();
    for (const ParamTensor& t : init_model.layout().tensors())
        tensors.push_back(
            {{"name", t.name}, {"shape", t.shape}, {"offset", t.offset}, {"numel", t.numel}, {"decay", t.decay}});
    const AdamWHyper h = test_hyper();
    json c = {{"config", config_json(config)},
              {"steps", kSteps},
              {"B", kB},
              {"T", kT},
              {"total", init_model.layout().total()},
              {"tensors", tensors},
              {"doc_starts", packed},
              {"hyper",
               {{"lr", h.lr},
                {"beta1", h.beta1},
                {"beta2", h.beta2},
                {"eps", h.eps},
                {"weight_decay", h.weight_decay},
                {"max_norm", kMaxNorm}}}};
    std::ofstream(dir + "/case.json") << c.dump(1);
    write_raw(dir + "/params.f64", init_model.params());
    write_raw(dir + "/tokens.i32", tokens);
    write_raw(dir + "/targets.i32", targets);
    if (packed) write_raw(dir + "/doc_starts.i32", doc_starts);

    const std::string cmd = std::string(LLAMA_PYTHON) + " test/torch_reference.py " + dir;
    INFO("running: " << cmd);
    REQUIRE(std::system(cmd.c_str()) == 0);
    json result = json::parse(std::ifstream(dir + "/result.json"));
    const int64_t total = init_model.layout().total();
    std::vector<double> torch_grads = read_f64(dir + "/grads.f64", total);
    std::vector<double> torch_after = read_f64(dir + "/params_after.f64", total);
    const int64_t N = int64_t(kB) * kT, q_size = N * config.n_heads * config.head_dim,
                  k_size = N * config.n_kv_heads * config.head_dim;
    std::vector<double> torch_q = read_f64(dir + "/rope_q.f64", config.n_layers * q_size);
    std::vector<double> torch_k = read_f64(dir + "/rope_k.f64", config.n_layers * k_size);

    Model<T> model(config);
    std::copy(init_model.params().begin(), init_model.params().end(), model.params().begin());
    std::vector<double> grads0;
    bool clipped = false;
    double worst_rope = 0;
    for (int step = 0; step < kSteps; ++step) {
        const int off = step * kB * kT;
        model.zero_grad();
        double loss = model.forward(tokens.data() + off, targets.data() + off, kB, kT,
                                    packed ? doc_starts.data() + off : nullptr);
        // The RoPE positions themselves: attention scores depend only on the
        // difference of two positions, so positions shifted alike within a
        // document (not restarted) would leave the loss and gradients as they are.
        if (step == 0)
            for (int l = 0; l < config.n_layers; ++l) {
                const LayerActivations<T>& A = model.activations().layers[l];
                const std::vector<double> q = as_double(A.q_rope), k = as_double(A.k_rope);
                REQUIRE(int64_t(q.size()) == q_size);
                REQUIRE(int64_t(k.size()) == k_size);
                double eq = relative_error(q.data(), torch_q.data() + l * q_size, q_size);
                double ek = relative_error(k.data(), torch_k.data() + l * k_size, k_size);
                INFO("layer " << l << ": queries after RoPE, relative error " << eq << ", keys " << ek);
                CHECK(eq < tolerance);
                CHECK(ek < tolerance);
                worst_rope = std::max({worst_rope, eq, ek});
            }
        model.backward();
        if (step == 0) grads0 = as_double(model.grads());
        double norm = model.update(h, step + 1, kMaxNorm);
        double torch_loss = result["losses"][step].get<double>();
        double torch_norm = result["grad_norms"][step].get<double>();
        INFO("step " << step << ": loss " << loss << " vs torch " << torch_loss << ", norm " << norm << " vs "
                     << torch_norm);
        CHECK(std::abs(loss - torch_loss) <= tolerance * std::abs(torch_loss));
        CHECK(std::abs(norm - torch_norm) <= tolerance * torch_norm);
        clipped |= torch_norm > kMaxNorm;
    }
    CHECK(clipped);  // the clipping path was exercised
    std::vector<double> after = as_double(model.params());
    double worst_grad = 0, worst_param = 0;
    for (const ParamTensor& t : model.layout().tensors()) {
        double eg = relative_error(grads0, torch_grads, t.offset, t.numel);
        double ep = relative_error(after, torch_after, t.offset, t.numel);
        INFO(t.name << ": gradient relative error " << eg << ", weights after " << kSteps << " steps " << ep);
        CHECK(eg < tolerance);
        CHECK(ep < tolerance);
        worst_grad = std::max(worst_grad, eg);
        worst_param = std::max(worst_param, ep);
    }
    // The weights must have moved, or the comparison after the steps says nothing.
    CHECK(relative_error(after, as_double(init_model.params()), 0, total) > 1e-3);
    std::printf(
        "torch %s vs %s reference, config %s%s: worst relative error: queries and keys after RoPE %.2e, "
        "gradients %.2e, weights after %d AdamW steps %.2e\n",
        result["torch"].get<std::string>().c_str(), sizeof(T) == 4 ? "fp32" : "fp64", config.name.c_str(),
        packed ? ", packed documents" : "", worst_rope, worst_grad, kSteps, worst_param);
    std::system(("rm -rf " + dir).c_str());
}

ModelConfig small(const char* name) {
    ModelConfig c;
    c.name = name;
    c.vocab_size = 37;
    c.hidden = 24;
    c.n_layers = 2;
    c.n_heads = 6;
    c.n_kv_heads = 2;
    c.head_dim = 6;
    c.ffn_hidden = 40;
    c.max_seq_len = 32;
    return c;
}

ModelConfig llama32_style() {
    ModelConfig c = small("llama3.2-style");
    c.rope_theta = 500000.0f;
    c.rope_scaling.enabled = true;
    c.rope_scaling.factor = 32;
    c.rope_scaling.original_max_position = 8;
    return c;
}

ModelConfig osr_style() {
    ModelConfig c = small("open-sci-ref-style");
    c.n_kv_heads = 6;
    c.qk_norm = true;
    c.bias = true;
    return c;
}

ModelConfig untied_style() {
    ModelConfig c = small("untied-gqa-3-over-1");
    c.n_heads = 3;
    c.n_kv_heads = 1;
    c.tied_embeddings = false;
    return c;
}

}  // namespace

TEST_CASE("fp32 reference matches PyTorch autograd and AdamW: Llama-3.2 style", "[torch]") {
    compare_with_torch<float>(llama32_style(), 1e-5);
}
TEST_CASE("fp32 reference matches PyTorch autograd and AdamW: open-sci-ref style", "[torch]") {
    compare_with_torch<float>(osr_style(), 1e-5);
}
TEST_CASE("fp32 reference matches PyTorch autograd and AdamW: untied, 3 heads over 1", "[torch]") {
    compare_with_torch<float>(untied_style(), 1e-5);
}
TEST_CASE("fp64 reference matches PyTorch to 1e-10 (every config)", "[torch]") {
    compare_with_torch<double>(llama32_style(), 1e-10);
    compare_with_torch<double>(osr_style(), 1e-10);
    compare_with_torch<double>(untied_style(), 1e-10);
}

TEST_CASE("fp32 reference with packed documents matches PyTorch's block-diagonal mask: Llama-3.2 style", "[torch]") {
    compare_with_torch<float>(llama32_style(), 1e-5, true);
}
TEST_CASE("fp32 reference with packed documents matches PyTorch's block-diagonal mask: open-sci-ref style", "[torch]") {
    compare_with_torch<float>(osr_style(), 1e-5, true);
}
TEST_CASE("fp32 reference with packed documents matches PyTorch's block-diagonal mask: untied, 3 heads over 1",
          "[torch]") {
    compare_with_torch<float>(untied_style(), 1e-5, true);
}
TEST_CASE("fp64 reference with packed documents matches PyTorch to 1e-10 (every config)", "[torch]") {
    compare_with_torch<double>(llama32_style(), 1e-10, true);
    compare_with_torch<double>(osr_style(), 1e-10, true);
    compare_with_torch<double>(untied_style(), 1e-10, true);
}
