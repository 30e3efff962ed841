#include "lifecycle/training_data.h"

#include <fstream>
#include <iterator>
#include <stdexcept>

#include "data/loader.h"
#include "model/rng.h"
#include "tokenizer/tokenizer.h"

namespace llama {

namespace {

// Windows of T + 1 bytes at positions drawn from a seeded generator. Every
// rank draws the windows of all ranks' micro-batches (the same generator on
// each) and keeps its own.
class ByteTextData : public TrainingData {
public:
    ByteTextData(const std::string& path, double val_fraction, int seq_len, uint64_t seed, int rank, int world)
        : path_(path), rank_(rank), world_(world), rng_(seed), val_seed_(seed ^ 0x5eedull), val_rng_(val_seed_) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw std::runtime_error(path + ": cannot open");
        std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const size_t n_val = size_t(bytes.size() * val_fraction);
        const size_t n_train = bytes.size() - n_val;
        if (n_train < size_t(seq_len) + 2)
            throw std::runtime_error(path + ": " + std::to_string(bytes.size()) +
                                     " bytes is too short for sequences of " + std::to_string(seq_len));
        if (n_val > 0 && n_val < size_t(seq_len) + 2)
            throw std::runtime_error(path + ": the validation part (" + std::to_string(n_val) +
                                     " bytes) is shorter than a sequence; lower --seq-len or raise --val-fraction");
        train_.assign(bytes.begin(), bytes.begin() + n_train);
        val_.assign(bytes.begin() + n_train, bytes.end());
    }
    void next_batch(int B, int T, std::vector<int>& x, std::vector<int>& y, std::vector<int>* doc_starts) override {
        sample(train_, rng_, B, T, x, y, doc_starts);
    }
    bool has_validation() const override { return !val_.empty(); }
    void validate_begin() override { val_rng_ = Rng(val_seed_); }
    void validate_batch(int B, int T, std::vector<int>& x, std::vector<int>& y, std::vector<int>* doc_starts) override {
        sample(val_, val_rng_, B, T, x, y, doc_starts);
    }
    bool has_documents() const override { return false; }
    bool packed() const override { return false; }
    nlohmann::json state() const override { return {{"kind", "bytes"}, {"file", path_}, {"rng", rng_.state()}}; }
    void restore(const nlohmann::json& s) override {
        if (s.value("kind", "") != "bytes")
            throw std::runtime_error("the checkpoint's data is '" + s.value("kind", "?") + "', this run reads --text");
        rng_.set_state(s.at("rng").get<uint64_t>());
    }
    std::string describe() const override {
        return path_ + ": " + std::to_string(train_.size()) + " training tokens, " + std::to_string(val_.size()) +
               " validation tokens (bytes)";
    }

private:
    void sample(const std::vector<int>& tokens, Rng& rng, int B, int T, std::vector<int>& x, std::vector<int>& y,
                std::vector<int>* doc_starts) const {
        x.resize(size_t(B) * T);
        y.resize(size_t(B) * T);
        // Text has no document boundaries: each window is one document.
        if (doc_starts) doc_starts->assign(size_t(B) * T, 0);
        for (int j = 0; j < B * world_; ++j) {  // the micro-batches of ranks 0 .. world-1, in turn
            const size_t start = rng.below(tokens.size() - T);
            const int b = j - B * rank_;
            if (b < 0 || b >= B) continue;  // another rank's sequence
            for (int t = 0; t < T; ++t) {
                x[size_t(b) * T + t] = tokens[start + t];
                y[size_t(b) * T + t] = tokens[start + t + 1];
            }
        }
    }
    std::string path_;
    int rank_, world_;
    std::vector<int> train_, val_;
    Rng rng_;
    uint64_t val_seed_;
    Rng val_rng_;
};

class ShardData : public TrainingData {
public:
    ShardData(const std::string& train, const std::string& validation, int B, int T, uint64_t vocab, uint64_t seed,
              int rank, int world)
        : B_(B), T_(T), names_(train) {
        data::LoaderConfig cfg;  // the loader splits each call's B * world samples by rank
        cfg.T = uint64_t(T);
        cfg.B = uint64_t(B);
        cfg.rank = rank;
        cfg.world = world;
        cfg.seed = seed;
        cfg.vocab_size = vocab;
        train_ = std::make_unique<data::DataLoader>(data::parse_mixture(train), cfg);
        if (!validation.empty()) {
            cfg.shuffle = false;
            val_ = std::make_unique<data::DataLoader>(data::parse_mixture(validation), cfg);
        }
        buffer_.resize(size_t(B) * (T + 1));
        if (train_->has_trained() || (val_ && val_->has_trained())) trained_.resize(buffer_.size());
    }
    void next_batch(int B, int T, std::vector<int>& x, std::vector<int>& y, std::vector<int>* doc_starts) override {
        take(*train_, B, T, x, y, doc_starts);
    }
    bool has_validation() const override { return val_ != nullptr; }
    void validate_begin() override { val_->reset(); }
    void validate_batch(int B, int T, std::vector<int>& x, std::vector<int>& y, std::vector<int>* doc_starts) override {
        take(*val_, B, T, x, y, doc_starts);
    }
    bool has_documents() const override { return true; }
    // Packed when the training or the validation shards are: both go through
    // the same model, so the documents are kept apart in both or in neither.
    bool packed() const override { return train_->packed() || (val_ && val_->packed()); }
    nlohmann::json state() const override {
        return {{"kind", "shards"}, {"data", names_}, {"loader", train_->state().serialize()}};
    }
    void restore(const nlohmann::json& s) override {
        if (s.value("kind", "") != "shards")
            throw std::runtime_error("the checkpoint's data is '" + s.value("kind", "?") + "', this run reads --data");
        train_->restore(data::LoaderState::parse(s.at("loader").get<std::string>()));
    }
    uint64_t epoch_sequences() const override { return train_->num_datasets() == 1 ? train_->samples_in(0) : 0; }
    std::string describe() const override {
        std::string d = names_ + ": " + std::to_string(train_->num_datasets()) + " dataset(s)";
        for (size_t i = 0; i < train_->num_datasets(); ++i)
            d += (i ? ", " : " of ") + std::to_string(train_->samples_in(i)) + " samples";
        d += val_ ? ", with a validation set" : ", no validation set";
        return d + (trained_.empty() ? "" : "; trained flags: the loss counts only the flagged tokens");
    }

private:
    void take(data::DataLoader& loader, int B, int T, std::vector<int>& x, std::vector<int>& y,
              std::vector<int>* doc_starts) {
        static_assert(sizeof(int) == sizeof(int32_t), "the loader writes doc starts as int32");
        if (B != B_ || T != T_) throw std::logic_error("shard data: the batch shape is fixed at construction");
        if (doc_starts) doc_starts->resize(size_t(B) * T);  // the loader fills them in place
        loader.next_batch(buffer_.data(), trained_.empty() ? nullptr : trained_.data(),
                          doc_starts ? reinterpret_cast<int32_t*>(doc_starts->data()) : nullptr);
        x.resize(size_t(B) * T);
        y.resize(size_t(B) * T);
        for (int b = 0; b < B; ++b)
            for (int t = 0; t < T; ++t) {
                const size_t next = size_t(b) * (T + 1) + t + 1;
                x[size_t(b) * T + t] = int(buffer_[next - 1]);
                y[size_t(b) * T + t] = trained_.empty() || trained_[next] ? int(buffer_[next]) : kNotTrained;
            }
    }
    int B_, T_;
    std::string names_;
    std::unique_ptr<data::DataLoader> train_, val_;
    std::vector<uint32_t> buffer_;
    std::vector<uint8_t> trained_;  // the batch's trained flags (empty: the shards have none)
};

}  // namespace

