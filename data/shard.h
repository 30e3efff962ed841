// Token shards: the project's own format, and read-only access to the formats
// other pipelines write (datatrove's .ds files, Megatron-LM's .bin/.idx).
//
// Own format (little-endian, one file per shard, extension .tok):
//   offset  size  field
//   0       8     magic "LLMTOKSH"
//   8       4     version: 1, or 2 with the trained flags
//   12      4     token width in bytes: 2 (uint16) or 4 (uint32)
//   16      8     token count N
//   24      8     document count D
//   32      8     vocabulary size V (every token id is < V)
//   40      8     version 2: the sequence length the documents are packed into
//                 (tokenize sft), 0 when they are not packed
//   48      16    reserved, zero (40-63 in version 1)
//   64      N*w   the tokens
//   ...     D*8   document index: the offset (in tokens) where each document starts
//   ...     N     version 2 only: one byte per token, 1 when the loss trains on
//                 predicting it (a fine-tuning conversation's answers), else 0
// The file size must be exactly 64 + N*w + 8*D (+ N in version 2); offsets
// start at 0 and never decrease; flags are 0 or 1; all this is checked when a
// shard is opened. Version 1 shards train on every token.
#ifndef DATA_SHARD_H
#define DATA_SHARD_H

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace llama::data {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

constexpr char kShardMagic[8] = {'L', 'L', 'M', 'T', 'O', 'K', 'S', 'H'};
constexpr uint32_t kShardVersion = 1;         // written without trained flags
constexpr uint32_t kShardVersionTrained = 2;  // written with them
constexpr size_t kShardHeaderBytes = 64;

// A read-only dataset of documents made of tokens, whatever its file format.
class TokenSource {
public:
    virtual ~TokenSource() = default;
    virtual uint64_t num_tokens() const = 0;
    virtual uint64_t num_docs() const = 0;
    // Token offset where document d starts; doc_start(num_docs()) == num_tokens().
    virtual uint64_t doc_start(uint64_t d) const = 0;
    // Copies tokens [start, start + n) to out.
    virtual void read(uint64_t start, uint64_t n, uint32_t* out) const = 0;
    // The sequence length the file's documents are packed into (0: not packed):
    // a loader must cut samples at exactly these boundaries.
    virtual uint64_t packed_seq_len() const { return 0; }
    // Whether the file says which tokens are trained (else all are).
    virtual bool has_trained() const { return false; }
    // Copies the trained flags (1: the loss counts predicting the token) of
    // tokens [start, start + n) to out; all 1 when the file has none.
    virtual void read_trained(uint64_t start, uint64_t n, uint8_t* out) const {
        (void)start;
        std::fill(out, out + n, uint8_t(1));
    }
    // Largest token id + 1 the file promises (0 when the format does not say).
    virtual uint64_t vocab_size() const { return 0; }
    virtual std::string format() const = 0;
    const std::string& path() const { return path_; }

protected:
    std::string path_;
};

// Opens a token file of any supported format, recognised by its content:
// own shards (.tok), datatrove (.ds with .ds.index), Megatron (.bin with .idx,
// or the common prefix). When max_vocab is nonzero every token is checked to
// be below it. Throws Error naming the file and the problem.
std::unique_ptr<TokenSource> open_tokens(const std::string& path, uint64_t max_vocab = 0);

// Opens an own-format shard.
std::unique_ptr<TokenSource> open_shard(const std::string& path, uint64_t max_vocab = 0);

// Writes an own-format shard: version 1, or version 2 when `trained` (one flag
// per token) is given. The file appears under its name only once complete
// (written to NAME.tmp, then renamed).
void write_shard(const std::string& path, const std::vector<uint32_t>& tokens, const std::vector<uint64_t>& doc_starts,
                 uint64_t vocab_size, const std::vector<uint8_t>* trained = nullptr, uint64_t packed_seq_len = 0);

// The token width used for a vocabulary: 2 bytes when every id fits in uint16.
inline uint32_t token_width(uint64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

// Reads just the header of an own-format shard (for resuming); returns false
// if the file is missing or not a valid shard.
bool shard_counts(const std::string& path, uint64_t& tokens, uint64_t& docs);

}  // namespace llama::data

#endif  // DATA_SHARD_H
