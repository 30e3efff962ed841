// Tests of the shard formats, the readers for datatrove and Megatron-LM files,
// the data loader (with the document starts it reports for document-masked
// attention), and the trainer's view of it (lifecycle/training_data.h).
//
// The datatrove and Megatron fixtures are written here by small writers that
// follow those projects' writers byte for byte (datatrove's TokenizedFile in
// src/datatrove/pipeline/tokens/tokenizer.py, Megatron-LM's _IndexWriter in
// megatron/core/datasets/indexed_dataset.py) and share no code with the
// readers under test.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "data/loader.h"
#include "data/shard.h"
#include "lifecycle/training_data.h"

namespace data = llama::data;

namespace fs = std::filesystem;
using Docs = std::vector<std::vector<uint32_t>>;

static std::string tmpdir() {
    static std::string d = [] {
        std::string p = "/tmp/data_test_" + std::to_string(::getpid());
        fs::create_directories(p);
        return p;
    }();
    return d;
}

static Docs random_docs(std::mt19937& rng, size_t n, uint32_t vocab, size_t max_len = 50) {
    Docs d(n);
    for (auto& doc : d) {
        doc.resize(1 + rng() % max_len);
        for (auto& t : doc) t = rng() % vocab;
    }
    return d;
}

static void write_own(const std::string& path, const Docs& docs, uint64_t vocab) {
    std::vector<uint32_t> tokens;
    std::vector<uint64_t> starts;
    for (auto& d : docs) {
        starts.push_back(tokens.size());
        tokens.insert(tokens.end(), d.begin(), d.end());
    }
    data::write_shard(path, tokens, starts, vocab);
}

static Docs read_docs(const data::TokenSource& s) {
    Docs out(s.num_docs());
    for (uint64_t d = 0; d < s.num_docs(); d++) {
        out[d].resize(s.doc_start(d + 1) - s.doc_start(d));
        s.read(s.doc_start(d), out[d].size(), out[d].data());
    }
    return out;
}

static void put_bytes(std::ofstream& f, const void* p, size_t n) { f.write(static_cast<const char*>(p), long(n)); }
template <class T>
static void put(std::ofstream& f, T v) {
    put_bytes(f, &v, sizeof v);
}

// datatrove: tokens as little-endian uint16 ('<H', or uint32 for large
// vocabularies), FILE.index the uint64 end of each document in tokens,
// FILE.metadata "tokenizer name\ntoken count\nhumanized count".
static void write_datatrove(const std::string& path, const Docs& docs, bool wide) {
    std::ofstream tf(path, std::ios::binary), xf(path + ".index", std::ios::binary);
    uint64_t end = 0;
    for (auto& d : docs) {
        for (uint32_t t : d) {
            if (wide) put<uint32_t>(tf, t);
            else put<uint16_t>(tf, uint16_t(t));
        }
        end += d.size();
        put<uint64_t>(xf, end);
    }
    std::ofstream(path + ".metadata") << "gpt2\n" << end << "\n" << end << " T";
}

// Megatron-LM: PREFIX.bin with the tokens; PREFIX.idx with b"MMIDIDX\x00\x00",
// '<Q' version 1, '<B' dtype code (8 uint16, 4 int32), '<Q' sequence count,
// '<Q' document count, int32 lengths, int64 byte pointers, int64 document
// indices (sequence indices, starting with 0). Each document here is written
// as one or two sequences.
static void write_megatron(const std::string& prefix, const Docs& docs, bool int32) {
    std::vector<std::vector<uint32_t>> seqs;
    std::vector<int64_t> doc_idx = {0};
    for (auto& d : docs) {
        if (d.size() >= 4) {
            seqs.emplace_back(d.begin(), d.begin() + long(d.size() / 2));
            seqs.emplace_back(d.begin() + long(d.size() / 2), d.end());
        } else {
            seqs.push_back(d);
        }
        doc_idx.push_back(int64_t(seqs.size()));
    }
    std::ofstream bf(prefix + ".bin", std::ios::binary), xf(prefix + ".idx", std::ios::binary);
    for (auto& s : seqs)
        for (uint32_t t : s) {
            if (int32) put<int32_t>(bf, int32_t(t));
            else put<uint16_t>(bf, uint16_t(t));
        }
    put_bytes(xf, "MMIDIDX\x00\x00", 9);
    put<uint64_t>(xf, 1);
    put<uint8_t>(xf, int32 ? 4 : 8);
    put<uint64_t>(xf, seqs.size());
    put<uint64_t>(xf, doc_idx.size());
    for (auto& s : seqs) put<int32_t>(xf, int32_t(s.size()));
    int64_t ptr = 0;
    for (auto& s : seqs) {
        put<int64_t>(xf, ptr);
        ptr += int64_t(s.size()) * (int32 ? 4 : 2);
    }
    for (auto v : doc_idx) put<int64_t>(xf, v);
}

