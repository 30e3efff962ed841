// The processes of a data-parallel run, as the trainer sees them: this rank,
// the world size, the rank within the node (which GPU to use), and the few
// host-side collectives the loop needs (losses, the stop flag, a barrier).
// Gradients travel elsewhere: through NCCL in the GPU builds (gpu/model.cuh),
// through MPI_Allreduce in the CPU build.
//
// Built with LLAMA_MPI (the Makefile defines it where mpicxx is found), a
// process started by a launcher joins MPI_COMM_WORLD, so `mpirun -np N` and
// Slurm's `srun` (with PMIx or PMI2) both work; the local rank comes from OMPI_COMM_WORLD_LOCAL_RANK,
// SLURM_LOCALID or MPI_COMM_TYPE_SHARED. Built without MPI, the process is
// alone, and a launch that asks for more ranks is refused.
#ifndef PARALLEL_COMM_H
#define PARALLEL_COMM_H

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#ifdef LLAMA_MPI
#include <mpi.h>
#endif

namespace llama {

// ZeRO-1's split of the flat parameter buffer: the buffer is padded to
// `world` equal shards (of a multiple of 64 elements) and rank r owns elements
// [begin, begin + size);
// owned() is the part inside the real buffer (the last rank's may be short).
struct Shard {
    long long total = 0, padded = 0, size = 0, begin = 0;
    static Shard of(long long total, int rank, int world) {
        Shard s;
        s.total = total;
        s.size = ((total + world - 1) / world + 63) / 64 * 64;  // 256-byte aligned shards
        s.padded = s.size * world;
        s.begin = s.size * rank;
        return s;
    }
    long long end() const { return std::min(begin + size, total); }
    // The part of [offset, offset + n) this rank owns, as [lo, hi) (empty when lo >= hi).
    void clip(long long offset, long long n, long long& lo, long long& hi) const {
        lo = std::max(offset, begin);
        hi = std::min(offset + n, end());
    }
};

class Comm {
public:
    int rank = 0, world = 1, local_rank = 0;

    // Whether a launcher started this process (mpirun, or srun's PMI/PMIx).
    static bool launched() {
        for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID"})
            if (std::getenv(var)) return true;
        return false;
    }

    // Joins the world (MPI_Init) when a launcher started this process; a process
    // started alone stays rank 0 of 1 without touching MPI (whose start-up would
    // need a runtime directory and shared memory for nothing).
    static Comm init(int* argc, char*** argv) {
        Comm c;
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
        for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
            const char* v = std::getenv(var);
            if (v && std::atoi(v) > 1) {
                std::fprintf(stderr, "train_llama: %s=%s asks for %s ranks, but this build has no MPI (install "
                             "libopenmpi-dev and rebuild)\n", var, v, v);
                std::exit(1);
            }
        }
#endif
        return c;
    }

    bool is_root() const { return rank == 0; }

    // Sum over ranks, in place, the same bits on every rank.
    void allreduce_sum(double* values, int n) const {
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
#ifdef LLAMA_MPI
        if (world > 1) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
        return v;
    }
    // Sum of float arrays over ranks, in place (the CPU build's gradients).
    void allreduce_sum(float* values, long long n) const {
#ifdef LLAMA_MPI
        const long long chunk = 1 << 30;  // MPI counts are int
        for (long long i = 0; world > 1 && i < n; i += chunk)
            MPI_Allreduce(MPI_IN_PLACE, values + i, int(std::min(chunk, n - i)), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
#else
        (void)values;
        (void)n;
#endif
    }
    // ZeRO-1 on the host, over a buffer of shard.padded floats: each rank's
    // shard receives the sum over ranks of that shard (reduce-scatter), and
    // every rank's shard is copied to all (all-gather).
    void reduce_scatter_sum(float* padded, const Shard& shard) const {
#ifdef LLAMA_MPI
        if (world > 1)
            MPI_Reduce_scatter_block(MPI_IN_PLACE, padded, int(shard.size), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        // MPI puts the result at the front of the buffer; move it to the shard's place.
        if (world > 1 && shard.begin > 0) std::copy(padded, padded + shard.size, padded + shard.begin);
#else
        (void)padded;
        (void)shard;
#endif
    }
    void all_gather(float* padded, const Shard& shard) const {
#ifdef LLAMA_MPI
        if (world > 1)
            MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, padded, int(shard.size), MPI_FLOAT, MPI_COMM_WORLD);
#else
        (void)padded;
        (void)shard;
#endif
    }
    // Rank 0's bytes to every rank (the NCCL unique id).
    void broadcast(void* data, int bytes) const {
#ifdef LLAMA_MPI
        if (world > 1) MPI_Bcast(data, bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
#else
        (void)data;
        (void)bytes;
#endif
    }
    void barrier() const {
#ifdef LLAMA_MPI
        if (world > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
    }
    // Ends every rank of the job (a lone failing rank must not leave the others waiting).
    [[noreturn]] void abort(int code) const {
#ifdef LLAMA_MPI
        if (world > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
        std::exit(code);
    }
    void finalize() const {
#ifdef LLAMA_MPI
        if (mpi_) MPI_Finalize();
#endif
    }

private:
    bool mpi_ = false;  // MPI_Init was called
};

}  // namespace llama

#endif  // PARALLEL_COMM_H
