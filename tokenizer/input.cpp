#include "tokenizer/input.h"

#include <glob.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace llama::tok {

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
    std::vector<std::string> out;
    for (const std::string& in : inputs) {
        if (in == "-") {
            out.push_back(in);
            continue;
        }
        std::error_code ec;
        if (fs::is_directory(in, ec)) {
            std::vector<std::string> files;
            for (auto& e : fs::recursive_directory_iterator(in))
                if (e.is_regular_file()) files.push_back(e.path().string());
            std::sort(files.begin(), files.end());
            out.insert(out.end(), files.begin(), files.end());
            continue;
        }
        if (in.find_first_of("*?[") != std::string::npos) {
            glob_t g{};
            int rc = glob(in.c_str(), 0, nullptr, &g);
            if (rc == 0)
                for (size_t i = 0; i < g.gl_pathc; i++) out.push_back(g.gl_pathv[i]);
            globfree(&g);
            if (rc != 0) throw Error(in + ": no file matches this pattern");
            continue;
        }
        if (!fs::exists(in, ec)) throw Error(in + ": no such file or directory");
        out.push_back(in);
    }
    return out;
}

std::string read_input(const std::string& path) {
    ByteStream in(path);
    std::string text;
    while (in.read(text)) {
    }
    return text;
}

bool is_jsonl(const std::string& path) {
    std::string p = path;
    for (const char* ext : {".gz", ".zst"})
        if (p.size() > strlen(ext) && p.compare(p.size() - strlen(ext), strlen(ext), ext) == 0)
            p.resize(p.size() - strlen(ext));
    return (p.size() > 6 && p.compare(p.size() - 6, 6, ".jsonl") == 0) ||
           (p.size() > 5 && p.compare(p.size() - 5, 5, ".json") == 0);
}

bool blank_line(std::string_view line) { return line.find_first_not_of(" \t\r") == std::string_view::npos; }

// ---------------------------------------------------------------------------
// ByteStream
// ---------------------------------------------------------------------------
ByteStream::ByteStream(const std::string& path) : path_(path) {
    f_ = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
    if (!f_) throw Error(path + ": cannot open: " + std::strerror(errno));
    fill_raw();
    if (raw_.size() >= 2 && uint8_t(raw_[0]) == 0x1f && uint8_t(raw_[1]) == 0x8b) {
        kind_ = 1;
        if (inflateInit2(&z_, 15 + 32) != Z_OK) throw Error(path + ": cannot start gzip decoder");
    } else if (raw_.size() >= 4 && uint8_t(raw_[0]) == 0x28 && uint8_t(raw_[1]) == 0xb5 && uint8_t(raw_[2]) == 0x2f &&
               uint8_t(raw_[3]) == 0xfd) {
        kind_ = 2;
        zd_ = ZSTD_createDStream();
        ZSTD_initDStream(zd_);
    }
}

ByteStream::~ByteStream() {
    if (f_ && f_ != stdin) std::fclose(f_);
    if (kind_ == 1) inflateEnd(&z_);
    if (zd_) ZSTD_freeDStream(zd_);
}

bool ByteStream::read(std::string& out) {
    if (kind_ == 0) {
        if (raw_pos_ >= raw_.size() && !fill_raw()) return false;
        out.append(raw_, raw_pos_, std::string::npos);
        raw_pos_ = raw_.size();
        return true;
    }
    char buf[1 << 16];
    size_t produced = 0;
    while (produced < (1u << 20)) {
        if (raw_pos_ >= raw_.size()) {
            if (!fill_raw()) {
                if (!finished_) throw Error(path_ + (kind_ == 1 ? ": truncated gzip data" : ": truncated zstd data"));
                return produced > 0;
            }
        }
        if (kind_ == 1) {
            if (finished_) {  // another gzip member follows
                inflateReset(&z_);
                finished_ = false;
            }
            z_.next_in = reinterpret_cast<Bytef*>(&raw_[raw_pos_]);
            z_.avail_in = uInt(raw_.size() - raw_pos_);
            z_.next_out = reinterpret_cast<Bytef*>(buf);
            z_.avail_out = sizeof buf;
            int rc = inflate(&z_, Z_NO_FLUSH);
            if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
                throw Error(path_ + ": corrupt gzip data" + (z_.msg ? std::string(": ") + z_.msg : std::string()));
            raw_pos_ = raw_.size() - z_.avail_in;
            out.append(buf, sizeof buf - z_.avail_out);
            produced += sizeof buf - z_.avail_out;
            if (rc == Z_STREAM_END) finished_ = true;
        } else {
            ZSTD_inBuffer ib{raw_.data(), raw_.size(), raw_pos_};
            ZSTD_outBuffer ob{buf, sizeof buf, 0};
            size_t rc = ZSTD_decompressStream(zd_, &ob, &ib);
            if (ZSTD_isError(rc)) throw Error(path_ + ": corrupt zstd data: " + ZSTD_getErrorName(rc));
            raw_pos_ = ib.pos;
            out.append(buf, ob.pos);
            produced += ob.pos;
            finished_ = rc == 0;
        }
    }
    return true;
}

bool ByteStream::fill_raw() {
    raw_.resize(1 << 20);
    size_t n = std::fread(&raw_[0], 1, raw_.size(), f_);
    if (n == 0 && std::ferror(f_)) throw Error(path_ + ": read error");
    raw_.resize(n);
    raw_pos_ = 0;
    raw_total_ += n;
    return n > 0;
}

// ---------------------------------------------------------------------------
// PieceReader
// ---------------------------------------------------------------------------
PieceReader::PieceReader(const std::string& path, std::string delimiter)
    : name_(path == "-" ? "stdin" : path), delimiter_(std::move(delimiter)), in_(path) {}

bool PieceReader::more() {
    if (eof_) return false;
    // Drop the pieces already returned once they fill a few megabytes, so the
    // buffer holds at most the current piece and a little more.
    if (pos_ > (1u << 22)) {
        buf_.erase(0, pos_);
        scan_ = scan_ > pos_ ? scan_ - pos_ : 0;
        counted_ = counted_ > pos_ ? counted_ - pos_ : 0;
        pos_ = 0;
    }
    if (!in_.read(buf_)) eof_ = true;
    return !eof_;
}

bool PieceReader::next(std::string_view& piece) {
    // The line numbers: the newlines of the pieces (and delimiters) returned so far.
    line_ += uint64_t(std::count(buf_.begin() + ptrdiff_t(counted_), buf_.begin() + ptrdiff_t(pos_), '\n'));
    counted_ = pos_;
    if (delimiter_.empty()) {
        if (whole_done_) return false;
        while (more()) {
        }
        whole_done_ = true;
        piece = buf_;
        return true;
    }
    while (true) {
        // Search only the bytes not searched before (a delimiter may straddle
        // the end of what was read: back off by its length less one).
        const size_t d = delimiter_.size();
        size_t k = buf_.find(delimiter_, std::max(pos_, scan_ >= d ? scan_ - d + 1 : size_t(0)));
        if (k == std::string::npos) {
            scan_ = buf_.size();
            if (more()) continue;
            k = buf_.size();
        }
        if (pos_ >= buf_.size()) return false;
        piece = std::string_view(buf_.data() + pos_, k - pos_);
        piece_line_ = line_;
        pos_ = std::min(k + d, buf_.size());
        return true;
    }
}

std::string PieceReader::where() const {
    return delimiter_.empty() ? name_ : name_ + ":" + std::to_string(piece_line_);
}

}  // namespace llama::tok
