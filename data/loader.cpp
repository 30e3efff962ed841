// The data loader (see loader.h).
#include "data/loader.h"

#include <glob.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

namespace fs = std::filesystem;

namespace llama::data {

namespace {

uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

bool ends_with(const std::string& s, const char* suf) {
    size_t n = std::strlen(suf);
    return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

// The first document of `file` that starts after token `local` (num_docs()
// when none does): a binary search of the document index, whose offsets
// never decrease.
uint64_t first_doc_after(const TokenSource& file, uint64_t local) {
    uint64_t lo = 0, hi = file.num_docs();
    while (lo < hi) {
        const uint64_t mid = lo + (hi - lo) / 2;
        if (file.doc_start(mid) <= local) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

// Where the document of each of the T inputs of the sample starting at token
// `start` of a dataset begins (see DataLoader::next_batch). `files` and
// `offset` are the dataset's (DataLoader::Set). Each file overlapping the
// sample is searched for its first document starting inside the sample, then
// its documents are walked until one starts past the sample: O(log documents)
// per file plus the documents inside.
void fill_doc_starts(const std::vector<std::unique_ptr<TokenSource>>& files, const std::vector<uint64_t>& offset,
                     uint64_t start, uint64_t T, int32_t* out) {
    // First each position where a document starts holds itself, the others -1;
    // then each -1 takes the value before it. Position 0 starts a document
    // either way: one that began before the sample is cut there.
    std::fill(out, out + T, -1);
    out[0] = 0;
    const uint64_t end = start + T;
    size_t f = size_t(std::upper_bound(offset.begin(), offset.end(), start) - offset.begin()) - 1;
    for (; f + 1 < offset.size() && offset[f] < end; f++) {
        if (offset[f] > start) out[offset[f] - start] = int32_t(offset[f] - start);  // files are documents apart
        const TokenSource& file = *files[f];
        const uint64_t lo = std::max(start, offset[f]) - offset[f];  // the sample's part of this file, local
        const uint64_t hi = std::min(end, offset[f + 1]) - offset[f];
        for (uint64_t d = first_doc_after(file, lo); d < file.num_docs(); d++) {
            const uint64_t local = file.doc_start(d);
            if (local >= hi) break;
            const uint64_t p = offset[f] + local - start;
            out[p] = int32_t(p);
        }
    }
    for (uint64_t t = 1; t < T; t++)
        if (out[t] < 0) out[t] = out[t - 1];
}

}  // namespace

uint64_t permute(uint64_t i, uint64_t n, uint64_t key) {
    if (n <= 1) return 0;
    // A balanced Feistel network over the smallest even number of bits that
    // covers n, walking the cycle until the value falls inside [0, n).
    int bits = 64 - __builtin_clzll(n - 1);
    if (bits % 2) bits++;
    int half = bits / 2;
    uint64_t mask = (uint64_t(1) << half) - 1;
    uint64_t x = i;
    do {
        uint64_t l = x >> half, r = x & mask;
        for (int round = 0; round < 4; round++) {
            uint64_t f = mix64(r ^ mix64(key + uint64_t(round))) & mask;
            uint64_t nl = r;
            r = l ^ f;
            l = nl;
        }
        x = (l << half) | r;
    } while (x >= n);
    return x;
}

std::vector<DatasetSpec> parse_mixture(const std::string& text) {
    std::vector<DatasetSpec> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (item.empty()) throw Error("data mixture '" + text + "': empty entry");
        DatasetSpec d;
        size_t colon = item.find(':');
        std::string paths = item;
        if (colon != std::string::npos) {
            std::string w = item.substr(0, colon);
            char* end = nullptr;
            errno = 0;
            double v = std::strtod(w.c_str(), &end);
            if (w.empty() || *end != '\0' || errno || !std::isfinite(v) || v <= 0)
                throw Error("data mixture '" + text + "': weight '" + w + "' is not a positive number");
            d.weight = v;
            paths = item.substr(colon + 1);
        }
        std::stringstream ps(paths);
        std::string p;
        while (std::getline(ps, p, '+'))
            if (!p.empty()) d.paths.push_back(p);
        if (d.paths.empty()) throw Error("data mixture '" + text + "': entry '" + item + "' names no files");
        out.push_back(d);
    }
    if (out.empty()) throw Error("data mixture is empty");
    return out;
}

std::vector<std::string> expand_token_paths(const std::vector<std::string>& paths) {
    std::vector<std::string> out;
    for (const std::string& p : paths) {
        std::error_code ec;
        if (fs::is_directory(p, ec)) {
            std::vector<std::string> found;
            for (auto& e : fs::directory_iterator(p)) {
                std::string f = e.path().string();
                if (ends_with(f, ".tok") || ends_with(f, ".ds")) found.push_back(f);
                else if (ends_with(f, ".idx")) found.push_back(f.substr(0, f.size() - 4));
            }
            std::sort(found.begin(), found.end());
            if (found.empty()) throw Error(p + ": no token files (.tok, .ds, .idx) in this folder");
            out.insert(out.end(), found.begin(), found.end());
        } else if (p.find_first_of("*?[") != std::string::npos) {
            glob_t g{};
            int rc = glob(p.c_str(), 0, nullptr, &g);
            std::vector<std::string> found;
            if (rc == 0)
                for (size_t i = 0; i < g.gl_pathc; i++) found.push_back(g.gl_pathv[i]);
            globfree(&g);
            if (found.empty()) throw Error(p + ": no file matches this pattern");
            out.insert(out.end(), found.begin(), found.end());
        } else {
            out.push_back(p);
        }
    }
    return out;
}

struct DataLoader::Set {
    std::vector<std::unique_ptr<TokenSource>> files;
    std::vector<uint64_t> offset;  // first token of each file in the dataset; back() = total
    uint64_t samples = 0;
    std::string name;
};

DataLoader::DataLoader(const std::vector<DatasetSpec>& datasets, const LoaderConfig& cfg) : cfg_(cfg) {
    if (cfg.T == 0 || cfg.B == 0) throw Error("data loader: T and B must be positive");
    if (cfg.world < 1 || cfg.rank < 0 || cfg.rank >= cfg.world)
        throw Error("data loader: rank " + std::to_string(cfg.rank) + " is not in [0, " + std::to_string(cfg.world) +
                    ")");
    if (datasets.empty()) throw Error("data loader: no datasets");
    // The rank count is left out (the 1 stands where it was): the state counts
    // samples over all ranks, so another rank count can restore it.
    uint64_t fp = mix64(cfg.T) ^ mix64(cfg.B * 31 + 1) ^ mix64(cfg.seed + 7) ^ (cfg.shuffle ? 1 : 2);
    double wsum = 0;
    for (auto& spec : datasets) {
        if (!(spec.weight > 0) || !std::isfinite(spec.weight))
            throw Error("data loader: dataset weights must be positive");
        auto set = std::make_unique<Set>();
        set->offset.push_back(0);
        for (auto& path : expand_token_paths(spec.paths)) {
            set->files.push_back(open_tokens(path, cfg.vocab_size));
            set->offset.push_back(set->offset.back() + set->files.back()->num_tokens());
            set->name += (set->name.empty() ? "" : "+") + path;
            fp = mix64(fp ^ set->files.back()->num_tokens());
        }
        // Packed shards (tokenize sft): every sample must be one packed sequence, so
        // the seq-len must match and the files must be one output, in order (all
        // whole sequences, the last with the one token more).
        for (size_t f = 0; f < set->files.size(); f++) {
            const uint64_t packed = set->files[f]->packed_seq_len();
            if (packed == 0) continue;
            const std::string& path = set->files[f]->path();
            if (packed != cfg.T)
                throw Error(path + ": its conversations are packed into sequences of " + std::to_string(packed) +
                            " tokens (tokenize sft --seq-len), but samples here are " + std::to_string(cfg.T) +
                            ": train with --seq-len " + std::to_string(packed));
            const bool last = f + 1 == set->files.size();
            if (set->offset[f] % packed != 0 || set->files[f]->num_tokens() % packed != (last ? 1 : 0))
                throw Error(path +
                            ": packed sequences would not start where samples do: a dataset of packed shards must "
                            "be the files of one tokenize sft output, all of them, alone");
        }
        uint64_t total = set->offset.back();
        set->samples = total > cfg.T ? (total - 1) / cfg.T : 0;
        if (set->samples == 0)
            throw Error(set->name + ": dataset too small: " + std::to_string(total) + " tokens, a sample needs " +
                        std::to_string(cfg.T + 1));
        sets_.push_back(std::move(set));
        weights_.push_back(spec.weight);
        wsum += spec.weight;
        uint64_t wbits;
        std::memcpy(&wbits, &spec.weight, 8);
        fp = mix64(fp ^ wbits);
    }
    for (double& w : weights_) w /= wsum;
    fingerprint_ = fp;
    reset();
}

DataLoader::~DataLoader() = default;

void DataLoader::reset() {
    st_ = LoaderState();
    st_.drawn.assign(sets_.size(), 0);
    st_.seed = cfg_.seed;
    st_.fingerprint = fingerprint_;
}

uint64_t DataLoader::samples_in(size_t d) const { return sets_.at(d)->samples; }

uint64_t DataLoader::steps_per_epoch() const {
    uint64_t per_step = cfg_.B * uint64_t(cfg_.world);
    return std::max<uint64_t>(1, sets_[0]->samples / per_step);
}

size_t DataLoader::choose(const std::vector<uint64_t>& drawn, uint64_t total) const {
    // The dataset furthest behind its share of the samples drawn so far.
    size_t best = 0;
    double best_gap = -1e300;
    for (size_t d = 0; d < sets_.size(); d++) {
        double gap = weights_[d] * double(total + 1) - double(drawn[d]);
        if (gap > best_gap + 1e-12) {
            best_gap = gap;
            best = d;
        }
    }
    return best;
}

uint64_t DataLoader::sample_index(size_t d, uint64_t k) const {
    uint64_t n = sets_[d]->samples;
    uint64_t epoch = k / n, i = k % n;
    if (!cfg_.shuffle) return i;
    return permute(i, n, mix64(cfg_.seed ^ mix64(d + 1) ^ mix64(epoch + 0x1234)));
}

void DataLoader::read_sample(size_t d, uint64_t sample, uint32_t* out, uint8_t* trained, int32_t* doc_starts) const {
    const Set& s = *sets_[d];
    uint64_t start = sample * cfg_.T, need = cfg_.T + 1;
    if (doc_starts) fill_doc_starts(s.files, s.offset, start, cfg_.T, doc_starts);
    size_t f = size_t(std::upper_bound(s.offset.begin(), s.offset.end(), start) - s.offset.begin()) - 1;
    while (need > 0) {
        uint64_t local = start - s.offset[f];
        uint64_t avail = s.offset[f + 1] - start;
        uint64_t n = std::min(avail, need);
        if (n > 0) s.files[f]->read(local, n, out);
        if (n > 0 && trained) s.files[f]->read_trained(local, n, trained);
        out += n;
        if (trained) trained += n;
        start += n;
        need -= n;
        f++;
    }
}

void DataLoader::peek_slot(uint64_t j, size_t& dataset, uint64_t& sample) const {
    std::vector<uint64_t> drawn = st_.drawn;
    uint64_t total = 0;
    for (auto v : drawn) total += v;
    for (uint64_t k = 0;; k++) {
        size_t d = choose(drawn, total);
        if (k == j) {
            dataset = d;
            sample = sample_index(d, drawn[d]);
            return;
        }
        drawn[d]++;
        total++;
    }
}

bool DataLoader::has_trained() const {
    for (const auto& set : sets_)
        for (const auto& file : set->files)
            if (file->has_trained()) return true;
    return false;
}

bool DataLoader::packed() const {
    for (const auto& set : sets_)
        for (const auto& file : set->files)
            if (file->packed_seq_len() > 0) return true;
    return false;
}

void DataLoader::next_batch(uint32_t* out, uint8_t* trained, int32_t* doc_starts) {
    if (doc_starts && cfg_.T > uint64_t(INT32_MAX))
        throw Error("data loader: document starts are int32 positions, so T must be below 2^31 (T = " +
                    std::to_string(cfg_.T) + ")");
    uint64_t per_step = cfg_.B * uint64_t(cfg_.world);
    uint64_t first = cfg_.B * uint64_t(cfg_.rank);
    uint64_t total = 0;
    for (auto v : st_.drawn) total += v;
    for (uint64_t j = 0; j < per_step; j++) {
        size_t d = choose(st_.drawn, total);
        uint64_t k = st_.drawn[d]++;
        total++;
        if (j >= first && j < first + cfg_.B) {
            read_sample(d, sample_index(d, k), out, trained, doc_starts);
            out += cfg_.T + 1;
            if (trained) trained += cfg_.T + 1;
            if (doc_starts) doc_starts += cfg_.T;  // the T inputs only
        }
    }
    st_.step++;
}

LoaderState DataLoader::state() const { return st_; }

void DataLoader::restore(const LoaderState& s) {
    if (s.fingerprint != fingerprint_ || s.drawn.size() != sets_.size() || s.seed != cfg_.seed)
        throw Error("data loader: the saved state belongs to other datasets or settings (T, B, ranks, seed, weights)");
    st_ = s;
}

std::string LoaderState::serialize() const {
    std::ostringstream o;
    o << "loader-state v1 step " << step << " seed " << seed << " fingerprint " << fingerprint << " drawn";
    for (auto v : drawn) o << ' ' << v;
    return o.str();
}

LoaderState LoaderState::parse(const std::string& text) {
    std::istringstream in(text);
    std::string a, b, w1, w2, w3, w4;
    LoaderState s;
    in >> a >> b >> w1 >> s.step >> w2 >> s.seed >> w3 >> s.fingerprint >> w4;
    if (!in || a != "loader-state" || b != "v1" || w1 != "step" || w2 != "seed" || w3 != "fingerprint" || w4 != "drawn")
        throw Error("data loader state '" + text.substr(0, 80) + "' does not parse");
    uint64_t v;
    while (in >> v) s.drawn.push_back(v);
    if (!in.eof()) throw Error("data loader state '" + text.substr(0, 80) + "' does not parse");
    return s;
}

}  // namespace llama::data
