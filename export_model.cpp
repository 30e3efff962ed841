// export_model: turn a training checkpoint into a Hugging Face folder and/or a
// GGUF file for llama.cpp.
//
//   build/export_model --checkpoint run/checkpoints/step_00001000 --hf out/hf --gguf out/model.gguf
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "lifecycle/export.h"
#include "model/config.h"
#include "model/params.h"

using namespace llama;

int main(int argc, char** argv) {
    CLI::App app{"export_model: a checkpoint to a Hugging Face folder and/or a GGUF file"};
    std::string checkpoint_path, hf_dir, gguf_path, gguf_type = "f32";
    app.add_option("--checkpoint", checkpoint_path, "checkpoint directory (DIR/step_NNNNNNNN)")
        ->required()
        ->check(CLI::ExistingDirectory);
    app.add_option("--hf", hf_dir, "write a Hugging Face folder (config.json, model.safetensors) here");
    app.add_option("--gguf", gguf_path, "write a GGUF file for llama.cpp here");
    std::string chat_path;
    app.add_option("--chat-template", chat_path,
                   "a chat model: the chat_template.json that tokenize sft wrote (the "
                   "template, its end of turn and marker tokens into both exports)")
        ->check(CLI::ExistingFile);
    app.add_option("--gguf-type", gguf_type, "f32 or bf16 weights in the GGUF file")
        ->capture_default_str()
        ->check(CLI::IsMember({"f32", "bf16"}));
    CLI11_PARSE(app, argc, argv);
    if (hf_dir.empty() && gguf_path.empty()) {
        std::fprintf(stderr, "export_model: nothing to do: give --hf DIR and/or --gguf FILE\n");
        return 1;
    }
    try {
        ModelConfig config;
        std::vector<float> params;
        std::string tokenizer;  // the run's tokenizer (recorded in the checkpoint), or "" for bytes
        exporter::read_checkpoint_model(checkpoint_path, config, params, &tokenizer);
        ParamLayout layout(config);
        exporter::ChatTemplate chat;
        if (!chat_path.empty()) chat = exporter::read_chat_template(chat_path);
        if (!hf_dir.empty()) {
            exporter::write_hf(config, layout, params.data(), hf_dir, tokenizer, chat_path.empty() ? nullptr : &chat);
            std::printf("export_model: Hugging Face folder %s\n", hf_dir.c_str());
            if (!tokenizer.empty())
                std::printf("export_model: tokenizer %s -> %s/tokenizer.json\n", tokenizer.c_str(), hf_dir.c_str());
        }
        if (!gguf_path.empty()) {
            exporter::Vocab vocab = exporter::vocab_for(tokenizer);
            if (!chat_path.empty()) exporter::apply_chat_template(vocab, chat);
            exporter::write_gguf(config, layout, params.data(), vocab, gguf_path,
                                 gguf_type == "f32" ? gguf::TensorType::F32 : gguf::TensorType::BF16);
            std::printf("export_model: GGUF %s\n", gguf_path.c_str());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "export_model: %s\n", e.what());
        return 1;
    }
    return 0;
}
