// tokenize shards / dump / bench.
#include "tokenizer/tokenize_commands.h"

#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "data/shard.h"
#include "tokenizer/input.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace llama::tok {

// ---------------------------------------------------------------------------
// Documents: JSONL lines (by the file's name), pieces between --delimiter, or
// whole files, read a piece at a time (tokenizer/input.h)
// ---------------------------------------------------------------------------
namespace {

class DocumentStream {
public:
    DocumentStream(const std::vector<std::string>& files, const ShardOptions& o) : files_(files), o_(o) {}
    // The next document and its place (FILE:LINE, or FILE for a whole file);
    // false after the last.
    bool next(std::string& doc, std::string& where) {
        while (true) {
            if (!in_) {
                if (fi_ >= files_.size()) return false;
                jsonl_ = is_jsonl(files_[fi_]);
                in_ = std::make_unique<PieceReader>(files_[fi_], jsonl_ ? "\n" : o_.delimiter);
            }
            std::string_view piece;
            while (in_->next(piece)) {
                if (jsonl_) {
                    if (blank_line(piece)) continue;
                    where = in_->where();
                    nlohmann::json j;
                    try {
                        j = nlohmann::json::parse(piece);
                    } catch (const std::exception& e) {
                        throw Error(where + ": not valid JSON: " + e.what());
                    }
                    if (!j.is_object() || !j.contains(o_.jsonl_key) || !j[o_.jsonl_key].is_string())
                        throw Error(where + ": no string field \"" + o_.jsonl_key + "\" (choose it with --jsonl-key)");
                    doc = j[o_.jsonl_key].get<std::string>();
                    return true;
                }
                if (piece.empty() && !o_.delimiter.empty()) continue;  // two delimiters in a row
                where = in_->where();
                doc.assign(piece);
                return true;
            }
            done_bytes_ += in_->raw_bytes();
            in_.reset();
            fi_++;
        }
    }
    uint64_t raw_bytes() const { return done_bytes_ + (in_ ? in_->raw_bytes() : 0); }

private:
    const std::vector<std::string>& files_;
    const ShardOptions& o_;
    size_t fi_ = 0;
    std::unique_ptr<PieceReader> in_;
    bool jsonl_ = false;
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
            old = nlohmann::json::parse(read_input(settings_path));
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
    std::vector<std::string> doc_where;  // FILE:LINE of each, for errors
    std::string doc, where;
    bool more_docs = true;
    while (more_docs) {
        // A batch of about batch_bytes of text.
        docs.clear();
        doc_where.clear();
        size_t bytes = 0;
        while (bytes < batch_bytes && (more_docs = stream.next(doc, where))) {
            bytes += doc.size();
            docs.push_back(std::move(doc));
            doc_where.push_back(where);
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
                if (error.empty()) error = doc_where[i] + ": " + e.what();
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
