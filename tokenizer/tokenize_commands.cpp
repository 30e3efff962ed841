// tokenize shards / dump / bench.
#include "tokenizer/tokenize_commands.h"

#include <glob.h>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "data/shard.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace llama::tok {

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------
static std::string read_raw(const std::string& path) {
    std::string s;
    FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
    if (!f) throw Error(path + ": cannot open: " + std::strerror(errno));
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    bool bad = std::ferror(f);
    if (f != stdin) std::fclose(f);
    if (bad) throw Error(path + ": read error");
    return s;
}

static std::string gunzip(const std::string& in, const std::string& path) {
    z_stream z{};
    if (inflateInit2(&z, 15 + 32) != Z_OK) throw Error(path + ": cannot start gzip decoder");
    std::string out;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = uInt(in.size());
    char buf[1 << 16];
    int rc = Z_OK;
    while (true) {
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof buf;
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            inflateEnd(&z);
            throw Error(path + ": corrupt gzip data" + (z.msg ? std::string(": ") + z.msg : std::string()));
        }
        out.append(buf, sizeof buf - z.avail_out);
        if (rc == Z_STREAM_END) {
            // Concatenated gzip members are one stream.
            if (z.avail_in == 0) break;
            inflateReset(&z);
            continue;
        }
        if (z.avail_in == 0 && z.avail_out != 0) {
            inflateEnd(&z);
            throw Error(path + ": truncated gzip data");
        }
    }
    inflateEnd(&z);
    return out;
}

static std::string unzstd(const std::string& in, const std::string& path) {
    ZSTD_DStream* d = ZSTD_createDStream();
    ZSTD_initDStream(d);
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    std::string out;
    std::vector<char> buf(ZSTD_DStreamOutSize());
    size_t rc = 0;
    while (ib.pos < ib.size) {
        ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
        rc = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(rc)) {
            ZSTD_freeDStream(d);
            throw Error(path + ": corrupt zstd data: " + ZSTD_getErrorName(rc));
        }
        out.append(buf.data(), ob.pos);
    }
    while (rc != 0) {  // flush what the decoder still holds
        ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
        rc = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(rc)) break;
        out.append(buf.data(), ob.pos);
        if (ob.pos == 0) break;
    }
    ZSTD_freeDStream(d);
    if (rc != 0) throw Error(path + ": truncated zstd data");
    return out;
}

std::string read_input(const std::string& path) {
    std::string raw = read_raw(path);
    if (raw.size() >= 2 && uint8_t(raw[0]) == 0x1f && uint8_t(raw[1]) == 0x8b) return gunzip(raw, path);
    if (raw.size() >= 4 && uint8_t(raw[0]) == 0x28 && uint8_t(raw[1]) == 0xb5 && uint8_t(raw[2]) == 0x2f &&
        uint8_t(raw[3]) == 0xfd)
        return unzstd(raw, path);
    return raw;
}

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

static bool is_jsonl(const std::string& path) {
    std::string p = path;
    for (const char* ext : {".gz", ".zst"})
        if (p.size() > strlen(ext) && p.compare(p.size() - strlen(ext), strlen(ext), ext) == 0)
            p.resize(p.size() - strlen(ext));
    return (p.size() > 6 && p.compare(p.size() - 6, 6, ".jsonl") == 0) ||
           (p.size() > 5 && p.compare(p.size() - 5, 5, ".json") == 0);
}

