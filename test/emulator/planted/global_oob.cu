// Planted bug: a kernel's bounds test uses <= and reads one element past the end
// of a cudaMalloc buffer. Built with -DPLANTED_BUG the memory checker must report
// a heap-buffer-overflow at the kernel's line; the twin runs clean.
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void shift_left(const float* in, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
#ifdef PLANTED_BUG
    if (i < n) out[i] = in[i + 1];  // i = n - 1 reads in[n]
#else
    if (i < n) out[i] = i + 1 < n ? in[i + 1] : 0.0f;
#endif
}

int main() {
    const int n = 100;
    float h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = float(i);
    float *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    shift_left<<<1, 128>>>(d_in, d_out, n);
    CUDA_CHECK_LAUNCH("shift_left");
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n - 1; ++i)
        if (r[i] != h[i + 1]) bad = 1;
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
