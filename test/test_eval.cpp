// Multiple-choice evaluation scored as lm-evaluation-harness does, on a
// hand-computed case, and the log-likelihood of a continuation against the
// log-softmax of the full forward's logits.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "lifecycle/eval_mc.h"
#include "model/rng.h"
#include "reference/generate.h"
#include "reference/model.h"

using namespace llama;

TEST_CASE("acc sums log-likelihoods; acc_norm divides by the choice's length in characters", "[eval]") {
    // Hand-computed: log-likelihoods -3, -4, -5 for choices of 10, 2 and 20 characters
    // ("é" is one character in two bytes). acc picks choice 0 (-3); acc_norm compares
    // -0.3, -2.0, -0.25 and picks choice 2.
    eval::McExample e;
    e.context = "ctx";
    e.choices = {"aaaaaaaaaa", "éé", "bbbbbbbbbbbbbbbbbbbb"};
    const std::map<std::string, double> ll = {{"aaaaaaaaaa", -3}, {"éé", -4}, {"bbbbbbbbbbbbbbbbbbbb", -5}};
    auto tok = [](const std::string& s) {
        std::vector<int> v;
        for (unsigned char c : s) v.push_back(c);
        return v;
    };
    auto loglik = [&](const std::vector<int>&, const std::vector<int>& cont) {
        std::string s(cont.begin(), cont.end());
        return ll.at(s);
    };
    e.label = 0;
    eval::McResult r = eval::score_mc({e}, tok, loglik);
    CHECK(r.n == 1);
    CHECK(r.acc == 1.0);
    CHECK(r.acc_norm == 0.0);
    e.label = 2;
    eval::McExample other = e;
    other.label = 1;
    r = eval::score_mc({e, other}, tok, loglik);
    CHECK(r.acc == 0.0);
    CHECK(r.acc_norm == 0.5);
    CHECK(eval::utf8_length("éé") == 2);
    CHECK(eval::utf8_length("a€😀") == 3);
}

TEST_CASE("multiple-choice files with errors name the file and line", "[eval]") {
    const std::string path = "/tmp/llama_test_mc.jsonl";
    auto write = [&](const std::string& text) { std::ofstream(path, std::ios::trunc) << text; };
    write(
        "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"label\": 1}\n\n{\"context\": \"a\", \"choices\": [\"b\", "
        "\"c\"], \"label\": 0}\n");
    CHECK(eval::read_mc_jsonl(path).size() == 2);
    write(
        "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"label\": 1}\n{\"context\": \"a\", \"choices\": [\"b\"], "
        "\"label\": 0}\n");
    CHECK_THROWS_WITH(eval::read_mc_jsonl(path), Catch::Contains(path + ":2") && Catch::Contains("two choices"));
    write("{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"label\": 2}\n");
    CHECK_THROWS_WITH(eval::read_mc_jsonl(path), Catch::Contains(":1") && Catch::Contains("label 2"));
    write("not json\n");
    CHECK_THROWS_WITH(eval::read_mc_jsonl(path), Catch::Contains(path + ":1"));
    write("");
    CHECK_THROWS_WITH(eval::read_mc_jsonl(path), Catch::Contains("no examples"));
    CHECK_THROWS_WITH(eval::read_mc_jsonl("/nonexistent.jsonl"), Catch::Contains("/nonexistent.jsonl"));
}

TEST_CASE("the log-likelihood of a continuation is the sum of its tokens' log-softmax", "[eval]") {
    ModelConfig c = preset("tiny-osr");
    c.vocab_size = 29;
    c.init_std = 0.3f;
    ref::Model<double> m(c);
    m.init(12);
    const std::vector<int> ctx = {1, 5, 9, 2, 7}, cont = {3, 3, 28};
    const double ll = ref::continuation_loglik(m, ctx, cont);
    // By hand: log-softmax of the full forward's logits at the positions before each continuation token.
    std::vector<int> all = ctx;
    all.insert(all.end(), cont.begin(), cont.end());
    std::vector<int> targets(all.size(), ref::kIgnoreIndex);
    m.forward(all.data(), targets.data(), 1, int(all.size()));
    double expect = 0;
    for (size_t i = 0; i < cont.size(); ++i) {
        const double* z = m.activations().logits.data() + (ctx.size() - 1 + i) * c.vocab_size;
        double mx = *std::max_element(z, z + c.vocab_size), sum = 0;
        for (int v = 0; v < c.vocab_size; ++v) sum += std::exp(z[v] - mx);
        expect += z[cont[i]] - mx - std::log(sum);
    }
    CHECK(ll == Approx(expect).epsilon(1e-12));
    CHECK(ll < 0);
}
