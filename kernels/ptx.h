// Tensor-core and asynchronous-copy instructions, each behind a small function
// around its inline PTX. Kernels use only these functions, never raw asm. The
// CPU emulator executes the same asm text (emulator/README.md: its rewriter
// turns each asm statement into a call of its PTX interpreter, and its prelude
// defines __CUDA_ARCH__ 900 and __CUDA_ARCH_FEAT_SM90_ALL as nvcc does for
// sm_90a device code), so a wrong operand, modifier or descriptor bit here
// fails the emulated tests too.
//
//   mma_m16n8k16_bf16(d, a, b, c)   D(16x8,f32) = A(16x16,bf16,row) * B(16x8,bf16,col) + C
//   ldmatrix_x{1,2,4}[_trans](r, p) load 1, 2 or 4 8x8 b16 matrices from shared memory
//   cp_async_{4,8,16}(smem, gmem)   copy global -> shared without waiting
//   cp_async_commit()               close the current group of copies
//   cp_async_wait<N>()              wait until at most N recent groups are pending
//   cp_async_wait_all()             wait for every copy
// Hopper (sm_90a), asynchronous warpgroup MMA, all 128 threads of the warpgroup together:
//   wgmma_m64n{64,128}k16_bf16(d, a, desc, acc)  D(64xN,f32) (+)= A(64x16,bf16,registers) * B(16xN,bf16,shared)
//   wgmma_desc(smem, lbo, sbo)      descriptor of B: no swizzle, K-major core matrices
//   wgmma_desc_sw128(smem, lbo, sbo) descriptor of B: 128-byte swizzle (the layout TMA writes)
//   wgmma_m64n{64,128}k16_bf16<true>  the same product with B MN-major (N contiguous)
//   wgmma_m64n64k16_bf16_ss(d, desc_a, desc_b, acc)  A from shared memory as well (K-major)
//   fence_proxy_async()             after writing shared memory that a wgmma will read
//   wgmma_fence()                   before the first wgmma after registers of d or a changed
//   wgmma_commit()                  close the current group of wgmma
//   wgmma_wait<N>()                 wait until at most N recent groups are pending
//   setmaxnreg_inc<N>(), setmaxnreg_dec<N>()  raise or lower the registers of every thread of
//                                   the warpgroup to N (24..256, a multiple of 8), all warps together
// Hopper (sm_90) mbarrier and TMA:
//   mbarrier_init(bar, count)       a barrier in shared memory whose phases need `count` arrivals
//   mbarrier_init_fence()           after the inits, before __syncthreads: the barriers are then
//                                   ready for TMA's transaction counts
//   mbarrier_arrive(bar)            one arrival
//   mbarrier_arrive_expect_tx(bar, bytes)  one arrival, announcing `bytes` of TMA data to come
//   mbarrier_try_wait_parity(bar, p), mbarrier_wait_parity(bar, p)
//                                   (wait until) the phase of parity p has completed; a fresh
//                                   barrier is in phase 0, so waiting for parity 1 passes at once
//   tma_encode_bf16_3d(map, base, dims, strides, box, swizzle)  (host) a tensor map of a 3-D bf16
//                                   tensor, through the driver's cuTensorMapEncodeTiled
//   tma_load_3d(smem, map, c0, c1, c2, bar)  copy the box of tensor map `map` at coordinates
//                                   (c0, c1, c2) into shared memory, zeros outside the tensor;
//                                   its bytes count against bar's expected transaction bytes
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with
// g = lane / 4 and t = lane % 4, each 32-bit register holding two bf16, the
// lower-numbered column (or row, for B) in the low half:
//   A: a[0] = A[g][2t, 2t+1]    a[1] = A[g+8][2t, 2t+1]
//      a[2] = A[g][2t+8, 2t+9]  a[3] = A[g+8][2t+8, 2t+9]
//   B: b[0] = B[2t, 2t+1][g]    b[1] = B[2t+8, 2t+9][g]
//   C, D: c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]
// ldmatrix: lanes 8j..8j+7 give the row addresses of matrix j (16 bytes each);
// register j of lane l receives row l/4, columns 2(l%4) and 2(l%4)+1 of matrix j
// (with .trans: rows 2(l%4) and 2(l%4)+1 of column l/4).
// wgmma (PTX ISA, "Matrix Fragments for wgmma.mma_async.m64nNk16"): warp w of the
// warpgroup holds rows 16w..16w+15; its A registers are the A layout above, and
// d[4j + i] is D's element of row 16w + g + 8(i/2), column 8j + 2t + (i%2).
// B in shared memory is made of core matrices of 8 rows (n) x 16 bytes (8 k,
// K-major); the descriptor gives the byte distance between core matrices
// adjacent in K (lbo) and in N (sbo): element (k, n) lies at
// (n/8) sbo + (k/8) lbo + (n%8) 16 + (k%8) 2 bytes from the start.
// With the 128-byte swizzle (CUTLASS's Swizzle<3,4,3>), rows are 128 bytes and
// the 16-byte chunk c of a row lies at chunk c ^ (row % 8), the row being bits
// 7-9 of the shared address (so the tile must be 1024-byte aligned). Before the
// swizzle, element (k, n) of a K16 x N slice lies at
//   K-major:  (n/8) sbo + (n%8) 128 + k 2             (lbo unused; the slice of
//             k-step kk of a 64-wide row starts kk * 32 bytes into it)
//   MN-major: (k/8) sbo + (k%8) 128 + (n/64) lbo + (n%64) 2
// TMA with CU_TENSOR_MAP_SWIZZLE_128B writes a box of 128-byte rows so, row r
// being bits 7-9 of the offset in the box.
#ifndef KERNELS_PTX_H
#define KERNELS_PTX_H