std::unique_ptr<TrainingData> byte_text_data(const std::string& path, double val_fraction, int seq_len, uint64_t seed,
                                             int rank, int world) {
    return std::make_unique<ByteTextData>(path, val_fraction, seq_len, seed, rank, world);
}

std::unique_ptr<TrainingData> shard_data(const std::string& train, const std::string& validation, int B, int seq_len,
                                         uint64_t vocab_size, uint64_t seed, int rank, int world) {
    // data::Error names the file
    return std::make_unique<ShardData>(train, validation, B, seq_len, vocab_size, seed, rank, world);
}

struct TextCodec::Impl {
    tok::Tokenizer tokenizer;
};

TextCodec::TextCodec(const std::string& path) : path_(path) {
    if (!path.empty()) impl_ = std::make_unique<Impl>(Impl{tok::Tokenizer::from_file(path)});
}
TextCodec::~TextCodec() = default;

std::vector<int> TextCodec::encode(const std::string& text) const {
    std::vector<int> ids;
    if (!impl_) {
        for (unsigned char c : text) ids.push_back(c);
        return ids;
    }
    for (uint32_t id : impl_->tokenizer.encode(text)) ids.push_back(int(id));
    return ids;
}

std::string TextCodec::decode(const std::vector<int>& ids) const {
    if (!impl_) {
        std::string s;
        for (int id : ids) s += char(id);
        return s;
    }
    std::vector<uint32_t> u(ids.begin(), ids.end());
    return impl_->tokenizer.decode(u);
}

size_t TextCodec::vocab_size() const { return impl_ ? impl_->tokenizer.vocab_size() : 256; }

}  // namespace llama
