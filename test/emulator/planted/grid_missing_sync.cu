// Planted bug: the blocks of a cooperative launch exchange values through
// global memory without the grid.sync() between the write and the read. Built
// with -DPLANTED_BUG the race checker must report a data race; the twin runs clean.
#include <cooperative_groups.h>
#include <cstdio>
#include "kernels/cuda_check.h"

namespace cg = cooperative_groups;

__global__ void rotate_across_blocks(const int* in, int* tmp, int* out, int n) {
    cg::grid_group grid = cg::this_grid();
    int r = int(grid.thread_rank());
    tmp[r] = in[r] * 3;
#ifndef PLANTED_BUG
    grid.sync();
#endif
    out[r] = tmp[(r + 32) % n];
}

int main() {
    const int blocks = 4, threads = 32, n = blocks * threads;
    int h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = i * 7 + 1;
    int *d_in, *d_tmp, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_tmp, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    int count = n;
    void* args[] = {&d_in, &d_tmp, &d_out, &count};
    CUDA_CHECK(cudaLaunchCooperativeKernel(rotate_across_blocks, blocks, threads, args, 0, 0));
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; ++i)
        if (r[i] != h[(i + 32) % n] * 3) bad = 1;
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_tmp));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