TEST_CASE("own shards round-trip with 2- and 4-byte tokens") {
    std::mt19937 rng(1);
    for (uint64_t vocab : {50257ull, 128256ull}) {
        Docs docs = random_docs(rng, 100, uint32_t(vocab));
        std::string path = tmpdir() + "/rt_" + std::to_string(vocab) + ".tok";
        write_own(path, docs, vocab);
        auto s = data::open_tokens(path, vocab);
        CHECK(s->format() == "own");
        CHECK(s->vocab_size() == vocab);
        CHECK(read_docs(*s) == docs);
        uint64_t n = 0;
        for (auto& d : docs) n += d.size();
        CHECK(fs::file_size(path) == 64 + n * data::token_width(vocab) + 8 * docs.size());
    }
}

TEST_CASE("damaged own shards fail with the file name and the problem") {
    std::mt19937 rng(2);
    Docs docs = random_docs(rng, 20, 1000);
    std::string good = tmpdir() + "/good.tok";
    write_own(good, docs, 1000);
    std::string bytes;
    {
        std::ifstream f(good, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(f), {});
    }
    auto damaged = [&](const std::string& name, std::string b) {
        std::string p = tmpdir() + "/" + name;
        std::ofstream(p, std::ios::binary) << b;
        return p;
    };
    std::string p;
    p = damaged("trunc.tok", bytes.substr(0, bytes.size() - 3));
    CHECK_THROWS_WITH(data::open_tokens(p), Catch::Contains(p) && Catch::Contains("truncated"));
    p = damaged("short.tok", bytes.substr(0, 10));
    CHECK_THROWS_WITH(data::open_tokens(p), Catch::Contains(p) && Catch::Contains("header"));
    std::string b = bytes;
    b[0] = 'X';
    p = damaged("magic.tok", b);
    CHECK_THROWS_WITH(data::open_tokens(p), Catch::Contains(p) && Catch::Contains("magic"));
    b = bytes;
    b[8] = 9;
    p = damaged("version.tok", b);
    CHECK_THROWS_WITH(data::open_tokens(p), Catch::Contains(p) && Catch::Contains("version 9"));
    p = damaged("long.tok", bytes + "xx");
    CHECK_THROWS_WITH(data::open_tokens(p), Catch::Contains(p) && Catch::Contains("does not match the header"));
    CHECK_THROWS_WITH(data::open_tokens(good, 10), Catch::Contains(good) && Catch::Contains("vocabulary"));
    // A token id at or above the vocabulary size written in the header.
    b = bytes;
    b[64] = char(0xff);
    b[65] = char(0xff);
    p = damaged("bigid.tok", b);
    CHECK_THROWS_WITH(data::open_tokens(p), Catch::Contains(p) && Catch::Contains("65535"));
    // The document index out of order.
    b = bytes;
    uint64_t v = 1u << 30;
    std::memcpy(&b[b.size() - 8], &v, 8);
    p = damaged("index.tok", b);
    CHECK_THROWS_WITH(data::open_tokens(p), Catch::Contains(p) && Catch::Contains("document index"));
    CHECK_THROWS_WITH(data::open_tokens(tmpdir() + "/missing.tok"), Catch::Contains("missing.tok"));
}

TEST_CASE("datatrove files are read as datatrove wrote them") {
    std::mt19937 rng(3);
    for (bool wide : {false, true}) {
        Docs docs = random_docs(rng, 60, wide ? 128256 : 50257);
        std::string path = tmpdir() + "/00000_unshuffled" + (wide ? "_w" : "") + ".ds";
        write_datatrove(path, docs, wide);
        auto s = data::open_tokens(path, wide ? 128256 : 50257);
        CHECK(s->format() == "datatrove");
        CHECK(read_docs(*s) == docs);
    }
    // A token file that does not match its index.
    Docs docs = random_docs(rng, 5, 100);
    std::string path = tmpdir() + "/bad.ds";
    write_datatrove(path, docs, false);
    fs::resize_file(path, fs::file_size(path) - 2);
    CHECK_THROWS_WITH(data::open_tokens(path), Catch::Contains(path) && Catch::Contains("does not match"));
}