#include <cstdint>
#include <cstdio>
#include <cuda.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>

#include "kernels/cuda_check.h"

// ---- host side of TMA -------------------------------------------------------
// The driver's cuTensorMapEncodeTiled, reached through the runtime (so nothing
// links -lcuda), or nullptr when the driver has none.
using TmaEncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                      const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                      CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
inline TmaEncodeTiledFn tma_encode_tiled_fn() {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
        return nullptr;
    return reinterpret_cast<TmaEncodeTiledFn>(fn);
}

// A tensor map of the bf16 tensor at `base` with dims[0] x dims[1] x dims[2]
// elements (dims[0] contiguous), strides[0] and strides[1] bytes from one index
// of dimension 1 and 2 to the next, copied in boxes of box[0] x box[1] x box[2].
// CUDA_ERROR_NOT_SUPPORTED when the driver has no cuTensorMapEncodeTiled.
inline CUresult tma_encode_bf16_3d(CUtensorMap* map, const void* base, const uint64_t dims[3],
                                   const uint64_t strides[2], const uint32_t box[3], CUtensorMapSwizzle swizzle,
                                   CUtensorMapL2promotion l2 = CU_TENSOR_MAP_L2_PROMOTION_NONE) {
    static const TmaEncodeTiledFn encode = tma_encode_tiled_fn();
    if (!encode) return CUDA_ERROR_NOT_SUPPORTED;
    const cuuint64_t d[3] = {dims[0], dims[1], dims[2]}, s[2] = {strides[0], strides[1]};
    const cuuint32_t b[3] = {box[0], box[1], box[2]}, unit[3] = {1, 1, 1};
    return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(base), d, s, b, unit,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, l2, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}

__device__ __forceinline__ uint32_t ptx_shared_address(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                  const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

__device__ __forceinline__ void ldmatrix_x1(uint32_t r[1], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(ptx_shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(ptx_shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ptx_shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t r[1], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0])
                 : "r"(ptx_shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(ptx_shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ptx_shared_address(row)));
}

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(ptx_shared_address(smem)), "l"(gmem));
}
__device__ __forceinline__ void cp_async_8(void* smem, const void* gmem) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(ptx_shared_address(smem)), "l"(gmem));
}
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(ptx_shared_address(smem)), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::); }

