// tokenize: the command line of the tokenizer and the token shards.
//
//   tokenize encode --tokenizer FILE [--special] [--bos] [--eos] < text
//   tokenize decode --tokenizer FILE < ids
//   tokenize shards --tokenizer FILE --out DIR [options] INPUT...
//   tokenize dump [--decode --tokenizer FILE] PATH
//   tokenize bench --tokenizer FILE [--threads N] FILE...
//   tokenize batches --data MIXTURE -T N -B N [--rank R --world W] [--steps N] [--state LINE]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "tokenizer/tokenize_commands.h"
#include "tokenizer/tokenizer.h"

namespace tok = llama::tok;
using namespace llama::tok;  // the subcommands

namespace {

std::string read_stdin() {
    std::string s;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) s.append(buf, n);
    if (std::ferror(stdin)) throw tok::Error("stdin: read error");
    return s;
}

void print_ids(const std::vector<uint32_t>& ids, std::string& line) {
    line.clear();
    char num[16];
    for (size_t i = 0; i < ids.size(); i++) {
        if (i) line += ' ';
        int k = std::snprintf(num, sizeof num, "%u", ids[i]);
        line.append(num, size_t(k));
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Byte-level BPE tokenizer and token shards"};
    app.require_subcommand(1);

    std::string tok_file, pattern;
    bool special = false, bos = false, eos = false;
    auto* enc = app.add_subcommand("encode", "read UTF-8 text on stdin, print token ids (space-separated) on stdout");
    enc->add_option("--tokenizer", tok_file, "tokenizer.json or tiktoken rank file")->required();
    enc->add_option("--pattern", pattern, "pre-tokenization pattern for a tiktoken file: llama3 or gpt2");
    enc->add_flag("--special", special, "recognise special tokens such as <|begin_of_text|> in the text");
    enc->add_flag("--bos", bos, "start with the beginning-of-text token");
    enc->add_flag("--eos", eos, "end with the end-of-text token");
    bool pcre2 = false;
    enc->add_flag("--pcre2", pcre2, "pre-tokenize with PCRE2 even for the GPT-2 and Llama 3 patterns (for tests)");

    auto* dec = app.add_subcommand("decode", "read token ids on stdin, print the text");
    dec->add_option("--tokenizer", tok_file, "tokenizer.json or tiktoken rank file")->required();
    dec->add_option("--pattern", pattern, "pre-tokenization pattern for a tiktoken file");

    ShardOptions so;
    auto* sh = app.add_subcommand("shards", "tokenize text files into a folder of token shards");
    add_shard_options(sh, so);

    DumpOptions dopt;
    auto* du = app.add_subcommand("dump", "print the documents of a shard, one per line");
    add_dump_options(du, dopt);

    BenchOptions bo;
    auto* be = app.add_subcommand("bench", "measure encoding speed (MB/s, tokens/s) on files");
    add_bench_options(be, bo);

    SftOptions sfo;
    auto* sf = app.add_subcommand("sft",
                                  "render JSONL conversations with a chat template into packed shards whose "
                                  "trained flags mark the answers");
    add_sft_options(sf, sfo);

    RenderOptions ro;
    auto* re = app.add_subcommand("render",
                                  "print each JSONL conversation's ids and trained flags as rendered by a "
                                  "chat template (or the template as Jinja)");
    add_render_options(re, ro);

    BatchesOptions bao;
    auto* ba = app.add_subcommand("batches", "print the samples the data loader gives one rank, one per line");
    add_batches_options(ba, bao);

    CLI11_PARSE(app, argc, argv);
    try {
        if (*enc || *dec) {
            tok::Tokenizer t = tok::Tokenizer::from_file(tok_file, pattern);
            if (pcre2) t.set_fast_pretokenizer(false);
            std::string in = read_stdin();
            if (*enc) {
                std::vector<uint32_t> ids;
                if (bos) {
                    if (t.bos_id() < 0) throw tok::Error(tok_file + ": the tokenizer has no beginning-of-text token");
                    ids.push_back(uint32_t(t.bos_id()));
                }
                try {
                    t.encode(in, ids, special);
                } catch (const tok::Error& e) {
                    throw tok::Error(std::string("stdin: ") + e.what());
                }
                if (eos) {
                    if (t.eos_id() < 0) throw tok::Error(tok_file + ": the tokenizer has no end-of-text token");
                    ids.push_back(uint32_t(t.eos_id()));
                }
                std::string line;
                print_ids(ids, line);
            } else {
                std::vector<uint32_t> ids;
                size_t i = 0;
                while (i < in.size()) {
                    while (i < in.size() && std::isspace(static_cast<unsigned char>(in[i]))) i++;
                    if (i >= in.size()) break;
                    char* end = nullptr;
                    unsigned long v = std::strtoul(in.c_str() + i, &end, 10);
                    if (end == in.c_str() + i || v > UINT32_MAX)
                        throw tok::Error("stdin: expected token ids at byte offset " + std::to_string(i));
                    ids.push_back(uint32_t(v));
                    i = size_t(end - in.c_str());
                }
                std::string s = t.decode(ids);
                std::fwrite(s.data(), 1, s.size(), stdout);
            }
        } else if (*sh) {
            return run_shards(so);
        } else if (*du) {
            return run_dump(dopt);
        } else if (*sf) {
            return run_sft(sfo);
        } else if (*re) {
            return run_render(ro);
        } else if (*ba) {
            return run_batches(bao);
        } else if (*be) {
            return run_bench(bo);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tokenize: %s\n", e.what());
        return 1;
    }
    if (std::fflush(stdout) != 0) {
        std::fprintf(stderr, "tokenize: stdout: write error\n");
        return 1;
    }
    return 0;
}
