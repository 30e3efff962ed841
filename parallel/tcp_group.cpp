#include "parallel/tcp_group.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace llama {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kMagic = 0x4c4c5447;  // "LLTG"
constexpr uint32_t kVersion = 1;

// What a rank sends rank 0 on connecting, and the answer.
struct Hello {
    uint32_t magic, version;
    int32_t rank, world;
    uint64_t job;
};
enum : uint8_t { kAccepted = 0, kOtherJob = 1, kWrongWorld = 2 };

uint64_t hash_job(const std::string& job) {  // FNV-1a
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : job) h = (h ^ c) * 1099511628211ull;
    return h;
}

double seconds_left(Clock::time_point deadline) {
    return std::chrono::duration<double>(deadline - Clock::now()).count();
}

std::string error_text() { return std::strerror(errno); }

// Waits up to `seconds` for `fd` to be ready for `events`; false on timeout.
bool wait_fd(int fd, short events, double seconds) {
    pollfd p{fd, events, 0};
    for (;;) {
        int ms = int(std::clamp(seconds * 1000, 0.0, 2e9));
        int r = poll(&p, 1, ms);
        if (r > 0) return true;
        if (r == 0) return false;
        if (errno != EINTR) throw std::runtime_error("poll: " + error_text());
    }
}

// Reads exactly `bytes`, or returns false (closed, or no data for `seconds`).
bool read_all(int fd, void* data, std::size_t bytes, double seconds, bool* closed = nullptr) {
    auto* p = static_cast<char*>(data);
    while (bytes > 0) {
        if (!wait_fd(fd, POLLIN, seconds)) return false;
        ssize_t n = ::recv(fd, p, bytes, 0);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
            if (closed) *closed = true;
            return false;
        }
        if (n > 0) p += n, bytes -= size_t(n);
    }
    return true;
}

bool write_all(int fd, const void* data, std::size_t bytes, double seconds, bool* closed = nullptr) {
    auto* p = static_cast<const char*>(data);
    while (bytes > 0) {
        if (!wait_fd(fd, POLLOUT, seconds)) return false;
        ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR && errno != EAGAIN) {
            if (closed) *closed = true;
            return false;
        }
        if (n > 0) p += n, bytes -= size_t(n);
    }
    return true;
}

void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// One attempt to connect to host:port within `seconds`; -1 if it failed.
int try_connect(const std::string& host, int port, double seconds) {
    addrinfo hints{}, *found = nullptr;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found) return -1;
    int fd = ::socket(found->ai_family, found->ai_socktype, found->ai_protocol);
    if (fd >= 0) {
        timeval tv{};
        tv.tv_sec = long(std::clamp(seconds, 0.1, 5.0));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds connect()
        if (::connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
            ::close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    return fd;
}

std::string local_host_name() {
    if (const char* h = std::getenv("LLAMA_RENDEZVOUS_HOST")) return h;
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return "127.0.0.1";
    return name;
}

}  // namespace

// Listens on `port` (0: any free port) on every interface; returns the socket and the port.
int tcp_listen(int port, int backlog, int& bound_port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket: " + error_text());
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(uint16_t(port));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, backlog) != 0) {
        std::string why = error_text();
        ::close(fd);
        throw std::runtime_error("rank 0 cannot listen on port " + std::to_string(port) + ": " + why);
    }
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    bound_port = ntohs(addr.sin_port);
    return fd;
}

RendezvousSpec RendezvousSpec::parse(const std::string& text) {
    RendezvousSpec s;
    if (text.rfind("file:", 0) == 0) {
        s.kind = Kind::File;
        s.path = text.substr(5);
        if (s.path.empty()) throw std::invalid_argument("'" + text + "': file: needs a path");
        return s;
    }
    if (text.rfind("tcp:", 0) == 0) {
        const std::string rest = text.substr(4);
        const auto colon = rest.rfind(':');
        if (colon == std::string::npos || colon == 0)
            throw std::invalid_argument("'" + text + "': expected tcp:HOST:PORT");
        s.host = rest.substr(0, colon);
        const std::string port = rest.substr(colon + 1);
        char* end = nullptr;
        long p = std::strtol(port.c_str(), &end, 10);
        if (port.empty() || *end != '\0' || p < 1 || p > 65535)
            throw std::invalid_argument("'" + text + "': the port must be a number from 1 to 65535");
        s.port = int(p);
        return s;
    }
    throw std::invalid_argument("'" + text + "': expected tcp:HOST:PORT or file:PATH");
}