TEST_CASE("Megatron indexed datasets are read as Megatron-LM wrote them") {
    std::mt19937 rng(4);
    for (bool int32 : {false, true}) {
        Docs docs = random_docs(rng, 70, int32 ? 128256 : 50257);
        std::string prefix = tmpdir() + "/mega_text_document" + (int32 ? "32" : "");
        write_megatron(prefix, docs, int32);
        for (std::string path : {prefix, prefix + ".bin", prefix + ".idx"}) {
            auto s = data::open_tokens(path);
            CHECK(s->format() == "megatron");
            CHECK(read_docs(*s) == docs);
        }
    }
    Docs docs = random_docs(rng, 5, 100);
    std::string prefix = tmpdir() + "/mega_bad";
    write_megatron(prefix, docs, false);
    fs::resize_file(prefix + ".bin", fs::file_size(prefix + ".bin") - 2);
    CHECK_THROWS_WITH(data::open_tokens(prefix), Catch::Contains(prefix + ".bin") && Catch::Contains("truncated"));
    {
        std::fstream f(prefix + ".idx", std::ios::in | std::ios::out | std::ios::binary);
        f.write("XXXX", 4);
    }
    CHECK_THROWS_WITH(data::open_tokens(prefix), Catch::Contains(prefix + ".idx") && Catch::Contains("magic"));
}

// A dataset whose tokens are 0, 1, 2, ... so a sample shows where it came from.
static std::string counting_shard(const std::string& name, uint32_t n, uint32_t base = 0) {
    std::vector<uint32_t> tokens(n);
    for (uint32_t i = 0; i < n; i++) tokens[i] = base + i;
    std::string p = tmpdir() + "/" + name;
    data::write_shard(p, tokens, {0}, base + n);
    return p;
}

TEST_CASE("samples are T+1 contiguous tokens, each sample once per epoch") {
    // Two files make one dataset; samples may cross from one to the next.
    std::string a = counting_shard("count_a.tok", 500), b = counting_shard("count_b.tok", 501, 500);
    data::LoaderConfig cfg;
    cfg.T = 10;
    cfg.B = 1;
    cfg.seed = 9;
    data::DataLoader dl({{{a, b}, 1.0}}, cfg);
    REQUIRE(dl.samples_in(0) == 100);
    std::vector<uint32_t> s(11);
    std::set<uint32_t> firsts;
    for (int epoch = 0; epoch < 2; epoch++) {
        firsts.clear();
        for (int i = 0; i < 100; i++) {
            dl.next_batch(s.data());
            for (int k = 1; k <= 10; k++) REQUIRE(s[k] == s[0] + uint32_t(k));
            REQUIRE(s[0] % 10 == 0);
            firsts.insert(s[0]);
        }
        CHECK(firsts.size() == 100);
    }
}

TEST_CASE("the shuffle is a permutation, fixed by the seed") {
    for (uint64_t n : {1ull, 2ull, 7ull, 1000ull, 4097ull}) {
        std::set<uint64_t> seen;
        for (uint64_t i = 0; i < n; i++) seen.insert(data::permute(i, n, 123));
        CHECK(seen.size() == n);
        CHECK(*seen.rbegin() == n - 1);
    }
    int moved = 0;
    for (uint64_t i = 0; i < 1000; i++) moved += data::permute(i, 1000, 1) != data::permute(i, 1000, 2);
    CHECK(moved > 900);
}

TEST_CASE("ranks get disjoint parts of the global batch") {
    std::string a = counting_shard("count_r.tok", 100001);
    data::LoaderConfig one;
    one.T = 16;
    one.B = 12;
    one.seed = 5;
    data::DataLoader whole({{{a}, 1.0}}, one);
    for (int world : {1, 2, 3, 4}) {
        if (12 % world) continue;
        std::vector<std::unique_ptr<data::DataLoader>> ranks;
        for (int r = 0; r < world; r++) {
            data::LoaderConfig c = one;
            c.B = 12 / uint64_t(world);
            c.rank = r;
            c.world = world;
            ranks.push_back(std::make_unique<data::DataLoader>(std::vector<data::DatasetSpec>{{{a}, 1.0}}, c));
        }
        whole.reset();
        for (int step = 0; step < 5; step++) {
            std::vector<uint32_t> all(12 * 17), parts;
            whole.next_batch(all.data());
            for (int r = 0; r < world; r++) {
                std::vector<uint32_t> p((12 / world) * 17);
                ranks[r]->next_batch(p.data());
                parts.insert(parts.end(), p.begin(), p.end());
            }
            REQUIRE(parts == all);  // together the ranks see exactly the global batch
            std::set<uint32_t> firsts;
            for (int i = 0; i < 12; i++) firsts.insert(all[size_t(i) * 17]);
            REQUIRE(firsts.size() == 12);  // and no sample twice
        }
    }
}

