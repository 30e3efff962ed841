// Byte-level BPE tokenizer: loaders, PCRE2 pre-tokenizer, BPE merge loop.
#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

namespace llama::tok {

// Token ids must be below this (see tokenizer.h).
constexpr uint64_t kMaxId = uint64_t(1) << 24;

// ---------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------
size_t utf8_invalid_offset(std::string_view s) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t n = s.size(), i = 0;
    while (i < n) {
        // ASCII fast path, eight bytes at a time.
        if (i + 8 <= n) {
            uint64_t w;
            std::memcpy(&w, p + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (i + len > n) return i;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += len;
    }
    return std::string_view::npos;
}

// Decodes one code point of valid UTF-8 at s[i], advancing i.
static unsigned next_cp(std::string_view s, size_t& i) {
    unsigned char c = s[i];
    if (c < 0x80) {
        i++;
        return c;
    }
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    unsigned cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (size_t k = 1; k < len && i + k < s.size(); k++) cp = (cp << 6) | (s[i + k] & 0x3F);
    i += len;
    return cp;
}

// GPT-2's table from bytes to printable code points, used to write byte
// strings in tokenizer.json: printable Latin-1 bytes stand for themselves,
// the other 68 bytes map to U+0100 onwards in byte order.
static const std::vector<int>& unicode_to_byte() {
    static const std::vector<int> table = [] {
        std::vector<int> t(512, -1);
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            int cp = printable ? b : 256 + extra++;
            t[cp] = b;
        }
        return t;
    }();
    return table;
}

static bool byte_level_to_bytes(std::string_view s, std::string& out) {
    out.clear();
    const auto& t = unicode_to_byte();
    if (utf8_invalid_offset(s) != std::string_view::npos) return false;
    size_t i = 0;
    while (i < s.size()) {
        unsigned cp = next_cp(s, i);
        if (cp >= t.size() || t[cp] < 0) return false;
        out += char(t[cp]);
    }
    return true;
}

// ---------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------
static const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
static const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string pattern_by_name(const std::string& name) {
    if (name == "gpt2" || name == "r50k" || name == "r50k_base") return kGpt2Pattern;
    if (name == "llama3" || name == "cl100k" || name == "cl100k_base") return kLlama3Pattern;
    throw Error("unknown pre-tokenization pattern name '" + name + "' (known: gpt2, llama3)");
}

// The white space of the Unicode White_Space property, which is what \s means
// to the Rust and Oniguruma engines used by Hugging Face tokenizers. PCRE2's own
// \s also matches U+180E, so the pattern is rewritten to use this list.
static const char* kWhiteSpace =
    R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

static std::string rewrite_pattern(const std::string& p) {
    std::string out;
    bool in_class = false;
    for (size_t i = 0; i < p.size(); i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < p.size()) {
            char d = p[i + 1];
            if (d == 's') {
                out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
            } else if (d == 'S' && !in_class) {
                out += "[^" + std::string(kWhiteSpace) + "]";
            } else {
                out += c;
                out += d;
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            out += c;
            // A ']' right after '[' or '[^' is a literal.
            if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
            if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
            continue;
        }
        if (in_class && c == ']') in_class = false;
        out += c;
    }
    return out;
}

class Regex {
public:
    explicit Regex(const std::string& pattern) {
        std::string p = rewrite_pattern(pattern);
        int err = 0;
        PCRE2_SIZE off = 0;
        code_ =
            pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
        if (!code_) {
            PCRE2_UCHAR buf[256];
            pcre2_get_error_message(err, buf, sizeof buf);
            throw Error("cannot compile pre-tokenizer pattern at offset " + std::to_string(off) + ": " +
                        reinterpret_cast<char*>(buf));
        }
        jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
        known_ = pattern == kGpt2Pattern ? 1 : pattern == kLlama3Pattern ? 2 : 0;
    }
    ~Regex() { pcre2_code_free(code_); }
    // 1 for the GPT-2 pattern, 2 for Llama 3's, 0 for any other.
    int known() const { return known_; }
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Finds the next match at or after start; returns false when there is none.
    bool find(std::string_view s, size_t start, pcre2_match_data* md, pcre2_match_context* mc, size_t& b,
              size_t& e) const {
        int rc = jit_ ? pcre2_jit_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, 0, md, mc)
                      : pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, PCRE2_NO_UTF_CHECK,
                                    md, mc);
        if (rc == PCRE2_ERROR_NOMATCH) return false;
        if (rc < 0) {
            PCRE2_UCHAR buf[256];
            pcre2_get_error_message(rc, buf, sizeof buf);
            throw Error(std::string("pre-tokenizer match failed: ") + reinterpret_cast<char*>(buf));
        }
        PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        b = ov[0];
        e = ov[1];
        return true;
    }

private:
    pcre2_code* code_ = nullptr;
    bool jit_ = false;
    int known_ = 0;
};

