// Planted bug: the accumulators of an asynchronous wgmma are stored without
// wgmma.wait_group. On a GPU they are undefined until the wait; the emulator
// runs the product only at the wait, and a thread that exits with a product
// still pending stops the kernel with a message.
#include <cstdint>
#include <cstdio>
#include "kernels/cuda_check.h"
#include "kernels/ptx.h"

// D (64 x 64) = A (64 x 16, every element 1) B (16 x 64, every element 0.5): 8 everywhere.
__global__ void ones_product(float* out) {
    extern __shared__ __align__(128) unsigned short b_tile[];
    for (int i = threadIdx.x; i < 16 * 64; i += blockDim.x) b_tile[i] = 0x3F00;  // bf16 0.5
    __syncthreads();
    const uint32_t ones = 0x3F803F80u;  // two bf16 1.0
    const uint32_t a[4] = {ones, ones, ones, ones};
    float d[32];
    for (int i = 0; i < 32; ++i) d[i] = 0.0f;
    wgmma_fence();
    wgmma_m64n64k16_bf16(d, a, wgmma_desc(b_tile, 1024, 128), false);
    wgmma_commit();
#ifndef PLANTED_BUG
    wgmma_wait<0>();
#endif
    for (int i = 0; i < 32; ++i) out[threadIdx.x * 32 + i] = d[i];
}

int main() {
    const int n = 128 * 32;
    float* d_out;
    CUDA_CHECK(cudaMalloc(&d_out, n * sizeof(float)));
    ones_product<<<1, 128, 16 * 64 * 2>>>(d_out);
    CUDA_CHECK_LAUNCH("ones_product");
    static float r[n];
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; ++i)
        if (r[i] != 8.0f) { if (!bad) std::printf("out[%d] = %g, want 8\n", i, r[i]); bad = 1; }
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