// ---------------------------------------------------------------------------
// Streaming input: bytes of one file (decompressed), then its documents
// ---------------------------------------------------------------------------
namespace {

class ByteStream {
public:
    explicit ByteStream(const std::string& path) : path_(path) {
        f_ = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
        if (!f_) throw Error(path + ": cannot open: " + std::strerror(errno));
        fill_raw();
        if (raw_.size() >= 2 && uint8_t(raw_[0]) == 0x1f && uint8_t(raw_[1]) == 0x8b) {
            kind_ = 1;
            if (inflateInit2(&z_, 15 + 32) != Z_OK) throw Error(path + ": cannot start gzip decoder");
        } else if (raw_.size() >= 4 && uint8_t(raw_[0]) == 0x28 && uint8_t(raw_[1]) == 0xb5 &&
                   uint8_t(raw_[2]) == 0x2f && uint8_t(raw_[3]) == 0xfd) {
            kind_ = 2;
            zd_ = ZSTD_createDStream();
            ZSTD_initDStream(zd_);
        }
    }
    ~ByteStream() {
        if (f_ && f_ != stdin) std::fclose(f_);
        if (kind_ == 1) inflateEnd(&z_);
        if (zd_) ZSTD_freeDStream(zd_);
    }
    ByteStream(const ByteStream&) = delete;
    ByteStream& operator=(const ByteStream&) = delete;

