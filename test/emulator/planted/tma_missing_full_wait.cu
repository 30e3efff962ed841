// Planted bug: the threads read the tile that TMA copies into shared memory
// without waiting on the mbarrier that counts its bytes, so they may read before
// the bytes land (in the emulator the last thread through __syncthreads reads
// NaN garbage); the race checker sees the copy's stores and the reads unordered.
#include <cstdint>
#include <cstdio>
#include <cuda_bf16.h>
#include "kernels/cuda_check.h"
#include "kernels/ptx.h"

// 64 threads: out[c] = the sum of column c over the 8 rows of the tile.
__global__ void column_sums(const __grid_constant__ CUtensorMap map, float* out) {
    extern __shared__ __align__(1024) __nv_bfloat16 tile[];
    __shared__ __align__(8) uint64_t full;
    if (threadIdx.x == 0) mbarrier_init(&full, 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        mbarrier_arrive_expect_tx(&full, 8 * 64 * sizeof(__nv_bfloat16));
        tma_load_3d(tile, &map, 0, 0, 0, &full);
    }
#ifndef PLANTED_BUG
    mbarrier_wait_parity(&full, 0);
#endif
    float sum = 0.0f;
    for (int r = 0; r < 8; ++r) sum += __bfloat162float(tile[r * 64 + threadIdx.x]);
    out[threadIdx.x] = sum;
}

int main() {
    static __nv_bfloat16 h[8 * 64];
    for (int i = 0; i < 8 * 64; ++i) h[i] = __float2bfloat16(float(i % 64 + 1) / 8.0f);  // column c: (c + 1) / 8
    __nv_bfloat16* d_x;
    float* d_out;
    CUDA_CHECK(cudaMalloc(&d_x, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, 64 * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(d_x, h, sizeof(h), cudaMemcpyHostToDevice));
    CUtensorMap map;
    const uint64_t dims[3] = {64, 8, 1}, strides[2] = {128, 128 * 8};
    const uint32_t box[3] = {64, 8, 1};
    if (tma_encode_bf16_3d(&map, d_x, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_NONE) != CUDA_SUCCESS) {
        std::printf("cuTensorMapEncodeTiled failed\n");
        return 1;
    }
    column_sums<<<1, 64, sizeof(h)>>>(map, d_out);
    CUDA_CHECK_LAUNCH("column_sums");
    float r[64];
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int c = 0; c < 64; ++c)
        if (r[c] != float(c + 1)) { if (!bad) std::printf("out[%d] = %g, want %d\n", c, r[c], c + 1); bad = 1; }
    CUDA_CHECK(cudaFree(d_x));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
