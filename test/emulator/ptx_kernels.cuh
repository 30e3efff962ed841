// Kernels that exercise kernels/ptx.h. test_ptx.cu runs them on the emulator;
// nvcc_ptx.cu compiles the same kernels with nvcc for every GPU target.
#ifndef TEST_EMULATOR_PTX_KERNELS_CUH
#define TEST_EMULATOR_PTX_KERNELS_CUH

#include <cstdint>
#include <cuda_bf16.h>
#include "kernels/ptx.h"

// One warp. Lane l reads its fragments a[4l..4l+3], b[2l..2l+1], c[4l..4l+3]
// and writes its D fragment to d[4l..4l+3].
__global__ void mma_fragments_kernel(const uint32_t* a, const uint32_t* b, const float* c, float* d) {
    int lane = threadIdx.x;
    uint32_t ra[4], rb[2];
    float rc[4], rd[4];
    for (int i = 0; i < 4; ++i) ra[i] = a[4 * lane + i];
    for (int i = 0; i < 2; ++i) rb[i] = b[2 * lane + i];
    for (int i = 0; i < 4; ++i) rc[i] = c[4 * lane + i];
    mma_m16n8k16_bf16(rd, ra, rb, rc);
    for (int i = 0; i < 4; ++i) d[4 * lane + i] = rd[i];
}

// One warp. m holds a 32x8 matrix of 16-bit values (four 8x8 matrices stacked);
// lane l passes the address of row l % (8 * count); out[4l + j] = register j.
__global__ void ldmatrix_kernel(const unsigned short* m, uint32_t* out, int count, int trans) {
    __shared__ __align__(16) unsigned short tile[32 * 8];
    for (int i = threadIdx.x; i < 32 * 8; i += 32) tile[i] = m[i];
    __syncwarp();
    const void* row = &tile[(threadIdx.x % (8 * count)) * 8];
    uint32_t r[4] = {0, 0, 0, 0};
    if (count == 1) { if (trans) ldmatrix_x1_trans(r, row); else ldmatrix_x1(r, row); }
    if (count == 2) { if (trans) ldmatrix_x2_trans(r, row); else ldmatrix_x2(r, row); }
    if (count == 4) { if (trans) ldmatrix_x4_trans(r, row); else ldmatrix_x4(r, row); }
    for (int j = 0; j < 4; ++j) out[4 * threadIdx.x + j] = r[j];
}

// One warp. Two commit groups of 16-byte copies; reads between the waits.
//   out[l]      first group after cp_async_wait<1>() (complete)
//   out[32 + l] second group after cp_async_wait<1>() (may still be in flight)
//   out[64 + l] second group after cp_async_wait_all()
__global__ void cp_async_kernel(const float4* src, float* out) {
    __shared__ float4 buf[2][32];
    int lane = threadIdx.x;
    cp_async_16(&buf[0][lane], &src[lane]);
    cp_async_commit();
    cp_async_16(&buf[1][lane], &src[32 + lane]);
    cp_async_commit();
    cp_async_wait<1>();
    out[lane] = buf[0][lane].x + buf[0][lane].w;
    out[32 + lane] = buf[1][lane].x + buf[1][lane].w;
    cp_async_wait_all();
    out[64 + lane] = buf[1][lane].x + buf[1][lane].w;
}

// One warp computes C (16x8, fp32) = A (16xK, bf16, row-major) * B (Kx8, bf16,
// row-major): tiles double-buffered in shared memory with cp.async, fragments
// loaded with ldmatrix (.trans for B), products on the tensor core.
__device__ inline void load_tiles(__nv_bfloat16* as, __nv_bfloat16* bs, const __nv_bfloat16* A,
                                  const __nv_bfloat16* B, int K, int k0, int lane) {
    int row = lane / 2, half = lane % 2;
    cp_async_16(&as[row * 16 + 8 * half], &A[row * K + k0 + 8 * half]);
    if (lane < 16) cp_async_16(&bs[lane * 8], &B[(k0 + lane) * 8]);
}

__global__ void tile_gemm_kernel(const __nv_bfloat16* A, const __nv_bfloat16* B, float* C, int K) {
    __shared__ __align__(16) __nv_bfloat16 as[2][16 * 16];
    __shared__ __align__(16) __nv_bfloat16 bs[2][16 * 8];
    int lane = threadIdx.x;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    load_tiles(as[0], bs[0], A, B, K, 0, lane);
    cp_async_commit();
    for (int k0 = 0, s = 0; k0 < K; k0 += 16, s ^= 1) {
        if (k0 + 16 < K) load_tiles(as[s ^ 1], bs[s ^ 1], A, B, K, k0 + 16, lane);
        cp_async_commit();
        cp_async_wait<1>();
        __syncwarp();
        uint32_t a[4], b[2];
        ldmatrix_x4(a, &as[s][((lane % 8) + 8 * ((lane / 8) % 2)) * 16 + 8 * (lane / 16)]);
        ldmatrix_x2_trans(b, &bs[s][(lane % 16) * 8]);
        mma_m16n8k16_bf16(acc, a, b, acc);
        __syncwarp();
    }
    int g = lane / 4, t = lane % 4;
    C[g * 8 + 2 * t] = acc[0];
    C[g * 8 + 2 * t + 1] = acc[1];
    C[(g + 8) * 8 + 2 * t] = acc[2];
    C[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

// One warpgroup (128 threads): A (64 x 16) from registers, 4 per thread as the
// test lays them out; B (16 x N) copied by the test's bytes into dynamic shared
// memory in a K-major core-matrix layout (lbo, sbo); d starts at 1.0. Group 1:
// D = A B (not accumulating); group 2: D += A B. `early` gets d[0] read after
// the commits and before any wait (what a GPU leaves undefined; the emulator
// has not run the products yet); `out` gets d after wgmma.wait_group 0.
template <int N>
__global__ void wgmma_kernel(const uint32_t* a, const unsigned char* b, int b_bytes, unsigned lbo, unsigned sbo,
                             float* out, float* early) {
    extern __shared__ __align__(128) unsigned char wg_smem[];
    for (int i = threadIdx.x; i < b_bytes; i += blockDim.x) wg_smem[i] = b[i];
    __syncthreads();
    uint32_t ra[4];
    for (int i = 0; i < 4; ++i) ra[i] = a[4 * threadIdx.x + i];
    float d[N / 2];
    for (int i = 0; i < N / 2; ++i) d[i] = 1.0f;
    const uint64_t desc = wgmma_desc(wg_smem, lbo, sbo);
    wgmma_fence();
    if constexpr (N == 64) wgmma_m64n64k16_bf16(d, ra, desc, false);
    else wgmma_m64n128k16_bf16(d, ra, desc, false);
    wgmma_commit();
    if constexpr (N == 64) wgmma_m64n64k16_bf16(d, ra, desc, true);
    else wgmma_m64n128k16_bf16(d, ra, desc, true);
    wgmma_commit();
    early[threadIdx.x] = d[0];
    wgmma_wait<0>();
    for (int i = 0; i < N / 2; ++i) out[threadIdx.x * (N / 2) + i] = d[i];
}

#endif  // TEST_EMULATOR_PTX_KERNELS_CUH