    // Appends up to about 1 MiB of decompressed bytes to out; false at the end.
    bool read(std::string& out) {
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
                    if (!finished_)
                        throw Error(path_ + (kind_ == 1 ? ": truncated gzip data" : ": truncated zstd data"));
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
    uint64_t raw_bytes() const { return raw_total_; }

private:
    bool fill_raw() {
        raw_.resize(1 << 20);
        size_t n = std::fread(&raw_[0], 1, raw_.size(), f_);
        if (n == 0 && std::ferror(f_)) throw Error(path_ + ": read error");
        raw_.resize(n);
        raw_pos_ = 0;
        raw_total_ += n;
        return n > 0;
    }
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

// The documents of a list of files, one at a time, reading each file in
// pieces (a whole-file document is, of course, read whole).
class DocumentStream {
public:
    DocumentStream(const std::vector<std::string>& files, const ShardOptions& o) : files_(files), o_(o) {}
    // The next document and the file it came from; false after the last.
    bool next(std::string& doc, std::string& file) {
        while (true) {
            if (!in_) {
                if (fi_ >= files_.size()) return false;
                in_ = std::make_unique<ByteStream>(files_[fi_]);
                buf_.clear();
                pos_ = scan_ = 0;
                eof_ = false;
                line_no_ = 0;
                jsonl_ = is_jsonl(files_[fi_]);
            }
            file = files_[fi_];
            if (take(doc)) return true;
            done_bytes_ += in_->raw_bytes();
            in_.reset();
            fi_++;
        }
    }
    uint64_t raw_bytes() const { return done_bytes_ + (in_ ? in_->raw_bytes() : 0); }

private:
    // Makes sure buf_ holds `want` more bytes past pos_ (or the rest of the file).
    bool more() {
        if (eof_) return false;
        if (pos_ > (1u << 22)) {
            buf_.erase(0, pos_);
            scan_ = scan_ > pos_ ? scan_ - pos_ : 0;
            pos_ = 0;
        }
        if (!in_->read(buf_)) eof_ = true;
        return true;
    }
    bool take(std::string& doc) {
        const std::string& path = files_[fi_];
        if (jsonl_) {
            while (true) {
                size_t nl = buf_.find('\n', std::max(pos_, scan_));
                if (nl == std::string::npos) scan_ = buf_.size();
                if (nl == std::string::npos && more()) continue;
                if (nl == std::string::npos) nl = buf_.size();
                if (pos_ >= buf_.size()) return false;
                std::string_view line(buf_.data() + pos_, nl - pos_);
                pos_ = nl + 1;
                line_no_++;
                if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
                nlohmann::json j;
                try {
                    j = nlohmann::json::parse(line);
                } catch (const std::exception& e) {
                    throw Error(path + ": line " + std::to_string(line_no_) + ": not valid JSON: " + e.what());
                }
                if (!j.is_object() || !j.contains(o_.jsonl_key) || !j[o_.jsonl_key].is_string())
                    throw Error(path + ": line " + std::to_string(line_no_) + ": no string field \"" + o_.jsonl_key +
                                "\"");
                doc = j[o_.jsonl_key].get<std::string>();
                return true;
            }
        }
        if (o_.delimiter.empty()) {
            if (eof_) return false;
            while (more()) {
            }
            doc.assign(buf_, pos_, std::string::npos);
            pos_ = buf_.size();
            return true;
        }
        while (true) {
            size_t from = std::max(pos_, scan_ >= o_.delimiter.size() ? scan_ - o_.delimiter.size() + 1 : size_t(0));
            size_t k = buf_.find(o_.delimiter, from);
            if (k == std::string::npos) scan_ = buf_.size();
            if (k == std::string::npos && more()) continue;
            if (k == std::string::npos) k = buf_.size();
            if (pos_ >= buf_.size()) return false;
            size_t start = pos_;
            pos_ = k + o_.delimiter.size();
            if (k > start) {
                doc.assign(buf_, start, k - start);
                return true;
            }
        }
    }

    const std::vector<std::string>& files_;
    const ShardOptions& o_;
    size_t fi_ = 0;
    std::unique_ptr<ByteStream> in_;
    std::string buf_;
    size_t pos_ = 0, scan_ = 0, line_no_ = 0;
    bool eof_ = false, jsonl_ = false;
    uint64_t done_bytes_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------
// shards
// ---------------------------------------------------------------------------
void add_shard_options(CLI::App* app, ShardOptions& o) {
    app->add_option("--tokenizer", o.tokenizer, "tokenizer.json or tiktoken rank file")->required();
    app->add_option("--pattern", o.pattern, "pre-tokenization pattern for a tiktoken file: llama3 or gpt2");
    app->add_option("--out", o.out, "output folder (train_NNNNNN.tok, val_NNNNNN.tok)")->required();
    app->add_option("inputs", o.inputs, "text, JSONL, .gz or .zst files, folders, globs, or - for stdin")->required();
    app->add_option("--jsonl-key", o.jsonl_key, "field holding the text in .jsonl inputs");
    app->add_option("--delimiter", o.delimiter,
                    "split plain text files into documents at this string (escapes \\n, \\t understood); "
                    "default: one document per file");
    app->add_option("--shard-tokens", o.shard_tokens, "tokens per shard (documents are not split)");
    app->add_option("--val-fraction", o.val_fraction, "fraction of documents for the validation split")
        ->check(CLI::Range(0.0, 1.0));
    app->add_option("--val-docs", o.val_docs, "put the first N documents in the validation split");
    app->add_option("--seed", o.seed, "seed of the validation split choice");
    app->add_option("--threads", o.threads, "threads (default: all cores)");
    app->add_flag("--no-bos", o.no_bos, "no beginning-of-text token before each document");
    app->add_flag("--no-eos", o.no_eos, "no end-of-text token after each document");
    app->add_flag("--progress", o.progress, "show a progress bar even when stderr is not a terminal");
    app->add_flag("--quiet", o.quiet, "no progress bar and no summary");
}

static std::string unescape(const std::string& s) {
    std::string r;
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] == '\\' && i + 1 < s.size()) {
            char c = s[++i];
            r += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
        } else {
            r += s[i];
        }
    }
    return r;
}

uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

std::string shard_name(const std::string& dir, int split, uint64_t k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s_%06llu.tok", split ? "val" : "train", static_cast<unsigned long long>(k));
    return (fs::path(dir) / buf).string();
}

static std::string human(double v) {
    char buf[32];
    const char* units[] = {"", "k", "M", "G", "T"};
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    std::snprintf(buf, sizeof buf, u ? "%.2f%s" : "%.0f%s", v, units[u]);
    return buf;
}

int run_shards(const ShardOptions& opt) {
    ShardOptions o = opt;
    o.delimiter = unescape(o.delimiter);
    if (o.shard_tokens == 0) throw Error("--shard-tokens must be positive");
    tok::Tokenizer t = tok::Tokenizer::from_file(o.tokenizer, o.pattern);
    int64_t bos = o.no_bos ? -1 : t.bos_id(), eos = o.no_eos ? -1 : t.eos_id();
    std::vector<std::string> files = expand_inputs(o.inputs);
    if (files.empty()) throw Error("no input files");
    if (o.threads > 0) omp_set_num_threads(o.threads);

    // The settings that decide the output; a resumed run must use the same ones.
    fs::create_directories(o.out);
    nlohmann::json settings = {{"vocab_size", t.vocab_size()},
                               {"bos", bos},
                               {"eos", eos},
                               {"shard_tokens", o.shard_tokens},
                               {"val_fraction", o.val_fraction},
                               {"val_docs", o.val_docs},
                               {"seed", o.seed},
                               {"jsonl_key", o.jsonl_key},
                               {"delimiter", o.delimiter},
                               {"inputs", files}};
    std::string settings_path = (fs::path(o.out) / "settings.json").string();
    if (fs::exists(settings_path)) {
        nlohmann::json old;
        try {
            old = nlohmann::json::parse(read_raw(settings_path));
        } catch (const std::exception& e) {
            throw Error(settings_path + ": not valid JSON: " + e.what());
        }
        if (old != settings)
            throw Error(settings_path +
                        ": the folder holds shards made with other settings or inputs; use a new --out");
    } else {
        FILE* f = std::fopen(settings_path.c_str(), "w");
        if (!f) throw Error(settings_path + ": cannot create: " + std::strerror(errno));
        std::string s = settings.dump(2) + "\n";
        std::fwrite(s.data(), 1, s.size(), f);
        std::fclose(f);
    }

    // Resume: complete shards (written whole, then renamed) are kept; count
    // the documents they hold in each split and skip that many.
    uint64_t next_shard[2] = {0, 0}, skip_docs[2] = {0, 0}, kept_tokens = 0;
    for (auto& e : fs::directory_iterator(o.out))
        if (e.path().extension() == ".tmp") fs::remove(e.path());
    for (int s = 0; s < 2; s++) {
        uint64_t nt, nd;
        while (data::shard_counts(shard_name(o.out, s, next_shard[s]), nt, nd)) {
            skip_docs[s] += nd;
            kept_tokens += nt;
            next_shard[s]++;
        }
    }
    if (!o.quiet && (next_shard[0] || next_shard[1]))
        std::fprintf(stderr, "resuming: %llu train and %llu validation shards already complete\n",
                     static_cast<unsigned long long>(next_shard[0]), static_cast<unsigned long long>(next_shard[1]));

    uint64_t total_bytes = 0;
    for (auto& f : files) {
        std::error_code ec;
        if (f != "-") total_bytes += fs::file_size(f, ec);
    }
    bool show = !o.quiet && (o.progress || isatty(2));
    auto t0 = std::chrono::steady_clock::now();
    auto last_print = t0;
    uint64_t in_bytes = 0, text_bytes = 0, tokens_out = 0, docs_seen = 0, split_seen[2] = {0, 0};
    uint64_t split_docs[2] = {0, 0}, split_tokens[2] = {0, 0};
    std::vector<uint32_t> buf[2];
    std::vector<uint64_t> starts[2];
    uint32_t vocab = uint32_t(t.vocab_size());

    auto flush = [&](int s) {
        if (buf[s].empty()) return;
        data::write_shard(shard_name(o.out, s, next_shard[s]++), buf[s], starts[s], vocab);
        buf[s].clear();
        starts[s].clear();
    };
    auto progress = [&](bool final) {
        auto now = std::chrono::steady_clock::now();
        if (!show || (!final && now - last_print < std::chrono::milliseconds(500))) return;
        last_print = now;
        double sec = std::chrono::duration<double>(now - t0).count();
        double frac = total_bytes ? double(in_bytes) / double(total_bytes) : 0;
        int width = 30, filled = int(frac * width + 0.5);
        double eta = frac > 0 ? sec * (1 - frac) / frac : 0;
        std::fprintf(stderr, "\r[%s%s] %3.0f%% %7.2f MB/s %9s tokens/s ETA %4.0f s ",
                     std::string(size_t(std::min(filled, width)), '#').c_str(),
                     std::string(size_t(width - std::min(filled, width)), ' ').c_str(), 100 * frac,
                     sec > 0 ? double(text_bytes) / sec / 1e6 : 0.0,
                     human(sec > 0 ? double(tokens_out) / sec : 0).c_str(), eta);
        if (final) std::fprintf(stderr, "\n");
    };

    std::vector<std::string> docs;
    std::vector<std::vector<uint32_t>> ids;
    std::vector<int> split_of;
    std::vector<uint8_t> skip;
    const size_t batch_bytes = size_t(64) << 20;
    DocumentStream stream(files, o);
    std::vector<std::string> doc_file;
    std::string doc, file;
    bool more_docs = true;
    while (more_docs) {
        // A batch of about batch_bytes of text.
        docs.clear();
        doc_file.clear();
        size_t bytes = 0;
        while (bytes < batch_bytes && (more_docs = stream.next(doc, file))) {
            bytes += doc.size();
            docs.push_back(std::move(doc));
            doc_file.push_back(file);
        }
        in_bytes = stream.raw_bytes();
        size_t n = docs.size();
        if (n == 0) break;
        ids.assign(n, {});
        split_of.assign(n, 0);
        skip.assign(n, 0);
        for (size_t i = 0; i < n; i++) {
            uint64_t d = docs_seen++;
            int s = 0;
            if (d < o.val_docs) s = 1;
            else if (o.val_fraction > 0 && double(mix64(d ^ mix64(o.seed)) >> 11) * 0x1.0p-53 < o.val_fraction) s = 1;
            split_of[i] = s;
            skip[i] = split_seen[s]++ < skip_docs[s];
        }
        std::string error;
#pragma omp parallel for schedule(dynamic, 1)
        for (size_t i = 0; i < n; i++) {
            if (skip[i]) continue;
            try {
                if (bos >= 0) ids[i].push_back(uint32_t(bos));
                t.encode(docs[i], ids[i], false);
                if (eos >= 0) ids[i].push_back(uint32_t(eos));
            } catch (const std::exception& e) {
#pragma omp critical
                if (error.empty()) error = doc_file[i] + ": " + e.what();
            }
        }
        if (!error.empty()) throw Error(error);
        for (size_t i = 0; i < n; i++) {
            if (skip[i]) continue;
            text_bytes += docs[i].size();
            int s = split_of[i];
            if (!buf[s].empty() && buf[s].size() + ids[i].size() > o.shard_tokens) flush(s);
            starts[s].push_back(buf[s].size());
            buf[s].insert(buf[s].end(), ids[i].begin(), ids[i].end());
            split_docs[s]++;
            split_tokens[s] += ids[i].size();
            tokens_out += ids[i].size();
        }
        progress(false);
    }
    flush(0);
    flush(1);
    progress(true);
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!o.quiet) {
        std::fprintf(stderr,
                     "documents: %llu train, %llu validation (%llu skipped as already in complete shards)\n"
                     "tokens:    %llu train, %llu validation (+%llu kept)\n"
                     "bytes:     %llu of text in %zu files\n"
                     "shards:    %llu train, %llu validation in %s\n"
                     "time:      %.2f s (%.2f MB/s, %s tokens/s)\n",
                     static_cast<unsigned long long>(split_docs[0]), static_cast<unsigned long long>(split_docs[1]),
                     static_cast<unsigned long long>(skip_docs[0] + skip_docs[1]),
                     static_cast<unsigned long long>(split_tokens[0]), static_cast<unsigned long long>(split_tokens[1]),
                     static_cast<unsigned long long>(kept_tokens), static_cast<unsigned long long>(text_bytes),
                     files.size(), static_cast<unsigned long long>(next_shard[0]),
                     static_cast<unsigned long long>(next_shard[1]), o.out.c_str(), sec, double(text_bytes) / sec / 1e6,
                     human(double(tokens_out) / sec).c_str());
    }
    return 0;
}

