// tokenize sft and tokenize render: chat conversations into token shards with
// trained flags, packed into sequences for fine-tuning.
//
// Input: JSONL, one conversation per line, an object whose `messages` (or
// --messages-key) is a list of {"role": ..., "content": ...} (OpenAI's form).
// Each conversation is rendered with the chat template (tokenizer/chat.h); the
// tokens of the roles in --train-on (the assistant's content and end-of-turn
// token, by default) are flagged as trained.
//
// Packing: sequences of --seq-len T tokens, each filled first-fit with whole
// conversations (none is split), each conversation a document of the shard
// (so attention and RoPE can keep to it); the tail of a sequence is padding
// (the end-of-turn token, a document of its own, not trained). With the data
// loader's samples of T + 1 tokens starting every T tokens, every sample is
// one packed sequence: the shards hold whole sequences, and the last shard one
// more padding token, the last sample's final target. The next sequence's
// first token is a target of no loss (a conversation starts with a template
// marker, never trained).
//
// Input is read as it streams (tokenizer/input.h: files, folders, globs, .gz,
// .zst, stdin), a megabyte at a time; first-fit packing looks at every
// conversation's length, so the rendered conversations are held until the
// end: 5 bytes a token (id and flag), far less than the JSON they came from.
//
// Refused, with FILE:LINE as the other tokenize commands write it: lines that
// are not JSON, conversations that are not a list of messages with string
// roles and contents, unknown roles, and a content that spells out a template
// marker (or the tokenizer's beginning or end of text): such text is data
// written for another format or an attempt to forge a turn, and a Jinja
// renderer (transformers' apply_chat_template) would tokenize it as the
// special token, so it is an error rather than something to guess about.
// Other special tokens' names (<|eot_id|> under ChatML) are encoded as plain
// text, as every content is: a content never yields a special token.
//
// Skipped and counted, so that read = train + validation + skipped:
// conversations with no message of a trained role, and those longer than T
// (with --truncate: cut to T and kept, counted as truncated with the trained
// tokens cut off, unless no trained token is left in the first T: then
// skipped as too long).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <nlohmann/json.hpp>

#include "data/shard.h"
#include "tokenizer/chat.h"
#include "tokenizer/input.h"
#include "tokenizer/tokenize_commands.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace llama::tok {

namespace {

// The rendered conversations of one split, back to back: conversation i is
// ids[offsets[i], offsets[i + 1]), with its trained flags alongside.
struct Conversations {
    std::vector<uint32_t> ids;
    std::vector<uint8_t> trained;
    std::vector<uint64_t> offsets = {0};
    size_t size() const { return offsets.size() - 1; }
    uint64_t length(size_t i) const { return offsets[i + 1] - offsets[i]; }
    void add(const std::vector<uint32_t>& i, const std::vector<uint8_t>& t, size_t n) {
        ids.insert(ids.end(), i.begin(), i.begin() + ptrdiff_t(n));
        trained.insert(trained.end(), t.begin(), t.begin() + ptrdiff_t(n));
        offsets.push_back(ids.size());
    }
};

// The messages of one JSONL line; throws Error naming the place.
std::vector<Message> parse_messages(std::string_view line, const std::string& key, const std::string& where) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
        throw Error(where + ": not valid JSON: " + e.what());  // as tokenize shards says it
    }
    if (!j.is_object() || !j.contains(key))
        throw Error(where + ": no \"" + key + "\" list (choose the key with --messages-key)");
    const nlohmann::json& list = j[key];
    if (!list.is_array() || list.empty()) throw Error(where + ": \"" + key + "\" is not a non-empty list of messages");
    std::vector<Message> messages;
    for (size_t i = 0; i < list.size(); ++i) {
        const nlohmann::json& m = list[i];
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
            !m["content"].is_string())
            throw Error(where + ": message " + std::to_string(i) + " is not {\"role\": TEXT, \"content\": TEXT}");
        messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    return messages;
}

std::set<std::string> train_roles(const std::vector<std::string>& names) {
    std::set<std::string> roles;
    for (const std::string& n : names) {
        if (!ChatFormat::roles().count(n))
            throw Error("--train-on: unknown role '" + n + "' (system, user, assistant or tool)");
        roles.insert(n);
    }
    return roles;
}

// The non-blank lines of the JSONL inputs, each with its place (FILE:LINE),
// through the reader tokenize shards uses.
template <class F>
void for_each_line(const std::vector<std::string>& inputs, F&& f) {
    for (const std::string& path : expand_inputs(inputs)) {
        PieceReader in(path, "\n");
        std::string_view line;
        while (in.next(line))
            if (!blank_line(line)) f(line, in.where());
    }
}

