// The data loader: batches of samples of T+1 contiguous tokens, drawn from a
// mixture of datasets (own shards, datatrove or Megatron files, any mix).
//
// Each dataset is its files' tokens end to end, cut into samples: sample k
// holds tokens [k*T, k*T + T + 1), so the last token of one sample is the
// first of the next (the target of one is the input of the other). In every
// epoch a dataset's samples come in an order drawn from the seed (a keyed
// permutation, so no table of sample indices is kept); after the last sample
// the next epoch starts with a new order.
//
// A global batch is B samples per rank times the number of ranks; rank r gets
// slots [r*B, (r+1)*B), so ranks never see the same sample in a step. Which
// dataset fills each slot follows the weights deterministically (the dataset
// furthest behind its share goes next), so every rank agrees without talking.
//
// The state (step and samples drawn from each dataset) is a small record a
// checkpoint can save; restoring it gives exactly the batches the run would
// have seen. The samples drawn are counted over all ranks, so a state saved
// with one rank count restores with another (same B per rank).
#ifndef DATA_LOADER_H
#define DATA_LOADER_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/shard.h"

namespace llama::data {

struct DatasetSpec {
    std::vector<std::string> paths;  // files, folders or glob patterns
    double weight = 1.0;
};

// Parses a mixture: "PATHS" or "W:PATHS,W:PATHS,..." where PATHS is one path
// or several joined with '+'. Throws Error on a weight that does not parse or
// is not positive.
std::vector<DatasetSpec> parse_mixture(const std::string& text);

// Expands folders (their token files: .tok, .ds, Megatron .idx prefixes) and
// glob patterns. Throws Error when nothing matches.
std::vector<std::string> expand_token_paths(const std::vector<std::string>& paths);

struct LoaderConfig {
    uint64_t T = 1024;  // sequence length; samples hold T + 1 tokens
    uint64_t B = 8;     // samples per rank per step
    int rank = 0, world = 1;
    uint64_t seed = 0;
    bool shuffle = true;      // false: samples in file order (validation)
    uint64_t vocab_size = 0;  // nonzero: every token must be below it
};

struct LoaderState {
    uint64_t step = 0;
    std::vector<uint64_t> drawn;  // samples taken from each dataset so far (all ranks)
    uint64_t seed = 0;
    uint64_t fingerprint = 0;                           // of the datasets and settings the state belongs to
    std::string serialize() const;                      // one line of text
    static LoaderState parse(const std::string& text);  // throws Error
};

class DataLoader {
public:
    DataLoader(const std::vector<DatasetSpec>& datasets, const LoaderConfig& cfg);
    ~DataLoader();

    // Fills out[B * (T + 1)] with this rank's samples of the next step and,
    // when given, trained[B * (T + 1)] with their trained flags (1 where the
    // files have none) and doc_starts[B * T] with where each input token's
    // document starts (below).
    //
    // Doc starts: for the input token at position t of sample b (the first T
    // of its T + 1 tokens), doc_starts[b * T + t] is the position in that
    // sample where its document begins: t itself where a document starts at
    // t, else the entry of t - 1; 0 for a document that began before the
    // sample. Documents start at every offset of a file's document index
    // (TokenSource::doc_start) and at every file start, since a dataset's
    // files are concatenated. Attention masked by documents and positions
    // that restart at each document (RoPE) are computed from these.
    void next_batch(uint32_t* out, uint8_t* trained = nullptr, int32_t* doc_starts = nullptr);
    // Whether any dataset's files say which tokens are trained.
    bool has_trained() const;
    // Whether any dataset's files are packed sequences (tokenize sft):
    // conversations padded to whole samples, one or more per sample.
    bool packed() const;
    // Global sample slot -> (dataset, sample index) of the batch at `step`,
    // for tests and for the validation loader's pass length.
    uint64_t samples_in(size_t dataset) const;
    size_t num_datasets() const { return sets_.size(); }
    // Steps that cover every sample of a single dataset once (validation pass).
    uint64_t steps_per_epoch() const;

    LoaderState state() const;
    void restore(const LoaderState& s);  // throws Error if s belongs to other data or settings
    void reset();                        // back to step 0

    // Which dataset and which sample the next step's global slot j draws
    // (without advancing); used by tests.
    void peek_slot(uint64_t j, size_t& dataset, uint64_t& sample) const;

private:
    struct Set;
    std::vector<std::unique_ptr<Set>> sets_;
    LoaderConfig cfg_;
    LoaderState st_;
    std::vector<double> weights_;
    uint64_t fingerprint_ = 0;
    size_t choose(const std::vector<uint64_t>& drawn, uint64_t slot_index) const;
    uint64_t sample_index(size_t d, uint64_t k) const;
    void read_sample(size_t d, uint64_t sample, uint32_t* out, uint8_t* trained, int32_t* doc_starts) const;
};

// The order of [0, n) in epoch `round` for `key`: a bijection computed per
// index (exposed for tests).
uint64_t permute(uint64_t i, uint64_t n, uint64_t key);

}  // namespace llama::data

#endif  // DATA_LOADER_H
