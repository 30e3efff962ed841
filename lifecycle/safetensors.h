// The safetensors container (the format of Hugging Face checkpoints), written
// and read here with 64-bit offsets and streamed I/O, so multi-GB tensors never
// need a second copy in memory.
//
// Layout: an 8-byte little-endian header length N; N bytes of JSON mapping each
// tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into
// the data section), plus an optional "__metadata__" map of strings; then the
// data section. The reader enforces the format's rules: the header is a JSON
// object within the file, every dtype is known, every tensor's byte length is
// its element count times its dtype size, and the tensors tile the data section
// exactly, with no gaps or overlaps, up to the end of the file.
#ifndef LIFECYCLE_SAFETENSORS_H
#define LIFECYCLE_SAFETENSORS_H

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace llama::safetensors {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };
const char* dtype_name(DType d);
size_t dtype_size(DType d);

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;  // byte offsets into the data section
    uint64_t numel() const;
};

// A tensor to write: the bytes are read from `data` while writing.
struct TensorRef {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const void* data;
};

// Writes a file; returns the XXH3-64 checksum of every byte written. Throws
// std::runtime_error naming the file and the system error on any failure
// (including a full disk); the file is fsynced before returning.
uint64_t write_file(const std::string& path, const std::vector<TensorRef>& tensors,
                    const std::map<std::string, std::string>& metadata = {});

class Reader {
public:
    // Opens and validates the header. Throws std::runtime_error naming the file
    // and the rule broken.
    explicit Reader(const std::string& path);
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    bool has(const std::string& name) const;
    const TensorInfo& info(const std::string& name) const;  // throws naming the file and tensor
    // Reads one tensor's bytes into `out` (which must hold info(name) bytes),
    // checking its dtype and shape first.
    void read(const std::string& name, DType dtype, const std::vector<int64_t>& shape, void* out) const;

private:
    std::string path_;
    int fd_ = -1;
    uint64_t data_start_ = 0;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t> index_;
    std::map<std::string, std::string> metadata_;
};

// Parses and validates a header (the JSON text) against a data section of
// `data_size` bytes; used by Reader and by the fuzzer.
void parse_header(const std::string& json_text, uint64_t data_size, const std::string& origin,
                  std::vector<TensorInfo>& tensors, std::map<std::string, std::string>& metadata);

}  // namespace llama::safetensors

#endif  // LIFECYCLE_SAFETENSORS_H