// ---------------------------------------------------------------------------
// Implementation state
// ---------------------------------------------------------------------------
namespace {

struct MergeTable {
    // Open addressing: key (left id << 32 | right id), value rank and result id.
    std::vector<uint64_t> keys;
    std::vector<uint32_t> ranks, results;
    uint64_t mask = 0;
    static constexpr uint64_t kEmpty = ~0ull;

    void build(const std::vector<std::pair<uint64_t, std::pair<uint32_t, uint32_t>>>& items) {
        size_t cap = 16;
        while (cap < items.size() * 2 + 16) cap <<= 1;
        keys.assign(cap, kEmpty);
        ranks.assign(cap, 0);
        results.assign(cap, 0);
        mask = cap - 1;
        for (auto& it : items) {
            uint64_t h = hash(it.first) & mask;
            while (keys[h] != kEmpty && keys[h] != it.first) h = (h + 1) & mask;
            if (keys[h] == it.first) continue;  // first occurrence (lowest rank) wins
            keys[h] = it.first;
            ranks[h] = it.second.first;
            results[h] = it.second.second;
        }
    }
    static uint64_t hash(uint64_t k) {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdull;
        k ^= k >> 33;
        return k;
    }
    // Rank of merging (a, b), or UINT32_MAX when they do not merge.
    inline uint32_t find(uint32_t a, uint32_t b, uint32_t& result) const {
        uint64_t k = (uint64_t(a) << 32) | b;
        uint64_t h = hash(k) & mask;
        while (true) {
            uint64_t kk = keys[h];
            if (kk == k) {
                result = results[h];
                return ranks[h];
            }
            if (kk == kEmpty) return UINT32_MAX;
            h = (h + 1) & mask;
        }
    }
};

struct CacheEntry {
    uint64_t hash = 0;
    std::string key;
    std::vector<uint32_t> ids;
};

struct ThreadState {
    pcre2_match_data* md = nullptr;
    pcre2_match_context* mc = nullptr;
    pcre2_jit_stack* js = nullptr;
    std::vector<CacheEntry> cache;
    std::vector<std::string_view> pieces, pieces2;
    ThreadState() {
        md = pcre2_match_data_create(1, nullptr);
        mc = pcre2_match_context_create(nullptr);
        js = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, nullptr);
        pcre2_jit_stack_assign(mc, nullptr, js);
        cache.resize(1 << 15);
    }
    ~ThreadState() {
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        pcre2_jit_stack_free(js);
    }
};

std::atomic<uint64_t> g_serial{1};

}  // namespace

struct Tokenizer::Impl {
    uint64_t serial = g_serial++;
    std::unordered_map<std::string, uint32_t> vocab;  // raw bytes -> id (BPE model)
    std::vector<std::string> id_bytes;                // id -> bytes (model and added tokens)
    std::vector<uint8_t> id_known;
    uint32_t byte_id[256];
    bool has_byte[256] = {};
    MergeTable merges;
    bool ignore_merges = false;
    bool add_prefix_space = false;
    std::vector<std::unique_ptr<Regex>> stages;  // applied one after the other
    std::vector<AddedToken> added;               // longest first
    bool has_nonspecial_added = false;
    bool fast_pretokenizer = true;  // hand-written scanners for the known patterns
    bool added_first[256] = {};     // first bytes of added tokens

    ThreadState& state() const {
        thread_local std::unordered_map<uint64_t, std::unique_ptr<ThreadState>> states;
        auto it = states.find(serial);
        if (it != states.end()) return *it->second;
        if (states.size() > 16) states.clear();
        return *(states[serial] = std::make_unique<ThreadState>());
    }
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

static std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(path + ": cannot open: " + std::strerror(errno));
    std::ostringstream ss;
    ss << f.rdbuf();
    if (f.bad()) throw Error(path + ": read error");
    return ss.str();
}

Tokenizer Tokenizer::from_file(const std::string& path, const std::string& pattern_name) {
    std::string text = read_file(path);
    size_t i = text.find_first_not_of(" \t\r\n");
    if (i != std::string::npos && text[i] == '{') return from_hf_json_text(text, path);
    if (pattern_name.empty())
        throw Error(path + ": a tiktoken rank file needs a pattern name (gpt2 or llama3; tokenize: --pattern)");
    return from_tiktoken_text(text, pattern_name, path);
}

Tokenizer Tokenizer::from_hf_json(const std::string& path) { return from_hf_json_text(read_file(path), path); }

using nlohmann::json;

static void add_pretokenizer(Tokenizer::Impl&, const json&, const std::string&);

