// Planted bug: a kernel stages n floats in dynamic shared memory but the launch
// asks for n - 1 of them. Built with -DPLANTED_BUG the memory checker must report
// the overflow of the block's dynamic shared memory; the twin runs clean.
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void reverse(const float* in, float* out, int n) {
    extern __shared__ float stage[];
    for (int i = threadIdx.x; i < n; i += blockDim.x) stage[i] = in[i];
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = stage[n - 1 - i];
}

int main() {
    const int n = 256;
    float h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = float(3 * i);
    float *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
#ifdef PLANTED_BUG
    size_t smem = (n - 1) * sizeof(float);
#else
    size_t smem = n * sizeof(float);
#endif
    reverse<<<1, 64, smem>>>(d_in, d_out, n);
    CUDA_CHECK_LAUNCH("reverse");
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; ++i)
        if (r[i] != h[n - 1 - i]) bad = 1;
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
