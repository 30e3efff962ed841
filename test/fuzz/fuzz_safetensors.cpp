// libFuzzer target: the safetensors header parser on arbitrary bytes. The first
// 8 bytes give the claimed size of the data section; the rest is the header text.
#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "lifecycle/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 8) return 0;
    uint64_t data_size;
    std::memcpy(&data_size, data, 8);
    std::string header(reinterpret_cast<const char*>(data + 8), size - 8);
    std::vector<llama::safetensors::TensorInfo> tensors;
    std::map<std::string, std::string> metadata;
    try {
        llama::safetensors::parse_header(header, data_size % (1u << 20), "fuzz", tensors, metadata);
    } catch (const std::runtime_error&) {
    }
    return 0;
}