// First-fit packing of lengths (each <= capacity) into bins: the bins, each
// its items in order. A max-tree over the bins' free space finds the first
// bin with room in O(log bins).
std::vector<std::vector<size_t>> first_fit(const std::vector<uint64_t>& lengths, uint64_t capacity) {
    size_t leaves = 1;
    while (leaves < lengths.size()) leaves *= 2;
    std::vector<uint64_t> tree(2 * leaves, capacity);  // free space, max over each subtree (unopened bins: all)
    std::vector<std::vector<size_t>> bins;
    for (size_t i = 0; i < lengths.size(); ++i) {
        size_t node = 1;
        while (node < leaves) node = tree[2 * node] >= lengths[i] ? 2 * node : 2 * node + 1;
        const size_t bin = node - leaves;
        if (bin >= bins.size()) bins.resize(bin + 1);
        bins[bin].push_back(i);
        tree[node] -= lengths[i];
        for (node /= 2; node >= 1; node /= 2) tree[node] = std::max(tree[2 * node], tree[2 * node + 1]);
    }
    return bins;
}

}  // namespace

void add_sft_options(CLI::App* app, SftOptions& o) {
    app->add_option("--tokenizer", o.tokenizer, "tokenizer.json or tiktoken rank file")->required();
    app->add_option("--pattern", o.pattern, "pre-tokenization pattern for a tiktoken file: llama3 or gpt2");
    app->add_option("--template", o.chat_template, "chat template: chatml or llama3")->capture_default_str();
    app->add_option("--out", o.out, "output folder (train_NNNNNN.tok, val_NNNNNN.tok, chat_template.json)")->required();
    app->add_option("inputs", o.inputs, "JSONL files (.gz, .zst), folders, globs, or - for stdin")->required();
    app->add_option("--seq-len,-T", o.seq_len,
                    "the training sequence length: conversations are packed into "
                    "sequences of this many tokens")
        ->required()
        ->check(CLI::PositiveNumber);
    app->add_option("--messages-key", o.messages_key, "the key of each line's list of messages")->capture_default_str();
    app->add_option("--train-on", o.train_on, "roles whose turns the loss trains on (content and end of turn)")
        ->delimiter(',')
        ->capture_default_str();
    app->add_flag("--truncate", o.truncate,
                  "cut conversations longer than --seq-len to it, kept if a trained token is left (default: skip "
                  "them; either way they are counted)");
    app->add_option("--shard-tokens", o.shard_tokens, "tokens per shard (whole sequences)");
    app->add_option("--val-fraction", o.val_fraction, "fraction of conversations for the validation split")
        ->check(CLI::Range(0.0, 1.0));
    app->add_option("--val-docs", o.val_docs, "put the first N conversations in the validation split");
    app->add_option("--seed", o.seed, "seed of the validation split choice");
    app->add_flag("--quiet", o.quiet, "no summary");
}

