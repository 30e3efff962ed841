// libFuzzer targets for the tokenizer's file loaders and its encoder.
// The first input byte picks the target; the rest is its input:
//   0: the text of a tokenizer.json
//   1: the text of a tiktoken rank file (gpt2 pattern)
//   2: text to encode with a small tokenizer; decode(encode(x)) must give x
//      and the hand-written pre-tokenizers must give the PCRE2 pieces
// Any error must be a tok::Error; anything else (a crash, a sanitizer report,
// another exception, a failed round trip) is a finding.
#include <cstdlib>
#include <string>

#include "tokenizer/tokenizer.h"

namespace tok = llama::tok;

static std::string base64(const std::string& s) {
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < s.size(); i += 3) {
        unsigned v = (unsigned(uint8_t(s[i])) << 16) | (unsigned(uint8_t(s[i + 1])) << 8) | uint8_t(s[i + 2]);
        out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63]};
    }
    if (i + 1 == s.size()) {
        unsigned v = unsigned(uint8_t(s[i])) << 16;
        out += {a[v >> 18], a[(v >> 12) & 63], '=', '='};
    } else if (i + 2 == s.size()) {
        unsigned v = (unsigned(uint8_t(s[i])) << 16) | (unsigned(uint8_t(s[i + 1])) << 8);
        out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], '='};
    }
    return out;
}

// Every byte, then a few merges, as a tiktoken rank file.
static tok::Tokenizer make_small(const char* pattern) {
    std::string ranks;
    int r = 0;
    for (int b = 0; b < 256; b++) ranks += base64(std::string(1, char(b))) + " " + std::to_string(r++) + "\n";
    for (const char* m : {"th", "he", "the", " t", " the", "  ", "    ", "in", "ing", "\xc3\xa9", "12", "123"})
        ranks += base64(m) + " " + std::to_string(r++) + "\n";
    return tok::Tokenizer::from_tiktoken_text(ranks, pattern, "small");
}
static tok::Tokenizer& small() {
    static tok::Tokenizer t = make_small("llama3");
    return t;
}
static tok::Tokenizer& small_gpt2() {
    static tok::Tokenizer t = make_small("gpt2");
    return t;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
    try {
        switch (data[0] % 3) {
            case 0: {
                tok::Tokenizer t = tok::Tokenizer::from_hf_json_text(in, "fuzz.json");
                t.encode("Hello world, it's 123 <|x|>", true);
                break;
            }
            case 1: {
                tok::Tokenizer t = tok::Tokenizer::from_tiktoken_text(in, "gpt2", "fuzz.tiktoken");
                t.encode("Hello world 123");
                break;
            }
            default: {
                std::vector<uint32_t> ids = small().encode(in, true);
                if (small().decode(ids) != in) std::abort();
                // The hand-written pre-tokenizers must split like the regular expressions.
                for (tok::Tokenizer* t : {&small(), &small_gpt2()}) {
                    std::vector<std::string_view> fast, regex;
                    t->pretokenize(in, fast);
                    t->set_fast_pretokenizer(false);
                    t->pretokenize(in, regex);
                    t->set_fast_pretokenizer(true);
                    if (fast != regex) std::abort();
                }
                break;
            }
        }
    } catch (const tok::Error&) {
    }
    return 0;
}
