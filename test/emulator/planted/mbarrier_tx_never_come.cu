// Planted bug: the producer announces the bytes of a whole 8 x 128 tile
// (arrive.expect_tx) but copies only its first box of 64 columns. The barrier's
// phase waits for bytes that never come: on a GPU the block hangs; the emulator
// reports a deadlock and names the waiting threads.
#include <cstdint>
#include <cstdio>
#include <cuda_bf16.h>
#include "kernels/cuda_check.h"
#include "kernels/ptx.h"

constexpr int kRows = 8, kCols = 128, kBox = 64;

// 128 threads: out[c] = the sum of column c over the tile's 8 rows. The tile
// lies in shared memory as two boxes of 8 rows x 64 columns.
__global__ void column_sums(const __grid_constant__ CUtensorMap map, float* out) {
    extern __shared__ __align__(1024) __nv_bfloat16 tile[];
    __shared__ __align__(8) uint64_t full;
    if (threadIdx.x == 0) mbarrier_init(&full, 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        mbarrier_arrive_expect_tx(&full, kRows * kCols * sizeof(__nv_bfloat16));
        tma_load_3d(tile, &map, 0, 0, 0, &full);
#ifndef PLANTED_BUG
        tma_load_3d(tile + kRows * kBox, &map, kBox, 0, 0, &full);
#endif
    }
    mbarrier_wait_parity(&full, 0);
    const int c = threadIdx.x, box = c / kBox;
    float sum = 0.0f;
    for (int r = 0; r < kRows; ++r) sum += __bfloat162float(tile[box * kRows * kBox + r * kBox + c % kBox]);
    out[c] = sum;
}

int main() {
    static __nv_bfloat16 h[kRows * kCols];
    for (int i = 0; i < kRows * kCols; ++i) h[i] = __float2bfloat16(float(i % kCols + 1) / 8.0f);  // (c + 1) / 8
    __nv_bfloat16* d_x;
    float* d_out;
    CUDA_CHECK(cudaMalloc(&d_x, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, kCols * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(d_x, h, sizeof(h), cudaMemcpyHostToDevice));
    CUtensorMap map;
    const uint64_t dims[3] = {kCols, kRows, 1}, strides[2] = {kCols * 2, kCols * 2 * kRows};
    const uint32_t box[3] = {kBox, kRows, 1};
    if (tma_encode_bf16_3d(&map, d_x, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_NONE) != CUDA_SUCCESS) {
        std::printf("cuTensorMapEncodeTiled failed\n");
        return 1;
    }
    column_sums<<<1, kCols, sizeof(h)>>>(map, d_out);
    CUDA_CHECK_LAUNCH("column_sums");
    float r[kCols];
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int c = 0; c < kCols; ++c)
        if (r[c] != float(c + 1)) { if (!bad) std::printf("out[%d] = %g, want %d\n", c, r[c], c + 1); bad = 1; }
    CUDA_CHECK(cudaFree(d_x));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