TcpGroup::TcpGroup(const RendezvousSpec& spec, int rank, int world, const std::string& job, double join_timeout_s,
                   double op_timeout_s)
    : rank_(rank), world_(world), op_timeout_s_(op_timeout_s) {
    if (world < 1 || rank < 0 || rank >= world)
        throw std::invalid_argument("rank " + std::to_string(rank) + " of " + std::to_string(world) + " is not a rank");
    try {
        join(spec, job, join_timeout_s);
    } catch (...) {
        close_all();  // no destructor runs after a throwing constructor
        throw;
    }
}

void TcpGroup::join(const RendezvousSpec& spec, const std::string& job, double join_timeout_s) {
    const int rank = rank_, world = world_;
    const uint64_t job_hash = hash_job(job);
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(join_timeout_s));
    const std::string where = spec.kind == RendezvousSpec::Kind::File
                                  ? "file:" + spec.path
                                  : "tcp:" + spec.host + ":" + std::to_string(spec.port);
    if (world == 1) return;

    if (rank == 0) {
        int port = 0;
        listen_fd_ = tcp_listen(spec.kind == RendezvousSpec::Kind::Tcp ? spec.port : 0, world, port);
        if (spec.kind == RendezvousSpec::Kind::File) {  // publish the address atomically
            const std::string tmp = spec.path + ".tmp" + std::to_string(getpid());
            {
                std::ofstream out(tmp);
                out << local_host_name() << ' ' << port << ' ' << job_hash << '\n';
                if (!out.flush()) throw std::runtime_error("rendezvous " + where + ": cannot write " + tmp);
            }
            if (std::rename(tmp.c_str(), spec.path.c_str()) != 0)
                throw std::runtime_error("rendezvous " + where + ": cannot rename " + tmp + ": " + error_text());
            published_ = spec.path;
        }
        peer_fd_.assign(size_t(world), -1);
        int joined = 1;
        while (joined < world) {
            if (!wait_fd(listen_fd_, POLLIN, seconds_left(deadline))) {
                std::string missing;
                for (int r = 1; r < world; ++r)
                    if (peer_fd_[size_t(r)] < 0) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
                throw std::runtime_error("rendezvous " + where + ": after " + std::to_string(int(join_timeout_s)) +
                                         " s only " + std::to_string(joined) + " of " + std::to_string(world) +
                                         " ranks had joined (missing: " + missing + ")");
            }
            int fd = ::accept(listen_fd_, nullptr, nullptr);
            if (fd < 0) continue;
            Hello h{};
            if (!read_all(fd, &h, sizeof h, 5.0) || h.magic != kMagic || h.version != kVersion) {
                ::close(fd);  // not one of ours
                continue;
            }
            uint8_t answer = kAccepted;
            if (h.job != job_hash) answer = kOtherJob;
            else if (h.world != world) answer = kWrongWorld;
            write_all(fd, &answer, 1, 5.0);
            if (answer == kOtherJob) {
                ::close(fd);
                continue;
            }
            if (answer == kWrongWorld) {
                ::close(fd);
                throw std::runtime_error("rendezvous " + where + ": rank " + std::to_string(h.rank) +
                                         " says the world has " + std::to_string(h.world) + " ranks, rank 0 says " +
                                         std::to_string(world));
            }
            if (h.rank < 1 || h.rank >= world || peer_fd_[size_t(h.rank)] >= 0) {
                ::close(fd);
                throw std::runtime_error("rendezvous " + where + ": rank " + std::to_string(h.rank) +
                                         " joined twice or is out of range");
            }
            set_nodelay(fd);
            peer_fd_[size_t(h.rank)] = fd;
            ++joined;
        }
        if (!published_.empty()) std::remove(published_.c_str());
        published_.clear();
        ::close(listen_fd_);  // everyone is here: free the port
        listen_fd_ = -1;
        return;
    }

    // The other ranks: find rank 0 and connect, until the deadline.
    std::string last_problem = "no answer";
    for (;;) {
        std::string host = spec.host;
        int port = spec.port;
        bool have_address = true;
        if (spec.kind == RendezvousSpec::Kind::File) {
            std::ifstream in(spec.path);
            uint64_t file_job = 0;
            have_address = bool(in >> host >> port >> file_job) && file_job == job_hash;
            if (!have_address) last_problem = "no address of this job's rank 0 in " + spec.path;
        }
        if (have_address) {
            int fd = try_connect(host, port, seconds_left(deadline));
            if (fd < 0) {
                last_problem = "cannot connect to rank 0 at " + host + ":" + std::to_string(port);
            } else {
                Hello h{kMagic, kVersion, rank, world, job_hash};
                uint8_t answer = 255;
                if (write_all(fd, &h, sizeof h, 5.0) &&
                    read_all(fd, &answer, 1, std::max(1.0, seconds_left(deadline)))) {
                    if (answer == kAccepted) {
                        set_nodelay(fd);
                        root_fd_ = fd;
                        return;
                    }
                    ::close(fd);
                    if (answer == kWrongWorld)
                        throw std::runtime_error("rendezvous " + where +
                                                 ": rank 0 expects another number of ranks than " +
                                                 std::to_string(world));
                    last_problem = "the process at " + host + ":" + std::to_string(port) + " belongs to another job";
                } else {
                    ::close(fd);
                    last_problem = "no answer from " + host + ":" + std::to_string(port);
                }
            }
        }
        if (seconds_left(deadline) <= 0)
            throw std::runtime_error("rendezvous " + where + ": rank " + std::to_string(rank) + " gave up after " +
                                     std::to_string(int(join_timeout_s)) + " s: " + last_problem);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

TcpGroup::~TcpGroup() { close_all(); }

void TcpGroup::close_all() {
    if (!published_.empty()) std::remove(published_.c_str());
    published_.clear();
    for (int& fd : peer_fd_)
        if (fd >= 0) ::close(fd), fd = -1;
    if (root_fd_ >= 0) ::close(root_fd_), root_fd_ = -1;
    if (listen_fd_ >= 0) ::close(listen_fd_), listen_fd_ = -1;
}

void TcpGroup::send_to(int fd, int peer, const void* data, std::size_t bytes) {
    bool closed = false;
    if (!write_all(fd, data, bytes, op_timeout_s_, &closed))
        throw std::runtime_error(closed ? "rank " + std::to_string(peer) + " closed its connection (it exited?)"
                                        : "rank " + std::to_string(peer) + " took more than " +
                                              std::to_string(int(op_timeout_s_)) + " s to receive");
}

void TcpGroup::recv_from(int fd, int peer, void* data, std::size_t bytes) {
    bool closed = false;
    if (!read_all(fd, data, bytes, op_timeout_s_, &closed))
        throw std::runtime_error(closed ? "rank " + std::to_string(peer) + " closed its connection (it exited?)"
                                        : "waited more than " + std::to_string(int(op_timeout_s_)) + " s for rank " +
                                              std::to_string(peer));
}

void TcpGroup::broadcast(void* data, std::size_t bytes) {
    if (world_ == 1) return;
    if (rank_ == 0)
        for (int r = 1; r < world_; ++r) send_to(peer_fd_[size_t(r)], r, data, bytes);
    else recv_from(root_fd_, 0, data, bytes);
}

template <class T, class Op>
void TcpGroup::allreduce(T* values, std::size_t n, Op op) {
    if (world_ == 1 || n == 0) return;
    if (rank_ != 0) {
        send_to(root_fd_, 0, values, n * sizeof(T));
        recv_from(root_fd_, 0, values, n * sizeof(T));
        return;
    }
    // Each rank's values in rank order, a chunk at a time.
    const std::size_t chunk = std::min<std::size_t>(n, std::size_t(1) << 20);
    std::vector<T> incoming(chunk);
    for (int r = 1; r < world_; ++r)
        for (std::size_t i = 0; i < n; i += chunk) {
            const std::size_t m = std::min(chunk, n - i);
            recv_from(peer_fd_[size_t(r)], r, incoming.data(), m * sizeof(T));
            for (std::size_t j = 0; j < m; ++j) values[i + j] = op(values[i + j], incoming[j]);
        }
    broadcast(values, n * sizeof(T));
}

void TcpGroup::allreduce_sum(double* values, std::size_t n) {
    allreduce(values, n, [](double a, double b) { return a + b; });
}
void TcpGroup::allreduce_sum(float* values, std::size_t n) {
    allreduce(values, n, [](float a, float b) { return a + b; });
}
void TcpGroup::allreduce_max(int* values, std::size_t n) {
    allreduce(values, n, [](int a, int b) { return std::max(a, b); });
}

void TcpGroup::all_gather(float* padded, std::size_t block) {
    if (world_ == 1) return;
    if (rank_ != 0) {
        send_to(root_fd_, 0, padded + std::size_t(rank_) * block, block * sizeof(float));
    } else {
        for (int r = 1; r < world_; ++r)
            recv_from(peer_fd_[size_t(r)], r, padded + std::size_t(r) * block, block * sizeof(float));
    }
    broadcast(padded, std::size_t(world_) * block * sizeof(float));
}

void TcpGroup::barrier() {
    int token = 0;
    allreduce_max(&token, 1);
}

}  // namespace llama
