// The inputs of the tokenize commands: files, folders, globs or stdin, plain
// or compressed (gzip, zstd), read a piece at a time.
//
// Every command that reads documents or conversations (tokenize shards, sft,
// render) goes through PieceReader: a file's bytes are decompressed about a
// megabyte at a time and cut at a delimiter ("\n" for JSONL), so memory holds
// the piece being read and the bytes after it, never the whole file. Places
// in error messages are written FILE:LINE (the line a piece starts on), as
// compilers write them, so that editors and terminals can jump there.
#ifndef TOKENIZER_INPUT_H
#define TOKENIZER_INPUT_H

#include <zlib.h>
#include <zstd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace llama::tok {

// Expands directories (recursively, sorted) and glob patterns; "-" stays.
// Throws tok::Error naming an input that matches nothing.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);
// Reads a whole input file (decompressed); "-" is stdin. Throws tok::Error
// naming the file. For inputs that are used whole (tokenize bench).
std::string read_input(const std::string& path);
// Whether a file name says JSONL: .jsonl or .json, before an optional .gz or .zst.
bool is_jsonl(const std::string& path);
// Whether a line holds only spaces, tabs and carriage returns (skipped in JSONL).
bool blank_line(std::string_view line);

// The decompressed bytes of one file, a megabyte at a time. gzip and zstd are
// recognised by their magic bytes, not by the file's name; concatenated gzip
// members are one stream, and a stream cut short is an error.
class ByteStream {
public:
    explicit ByteStream(const std::string& path);
    ~ByteStream();
    ByteStream(const ByteStream&) = delete;
    ByteStream& operator=(const ByteStream&) = delete;

    // Appends up to about 1 MiB of decompressed bytes to out; false at the end.
    bool read(std::string& out);
    // Bytes read from the file so far (compressed, for progress).
    uint64_t raw_bytes() const { return raw_total_; }

private:
    bool fill_raw();
    std::string path_;
    FILE* f_ = nullptr;
    std::string raw_;
    size_t raw_pos_ = 0;
    uint64_t raw_total_ = 0;
    int kind_ = 0;  // 0 plain, 1 gzip, 2 zstd
    bool finished_ = true;
    z_stream z_{};
    ZSTD_DStream* zd_ = nullptr;
};

// The pieces of one file between occurrences of a delimiter ("\n": its
// lines), each with the number of the line it starts on. An empty delimiter
// makes the whole file one piece.
class PieceReader {
public:
    PieceReader(const std::string& path, std::string delimiter);
    // The next piece, valid until the next call; false after the last. Text
    // after the last delimiter is a piece; empty pieces are returned too (the
    // caller decides whether they count).
    bool next(std::string_view& piece);
    // The place of the piece last returned: FILE:LINE, or FILE for a whole
    // file ("stdin" for -).
    std::string where() const;
    uint64_t raw_bytes() const { return in_.raw_bytes(); }

private:
    bool more();  // reads more bytes into buf_; false at the end of the file
    std::string name_, delimiter_;
    ByteStream in_;
    std::string buf_;
    size_t pos_ = 0;      // the next piece starts here in buf_
    size_t scan_ = 0;     // buf_ before this (less the delimiter's length) holds no delimiter past pos_
    size_t counted_ = 0;  // the newlines in buf_ before this are counted in line_
    uint64_t line_ = 1, piece_line_ = 1;
    bool eof_ = false, whole_done_ = false;
};

}  // namespace llama::tok

#endif  // TOKENIZER_INPUT_H
