// generate: sample text from a checkpoint or a Hugging Face folder on the CPU,
// with a KV cache, temperature, top-k and top-p. The prompt is tokenized with
// the run's tokenizer (recorded in the checkpoint, or tokenizer.json in the
// folder, or --tokenizer), or read as bytes for byte-level models.
// With --chat TEMPLATE the prompt is a user's message (after --system's, if
// any), rendered with the chat template (tokenizer/chat.h) and followed by the
// start of the assistant's turn; the answer stops at the end-of-turn token and
// is printed alone. --logits FILE also writes the logits at every prompt
// position (float32, [prompt tokens, vocabulary], row-major), for comparing
// this library's forward with another implementation's.
//
//   build/generate --checkpoint run/checkpoints/step_00000300 --prompt "And God said" --tokens 200
//   build/generate --hf chat-model --chat chatml --prompt "Continue: In the beginning" --temperature 0
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "lifecycle/export.h"
#include "lifecycle/file_io.h"
#include "lifecycle/flag_checks.h"
#include "lifecycle/training_data.h"
#include "reference/generate.h"
#include "tokenizer/chat.h"

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
    std::string chat, system;
    app.add_option("--chat", chat,
                   "chat template (chatml or llama3): the prompt is a user's message, the answer "
                   "stops at the end of turn")
        ->check(CLI::IsMember({"chatml", "llama3"}));
    app.add_option("--system", system, "with --chat: a system message first");
    std::string logits_path;
    app.add_option("--logits", logits_path,
                   "also write the logits at every prompt position to this file (float32, [prompt tokens, "
                   "vocabulary])");
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
        const ModelWeights<float> weights = bind_weights(config, layout, params.data());
        if (chat.empty()) {
            std::vector<int> ids = codec.encode(prompt);
            if (!logits_path.empty()) {
                ref::KvCache<float> cache(config, int(ids.size()));
                std::string bytes;
                for (int id : ids) {
                    const std::vector<float> logits = cache.step(weights, id);
                    bytes.append(reinterpret_cast<const char*>(logits.data()), logits.size() * sizeof(float));
                }
                fileio::write_file(logits_path, bytes);
            }
            std::vector<int> out = ref::generate(config, weights, ids, tokens, s, seed);
            ids.insert(ids.end(), out.begin(), out.end());
            std::printf("%s\n", codec.decode(ids).c_str());
            return 0;
        }
        if (!logits_path.empty()) throw std::runtime_error("--logits is for plain prompts, not --chat");
        if (tokenizer.empty()) throw std::runtime_error("--chat needs a tokenizer (the run read bytes)");
        const tok::Tokenizer t = tok::Tokenizer::from_file(tokenizer);
        const tok::ChatFormat format(t, tok::chat_template_by_name(chat));
        std::vector<tok::Message> messages;
        if (!system.empty()) messages.push_back({"system", system});
        messages.push_back({"user", prompt});
        std::vector<uint32_t> rendered;
        std::vector<uint8_t> trained;
        format.render(messages, {}, rendered, trained);
        for (uint32_t id : format.generation_prompt()) rendered.push_back(id);
        std::vector<int> out = ref::generate(config, weights, std::vector<int>(rendered.begin(), rendered.end()),
                                             tokens, s, seed, int(format.end_of_turn()));
        if (!out.empty() && out.back() == int(format.end_of_turn())) out.pop_back();
        std::printf("%s\n", codec.decode(out).c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "generate: %s\n", e.what());
        return 1;
    }
    return 0;
}