// ---------------------------------------------------------------------------
// dump
// ---------------------------------------------------------------------------
void add_dump_options(CLI::App* app, DumpOptions& o) {
    app->add_option("path", o.path,
                    "own shard (.tok), datatrove file (.ds with .ds.index) or Megatron dataset (.bin/.idx or prefix)")
        ->required();
    app->add_flag("--decode", o.decode, "print text (newlines and backslashes escaped as \\n and \\\\)");
    app->add_option("--tokenizer", o.tokenizer, "tokenizer for --decode");
    app->add_option("--pattern", o.pattern, "pre-tokenization pattern for a tiktoken file");
    app->add_option("--vocab-size", o.max_vocab, "check that every token id is below this");
}

int run_dump(const DumpOptions& o) {
    std::unique_ptr<tok::Tokenizer> t;
    if (o.decode) {
        if (o.tokenizer.empty()) throw Error("dump --decode needs --tokenizer");
        t = std::make_unique<tok::Tokenizer>(tok::Tokenizer::from_file(o.tokenizer, o.pattern));
    }
    uint64_t vocab = o.max_vocab ? o.max_vocab : t ? t->vocab_size() : 0;
    auto src = data::open_tokens(o.path, vocab);
    std::vector<uint32_t> ids;
    std::string line;
    char num[16];
    for (uint64_t d = 0; d < src->num_docs(); d++) {
        uint64_t b = src->doc_start(d), e = src->doc_start(d + 1);
        ids.resize(e - b);
        src->read(b, e - b, ids.data());
        line.clear();
        if (t) {
            std::string s = t->decode(ids);
            for (char c : s) {
                if (c == '\n') line += "\\n";
                else if (c == '\\') line += "\\\\";
                else line += c;
            }
        } else {
            for (size_t i = 0; i < ids.size(); i++) {
                if (i) line += ' ';
                line.append(num, size_t(std::snprintf(num, sizeof num, "%u", ids[i])));
            }
        }
        line += '\n';
        if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size()) throw Error("stdout: write error");
    }
    return 0;
}

