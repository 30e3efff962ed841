// Byte-level BPE tokenizer (the kind used by GPT-2 and Llama 3).
//
// Loads either a Hugging Face tokenizer.json (BPE model, ByteLevel and
// Split-regex pre-tokenizers, added and special tokens, ignore_merges) or a
// tiktoken rank file (one "base64-token rank" pair per line) together with a
// named pre-tokenization pattern ("gpt2" or "llama3").
//
// Pre-tokenization uses hand-written scanners for the GPT-2 and Llama 3
// patterns and PCRE2 with its JIT compiler for any other. Encoding is
// thread-safe: each thread keeps its own match data and a small cache of
// recently seen pieces.
//
// Token ids must be below 2^24 (16777216), far above any real vocabulary.
//
// Input text must be valid UTF-8. Hugging Face tokenizers only accept valid
// UTF-8 strings too; invalid input is rejected with an error that gives the
// byte offset of the first bad sequence (see utf8_invalid_offset).
#ifndef TOKENIZER_TOKENIZER_H
#define TOKENIZER_TOKENIZER_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llama::tok {

// Every error from loading or encoding; the message names the file (if any)
// and the problem.
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Returns the offset of the first byte that is not part of a valid UTF-8
// sequence (overlong forms, surrogates and code points above U+10FFFF are
// invalid), or npos when the whole text is valid.
size_t utf8_invalid_offset(std::string_view text);

// Pre-tokenization patterns known by name (for tiktoken rank files).
std::string pattern_by_name(const std::string& name);  // "gpt2", "llama3", "cl100k"

class Regex;  // PCRE2 pattern, compiled with JIT (tokenizer.cpp)

struct AddedToken {
    std::string content;
    uint32_t id = 0;
    bool special = true;
};

class Tokenizer {
public:
    // Loads a Hugging Face tokenizer.json. Throws Error on anything unsupported
    // or malformed, naming the file.
    static Tokenizer from_hf_json(const std::string& path);
    // Same, from the JSON text already in memory (name is used in messages).
    static Tokenizer from_hf_json_text(const std::string& text, const std::string& name);
    // Loads a tiktoken rank file with the named pattern ("gpt2" or "llama3"),
    // which also selects the special tokens that follow the ranks.
    static Tokenizer from_tiktoken(const std::string& path, const std::string& pattern_name);
    static Tokenizer from_tiktoken_text(const std::string& text, const std::string& pattern_name,
                                        const std::string& name);
    // Picks the loader from the file: JSON (starts with '{') or tiktoken ranks.
    static Tokenizer from_file(const std::string& path, const std::string& pattern_name = "");

    Tokenizer();
    ~Tokenizer();
    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;

    // Appends the token ids of text to out. Special tokens written in the text
    // (such as "<|begin_of_text|>") become their ids only when allow_special is
    // true; otherwise they are encoded as ordinary text. Throws Error when the
    // text is not valid UTF-8.
    void encode(std::string_view text, std::vector<uint32_t>& out, bool allow_special = false) const;
    std::vector<uint32_t> encode(std::string_view text, bool allow_special = false) const {
        std::vector<uint32_t> out;
        encode(text, out, allow_special);
        return out;
    }
    // The bytes of the tokens, concatenated. Throws Error for an unknown id.
    std::string decode(const uint32_t* ids, size_t n) const;
    std::string decode(const std::vector<uint32_t>& ids) const { return decode(ids.data(), ids.size()); }

    // One more than the largest id in the vocabulary or the added tokens.
    size_t vocab_size() const { return vocab_size_; }
    // Id of an added token or vocabulary entry given as text, or -1.
    int64_t token_id(const std::string& content) const;
    // Beginning / end of document tokens, from the tokenizer's configuration
    // (post-processor template, or the usual names), or -1 when there are none.
    int64_t bos_id() const { return bos_id_; }
    int64_t eos_id() const { return eos_id_; }
    const std::string& name() const { return name_; }

    // BPE on one piece of raw bytes, appended to out (exposed for tests).
    // heap_threshold: pieces this long or longer use the O(n log n) merge loop.
    void bpe(std::string_view piece, std::vector<uint32_t>& out, size_t heap_threshold = 48) const;

    // Splits text (no special tokens) into pre-tokenization pieces (for tests and
    // benchmarks); the pieces concatenated give back the text.
    void pretokenize(std::string_view text, std::vector<std::string_view>& pieces) const;
    // For the GPT-2 and Llama 3 patterns a hand-written scanner replaces the
    // regular expression (same pieces, faster); false goes back to PCRE2.
    void set_fast_pretokenizer(bool on);

    struct Impl;  // internal state (tokenizer.cpp)

private:
    std::unique_ptr<Impl> impl_;
    size_t vocab_size_ = 0;
    int64_t bos_id_ = -1, eos_id_ = -1;
    std::string name_;
    void finish_load();
    void encode_ordinary(std::string_view text, std::vector<uint32_t>& out) const;
};

}  // namespace llama::tok

#endif  // TOKENIZER_TOKENIZER_H
