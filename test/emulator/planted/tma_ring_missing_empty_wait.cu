// Planted bug: the producer of a two-stage TMA ring refills a stage without
// waiting on its empty barrier, so the copy of tile j + 2 may overwrite what
// the consumers still read of tile j. The race checker sees the copy's stores
// and the consumers' earlier reads with nothing ordering them (the wait on the
// empty barrier is what would).
#include <cstdint>
#include <cstdio>
#include <cuda_bf16.h>
#include "kernels/cuda_check.h"
#include "kernels/ptx.h"

constexpr int kStages = 2, kTiles = 6, kRows = 8, kCols = 64, kTileElems = kRows * kCols;

// Warp 0 produces (lane 0 issues, the warp stays together), warps 1 and 2
// consume: thread c sums column c of tile j (rows 8j..8j+7) into out[64 j + c].
__global__ void ring_column_sums(const __grid_constant__ CUtensorMap map, float* out) {
    extern __shared__ __align__(1024) __nv_bfloat16 ring[];
    __shared__ __align__(8) uint64_t full[kStages];
    __shared__ __align__(8) uint64_t empty[kStages];
    if (threadIdx.x == 0)
        for (int s = 0; s < kStages; ++s) {
            mbarrier_init(&full[s], 1);
            mbarrier_init(&empty[s], 64);
        }
    __syncthreads();
    if (threadIdx.x < 32) {
        for (int j = 0; j < kTiles; ++j) {
            const int s = j % kStages;
            if (threadIdx.x == 0) {
#ifndef PLANTED_BUG
                mbarrier_wait_parity(&empty[s], ((j / kStages) & 1) ^ 1);  // the consumers are done with tile j - 2
#endif
                mbarrier_arrive_expect_tx(&full[s], kTileElems * sizeof(__nv_bfloat16));
                tma_load_3d(ring + s * kTileElems, &map, 0, kRows * j, 0, &full[s]);
            }
            __syncwarp();
        }
        return;
    }
    const int c = threadIdx.x - 32;
    for (int j = 0; j < kTiles; ++j) {
        const int s = j % kStages;
        mbarrier_wait_parity(&full[s], (j / kStages) & 1);
        float sum = 0.0f;
        for (int r = 0; r < kRows; ++r) sum += __bfloat162float(ring[s * kTileElems + r * kCols + c]);
        out[kCols * j + c] = sum;
        mbarrier_arrive(&empty[s]);
    }
}

int main() {
    static __nv_bfloat16 h[kTiles * kTileElems];
    for (int i = 0; i < kTiles * kTileElems; ++i)  // row y, column c: (c + 1) / 8 + y / 8 (exact in bf16)
        h[i] = __float2bfloat16(float(i % kCols + 1 + i / kCols) / 8.0f);
    __nv_bfloat16* d_x;
    float* d_out;
    CUDA_CHECK(cudaMalloc(&d_x, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, kTiles * kCols * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(d_x, h, sizeof(h), cudaMemcpyHostToDevice));
    CUtensorMap map;
    const uint64_t dims[3] = {kCols, kTiles * kRows, 1}, strides[2] = {kCols * 2, kCols * 2 * kTiles * kRows};
    const uint32_t box[3] = {kCols, kRows, 1};
    if (tma_encode_bf16_3d(&map, d_x, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_NONE) != CUDA_SUCCESS) {
        std::printf("cuTensorMapEncodeTiled failed\n");
        return 1;
    }
    ring_column_sums<<<1, 96, kStages * kTileElems * sizeof(__nv_bfloat16)>>>(map, d_out);
    CUDA_CHECK_LAUNCH("ring_column_sums");
    static float r[kTiles * kCols];
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int j = 0; j < kTiles; ++j)
        for (int c = 0; c < kCols; ++c) {
            float want = 0.0f;
            for (int y = kRows * j; y < kRows * (j + 1); ++y) want += float(c + 1 + y) / 8.0f;
            if (r[kCols * j + c] != want) {
                if (!bad) std::printf("out[%d] = %g, want %g\n", kCols * j + c, r[kCols * j + c], want);
                bad = 1;
            }
        }
    CUDA_CHECK(cudaFree(d_x));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
