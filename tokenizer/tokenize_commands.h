// The subcommands of the tokenize tool that work on files: shards, dump, bench.
#ifndef TOKENIZER_TOKENIZE_COMMANDS_H
#define TOKENIZER_TOKENIZE_COMMANDS_H

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace llama::tok {

struct ShardOptions {
    std::string tokenizer, pattern, out;
    std::vector<std::string> inputs;
    std::string jsonl_key = "text";
    std::string delimiter;  // empty: one document per plain text file
    uint64_t shard_tokens = 100'000'000;
    double val_fraction = 0;
    uint64_t val_docs = 0;
    uint64_t seed = 0;
    int threads = 0;  // 0: all
    bool no_bos = false, no_eos = false, progress = false, quiet = false;
};

struct DumpOptions {
    std::string path, tokenizer, pattern;
    bool decode = false;
    uint64_t max_vocab = 0;
};

struct BenchOptions {
    std::string tokenizer, pattern;
    std::vector<std::string> inputs;
    int threads = 0;
    int repeat = 3;
    bool json = false;
};

void add_shard_options(CLI::App* app, ShardOptions& o);
void add_dump_options(CLI::App* app, DumpOptions& o);
void add_bench_options(CLI::App* app, BenchOptions& o);
int run_shards(const ShardOptions& o);
int run_dump(const DumpOptions& o);
int run_bench(const BenchOptions& o);

// A 64-bit mix of x (splitmix64's finaliser): the seeded validation choices.
uint64_t mix64(uint64_t x);
// DIR/train_NNNNNN.tok (split 0) or DIR/val_NNNNNN.tok (split 1).
std::string shard_name(const std::string& dir, int split, uint64_t k);

// tokenize sft: JSONL conversations rendered with a chat template into shards
// with trained flags, packed into sequences (tokenizer/sft.cpp).
struct SftOptions {
    std::string tokenizer, pattern, out, chat_template = "chatml", messages_key = "messages";
    std::vector<std::string> inputs, train_on = {"assistant"};
    uint64_t seq_len = 0, shard_tokens = 100'000'000, val_docs = 0, seed = 0;
    double val_fraction = 0;
    bool truncate = false, quiet = false;
};
void add_sft_options(CLI::App* app, SftOptions& o);
int run_sft(const SftOptions& o);

// tokenize render: each JSONL conversation's ids and trained flags, one JSON
// line each (or the template as Jinja with --jinja), for checks and debugging.
struct RenderOptions {
    std::string tokenizer, pattern, chat_template = "chatml", messages_key = "messages", input = "-";
    std::vector<std::string> train_on = {"assistant"};
    bool jinja = false;
};
void add_render_options(CLI::App* app, RenderOptions& o);
int run_render(const RenderOptions& o);

struct BatchesOptions {
    std::string data, state;
    uint64_t T = 1024, B = 8, steps = 1, seed = 0, vocab_size = 0;
    int rank = 0, world = 1;
    bool no_shuffle = false;
};
void add_batches_options(CLI::App* app, BatchesOptions& o);
int run_batches(const BatchesOptions& o);

}  // namespace llama::tok

#endif  // TOKENIZER_TOKENIZE_COMMANDS_H
