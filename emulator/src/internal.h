// Declarations shared by the emulator's own sources (not for kernel code).
#ifndef EMU_INTERNAL_H
#define EMU_INTERNAL_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include "emu/types.h"

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

namespace emu {
struct GridSpec {
    dim3 grid, block;
    std::size_t smem;
    bool cooperative = false;  // cudaLaunchCooperativeKernel: every block resident at once
    bool clustered = false;    // thread-block clusters of `cluster` blocks (the grid a multiple of it)
    dim3 cluster{1, 1, 1};
};
// Runs every block of the grid and returns when all have finished.
void run_grid(const GridSpec& g, const std::function<void()>& body);
// Whether a kernel thread faulted (an illegal memory access) since the last call.
bool take_kernel_fault();
// Queues host-side work (a library call's computation) on a stream.
void enqueue_host_work(cudaStream_t stream, std::function<void()> work);
// The dot products of an m x n matrix product, for the cuBLAS and cuBLASLt
// stand-ins: out(i, j, dot) for each (i, j), dot being the sum over p < k of
// opa[i * k + p] * opb[j * k + p] in that order (op(A) copied row by row and
// op(B) column by column, so each is contiguous). Large products split their
// columns over the emulator's OS threads, so out runs for different columns at once.
void packed_products(int64_t m, int64_t n, int64_t k, const double* opa, const double* opb,
                     const std::function<void(int64_t i, int64_t j, double dot)>& out);
}  // namespace emu

#endif  // EMU_INTERNAL_H
