// The CPU trainer end to end: it trains the tiny config on real text (the King
// James Bible, read as bytes) and the loss falls; its log lines carry step,
// loss, learning rate, gradient norm and tokens/s; bad flags and files end with
// a message naming the flag or file and a non-zero exit.
#include <catch2/catch.hpp>

#include "test/test_corpus.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>
#include <sys/wait.h>
#include <vector>

#ifndef LLAMA_TRAINER
#define LLAMA_TRAINER "build/train_llama_cpu"
#endif

namespace {

using Run = testcorpus::CommandResult;

Run run(const std::string& args) { return testcorpus::run_command(std::string(LLAMA_TRAINER) + " " + args); }

const std::string& bible_text() { return testcorpus::kjv_path(); }

}  // namespace

TEST_CASE("the CPU trainer's loss falls on the King James Bible", "[trainer]") {
    Run r = run("--preset tiny --text " + bible_text() +
                " --steps 60 --batch 8 --seq-len 64 --lr 3e-3 --warmup 10 --log-every 1 --val-every 30 --seed 1");
    INFO(r.output);
    REQUIRE(r.status == 0);
    std::regex line(R"(step +(\d+)/60 \| loss ([0-9.]+) \| lr ([0-9.e+-]+) \| grad norm ([0-9.]+) \| (\d+) tok/s)");
    std::vector<double> losses;
    for (std::sregex_iterator it(r.output.begin(), r.output.end(), line), end; it != end; ++it) {
        losses.push_back(std::stod((*it)[2]));
        CHECK(std::stod((*it)[3]) > 0);  // learning rate
        CHECK(std::stod((*it)[4]) > 0);  // gradient norm
        CHECK(std::stol((*it)[5]) > 0);  // tokens/s
    }
    REQUIRE(losses.size() == 60);
    // Uniform over 256 bytes is ln 256 = 5.55; English text as bytes falls well below.
    CHECK(losses.front() > 5.0);
    double tail = 0;
    for (size_t i = losses.size() - 10; i < losses.size(); ++i) tail += losses[i] / 10;
    CHECK(tail < losses.front() - 1.5);
    std::smatch val;
    REQUIRE(std::regex_search(r.output, val, std::regex(R"(step +60/60 \| val loss ([0-9.]+))")));
    CHECK(std::stod(val[1]) < losses.front() - 1.5);
}

TEST_CASE("the trainer is reproducible from its seed", "[trainer]") {
    const std::string args =
        "--preset tiny-osr --text " + bible_text() + " --steps 3 --batch 2 --seq-len 32 --log-every 1 --seed 9";
    Run a = run(args), b = run(args);
    REQUIRE(a.status == 0);
    std::regex loss(R"(loss ([0-9.]+))");
    auto losses = [&](const std::string& out) {
        std::vector<std::string> v;
        for (std::sregex_iterator it(out.begin(), out.end(), loss), end; it != end; ++it) v.push_back((*it)[1]);
        return v;
    };
    CHECK(losses(a.output).size() >= 3);
    CHECK(losses(a.output) == losses(b.output));
}

