// Planted bug: half of a warp returns early and the other half then shuffles
// with a full mask, naming lanes that will never arrive. On a GPU this hangs or
// is undefined; the emulator must stop and report a deadlock naming the waiting
// threads. The twin passes the mask of the lanes that remain.
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void half_warp_sum(const int* in, int* out) {
    int lane = threadIdx.x;
    if (lane >= 16) return;
    int v = in[lane];
#ifdef PLANTED_BUG
    const unsigned mask = 0xffffffffu;
#else
    const unsigned mask = 0x0000ffffu;
#endif
    for (int offset = 8; offset > 0; offset /= 2) v += __shfl_down_sync(mask, v, offset, 16);
    if (lane == 0) *out = v;
}

int main() {
    int h[32], r = 0;
    for (int i = 0; i < 32; ++i) h[i] = i + 1;
    int *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(int)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    half_warp_sum<<<1, 32>>>(d_in, d_out);
    CUDA_CHECK_LAUNCH("half_warp_sum");
    CUDA_CHECK(cudaMemcpy(&r, d_out, sizeof(int), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    int bad = r != 16 * 17 / 2;
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
