// The processes of a data-parallel run, as the trainer sees them: this rank,
// the world size, the rank within the node (which GPU to use), and the few
// host-side collectives the loop needs (losses, the stop flag, a barrier).
// Gradients travel elsewhere: through NCCL in the GPU builds (gpu/model.cuh),
// through these collectives in the CPU build.
//
// Two ways to join:
// - MPI, in builds with LLAMA_MPI (the Makefile defines it where mpicxx is
//   found): a process started by a launcher joins MPI_COMM_WORLD, so
//   `mpirun -np N` and Slurm's `srun` (with PMIx or PMI2) both work.
// - A TCP rendezvous on rank 0 (parallel/tcp_group.h), in any build, when
//   `rendezvous` is given (tcp:HOST:PORT or file:PATH): the rank and world size
//   come from the launcher's environment (SLURM_PROCID/SLURM_NTASKS, or
//   OMPI_COMM_WORLD_*, PMI_*, RANK/WORLD_SIZE), so `srun` without MPI works.
// A process started alone, with neither, is rank 0 of 1; a build without MPI
// refuses a launch that asks for more ranks but gives no rendezvous.
#ifndef PARALLEL_COMM_H
#define PARALLEL_COMM_H

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "parallel/tcp_group.h"

#ifdef LLAMA_MPI
#include <mpi.h>
#endif

namespace llama {

class Comm {
public:
    int rank = 0, world = 1, local_rank = 0;