// ---- Hopper (sm_90a only): warpgroup MMA, asynchronous ----------------------
// wgmma needs the architecture-specific target sm_90a; compiled for any other
// target these functions trap (the launchers check the device first).
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PTX_HAVE_WGMMA 1
#endif

__device__ __forceinline__ uint64_t wgmma_desc(const void* smem, uint32_t lbo, uint32_t sbo) {
    return uint64_t((ptx_shared_address(smem) & 0x3FFFFu) >> 4) | (uint64_t((lbo & 0x3FFFFu) >> 4) << 16) |
           (uint64_t((sbo & 0x3FFFFu) >> 4) << 32);
}
__device__ __forceinline__ uint64_t wgmma_desc_sw128(const void* smem, uint32_t lbo, uint32_t sbo) {
    return wgmma_desc(smem, lbo, sbo) | (uint64_t(1) << 62);
}
// Shared memory written by ordinary stores or cp.async (the generic proxy) is
// seen by wgmma (the async proxy) only after this fence by the writing thread.
__device__ __forceinline__ void fence_proxy_async() {
#if defined(PTX_HAVE_WGMMA)
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_fence() {
#if defined(PTX_HAVE_WGMMA)
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#else
    __trap();
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if defined(PTX_HAVE_WGMMA)
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#else
    __trap();
#endif
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#if defined(PTX_HAVE_WGMMA)
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#else
    __trap();
#endif
}
template <bool B_MN_MAJOR = false>
__device__ __forceinline__ void wgmma_m64n64k16_bf16(float d[32], const uint32_t a[4], uint64_t desc_b,
                                                     bool accumulate) {
#if defined(PTX_HAVE_WGMMA)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
          "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
          "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
          "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(int(accumulate)), "n"(int(B_MN_MAJOR)));
#else
    (void)d, (void)a, (void)desc_b, (void)accumulate;
    __trap();
#endif
}
template <bool B_MN_MAJOR = false>
__device__ __forceinline__ void wgmma_m64n128k16_bf16(float d[64], const uint32_t a[4], uint64_t desc_b,
                                                      bool accumulate) {
#if defined(PTX_HAVE_WGMMA)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
          "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
          "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
          "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
          "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
          "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
          "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
          "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(int(accumulate)), "n"(int(B_MN_MAJOR)));
#else
    (void)d, (void)a, (void)desc_b, (void)accumulate;
    __trap();
#endif
}
// The same m64n64k16 with A from shared memory too (K-major, described like B).
template <bool B_MN_MAJOR = false>
__device__ __forceinline__ void wgmma_m64n64k16_bf16_ss(float d[32], uint64_t desc_a, uint64_t desc_b,
                                                        bool accumulate) {
#if defined(PTX_HAVE_WGMMA)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, %32, %33, p, 1, 1, 0, %35;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
          "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
          "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
          "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(desc_a), "l"(desc_b), "r"(int(accumulate)), "n"(int(B_MN_MAJOR)));
#else
    (void)d, (void)desc_a, (void)desc_b, (void)accumulate;
    __trap();
#endif
}

// Warp specialisation: a producer warpgroup hands registers to the consumers.
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
    static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg takes 24..256 in steps of 8");
#if defined(PTX_HAVE_WGMMA)
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
    static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg takes 24..256 in steps of 8");
#if defined(PTX_HAVE_WGMMA)
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}

// ---- Hopper (sm_90): mbarrier and TMA ---------------------------------------
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PTX_HAVE_TMA 1
#endif

__device__ __forceinline__ void mbarrier_init(uint64_t* bar, unsigned count) {
#if defined(PTX_HAVE_TMA)
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(ptx_shared_address(bar)), "r"(count) : "memory");
#else
    (void)bar, (void)count;
    __trap();
#endif
}
// After initialising barriers that TMA will complete: makes the init visible to
// the asynchronous proxy (and to the cluster) before the barrier is used.
__device__ __forceinline__ void mbarrier_init_fence() {
#if defined(PTX_HAVE_TMA)
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
#if defined(PTX_HAVE_TMA)
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(ptx_shared_address(bar)) : "memory");
#else
    (void)bar;
    __trap();
