// generate: sample text from a checkpoint or a Hugging Face folder on the CPU,
// with a KV cache, temperature, top-k and top-p. Byte-level models read the
// prompt as bytes and print bytes.
//
//   build/generate --checkpoint run/checkpoints/step_00000300 --prompt "And God said" --tokens 200
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "lifecycle/checkpoint.h"
#include "lifecycle/export.h"
#include "lifecycle/safetensors.h"
#include "reference/generate.h"

using namespace llama;

int main(int argc, char** argv) {
    CLI::App app{"generate: sample text from a checkpoint or a Hugging Face folder (CPU, KV cache)"};
    std::string checkpoint_path, hf_dir, prompt = "\n";
    int tokens = 200;
    uint64_t seed = 1;
    ref::Sampling s;
    s.temperature = 0.8;
    s.top_k = 40;
    s.top_p = 0.95;
    auto* ck = app.add_option("--checkpoint", checkpoint_path, "checkpoint directory")->check(CLI::ExistingDirectory);
    app.add_option("--hf", hf_dir, "Hugging Face folder")->check(CLI::ExistingDirectory)->excludes(ck);
    app.add_option("--prompt", prompt, "text to continue")->capture_default_str();
    app.add_option("--tokens", tokens, "tokens to generate")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--temperature", s.temperature, "0: greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_option("--top-k", s.top_k, "0: off")->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_option("--top-p", s.top_p, "1: off")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    app.add_option("--seed", seed, "sampling seed")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    try {
        ModelConfig config;
        std::vector<float> params;
        if (!hf_dir.empty()) {
            exporter::read_hf(hf_dir, config, params);
        } else if (!checkpoint_path.empty()) {
            checkpoint::verify(checkpoint_path);
            config = config_from_json(checkpoint::read_state(checkpoint_path).at("model").dump(),
                                      checkpoint_path + "/state.json");
            ParamLayout layout(config);
            params.resize(layout.total());
            safetensors::Reader r(checkpoint_path + "/model.safetensors");
            for (const ParamTensor& t : layout.tensors())
                r.read(t.name, safetensors::DType::F32, t.shape, params.data() + t.offset);
        } else {
            std::fprintf(stderr, "generate: give --checkpoint DIR or --hf DIR\n");
            return 1;
        }
        if (config.vocab_size != 256)
            throw std::runtime_error("only byte-level models (vocabulary 256) can be prompted with text here");
        ParamLayout layout(config);
        std::vector<int> ids(prompt.begin(), prompt.end());
        for (int& t : ids) t = (unsigned char)t;
        std::vector<int> out =
            ref::generate(config, bind_weights(config, layout, params.data()), ids, tokens, s, seed);
        std::string text(prompt);
        for (int t : out) text += char(t);
        std::printf("%s\n", text.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "generate: %s\n", e.what());
        return 1;
    }
    return 0;
}
