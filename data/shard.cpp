// Token shards: own format (writer and validating reader), datatrove and
// Megatron-LM readers.
#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace llama::data {

namespace {

// A read-only memory map of a whole file.
class MappedFile {
public:
    explicit MappedFile(const std::string& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_RDONLY);
        if (fd_ < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
        struct stat st;
        if (fstat(fd_, &st) != 0) throw Error(path + ": cannot stat: " + std::strerror(errno));
        if (!S_ISREG(st.st_mode)) {
            ::close(fd_);
            throw Error(path + ": not a regular file");
        }
        size_ = uint64_t(st.st_size);
        if (size_ > 0) {
            void* p = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
            if (p == MAP_FAILED) {
                ::close(fd_);
                throw Error(path + ": cannot map: " + std::strerror(errno));
            }
            data_ = static_cast<const uint8_t*>(p);
        }
    }
    ~MappedFile() {
        if (data_) munmap(const_cast<uint8_t*>(data_), size_);
        if (fd_ >= 0) ::close(fd_);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    const uint8_t* data() const { return data_; }
    uint64_t size() const { return size_; }

private:
    std::string path_;
    int fd_ = -1;
    const uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
};

template <class T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

bool file_exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Tokens of width 2 or 4 in a mapped file, documents from a start table.
class MappedTokens : public TokenSource {
public:
    uint64_t num_tokens() const override { return ntok_; }
    uint64_t num_docs() const override { return starts_.size(); }
    uint64_t doc_start(uint64_t d) const override { return d < starts_.size() ? starts_[d] : ntok_; }
    void read(uint64_t start, uint64_t n, uint32_t* out) const override {
        if (start > ntok_ || n > ntok_ - start)
            throw Error(path_ + ": read of tokens [" + std::to_string(start) + ", " + std::to_string(start + n) +
                        ") past the end (" + std::to_string(ntok_) + " tokens)");
        if (n == 0) return;
        const uint8_t* p = tokens_ + start * width_;
        if (width_ == 2) {
            for (uint64_t i = 0; i < n; i++) out[i] = load<uint16_t>(p + 2 * i);
        } else {
            std::memcpy(out, p, n * 4);
        }
    }
    uint64_t vocab_size() const override { return vocab_; }
    std::string format() const override { return format_; }
    bool has_trained() const override { return trained_ != nullptr; }
    uint64_t packed_seq_len() const override { return packed_; }
    void read_trained(uint64_t start, uint64_t n, uint8_t* out) const override {
        if (!trained_) return TokenSource::read_trained(start, n, out);
        if (start > ntok_ || n > ntok_ - start) throw Error(path_ + ": read of trained flags past the end");
        if (n) std::memcpy(out, trained_ + start, n);
    }

protected:
    const uint8_t* trained_ = nullptr;  // one byte per token, or none
    uint64_t packed_ = 0;
    std::unique_ptr<MappedFile> file_;
    const uint8_t* tokens_ = nullptr;
    uint64_t ntok_ = 0, vocab_ = 0;
    uint32_t width_ = 2;
    std::vector<uint64_t> starts_;
    std::string format_;

