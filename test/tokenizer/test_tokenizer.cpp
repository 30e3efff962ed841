// Tests of the BPE tokenizer. The Llama 3 and GPT-2 files come from
// scripts/get-tokenizers (the directory is given at build time as
// TOK_TEST_DIR); the whole-corpus comparisons with tiktoken and Hugging Face
// tokenizers are in test/tokenizer/compare-oracles.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>

#include "tokenizer/tokenizer.h"

namespace tok = llama::tok;

#ifndef TOK_TEST_DIR
#define TOK_TEST_DIR "build/tokenizers"
#endif

using tok::Tokenizer;

static const Tokenizer& llama3() {
    static Tokenizer t = Tokenizer::from_hf_json(TOK_TEST_DIR "/llama3/tokenizer.json");
    return t;
}
static const Tokenizer& gpt2() {
    static Tokenizer t = Tokenizer::from_hf_json(TOK_TEST_DIR "/gpt2/tokenizer.json");
    return t;
}

static std::string temp_file(const std::string& name, const std::string& content) {
    std::string path = "/tmp/tok_test_" + std::to_string(::getpid()) + "_" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

// Random valid UTF-8: code points from all planes, skipping surrogates.
static std::string random_utf8(std::mt19937& rng, size_t n) {
    std::string s;
    std::uniform_int_distribution<int> kind(0, 9);
    for (size_t i = 0; i < n; i++) {
        unsigned cp;
        int k = kind(rng);
        if (k < 4) cp = 32 + rng() % 95;
        else if (k < 5) cp = " \t\n\r"[rng() % 4];
        else if (k < 7) cp = 0x80 + rng() % 0x780;
        else if (k < 9) cp = 0x800 + rng() % 0xF800;
        else cp = 0x10000 + rng() % 0x100000;
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
        if (cp < 0x80) s += char(cp);
        else if (cp < 0x800) s += {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
        else if (cp < 0x10000)
            s += {char(0xE0 | (cp >> 12)), char(0x80 | ((cp >> 6) & 0x3F)), char(0x80 | (cp & 0x3F))};
        else
            s += {char(0xF0 | (cp >> 18)), char(0x80 | ((cp >> 12) & 0x3F)), char(0x80 | ((cp >> 6) & 0x3F)),
                  char(0x80 | (cp & 0x3F))};
    }
    return s;
}

TEST_CASE("Llama 3 and GPT-2 load with the expected sizes and special tokens") {
    CHECK(llama3().vocab_size() == 128256);
    CHECK(llama3().bos_id() == 128000);
    CHECK(llama3().eos_id() == 128001);
    CHECK(llama3().token_id("<|eot_id|>") == 128009);
    CHECK(gpt2().vocab_size() == 50257);
    CHECK(gpt2().bos_id() == -1);
    CHECK(gpt2().eos_id() == 50256);
}

TEST_CASE("encode gives the ids the reference tokenizers give") {
    // Ids printed by Meta's Llama 3 tokenizer (llama-models, tiktoken) and by
    // tiktoken's r50k_base for the same text.
    CHECK(llama3().encode("Hello world, it's 12345") ==
          std::vector<uint32_t>{9906, 1917, 11, 433, 596, 220, 4513, 1774});
    CHECK(gpt2().encode("Hello world") == std::vector<uint32_t>{15496, 995});
}

TEST_CASE("special tokens are recognised only when asked") {
    std::string text = "<|begin_of_text|>Hi<|eot_id|>";
    auto plain = llama3().encode(text, false);
    auto special = llama3().encode(text, true);
    CHECK(special.front() == 128000);
    CHECK(special.back() == 128009);
    CHECK(std::find(plain.begin(), plain.end(), 128000u) == plain.end());
    CHECK(plain.size() > special.size());
    CHECK(llama3().decode(plain) == text);
    CHECK(llama3().decode(special) == text);
}

TEST_CASE("decode(encode(x)) == x for random valid UTF-8") {
    std::mt19937 rng(42);
    for (int i = 0; i < 300; i++) {
        std::string s = random_utf8(rng, 1 + rng() % 200);
        REQUIRE(llama3().decode(llama3().encode(s)) == s);
        REQUIRE(gpt2().decode(gpt2().encode(s)) == s);
    }
}

TEST_CASE("the heap merge loop gives the same tokens as the array loop") {
    std::mt19937 rng(7);
    std::vector<std::string> pieces = {
        "internationalization", " antidisestablishmentarianism", "aaaaaaaaaaaaaaaaaaaaaaa", "          ", "1234567890",
        "ééééééééééé",          "👍🏽👍🏽👍🏽"};
    for (int i = 0; i < 200; i++) pieces.push_back(random_utf8(rng, 1 + rng() % 20));
    for (const Tokenizer* t : {&llama3(), &gpt2()}) {
        for (auto& p : pieces) {
            std::vector<uint32_t> a, b;
            t->bpe(p, a, 64);
            t->bpe(p, b, 2);
            REQUIRE(a == b);
            REQUIRE(t->decode(a) == p);
        }
    }
}

TEST_CASE("long runs of one character encode and decode") {
    for (std::string c : {" ", "a", "\n", "1", "!", "é", "\t"}) {
        std::string s;
        for (int i = 0; i < 20000; i++) s += c;
        auto ids = llama3().encode(s);
        CHECK(llama3().decode(ids) == s);
        CHECK(ids.size() < s.size());
    }
}

TEST_CASE("pre-tokenization pieces cover the text") {
    std::mt19937 rng(3);
    for (int i = 0; i < 50; i++) {
        std::string s = random_utf8(rng, 300);
        std::vector<std::string_view> pieces;
        llama3().pretokenize(s, pieces);
        std::string joined;
        for (auto p : pieces) {
            REQUIRE(!p.empty());
            joined += p;
        }
        REQUIRE(joined == s);
    }
    // Llama 3 splits digits in threes and keeps contractions.
    std::vector<std::string_view> pieces;
    llama3().pretokenize("1234567 DON'T", pieces);
    CHECK(pieces == std::vector<std::string_view>{"123", "456", "7", " DON", "'T"});
    // U+180E is not white space to Unicode (PCRE2's own \s says it is); ids from
    // Meta's tokenizer (tiktoken) and Hugging Face tokenizers, which agree here.
    CHECK(llama3().encode("a\xe1\xa0\x8e b") == std::vector<uint32_t>{64, 157, 254, 236, 293});
    // U+0085 is (and U+FEFF is not) white space to Hugging Face tokenizers.
    CHECK(llama3().encode("x \xc2\x85y") == std::vector<uint32_t>{87, 220, 116360, 88});
    CHECK(llama3().encode("a \xef\xbb\xbf"
                          "b") == std::vector<uint32_t>{64, 76880, 65});
}

TEST_CASE("the hand-written pre-tokenizers give the PCRE2 pieces") {
    Tokenizer l3 = Tokenizer::from_hf_json(TOK_TEST_DIR "/llama3/tokenizer.json");
    Tokenizer g2 = Tokenizer::from_hf_json(TOK_TEST_DIR "/gpt2/tokenizer.json");
    std::vector<std::string> texts;
    // Every ASCII character next to every other, then random text weighted
    // towards the characters the patterns treat specially.
    std::string ascii;
    for (int a = 1; a < 128; a++)
        for (int b : {'a', 'Z', '5', ' ', '\n', '\r', '\t', '\'', '!', 's', 'L', 'e'})
            ascii += {char(a), char(b), char(a)};
    texts.push_back(ascii);
    std::mt19937 rng(17);
    const char* specials[] = {"'s",
                              "'S",
                              "'re",
                              "'RE",
                              "'ll",
                              "'Ll",
                              "'ve",
                              "'d",
                              "'m",
                              "'t",
                              "'\xc5\xbf",
                              "  ",
                              "\r\n",
                              "\n\n",
                              " \n",
                              "\t",
                              "\xc2\xa0",
                              "\xe3\x80\x80",
                              "\xe1\xa0\x8e",
                              "\xc2\x85",
                              "\xef\xbb\xbf",
                              "123456",
                              "\xd9\xa3",
                              "\xc3\xa9",
                              "e\xcc\x81",
                              "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
                              "!?",
                              " .",
                              "\xe4\xb8\xad\xe6\x96\x87",
                              "\xe2\x85\xab",
                              "\xc2\xb2",
                              "_",
                              "   x"};
    for (int i = 0; i < 400; i++) {
        std::string s;
        int n = 1 + int(rng() % 40);
        for (int k = 0; k < n; k++)
            s += rng() % 2 ? std::string(specials[rng() % std::size(specials)]) : random_utf8(rng, 1 + rng() % 4);
        texts.push_back(s);
    }
    for (Tokenizer* t : {&l3, &g2}) {
        for (auto& s : texts) {
            std::vector<std::string_view> fast, regex;
            t->set_fast_pretokenizer(true);
            t->pretokenize(s, fast);
            t->set_fast_pretokenizer(false);
            t->pretokenize(s, regex);
            REQUIRE(fast == regex);
        }
    }
}

TEST_CASE("invalid UTF-8 is rejected with its byte offset") {
    CHECK(tok::utf8_invalid_offset("plain ascii") == std::string_view::npos);
    CHECK(tok::utf8_invalid_offset("caf\xc3\xa9") == std::string_view::npos);
    CHECK(tok::utf8_invalid_offset("abc\xff") == 3);
    CHECK(tok::utf8_invalid_offset("\xc0\x80") == 0);            // overlong
    CHECK(tok::utf8_invalid_offset("x\xed\xa0\x80") == 1);       // surrogate
    CHECK(tok::utf8_invalid_offset("xy\xf4\x90\x80\x80") == 2);  // above U+10FFFF
    CHECK(tok::utf8_invalid_offset("12345678\xe2\x82") == 8);    // truncated
    CHECK_THROWS_WITH(llama3().encode("abc\xff"), Catch::Contains("byte offset 3"));
}

TEST_CASE("tiktoken rank files give the same tokens as tokenizer.json") {
    Tokenizer l3 = Tokenizer::from_tiktoken(TOK_TEST_DIR "/llama3/tokenizer.tiktoken", "llama3");
    Tokenizer g2 = Tokenizer::from_file(TOK_TEST_DIR "/gpt2/tokenizer.tiktoken", "gpt2");
    CHECK(l3.vocab_size() == 128256);
    CHECK(g2.vocab_size() == 50257);
    std::mt19937 rng(11);
    for (int i = 0; i < 100; i++) {
        std::string s = random_utf8(rng, 100);
        REQUIRE(l3.encode(s) == llama3().encode(s));
        REQUIRE(g2.encode(s) == gpt2().encode(s));
    }
}

TEST_CASE("encoding in parallel gives the same tokens as one thread") {
    std::mt19937 rng(5);
    std::vector<std::string> docs;
    for (int i = 0; i < 400; i++) docs.push_back(random_utf8(rng, 50 + rng() % 500));
    std::vector<std::vector<uint32_t>> serial(docs.size()), parallel(docs.size());
    for (size_t i = 0; i < docs.size(); i++) serial[i] = llama3().encode(docs[i]);
#pragma omp parallel for num_threads(4)
    for (size_t i = 0; i < docs.size(); i++) parallel[i] = llama3().encode(docs[i]);
    CHECK(serial == parallel);
}

TEST_CASE("bad tokenizer files fail with the file name and the problem") {
    CHECK_THROWS_WITH(Tokenizer::from_file("/nonexistent/tokenizer.json"),
                      Catch::Contains("/nonexistent/tokenizer.json") && Catch::Contains("cannot open"));
    auto p1 = temp_file("bad.json", "{ not json");
    CHECK_THROWS_WITH(Tokenizer::from_file(p1), Catch::Contains(p1) && Catch::Contains("not valid JSON"));
    auto p2 = temp_file("nomodel.json", "{\"version\": \"1.0\"}");
    CHECK_THROWS_WITH(Tokenizer::from_file(p2), Catch::Contains(p2) && Catch::Contains("model"));
    auto p3 = temp_file("wordpiece.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
    CHECK_THROWS_WITH(Tokenizer::from_file(p3), Catch::Contains("WordPiece"));
    auto p4 = temp_file("pretok.json",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                        " \"pre_tokenizer\": {\"type\": \"Whitespace\"}}");
    CHECK_THROWS_WITH(Tokenizer::from_file(p4), Catch::Contains("Whitespace"));
    auto p5 = temp_file("badmerge.json",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]},"
                        " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
    CHECK_THROWS_WITH(Tokenizer::from_file(p5), Catch::Contains("missing from the vocab"));
    auto p6 = temp_file("bad.tiktoken", "IQ== 0\nthis is not base64 at all\n");
    CHECK_THROWS_WITH(Tokenizer::from_file(p6, "gpt2"), Catch::Contains(p6) && Catch::Contains("line 2"));
    CHECK_THROWS_WITH(Tokenizer::from_file(p6), Catch::Contains(p6) && Catch::Contains("pattern name"));
    auto p7 = temp_file("badregex.json",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                        " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(unclosed\"},"
                        " \"behavior\": \"Isolated\"}}");
    CHECK_THROWS_WITH(Tokenizer::from_file(p7), Catch::Contains("pattern"));
    auto p8 = temp_file("floatid.json",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                        " \"added_tokens\": [{\"id\": 1.2e257, \"content\": \"x\"}],"
                        " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
    CHECK_THROWS_WITH(Tokenizer::from_file(p8), Catch::Contains(p8) && Catch::Contains("no valid id"));
    auto p9 = temp_file("bigrank.tiktoken", "IQ== 999999999\n");
    CHECK_THROWS_WITH(Tokenizer::from_file(p9, "gpt2"), Catch::Contains(p9) && Catch::Contains("line 1"));
    for (auto& p : {p1, p2, p3, p4, p5, p6, p7, p8, p9}) std::remove(p.c_str());
}
