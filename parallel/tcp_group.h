// The ranks of a job joined over TCP, for launches without MPI (Slurm's `srun`
// alone, or any launcher that sets the rank and world size). Rank 0 listens;
// every other rank connects to it, so the group is a star and each collective
// goes through rank 0. That is slow for big buffers, but the GPU builds send
// only a few numbers this way (the NCCL id, losses, the stop flag): their
// gradients travel through NCCL. The CPU build also sends its gradients.
//
// How the others find rank 0 (the rendezvous):
//   tcp:HOST:PORT   rank 0 listens on PORT; the others connect to HOST:PORT
//   file:PATH       rank 0 listens on a free port and writes "HOST PORT JOB" to
//                   PATH (on a file system all nodes share); the others wait
//                   for the file, then connect
// Every wait is bounded: joining by `join_timeout_s`, each collective by
// `op_timeout_s`; a peer that exits closes its socket, and the ranks waiting
// on it fail at once. Failures throw std::runtime_error saying which rank and
// what happened.
#ifndef PARALLEL_TCP_GROUP_H
#define PARALLEL_TCP_GROUP_H

#include <cstddef>
#include <string>
#include <vector>

namespace llama {

struct RendezvousSpec {
    enum class Kind { Tcp, File } kind = Kind::Tcp;
    std::string host;  // tcp: rank 0's host name or address
    int port = 0;      // tcp: its port
    std::string path;  // file: where rank 0 publishes its address
    // Parses "tcp:HOST:PORT" or "file:PATH"; throws std::invalid_argument saying what is wrong.
    static RendezvousSpec parse(const std::string& text);
};

class TcpGroup {
public:
    // Joins the group as `rank` of `world`. `job` names the job (e.g. Slurm's
    // job and step ids): a peer or an address file of another job is ignored.
    TcpGroup(const RendezvousSpec& spec, int rank, int world, const std::string& job, double join_timeout_s,
             double op_timeout_s = 1800);
    ~TcpGroup();
    TcpGroup(const TcpGroup&) = delete;
    TcpGroup& operator=(const TcpGroup&) = delete;

    int rank() const { return rank_; }
    int world() const { return world_; }

    // Rank 0's bytes to every rank.
    void broadcast(void* data, std::size_t bytes);
    // Sums over the ranks, in place, added in rank order on rank 0: every rank gets the same bits.
    void allreduce_sum(double* values, std::size_t n);
    void allreduce_sum(float* values, std::size_t n);
    void allreduce_max(int* values, std::size_t n);
    // `padded` holds world x `block` floats; rank r's block [r*block, (r+1)*block) goes to every rank.
    void all_gather(float* padded, std::size_t block);
    void barrier();

private:
    void join(const RendezvousSpec& spec, const std::string& job, double join_timeout_s);
    void close_all();
    void send_to(int fd, int peer, const void* data, std::size_t bytes);
    void recv_from(int fd, int peer, void* data, std::size_t bytes);
    template <class T, class Op>
    void allreduce(T* values, std::size_t n, Op op);

    int rank_ = 0, world_ = 1;
    double op_timeout_s_ = 1800;
    int listen_fd_ = -1;
    int root_fd_ = -1;          // on ranks > 0: the connection to rank 0
    std::vector<int> peer_fd_;  // on rank 0: the connection to each rank (index 0 unused)
    std::string published_;     // on rank 0: the address file it wrote (removed once all joined)
};

// Listens on `port` (0: any free port) on every interface; returns the socket
// and sets bound_port. Throws std::runtime_error saying why it cannot.
int tcp_listen(int port, int backlog, int& bound_port);

}  // namespace llama

#endif  // PARALLEL_TCP_GROUP_H
