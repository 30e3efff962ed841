// The dry run: parameter groups, FLOPs per token, the largest micro-batch that
// fits, the step prediction and the report's text.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/dry_run.h"
#include "model/memory_plan.h"
#include "model/params.h"

using namespace llama;

namespace {

// 1235814400 -> "1,235,814,400" (the report's notation).
std::string thousands(int64_t n) {
    std::string d = std::to_string(n), out;
    for (size_t i = 0; i < d.size(); ++i) {
        if (i > 0 && (d.size() - i) % 3 == 0) out += ',';
        out += d[i];
    }
    return out;
}

int64_t group(const std::vector<ParamGroup>& groups, const std::string& name) {
    for (const ParamGroup& g : groups)
        if (g.name == name) return g.count;
    FAIL("no parameter group " << name);
    return -1;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("every preset's parameter groups sum to the layout and to the closed formula", "[dry-run]") {
    for (const std::string& name : preset_names()) {
        INFO("preset " << name);
        const ModelConfig c = preset(name);
        int64_t sum = 0;
        for (const ParamGroup& g : parameter_groups(c)) {
            CHECK(g.count >= 0);
            sum += g.count;
        }
        CHECK(sum == ParamLayout(c).total());
        CHECK(sum == parameter_count_formula(c));
        const int seq = std::min(c.max_seq_len, 256);
        const std::string report = dry_run_report(c, 2, seq, 1);
        CHECK(contains(report, thousands(sum)));
        CHECK(contains(report, ": equal"));
    }
}

TEST_CASE("zagreus-0.4b and llama-3.2-1b match their published parameter counts", "[dry-run]") {
    const ModelConfig z = preset("zagreus-0.4b");
    const std::vector<ParamGroup> g = parameter_groups(z);
    // vocab 128256, hidden 960, 32 layers, 15 query and 5 KV heads of 64, FFN 2560, tied.
    CHECK(group(g, "embedding") == 128256LL * 960);
    CHECK(group(g, "attention.q") == 32LL * 960 * 960);
    CHECK(group(g, "attention.k") == 32LL * 960 * 320);
    CHECK(group(g, "attention.v") == 32LL * 960 * 320);
    CHECK(group(g, "attention.o") == 32LL * 960 * 960);
    CHECK(group(g, "mlp.gate") == 32LL * 960 * 2560);
    CHECK(group(g, "mlp.up") == 32LL * 960 * 2560);
    CHECK(group(g, "mlp.down") == 32LL * 2560 * 960);
    CHECK(group(g, "norms") == 32LL * 2 * 960 + 960);
    CHECK(group(g, "biases") == 0);
    CHECK(group(g, "lm_head") == 0);
    CHECK(ParamLayout(z).total() == 437760960);
    CHECK(contains(dry_run_report(z, 4, 4096, 1), "437,760,960"));

    const ModelConfig l = preset("llama-3.2-1b");
    CHECK(ParamLayout(l).total() == 1235814400);
    CHECK(contains(dry_run_report(l, 1, 2048, 1), "1,235,814,400"));
}

TEST_CASE("an untied LM head is its own group and the matmul weights do not change", "[dry-run]") {
    ModelConfig c = preset("zagreus-0.4b");
    const int64_t tied_matmul = matmul_weight_count(c);
    c.tied_embeddings = false;
    const std::vector<ParamGroup> g = parameter_groups(c);
    CHECK(group(g, "lm_head") == 128256LL * 960);
    CHECK(ParamLayout(c).total() == 437760960LL + 128256LL * 960);
    // The LM head's matrix product is there either way; only the storage differs.
    CHECK(matmul_weight_count(c) == tied_matmul);
    CHECK(contains(dry_run_report(c, 1, 1024, 1), "lm head"));
}

TEST_CASE("FLOPs per token of zagreus-0.4b at seq 4096, worked out from the shapes", "[dry-run]") {
    const double V = 128256, C = 960, L = 32, H = 15, KV = 5, D = 64, F = 2560, T = 4096;
    const double attention_weights = C * H * D + 2 * C * KV * D + H * D * C;  // q, k, v, o
    const double mlp_weights = 3 * C * F;                                     // gate, up, down
    const double lm_head = V * C;                                             // tied: the embedding matrix
    const double expected = 6 * (L * (attention_weights + mlp_weights) + lm_head) + 6 * L * H * D * T;
    CHECK(expected == 3381166080.0);
    CHECK(flops_per_token(preset("zagreus-0.4b"), 4096) == Approx(expected).epsilon(1e-12));
    CHECK(matmul_weight_count(preset("zagreus-0.4b")) == 437698560);
    // The attention term grows with the sequence; the weight term does not.
    CHECK(flops_per_token(preset("zagreus-0.4b"), 8192) - flops_per_token(preset("zagreus-0.4b"), 4096) ==
          Approx(6 * L * H * D * 4096));
    CHECK(contains(flops_per_token_formula(), "seq_len"));
}

TEST_CASE("recomputation lowers activation memory and the report shows both", "[dry-run]") {
    for (const char* name : {"zagreus-0.4b", "osr-1.3b", "llama-3.2-1b"}) {
        INFO("preset " << name);
        const ModelConfig c = preset(name);
        const MemoryPlan full = plan_memory(c, 4, 4096, false), rec = plan_memory(c, 4, 4096, true);
        CHECK(rec.activation_bytes() < full.activation_bytes());
        CHECK(rec.total_bytes() < full.total_bytes());
        CHECK(rec.state_bytes() == full.state_bytes());
    }
    // zagreus-0.4b: 437.76M parameters -> 0.88 GB bf16, 1.75 GB master, 1.75 GB gradients, 3.50 GB moments.
    const std::string report = dry_run_report(preset("zagreus-0.4b"), 4, 4096, 1);
    CHECK(contains(report, "bf16 parameters                       0.88"));
    CHECK(contains(report, "fp32 master weights                   1.75"));
    CHECK(contains(report, "fp32 gradients                        1.75"));
    CHECK(contains(report, "AdamW moments (fp32 m and v)          3.50"));
    CHECK(contains(report, "activations"));
    CHECK(contains(report, "recompute"));
    // ZeRO-1 on 64 ranks keeps 5.25 / 64 = 0.08 GB of the 5.25 GB of master weights and moments: saves 5.17 GB.
    CHECK(contains(report, "ZeRO-1 (--zero)"));
    CHECK(contains(report, "     64                   0.08     5.17"));
    const MemoryPlan plan = plan_memory(preset("zagreus-0.4b"), 4, 4096, false);
    CHECK(plan.zero1_saving(1) == 0);
    CHECK(plan.zero1_saving(8) == (plan.master_bytes + plan.adam_bytes) / 8 * 7);
}

TEST_CASE("the largest micro-batch fits and one more does not", "[dry-run]") {
    for (const char* name : {"zagreus-0.4b", "osr-0.4b", "llama-3.2-1b"}) {
        const ModelConfig c = preset(name);
        for (bool recompute : {false, true}) {
            INFO("preset " << name << ", recompute " << recompute);
            const int b40 = largest_micro_batch(c, 4096, recompute, 0.95 * 40e9);
            const int b80 = largest_micro_batch(c, 4096, recompute, 0.95 * 80e9);
            CHECK(b80 >= b40);
            REQUIRE(b80 > 0);
            for (auto [b, budget] : {std::pair<int, double>{b40, 0.95 * 40e9}, {b80, 0.95 * 80e9}}) {
                if (b > 0) CHECK(double(plan_memory(c, b, 4096, recompute).total_bytes()) <= budget);
                CHECK(double(plan_memory(c, b + 1, 4096, recompute).total_bytes()) > budget);
            }
        }
        CHECK(largest_micro_batch(c, 4096, true, 0.95 * 80e9) >= largest_micro_batch(c, 4096, false, 0.95 * 80e9));
    }
    // Less memory than the optimizer state alone: nothing fits.
    CHECK(largest_micro_batch(preset("zagreus-0.4b"), 4096, true, 1e9) == 0);
}

TEST_CASE("predicted steps: faster on H100, linear in accumulation, MFU below one", "[dry-run]") {
    const ModelConfig c = preset("zagreus-0.4b");
    const DeviceSpec& a100 = device_spec("A100-SXM4-80GB");
    const DeviceSpec& h100 = device_spec("H100-SXM");
    for (bool recompute : {false, true}) {
        INFO("recompute " << recompute);
        const StepPrediction a = predict_step(c, 4, 4096, 1, recompute, a100);
        const StepPrediction h = predict_step(c, 4, 4096, 1, recompute, h100);
        CHECK(h.step_seconds < a.step_seconds);
        CHECK(h.tokens_per_second > a.tokens_per_second);
        for (const StepPrediction& p : {a, h}) {
            CHECK(p.mfu > 0);
            CHECK(p.mfu < 1);
            CHECK(p.step_seconds ==
                  Approx(p.matmul_seconds + p.attention_seconds + p.memory_bound_seconds + p.optimizer_seconds));
            CHECK(p.tokens_per_second == Approx(4.0 * 4096 / p.step_seconds));
        }
        const StepPrediction a2 = predict_step(c, 4, 4096, 2, recompute, a100);
        CHECK(a2.step_seconds / a.step_seconds > 1.8);
        CHECK(a2.step_seconds / a.step_seconds <= 2.0);
        CHECK(a2.optimizer_seconds == Approx(a.optimizer_seconds));  // once per step
    }
    // Recomputation costs extra kernels, never less time.
    CHECK(predict_step(c, 4, 4096, 1, true, h100).step_seconds > predict_step(c, 4, 4096, 1, false, h100).step_seconds);
    // The matmul share follows the assumed efficiency.
    CHECK(predict_step(c, 4, 4096, 1, false, h100, 0.35).matmul_seconds ==
          Approx(2 * predict_step(c, 4, 4096, 1, false, h100, 0.7).matmul_seconds).epsilon(0.01));
    CHECK_THROWS_AS(predict_step(c, 0, 4096, 1, false, h100), std::invalid_argument);
}

TEST_CASE("devices: the datasheet table and CUDA's device names", "[dry-run]") {
    for (const char* name : {"A100-SXM4-40GB", "A100-SXM4-80GB", "H100-SXM", "H100-PCIe", "H200"}) {
        INFO(name);
        const DeviceSpec& d = device_spec(name);
        CHECK(d.mem_bw > 1e12);
        CHECK(d.peak_flops > 1e14);
        CHECK(d.mem_bytes >= 40e9);
    }
    CHECK(device_spec("A100-SXM4-80GB").mem_bw == Approx(2.039e12));
    CHECK(device_spec("H100-SXM").mem_bw == Approx(3.35e12));
    CHECK(device_spec("H200").mem_bytes == Approx(141e9));
    CHECK_THROWS_AS(device_spec("B200"), std::invalid_argument);

    CHECK(peak_tflops_for_device("NVIDIA A100-SXM4-80GB") == Approx(312));
    CHECK(peak_tflops_for_device("NVIDIA A100-SXM4-40GB") == Approx(312));
    CHECK(peak_tflops_for_device("NVIDIA A100-PCIE-40GB") == Approx(312));
    CHECK(peak_tflops_for_device("NVIDIA H100 80GB HBM3") == Approx(989.4));
    CHECK(peak_tflops_for_device("NVIDIA H100 PCIe") == Approx(756));
    CHECK(peak_tflops_for_device("NVIDIA H200") == Approx(989.4));
    CHECK(peak_tflops_for_device("Quadro K600") == 0);
    CHECK(peak_tflops_for_device("NVIDIA A10") == 0);
    CHECK(peak_tflops_for_device("") == 0);
    REQUIRE(device_for_name("NVIDIA A100-SXM4-40GB") != nullptr);
    CHECK(device_for_name("NVIDIA A100-SXM4-40GB")->name == "A100-SXM4-40GB");
    CHECK(device_for_name("NVIDIA H100 80GB HBM3")->name == "H100-SXM");
}

TEST_CASE("the report is compact and says its timings are predictions", "[dry-run]") {
    const std::string r = dry_run_report(preset("zagreus-0.4b"), 4, 4096, 1);
    REQUIRE(!r.empty());
    CHECK(r.back() == '\n');
    const auto lines = std::count(r.begin(), r.end(), '\n');
    CHECK(lines >= 25);
    CHECK(lines <= 40);
    for (const char* part : {"A100-SXM4-80GB", "H100-SXM", "not measurements", "70% of dense bf16 peak",
                             "FLOPs per token at seq 4096: 3.381 GFLOP", "40 GB", "80 GB", "MFU"})
        CHECK(contains(r, part));
}