void Tokenizer::finish_load() {
    Impl& m = *impl_;
    size_t n = 0;
    for (auto& kv : m.vocab) n = std::max<size_t>(n, kv.second + 1);
    for (auto& a : m.added) n = std::max<size_t>(n, a.id + 1);
    vocab_size_ = n;
    m.id_bytes.assign(n, {});
    m.id_known.assign(n, 0);
    for (auto& kv : m.vocab) {
        m.id_bytes[kv.second] = kv.first;
        m.id_known[kv.second] = 1;
    }
    for (auto& a : m.added) {
        m.id_bytes[a.id] = a.content;
        m.id_known[a.id] = 1;
        if (!a.special) m.has_nonspecial_added = true;
        m.added_first[uint8_t(a.content[0])] = true;
    }
    std::stable_sort(m.added.begin(), m.added.end(),
                     [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
    for (int b = 0; b < 256; b++) {
        auto it = m.vocab.find(std::string(1, char(b)));
        if (it != m.vocab.end()) {
            m.byte_id[b] = it->second;
            m.has_byte[b] = true;
        }
    }
    for (const char* n : {"<|begin_of_text|>", "<s>"})
        if (bos_id_ < 0) bos_id_ = token_id(n);
    for (const char* n : {"<|end_of_text|>", "<|endoftext|>", "</s>"})
        if (eos_id_ < 0) eos_id_ = token_id(n);
}

static std::string where(const std::string& name) { return name.empty() ? "" : name + ": "; }

static void add_pretokenizer(Tokenizer::Impl& m, const json& pt, const std::string& name) {
    if (pt.is_null()) return;
    std::string type = pt.value("type", "");
    if (type == "Sequence") {
        for (auto& p : pt.at("pretokenizers")) add_pretokenizer(m, p, name);
    } else if (type == "ByteLevel") {
        if (pt.value("add_prefix_space", false)) m.add_prefix_space = true;
        if (pt.value("use_regex", true)) m.stages.push_back(std::make_unique<Regex>(kGpt2Pattern));
    } else if (type == "Split") {
        const json& pat = pt.at("pattern");
        std::string behavior = pt.value("behavior", "");
        if (behavior != "Isolated" || pt.value("invert", false))
            throw Error(where(name) + "unsupported Split pre-tokenizer (behavior '" + behavior +
                        "'; only Isolated without invert is supported)");
        if (pat.contains("Regex")) {
            m.stages.push_back(std::make_unique<Regex>(pat.at("Regex").get<std::string>()));
        } else if (pat.contains("String")) {
            // A literal string: quote it for PCRE2.
            m.stages.push_back(std::make_unique<Regex>("\\Q" + pat.at("String").get<std::string>() + "\\E"));
        } else {
            throw Error(where(name) + "Split pre-tokenizer without Regex or String pattern");
        }
    } else {
        throw Error(where(name) + "unsupported pre-tokenizer type '" + type + "'");
    }
}

Tokenizer Tokenizer::from_hf_json_text(const std::string& text, const std::string& name) {
    Tokenizer t;
    t.name_ = name;
    Impl& m = *t.impl_;
    json j;
    try {
        j = json::parse(text);
    } catch (const std::exception& e) {
        throw Error(where(name) + "not valid JSON: " + e.what());
    }
    try {
        if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
            throw Error(where(name) + "no \"model\" object: not a Hugging Face tokenizer.json");
        const json& model = j["model"];
        std::string mtype = model.value("type", "BPE");
        if (mtype != "BPE") throw Error(where(name) + "model type '" + mtype + "' is not supported (only BPE)");
        if (model.value("byte_fallback", false))
            throw Error(where(name) + "byte_fallback BPE models are not supported (only byte-level BPE)");
        if (j.contains("normalizer") && !j["normalizer"].is_null())
            throw Error(where(name) + "normalizers are not supported (the normalizer must be null)");
        m.ignore_merges = model.value("ignore_merges", false);
        const json& vocab = model.at("vocab");
        if (!vocab.is_object()) throw Error(where(name) + "model.vocab is not an object");
        std::string bytes;
        for (auto it = vocab.begin(); it != vocab.end(); ++it) {
            if (!it.value().is_number_unsigned() || it.value().get<uint64_t>() >= kMaxId)
                throw Error(where(name) + "vocab entry '" + it.key() + "' has no valid id");
            if (!byte_level_to_bytes(it.key(), bytes))
                throw Error(where(name) + "vocab entry '" + it.key() + "' is not a byte-level token");
            m.vocab[bytes] = it.value().get<uint32_t>();
        }
        std::vector<std::pair<uint64_t, std::pair<uint32_t, uint32_t>>> items;
        const json& merges = model.at("merges");
        items.reserve(merges.size());
        std::string a, b;
        uint32_t rank = 0;
        for (auto& mg : merges) {
            std::string sa, sb;
            if (mg.is_string()) {
                std::string s = mg.get<std::string>();
                size_t sp = s.find(' ');
                if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
                    throw Error(where(name) + "merge '" + s + "' is not two tokens separated by a space");
                sa = s.substr(0, sp);
                sb = s.substr(sp + 1);
            } else if (mg.is_array() && mg.size() == 2) {
                sa = mg[0].get<std::string>();
                sb = mg[1].get<std::string>();
            } else {
                throw Error(where(name) + "merge number " + std::to_string(rank) + " is malformed");
            }
            if (!byte_level_to_bytes(sa, a) || !byte_level_to_bytes(sb, b))
                throw Error(where(name) + "merge '" + sa + " " + sb + "' is not byte-level");
            auto ia = m.vocab.find(a), ib = m.vocab.find(b), ic = m.vocab.find(a + b);
            if (ia == m.vocab.end() || ib == m.vocab.end() || ic == m.vocab.end())
                throw Error(where(name) + "merge '" + sa + " " + sb + "' uses a token missing from the vocab");
            items.push_back({(uint64_t(ia->second) << 32) | ib->second, {rank, ic->second}});
            rank++;
        }
        m.merges.build(items);
        if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
            for (auto& at : j["added_tokens"]) {
                AddedToken a;
                const json& id = at.at("id");
                if (!id.is_number_unsigned() || id.get<uint64_t>() >= kMaxId)
                    throw Error(where(name) + "an added token has no valid id");
                a.id = id.get<uint32_t>();
                a.content = at.at("content").get<std::string>();
                a.special = at.value("special", false);
                if (a.content.empty()) throw Error(where(name) + "added token " + std::to_string(a.id) + " is empty");
                m.added.push_back(a);
            }
        }
        if (j.contains("pre_tokenizer")) {
            try {
                add_pretokenizer(m, j["pre_tokenizer"], name);
            } catch (const Error& e) {
                std::string msg = e.what();
                if (!name.empty() && msg.rfind(name, 0) != 0) throw Error(where(name) + msg);
                throw;
            }
        }
        t.finish_load();
        // The post-processor's template says which special tokens surround a sequence.
        std::vector<const json*> procs;
        if (j.contains("post_processor") && j["post_processor"].is_object()) {
            const json& pp = j["post_processor"];
            if (pp.value("type", "") == "Sequence" && pp.contains("processors"))
                for (auto& p : pp["processors"]) procs.push_back(&p);
            else procs.push_back(&pp);
        }
        for (const json* p : procs) {
            if (p->value("type", "") != "TemplateProcessing" || !p->contains("single")) continue;
            bool seen_a = false;
            t.bos_id_ = t.eos_id_ = -1;
            for (auto& item : (*p)["single"]) {
                if (item.contains("Sequence")) {
                    seen_a = true;
                } else if (item.contains("SpecialToken")) {
                    int64_t id = t.token_id(item["SpecialToken"].at("id").get<std::string>());
                    (seen_a ? t.eos_id_ : t.bos_id_) = id;
                }
            }
            // The template names only what the model adds; the end of document
            // token still exists under its usual name.
            if (t.eos_id_ < 0)
                for (const char* n : {"<|end_of_text|>", "<|endoftext|>", "</s>"})
                    if (t.eos_id_ < 0) t.eos_id_ = t.token_id(n);
        }
    } catch (const json::exception& e) {
        throw Error(where(name) + "malformed tokenizer.json: " + e.what());
    }
    if (m.stages.empty()) throw Error(where(name) + "no pre-tokenizer: a byte-level BPE tokenizer needs one");
    return t;
}

static bool base64_decode(std::string_view in, std::string& out) {
    static int8_t table[256];
    static std::once_flag once;
    std::call_once(once, [] {
        std::memset(table, -1, sizeof table);
        const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int i = 0; i < 64; i++) table[uint8_t(a[i])] = int8_t(i);
    });
    out.clear();
    uint32_t acc = 0;
    int bits = 0;
    size_t i = 0;
    for (; i < in.size() && in[i] != '='; i++) {
        int v = table[uint8_t(in[i])];
        if (v < 0) return false;
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += char((acc >> bits) & 0xFF);
        }
    }
    for (; i < in.size(); i++)
        if (in[i] != '=') return false;
    return !out.empty();
}

