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
// Refused, with the file and line: lines that are not JSON, conversations that
// are not a list of messages with string roles and contents, unknown roles, and
// a content that spells out a template marker. Skipped and counted: a
// conversation with no message of a trained role, and one longer than T
// (or truncated to T with --truncate, if a trained token is left).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/shard.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenize_commands.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace llama::tok {

namespace {

struct Conversation {
    std::vector<uint32_t> ids;
    std::vector<uint8_t> trained;
};

// The messages of one JSONL line; throws Error naming the place.
std::vector<Message> parse_messages(const std::string& line, const std::string& key, const std::string& where) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
        throw Error(where + ": not a JSON object");
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

// The lines of the JSONL inputs, each with its place ("FILE:LINE").
template <class F>
void for_each_line(const std::vector<std::string>& inputs, F&& f) {
    for (const std::string& path : expand_inputs(inputs)) {
        const std::string text = read_input(path);
        size_t start = 0, number = 0;
        while (start < text.size()) {
            size_t end = text.find('\n', start);
            if (end == std::string::npos) end = text.size();
            ++number;
            const std::string line = text.substr(start, end - start);
            if (line.find_first_not_of(" \t\r") != std::string::npos) f(line, path + ":" + std::to_string(number));
            start = end + 1;
        }
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
                  "cut conversations longer than --seq-len to it (default: skip them; either way they are counted)");
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
    std::vector<Conversation> split[2];
    uint64_t n_read = 0, no_answer = 0, too_long = 0, truncated = 0;
    for_each_line(o.inputs, [&](const std::string& line, const std::string& where) {
        const std::vector<Message> messages = parse_messages(line, o.messages_key, where);
        Conversation c;
        try {
            chat.render(messages, roles, c.ids, c.trained);
        } catch (const Error& e) {
            throw Error(where + ": " + e.what());
        }
        const uint64_t index = n_read++;
        if (std::find(c.trained.begin(), c.trained.end(), 1) == c.trained.end()) {
            ++no_answer;
            return;
        }
        if (c.ids.size() > T) {
            if (!o.truncate) {
                ++too_long;
                return;
            }
            c.ids.resize(T);
            c.trained.resize(T);
            ++truncated;
            if (std::find(c.trained.begin(), c.trained.end(), 1) == c.trained.end()) {
                ++no_answer;
                return;
            }
        }
        const bool val =
            index < o.val_docs ||
            (o.val_fraction > 0 && double(mix64(index ^ mix64(o.seed)) >> 11) * 0x1.0p-53 < o.val_fraction);
        split[val ? 1 : 0].push_back(std::move(c));
    });
    if (split[0].empty())
        throw Error("no conversation to train on: " + std::to_string(n_read) + " read, " + std::to_string(no_answer) +
                    " without a turn of a trained role, " + std::to_string(too_long) + " longer than --seq-len " +
                    std::to_string(T));

    fs::create_directories(o.out);
    const uint32_t pad = chat.end_of_turn();
    const uint64_t per_shard = std::max<uint64_t>(1, o.shard_tokens / T);  // sequences
    uint64_t sequences[2] = {0, 0}, tokens_used[2] = {0, 0};
    for (int s = 0; s < 2; ++s) {
        if (split[s].empty()) continue;
        std::vector<uint64_t> lengths;
        for (const Conversation& c : split[s]) lengths.push_back(c.ids.size());
        const std::vector<std::vector<size_t>> bins = first_fit(lengths, T);
        sequences[s] = bins.size();
        std::vector<uint32_t> ids;
        std::vector<uint8_t> trained;
        std::vector<uint64_t> starts;
        uint64_t shard = 0;
        for (size_t b = 0; b < bins.size(); ++b) {
            const uint64_t begin = ids.size();
            for (size_t i : bins[b]) {
                starts.push_back(ids.size());
                ids.insert(ids.end(), split[s][i].ids.begin(), split[s][i].ids.end());
                trained.insert(trained.end(), split[s][i].trained.begin(), split[s][i].trained.end());
            }
            tokens_used[s] += ids.size() - begin;
            const bool last = b + 1 == bins.size();
            const uint64_t padding = begin + T - ids.size() + (last ? 1 : 0);  // the last shard: one token more
            if (padding > 0) starts.push_back(ids.size());
            ids.insert(ids.end(), padding, pad);
            trained.insert(trained.end(), padding, 0);
            if (last || (b + 1) % per_shard == 0) {
                data::write_shard(shard_name(o.out, s, shard++), ids, starts, tok.vocab_size(), &trained, T);
                ids.clear();
                trained.clear();
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
        std::printf(
            "conversations: %llu read, %zu train, %zu validation; skipped: %llu without a turn of %s, "
            "%llu longer than %llu tokens%s; %llu truncated\n",
            (unsigned long long)n_read, split[0].size(), split[1].size(), (unsigned long long)no_answer,
            o.train_on.size() == 1 ? o.train_on[0].c_str() : "a trained role", (unsigned long long)too_long,
            (unsigned long long)T, o.truncate ? "" : " (--truncate keeps them, cut)", (unsigned long long)truncated);
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
    for_each_line({o.input}, [&](const std::string& line, const std::string& where) {
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
