// Error checking for every CUDA runtime call and kernel launch: a failure prints
// the file, line, the call and the runtime's message, then exits non-zero.
#ifndef KERNELS_CUDA_CHECK_H
#define KERNELS_CUDA_CHECK_H

#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

inline void cuda_check_impl(cudaError_t err, const char* what, const char* file, int line) {
    if (err != cudaSuccess) {
        std::fprintf(stderr, "CUDA error at %s:%d: %s failed: %s (%s)\n", file, line, what,
                     cudaGetErrorString(err), cudaGetErrorName(err));
        std::exit(EXIT_FAILURE);
    }
}

// Wrap every runtime call: CUDA_CHECK(cudaMalloc(&p, n));
#define CUDA_CHECK(call) cuda_check_impl((call), #call, __FILE__, __LINE__)
// After every launch: kernel<<<g, b>>>(...); CUDA_CHECK_LAUNCH("kernel");
#define CUDA_CHECK_LAUNCH(name) cuda_check_impl(cudaGetLastError(), "launch of " name, __FILE__, __LINE__)

#endif  // KERNELS_CUDA_CHECK_H
