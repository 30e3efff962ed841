// Token shards: the project's own format, and read-only access to the formats
// other pipelines write (datatrove's .ds files, Megatron-LM's .bin/.idx).
//
// Own format (little-endian, one file per shard, extension .tok):
//   offset  size  field
//   0       8     magic "LLMTOKSH"
//   8       4     version (1)
//   12      4     token width in bytes: 2 (uint16) or 4 (uint32)
//   16      8     token count N
//   24      8     document count D
//   32      8     vocabulary size V (every token id is < V)
//   40      24    reserved, zero
//   64      N*w   the tokens
//   ...     D*8   document index: the offset (in tokens) where each document starts
// The file size must be exactly 64 + N*w + 8*D; offsets start at 0 and never
// decrease; all this is checked when a shard is opened.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace data {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr char kShardMagic[8] = {'L', 'L', 'M', 'T', 'O', 'K', 'S', 'H'};
constexpr uint32_t kShardVersion = 1;
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

// Writes an own-format shard. The file appears under its name only once
// complete (written to NAME.tmp, then renamed).
void write_shard(const std::string& path, const std::vector<uint32_t>& tokens,
                 const std::vector<uint64_t>& doc_starts, uint64_t vocab_size);

// The token width used for a vocabulary: 2 bytes when every id fits in uint16.
inline uint32_t token_width(uint64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

// Reads just the header of an own-format shard (for resuming); returns false
// if the file is missing or not a valid shard.
bool shard_counts(const std::string& path, uint64_t& tokens, uint64_t& docs);

}  // namespace data
