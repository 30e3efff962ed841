// The subcommands of the tokenize tool that work on files: shards, dump, bench.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

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

// Reads a whole input file, decompressing gzip or zstd (recognised by their
// magic bytes); "-" is stdin. Throws tok::Error naming the file.
std::string read_input(const std::string& path);
// Expands directories (recursively, sorted) and glob patterns; "-" stays.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);

struct BatchesOptions {
  std::string data, state;
  uint64_t T = 1024, B = 8, steps = 1, seed = 0, vocab_size = 0;
  int rank = 0, world = 1;
  bool no_shuffle = false;
};
void add_batches_options(CLI::App* app, BatchesOptions& o);
int run_batches(const BatchesOptions& o);
