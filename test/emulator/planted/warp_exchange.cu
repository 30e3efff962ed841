// Planted bug: lanes of a warp exchange values through shared memory without the
// __syncwarp() between the write and the read. Built with -DPLANTED_BUG the race
// checker must report a data race; the twin runs clean.
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void rotate_within_warp(const int* in, int* out) {
    __shared__ int slots[64];
    int t = threadIdx.x, lane = t % 32, base = t - lane;
    slots[t] = in[t] * 3;
#ifndef PLANTED_BUG
    __syncwarp();
#endif
    out[t] = slots[base + (lane + 1) % 32];
}

int main() {
    const int n = 64;
    int h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = i + 1;
    int *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    rotate_within_warp<<<1, n>>>(d_in, d_out);
    CUDA_CHECK_LAUNCH("rotate_within_warp");
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int t = 0; t < n; ++t) {
        int lane = t % 32, base = t - lane;
        if (r[t] != h[base + (lane + 1) % 32] * 3) bad = 1;
    }
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
