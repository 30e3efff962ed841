// Tensor-core and asynchronous-copy instructions, each behind a small function:
// inline PTX when nvcc compiles the file, a warp-collective emulation that
// follows the PTX ISA's fragment layouts when g++ or clang compiles it against
// the CPU emulator. Kernels use only these functions, never raw asm.
//
//   mma_m16n8k16_bf16(d, a, b, c)   D(16x8,f32) = A(16x16,bf16,row) * B(16x8,bf16,col) + C
//   ldmatrix_x{1,2,4}[_trans](r, p) load 1, 2 or 4 8x8 b16 matrices from shared memory
//   cp_async_{4,8,16}(smem, gmem)   copy global -> shared without waiting
//   cp_async_commit()               close the current group of copies
//   cp_async_wait<N>()              wait until at most N recent groups are pending
//   cp_async_wait_all()             wait for every copy
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
#ifndef KERNELS_PTX_H
#define KERNELS_PTX_H

#include <cstdint>
#include <cuda_runtime.h>
#include <cuda_bf16.h>

#if defined(__CUDACC__)

__device__ __forceinline__ uint32_t ptx_shared_address(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
}

__device__ __forceinline__ void ldmatrix_x1(uint32_t r[1], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(ptx_shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(ptx_shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(ptx_shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t r[1], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0]) : "r"(ptx_shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(ptx_shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(ptx_shared_address(row)));
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
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::); }

#else  // emulated: every lane of the warp must call these together, as on the GPU

namespace ptx_emu {
inline float bf16_low(uint32_t r) { return __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(r & 0xffffu))); }
inline float bf16_high(uint32_t r) { return __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(r >> 16))); }

// Gathers one 64-bit value from every lane of the (full) warp.
inline void gather(uint64_t mine, uint64_t all[32]) { ::emu::warp_collective(0xffffffffu, mine, all); }

template <int N, bool TRANS>
inline void ldmatrix(uint32_t* r, const void* row) {
    uint64_t rows[32];
    gather(reinterpret_cast<uint64_t>(row), rows);
    unsigned lane = ::emu::lane_id();
    for (int j = 0; j < N; ++j) {
        unsigned short lo, hi;
        if (!TRANS) {
            const unsigned short* p = reinterpret_cast<const unsigned short*>(rows[8 * j + lane / 4]);
            lo = p[2 * (lane % 4)];
            hi = p[2 * (lane % 4) + 1];
        } else {
            const unsigned short* p0 = reinterpret_cast<const unsigned short*>(rows[8 * j + 2 * (lane % 4)]);
            const unsigned short* p1 = reinterpret_cast<const unsigned short*>(rows[8 * j + 2 * (lane % 4) + 1]);
            lo = p0[lane / 4];
            hi = p1[lane / 4];
        }
        r[j] = uint32_t(lo) | (uint32_t(hi) << 16);
    }
}

inline void async_copy(void* smem, const void* gmem, unsigned bytes) {
    ::emu::AsyncCopyState& st = ::emu::async_copy_state();
    if (reinterpret_cast<uintptr_t>(smem) % bytes || reinterpret_cast<uintptr_t>(gmem) % bytes)
        ::emu::kernel_fail("cp.async address not aligned to the copy size");
    st.pending.push_back(::emu::AsyncCopy{smem, gmem, bytes, st.committed});
}

// Completes the copies of every committed group but the newest `keep`.
inline void async_wait(unsigned keep, bool all) {
    ::emu::AsyncCopyState& st = ::emu::async_copy_state();
    std::size_t out = 0;
    for (std::size_t i = 0; i < st.pending.size(); ++i) {
        const ::emu::AsyncCopy& c = st.pending[i];
        bool done = all || (c.group < st.committed && st.committed - c.group > keep);
        if (done) {
            // Byte by byte through the kernel's own loads and stores, so the checkers see them.
            const unsigned char* s = static_cast<const unsigned char*>(c.src);
            unsigned char* d = static_cast<unsigned char*>(c.dst);
            for (unsigned b = 0; b < c.bytes; ++b) d[b] = s[b];
        } else {
            st.pending[out++] = c;
        }
    }
    st.pending.resize(out);
}
}  // namespace ptx_emu

inline void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    uint64_t a01[32], a23[32], b01[32];
    ptx_emu::gather(uint64_t(a[0]) | (uint64_t(a[1]) << 32), a01);
    ptx_emu::gather(uint64_t(a[2]) | (uint64_t(a[3]) << 32), a23);
    ptx_emu::gather(uint64_t(b[0]) | (uint64_t(b[1]) << 32), b01);
    // Rebuild A (16x16) and B (16x8) from the fragments of all 32 lanes.
    float A[16][16], B[16][8];
    for (unsigned l = 0; l < 32; ++l) {
        unsigned g = l / 4, t = l % 4;
        uint32_t r[4] = {uint32_t(a01[l]), uint32_t(a01[l] >> 32), uint32_t(a23[l]), uint32_t(a23[l] >> 32)};
        for (unsigned k = 0; k < 4; ++k) {
            unsigned row = g + 8 * (k & 1), col = 2 * t + 8 * (k >> 1);
            A[row][col] = ptx_emu::bf16_low(r[k]);
            A[row][col + 1] = ptx_emu::bf16_high(r[k]);
        }
        uint32_t q[2] = {uint32_t(b01[l]), uint32_t(b01[l] >> 32)};
        for (unsigned k = 0; k < 2; ++k) {
            B[2 * t + 8 * k][g] = ptx_emu::bf16_low(q[k]);
            B[2 * t + 8 * k + 1][g] = ptx_emu::bf16_high(q[k]);
        }
    }
    unsigned lane = ::emu::lane_id(), g = lane / 4, t = lane % 4;
    for (unsigned i = 0; i < 4; ++i) {
        unsigned row = g + 8 * (i / 2), col = 2 * t + (i % 2);
        float acc = c[i];
        for (unsigned k = 0; k < 16; ++k) acc = fmaf(A[row][k], B[k][col], acc);  // bf16 products are exact in fp32
        d[i] = acc;
    }
}

inline void ldmatrix_x1(uint32_t r[1], const void* row) { ptx_emu::ldmatrix<1, false>(r, row); }
inline void ldmatrix_x2(uint32_t r[2], const void* row) { ptx_emu::ldmatrix<2, false>(r, row); }
inline void ldmatrix_x4(uint32_t r[4], const void* row) { ptx_emu::ldmatrix<4, false>(r, row); }
inline void ldmatrix_x1_trans(uint32_t r[1], const void* row) { ptx_emu::ldmatrix<1, true>(r, row); }
inline void ldmatrix_x2_trans(uint32_t r[2], const void* row) { ptx_emu::ldmatrix<2, true>(r, row); }
inline void ldmatrix_x4_trans(uint32_t r[4], const void* row) { ptx_emu::ldmatrix<4, true>(r, row); }

inline void cp_async_16(void* smem, const void* gmem) { ptx_emu::async_copy(smem, gmem, 16); }
inline void cp_async_8(void* smem, const void* gmem) { ptx_emu::async_copy(smem, gmem, 8); }
inline void cp_async_4(void* smem, const void* gmem) { ptx_emu::async_copy(smem, gmem, 4); }
inline void cp_async_commit() { ++::emu::async_copy_state().committed; }
template <int N>
inline void cp_async_wait() { ptx_emu::async_wait(N, false); }
inline void cp_async_wait_all() { ptx_emu::async_wait(0, true); }

#endif  // __CUDACC__

#endif  // KERNELS_PTX_H
