// Planted bug: the grid is sized with n / block instead of rounding up, so the
// last elements of the output are never written. cudaMalloc memory starts as
// NaN garbage under the emulator, so the check fails instead of passing by luck.
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void scale(const float* in, float* out, int n, float a) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a * in[i];
}

int main() {
    const int n = 1000, block = 128;
    float h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = float(i) - 500.0f;
    float *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
#ifdef PLANTED_BUG
    int blocks = n / block;
#else
    int blocks = (n + block - 1) / block;
#endif
    scale<<<blocks, block>>>(d_in, d_out, n, 2.0f);
    CUDA_CHECK_LAUNCH("scale");
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; ++i)
        if (r[i] != 2.0f * h[i]) { if (!bad) std::printf("out[%d] = %g, want %g\n", i, r[i], 2.0f * h[i]); bad = 1; }
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