TEST_CASE("mixtures follow the weights") {
    std::string a = counting_shard("mix_a.tok", 10001), b = counting_shard("mix_b.tok", 10001, 20000);
    data::LoaderConfig cfg;
    cfg.T = 8;
    cfg.B = 4;
    data::DataLoader dl(data::parse_mixture("0.75:" + a + ",0.25:" + b), cfg);
    int from_a = 0, total = 0;
    std::vector<uint32_t> batch(4 * 9);
    for (int step = 0; step < 250; step++) {
        dl.next_batch(batch.data());
        for (int i = 0; i < 4; i++, total++) from_a += batch[size_t(i) * 9] < 20000;
    }
    CHECK(from_a == 750);
    CHECK(total == 1000);
}

TEST_CASE("a restored state gives exactly the batches the run would have seen") {
    std::string a = counting_shard("st_a.tok", 5001), b = counting_shard("st_b.tok", 7001, 10000);
    data::LoaderConfig cfg;
    cfg.T = 32;
    cfg.B = 3;
    cfg.seed = 77;
    auto mix = data::parse_mixture("2:" + a + ",1:" + b);
    data::DataLoader first(mix, cfg);
    std::vector<uint32_t> batch(3 * 33);
    for (int i = 0; i < 40; i++) first.next_batch(batch.data());
    std::string saved = first.state().serialize();
    std::vector<std::vector<uint32_t>> expect;
    for (int i = 0; i < 60; i++) {  // crosses an epoch of the second dataset
        first.next_batch(batch.data());
        expect.push_back(batch);
    }
    data::DataLoader resumed(mix, cfg);
    resumed.restore(data::LoaderState::parse(saved));
    for (int i = 0; i < 60; i++) {
        resumed.next_batch(batch.data());
        REQUIRE(batch == expect[size_t(i)]);
    }
    // A state from other settings is refused.
    data::LoaderConfig other = cfg;
    other.T = 16;
    data::DataLoader wrong(mix, other);
    CHECK_THROWS_WITH(wrong.restore(data::LoaderState::parse(saved)), Catch::Contains("other datasets or settings"));
    CHECK_THROWS_WITH(data::LoaderState::parse("garbage"), Catch::Contains("does not parse"));
}

TEST_CASE("the validation loader reads in order and covers the data once per pass") {
    std::string a = counting_shard("val.tok", 1001);
    data::LoaderConfig cfg;
    cfg.T = 10;
    cfg.B = 5;
    cfg.shuffle = false;
    data::DataLoader dl({{{a}, 1.0}}, cfg);
    CHECK(dl.steps_per_epoch() == 20);
    std::vector<uint32_t> batch(5 * 11);
    for (uint64_t step = 0; step < dl.steps_per_epoch(); step++) {
        dl.next_batch(batch.data());
        for (uint64_t i = 0; i < 5; i++) REQUIRE(batch[i * 11] == (step * 5 + i) * 10);
    }
    dl.reset();
    dl.next_batch(batch.data());
    CHECK(batch[0] == 0);
}

TEST_CASE("bad loader input fails with a clear message") {
    std::string small = counting_shard("small.tok", 5);
    data::LoaderConfig cfg;
    cfg.T = 10;
    CHECK_THROWS_WITH(data::DataLoader({{{small}, 1.0}}, cfg), Catch::Contains(small) && Catch::Contains("too small"));
    CHECK_THROWS_WITH(data::parse_mixture("abc:x.tok"), Catch::Contains("weight 'abc'"));
    CHECK_THROWS_WITH(data::parse_mixture("-1:x.tok"), Catch::Contains("weight '-1'"));
    CHECK_THROWS_WITH(data::parse_mixture("0.5:"), Catch::Contains("names no files"));
    CHECK_THROWS_WITH(data::DataLoader({{{tmpdir() + "/nothing.tok"}, 1.0}}, cfg), Catch::Contains("nothing.tok"));
    std::string big = counting_shard("big.tok", 1000);
    cfg.vocab_size = 500;
    CHECK_THROWS_WITH(data::DataLoader({{{big}, 1.0}}, cfg), Catch::Contains(big) && Catch::Contains("vocabulary"));
    cfg.vocab_size = 0;
    cfg.rank = 2;
    cfg.world = 2;
    CHECK_THROWS_WITH(data::DataLoader({{{big}, 1.0}}, cfg), Catch::Contains("rank 2"));
}