int run_sft(const SftOptions& o) {
    const Tokenizer tok = Tokenizer::from_file(o.tokenizer, o.pattern);
    const ChatFormat chat(tok, chat_template_by_name(o.chat_template));
    const std::set<std::string> roles = train_roles(o.train_on);
    const uint64_t T = o.seq_len;
    Conversations split[2];
    uint64_t n_read = 0, no_answer = 0, too_long = 0, truncated = 0, trained_cut = 0;
    std::vector<uint32_t> ids;
    std::vector<uint8_t> trained;
    for_each_line(o.inputs, [&](std::string_view line, const std::string& where) {
        const std::vector<Message> messages = parse_messages(line, o.messages_key, where);
        ids.clear();
        trained.clear();
        try {
            chat.render(messages, roles, ids, trained);
        } catch (const Error& e) {
            throw Error(where + ": " + e.what());
        }
        const uint64_t index = n_read++;
        if (std::find(trained.begin(), trained.end(), 1) == trained.end()) {
            ++no_answer;
            return;
        }
        size_t n = ids.size();
        if (n > T) {
            // Kept with --truncate only if a trained token is left in the first T.
            if (!o.truncate ||
                std::find(trained.begin(), trained.begin() + ptrdiff_t(T), 1) == trained.begin() + ptrdiff_t(T)) {
                ++too_long;
                return;
            }
            n = T;
            ++truncated;
            trained_cut += uint64_t(std::count(trained.begin() + ptrdiff_t(T), trained.end(), 1));
        }
        const bool val =
            index < o.val_docs ||
            (o.val_fraction > 0 && double(mix64(index ^ mix64(o.seed)) >> 11) * 0x1.0p-53 < o.val_fraction);
        split[val ? 1 : 0].add(ids, trained, n);
    });
    if (split[0].size() == 0)
        throw Error("no conversation to train on: " + std::to_string(n_read) + " read, " + std::to_string(no_answer) +
                    " without a turn of a trained role, " + std::to_string(too_long) + " longer than --seq-len " +
                    std::to_string(T));

    fs::create_directories(o.out);
    const uint32_t pad = chat.end_of_turn();
    const uint64_t per_shard = std::max<uint64_t>(1, o.shard_tokens / T);  // sequences
    uint64_t sequences[2] = {0, 0}, tokens_used[2] = {0, 0};
    for (int s = 0; s < 2; ++s) {
        const Conversations& c = split[s];
        if (c.size() == 0) continue;
        std::vector<uint64_t> lengths;
        for (size_t i = 0; i < c.size(); ++i) lengths.push_back(c.length(i));
        const std::vector<std::vector<size_t>> bins = first_fit(lengths, T);
        sequences[s] = bins.size();
        std::vector<uint32_t> out_ids;
        std::vector<uint8_t> out_trained;
        std::vector<uint64_t> starts;
        uint64_t shard = 0;
        for (size_t b = 0; b < bins.size(); ++b) {
            const uint64_t begin = out_ids.size();
            for (size_t i : bins[b]) {
                starts.push_back(out_ids.size());
                out_ids.insert(out_ids.end(), c.ids.begin() + ptrdiff_t(c.offsets[i]),
                               c.ids.begin() + ptrdiff_t(c.offsets[i + 1]));
                out_trained.insert(out_trained.end(), c.trained.begin() + ptrdiff_t(c.offsets[i]),
                                   c.trained.begin() + ptrdiff_t(c.offsets[i + 1]));
            }
            tokens_used[s] += out_ids.size() - begin;
            const bool last = b + 1 == bins.size();
            const uint64_t padding = begin + T - out_ids.size() + (last ? 1 : 0);  // the last shard: one token more
            if (padding > 0) starts.push_back(out_ids.size());
            out_ids.insert(out_ids.end(), padding, pad);
            out_trained.insert(out_trained.end(), padding, 0);
            if (last || (b + 1) % per_shard == 0) {
                data::write_shard(shard_name(o.out, s, shard++), out_ids, starts, tok.vocab_size(), &out_trained, T);
                out_ids.clear();
                out_trained.clear();
                starts.clear();
            }
        }
    }
    nlohmann::json info = {{"template", o.chat_template},
                           {"chat_template", chat.jinja()},
                           {"markers", chat.describe()},
                           {"end_of_turn", chat.end_of_turn()},
                           {"seq_len", T},
                           {"train_on", o.train_on}};
    for (const auto& [name, id] : chat.renamed()) info["renamed_tokens"][name] = id;
    std::ofstream(fs::path(o.out) / "chat_template.json") << info.dump(2) << "\n";
    if (!o.quiet) {
        std::printf("template %s\n", chat.describe().c_str());
        // Every conversation read is in one of the counts: read = train + validation + skipped.
        const std::string role = o.train_on.size() == 1 ? o.train_on[0] : "a trained role";
        std::printf(
            "conversations: %llu read, %zu train, %zu validation; skipped: %llu without a turn of %s, "
            "%llu longer than %llu tokens%s; %llu truncated to %llu tokens (%llu trained tokens cut)\n",
            (unsigned long long)n_read, split[0].size(), split[1].size(), (unsigned long long)no_answer, role.c_str(),
            (unsigned long long)too_long, (unsigned long long)T,
            o.truncate ? (" with no token of " + role + " in the first " + std::to_string(T)).c_str()
                       : " (--truncate keeps them, cut)",
            (unsigned long long)truncated, (unsigned long long)T, (unsigned long long)trained_cut);
        for (int s = 0; s < 2; ++s)
            if (sequences[s])
                std::printf("%s: %llu sequences of %llu tokens, %.1f%% conversation tokens, the rest padding\n",
                            s ? "validation" : "train", (unsigned long long)sequences[s], (unsigned long long)T,
                            100.0 * double(tokens_used[s]) / double(sequences[s] * T));
    }
    return 0;
}

void add_render_options(CLI::App* app, RenderOptions& o) {
    app->add_option("--tokenizer", o.tokenizer, "tokenizer.json or tiktoken rank file")->required();
    app->add_option("--pattern", o.pattern, "pre-tokenization pattern for a tiktoken file: llama3 or gpt2");
    app->add_option("--template", o.chat_template, "chat template: chatml or llama3")->capture_default_str();
    app->add_option("--messages-key", o.messages_key, "the key of each line's list of messages")->capture_default_str();
    app->add_option("--train-on", o.train_on, "roles whose turns are trained")->delimiter(',')->capture_default_str();
    app->add_option("input", o.input, "a JSONL file of conversations (default: stdin)");
    app->add_flag("--jinja", o.jinja, "print the template as Hugging Face's Jinja chat_template instead");
}

int run_render(const RenderOptions& o) {
    const Tokenizer tok = Tokenizer::from_file(o.tokenizer, o.pattern);
    const ChatFormat chat(tok, chat_template_by_name(o.chat_template));
    std::fprintf(stderr, "template %s\n", chat.describe().c_str());
    if (o.jinja) {
        std::printf("%s\n", chat.jinja().c_str());
        return 0;
    }
    const std::set<std::string> roles = train_roles(o.train_on);
    for_each_line({o.input}, [&](std::string_view line, const std::string& where) {
        std::vector<uint32_t> ids;
        std::vector<uint8_t> trained;
        const std::vector<Message> messages = parse_messages(line, o.messages_key, where);
        try {
            chat.render(messages, roles, ids, trained);
        } catch (const Error& e) {
            throw Error(where + ": " + e.what());
        }
        std::printf("%s\n", nlohmann::json({{"ids", ids}, {"trained", trained}}).dump().c_str());
    });
    return 0;
}

}  // namespace llama::tok
