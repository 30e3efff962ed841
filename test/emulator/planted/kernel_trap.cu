// Planted bug: a kernel calls __trap() for a bad index. The emulator must stop
// the program and name the block and thread that trapped.
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void checked_gather(const int* idx, const float* table, float* out, int n, int limit) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (idx[i] < 0 || idx[i] >= limit) __trap();
    out[i] = table[idx[i]] * 2.0f;
}

int main() {
    const int n = 192, limit = 50;
    int h[n];
    float table[limit], r[n];
    for (int i = 0; i < limit; ++i) table[i] = 0.5f * float(i) - 3.0f;
    for (int i = 0; i < n; ++i) h[i] = (i * 7) % limit;
#ifdef PLANTED_BUG
    h[131] = -1;  // block 2, thread 3
#endif
    int* d_idx;
    float *d_table, *d_out;
    CUDA_CHECK(cudaMalloc(&d_idx, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_table, sizeof(table)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_idx, h, sizeof(h), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_table, table, sizeof(table), cudaMemcpyHostToDevice));
    checked_gather<<<3, 64>>>(d_idx, d_table, d_out, n, limit);
    CUDA_CHECK_LAUNCH("checked_gather");
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; ++i)
        if (r[i] != table[h[i]] * 2.0f) bad = 1;
    CUDA_CHECK(cudaFree(d_idx));
    CUDA_CHECK(cudaFree(d_table));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