TEST_CASE("a loader state saved by 2 ranks continues with 1 rank and with 3") {
    std::string a = counting_shard("count_w.tok", 50001);
    data::LoaderConfig c;
    c.T = 16;
    c.B = 2;
    c.seed = 9;
    // Two ranks take 3 steps (12 samples), then the global order continues on any rank count.
    std::vector<std::unique_ptr<data::DataLoader>> two;
    for (int r = 0; r < 2; r++) {
        data::LoaderConfig rc = c;
        rc.rank = r;
        rc.world = 2;
        two.push_back(std::make_unique<data::DataLoader>(std::vector<data::DatasetSpec>{{{a}, 1.0}}, rc));
    }
    std::vector<uint32_t> scratch(2 * 17);
    for (int step = 0; step < 3; step++)
        for (auto& l : two) l->next_batch(scratch.data());
    const data::LoaderState saved = two[0]->state();
    data::DataLoader one({{{a}, 1.0}}, c);  // one rank: the same global order, 2 samples a call
    for (int skip = 0; skip < 6; skip++) one.next_batch(scratch.data());
    std::vector<uint32_t> expected(6 * 17);
    for (int k = 0; k < 3; k++) one.next_batch(expected.data() + size_t(k) * 2 * 17);
    data::DataLoader resumed({{{a}, 1.0}}, c);
    resumed.restore(saved);
    std::vector<uint32_t> got(6 * 17);
    for (int k = 0; k < 3; k++) resumed.next_batch(got.data() + size_t(k) * 2 * 17);
    REQUIRE(got == expected);
    // Three ranks from the same state: together, the same six samples.
    std::vector<uint32_t> parts;
    for (int r = 0; r < 3; r++) {
        data::LoaderConfig rc = c;
        rc.rank = r;
        rc.world = 3;
        data::DataLoader l({{{a}, 1.0}}, rc);
        l.restore(saved);
        std::vector<uint32_t> p(2 * 17);
        l.next_batch(p.data());
        parts.insert(parts.end(), p.begin(), p.end());
    }
    REQUIRE(parts == expected);
}

TEST_CASE("version 2 shards carry trained flags and a packed length, which the loader delivers and checks") {
    // Two packed sequences of 8 and the one token more: documents of 5, 3 (padding), 8, 1 (padding).
    std::vector<uint32_t> tokens = {1, 2, 3, 4, 5, 0, 0, 0, 6, 7, 8, 9, 10, 11, 12, 13, 0};
    std::vector<uint8_t> trained = {0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0};
    const std::string path = tmpdir() + "/packed.tok";
    data::write_shard(path, tokens, {0, 5, 8, 16}, 1000, &trained, 8);
    auto s = data::open_tokens(path, 1000);
    CHECK(s->has_trained());
    CHECK(s->packed_seq_len() == 8);
    std::vector<uint8_t> got(tokens.size());
    s->read_trained(0, got.size(), got.data());
    CHECK(got == trained);
    // The loader: each sample is one packed sequence, with its flags.
    data::LoaderConfig c;
    c.T = 8;
    c.B = 1;
    c.shuffle = false;
    data::DataLoader loader({{{path}, 1.0}}, c);
    CHECK(loader.has_trained());
    for (uint64_t k = 0; k < 2; ++k) {
        std::vector<uint32_t> sample(9);
        std::vector<uint8_t> flags(9);
        loader.next_batch(sample.data(), flags.data());
        CHECK(sample == std::vector<uint32_t>(tokens.begin() + 8 * k, tokens.begin() + 8 * k + 9));
        CHECK(flags == std::vector<uint8_t>(trained.begin() + 8 * k, trained.begin() + 8 * k + 9));
    }
    // Another sample length is refused, naming the packed one.
    c.T = 4;
    CHECK_THROWS_WITH(data::DataLoader({{{path}, 1.0}}, c), Catch::Contains(path) && Catch::Contains("--seq-len 8"));
    // A version 1 shard has no flags: all trained.
    const std::string plain = tmpdir() + "/plain.tok";
    data::write_shard(plain, tokens, {0}, 1000);
    auto p = data::open_tokens(plain);
    CHECK(!p->has_trained());
    p->read_trained(3, 4, got.data());
    CHECK(std::vector<uint8_t>(got.begin(), got.begin() + 4) == std::vector<uint8_t>(4, 1));
    // Damage: a flag that is not 0 or 1, and a truncated flag section.
    std::string bytes;
    {
        std::ifstream f(path, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(f), {});
    }
    std::string b = bytes;
    b[b.size() - 3] = 2;
    std::ofstream(tmpdir() + "/flag.tok", std::ios::binary) << b;
    CHECK_THROWS_WITH(data::open_tokens(tmpdir() + "/flag.tok"),
                      Catch::Contains("flag.tok") && Catch::Contains("not 0 or 1"));
    std::ofstream(tmpdir() + "/trunc2.tok", std::ios::binary) << bytes.substr(0, bytes.size() - 1);
    CHECK_THROWS_WITH(data::open_tokens(tmpdir() + "/trunc2.tok"), Catch::Contains("trunc2.tok") &&
                                                                       Catch::Contains("trained flags") &&
                                                                       Catch::Contains("truncated"));
}

