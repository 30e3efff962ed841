// Planted bug: an assert() in a kernel fails for one thread. The emulator must
// stop and name the block and thread, as CUDA's device-side assert does.
#include <cassert>
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void checked_index(const int* idx, int* out, int n, int limit) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    assert(idx[i] >= 0 && idx[i] < limit);
    out[i] = idx[i] * 2;
}

int main() {
    const int n = 256, limit = 100;
    int h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = i % limit;
#ifdef PLANTED_BUG
    h[200] = limit;  // block 1, thread 72
#endif
    int *d_idx, *d_out;
    CUDA_CHECK(cudaMalloc(&d_idx, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_idx, h, sizeof(h), cudaMemcpyHostToDevice));
    checked_index<<<2, 128>>>(d_idx, d_out, n, limit);
    CUDA_CHECK_LAUNCH("checked_index");
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; ++i)
        if (r[i] != h[i] * 2) bad = 1;
    CUDA_CHECK(cudaFree(d_idx));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
