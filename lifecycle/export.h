// Handing a trained model to the ecosystem: a Hugging Face folder
// (config.json + model.safetensors, loadable as LlamaForCausalLM, or as
// OpenSciForCausalLM with its own code for QK-norm models) and a GGUF
// file for llama.cpp; and importing a Hugging Face folder back.
#ifndef LIFECYCLE_EXPORT_H
#define LIFECYCLE_EXPORT_H

#include <cstdint>
#include <string>
#include <vector>

#include "lifecycle/gguf.h"
#include "model/config.h"
#include "model/params.h"

namespace llama::exporter {

// The tokenizer as GGUF describes it (byte-level BPE: tokenizer.ggml.model "gpt2").
struct Vocab {
    std::vector<std::string> tokens;  // id -> token text (byte-level symbols)
    std::vector<int32_t> types;       // 1 normal, 3 control, ...
    std::vector<std::string> merges;  // "a b" pairs, by rank
    int bos = -1, eos = -1;
    std::string pre = "default";  // llama.cpp's pre-tokenizer name
    std::string chat_template;    // Jinja (tokenizer.chat_template), for chat models
};

// A chat model's template, as `tokenize sft` records it (chat_template.json):
// Hugging Face's Jinja chat_template, the end-of-turn token (where generation
// stops: the exports' end-of-sequence token), and the markers that took the
// place of reserved tokens (renamed in the exported vocabularies).
struct ChatTemplate {
    std::string jinja;
    int end_of_turn = -1;
    std::vector<std::pair<std::string, int>> renamed;  // {marker, id}
};
// Throws std::runtime_error naming the file and what is wrong.
ChatTemplate read_chat_template(const std::string& path);
// The vocabulary of a chat model: markers renamed, end of turn as eos, the template.
void apply_chat_template(Vocab& vocab, const ChatTemplate& chat);

// The 256 byte tokens of byte-level BPE with no merges: the vocabulary of a
// model trained on raw bytes (token id = byte value).
Vocab byte_vocab();

// The vocabulary of a Hugging Face tokenizer.json (byte-level BPE): tokens by
// id, special added tokens as control tokens, merges by rank, BOS/EOS by their
// usual names, and llama.cpp's pre-tokenizer name for the Llama 3 ("llama-bpe")
// and GPT-2 ("gpt-2") patterns. Throws std::runtime_error naming the file.
Vocab vocab_from_tokenizer_json(const std::string& path);

// Writes a GGUF v3 file of the llama architecture. Q and K weights (and
// biases) are permuted from the Hugging Face rotate-half layout to llama.cpp's
// interleaved RoPE pairs, K over its KV heads; Llama-3.1 RoPE scaling goes in
// rope_freqs.weight. QK-norm has no place in the llama architecture: refused.
void write_gguf(const ModelConfig& config, const ParamLayout& layout, const float* params, const Vocab& vocab,
                const std::string& path, gguf::TensorType type = gguf::TensorType::F32);

// Writes DIR/config.json and DIR/model.safetensors (fp32, Hugging Face names),
// and copies the run's tokenizer.json into DIR when tokenizer_path is given.
// A model without QK-norm is LlamaForCausalLM; one with QK-norm (open-sci-ref)
// is OpenSciForCausalLM (qk_layernorm, attention_bias, mlp_bias and Llama's
// keys, auto_map), with configuration_opensci.py and modeling_opensci.py
// (lifecycle/hf/) written next to it, for trust_remote_code=True.
// With `chat`: the tokenizer.json with the markers renamed, and
// tokenizer_config.json (the chat_template, bos and eos tokens) and
// generation_config.json (eos: the end of turn), so that transformers'
// apply_chat_template and generate use them.
void write_hf(const ModelConfig& config, const ParamLayout& layout, const float* params, const std::string& dir,
              const std::string& tokenizer_path = "", const ChatTemplate* chat = nullptr);

// The GGUF vocabulary of a run: its tokenizer.json, or the byte vocabulary
// when the run has none (tokenizer_path empty).
Vocab vocab_for(const std::string& tokenizer_path);

// Reads the model of a checkpoint directory (after verifying its manifest): the
// config from state.json, the fp32 weights, and the run's tokenizer path ("" for
// bytes). Throws std::runtime_error naming the file and what is wrong.
void read_checkpoint_model(const std::string& dir, ModelConfig& config, std::vector<float>& params,
                           std::string* tokenizer_path = nullptr);

// Reads a Hugging Face folder (config.json + model.safetensors, F32 or BF16
// tensors). Throws std::runtime_error naming the file and what is wrong.
void read_hf(const std::string& dir, ModelConfig& config, std::vector<float>& params);

// The permutation of the rows of a q or k projection for llama.cpp: within each
// head of head_dim rows, new row 2i is old row i and new row 2i+1 is old row
// i + head_dim/2. Returns, for each new row, the old row.
std::vector<int64_t> rope_interleave_rows(int heads, int head_dim);

}  // namespace llama::exporter

#endif  // LIFECYCLE_EXPORT_H