TEST_CASE("bad flags and files end with a clear message and a non-zero exit", "[trainer]") {
    struct Case {
        std::string args, expect;
    };
    const std::vector<Case> cases = {
        {"--preset nope --text " + bible_text(), "unknown preset 'nope'"},
        {"--text /nonexistent/corpus.txt", "/nonexistent/corpus.txt"},
        {"--config /nonexistent/config.json", "/nonexistent/config.json"},
        {"--text " + bible_text() + " --seq-len 100000", "--seq-len 100000 exceeds"},
        {"--text " + bible_text() + " --steps 0", "--steps"},
        {"--text " + bible_text() + " --lr banana", "--lr"},
        {"--text " + bible_text() + " --steps -5", "--steps: -5 is not positive: give a number greater than 0"},
        {"--text " + bible_text() + " --lr abc", "--lr: 'abc' is not a number"},
        {"--text " + bible_text() + " --warmup -1", "--warmup: -1 is negative: give 0 or more"},
        {"--preset tiny", "no training data"},
        {"--preset tiny --text " + bible_text() + " --attention-kernel 5", "--attention-kernel"},
        {"--preset tiny --text " + bible_text() + " --attention-kernel 4", "computes attention with the CPU reference"},
        {"--preset zagreus-0.4b --text " + bible_text() + " --dry-run --seq-len 8", ""},  // dry run: fine
    };
    for (const Case& c : cases) {
        Run r = run(c.args);
        INFO(c.args << "\n" << r.output);
        if (c.expect.empty()) {
            CHECK(r.status == 0);
            CHECK(r.output.find("parameters: 437.76M") != std::string::npos);
        } else {
            CHECK(r.status != 0);
            CHECK(r.output.find(c.expect) != std::string::npos);
        }
    }
}

// An error found after the start-up lines (the model, its parameters, the data)
// comes after them, as the last line, although those went to a buffered stdout.
TEST_CASE("an error is the last line printed", "[trainer]") {
    Run r = run("--preset tiny --text " + bible_text() + " --attention-kernel 4");
    INFO(r.output);
    CHECK(r.status != 0);
    std::string last = r.output.substr(0, r.output.find_last_not_of('\n') + 1);
    last = last.substr(last.rfind('\n') + 1);
    CHECK(last ==
          "train_llama: --attention-kernel picks a GPU kernel; train_llama_cpu computes attention with the "
          "CPU reference");
    CHECK(r.output.find("parameters:") < r.output.find("train_llama: --attention-kernel"));
}

TEST_CASE("gradient accumulation over micro-batches trains like the whole batch at once", "[trainer]") {
    const std::string common = "--preset tiny --text " + bible_text() +
                               " --steps 5 --batch-tokens 256 --seq-len 32 --log-every 1 --val-every 0 --seed 2";
    Run whole = run(common), micro = run(common + " --micro-batch 2");
    REQUIRE(whole.status == 0);
    REQUIRE(micro.status == 0);
    CHECK_THAT(micro.output, Catch::Contains("(4 micro-steps of 2)"));
    std::regex line(R"(step +(\d+)/5 \| loss ([0-9.]+) \| lr [0-9.e+-]+ \| grad norm ([0-9.]+))");
    auto values = [&](const std::string& out) {
        std::vector<std::string> v;
        for (std::sregex_iterator it(out.begin(), out.end(), line), end; it != end; ++it)
            v.push_back(std::string((*it)[2]) + " " + std::string((*it)[3]));
        return v;
    };
    CHECK(values(whole.output).size() == 5);
    CHECK(values(whole.output) == values(micro.output));  // the same to the printed digits
    Run bad = run(common + " --micro-batch 3");
    CHECK(bad.status != 0);
    CHECK_THAT(bad.output, Catch::Contains("not a multiple of --micro-batch 3"));
}

TEST_CASE("--init-std sets the spread of the initial weights", "[trainer]") {
    // At init the loss is near ln 256 = 5.55 for std 0.02; far larger weights give confident, wrong predictions.
    const std::string args = "--preset tiny --text " + bible_text() + " --steps 1 --batch 1 --seq-len 16 --log-every 1";
    std::regex loss(R"(step +1/1 \| loss ([0-9.]+))");
    std::smatch m;
    Run a = run(args), b = run(args + " --init-std 0.5");
    REQUIRE(a.status == 0);
    REQUIRE(b.status == 0);
    REQUIRE(std::regex_search(a.output, m, loss));
    CHECK(std::stod(m[1]) == Approx(std::log(256.0)).margin(0.2));
    REQUIRE(std::regex_search(b.output, m, loss));
    CHECK(std::stod(m[1]) > 8.0);
    CHECK(run(args + " --init-std 0").status != 0);
}