    // The rank, world size and rank within the node that the launcher put in
    // the environment; false if it set none.
    static bool launcher_ranks(int& rank, int& world, int& local_rank) {
        static const char* const kNames[][3] = {
            {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
            {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
            {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
            {"RANK", "WORLD_SIZE", "LOCAL_RANK"}};
        for (const auto& names : kNames) {
            const char* r = std::getenv(names[0]);
            const char* w = std::getenv(names[1]);
            if (!r || !w) continue;
            const char* l = std::getenv(names[2]);
            rank = std::atoi(r);
            world = std::atoi(w);
            local_rank = l ? std::atoi(l) : 0;
            return true;
        }
        return false;
    }
    // Whether a launcher started this process (mpirun, or srun's PMI/PMIx).
    static bool launched() {
        int rank, world, local_rank;
        return launcher_ranks(rank, world, local_rank) || std::getenv("PMIX_RANK");
    }

    // Joins the world: over TCP when `rendezvous` is given, else through MPI
    // (MPI_Init) when a launcher started this process; a process started alone
    // stays rank 0 of 1 without touching MPI (whose start-up would need a
    // runtime directory and shared memory for nothing). Failures print a
    // message naming the flag and exit.
    static Comm init(int* argc, char*** argv, const std::string& rendezvous = "", double timeout_s = 300) {
        Comm c;
        if (!rendezvous.empty()) {
            if (!launcher_ranks(c.rank, c.world, c.local_rank) || c.world < 1 || c.rank < 0 || c.rank >= c.world)
                fail(
                    "--rendezvous needs this process's rank and the world size from its launcher: SLURM_PROCID "
                    "and SLURM_NTASKS (srun), or RANK and WORLD_SIZE");
            std::string job;
            for (const char* var : {"SLURM_JOB_ID", "SLURM_STEP_ID"})
                if (const char* v = std::getenv(var)) job += std::string(v) + ".";
            try {
                c.tcp_ = std::make_shared<TcpGroup>(RendezvousSpec::parse(rendezvous), c.rank, c.world, job, timeout_s);
            } catch (const std::invalid_argument& e) {
                fail(std::string("--rendezvous ") + e.what());
            } catch (const std::exception& e) {
                fail("rank " + std::to_string(c.rank) + ": " + e.what());
            }
            return c;
        }
#ifdef LLAMA_MPI
        if (!launched()) return c;
        c.mpi_ = true;
        MPI_Init(argc, argv);
        // A failing collective ends the job with a message, never a hang on a lost peer.
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
        MPI_Comm_rank(MPI_COMM_WORLD, &c.rank);
        MPI_Comm_size(MPI_COMM_WORLD, &c.world);
        MPI_Comm node;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c.rank, MPI_INFO_NULL, &node);
        MPI_Comm_rank(node, &c.local_rank);
        MPI_Comm_free(&node);
#else
        (void)argc;
        (void)argv;
        int rank = 0, world = 1, local = 0;
        if (launcher_ranks(rank, world, local) && world > 1)
            fail("the launcher asks for " + std::to_string(world) +
                 " ranks, but this build has no MPI: give "
                 "--rendezvous tcp:HOST:PORT or file:PATH (or install libopenmpi-dev and rebuild)");
#endif
        return c;
    }

    bool is_root() const { return rank == 0; }

    // Sum over ranks, in place, the same bits on every rank.
    void allreduce_sum(double* values, int n) const {
        if (tcp_) return tcp([&] { tcp_->allreduce_sum(values, size_t(n)); });
#ifdef LLAMA_MPI
        if (world > 1) MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
        (void)values;
        (void)n;
#endif
    }
    double sum(double v) const {
        allreduce_sum(&v, 1);
        return v;
    }
    int max(int v) const {
        if (tcp_) {
            tcp([&] { tcp_->allreduce_max(&v, 1); });
            return v;
        }
#ifdef LLAMA_MPI
        if (world > 1) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
        return v;
    }
    // Sum of float arrays over ranks, in place (the CPU build's gradients).
    void allreduce_sum(float* values, long long n) const {
        if (tcp_) return tcp([&] { tcp_->allreduce_sum(values, size_t(n)); });
#ifdef LLAMA_MPI
        const long long chunk = 1 << 30;  // MPI counts are int
        for (long long i = 0; world > 1 && i < n; i += chunk)
            MPI_Allreduce(MPI_IN_PLACE, values + i, int(std::min(chunk, n - i)), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
#else
        (void)values;
        (void)n;
#endif
    }
    // Over a buffer of `world` blocks of `block` floats (ZeRO-1's host path,
    // parallel/zero1.h): reduce_scatter_sum leaves in this rank's block (block
    // number `rank`) the sum over ranks of that block; all_gather copies every
    // rank's block to all.
    void reduce_scatter_sum(float* padded, long long block) const {
        if (tcp_)
            return tcp([&] { tcp_->allreduce_sum(padded, size_t(block) * size_t(world)); });  // the sum everywhere
#ifdef LLAMA_MPI
        if (world > 1) MPI_Reduce_scatter_block(MPI_IN_PLACE, padded, int(block), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        // MPI puts the result at the front of the buffer; move it to this rank's block.
        if (world > 1 && rank > 0) std::copy(padded, padded + block, padded + block * rank);
#else
        (void)padded;
        (void)block;
#endif
    }
    void all_gather(float* padded, long long block) const {
        if (tcp_) return tcp([&] { tcp_->all_gather(padded, size_t(block)); });
#ifdef LLAMA_MPI
        if (world > 1) MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, padded, int(block), MPI_FLOAT, MPI_COMM_WORLD);
#else
        (void)padded;
        (void)block;
#endif
    }
    // Rank 0's bytes to every rank (the NCCL unique id).
    void broadcast(void* data, int bytes) const {
        if (tcp_) return tcp([&] { tcp_->broadcast(data, size_t(bytes)); });
#ifdef LLAMA_MPI
        if (world > 1) MPI_Bcast(data, bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
#else
        (void)data;
        (void)bytes;
#endif
    }
    void barrier() const {
        if (tcp_) return tcp([&] { tcp_->barrier(); });
#ifdef LLAMA_MPI
        if (world > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
    }
    // Ends every rank of the job (a lone failing rank must not leave the others waiting).
    [[noreturn]] void abort(int code) const {
#ifdef LLAMA_MPI
        if (mpi_ && world > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
        std::exit(code);
    }
    void finalize() const {
#ifdef LLAMA_MPI
        if (mpi_) MPI_Finalize();
#endif
    }

private:
    [[noreturn]] static void fail(const std::string& msg) {
        std::fprintf(stderr, "train_llama: %s\n", msg.c_str());
        std::exit(1);
    }
    // A TCP collective that fails (a peer died or timed out) ends this rank;
    // its closed sockets then end the others.
    template <class F>
    void tcp(F&& f) const {
        try {
            f();
        } catch (const std::exception& e) {
            fail("rank " + std::to_string(rank) + ": " + e.what());
        }
    }

    bool mpi_ = false;               // MPI_Init was called
    std::shared_ptr<TcpGroup> tcp_;  // joined over TCP instead
};

}  // namespace llama

#endif  // PARALLEL_COMM_H
