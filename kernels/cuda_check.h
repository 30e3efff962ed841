// Error checking for every CUDA runtime call and kernel launch: a failure prints
// the file, line, the call and the runtime's message, then exits non-zero.
#ifndef KERNELS_CUDA_CHECK_H
#define KERNELS_CUDA_CHECK_H

#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

// Where a bounded mbarrier wait gave up (kernels/ptx.h, builds with
// -DLLAMA_MBARRIER_TIMEOUT_NS): the kernel writes it to mapped host memory
// before it traps, since the GPU's memory is out of reach once it has.
struct MbarrierTimeoutReport {
    int line, block_x, block_y, block_z, thread;
    char function[64];
};
inline MbarrierTimeoutReport*& mbarrier_timeout_report() {  // null until a launcher sets it up
    static MbarrierTimeoutReport* report = nullptr;
    return report;
}

inline void cuda_check_impl(cudaError_t err, const char* what, const char* file, int line) {
    if (err != cudaSuccess) {
        std::fflush(stdout);  // what the program printed before comes first: the error is the last thing
        const MbarrierTimeoutReport* r = mbarrier_timeout_report();
        if (r && r->line > 0)
            std::fprintf(stderr, "mbarrier wait timed out in %.64s (line %d), block (%d,%d,%d) thread %d\n",
                         r->function, r->line, r->block_x, r->block_y, r->block_z, r->thread);
        std::fprintf(stderr, "CUDA error at %s:%d: %s failed: %s (%s)\n", file, line, what, cudaGetErrorString(err),
                     cudaGetErrorName(err));
        std::exit(EXIT_FAILURE);
    }
}

// Wrap every runtime call: CUDA_CHECK(cudaMalloc(&p, n));
#define CUDA_CHECK(call) cuda_check_impl((call), #call, __FILE__, __LINE__)
// After every launch: kernel<<<g, b>>>(...); CUDA_CHECK_LAUNCH("kernel");
#define CUDA_CHECK_LAUNCH(name) cuda_check_impl(cudaGetLastError(), "launch of " name, __FILE__, __LINE__)

#endif  // KERNELS_CUDA_CHECK_H
