// Small POSIX file helpers for durable writes: every failure throws
// std::runtime_error naming the file and the system's reason (for example
// "No space left on device"), and written bytes are checksummed with XXH3-64
// on the way out.
#ifndef LIFECYCLE_FILE_IO_H
#define LIFECYCLE_FILE_IO_H

#include <cstdint>
#include <string>

namespace llama::fileio {

class ChecksummedWriter {
public:
    explicit ChecksummedWriter(const std::string& path);  // creates or truncates
    ~ChecksummedWriter();
    ChecksummedWriter(const ChecksummedWriter&) = delete;
    ChecksummedWriter& operator=(const ChecksummedWriter&) = delete;
    void write(const void* data, uint64_t bytes);
    // fsync and close; returns the checksum of everything written.
    uint64_t finish();
    uint64_t bytes_written() const { return written_; }

private:
    std::string path_;
    int fd_ = -1;
    void* state_ = nullptr;  // XXH3 streaming state
    uint64_t written_ = 0;
};

// Writes `text` durably (fsync) and returns its checksum.
uint64_t write_file(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);
// XXH3-64 of a whole file, streamed.
uint64_t checksum_file(const std::string& path, uint64_t* size = nullptr);
uint64_t checksum_bytes(const void* data, uint64_t bytes);
// fsync a directory so that renames and creations inside it are durable.
void fsync_dir(const std::string& path);
std::string hex64(uint64_t v);

}  // namespace llama::fileio

#endif  // LIFECYCLE_FILE_IO_H