// ---------------------------------------------------------------------------
// Document starts. The expected values come from the document lengths the
// tests write, through the definition itself (position by position), never
// from the loader's search.
// ---------------------------------------------------------------------------

// Where documents start in a dataset of these files, laid end to end: every
// file start and every document start, as dataset token positions.
static std::set<uint64_t> document_starts(const std::vector<Docs>& files) {
    std::set<uint64_t> starts;
    uint64_t pos = 0;
    for (const Docs& docs : files) {
        starts.insert(pos);
        for (const auto& d : docs) {
            starts.insert(pos);
            pos += d.size();
        }
    }
    return starts;
}

// The doc starts of the T inputs of the sample whose first token is dataset
// token `first`: t where a document starts at first + t (and at t = 0, where
// the sample cuts whatever document it lands in), else the value of t - 1.
static std::vector<int32_t> expected_doc_starts(const std::set<uint64_t>& starts, uint64_t first, uint64_t T) {
    std::vector<int32_t> out(T);
    for (uint64_t t = 0; t < T; t++) out[t] = t == 0 || starts.count(first + t) ? int32_t(t) : out[t - 1];
    return out;
}

// Documents of the given lengths whose tokens count on from `base`, so that a
// sample's first input says where in the dataset it starts.
static Docs counting_docs(const std::vector<size_t>& lengths, uint32_t base) {
    Docs docs;
    for (size_t n : lengths) {
        docs.emplace_back(n);
        for (auto& t : docs.back()) t = base++;
    }
    return docs;
}

TEST_CASE("doc starts: documents and files inside samples, one of length 1, boundaries at sample starts") {
    // File A: documents at 0, 3, 4 (length 1), 8 (a sample start) and 13 (17
    // tokens: sample 2 lies inside it). File B starts at 30, inside sample 3:
    // documents at 30, 31, 32 (sample 4's start), 39 and 40 (sample 4's extra
    // token, sample 5's start). 51 tokens, T = 8: samples 0..5.
    const Docs a = counting_docs({3, 1, 4, 5, 17}, 0), b = counting_docs({1, 1, 7, 1, 11}, 30);
    const std::string pa = tmpdir() + "/docs_a.tok", pb = tmpdir() + "/docs_b.tok";
    write_own(pa, a, 1000);
    write_own(pb, b, 1000);
    data::LoaderConfig c;
    c.T = 8;
    c.B = 6;
    c.shuffle = false;  // samples 0..5 in order
    data::DataLoader loader({{{pa, pb}, 1.0}}, c);
    REQUIRE(loader.samples_in(0) == 6);
    std::vector<uint32_t> tokens(6 * 9);
    std::vector<int32_t> starts(6 * 8, -7);
    loader.next_batch(tokens.data(), nullptr, starts.data());
    using V = std::vector<int32_t>;
    const std::vector<V> expected = {
        {0, 0, 0, 3, 4, 4, 4, 4},  // [0, 8): documents at 3 and 4 (4 is one token long)
        {0, 0, 0, 0, 0, 5, 5, 5},  // [8, 16): one starts at the sample start, then 13
        {0, 0, 0, 0, 0, 0, 0, 0},  // [16, 24): inside the document that began at 13
        {0, 0, 0, 0, 0, 0, 6, 7},  // [24, 32): file B at 30, its second document at 31
        {0, 0, 0, 0, 0, 0, 0, 7},  // [32, 40): 39; the one at 40 is past the inputs
        {0, 0, 0, 0, 0, 0, 0, 0},  // [40, 48): begins with a document
    };
    const std::set<uint64_t> all = document_starts({a, b});
    for (size_t k = 0; k < 6; k++) {
        INFO("sample " << k);
        CHECK(tokens[k * 9] == k * 8);
        const V got(starts.begin() + long(k * 8), starts.begin() + long(k * 8 + 8));
        CHECK(got == expected[k]);
        CHECK(got == expected_doc_starts(all, k * 8, 8));  // the table agrees with the definition
    }
    // The same batch without doc starts, and with them, gives the same tokens
    // and leaves the loader's state (and so checkpoints) as it would be.
    data::DataLoader plain({{{pa, pb}, 1.0}}, c);
    std::vector<uint32_t> plain_tokens(6 * 9);
    plain.next_batch(plain_tokens.data());
    CHECK(plain_tokens == tokens);
    CHECK(plain.state().serialize() == loader.state().serialize());
    CHECK(!loader.packed());
}

