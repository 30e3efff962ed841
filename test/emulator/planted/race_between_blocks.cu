// Planted bug: each block writes its results at out[threadIdx.x], the block's
// offset forgotten, so every block writes the same cells. Built with -DPLANTED_BUG
// the race checker (scripts/emu-run --tsan) must report a data race between two
// blocks, also when the blocks run one after the other on one OS thread
// (EMU_THREADS=1); the twin runs clean.
#include <cstdio>
#include "kernels/cuda_check.h"

constexpr int kBlock = 128;

__global__ void scale(const float* in, float* out, float a) {
    int i = blockIdx.x * kBlock + threadIdx.x;
#ifdef PLANTED_BUG
    out[threadIdx.x] = a * in[i];
#else
    out[i] = a * in[i];
#endif
}

int main() {
    const int blocks = 4, n = blocks * kBlock;
    float h[n], got[n];
    for (int i = 0; i < n; ++i) h[i] = float(i % 10) - 4.5f;
    float *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(got)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    scale<<<blocks, kBlock>>>(d_in, d_out, 3.0f);
    CUDA_CHECK_LAUNCH("scale");
    CUDA_CHECK(cudaMemcpy(got, d_out, sizeof(got), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n && bad < 4; ++i)
        if (got[i] != 3.0f * h[i]) { std::printf("out[%d] = %g, want %g\n", i, got[i], 3.0f * h[i]); ++bad; }
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad != 0;
}
