// Planted bug: a stencil reads its shared-memory neighbour one past the end of
// the array. Built with -DPLANTED_BUG the memory checker (scripts/emu-run --asan)
// must report the out-of-bounds index; the twin runs clean.
#include <cstdio>
#include "kernels/cuda_check.h"

constexpr int kTile = 64;

__global__ void forward_difference(const float* in, float* out) {
    __shared__ float tile[kTile];
    int t = threadIdx.x;
    tile[t] = in[blockIdx.x * kTile + t];
    __syncthreads();
#ifdef PLANTED_BUG
    float next = tile[t + 1];  // thread kTile-1 reads tile[kTile]
#else
    float next = t + 1 < kTile ? tile[t + 1] : 0.0f;
#endif
    out[blockIdx.x * kTile + t] = next - tile[t];
}

int main() {
    const int blocks = 2, n = blocks * kTile;
    float h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = float(i * i);
    float *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    forward_difference<<<blocks, kTile>>>(d_in, d_out);
    CUDA_CHECK_LAUNCH("forward_difference");
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; ++i) {
        int t = i % kTile;
        float want = (t + 1 < kTile ? h[i + 1] : 0.0f) - h[i];
        if (r[i] != want) bad = 1;
    }
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