TEST_CASE("doc starts from own, datatrove and Megatron files in one dataset, shuffled, over an epoch") {
    std::mt19937 rng(11);
    for (uint64_t T : {1ull, 5ull, 16ull, 64ull}) {
        // Many short documents (lengths 1..6), then longer ones; an empty
        // document in the own and datatrove files (their indexes allow them).
        Docs own = random_docs(rng, 40, 50000, 6), dt = random_docs(rng, 30, 50000, 40),
             mega = random_docs(rng, 25, 50000, 90);
        own.insert(own.begin() + 7, std::vector<uint32_t>{});
        dt.insert(dt.begin() + 3, std::vector<uint32_t>{});
        const std::string tag = std::to_string(T);
        const std::string po = tmpdir() + "/mix_own" + tag + ".tok", pd = tmpdir() + "/mix_dt" + tag + ".ds",
                          pm = tmpdir() + "/mix_mega" + tag;
        write_own(po, own, 50000);
        write_datatrove(pd, dt, false);
        write_megatron(pm, mega, true);  // each longer document as two Megatron sequences: not two documents
        std::vector<uint32_t> all;
        for (const Docs* f : {&own, &dt, &mega})
            for (const auto& d : *f) all.insert(all.end(), d.begin(), d.end());
        const std::set<uint64_t> starts = document_starts({own, dt, mega});
        data::LoaderConfig c;
        c.T = T;
        c.B = 3;
        c.seed = 4;
        data::DataLoader loader({{{po, pd, pm}, 1.0}}, c);
        const uint64_t samples = loader.samples_in(0);
        REQUIRE(samples == (all.size() - 1) / T);
        std::vector<uint32_t> tokens(3 * (T + 1));
        std::vector<int32_t> got(3 * T);
        for (uint64_t step = 0; step * 3 < samples; step++) {
            uint64_t which[3];
            for (uint64_t j = 0; j < 3; j++) {
                size_t dataset = 0;
                loader.peek_slot(j, dataset, which[j]);
            }
            loader.next_batch(tokens.data(), nullptr, got.data());
            for (uint64_t j = 0; j < 3; j++) {
                INFO("T " << T << ", sample " << which[j]);
                const uint64_t first = which[j] * T;
                REQUIRE(std::equal(tokens.begin() + long(j * (T + 1)), tokens.begin() + long((j + 1) * (T + 1)),
                                   all.begin() + long(first)));
                REQUIRE(std::vector<int32_t>(got.begin() + long(j * T), got.begin() + long((j + 1) * T)) ==
                        expected_doc_starts(starts, first, T));
            }
        }
    }
}