Tokenizer Tokenizer::from_tiktoken(const std::string& path, const std::string& pattern_name) {
    return from_tiktoken_text(read_file(path), pattern_name, path);
}

Tokenizer Tokenizer::from_tiktoken_text(const std::string& text, const std::string& pattern_name,
                                        const std::string& name) {
    Tokenizer t;
    t.name_ = name;
    Impl& m = *t.impl_;
    std::vector<std::string> by_rank;
    size_t pos = 0, line_no = 0;
    std::string bytes;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        std::string_view line(text.data() + pos, nl - pos);
        pos = nl + 1;
        line_no++;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        size_t sp = line.find(' ');
        std::string_view b64 = line.substr(0, sp == std::string_view::npos ? line.size() : sp);
        std::string_view rank_s = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
        uint64_t rank = 0;
        bool ok = !rank_s.empty() && rank_s.size() < 10;
        for (char c : rank_s) {
            if (c < '0' || c > '9') ok = false;
            rank = rank * 10 + uint64_t(c - '0');
        }
        if (rank >= kMaxId) ok = false;
        if (!ok || !base64_decode(b64, bytes))
            throw Error(where(name) + "line " + std::to_string(line_no) +
                        ": expected a base64 token and a rank (is this a tiktoken rank file?)");
        if (!m.vocab.emplace(bytes, uint32_t(rank)).second)
            throw Error(where(name) + "line " + std::to_string(line_no) + ": token listed twice");
        if (by_rank.size() <= rank) by_rank.resize(rank + 1);
        by_rank[rank] = bytes;
    }
    if (m.vocab.empty()) throw Error(where(name) + "no tokens in the rank file");
    // Derive the merge of each multi-byte token: BPE its bytes using only lower
    // ranks; the last two parts are what merges into it.
    std::vector<std::pair<uint64_t, std::pair<uint32_t, uint32_t>>> items;
    std::vector<std::string> parts;
    for (uint32_t r = 0; r < by_rank.size(); r++) {
        const std::string& tokb = by_rank[r];
        if (tokb.size() < 2) continue;
        parts.clear();
        for (char c : tokb) parts.emplace_back(1, c);
        while (parts.size() > 2) {
            uint32_t best = UINT32_MAX;
            size_t bi = 0;
            for (size_t i = 0; i + 1 < parts.size(); i++) {
                auto it = m.vocab.find(parts[i] + parts[i + 1]);
                if (it != m.vocab.end() && it->second < best && it->second < r) {
                    best = it->second;
                    bi = i;
                }
            }
            if (best == UINT32_MAX) break;
            parts[bi] += parts[bi + 1];
            parts.erase(parts.begin() + long(bi) + 1);
        }
        if (parts.size() != 2) continue;
        auto ia = m.vocab.find(parts[0]), ib = m.vocab.find(parts[1]);
        if (ia == m.vocab.end() || ib == m.vocab.end()) continue;
        items.push_back({(uint64_t(ia->second) << 32) | ib->second, {r, r}});
    }
    std::sort(items.begin(), items.end(), [](auto& x, auto& y) { return x.second.first < y.second.first; });
    m.merges.build(items);
    m.ignore_merges = true;  // tiktoken looks a whole piece up first
    m.stages.push_back(std::make_unique<Regex>(pattern_by_name(pattern_name)));
    uint32_t n = uint32_t(by_rank.size());
    if (pattern_name == "gpt2" || pattern_name == "r50k" || pattern_name == "r50k_base") {
        m.added.push_back({"<|endoftext|>", n, true});
    } else if (pattern_name == "llama3") {
        const char* names[] = {"<|begin_of_text|>",
                               "<|end_of_text|>",
                               "<|reserved_special_token_0|>",
                               "<|reserved_special_token_1|>",
                               "<|finetune_right_pad_id|>",
                               "<|step_id|>",
                               "<|start_header_id|>",
                               "<|end_header_id|>",
                               "<|eom_id|>",
                               "<|eot_id|>",
                               "<|python_tag|>"};
        uint32_t k = 0;
        for (const char* s : names) m.added.push_back({s, n + k++, true});
        for (int i = 2; k < 256; i++)
            m.added.push_back({"<|reserved_special_token_" + std::to_string(i) + "|>", n + k++, true});
    }
    t.finish_load();
    return t;
}

