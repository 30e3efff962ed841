#include "lifecycle/gguf.h"

#include <cstring>
#include <stdexcept>

#include "lifecycle/file_io.h"

namespace llama::gguf {

namespace {

template <typename T>
void put(std::vector<unsigned char>& out, T v) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // x86-64 and aarch64 are little-endian, as GGUF is
    out.insert(out.end(), b, b + sizeof(T));
}

void put_string(std::vector<unsigned char>& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
}

size_t type_size(TensorType t) { return t == TensorType::F32 ? 4 : 2; }

uint64_t align(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

void Writer::key(const std::string& k, ValueType t) {
    put_string(kv_, k);
    put<uint32_t>(kv_, uint32_t(t));
    ++kv_count_;
}

void Writer::add_u32(const std::string& k, uint32_t v) {
    key(k, ValueType::UINT32);
    put(kv_, v);
}
void Writer::add_i32(const std::string& k, int32_t v) {
    key(k, ValueType::INT32);
    put(kv_, v);
}
void Writer::add_f32(const std::string& k, float v) {
    key(k, ValueType::FLOAT32);
    put(kv_, v);
}
void Writer::add_bool(const std::string& k, bool v) {
    key(k, ValueType::BOOL);
    put<uint8_t>(kv_, v ? 1 : 0);
}
void Writer::add_string(const std::string& k, const std::string& v) {
    key(k, ValueType::STRING);
    put_string(kv_, v);
}

void Writer::add_string_array(const std::string& k, const std::vector<std::string>& v) {
    key(k, ValueType::ARRAY);
    put<uint32_t>(kv_, uint32_t(ValueType::STRING));
    put<uint64_t>(kv_, v.size());
    for (const auto& s : v) put_string(kv_, s);
}

void Writer::add_i32_array(const std::string& k, const std::vector<int32_t>& v) {
    key(k, ValueType::ARRAY);
    put<uint32_t>(kv_, uint32_t(ValueType::INT32));
    put<uint64_t>(kv_, v.size());
    for (int32_t x : v) put(kv_, x);
}

void Writer::add_f32_array(const std::string& k, const std::vector<float>& v) {
    key(k, ValueType::ARRAY);
    put<uint32_t>(kv_, uint32_t(ValueType::FLOAT32));
    put<uint64_t>(kv_, v.size());
    for (float x : v) put(kv_, x);
}

void Writer::add_tensor(const std::string& name, const std::vector<int64_t>& shape, TensorType type, const void* data) {
    Tensor t{name, shape, type, {}};
    uint64_t n = type_size(type);
    for (int64_t s : shape) n *= uint64_t(s);
    const unsigned char* p = static_cast<const unsigned char*>(data);
    t.bytes.assign(p, p + n);
    tensors_.push_back(std::move(t));
}

void Writer::write(const std::string& path) const {
    std::vector<unsigned char> head;
    head.insert(head.end(), {'G', 'G', 'U', 'F'});
    put<uint32_t>(head, kVersion);
    put<uint64_t>(head, tensors_.size());
    put<uint64_t>(head, kv_count_ + 1);  // + general.alignment below
    head.insert(head.end(), kv_.begin(), kv_.end());
    put_string(head, "general.alignment");
    put<uint32_t>(head, uint32_t(ValueType::UINT32));
    put<uint32_t>(head, uint32_t(kAlignment));
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
        put_string(head, t.name);
        put<uint32_t>(head, uint32_t(t.shape.size()));
        for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(head, uint64_t(*it));
        put<uint32_t>(head, uint32_t(t.type));
        put<uint64_t>(head, offset);
        offset = align(offset + t.bytes.size(), kAlignment);
    }
    head.resize(align(head.size(), kAlignment), 0);
    fileio::ChecksummedWriter w(path);
    w.write(head.data(), head.size());
    static const unsigned char zeros[kAlignment] = {};
    for (const Tensor& t : tensors_) {
        w.write(t.bytes.data(), t.bytes.size());
        uint64_t pad = align(t.bytes.size(), kAlignment) - t.bytes.size();
        if (pad) w.write(zeros, pad);
    }
    w.finish();
}

}  // namespace llama::gguf
