#include "lifecycle/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "lifecycle/file_io.h"

namespace llama::safetensors {

namespace {

struct DTypeEntry {
    DType dtype;
    const char* name;
    size_t size;
};
const DTypeEntry kDTypes[] = {{DType::F64, "F64", 8},   {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
                              {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
                              {DType::I16, "I16", 2},   {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
                              {DType::BOOL, "BOOL", 1}};

const uint64_t kMaxHeader = 100u << 20;  // 100 MB, as the format's reference implementation limits it

bool parse_dtype(const std::string& s, DType& out) {
    for (const auto& e : kDTypes)
        if (s == e.name) {
            out = e.dtype;
            return true;
        }
    return false;
}

std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

}  // namespace

const char* dtype_name(DType d) {
    for (const auto& e : kDTypes)
        if (e.dtype == d) return e.name;
    return "?";
}

size_t dtype_size(DType d) {
    for (const auto& e : kDTypes)
        if (e.dtype == d) return e.size;
    return 0;
}

uint64_t TensorInfo::numel() const {
    uint64_t n = 1;
    for (int64_t s : shape) n *= uint64_t(s);
    return n;
}

uint64_t write_file(const std::string& path, const std::vector<TensorRef>& tensors,
                    const std::map<std::string, std::string>& metadata) {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (const TensorRef& t : tensors) {
        uint64_t bytes = dtype_size(t.dtype);
        for (int64_t s : t.shape) bytes *= uint64_t(s);
        if (header.contains(t.name)) throw std::runtime_error(path + ": tensor '" + t.name + "' given twice");
        header[t.name] = {
            {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
    uint64_t n = text.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = (n >> (8 * i)) & 0xff;
    fileio::ChecksummedWriter w(path);
    w.write(len, 8);
    w.write(text.data(), text.size());
    for (const TensorRef& t : tensors) {
        uint64_t bytes = dtype_size(t.dtype);
        for (int64_t s : t.shape) bytes *= uint64_t(s);
        w.write(t.data, bytes);
    }
    return w.finish();
}

void parse_header(const std::string& json_text, uint64_t data_size, const std::string& origin,
                  std::vector<TensorInfo>& tensors, std::map<std::string, std::string>& metadata) {
    auto fail = [&](const std::string& what) { throw std::runtime_error(origin + ": " + what); };
    nlohmann::json h;
    try {
        h = nlohmann::json::parse(json_text);
    } catch (const std::exception& e) {
        fail(std::string("header is not valid JSON: ") + e.what());
    }
    if (!h.is_object()) fail("header is not a JSON object");
    tensors.clear();
    metadata.clear();
    for (auto it = h.begin(); it != h.end(); ++it) {
        const std::string& name = it.key();
        const nlohmann::json& v = it.value();
        if (name == "__metadata__") {
            if (!v.is_object()) fail("__metadata__ is not an object");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string()) fail("__metadata__ value '" + m.key() + "' is not a string");
                metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        if (!v.is_object()) fail("entry '" + name + "' is not an object");
        TensorInfo t;
        t.name = name;
        if (!v.contains("dtype") || !v["dtype"].is_string() || !parse_dtype(v["dtype"].get<std::string>(), t.dtype))
            fail("tensor '" + name + "' has a missing or unknown dtype");
        if (!v.contains("shape") || !v["shape"].is_array()) fail("tensor '" + name + "' has no shape array");
        uint64_t bytes = dtype_size(t.dtype);
        for (const auto& s : v["shape"]) {
            if (!s.is_number_unsigned())
                fail("tensor '" + name + "' has a shape entry that is not a non-negative integer");
            uint64_t d = s.get<uint64_t>();
            if (d > uint64_t(INT64_MAX) || (d != 0 && bytes > UINT64_MAX / d))
                fail("tensor '" + name + "' has a shape too large");
            bytes *= d;
            t.shape.push_back(int64_t(d));
        }
        const auto& off = v.contains("data_offsets") ? v["data_offsets"] : nlohmann::json();
        if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
            fail("tensor '" + name + "' has no data_offsets pair of non-negative integers");
        t.begin = off[0].get<uint64_t>();
        t.end = off[1].get<uint64_t>();
        if (t.end < t.begin) fail("tensor '" + name + "' ends before it begins");
        if (t.end - t.begin != bytes)
            fail("tensor '" + name + "' spans " + std::to_string(t.end - t.begin) + " bytes but its dtype " +
                 dtype_name(t.dtype) + " and shape " + shape_string(t.shape) + " need " + std::to_string(bytes));
        tensors.push_back(t);
    }
    std::vector<const TensorInfo*> order;
    for (const auto& t : tensors) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    uint64_t expect = 0;
    for (const TensorInfo* t : order) {
        if (t->begin != expect)
            fail("tensor '" + t->name + "' starts at byte " + std::to_string(t->begin) + " of the data section, not " +
                 std::to_string(expect) + " (tensors must tile the data without gaps or overlaps)");
        expect = t->end;
    }
    if (expect != data_size)
        fail("the tensors cover " + std::to_string(expect) + " bytes but the data section holds " +
             std::to_string(data_size) + " (truncated or padded file)");
}

Reader::Reader(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
    struct stat st;
    if (::fstat(fd_, &st) != 0) throw std::runtime_error(path + ": cannot stat: " + std::strerror(errno));
    const uint64_t size = uint64_t(st.st_size);
    unsigned char len[8];
    if (size < 8 || ::pread(fd_, len, 8, 0) != 8)
        throw std::runtime_error(path + ": too short for a safetensors header (" + std::to_string(size) + " bytes)");
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
    if (n > kMaxHeader) throw std::runtime_error(path + ": header length " + std::to_string(n) + " exceeds 100 MB");
    if (n > size - 8)
        throw std::runtime_error(path + ": header length " + std::to_string(n) + " runs past the end of the file (" +
                                 std::to_string(size) + " bytes)");
    std::string text(n, '\0');
    if (n > 0 && ::pread(fd_, text.data(), n, 8) != ssize_t(n))
        throw std::runtime_error(path + ": cannot read the header: " + std::strerror(errno));
    data_start_ = 8 + n;
    parse_header(text, size - data_start_, path, tensors_, metadata_);
    for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

Reader::~Reader() {
    if (fd_ >= 0) ::close(fd_);
}

bool Reader::has(const std::string& name) const { return index_.count(name) != 0; }

const TensorInfo& Reader::info(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw std::runtime_error(path_ + ": no tensor named '" + name + "'");
    return tensors_[it->second];
}

void Reader::read(const std::string& name, DType dtype, const std::vector<int64_t>& shape, void* out) const {
    const TensorInfo& t = info(name);
    if (t.dtype != dtype)
        throw std::runtime_error(path_ + ": tensor '" + name + "' is " + dtype_name(t.dtype) + ", expected " +
                                 dtype_name(dtype));
    if (t.shape != shape)
        throw std::runtime_error(path_ + ": tensor '" + name + "' has shape " + shape_string(t.shape) + ", expected " +
                                 shape_string(shape));
    char* p = static_cast<char*>(out);
    uint64_t pos = data_start_ + t.begin, left = t.end - t.begin;
    while (left > 0) {
        ssize_t n = ::pread(fd_, p, left > (1u << 30) ? (1u << 30) : size_t(left), off_t(pos));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            throw std::runtime_error(path_ + ": cannot read tensor '" + name +
                                     "': " + (n == 0 ? std::string("unexpected end of file") : std::strerror(errno)));
        p += n;
        pos += uint64_t(n);
        left -= uint64_t(n);
    }
}

}  // namespace llama::safetensors
