// libFuzzer target: the two config readers (a Hugging Face config.json and the
// config saved in a checkpoint's state.json) on arbitrary text.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        llama::config_from_hf_json_text(text, "fuzz");
    } catch (const std::runtime_error&) {
    }
    try {
        llama::config_from_json(text, "fuzz");
    } catch (const std::runtime_error&) {
    }
    return 0;
}
