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
    if (count == 1) {
        if (trans) ldmatrix_x1_trans(r, row);
        else ldmatrix_x1(r, row);
    }
    if (count == 2) {
        if (trans) ldmatrix_x2_trans(r, row);
        else ldmatrix_x2(r, row);
    }
    if (count == 4) {
        if (trans) ldmatrix_x4_trans(r, row);
        else ldmatrix_x4(r, row);
    }
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
__device__ inline void load_tiles(__nv_bfloat16* as, __nv_bfloat16* bs, const __nv_bfloat16* A, const __nv_bfloat16* B,
                                  int K, int k0, int lane) {
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

// ---- Hopper mbarrier and TMA -------------------------------------------------

// Two warps, two barriers: `bar` needs the 32 arrivals of warp 1 in each phase,
// `go` the 32 of warp 0, and warp 1 arrives on `bar` only after a phase of
// `go`, so what warp 0 sees does not depend on timing. Warp 0 records, at
// out[8 * tid + i]:
//   0  try_wait(bar, parity 1) on the fresh barrier        1 (the phase before 0 counts as complete)
//   1  try_wait(bar, 0) before warp 1 may arrive            0
//   2  warp 1's phase-0 arrivals counted when the wait for parity 0 returned   32
//   3  try_wait(bar, 0) during phase 1                      1
//   4  try_wait(bar, 1) before warp 1 may arrive again      0
//   5  warp 1's phase-1 arrivals counted when the wait for parity 1 returned   32
//   6  try_wait(bar, 0) during phase 2 (parity 0 now names phase 2)   0
//   7  try_wait(bar, 1) during phase 2                      1
__global__ void mbarrier_phase_kernel(int* out) {
    __shared__ __align__(8) uint64_t bar;
    __shared__ __align__(8) uint64_t go;
    __shared__ int arrived[2];
    const int tid = threadIdx.x;
    if (tid == 0) {
        mbarrier_init(&bar, 32);
        mbarrier_init(&go, 32);
        arrived[0] = arrived[1] = 0;
    }
    __syncthreads();
    if (tid < 32) {
        int* o = out + 8 * tid;
        o[0] = mbarrier_try_wait_parity(&bar, 1);
        o[1] = mbarrier_try_wait_parity(&bar, 0);
        mbarrier_arrive(&go);
        while (!mbarrier_try_wait_parity(&bar, 0)) {
        }
        o[2] = arrived[0];
        o[3] = mbarrier_try_wait_parity(&bar, 0);
        o[4] = mbarrier_try_wait_parity(&bar, 1);
        mbarrier_arrive(&go);
        mbarrier_wait_parity(&bar, 1);
        o[5] = arrived[1];
        o[6] = mbarrier_try_wait_parity(&bar, 0);
        o[7] = mbarrier_try_wait_parity(&bar, 1);
    } else {
        for (int phase = 0; phase < 2; ++phase) {
            mbarrier_wait_parity(&go, phase);
            atomicAdd(&arrived[phase], 1);
            mbarrier_arrive(&bar);
        }
    }
}

// A barrier of count 2 whose phases also wait for TMA bytes. Phase 0: thread
// 0's arrive.expect_tx, then the box at (0, 0, 0) (bytes in), then thread 1's
// arrival; phase 1: both arrivals, then the box at (a0, a1, a2). Every thread
// records try_wait just before the last piece of each phase:
//   out[3 * tid + 0]  phase 0 with an arrival and the bytes missing   0
//   out[3 * tid + 1]  phase 0 with an arrival missing                 0
//   out[3 * tid + 2]  phase 1 with the bytes missing                  0
// and the two boxes are copied out to box0 and box1 (box_bytes each, a
// multiple of 128, without swizzle).
__global__ void mbarrier_tx_kernel(const __grid_constant__ CUtensorMap map, int box_bytes, int a0, int a1, int a2,
                                   int* out, unsigned char* box0, unsigned char* box1) {
    extern __shared__ __align__(1024) unsigned char tx_smem[];
    __shared__ __align__(8) uint64_t bar;
    const int tid = threadIdx.x;
    if (tid == 0) mbarrier_init(&bar, 2);
    __syncthreads();
    if (tid == 0) mbarrier_arrive_expect_tx(&bar, unsigned(box_bytes));
    __syncthreads();
    out[3 * tid + 0] = mbarrier_try_wait_parity(&bar, 0);
    __syncthreads();
    if (tid == 0) tma_load_3d(tx_smem, &map, 0, 0, 0, &bar);
    __syncthreads();
    out[3 * tid + 1] = mbarrier_try_wait_parity(&bar, 0);
    __syncthreads();
    if (tid == 1) mbarrier_arrive(&bar);
    mbarrier_wait_parity(&bar, 0);
    for (int i = tid; i < box_bytes; i += blockDim.x) box0[i] = tx_smem[i];

    if (tid == 0) mbarrier_arrive_expect_tx(&bar, unsigned(box_bytes));
    if (tid == 1) mbarrier_arrive(&bar);
    __syncthreads();
    out[3 * tid + 2] = mbarrier_try_wait_parity(&bar, 1);
    __syncthreads();
    if (tid == 0) tma_load_3d(tx_smem + box_bytes, &map, a0, a1, a2, &bar);
    mbarrier_wait_parity(&bar, 1);
    for (int i = tid; i < box_bytes; i += blockDim.x) box1[i] = tx_smem[box_bytes + i];
}

// One TMA box at coordinates (c0, c1, c2) into dynamic shared memory, copied
// out byte for byte (`bytes`: the box's size) so the test sees where each
// element landed.
__global__ void tma_box_kernel(const __grid_constant__ CUtensorMap map, int c0, int c1, int c2, int bytes,
                               unsigned char* out) {
    extern __shared__ __align__(1024) unsigned char box_smem[];
    __shared__ __align__(8) uint64_t bar;
    if (threadIdx.x == 0) mbarrier_init(&bar, 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        mbarrier_arrive_expect_tx(&bar, unsigned(bytes));
        tma_load_3d(box_smem, &map, c0, c1, c2, &bar);
    }
    mbarrier_wait_parity(&bar, 0);
    for (int i = threadIdx.x; i < bytes; i += blockDim.x) out[i] = box_smem[i];
}

// A ring of kRingStages stages with a full and an empty barrier each. Lane 0
// of warp 0 produces: tile j (rows 8 (j % tiles_t) .. + 8 of batch j / tiles_t,
// 64 columns, no swizzle) goes by TMA into stage j % kRingStages once the
// consumers are done with tile j - kRingStages. Warps 1..kRingConsumerWarps
// consume: thread c sums column c of the tile's rows into out[64 j + c], then
// arrives on the stage's empty barrier.
constexpr int kRingStages = 3, kRingRows = 8, kRingCols = 64, kRingConsumerWarps = 2;
__global__ void tma_ring_kernel(const __grid_constant__ CUtensorMap map, int tiles_t, int tiles, float* out) {
    extern __shared__ __align__(1024) __nv_bfloat16 ring_smem[];
    constexpr int S = kRingStages, stage_elems = kRingRows * kRingCols;
    __shared__ __align__(8) uint64_t full[S];
    __shared__ __align__(8) uint64_t empty[S];
    if (threadIdx.x == 0)
        for (int s = 0; s < S; ++s) {
            mbarrier_init(&full[s], 1);
            mbarrier_init(&empty[s], kRingConsumerWarps * 32);
        }
    __syncthreads();
    if (threadIdx.x < 32) {
        if (threadIdx.x != 0) return;
        for (int j = 0; j < tiles; ++j) {
            const int s = j % S;
            mbarrier_wait_parity(&empty[s], ((j / S) & 1) ^ 1);
            mbarrier_arrive_expect_tx(&full[s], unsigned(stage_elems * sizeof(__nv_bfloat16)));
            tma_load_3d(ring_smem + s * stage_elems, &map, 0, kRingRows * (j % tiles_t), j / tiles_t, &full[s]);
        }
        return;
    }
    const int c = threadIdx.x - 32;
    for (int j = 0; j < tiles; ++j) {
        const int s = j % S;
        mbarrier_wait_parity(&full[s], (j / S) & 1);
        float sum = 0.0f;
        for (int r = 0; r < kRingRows; ++r) sum += __bfloat162float(ring_smem[s * stage_elems + r * kRingCols + c]);
        out[kRingCols * j + c] = sum;
        mbarrier_arrive(&empty[s]);
    }
}

// One warpgroup: D (64 x N, fp32) = A (64 x 64, registers) B (64 x N) in four
// k-steps of wgmma.m64nNk16, B in shared memory with the 128-byte swizzle as
// TMA writes it. a[(128 kk + tid) * 4 + i]: register i of thread tid for
// k-step kk (the mma.m16n8k16 A layout of its warp's 16 rows).
//   K-major (MN_MAJOR false): `map` has B's transpose, N rows of 64 k (128
//     bytes); one box {64, N, 1}: row n at 128 n. sbo 1024 (8 rows), k-step kk
//     starts kk * 32 bytes into the rows.
//   MN-major (true): `map` has B, 64 rows of N columns; boxes {64, 64, 1} of
//     columns 64 g.. at byte lbo * g, row k of a box at 128 k. sbo 1024 (8 rows
//     of k), lbo the distance between the boxes, k-step kk starts at 2048 kk.
// out[tid * N / 2 + i] = d[i].
template <int N, bool MN_MAJOR>
__global__ void wgmma_sw128_kernel(const __grid_constant__ CUtensorMap map, const uint32_t* a, unsigned lbo,
                                   float* out) {
    extern __shared__ __align__(1024) unsigned char sw_smem[];
    __shared__ __align__(8) uint64_t bar;
    const int tid = threadIdx.x;
    if (tid == 0) mbarrier_init(&bar, 1);
    __syncthreads();
    if (tid == 0) {
        if (MN_MAJOR) {
            mbarrier_arrive_expect_tx(&bar, unsigned(N / 64 * 64 * 128));
            for (int g = 0; g < N / 64; ++g) tma_load_3d(sw_smem + g * lbo, &map, 64 * g, 0, 0, &bar);
        } else {
            mbarrier_arrive_expect_tx(&bar, unsigned(N * 128));
            tma_load_3d(sw_smem, &map, 0, 0, 0, &bar);
        }
    }
    uint32_t ra[4][4];
    for (int kk = 0; kk < 4; ++kk)
        for (int i = 0; i < 4; ++i) ra[kk][i] = a[(128 * kk + tid) * 4 + i];
    float d[N / 2];
    for (int i = 0; i < N / 2; ++i) d[i] = 0.0f;
    mbarrier_wait_parity(&bar, 0);
    wgmma_fence();
    for (int kk = 0; kk < 4; ++kk) {
        const uint64_t desc =
            MN_MAJOR ? wgmma_desc_sw128(sw_smem + 2048 * kk, lbo, 1024) : wgmma_desc_sw128(sw_smem + 32 * kk, 0, 1024);
        if constexpr (N == 64) wgmma_m64n64k16_bf16<MN_MAJOR>(d, ra[kk], desc, kk > 0);
        else wgmma_m64n128k16_bf16<MN_MAJOR>(d, ra[kk], desc, kk > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
    for (int i = 0; i < N / 2; ++i) out[tid * (N / 2) + i] = d[i];
}

// One warpgroup: D (64 x 64, fp32) = A (64 x 64) B (64 x 64) in four k-steps of
// wgmma.m64n64k16 with A from shared memory too (wgmma_m64n64k16_bf16_ss). B as
// in wgmma_sw128_kernel with N = 64, one box {64, 64, 1} of `map_b` with the
// 128-byte swizzle at the start of dynamic shared memory, K-major or MN-major
// (B_MN_MAJOR). A is K-major, from byte 8192 on:
//   A_SW128: `map_a` has A, 64 rows of 64 k (128 bytes); one box {64, 64, 1}
//     with the 128-byte swizzle: row m at 128 m, sbo 1024 (8 rows), k-step kk
//     starts kk * 32 bytes into the rows (the layout of a K-major B).
//   otherwise: the a_bytes bytes at `a`, copied in by the threads, hold A in
//     core matrices of 8 rows (m) x 16 bytes (8 k) without swizzle, adjacent
//     in K lbo apart and in M sbo apart; k-step kk starts at a_step * kk.
//     `map_a` is not read.
// out[tid * 32 + i] = d[i].
template <bool A_SW128, bool B_MN_MAJOR>
__global__ void wgmma_ss_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                                const unsigned char* a, int a_bytes, unsigned lbo, unsigned sbo, unsigned a_step,
                                float* out) {
    extern __shared__ __align__(1024) unsigned char ss_smem[];
    __shared__ __align__(8) uint64_t bar;
    unsigned char* a_smem = ss_smem + 8192;
    const int tid = threadIdx.x;
    if (tid == 0) mbarrier_init(&bar, 1);
    if (!A_SW128) {
        for (int i = tid; i < a_bytes; i += blockDim.x) a_smem[i] = a[i];
        fence_proxy_async();  // ordinary stores, read by wgmma
    }
    __syncthreads();
    if (tid == 0) {
        mbarrier_arrive_expect_tx(&bar, A_SW128 ? 2 * 8192u : 8192u);
        tma_load_3d(ss_smem, &map_b, 0, 0, 0, &bar);
        if (A_SW128) tma_load_3d(a_smem, &map_a, 0, 0, 0, &bar);
    }
    float d[32];
    for (int i = 0; i < 32; ++i) d[i] = 0.0f;
    mbarrier_wait_parity(&bar, 0);
    wgmma_fence();
    for (int kk = 0; kk < 4; ++kk) {
        const uint64_t desc_a =
            A_SW128 ? wgmma_desc_sw128(a_smem + 32 * kk, 0, 1024) : wgmma_desc(a_smem + a_step * kk, lbo, sbo);
        const uint64_t desc_b = B_MN_MAJOR ? wgmma_desc_sw128(ss_smem + 2048 * kk, 8192, 1024)
                                           : wgmma_desc_sw128(ss_smem + 32 * kk, 0, 1024);
        wgmma_m64n64k16_bf16_ss<B_MN_MAJOR>(d, desc_a, desc_b, kk > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
    for (int i = 0; i < 32; ++i) out[tid * 32 + i] = d[i];
}

// Two warpgroups, warp-specialised as a producer and a consumer: warpgroup 0
// gives registers back (setmaxnreg.dec to 40), warpgroup 1 takes more
// (setmaxnreg.inc to 232); then out[tid] = tid + 1.
__global__ void __launch_bounds__(256, 1) setmaxnreg_kernel(int* out) {
    const int tid = threadIdx.x;
    if (tid / 128 == 0) setmaxnreg_dec<40>();
    else setmaxnreg_inc<232>();
    out[tid] = tid + 1;
}

#endif  // TEST_EMULATOR_PTX_KERNELS_CUH
