// generate: sample text from a checkpoint or a Hugging Face folder on the CPU,
// with a KV cache, temperature, top-k and top-p. The prompt is tokenized with
// the run's tokenizer (recorded in the checkpoint, or tokenizer.json in the
// folder, or --tokenizer), or read as bytes for byte-level models.
//
//   build/generate --checkpoint run/checkpoints/step_00000300 --prompt "And God said" --tokens 200
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "lifecycle/export.h"
#include "lifecycle/flag_checks.h"
#include "lifecycle/training_data.h"
#include "reference/generate.h"

using namespace llama;

int main(int argc, char** argv) {
    CLI::App app{"generate: sample text from a checkpoint or a Hugging Face folder (CPU, KV cache)"};
    std::string checkpoint_path, hf_dir, prompt = "\n", tokenizer;
    int tokens = 200;
    uint64_t seed = 1;
    ref::Sampling s;
    s.temperature = 0.8;
    s.top_k = 40;
    s.top_p = 0.95;
    auto* ck = app.add_option("--checkpoint", checkpoint_path, "checkpoint directory")->check(CLI::ExistingDirectory);
    app.add_option("--hf", hf_dir, "Hugging Face folder")->check(CLI::ExistingDirectory)->excludes(ck);
    app.add_option("--prompt", prompt, "text to continue")->capture_default_str();
    app.add_option("--tokenizer", tokenizer, "tokenizer.json (default: the run's)")->check(CLI::ExistingFile);
    app.add_option("--tokens", tokens, "tokens to generate")->capture_default_str()->check(llama::kPositive);
    app.add_option("--temperature", s.temperature, "0: greedy")->capture_default_str()->check(llama::kNonNegative);
    app.add_option("--top-k", s.top_k, "0: off")->capture_default_str()->check(llama::kNonNegative);
    app.add_option("--top-p", s.top_p, "1: off")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    app.add_option("--seed", seed, "sampling seed")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    try {
        ModelConfig config;
        std::vector<float> params;
        if (!hf_dir.empty()) {
            exporter::read_hf(hf_dir, config, params);
            if (tokenizer.empty() && std::filesystem::exists(hf_dir + "/tokenizer.json"))
                tokenizer = hf_dir + "/tokenizer.json";
        } else if (!checkpoint_path.empty()) {
            std::string recorded;
            exporter::read_checkpoint_model(checkpoint_path, config, params, &recorded);
            if (tokenizer.empty()) tokenizer = recorded;
        } else {
            std::fprintf(stderr, "generate: give --checkpoint DIR or --hf DIR\n");
            return 1;
        }
        TextCodec codec(tokenizer);
        if (codec.vocab_size() > size_t(config.vocab_size))
            throw std::runtime_error("the tokenizer has more tokens than the model's vocabulary");
        ParamLayout layout(config);
        std::vector<int> ids = codec.encode(prompt);
        std::vector<int> out = ref::generate(config, bind_weights(config, layout, params.data()), ids, tokens, s, seed);
        ids.insert(ids.end(), out.begin(), out.end());
        std::printf("%s\n", codec.decode(ids).c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "generate: %s\n", e.what());
        return 1;
    }
    return 0;
}
