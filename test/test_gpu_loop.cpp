// The training loop's GPU build against its CPU build. train_llama_emu runs the
// CUDA kernels of gpu/model.cuh in the emulator; train_llama_cpu runs the fp32
// CPU reference ops, which test_torch_reference proves against PyTorch. Same
// loop, same seed, same data: the first step's loss and every gradient tensor
// must agree to bf16 accuracy, and 20 steps later the losses still agree.
// Then the GPU build's own properties: recomputation changes nothing, the
// emulator's block and stream order changes nothing, and a few steps are clean
// under the race and memory checkers.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "lifecycle/safetensors.h"
#include "model/config.h"
#include "model/params.h"
#include "test/test_corpus.h"

#ifndef LLAMA_BUILD_DIR
#define LLAMA_BUILD_DIR "build"
#endif

namespace {

const std::string kBuild = LLAMA_BUILD_DIR;

struct Run {
    std::string output;
    std::vector<double> losses;  // per step, from the JSONL log
    std::vector<std::string> loss_text;
};

std::string temp_path(const std::string& name) {
    return "/tmp/llama_gpu_loop_" + std::to_string(getpid()) + "_" + name;
}

Run train(const std::string& binary, const std::string& args, const std::string& env = "") {
    const std::string jsonl = temp_path("log.jsonl");
    std::remove(jsonl.c_str());
    Run r;
    testcorpus::CommandResult c =
        testcorpus::run_command(env + " " + kBuild + "/" + binary + " " + args + " --log-jsonl " + jsonl);
    r.output = c.output;
    INFO(binary << " " << args << "\n" << c.output);
    REQUIRE(c.status == 0);
    std::ifstream in(jsonl);
    std::string line;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line);
        r.losses.push_back(j["loss"].get<double>());
        r.loss_text.push_back(j["loss"].dump());
    }
    std::remove(jsonl.c_str());
    return r;
}

std::string common(const std::string& preset, int steps) {
    return "--preset " + preset + " --text " + testcorpus::kjv_path() + " --steps " + std::to_string(steps) +
           " --batch 4 --micro-batch 2 --seq-len 37 --lr 3e-3 --warmup 5 --seed 5 --val-every 0 --log-every 1";
}

std::map<std::string, std::vector<float>> read_grads(const std::string& path, const llama::ParamLayout& layout) {
    llama::safetensors::Reader r(path);
    std::map<std::string, std::vector<float>> out;
    for (const llama::ParamTensor& t : layout.tensors()) {
        std::vector<float> v(t.numel);
        r.read(t.name, llama::safetensors::DType::F32, t.shape, v.data());
        out[t.name] = v;
    }
    return out;
}

}  // namespace

TEST_CASE("the emulated GPU step equals the CPU reference step: loss and every gradient", "[gpu-loop]") {
    for (const char* preset : {"tiny", "tiny-osr"}) {  // tiny-osr: QK-norm and biases
        INFO("preset " << preset);
        const std::string cpu_grads = temp_path("cpu.safetensors"), emu_grads = temp_path("emu.safetensors");
        Run cpu = train("train_llama_cpu", common(preset, 1) + " --debug-dump-grads " + cpu_grads);
        Run emu = train("train_llama_emu", common(preset, 1) + " --debug-dump-grads " + emu_grads);
        REQUIRE(cpu.losses.size() == 1);
        REQUIRE(emu.losses.size() == 1);
        CHECK(std::abs(emu.losses[0] - cpu.losses[0]) / cpu.losses[0] < 1e-2);
        const llama::ParamLayout layout(llama::preset(preset));
        auto gc = read_grads(cpu_grads, layout), ge = read_grads(emu_grads, layout);
        // bf16 tolerance per tensor: the error's norm against the gradient's norm
        // (bf16 keeps 8 bits, a relative 2^-9 per rounding; the step rounds its
        // activations some ten times on the way), and every element within a
        // few percent of the tensor's largest.
        double worst = 0;
        for (const llama::ParamTensor& t : layout.tensors()) {
            const std::vector<float>&a = gc[t.name], &b = ge[t.name];
            double diff2 = 0, ref2 = 0, max_ref = 0, max_diff = 0;
            for (size_t i = 0; i < a.size(); ++i) {
                diff2 += double(a[i] - b[i]) * (a[i] - b[i]);
                ref2 += double(a[i]) * a[i];
                max_ref = std::max(max_ref, double(std::abs(a[i])));
                max_diff = std::max(max_diff, double(std::abs(a[i] - b[i])));
            }
            const double rel = std::sqrt(diff2 / ref2);
            worst = std::max(worst, rel);
            INFO(t.name << ": relative error " << rel << ", largest difference " << max_diff << " of " << max_ref);
            CHECK(ref2 > 0);
            CHECK(rel < 2e-2);
            CHECK(max_diff <= 0.05 * max_ref);
        }
        WARN(preset << ": worst per-tensor relative gradient error " << worst);
        std::remove(cpu_grads.c_str());
        std::remove(emu_grads.c_str());
    }
}

TEST_CASE("after 20 steps the emulated GPU run and the CPU run still agree", "[gpu-loop]") {
    Run cpu = train("train_llama_cpu", common("tiny", 20));
    Run emu = train("train_llama_emu", common("tiny", 20));
    REQUIRE(cpu.losses.size() == 20);
    REQUIRE(emu.losses.size() == 20);
    for (int s = 0; s < 20; ++s) {
        INFO("step " << s + 1 << ": cpu " << cpu.losses[s] << ", emulated GPU " << emu.losses[s]);
        CHECK(std::abs(emu.losses[s] - cpu.losses[s]) / cpu.losses[s] < 0.02);
    }
    CHECK(emu.losses.back() < emu.losses.front() - 0.5);  // and it learns
}

TEST_CASE("recomputation and the emulator's block and stream order change no bit", "[gpu-loop]") {
    const std::string args = common("tiny-osr", 3);
    Run base = train("train_llama_emu", args);
    Run recompute = train("train_llama_emu", args + " --recompute");
    Run reordered = train("train_llama_emu", args, "EMU_SEED=11 EMU_THREADS=1");
    REQUIRE(base.loss_text.size() == 3);
    CHECK(recompute.loss_text == base.loss_text);
    CHECK(reordered.loss_text == base.loss_text);
    CHECK_THAT(recompute.output, Catch::Contains("recomputation saves"));
}

TEST_CASE("a few emulated GPU steps are clean under the race and memory checkers", "[gpu-loop][sanitizers]") {
    for (const char* checker : {"train_llama_emu_tsan", "train_llama_emu_asan"}) {
        // Odd shapes: 37 tokens, QK-norm and biases, accumulation, recomputation;
        // one optimizer step and one validation batch (the race checker is slow).
        const std::string args = "--preset tiny-osr --text " + testcorpus::kjv_path() +
                                 " --steps 1 --batch 2 --micro-batch 1 --seq-len 37 --seed 5 --val-every 0 "
                                 "--val-batches 1 --log-every 1 --recompute";
        testcorpus::CommandResult c = testcorpus::run_command(kBuild + "/" + checker + " " + args);
        INFO(checker << "\n" << c.output);
        CHECK(c.status == 0);
        CHECK(c.output.find("WARNING: ThreadSanitizer") == std::string::npos);
        CHECK(c.output.find("ERROR: AddressSanitizer") == std::string::npos);
        CHECK(c.output.find("runtime error:") == std::string::npos);
        CHECK_THAT(c.output, Catch::Contains("step     1/1 | loss"));
        CHECK_THAT(c.output, Catch::Contains("step     1/1 | val loss"));
    }
}
