// A GGUF v3 writer (the file format of llama.cpp): a header, typed key-value
// metadata, tensor descriptions, then the tensor data, each tensor aligned to
// `general.alignment` (32 bytes) from the start of the data section. All sizes
// and offsets are 64-bit; the byte order is little-endian.
#ifndef LIFECYCLE_GGUF_H
#define LIFECYCLE_GGUF_H

#include <cstdint>
#include <string>
#include <vector>

namespace llama::gguf {

enum class ValueType : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12
};

// ggml tensor types used here.
enum class TensorType : uint32_t { F32 = 0, F16 = 1, BF16 = 30 };

class Writer {
public:
    static constexpr uint32_t kVersion = 3;
    static constexpr uint64_t kAlignment = 32;

    void add_u32(const std::string& key, uint32_t v);
    void add_i32(const std::string& key, int32_t v);
    void add_f32(const std::string& key, float v);
    void add_bool(const std::string& key, bool v);
    void add_string(const std::string& key, const std::string& v);
    void add_string_array(const std::string& key, const std::vector<std::string>& v);
    void add_i32_array(const std::string& key, const std::vector<int32_t>& v);
    void add_f32_array(const std::string& key, const std::vector<float>& v);

    // `shape` is row-major as in PyTorch ([out, in] for a linear weight); the
    // file stores ggml's order (fastest-varying first). The data is copied.
    void add_tensor(const std::string& name, const std::vector<int64_t>& shape, TensorType type, const void* data);

    // Writes the file; throws std::runtime_error naming it on any failure.
    void write(const std::string& path) const;

private:
    struct Tensor {
        std::string name;
        std::vector<int64_t> shape;
        TensorType type;
        std::vector<unsigned char> bytes;
    };
    std::vector<unsigned char> kv_;  // serialised key-value pairs
    uint64_t kv_count_ = 0;
    std::vector<Tensor> tensors_;
    void key(const std::string& k, ValueType t);
};

}  // namespace llama::gguf

#endif  // LIFECYCLE_GGUF_H