// ---------------------------------------------------------------------------
// bench
// ---------------------------------------------------------------------------
void add_bench_options(CLI::App* app, BenchOptions& o) {
    app->add_option("--tokenizer", o.tokenizer, "tokenizer.json or tiktoken rank file")->required();
    app->add_option("--pattern", o.pattern, "pre-tokenization pattern for a tiktoken file");
    app->add_option("inputs", o.inputs, "text files (every 100 lines make a document)")->required();
    app->add_option("--threads", o.threads, "threads for the parallel run (default: all cores)");
    app->add_option("--repeat", o.repeat, "runs of each measurement; the fastest counts");
    app->add_flag("--json", o.json, "print one JSON object instead of text");
}

int run_bench(const BenchOptions& o) {
    tok::Tokenizer t = tok::Tokenizer::from_file(o.tokenizer, o.pattern);
    std::string text;
    for (auto& f : expand_inputs(o.inputs)) text += read_input(f);
    // Documents: every 100 lines of the text, as scripts/bench-tokenizer cuts
    // them for tiktoken and Hugging Face tokenizers.
    std::vector<std::string_view> docs;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = pos;
        for (int line = 0; line < 100 && end < text.size(); line++) {
            size_t nl = text.find('\n', end);
            end = nl == std::string::npos ? text.size() : nl + 1;
        }
        docs.emplace_back(text.data() + pos, end - pos);
        pos = end;
    }
    int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
    auto run = [&](int nt, uint64_t& ntok) {
        double best = 1e30;
        for (int r = 0; r < std::max(1, o.repeat); r++) {
            uint64_t count = 0;
            auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(nt) reduction(+ : count)
            {
                std::vector<uint32_t> ids;
#pragma omp for schedule(dynamic, 4)
                for (size_t i = 0; i < docs.size(); i++) {
                    ids.clear();
                    t.encode(docs[i], ids);
                    count += ids.size();
                }
            }
            best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            ntok = count;
        }
        return best;
    };
    uint64_t ntok1 = 0, ntokn = 0;
    double s1 = run(1, ntok1), sn = run(threads, ntokn);
    // Pre-tokenization alone (the regular expression), on one thread.
    double sp = 1e30;
    uint64_t npieces = 0;
    for (int r = 0; r < std::max(1, o.repeat); r++) {
        std::vector<std::string_view> pieces;
        auto t0 = std::chrono::steady_clock::now();
        npieces = 0;
        for (auto d : docs) {
            pieces.clear();
            t.pretokenize(d, pieces);
            npieces += pieces.size();
        }
        sp = std::min(sp, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    double mb = double(text.size()) / 1e6;
    if (o.json) {
        nlohmann::json j = {{"bytes", text.size()},
                            {"tokens", ntok1},
                            {"threads", threads},
                            {"mb_per_s_1", mb / s1},
                            {"tokens_per_s_1", double(ntok1) / s1},
                            {"mb_per_s_n", mb / sn},
                            {"tokens_per_s_n", double(ntokn) / sn},
                            {"pretokenize_mb_per_s_1", mb / sp},
                            {"pieces", npieces}};
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%zu bytes, %llu tokens\n", text.size(), static_cast<unsigned long long>(ntok1));
        std::printf("1 thread:   %8.2f MB/s %12.0f tokens/s\n", mb / s1, double(ntok1) / s1);
        std::printf("%d threads: %8.2f MB/s %12.0f tokens/s (%.2fx)\n", threads, mb / sn, double(ntokn) / sn, s1 / sn);
        std::printf("pre-tokenization alone, 1 thread: %.2f MB/s (%.0f%% of the encoding time)\n", mb / sp,
                    100 * sp / s1);
    }
    return 0;
}

// ---------------------------------------------------------------------------
// batches: what the data loader gives a rank
// ---------------------------------------------------------------------------
void add_batches_options(CLI::App* app, BatchesOptions& o) {
    app->add_option("--data", o.data, "dataset or mixture: PATHS or W:PATHS,W:PATHS (PATHS joined with +)")->required();
    app->add_option("--seq-len,-T", o.T, "sequence length T (samples hold T+1 tokens)");
    app->add_option("--batch,-B", o.B, "samples per rank per step");
    app->add_option("--rank", o.rank, "this rank");
    app->add_option("--world", o.world, "number of ranks");
    app->add_option("--seed", o.seed, "shuffling seed");
    app->add_option("--steps", o.steps, "steps to print");
    app->add_option("--state", o.state, "resume from this state line (as printed on stderr)");
    app->add_option("--vocab-size", o.vocab_size, "check that every token id is below this");
    app->add_flag("--no-shuffle", o.no_shuffle, "samples in file order (the validation loader)");
}

int run_batches(const BatchesOptions& o) {
    data::LoaderConfig cfg;
    cfg.T = o.T;
    cfg.B = o.B;
    cfg.rank = o.rank;
    cfg.world = o.world;
    cfg.seed = o.seed;
    cfg.shuffle = !o.no_shuffle;
    cfg.vocab_size = o.vocab_size;
    data::DataLoader dl(data::parse_mixture(o.data), cfg);
    if (!o.state.empty()) dl.restore(data::LoaderState::parse(o.state));
    std::vector<uint32_t> batch(o.B * (o.T + 1));
    std::string line;
    char num[16];
    for (uint64_t s = 0; s < o.steps; s++) {
        dl.next_batch(batch.data());
        for (uint64_t i = 0; i < o.B; i++) {
            line.clear();
            for (uint64_t k = 0; k <= o.T; k++) {
                if (k) line += ' ';
                line.append(num, size_t(std::snprintf(num, sizeof num, "%u", batch[i * (o.T + 1) + k])));
            }
            line += '\n';
            std::fwrite(line.data(), 1, line.size(), stdout);
        }
    }
    std::fprintf(stderr, "%s\n", dl.state().serialize().c_str());
    return 0;
}

}  // namespace llama::tok
