// Planted bug: a block reduction missing the __syncthreads() between filling
// shared memory and the first step of the tree. Built with -DPLANTED_BUG the race
// checker (scripts/emu-run --tsan) must report a data race; the twin runs clean.
#include <cstdio>
#include "kernels/cuda_check.h"

constexpr int kBlock = 128;

__global__ void block_sum(const float* in, float* out) {
    __shared__ float partial[kBlock];
    int t = threadIdx.x;
    partial[t] = in[blockIdx.x * kBlock + t];
#ifndef PLANTED_BUG
    __syncthreads();
#endif
    for (int s = kBlock / 2; s > 0; s >>= 1) {
        if (t < s) partial[t] += partial[t + s];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = partial[0];
}

int main() {
    const int blocks = 4, n = blocks * kBlock;
    float h[n], sums[blocks];
    for (int i = 0; i < n; ++i) h[i] = float(i % 10);
    float *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(sums)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    block_sum<<<blocks, kBlock>>>(d_in, d_out);
    CUDA_CHECK_LAUNCH("block_sum");
    CUDA_CHECK(cudaMemcpy(sums, d_out, sizeof(sums), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int b = 0; b < blocks; ++b) {
        float want = 0;
        for (int i = 0; i < kBlock; ++i) want += h[b * kBlock + i];
        if (sums[b] != want) { std::printf("block %d: got %g, want %g\n", b, sums[b], want); bad = 1; }
    }
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