    // Checks every token against the vocabulary size.
    void check_vocab(uint64_t max_vocab) const {
        if (!max_vocab) return;
        const uint64_t chunk = 1 << 16;
        std::vector<uint32_t> buf(chunk);
        for (uint64_t s = 0; s < ntok_; s += chunk) {
            uint64_t n = std::min(chunk, ntok_ - s);
            read(s, n, buf.data());
            for (uint64_t i = 0; i < n; i++)
                if (buf[i] >= max_vocab)
                    throw Error(path_ + ": token " + std::to_string(s + i) + " has id " + std::to_string(buf[i]) +
                                ", not below the vocabulary size " + std::to_string(max_vocab));
        }
    }
};

class OwnShard : public MappedTokens {
public:
    OwnShard(const std::string& path, uint64_t max_vocab) {
        path_ = path;
        format_ = "own";
        file_ = std::make_unique<MappedFile>(path);
        const uint8_t* p = file_->data();
        uint64_t size = file_->size();
        if (size < kShardHeaderBytes)
            throw Error(path + ": truncated: " + std::to_string(size) + " bytes, shorter than the 64-byte header");
        if (std::memcmp(p, kShardMagic, 8) != 0) throw Error(path + ": wrong magic: not a token shard");
        uint32_t version = load<uint32_t>(p + 8);
        if (version != kShardVersion && version != kShardVersionTrained)
            throw Error(path + ": unsupported version " + std::to_string(version) + " (this build reads versions " +
                        std::to_string(kShardVersion) + " and " + std::to_string(kShardVersionTrained) + ")");
        width_ = load<uint32_t>(p + 12);
        if (width_ != 2 && width_ != 4)
            throw Error(path + ": token width " + std::to_string(width_) + " is not 2 or 4");
        ntok_ = load<uint64_t>(p + 16);
        uint64_t ndoc = load<uint64_t>(p + 24);
        vocab_ = load<uint64_t>(p + 32);
        // Sizes as the header says, checked without overflow.
        const uint64_t limit = uint64_t(1) << 60;
        if (ntok_ > limit || ndoc > limit)
            throw Error(path + ": header counts are implausible (" + std::to_string(ntok_) + " tokens, " +
                        std::to_string(ndoc) + " documents)");
        const bool flags = version == kShardVersionTrained;
        uint64_t expect = kShardHeaderBytes + ntok_ * width_ + ndoc * 8 + (flags ? ntok_ : 0);
        if (size != expect)
            throw Error(path + ": size " + std::to_string(size) + " bytes does not match the header (" +
                        std::to_string(ntok_) + " tokens of " + std::to_string(width_) + " bytes and " +
                        std::to_string(ndoc) + " documents" + (flags ? ", with trained flags," : "") + " need " +
                        std::to_string(expect) + " bytes)" + (size < expect ? ": truncated" : ""));
        if (width_ == 2 && vocab_ > 65536)
            throw Error(path + ": vocabulary size " + std::to_string(vocab_) + " does not fit 2-byte tokens");
        tokens_ = p + kShardHeaderBytes;
        const uint8_t* idx = tokens_ + ntok_ * width_;
        starts_.resize(ndoc);
        for (uint64_t d = 0; d < ndoc; d++) {
            starts_[d] = load<uint64_t>(idx + 8 * d);
            if ((d == 0 && starts_[d] != 0) || (d > 0 && starts_[d] < starts_[d - 1]) || starts_[d] > ntok_)
                throw Error(path + ": document index entry " + std::to_string(d) + " (" + std::to_string(starts_[d]) +
                            ") is out of order or past the " + std::to_string(ntok_) + " tokens");
        }
        if (ntok_ > 0 && ndoc == 0) throw Error(path + ": has tokens but no documents");
        if (flags) {
            packed_ = load<uint64_t>(p + 40);
            if (packed_ > 0 && ntok_ % packed_ > 1)
                throw Error(path + ": packed into sequences of " + std::to_string(packed_) + " tokens, but its " +
                            std::to_string(ntok_) +
                            " tokens are not whole sequences (and one more, in the last shard)");
            trained_ = idx + 8 * ndoc;
            for (uint64_t i = 0; i < ntok_; i++)
                if (trained_[i] > 1)
                    throw Error(path + ": the trained flag of token " + std::to_string(i) + " is " +
                                std::to_string(trained_[i]) + ", not 0 or 1");
        }
        uint64_t v = max_vocab ? max_vocab : vocab_;
        if (max_vocab && vocab_ > max_vocab)
            throw Error(path + ": written for a vocabulary of " + std::to_string(vocab_) + " tokens, more than " +
                        std::to_string(max_vocab));
        check_vocab(v);
    }
};

// datatrove's DocumentTokenizer output: FILE.ds holds the tokens (uint16, or
// uint32 for large vocabularies), FILE.ds.index the end offset (in tokens,
// uint64) of each document, FILE.ds.metadata the tokenizer name and token count.
class DatatroveFile : public MappedTokens {
public:
    DatatroveFile(const std::string& path, uint64_t max_vocab) {
        path_ = path;
        format_ = "datatrove";
        file_ = std::make_unique<MappedFile>(path);
        std::string index_path = path + ".index";
        MappedFile index(index_path);
        if (index.size() % 8 != 0)
            throw Error(index_path + ": size " + std::to_string(index.size()) + " is not a multiple of 8");
        uint64_t ndoc = index.size() / 8;
        std::vector<uint64_t> ends(ndoc);
        for (uint64_t d = 0; d < ndoc; d++) {
            ends[d] = load<uint64_t>(index.data() + 8 * d);
            if (d > 0 && ends[d] < ends[d - 1])
                throw Error(index_path + ": document end " + std::to_string(d) + " is out of order");
        }
        ntok_ = ndoc ? ends.back() : 0;
        if (ntok_ > (uint64_t(1) << 60))
            throw Error(index_path + ": the last document end (" + std::to_string(ntok_) + ") is implausible");
        uint64_t size = file_->size();
        // The token width: from the metadata's token count when present, else
        // from the size of the token file.
        if (ntok_ == 0) {
            if (size != 0)
                throw Error(path + ": has " + std::to_string(size) + " bytes but its index lists no documents");
            width_ = 2;
        } else if (size == ntok_ * 2) {
            width_ = 2;
        } else if (size == ntok_ * 4) {
            width_ = 4;
        } else {
            throw Error(path + ": size " + std::to_string(size) + " bytes does not match the " + std::to_string(ntok_) +
                        " tokens its index lists (2 or 4 bytes each)" + (size < ntok_ * 2 ? ": truncated" : ""));
        }
        std::string meta_path = path + ".metadata";
        if (file_exists(meta_path)) {
            FILE* f = std::fopen(meta_path.c_str(), "r");
            if (!f) throw Error(meta_path + ": cannot open: " + std::strerror(errno));
            char line[4096];
            std::string name, count;
            if (std::fgets(line, sizeof line, f)) name = line;
            if (std::fgets(line, sizeof line, f)) count = line;
            std::fclose(f);
            while (!count.empty() && (count.back() == '\n' || count.back() == '\r')) count.pop_back();
            if (!count.empty() && count != std::to_string(ntok_))
                throw Error(meta_path + ": token count " + count + " does not match the index (" +
                            std::to_string(ntok_) + ")");
        }
        tokens_ = file_->data();
        starts_.resize(ndoc);
        for (uint64_t d = 0; d < ndoc; d++) starts_[d] = d ? ends[d - 1] : 0;
        check_vocab(max_vocab);
    }
};

// Megatron-LM's indexed dataset: PREFIX.idx (header "MMIDIDX\0\0", version 1,
// dtype code, sequence count, document count, then int32 sequence lengths,
// int64 sequence byte offsets, int64 document indices into the sequences) and
// PREFIX.bin with the tokens. A document is its sequences, in order.
class MegatronFile : public MappedTokens {
public:
    MegatronFile(const std::string& prefix, uint64_t max_vocab) {
        std::string idx_path = prefix + ".idx", bin_path = prefix + ".bin";
        path_ = bin_path;
        format_ = "megatron";
        MappedFile idx(idx_path);
        const uint8_t* p = idx.data();
        const uint64_t head = 9 + 8 + 1 + 8 + 8;
        if (idx.size() < head) throw Error(idx_path + ": truncated: shorter than the 34-byte header");
        if (std::memcmp(p, "MMIDIDX\0\0", 9) != 0) throw Error(idx_path + ": wrong magic: not a Megatron index");
        uint64_t version = load<uint64_t>(p + 9);
        if (version != 1) throw Error(idx_path + ": unsupported version " + std::to_string(version));
        uint8_t code = p[17];
        // Codes: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16.
        if (code == 8) {
            width_ = 2;
        } else if (code == 4) {
            width_ = 4;
        } else {
            throw Error(idx_path + ": token dtype code " + std::to_string(code) +
                        " is not supported (only uint16 = 8 and int32 = 4)");
        }
        uint64_t nseq = load<uint64_t>(p + 18), ndocidx = load<uint64_t>(p + 26);
        const uint64_t limit = uint64_t(1) << 56;
        if (nseq > limit || ndocidx > limit) throw Error(idx_path + ": header counts are implausible");
        uint64_t expect = head + nseq * 4 + nseq * 8 + ndocidx * 8;
        if (idx.size() != expect && idx.size() != expect + nseq)  // + the optional modes
            throw Error(idx_path + ": size " + std::to_string(idx.size()) + " does not match the header (" +
                        std::to_string(expect) + " bytes expected)");
        const uint8_t* lens = p + head;
        const uint8_t* ptrs = lens + nseq * 4;
        const uint8_t* docs = ptrs + nseq * 8;
        std::vector<uint64_t> seq_start(nseq + 1, 0);
        for (uint64_t s = 0; s < nseq; s++) {
            int32_t len = load<int32_t>(lens + 4 * s);
            int64_t ptr = load<int64_t>(ptrs + 8 * s);
            if (len < 0) throw Error(idx_path + ": sequence " + std::to_string(s) + " has a negative length");
            if (ptr != int64_t(seq_start[s] * width_))
                throw Error(idx_path + ": sequence " + std::to_string(s) +
                            " does not follow the previous one in the .bin");
            seq_start[s + 1] = seq_start[s] + uint64_t(len);
        }
        ntok_ = seq_start[nseq];
        if (ntok_ > (uint64_t(1) << 60))
            throw Error(idx_path + ": the sequence lengths add up to an implausible token count");
        if (ndocidx == 0 || load<int64_t>(docs) != 0) throw Error(idx_path + ": document indices must start with 0");
        int64_t last = 0;
        for (uint64_t d = 1; d < ndocidx; d++) {
            int64_t v = load<int64_t>(docs + 8 * d);
            if (v < last || uint64_t(v) > nseq)
                throw Error(idx_path + ": document index " + std::to_string(d) +
                            " is out of order or past the sequences");
            last = v;
        }
        if (uint64_t(last) != nseq) throw Error(idx_path + ": the last document does not end at the last sequence");
        for (uint64_t d = 0; d + 1 < ndocidx; d++) starts_.push_back(seq_start[load<int64_t>(docs + 8 * d)]);
        file_ = std::make_unique<MappedFile>(bin_path);
        if (file_->size() != ntok_ * width_)
            throw Error(bin_path + ": size " + std::to_string(file_->size()) + " bytes does not match the index (" +
                        std::to_string(ntok_ * width_) + " bytes)" +
                        (file_->size() < ntok_ * width_ ? ": truncated" : ""));
        tokens_ = file_->data();
        check_vocab(max_vocab);
    }
};

}  // namespace

std::unique_ptr<TokenSource> open_shard(const std::string& path, uint64_t max_vocab) {
    return std::make_unique<OwnShard>(path, max_vocab);
}

std::unique_ptr<TokenSource> open_tokens(const std::string& path, uint64_t max_vocab) {
    if (ends_with(path, ".idx") || ends_with(path, ".bin")) {
        std::string prefix = path.substr(0, path.size() - 4);
        if (file_exists(prefix + ".idx")) return std::make_unique<MegatronFile>(prefix, max_vocab);
    }
    if (!ends_with(path, ".bin") && file_exists(path + ".idx") && file_exists(path + ".bin"))
        return std::make_unique<MegatronFile>(path, max_vocab);
    if (file_exists(path + ".index") && !ends_with(path, ".tok"))
        return std::make_unique<DatatroveFile>(path, max_vocab);
    if (!file_exists(path)) throw Error(path + ": no such file");
    // Own shards carry a magic number; anything else is reported by that reader.
    return std::make_unique<OwnShard>(path, max_vocab);
}

void write_shard(const std::string& path, const std::vector<uint32_t>& tokens, const std::vector<uint64_t>& doc_starts,
                 uint64_t vocab_size, const std::vector<uint8_t>* trained, uint64_t packed_seq_len) {
    if (trained && trained->size() != tokens.size())
        throw Error(path + ": " + std::to_string(trained->size()) + " trained flags for " +
                    std::to_string(tokens.size()) + " tokens");
    uint32_t width = token_width(vocab_size);
    std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(tmp + ": cannot create: " + std::strerror(errno));
    uint8_t header[kShardHeaderBytes] = {};
    std::memcpy(header, kShardMagic, 8);
    uint64_t ntok = tokens.size(), ndoc = doc_starts.size();
    std::memcpy(header + 8, trained ? &kShardVersionTrained : &kShardVersion, 4);
    std::memcpy(header + 12, &width, 4);
    std::memcpy(header + 16, &ntok, 8);
    std::memcpy(header + 24, &ndoc, 8);
    std::memcpy(header + 32, &vocab_size, 8);
    if (trained) std::memcpy(header + 40, &packed_seq_len, 8);
    bool ok = std::fwrite(header, 1, sizeof header, f) == sizeof header;
    if (width == 2) {
        std::vector<uint16_t> buf;
        const size_t chunk = 1 << 20;
        for (size_t s = 0; ok && s < tokens.size(); s += chunk) {
            size_t n = std::min(chunk, tokens.size() - s);
            buf.resize(n);
            for (size_t i = 0; i < n; i++) buf[i] = uint16_t(tokens[s + i]);
            ok = std::fwrite(buf.data(), 2, n, f) == n;
        }
    } else if (!tokens.empty()) {
        ok = ok && std::fwrite(tokens.data(), 4, tokens.size(), f) == tokens.size();
    }
    if (!doc_starts.empty()) ok = ok && std::fwrite(doc_starts.data(), 8, doc_starts.size(), f) == doc_starts.size();
    if (trained && !trained->empty()) ok = ok && std::fwrite(trained->data(), 1, trained->size(), f) == trained->size();
    ok = (std::fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) {
        std::remove(tmp.c_str());
        throw Error(tmp + ": write error: " + std::strerror(errno));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(path + ": cannot rename from " + tmp);
}

bool shard_counts(const std::string& path, uint64_t& tokens, uint64_t& docs) {
    try {
        auto s = open_shard(path, 0);
        tokens = s->num_tokens();
        docs = s->num_docs();
        return true;
    } catch (const Error&) {
        return false;
    }
}

}  // namespace llama::data
