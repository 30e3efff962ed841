// Planted bug: a launch asks for 64 KiB of dynamic shared memory without raising
// the kernel's limit with cudaFuncSetAttribute. The runtime refuses the launch;
// the emulator must refuse it the same way (CUDA_CHECK_LAUNCH then reports it).
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void reverse_through_shared(const float* in, float* out, int n) {
    extern __shared__ float buf[];
    for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = in[i];
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = buf[n - 1 - i];
}

int main() {
    const int n = 16384;  // 64 KiB of floats
    const size_t bytes = n * sizeof(float);
    static float h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = float(i);
    float *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, bytes));
    CUDA_CHECK(cudaMalloc(&d_out, bytes));
    CUDA_CHECK(cudaMemcpy(d_in, h, bytes, cudaMemcpyHostToDevice));
#ifndef PLANTED_BUG
    CUDA_CHECK(cudaFuncSetAttribute(reverse_through_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
#endif
    reverse_through_shared<<<1, 256, bytes>>>(d_in, d_out, n);
    CUDA_CHECK_LAUNCH("reverse_through_shared");
    CUDA_CHECK(cudaMemcpy(r, d_out, bytes, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; ++i)
        if (r[i] != h[n - 1 - i]) bad = 1;
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
