// Chat templates: conversations (lists of messages with a role and a content)
// rendered into token ids, with a flag for each token saying whether the loss
// trains on it (supervised fine-tuning).
//
// Two templates, each written out as Hugging Face's Jinja chat template
// (jinja()), which transformers' apply_chat_template renders to the same ids
// (test/tokenizer/test-chat-templates checks it):
//
//   chatml  <|im_start|>ROLE\nCONTENT<|im_end|>\n ... (no beginning-of-text token)
//   llama3  <|begin_of_text|><|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|> ...
//           (role "tool" is written "ipython", as Meta's Llama 3.1 chat format does)
//
// The text between two special tokens is encoded as one piece, as a tokenizer
// encodes the rendered string (so a token may straddle a role header and the
// content: it counts as content). A template's markers are special tokens: when
// the vocabulary lacks them (ChatML on Llama 3's), the first unused reserved
// special tokens (<|reserved_special_token_N|>) stand in for them, and
// describe() says which. A content that spells out a marker is refused, so a
// user cannot forge a turn.
//
// Trained tokens (by default those of the assistant's turns): the content and
// the end-of-turn token, not the role header, so a model learns to answer and
// to stop.
#ifndef TOKENIZER_CHAT_H
#define TOKENIZER_CHAT_H

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace llama::tok {

struct Message {
    std::string role;  // system, user, assistant or tool
    std::string content;
};

enum class ChatTemplate { ChatML, Llama3 };

// "chatml" or "llama3"; throws Error naming the allowed ones.
ChatTemplate chat_template_by_name(const std::string& name);

class ChatFormat {
public:
    // Resolves the template's special tokens in `tokenizer` (which must outlive
    // this). Throws Error when they are missing and no reserved tokens can
    // stand in.
    ChatFormat(const Tokenizer& tokenizer, ChatTemplate kind);

    // The roles a conversation may use.
    static const std::set<std::string>& roles();

    // Appends the ids of `messages` to ids and, for each, 1 (trained) or 0 to
    // trained: the content and end-of-turn token of each message whose role
    // is in train_roles. Throws Error on an unknown role or a content that
    // holds a marker of the template (the message's index is named).
    void render(const std::vector<Message>& messages, const std::set<std::string>& train_roles,
                std::vector<uint32_t>& ids, std::vector<uint8_t>& trained) const;

    // The ids that start an assistant's answer (for generation).
    std::vector<uint32_t> generation_prompt() const;
    // The token that ends a turn (generation stops there).
    uint32_t end_of_turn() const { return end_; }
    // The template as Hugging Face's chat_template (Jinja), written with the
    // marker names this format uses.
    std::string jinja() const;
    // The markers and their ids, e.g. "chatml: <|im_start|> = 128002 (in place
    // of <|reserved_special_token_0|>), <|im_end|> = 128003 (...)".
    std::string describe() const;
    // Markers that took a reserved token's place: {name, id}, for the export.
    const std::vector<std::pair<std::string, uint32_t>>& renamed() const { return renamed_; }

private:
    // Encodes header + content as one piece; the tokens holding any byte of
    // the content get flag t, those of the header 0.
    void piece(const std::string& header, const std::string& content, std::vector<uint32_t>& ids,
               std::vector<uint8_t>& trained, uint8_t t) const;
    const Tokenizer& tok_;
    ChatTemplate kind_;
    uint32_t bos_ = 0, start_ = 0, end_ = 0, header_end_ = 0;  // header_end_: llama3's <|end_header_id|>
    std::vector<std::string> markers_;                         // their texts, refused inside contents
    std::vector<std::pair<std::string, uint32_t>> renamed_;
    std::string described_;
};

}  // namespace llama::tok

#endif  // TOKENIZER_CHAT_H
