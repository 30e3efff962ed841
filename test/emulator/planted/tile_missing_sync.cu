// Planted bug: the threads of a 16-thread tile exchange values through shared
// memory without the tile.sync() between the write and the read. Built with
// -DPLANTED_BUG the race checker must report a data race; the twin runs clean.
#include <cooperative_groups.h>
#include <cstdio>
#include "kernels/cuda_check.h"

namespace cg = cooperative_groups;

__global__ void rotate_within_tile(const int* in, int* out) {
    __shared__ int slots[64];
    cg::thread_block_tile<16> tile = cg::tiled_partition<16>(cg::this_thread_block());
    int t = threadIdx.x, r = int(tile.thread_rank()), base = t - r;
    slots[t] = in[t] * 5;
#ifndef PLANTED_BUG
    tile.sync();
#endif
    out[t] = slots[base + (r + 1) % 16];
}

int main() {
    const int n = 64;
    int h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = i * 3 + 2;
    int *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    rotate_within_tile<<<1, n>>>(d_in, d_out);
    CUDA_CHECK_LAUNCH("rotate_within_tile");
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int t = 0; t < n; ++t)
        if (r[t] != h[t - t % 16 + (t % 16 + 1) % 16] * 5) bad = 1;
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
