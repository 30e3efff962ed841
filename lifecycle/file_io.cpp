#include "lifecycle/file_io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

namespace llama::fileio {

static std::runtime_error sys_error(const std::string& path, const char* what) {
    return std::runtime_error(path + ": " + what + ": " + std::strerror(errno));
}

ChecksummedWriter::ChecksummedWriter(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw sys_error(path, "cannot create");
    XXH3_state_t* s = XXH3_createState();
    XXH3_64bits_reset(s);
    state_ = s;
}

ChecksummedWriter::~ChecksummedWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (state_) XXH3_freeState(static_cast<XXH3_state_t*>(state_));
}

void ChecksummedWriter::write(const void* data, uint64_t bytes) {
    XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, bytes);
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
        size_t chunk = bytes > (1u << 30) ? (1u << 30) : size_t(bytes);
        ssize_t n = ::write(fd_, p, chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw sys_error(path_, "write failed");
        }
        if (n == 0) {
            errno = ENOSPC;
            throw sys_error(path_, "write failed");
        }
        p += n;
        bytes -= uint64_t(n);
        written_ += uint64_t(n);
    }
}

uint64_t ChecksummedWriter::finish() {
    if (::fsync(fd_) != 0) throw sys_error(path_, "fsync failed");
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw sys_error(path_, "close failed");
    return XXH3_64bits_digest(static_cast<XXH3_state_t*>(state_));
}

uint64_t write_file(const std::string& path, const std::string& text) {
    ChecksummedWriter w(path);
    w.write(text.data(), text.size());
    return w.finish();
}

std::string read_file(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw sys_error(path, "cannot open");
    std::string s;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    bool bad = std::ferror(f);
    std::fclose(f);
    if (bad) throw sys_error(path, "read failed");
    return s;
}

uint64_t checksum_file(const std::string& path, uint64_t* size) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw sys_error(path, "cannot open");
    XXH3_state_t* s = XXH3_createState();
    XXH3_64bits_reset(s);
    std::vector<char> buf(1 << 20);
    uint64_t total = 0;
    for (;;) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd);
            XXH3_freeState(s);
            errno = e;
            throw sys_error(path, "read failed");
        }
        if (n == 0) break;
        XXH3_64bits_update(s, buf.data(), size_t(n));
        total += uint64_t(n);
    }
    ::close(fd);
    uint64_t h = XXH3_64bits_digest(s);
    XXH3_freeState(s);
    if (size) *size = total;
    return h;
}

uint64_t checksum_bytes(const void* data, uint64_t bytes) { return XXH3_64bits(data, bytes); }

void fsync_dir(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw sys_error(path, "cannot open directory");
    int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) throw sys_error(path, "fsync of directory failed");
}

std::string hex64(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
    return buf;
}

}  // namespace llama::fileio
