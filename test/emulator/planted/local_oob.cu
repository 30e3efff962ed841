// Planted bug: a per-thread local array indexed one past its end. Built with
// -DPLANTED_BUG the memory checker must report the out-of-bounds index; the twin
// runs clean.
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void moving_sum(const float* in, float* out, int n, int width) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float window[4];
    for (int k = 0; k < 4; ++k) window[k] = in[(i + k) % n];
    float s = 0.0f;
#ifdef PLANTED_BUG
    for (int k = 0; k <= width; ++k) s += window[k];  // width is 4
#else
    for (int k = 0; k < width; ++k) s += window[k];
#endif
    out[i] = s;
}

int main() {
    const int n = 64;
    float h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = float(i % 7);
    float *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    moving_sum<<<2, 32>>>(d_in, d_out, n, 4);
    CUDA_CHECK_LAUNCH("moving_sum");
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; ++i) {
        float want = 0.0f;
        for (int k = 0; k < 4; ++k) want += h[(i + k) % n];
        if (r[i] != want) bad = 1;
    }
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
