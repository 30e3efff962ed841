// Planted bug: a kernel with one mbarrier per tile initialises all but the
// last (the init loop stops one short). On a GPU the uninitialised barrier
// holds whatever shared memory held; the emulator stops the kernel at the
// first use of an address that never went through mbarrier.init.
#include <cstdint>
#include <cstdio>
#include <cuda_bf16.h>
#include "kernels/cuda_check.h"
#include "kernels/ptx.h"

constexpr int kTiles = 2, kRows = 8, kCols = 64, kTileElems = kRows * kCols;
#ifndef PLANTED_BUG
constexpr int kInits = kTiles;
#else
constexpr int kInits = kTiles - 1;
#endif

// 64 threads: out[64 j + c] = the sum of column c over the 8 rows of tile j
// (rows 8j..8j+7), each tile copied by TMA and counted on its own barrier.
__global__ void tile_column_sums(const __grid_constant__ CUtensorMap map, float* out) {
    extern __shared__ __align__(1024) __nv_bfloat16 tiles[];
    __shared__ __align__(8) uint64_t full[kTiles];
    if (threadIdx.x == 0)
        for (int j = 0; j < kInits; ++j) mbarrier_init(&full[j], 1);
    __syncthreads();
    if (threadIdx.x == 0)
        for (int j = 0; j < kTiles; ++j) {
            mbarrier_arrive_expect_tx(&full[j], kTileElems * sizeof(__nv_bfloat16));
            tma_load_3d(tiles + j * kTileElems, &map, 0, kRows * j, 0, &full[j]);
        }
    for (int j = 0; j < kTiles; ++j) {
        mbarrier_wait_parity(&full[j], 0);
        float sum = 0.0f;
        for (int r = 0; r < kRows; ++r) sum += __bfloat162float(tiles[j * kTileElems + r * kCols + threadIdx.x]);
        out[kCols * j + threadIdx.x] = sum;
    }
}

int main() {
    static __nv_bfloat16 h[kTiles * kTileElems];
    for (int i = 0; i < kTiles * kTileElems; ++i) h[i] = __float2bfloat16(float(i % kCols + 1) / 8.0f);  // (c + 1) / 8
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
    tile_column_sums<<<1, kCols, sizeof(h)>>>(map, d_out);
    CUDA_CHECK_LAUNCH("tile_column_sums");
    float r[kTiles * kCols];
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < kTiles * kCols; ++i)
        if (r[i] != float(i % kCols + 1)) {
            if (!bad) std::printf("out[%d] = %g, want %d\n", i, r[i], i % kCols + 1);
            bad = 1;
        }
    CUDA_CHECK(cudaFree(d_x));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
