// Where the trainer's tokens come from, behind one small interface:
//   - token shards (own format, datatrove, Megatron; mixtures) through the data
//     loader of data/, with a text tokenizer from tokenizer/ for prompts,
//     samples and evaluation;
//   - or a plain text file read as bytes (token id = byte value), the
//     zero-setup path for a first run or a test.
// Both give batches of inputs and next-token targets, a fixed validation set,
// and a state record that a checkpoint saves so that a resumed run sees exactly
// the batches it would have seen.
//
// Data parallelism splits the batches here, and only here: the global batch is
// a sequence of micro-batches, and of `world` ranks, rank r gets micro-batches
// r, r + world, r + 2*world, ... (the k-th call on rank r returns micro-batch
// k*world + r). Ranks read only their own samples, and the micro-batches, so
// the run, are the same for any number of ranks (the state records them
// globally: a run resumed on another rank count continues it).
#ifndef LIFECYCLE_TRAINING_DATA_H
#define LIFECYCLE_TRAINING_DATA_H

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace llama {

class TrainingData {
public:
    static constexpr int kNotTrained = -1;  // the models' ignored target
    virtual ~TrainingData() = default;
    // This rank's next micro-batch: B sequences of T inputs and their targets
    // (the next tokens; kNotTrained where the shards say the loss does not
    // train on predicting that token, as in a fine-tuning conversation's prompts).
    // When doc_starts is given it is resized to B * T and says where each
    // input's document starts: entry b * T + t is the position in sequence b
    // of the first token of input t's document (t where one starts at t, else
    // the entry of t - 1; 0 for a document that began before the sequence),
    // as data::DataLoader::next_batch describes. Attention kept inside each
    // document, and positions restarting at each, are built from it.
    virtual void next_batch(int B, int T, std::vector<int>& inputs, std::vector<int>& targets,
                            std::vector<int>* doc_starts = nullptr) = 0;
    // The validation set: the same batches every time validate_begin() is called (split by rank too).
    virtual bool has_validation() const = 0;
    virtual void validate_begin() = 0;
    virtual void validate_batch(int B, int T, std::vector<int>& inputs, std::vector<int>& targets,
                                std::vector<int>* doc_starts = nullptr) = 0;
    // Whether the data knows where its documents start (token shards do;
    // plain text is one stream, and its doc starts are all 0: each sequence
    // one document).
    virtual bool has_documents() const = 0;
    // Whether the data is packed sequences (tokenize sft): several
    // conversations per sequence, each to be kept apart from the others.
    virtual bool packed() const = 0;
    virtual nlohmann::json state() const = 0;
    virtual void restore(const nlohmann::json& state) = 0;  // throws std::runtime_error saying what differs
    virtual std::string describe() const = 0;
    // The training sequences of one epoch (0 when there is no single epoch:
    // a mixture of datasets, or text drawn at random positions).
    virtual uint64_t epoch_sequences() const { return 0; }
};

// A text file read as bytes; the last val_fraction of it is the validation set.
// Throws std::runtime_error naming the file on a file too short for seq_len.
std::unique_ptr<TrainingData> byte_text_data(const std::string& path, double val_fraction, int seq_len, uint64_t seed,
                                             int rank = 0, int world = 1);

// Token shards: `train` and `validation` are mixtures as data::parse_mixture
// reads them ("PATHS" or "W:PATHS,W:PATHS"); validation may be empty. Every
// token must be below vocab_size. B is the micro-batch (sequences per call).
std::unique_ptr<TrainingData> shard_data(const std::string& train, const std::string& validation, int B, int seq_len,
                                         uint64_t vocab_size, uint64_t seed, int rank = 0, int world = 1);

// Text <-> token ids for prompts, samples and evaluation: a tokenizer file
// (tokenizer.json or tiktoken ranks), or bytes when the path is empty.
class TextCodec {
public:
    explicit TextCodec(const std::string& tokenizer_path = "");
    ~TextCodec();
    std::vector<int> encode(const std::string& text) const;
    std::string decode(const std::vector<int>& ids) const;
    size_t vocab_size() const;
    bool is_bytes() const { return path_.empty(); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace llama

#endif  // LIFECYCLE_TRAINING_DATA_H