#endif
}
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, unsigned bytes) {
#if defined(PTX_HAVE_TMA)
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(ptx_shared_address(bar)), "r"(bytes)
                 : "memory");
#else
    (void)bar, (void)bytes;
    __trap();
#endif
}
__device__ __forceinline__ bool mbarrier_try_wait_parity(uint64_t* bar, unsigned parity) {
#if defined(PTX_HAVE_TMA)
    uint32_t done;
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(ptx_shared_address(bar)), "r"(parity)
                 : "memory");
    return done != 0;
#else
    (void)bar, (void)parity;
    __trap();
    return false;
#endif
}
// The GPU's clock in nanoseconds (%globaltimer), for bounded waits.
__device__ __forceinline__ uint64_t ptx_globaltimer_ns() {
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}
// A wait that cannot end (an arrival or a TMA that never comes) hangs the GPU
// until the process is killed. Built with -DLLAMA_MBARRIER_TIMEOUT_NS=N (the GPU
// bundle and the dev programs, dev/build.mk: a second), a wait not done after N
// nanoseconds writes where it waited (the calling function and line, block and
// thread) to the report that mbarrier_timeout_watch() set up, and faults: the
// launch fails at once and the next CUDA check prints the report. (No printf
// and no trap: either makes ptxas serialise the kernel's wgmma pipelines.)
#if defined(LLAMA_MBARRIER_TIMEOUT_NS)
static __device__ MbarrierTimeoutReport* g_mbarrier_timeout_report = nullptr;
#endif
// Called by the launchers of kernels that wait on mbarriers, once per process.
inline void mbarrier_timeout_watch() {
#if defined(LLAMA_MBARRIER_TIMEOUT_NS)
    if (mbarrier_timeout_report()) return;
    MbarrierTimeoutReport *host = nullptr, *device = nullptr;
    CUDA_CHECK(cudaHostAlloc(&host, sizeof *host, cudaHostAllocMapped));
    *host = MbarrierTimeoutReport{};
    CUDA_CHECK(cudaHostGetDevicePointer(&device, host, 0));
    CUDA_CHECK(cudaMemcpyToSymbol(g_mbarrier_timeout_report, &device, sizeof device));
    mbarrier_timeout_report() = host;
#endif
}
__device__ __forceinline__ void mbarrier_wait_parity(uint64_t* bar, unsigned parity,
                                                     const char* caller = __builtin_FUNCTION(),
                                                     int line = __builtin_LINE()) {
#if defined(LLAMA_MBARRIER_TIMEOUT_NS)
    if (mbarrier_try_wait_parity(bar, parity)) return;
    const uint64_t start = ptx_globaltimer_ns();
    while (!mbarrier_try_wait_parity(bar, parity)) {
        if (ptx_globaltimer_ns() - start > uint64_t(LLAMA_MBARRIER_TIMEOUT_NS)) {
            if (MbarrierTimeoutReport* r = g_mbarrier_timeout_report) {
                volatile MbarrierTimeoutReport* v = r;
                for (int i = 0; i < 63 && caller[i]; ++i) v->function[i] = caller[i];
                v->block_x = int(blockIdx.x), v->block_y = int(blockIdx.y), v->block_z = int(blockIdx.z);
                v->thread = int(threadIdx.x);
                v->line = line;
                __threadfence_system();
            }
            // Fail the launch with a fault rather than `trap`: ptxas serialises the
            // wgmma pipelines of a kernel that can trap.
            *static_cast<volatile int*>(nullptr) = 0;
        }
    }
#else
    (void)caller, (void)line;
    while (!mbarrier_try_wait_parity(bar, parity)) {
    }
#endif
}
__device__ __forceinline__ void tma_load_3d(void* smem, const CUtensorMap* map, int c0, int c1, int c2, uint64_t* bar) {
#if defined(PTX_HAVE_TMA)
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
        "[%5];\n" ::"r"(ptx_shared_address(smem)),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(ptx_shared_address(bar))
        : "memory");
#else
    (void)smem, (void)map, (void)c0, (void)c1, (void)c2, (void)bar;
    __trap();
#endif
}

#endif  // KERNELS_PTX_H
