// Planted bug: a kernel that calls grid.sync() launched with <<<>>> instead of
// cudaLaunchCooperativeKernel (only a cooperative launch keeps every block
// resident, so elsewhere grid.sync() may hang). Built with -DPLANTED_BUG the
// emulator must stop the kernel with a message; the twin runs clean.
#include <cooperative_groups.h>
#include <cstdio>
#include "kernels/cuda_check.h"

namespace cg = cooperative_groups;

__global__ void shift_across_blocks(const int* in, int* tmp, int* out, int n) {
    cg::grid_group grid = cg::this_grid();
    int r = int(grid.thread_rank());
    tmp[r] = in[r] + 1;
    grid.sync();
    out[r] = tmp[(r + 1) % n];
}

int main() {
    const int blocks = 3, threads = 32, n = blocks * threads;
    int h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = i * 5 - 40;
    int *d_in, *d_tmp, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_tmp, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    int count = n;
#ifdef PLANTED_BUG
    shift_across_blocks<<<blocks, threads>>>(d_in, d_tmp, d_out, count);
    CUDA_CHECK_LAUNCH("shift_across_blocks");
#else
    void* args[] = {&d_in, &d_tmp, &d_out, &count};
    CUDA_CHECK(cudaLaunchCooperativeKernel(shift_across_blocks, blocks, threads, args, 0, 0));
#endif
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; ++i)
        if (r[i] != h[(i + 1) % n] + 1) bad = 1;
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_tmp));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
