#include "tokenizer/chat.h"

namespace llama::tok {

ChatTemplate chat_template_by_name(const std::string& name) {
    if (name == "chatml") return ChatTemplate::ChatML;
    if (name == "llama3") return ChatTemplate::Llama3;
    throw Error("unknown chat template '" + name + "': use chatml or llama3");
}

const std::set<std::string>& ChatFormat::roles() {
    static const std::set<std::string> r = {"system", "user", "assistant", "tool"};
    return r;
}

ChatFormat::ChatFormat(const Tokenizer& tokenizer, ChatTemplate kind) : tok_(tokenizer), kind_(kind) {
    int next_reserved = 0;  // the reserved tokens stand in, in order, for markers the vocabulary lacks
    auto marker = [&](const std::string& name) -> uint32_t {
        markers_.push_back(name);
        if (int64_t id = tok_.token_id(name); id >= 0) {
            described_ += (described_.empty() ? "" : ", ") + name + " = " + std::to_string(id);
            return uint32_t(id);
        }
        for (; next_reserved < 256; ++next_reserved) {
            const std::string reserved = "<|reserved_special_token_" + std::to_string(next_reserved) + "|>";
            if (int64_t id = tok_.token_id(reserved); id >= 0) {
                ++next_reserved;
                markers_.push_back(reserved);
                renamed_.push_back({name, uint32_t(id)});
                described_ += (described_.empty() ? "" : ", ") + name + " = " + std::to_string(id) + " (in place of " +
                              reserved + ")";
                return uint32_t(id);
            }
        }
        throw Error(tok_.name() + ": the chat template needs the special token " + name +
                    ", and the tokenizer has neither it nor a free <|reserved_special_token_N|> to stand in");
    };
    if (kind == ChatTemplate::ChatML) {
        start_ = marker("<|im_start|>");
        end_ = marker("<|im_end|>");
        described_ = "chatml: " + described_;
    } else {
        if (tok_.bos_id() < 0) throw Error(tok_.name() + ": the llama3 chat template needs a beginning-of-text token");
        bos_ = uint32_t(tok_.bos_id());
        start_ = marker("<|start_header_id|>");
        header_end_ = marker("<|end_header_id|>");
        end_ = marker("<|eot_id|>");
        described_ = "llama3: " + described_;
    }
    for (int64_t id : {tok_.bos_id(), tok_.eos_id()})
        if (id >= 0) markers_.push_back(tok_.decode({uint32_t(id)}));
}

void ChatFormat::piece(const std::string& header, const std::string& content, std::vector<uint32_t>& ids,
                       std::vector<uint8_t>& trained, uint8_t t) const {
    const size_t first = ids.size();
    tok_.encode(header + content, ids);
    size_t offset = 0;  // bytes of the text before each token
    for (size_t i = first; i < ids.size(); ++i) {
        offset += tok_.decode(&ids[i], 1).size();
        trained.push_back(offset > header.size() ? t : 0);
    }
}

void ChatFormat::render(const std::vector<Message>& messages, const std::set<std::string>& train_roles,
                        std::vector<uint32_t>& ids, std::vector<uint8_t>& trained) const {
    auto special = [&](uint32_t id, uint8_t t) {
        ids.push_back(id);
        trained.push_back(t);
    };
    for (size_t i = 0; i < messages.size(); ++i) {
        const Message& m = messages[i];
        if (!roles().count(m.role))
            throw Error("message " + std::to_string(i) + ": unknown role '" + m.role +
                        "' (system, user, assistant or tool)");
        for (const std::string& text : markers_)
            if (m.content.find(text) != std::string::npos)
                throw Error("message " + std::to_string(i) + " (" + m.role +
                            ") contains the template's special token " + text + " as text");
    }
    if (kind_ == ChatTemplate::Llama3) special(bos_, 0);
    for (const Message& m : messages) {
        const uint8_t t = train_roles.count(m.role) ? 1 : 0;
        special(start_, 0);
        if (kind_ == ChatTemplate::ChatML) {
            piece(m.role + "\n", m.content, ids, trained, t);
            special(end_, t);
            piece("\n", "", ids, trained, 0);
        } else {
            piece(m.role == "tool" ? "ipython" : m.role, "", ids, trained, 0);
            special(header_end_, 0);
            piece("\n\n", m.content, ids, trained, t);
            special(end_, t);
        }
    }
}

std::vector<uint32_t> ChatFormat::generation_prompt() const {
    std::vector<uint32_t> ids = {start_};
    if (kind_ == ChatTemplate::ChatML) {
        tok_.encode("assistant\n", ids);
    } else {
        tok_.encode("assistant", ids);
        ids.push_back(header_end_);
        tok_.encode("\n\n", ids);
    }
    return ids;
}

std::string ChatFormat::jinja() const {
    auto name = [&](uint32_t id) {
        for (const auto& [n, i] : renamed_)
            if (i == id) return n;
        return tok_.decode({id});
    };
    // The assistant's content and end of turn inside {% generation %}, so that
    // transformers' return_assistant_tokens_mask marks the tokens trained by default.
    const std::string turn = "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '" +
                             name(end_) + "' }}{% endgeneration %}{% else %}{{ message['content'] + '" + name(end_) +
                             "' }}{% endif %}";
    if (kind_ == ChatTemplate::ChatML)
        return "{% for message in messages %}{{ '" + name(start_) + "' + message['role'] + '\\n' }}" + turn +
               "{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '" + name(start_) +
               "assistant\\n' }}{% endif %}";
    return "{{ bos_token }}{% for message in messages %}{{ '" + name(start_) +
           "' + ('ipython' if message['role'] == 'tool' else message['role']) + '" + name(header_end_) + "\\n\\n' }}" +
           turn + "{% endfor %}{% if add_generation_prompt %}{{ '" + name(start_) + "assistant" + name(header_end_) +
           "\\n\\n' }}{% endif %}";
}

std::string ChatFormat::describe() const { return described_; }

}  // namespace llama::tok
