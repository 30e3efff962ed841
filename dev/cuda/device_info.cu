// Prints what the GPU offers that the kernels care about (SMs, memory, shared
// memory limits, clocks), and runs one tiny kernel to prove the toolchain,
// driver and device work together. First step of the GPU check.
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void iota_kernel(int* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = i;
}

int main() {
    int count = 0;
    CUDA_CHECK(cudaGetDeviceCount(&count));
    for (int d = 0; d < count; ++d) {
        cudaDeviceProp p;
        CUDA_CHECK(cudaGetDeviceProperties(&p, d));
        std::printf(
            "device %d: %s, sm_%d%d, %d SMs, %.1f GiB, smem/block opt-in %zu KiB, "
            "smem/SM %zu KiB, L2 %d MiB\n",
            d, p.name, p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem / 1073741824.0,
            p.sharedMemPerBlockOptin / 1024, p.sharedMemPerMultiprocessor / 1024, p.l2CacheSize >> 20);
    }
    const int n = 1000;
    int* d_out = nullptr;
    CUDA_CHECK(cudaMalloc(&d_out, n * sizeof(int)));
    iota_kernel<<<(n + 255) / 256, 256>>>(d_out, n);
    CUDA_CHECK_LAUNCH("iota_kernel");
    int h_out[n];
    CUDA_CHECK(cudaMemcpy(h_out, d_out, sizeof(h_out), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaFree(d_out));
    for (int i = 0; i < n; ++i) {
        if (h_out[i] != i) {
            std::printf("iota check FAILED at %d\n", i);
            return 1;
        }
    }
    std::printf("iota kernel: ok\n");
    return 0;
}