int64_t Tokenizer::token_id(const std::string& content) const {
    for (auto& a : impl_->added)
        if (a.content == content) return a.id;
    auto it = impl_->vocab.find(content);
    return it == impl_->vocab.end() ? -1 : int64_t(it->second);
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------
void Tokenizer::bpe(std::string_view piece, std::vector<uint32_t>& out, size_t heap_threshold) const {
    const Impl& m = *impl_;
    size_t n = piece.size();
    for (size_t i = 0; i < n; i++)
        if (!m.has_byte[uint8_t(piece[i])])
            throw Error(where(name_) + "byte " + std::to_string(uint8_t(piece[i])) + " has no token in the vocab");
    if (n == 1) {
        out.push_back(m.byte_id[uint8_t(piece[0])]);
        return;
    }
    if (n < std::min<size_t>(heap_threshold, 64)) {
        // Small pieces: arrays of symbols and of the rank of each adjacent pair.
        uint32_t ids[64], rk[64], res[64];
        for (size_t i = 0; i < n; i++) ids[i] = m.byte_id[uint8_t(piece[i])];
        for (size_t i = 0; i + 1 < n; i++) rk[i] = m.merges.find(ids[i], ids[i + 1], res[i]);
        while (n > 1) {
            uint32_t best = UINT32_MAX;
            size_t bi = 0;
            for (size_t i = 0; i + 1 < n; i++)
                if (rk[i] < best) {
                    best = rk[i];
                    bi = i;
                }
            if (best == UINT32_MAX) break;
            ids[bi] = res[bi];
            for (size_t i = bi + 1; i + 1 < n; i++) ids[i] = ids[i + 1];
            for (size_t i = bi + 1; i + 2 < n; i++) {
                rk[i] = rk[i + 1];
                res[i] = res[i + 1];
            }
            n--;
            if (bi > 0) rk[bi - 1] = m.merges.find(ids[bi - 1], ids[bi], res[bi - 1]);
            if (bi + 1 < n) rk[bi] = m.merges.find(ids[bi], ids[bi + 1], res[bi]);
        }
        out.insert(out.end(), ids, ids + n);
        return;
    }
    // Long pieces: linked list of symbols and a heap of candidate merges,
    // ordered by rank and then position (leftmost first). Stale entries are
    // recognised by checking the ids they were made from.
    std::vector<uint32_t> ids(n);
    std::vector<int64_t> prev(n), next(n);
    std::vector<uint8_t> alive(n, 1);
    for (size_t i = 0; i < n; i++) {
        ids[i] = m.byte_id[uint8_t(piece[i])];
        prev[i] = int64_t(i) - 1;
        next[i] = i + 1 < n ? int64_t(i + 1) : -1;
    }
    struct Cand {
        uint32_t rank;
        uint32_t pos;
        uint32_t left, right, result;
        bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto push = [&](int64_t i) {
        if (i < 0 || next[i] < 0) return;
        uint32_t res;
        uint32_t r = m.merges.find(ids[i], ids[next[i]], res);
        if (r != UINT32_MAX) heap.push({r, uint32_t(i), ids[i], ids[next[i]], res});
    };
    for (size_t i = 0; i + 1 < n; i++) push(int64_t(i));
    while (!heap.empty()) {
        Cand c = heap.top();
        heap.pop();
        int64_t i = c.pos;
        if (!alive[i] || ids[i] != c.left || next[i] < 0 || ids[next[i]] != c.right) continue;
        int64_t j = next[i];
        ids[i] = c.result;
        alive[j] = 0;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        push(prev[i]);
        push(i);
    }
    for (int64_t i = 0; i >= 0; i = next[i]) out.push_back(ids[i]);
}

// ---------------------------------------------------------------------------
// Hand-written pre-tokenizers for the GPT-2 and Llama 3 patterns. They give
// the same pieces as the regular expressions (the tests compare them on random
// and real text) about four times faster. Letters and numbers outside ASCII
// are classified by PCRE2's \p{L} and \p{N} once per code point, so both
// paths agree on Unicode too; white space is the Unicode White_Space set.
// ---------------------------------------------------------------------------
namespace {

enum CpClass : uint8_t { kUnknown = 0, kLetter = 1, kNumber = 2, kSpace = 3, kOther = 4 };

class CpClasses {
public:
    CpClasses() : table_(new std::atomic<uint8_t>[0x110000]) {
        for (unsigned c = 0; c < 0x110000; c++) table_[c].store(kUnknown, std::memory_order_relaxed);
        int err;
        PCRE2_SIZE off;
        letter_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>("\\p{L}"), PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &err, &off, nullptr);
        number_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>("\\p{N}"), PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &err, &off, nullptr);
    }
    inline CpClass get(unsigned cp) const {
        uint8_t v = table_[cp].load(std::memory_order_relaxed);
        if (v != kUnknown) return CpClass(v);
        CpClass c = compute(cp);
        table_[cp].store(c, std::memory_order_relaxed);
        return c;
    }

private:
    CpClass compute(unsigned cp) const {
        switch (cp) {
            case 0x09:
            case 0x0A:
            case 0x0B:
            case 0x0C:
            case 0x0D:
            case 0x20:
            case 0x85:
            case 0xA0:
            case 0x1680:
            case 0x2028:
            case 0x2029:
            case 0x202F:
            case 0x205F:
            case 0x3000:
                return kSpace;
            default:
                if (cp >= 0x2000 && cp <= 0x200A) return kSpace;
        }
        char buf[4];
        size_t n;
        if (cp < 0x80) {
            buf[0] = char(cp);
            n = 1;
        } else if (cp < 0x800) {
            buf[0] = char(0xC0 | (cp >> 6));
            buf[1] = char(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            buf[0] = char(0xE0 | (cp >> 12));
            buf[1] = char(0x80 | ((cp >> 6) & 0x3F));
            buf[2] = char(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            buf[0] = char(0xF0 | (cp >> 18));
            buf[1] = char(0x80 | ((cp >> 12) & 0x3F));
            buf[2] = char(0x80 | ((cp >> 6) & 0x3F));
            buf[3] = char(0x80 | (cp & 0x3F));
            n = 4;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) return kOther;
        pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
        auto test = [&](pcre2_code* re) {
            return pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(buf), n, 0, 0, md, nullptr) >= 0;
        };
        CpClass c = test(letter_) ? kLetter : test(number_) ? kNumber : kOther;
        pcre2_match_data_free(md);
        return c;
    }
    std::unique_ptr<std::atomic<uint8_t>[]> table_;
    pcre2_code* letter_ = nullptr;
    pcre2_code* number_ = nullptr;
};

const CpClasses& cp_classes() {
    static const CpClasses c;
    return c;
}

// A code point of valid UTF-8 at s[i]: its class and length in bytes.
inline CpClass class_at(std::string_view s, size_t i, size_t& len) {
    unsigned char c = s[i];
    if (c < 0x80) {
        len = 1;
        static const uint8_t ascii[128] = {4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
                                           4, 4, 4, 4, 4, 4, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2,
                                           2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                           1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1,
                                           1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4};
        return CpClass(ascii[c]);
    }
    size_t k = i;
    unsigned cp = next_cp(s, k);
    len = k - i;
    return cp_classes().get(cp);
}

inline bool is_crlf(std::string_view s, size_t i) { return s[i] == '\r' || s[i] == '\n'; }

// End of the run of code points of class c starting at i (at most max of them).
inline size_t run_end(std::string_view s, size_t i, CpClass c, size_t max = SIZE_MAX) {
    size_t len;
    while (i < s.size() && max > 0 && class_at(s, i, len) == c) {
        i += len;
        max--;
    }
    return i;
}

// Contractions: 's 't 're 've 'm 'll 'd (case-insensitive for Llama 3, where
// the long s U+017F counts as an s, as Unicode case folding says).
inline size_t contraction(std::string_view s, size_t i, bool fold) {
    if (s[i] != '\'' || i + 1 >= s.size()) return 0;
    auto lower = [&](size_t k) -> int {
        if (k >= s.size()) return 0;
        unsigned char c = s[k];
        if (fold && c >= 'A' && c <= 'Z') return c + 32;
        return c;
    };
    int a = lower(i + 1), b = lower(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    if (fold && a == 0xC5 && b == 0xBF) return 3;  // 'ſ
    return 0;
}

// \s+(?!\S) and \s+ on the white space run [i, e): the run, less its last
// code point when a non-space follows and the run is longer than one.
inline size_t space_piece_end(std::string_view s, size_t i, size_t e) {
    if (e >= s.size()) return e;
    size_t last = e - 1;
    while ((uint8_t(s[last]) & 0xC0) == 0x80) last--;
    return last > i ? last : e;
}

size_t gpt2_piece(std::string_view s, size_t i) {
    if (size_t c = contraction(s, i, false)) return i + c;
    size_t len;
    CpClass c = class_at(s, i, len);
    size_t j = i;
    if (s[i] == ' ' && i + 1 < s.size()) {
        size_t len2;
        CpClass c2 = class_at(s, i + 1, len2);
        if (c2 != kSpace) {
            c = c2;
            j = i + 1;
        }
    }
    if (c == kLetter || c == kNumber || c == kOther) return run_end(s, j, c);
    size_t e = run_end(s, i, kSpace);
    return space_piece_end(s, i, e);
}

size_t llama3_piece(std::string_view s, size_t i) {
    if (size_t c = contraction(s, i, true)) return i + c;
    size_t len;
    CpClass c = class_at(s, i, len);
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c == kLetter) return run_end(s, i, kLetter);
    if (c != kNumber && !is_crlf(s, i) && i + len < s.size()) {
        size_t len2;
        if (class_at(s, i + len, len2) == kLetter) return run_end(s, i + len, kLetter);
    }
    // \p{N}{1,3}
    if (c == kNumber) return run_end(s, i, kNumber, 3);
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    size_t j = i;
    if (s[i] == ' ' && i + 1 < s.size()) {
        size_t len2;
        if (class_at(s, i + 1, len2) == kOther) j = i + 1;
    }
    if (j > i || c == kOther) {
        size_t e = run_end(s, j, kOther);
        while (e < s.size() && is_crlf(s, e)) e++;
        return e;
    }
    // \s*[\r\n]+ : the white space up to and including its last \r or \n.
    size_t e = run_end(s, i, kSpace);
    for (size_t k = e; k > i; k--)
        if (is_crlf(s, k - 1)) return k;
    // \s+(?!\S) | \s+
    return space_piece_end(s, i, e);
}

}  // namespace

static void split_by(const Regex& re, std::string_view s, ThreadState& ts, std::vector<std::string_view>& out,
                     bool fast) {
    if (fast && re.known()) {
        for (size_t i = 0; i < s.size();) {
            size_t e = re.known() == 1 ? gpt2_piece(s, i) : llama3_piece(s, i);
            out.push_back(s.substr(i, e - i));
            i = e;
        }
        return;
    }
    size_t pos = 0, b, e;
    while (pos < s.size()) {
        if (!re.find(s, pos, ts.md, ts.mc, b, e)) {
            out.push_back(s.substr(pos));
            return;
        }
        if (b > pos) out.push_back(s.substr(pos, b - pos));
        if (e == b) {
            // An empty match: move on by one character.
            size_t k = b;
            next_cp(s, k);
            if (k > s.size()) k = s.size();
            out.push_back(s.substr(b, k - b));
            pos = k;
            continue;
        }
        out.push_back(s.substr(b, e - b));
        pos = e;
    }
}

static void pretokenize_impl(const Tokenizer::Impl& m, std::string_view text, ThreadState& ts,
                             std::vector<std::string_view>& pieces) {
    pieces.clear();
    split_by(*m.stages[0], text, ts, pieces, m.fast_pretokenizer);
    for (size_t k = 1; k < m.stages.size(); k++) {
        ts.pieces2.clear();
        for (auto p : pieces) split_by(*m.stages[k], p, ts, ts.pieces2, m.fast_pretokenizer);
        pieces.swap(ts.pieces2);
    }
}

void Tokenizer::pretokenize(std::string_view text, std::vector<std::string_view>& pieces) const {
    ThreadState& ts = impl_->state();
    std::vector<std::string_view> tmp;
    pretokenize_impl(*impl_, text, ts, tmp);
    pieces.insert(pieces.end(), tmp.begin(), tmp.end());
}

void Tokenizer::encode_ordinary(std::string_view text, std::vector<uint32_t>& out) const {
    if (text.empty()) return;
    const Impl& m = *impl_;
    ThreadState& ts = m.state();
    std::string prefixed;
    if (m.add_prefix_space && text[0] != ' ') {
        prefixed = " " + std::string(text);
        text = prefixed;
    }
    pretokenize_impl(m, text, ts, ts.pieces);
    const size_t mask = ts.cache.size() - 1;
    for (std::string_view p : ts.pieces) {
        if (p.size() == 1) {
            if (!m.has_byte[uint8_t(p[0])])
                throw Error(where(name_) + "byte " + std::to_string(uint8_t(p[0])) + " has no token in the vocab");
            out.push_back(m.byte_id[uint8_t(p[0])]);
            continue;
        }
        bool cacheable = p.size() <= 48;
        uint64_t h = 0;
        if (cacheable) {
            h = XXH3_64bits(p.data(), p.size());
            CacheEntry& ce = ts.cache[h & mask];
            if (ce.hash == h && ce.key == p) {
                out.insert(out.end(), ce.ids.begin(), ce.ids.end());
                continue;
            }
        }
        size_t start = out.size();
        bool done = false;
        if (m.ignore_merges) {
            auto it = m.vocab.find(std::string(p));
            if (it != m.vocab.end()) {
                out.push_back(it->second);
                done = true;
            }
        }
        if (!done) bpe(p, out);
        if (cacheable) {
            CacheEntry& ce = ts.cache[h & mask];
            ce.hash = h;
            ce.key.assign(p.data(), p.size());
            ce.ids.assign(out.begin() + long(start), out.end());
        }
    }
}

void Tokenizer::encode(std::string_view text, std::vector<uint32_t>& out, bool allow_special) const {
    size_t bad = utf8_invalid_offset(text);
    if (bad != std::string_view::npos) throw Error("input is not valid UTF-8 at byte offset " + std::to_string(bad));
    const Impl& m = *impl_;
    if (m.added.empty() || (!allow_special && !m.has_nonspecial_added)) {
        encode_ordinary(text, out);
        return;
    }
    // Split around added tokens (longest match first at each position).
    size_t start = 0, i = 0;
    while (i < text.size()) {
        const AddedToken* hit = nullptr;
        if (m.added_first[uint8_t(text[i])])
            for (const AddedToken& a : m.added) {
                if (!allow_special && a.special) continue;
                if (a.content[0] == text[i] && text.compare(i, a.content.size(), a.content) == 0) {
                    hit = &a;
                    break;
                }
            }
        if (!hit) {
            i++;
            continue;
        }
        encode_ordinary(text.substr(start, i - start), out);
        out.push_back(hit->id);
        i += hit->content.size();
        start = i;
    }
    encode_ordinary(text.substr(start), out);
}

void Tokenizer::set_fast_pretokenizer(bool on) { impl_->fast_pretokenizer = on; }

std::string Tokenizer::decode(const uint32_t* ids, size_t n) const {
    std::string s;
    const Impl& m = *impl_;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= m.id_known.size() || !m.id_known[ids[i]])
            throw Error("token id " + std::to_string(ids[i]) + " is not in the vocabulary of " + name_);
        s += m.id_bytes[ids[i]];
    }
    return s;
}

}  // namespace llama::tok