TEST_CASE("doc starts of a packed shard: each conversation and its padding is a document") {
    // As tokenize sft writes them: sequences of 8 (and the one token more),
    // documents at each conversation and at each sequence's padding.
    //   sequence 0: conversations at 0 (3 tokens) and 3 (4), padding at 7
    //   sequence 1: one conversation filling it, 8..15
    //   sequence 2: conversations at 16 (1 token: a document of length 1), 17 (5), padding at 22 (and 24, the extra)
    std::vector<uint32_t> tokens(25);
    for (uint32_t i = 0; i < 25; i++) tokens[i] = 1 + i;
    std::vector<uint8_t> trained(25, 1);
    const std::string path = tmpdir() + "/packed_docs.tok";
    data::write_shard(path, tokens, {0, 3, 7, 8, 16, 17, 22}, 1000, &trained, 8);
    data::LoaderConfig c;
    c.T = 8;
    c.B = 3;
    c.shuffle = false;
    data::DataLoader loader({{{path}, 1.0}}, c);
    CHECK(loader.packed());
    std::vector<uint32_t> out(3 * 9);
    std::vector<int32_t> got(3 * 8);
    loader.next_batch(out.data(), nullptr, got.data());
    CHECK(got == std::vector<int32_t>{0, 0, 0, 3, 3, 3, 3, 7,  //
                                      0, 0, 0, 0, 0, 0, 0, 0,  //
                                      0, 1, 1, 1, 1, 1, 6, 6});
}

// A counting shard of documents with these lengths, for the trainer's view.
static std::string counting_doc_shard(const std::string& name, const std::vector<size_t>& lengths, Docs& docs) {
    docs = counting_docs(lengths, 0);
    const std::string path = tmpdir() + "/" + name;
    write_own(path, docs, 100000);
    return path;
}

TEST_CASE("the trainer's shard data gives doc starts with its inputs; text data one document a sequence") {
    std::mt19937 rng(12);
    std::vector<size_t> lengths;
    for (int i = 0; i < 300; i++) lengths.push_back(1 + rng() % (i % 3 ? 5 : 40));
    Docs docs;
    const std::string path = counting_doc_shard("trainer_docs.tok", lengths, docs);
    const std::set<uint64_t> starts = document_starts({docs});
    const int B = 4, T = 12;
    auto shards = llama::shard_data(path, path, B, T, 100000, 3);
    CHECK(shards->has_documents());
    CHECK(!shards->packed());
    std::vector<int> x, y, got;
    auto check_batch = [&](const char* which) {
        REQUIRE(got.size() == size_t(B) * T);
        for (int b = 0; b < B; b++) {
            INFO(which << " sequence " << b << " from token " << x[size_t(b) * T]);
            const std::vector<int32_t> expect = expected_doc_starts(starts, uint64_t(x[size_t(b) * T]), T);
            REQUIRE(std::vector<int>(got.begin() + b * T, got.begin() + (b + 1) * T) ==
                    std::vector<int>(expect.begin(), expect.end()));
        }
    };
    for (int step = 0; step < 20; step++) {
        shards->next_batch(B, T, x, y, &got);
        check_batch("training");
    }
    shards->validate_begin();
    for (int step = 0; step < 5; step++) {
        shards->validate_batch(B, T, x, y, &got);
        check_batch("validation");
    }
    // Without doc starts the batches are as before: the same inputs and targets.
    auto again = llama::shard_data(path, "", B, T, 100000, 3);
    std::vector<int> x2, y2;
    again->next_batch(B, T, x2, y2);
    auto with = llama::shard_data(path, "", B, T, 100000, 3);
    with->next_batch(B, T, x, y, &got);
    CHECK(x2 == x);
    CHECK(y2 == y);

    // Text as bytes: no documents, each sequence one, so all zeros.
    const std::string text = tmpdir() + "/text.txt";
    std::ofstream(text) << std::string(500, 'a');
    auto bytes = llama::byte_text_data(text, 0.2, T, 5);
    CHECK(!bytes->has_documents());
    CHECK(!bytes->packed());
    got.assign(3, 9);
    bytes->next_batch(B, T, x, y, &got);
    CHECK(got == std::vector<int>(size_t(B) * T, 0));
    got.assign(3, 9);
    bytes->validate_begin();
    bytes->validate_batch(B, T, x, y, &got);
    CHECK(got == std::vector<int>(size_t(B) * T, 0));
}

TEST_CASE("the trainer's shard data says when its shards are packed") {
    std::vector<uint32_t> tokens(17, 5);
    std::vector<uint8_t> trained(17, 1);
    const std::string path = tmpdir() + "/packed_trainer.tok";
    data::write_shard(path, tokens, {0, 4, 8, 12}, 1000, &trained, 8);
    auto d = llama::shard_data(path, "", 2, 8, 1000, 0);
    CHECK(d->packed());
    CHECK(d->has_documents());
    std::vector<int> x, y, got;
    d->next_batch(2, 8, x, y, &got);
    CHECK(got == std::vector<int>{0, 0, 0, 0, 4, 4, 4, 4, 0, 0, 0, 0, 4, 4, 4, 4});
}
