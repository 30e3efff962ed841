// Raw inline PTX run by the emulator's interpreter, part 2: the plain
// per-thread instructions of real kernels (ld/st, integer and float
// arithmetic, bit operations, cvt, prmt, lop3) and the warp and block ones
// (shfl.sync, elect.sync, activemask, bar.sync, nanosleep), each against a CPU
// computation on random inputs.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "device_buffers.h"
#include "mma_helpers.h"

namespace {

using emu_test::a_pos;
using emu_test::as_bits;
using emu_test::as_float;
using emu_test::bf16_rn;
using emu_test::f16_rn;
using emu_test::f16_to_float;
using emu_test::to_device;
using emu_test::to_host;

template <class T>
T* device_buffer(std::size_t n) {
    T* d = nullptr;
    REQUIRE(cudaMalloc(&d, n * sizeof(T)) == cudaSuccess);
    return d;
}

// Each thread loads four floats with one vector load, stores them to shared
// memory, and after the barrier reads its right neighbour's (a different
// thread's) through shared loads of each width; 64-bit and v2 global stores
// write the results.
__global__ void load_store(const float* in, const unsigned long long* in64, float* out, unsigned long long* out64) {
    __shared__ __align__(16) float s[4 * 64];
    const unsigned i = threadIdx.x, next = (i + 1) % 64;
    float a, b, c, d;
    asm volatile("ld.global.nc.L1::no_allocate.v4.f32 {%0, %1, %2, %3}, [%4];"
                 : "=f"(a), "=f"(b), "=f"(c), "=f"(d)
                 : "l"(in + 4 * i));
    const unsigned mine = unsigned(__cvta_generic_to_shared(s + 4 * i));
    const unsigned theirs = unsigned(__cvta_generic_to_shared(s + 4 * next));
    asm volatile("st.shared.v4.f32 [%0], {%1, %2, %3, %4};" ::"r"(mine), "f"(a), "f"(b), "f"(c), "f"(d));
    asm volatile("bar.sync 0;");
    float x, y;
    unsigned z, w;
    asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(x), "=f"(y) : "r"(theirs));
    asm volatile("ld.shared.u32 %0, [%1+8];" : "=r"(z) : "r"(theirs));
    asm volatile("ld.shared::cta.b32 %0, [%1+12];" : "=r"(w) : "r"(theirs));
    asm volatile("st.global.v2.f32 [%0], {%1, %2};" ::"l"(out + 4 * i), "f"(x), "f"(y));
    asm volatile("st.global.b32 [%0+8], %1;" ::"l"(out + 4 * i), "r"(z));
    asm volatile("st.global.u32 [%0+12], %1;" ::"l"(out + 4 * i), "r"(w));
    unsigned long long q;
    asm volatile("ld.global.b64 %0, [%1];" : "=l"(q) : "l"(in64 + i));
    asm volatile("barrier.sync 0;");
    asm volatile("st.shared.b64 [%0], %1;" ::"r"(mine), "l"(q));
    asm volatile("bar.sync 0, %0;" ::"r"(blockDim.x));
    unsigned long long r;
    asm volatile("ld.shared.b64 %0, [%1];" : "=l"(r) : "r"(theirs));
    asm volatile("st.global.b64 [%0], %1;" ::"l"(out64 + i), "l"(r));
}

constexpr int kInt32Results = 22, kInt64Results = 12;

// 32-bit and 64-bit integer arithmetic and bit operations on a, b, c.
__global__ void integer_ops(const unsigned* a, const unsigned* b, const unsigned* c, const unsigned long long* x,
                            const unsigned long long* y, const unsigned long long* z, unsigned* o32,
                            unsigned long long* o64) {
    const unsigned i = threadIdx.x;
    unsigned* o = o32 + kInt32Results * i;
    const unsigned A = a[i], B = b[i], C = c[i], sh = b[i] % 40;
    asm("add.u32 %0, %1, %2;" : "=r"(o[0]) : "r"(A), "r"(B));
    asm("sub.s32 %0, %1, %2;" : "=r"(o[1]) : "r"(A), "r"(B));
    asm("mul.lo.u32 %0, %1, %2;" : "=r"(o[2]) : "r"(A), "r"(B));
    asm("mul.hi.s32 %0, %1, %2;" : "=r"(o[3]) : "r"(A), "r"(B));
    asm("mul.hi.u32 %0, %1, %2;" : "=r"(o[4]) : "r"(A), "r"(B));
    asm("mad.lo.s32 %0, %1, %2, %3;" : "=r"(o[5]) : "r"(A), "r"(B), "r"(C));
    asm("and.b32 %0, %1, %2;" : "=r"(o[6]) : "r"(A), "r"(B));
    asm("or.b32 %0, %1, %2;" : "=r"(o[7]) : "r"(A), "r"(B));
    asm("xor.b32 %0, %1, %2;" : "=r"(o[8]) : "r"(A), "r"(B));
    asm("not.b32 %0, %1;" : "=r"(o[9]) : "r"(A));
    asm("shl.b32 %0, %1, %2;" : "=r"(o[10]) : "r"(A), "r"(sh));
    asm("shr.u32 %0, %1, %2;" : "=r"(o[11]) : "r"(A), "r"(sh));
    asm("shr.s32 %0, %1, %2;" : "=r"(o[12]) : "r"(A), "r"(sh));
    asm("min.s32 %0, %1, %2;" : "=r"(o[13]) : "r"(A), "r"(B));
    asm("max.u32 %0, %1, %2;" : "=r"(o[14]) : "r"(A), "r"(B));
    asm("lop3.b32 %0, %1, %2, %3, 0x96;" : "=r"(o[15]) : "r"(A), "r"(B), "r"(C));           // a ^ b ^ c
    asm("lop3.b32 %0, %1, %2, %3, %4;" : "=r"(o[16]) : "r"(A), "r"(B), "r"(C), "n"(0xE8));  // majority
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(o[17]) : "r"(A), "r"(B), "r"(C));
    asm("prmt.b32 %0, %1, %2, 0x5410;" : "=r"(o[18]) : "r"(A), "r"(B));
    unsigned long long w = 0;
    asm("mul.wide.s32 %0, %1, %2;" : "=l"(w) : "r"(A), "r"(B));
    o[19] = unsigned(w), o[20] = unsigned(w >> 32);
    asm("{ .reg .u64 t; cvt.u64.u32 t, %1; add.u64 t, t, %2; cvt.u32.u64 %0, t; }" : "=r"(o[21]) : "r"(A), "l"(x[i]));
    unsigned long long* p = o64 + kInt64Results * i;
    const unsigned long long X = x[i], Y = y[i], Z = z[i];
    asm("add.s64 %0, %1, %2;" : "=l"(p[0]) : "l"(X), "l"(Y));
    asm("sub.u64 %0, %1, %2;" : "=l"(p[1]) : "l"(X), "l"(Y));
    asm("mul.lo.u64 %0, %1, %2;" : "=l"(p[2]) : "l"(X), "l"(Y));
    asm("mad.lo.u64 %0, %1, %2, %3;" : "=l"(p[3]) : "l"(X), "l"(Y), "l"(Z));
    asm("and.b64 %0, %1, %2;" : "=l"(p[4]) : "l"(X), "l"(Y));
    asm("or.b64 %0, %1, %2;" : "=l"(p[5]) : "l"(X), "l"(Y));
    asm("xor.b64 %0, %1, %2;" : "=l"(p[6]) : "l"(X), "l"(Y));
    asm("shl.b64 %0, %1, %2;" : "=l"(p[7]) : "l"(X), "r"(sh));
    asm("shr.s64 %0, %1, %2;" : "=l"(p[8]) : "l"(X), "r"(sh));
    asm("min.s64 %0, %1, %2;" : "=l"(p[9]) : "l"(X), "l"(Y));
    asm("max.u64 %0, %1, %2;" : "=l"(p[10]) : "l"(X), "l"(Y));
    asm("cvt.s64.s32 %0, %1;" : "=l"(p[11]) : "r"(A));
}

constexpr int kFloatResults = 16;

// f32 arithmetic, approximations and the conversions to and from bf16 and f16.
__global__ void float_ops(const float* a, const float* b, const float* c, unsigned* out) {
    const unsigned i = threadIdx.x;
    unsigned* o = out + kFloatResults * i;
    const float A = a[i], B = b[i], C = c[i];
    float f;
    asm("add.rn.f32 %0, %1, %2;" : "=f"(f) : "f"(A), "f"(B));
    o[0] = __float_as_uint(f);
    asm("sub.f32 %0, %1, %2;" : "=f"(f) : "f"(A), "f"(B));
    o[1] = __float_as_uint(f);
    asm("mul.rn.f32 %0, %1, %2;" : "=f"(f) : "f"(A), "f"(B));
    o[2] = __float_as_uint(f);
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(f) : "f"(A), "f"(B), "f"(C));
    o[3] = __float_as_uint(f);
    asm("min.f32 %0, %1, %2;" : "=f"(f) : "f"(A), "f"(B));
    o[4] = __float_as_uint(f);
    asm("max.f32 %0, %1, %2;" : "=f"(f) : "f"(A), "f"(B));
    o[5] = __float_as_uint(f);
    asm("ex2.approx.f32 %0, %1;" : "=f"(f) : "f"(A));
    o[6] = __float_as_uint(f);
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(f) : "f"(A));
    o[7] = __float_as_uint(f);
    unsigned u;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(u) : "f"(A), "f"(B));
    o[8] = u;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(u) : "f"(A), "f"(B));
    o[9] = u;
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(C));
    o[10] = h;
    asm("cvt.f32.bf16 %0, %1;" : "=f"(f) : "h"(h));
    o[11] = __float_as_uint(f);
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(C));
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    o[12] = __float_as_uint(f);
    int k;
    asm("cvt.rzi.s32.f32 %0, %1;" : "=r"(k) : "f"(A * 100.0f));
    o[13] = unsigned(k);
    asm("cvt.rni.u32.f32 %0, %1;" : "=r"(k) : "f"(C * 1000.0f));
    o[14] = unsigned(k);
    asm("cvt.rn.f32.s32 %0, %1;" : "=f"(f) : "r"(int(i) * 77777 - 1234567));
    o[15] = __float_as_uint(f);
}

constexpr int kWarpResults = 9;

// shfl.sync in its four modes (with the valid-lane predicate), elect.sync and
// activemask; the upper half of the second warp sits out the elect.
__global__ void warp_ops(const unsigned* v, unsigned* out) {
    const unsigned i = threadIdx.x, x = v[i];
    unsigned* o = out + kWarpResults * i;
    asm volatile("shfl.sync.bfly.b32 %0, %1, 5, 0x1f, 0xffffffff;" : "=r"(o[0]) : "r"(x));
    asm volatile("shfl.sync.idx.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(o[1]) : "r"(x), "r"(x % 32));
    asm volatile("{ .reg .pred p; shfl.sync.up.b32 %0|p, %2, 3, 0, 0xffffffff; selp.u32 %1, 1, 0, p; }"
                 : "=r"(o[2]), "=r"(o[3])
                 : "r"(x));
    asm volatile("{ .reg .pred p; shfl.sync.down.b32 %0|p, %2, 6, 0x1f, 0xffffffff; selp.u32 %1, 1, 0, p; }"
                 : "=r"(o[4]), "=r"(o[5])
                 : "r"(x));
    // Segments of 8 lanes: c = ((32 - 8) << 8) | 0x1f, as __shfl_sync(mask, x, 2, 8).
    asm volatile("shfl.sync.idx.b32 %0, %1, 2, 0x181f, 0xffffffff;" : "=r"(o[6]) : "r"(x));
    o[7] = o[8] = 0xdead;
    if (i < 48) {
        const unsigned mask = i < 32 ? 0xffffffffu : 0x0000ffffu;
        unsigned leader = 0, am = 0, me = 0;
        asm volatile("{ .reg .pred p; elect.sync %0|p, %2; selp.u32 %1, 1, 0, p; }"
                     : "=r"(leader), "=r"(me)
                     : "r"(mask));
        asm volatile("activemask.b32 %0;" : "=r"(am));
        __syncwarp(mask);
        o[7] = leader | (me << 8);
        o[8] = am;
    }
}

// cp.async with src-size (the copy's tail zero-filled) and with the ignore-src
// predicate, completed by cp.async.wait_all; then a non-tensor cp.async.bulk
// on an mbarrier that thread 0 arms with mbarrier.expect_tx and thread 1
// arrives on twice in one instruction (the barrier's count is 2), waited on
// with test_wait.parity.
__global__ void async_copies(const unsigned* in, const unsigned* bulk_src, unsigned* out, unsigned* bulk_out) {
    __shared__ __align__(16) unsigned s[4 * 64 + 2 * 64];
    __shared__ __align__(16) unsigned b[256];
    __shared__ __align__(8) unsigned long long bar;
    const unsigned i = threadIdx.x;
    const unsigned dst16 = unsigned(__cvta_generic_to_shared(s + 4 * i));
    const unsigned dst8 = unsigned(__cvta_generic_to_shared(s + 4 * 64 + 2 * i));
    const unsigned bar_addr = unsigned(__cvta_generic_to_shared(&bar));
    const unsigned src_size = i % 17;
    asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16, %2;" ::"r"(dst16), "l"(in + 4 * i), "r"(src_size));
    asm volatile("{ .reg .pred p; setp.eq.u32 p, %2, 0; cp.async.ca.shared.global [%0], [%1], 8, p; }" ::"r"(dst8),
                 "l"(in + 4 * 64 + 2 * i), "r"(i % 3));
    asm volatile("cp.async.wait_all;" ::: "memory");
    if (i == 0) asm volatile("mbarrier.init.shared::cta.b64 [%0], 2;" ::"r"(bar_addr));
    __syncthreads();
    if (i == 0) {
        asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], 1024;" ::"r"(bar_addr));
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], 1024, [%2];" ::"r"(
                         unsigned(__cvta_generic_to_shared(b))),
                     "l"(bulk_src), "r"(bar_addr));
    }
    if (i == 1) asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0], 2;" ::"r"(bar_addr));
    unsigned done = 0;
    while (!done)
        asm volatile("{ .reg .pred p; mbarrier.test_wait.parity.shared::cta.b64 p, [%1], 0; selp.u32 %0, 1, 0, p; }"
                     : "=r"(done)
                     : "r"(bar_addr));
    for (int k = 0; k < 6; ++k) out[6 * i + k] = k < 4 ? s[4 * i + k] : s[4 * 64 + 2 * i + k - 4];
    for (int k = 0; k < 4; ++k) bulk_out[4 * i + k] = b[4 * i + k];
}

// stmatrix in four forms, each into its own region of shared memory: rows of
// 8 b16 values (16 bytes), matrix j's rows given by lanes 8j..8j+7.
constexpr int kStmatrixHalves = (4 + 2 + 1 + 4) * 64;
__global__ void store_matrices(const unsigned* in, unsigned short* out) {
    __shared__ __align__(16) unsigned short s[kStmatrixHalves];
    const unsigned lane = threadIdx.x;
    const unsigned r0 = in[4 * lane], r1 = in[4 * lane + 1], r2 = in[4 * lane + 2], r3 = in[4 * lane + 3];
    for (unsigned i = lane; i < kStmatrixHalves; i += 32) s[i] = 0xffff;
    __syncwarp();
    // Region base (in matrices) and the row this lane names: row lane % 8 of matrix (lane / 8) % x.
    auto row = [&](int base, int x) {
        return unsigned(__cvta_generic_to_shared(s + 64 * base + 64 * ((lane / 8) % x) + 8 * (lane % 8)));
    };
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};" ::"r"(row(0, 4)), "r"(r0), "r"(r1),
                 "r"(r2), "r"(r3));
    asm volatile("stmatrix.sync.aligned.m8n8.x2.trans.shared::cta.b16 [%0], {%1, %2};" ::"r"(row(4, 2)), "r"(r0),
                 "r"(r1));
    asm volatile("stmatrix.sync.aligned.m8n8.x1.shared.b16 [%0], {%1};" ::"r"(row(6, 1)), "r"(r2));
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};" ::"r"(row(7, 4)), "r"(r3),
                 "r"(r2), "r"(r1), "r"(r0));
    __syncwarp();
    for (unsigned i = lane; i < kStmatrixHalves; i += 32) out[i] = s[i];
}

// The other mma.sync shapes and types. Each lane passes its fragment
// registers: 4 of A, 2 of B, 4 of C (as many as the form uses) and gets 4 of D.
__global__ void mma_forms(int form, const unsigned* a, const unsigned* b, const unsigned* c, unsigned* d) {
    const unsigned l = threadIdx.x;
    const unsigned a0 = a[4 * l], a1 = a[4 * l + 1], a2 = a[4 * l + 2], a3 = a[4 * l + 3], b0 = b[2 * l],
                   b1 = b[2 * l + 1], c0 = c[4 * l], c1 = c[4 * l + 1], c2 = c[4 * l + 2], c3 = c[4 * l + 3];
    unsigned d0 = 0, d1 = 0, d2 = 0, d3 = 0;
    switch (form) {
        case 0:
            asm volatile(
                "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                "{%10, %11, %12, %13};"
                : "=r"(d0), "=r"(d1), "=r"(d2), "=r"(d3)
                : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(c0), "r"(c1), "r"(c2), "r"(c3));
            break;
        case 1:
            asm volatile(
                "mma.sync.aligned.m16n8k16.row.col.f16.f16.f16.f16 {%0, %1}, {%2, %3, %4, %5}, {%6, %7}, {%8, %9};"
                : "=r"(d0), "=r"(d1)
                : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(c0), "r"(c1));
            break;
        case 2:
            asm volatile(
                "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, "
                "%10};"
                : "=r"(d0), "=r"(d1), "=r"(d2), "=r"(d3)
                : "r"(a0), "r"(a1), "r"(b0), "r"(c0), "r"(c1), "r"(c2), "r"(c3));
            break;
        case 3:
            asm volatile(
                "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, "
                "%10};"
                : "=r"(d0), "=r"(d1), "=r"(d2), "=r"(d3)
                : "r"(a0), "r"(a1), "r"(b0), "r"(c0), "r"(c1), "r"(c2), "r"(c3));
            break;
        case 4:
            asm volatile(
                "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                "{%10, %11, %12, %13};"
                : "=r"(d0), "=r"(d1), "=r"(d2), "=r"(d3)
                : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(c0), "r"(c1), "r"(c2), "r"(c3));
            break;
        default:
            asm volatile(
                "mma.sync.aligned.m16n8k32.row.col.satfinite.s32.u8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                "{%8, %9}, {%10, %11, %12, %13};"
                : "=r"(d0), "=r"(d1), "=r"(d2), "=r"(d3)
                : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(c0), "r"(c1), "r"(c2), "r"(c3));
            break;
    }
    d[4 * l] = d0, d[4 * l + 1] = d1, d[4 * l + 2] = d2, d[4 * l + 3] = d3;
}

// mma.m8n8k4 in the four layout pairs and both accumulator types: each lane
// passes its 2 A, 2 B and 4 or 8 C registers and gets its 4 or 8 of D.
__global__ void mma_m8n8k4(int form, const unsigned* a, const unsigned* b, const unsigned* c, unsigned* d) {
    const unsigned l = threadIdx.x;
    const unsigned* cl = c + 8 * l;
    const unsigned a0 = a[2 * l], a1 = a[2 * l + 1], b0 = b[2 * l], b1 = b[2 * l + 1];
    unsigned o[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    switch (form) {
        case 0:  // row.col, f32 from f32
            asm volatile(
                "mma.sync.aligned.m8n8k4.row.col.f32.f16.f16.f32 {%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9}, {%10, "
                "%11}, {%12, %13, %14, %15, %16, %17, %18, %19};"
                : "=r"(o[0]), "=r"(o[1]), "=r"(o[2]), "=r"(o[3]), "=r"(o[4]), "=r"(o[5]), "=r"(o[6]), "=r"(o[7])
                : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(cl[0]), "r"(cl[1]), "r"(cl[2]), "r"(cl[3]), "r"(cl[4]),
                  "r"(cl[5]), "r"(cl[6]), "r"(cl[7]));
            break;
        case 1:  // col.row, f32 from f32
            asm volatile(
                "mma.sync.aligned.m8n8k4.col.row.f32.f16.f16.f32 {%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9}, {%10, "
                "%11}, {%12, %13, %14, %15, %16, %17, %18, %19};"
                : "=r"(o[0]), "=r"(o[1]), "=r"(o[2]), "=r"(o[3]), "=r"(o[4]), "=r"(o[5]), "=r"(o[6]), "=r"(o[7])
                : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(cl[0]), "r"(cl[1]), "r"(cl[2]), "r"(cl[3]), "r"(cl[4]),
                  "r"(cl[5]), "r"(cl[6]), "r"(cl[7]));
            break;
        case 2:  // row.row, f16 from f16
            asm volatile(
                "mma.sync.aligned.m8n8k4.row.row.f16.f16.f16.f16 {%0, %1, %2, %3}, {%4, %5}, {%6, %7}, {%8, %9, %10, "
                "%11};"
                : "=r"(o[0]), "=r"(o[1]), "=r"(o[2]), "=r"(o[3])
                : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(cl[0]), "r"(cl[1]), "r"(cl[2]), "r"(cl[3]));
            break;
        default:  // col.col, f32 from f16
            asm volatile(
                "mma.sync.aligned.m8n8k4.col.col.f32.f16.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9}, {%10, "
                "%11}, {%12, %13, %14, %15};"
                : "=r"(o[0]), "=r"(o[1]), "=r"(o[2]), "=r"(o[3]), "=r"(o[4]), "=r"(o[5]), "=r"(o[6]), "=r"(o[7])
                : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(cl[0]), "r"(cl[1]), "r"(cl[2]), "r"(cl[3]));
            break;
    }
    for (int i = 0; i < 8; ++i) d[8 * l + i] = o[i];
}

// wgmma with N other than kernels/ptx.h's 64 and 128: D = A B for a 64 x 16 A
// from registers (mma.m16n8k16's A layout per warp) and a K-major B without
// swizzle in dynamic shared memory (core matrix (k/8, n/8) at k/8 * 128 +
// n/8 * 256 bytes).
template <int N>
__global__ void wgmma_n(const unsigned* a, const unsigned char* b, int b_bytes, float* out) {
    extern __shared__ __align__(128) unsigned char smem[];
    for (int i = threadIdx.x; i < b_bytes; i += blockDim.x) smem[i] = b[i];
    __syncthreads();
    const unsigned t = threadIdx.x, a0 = a[4 * t], a1 = a[4 * t + 1], a2 = a[4 * t + 2], a3 = a[4 * t + 3];
    const unsigned long long desc = ((unsigned long long)(__cvta_generic_to_shared(smem) & 0x3FFFF) >> 4) |
                                    ((unsigned long long)(128 >> 4) << 16) | ((unsigned long long)(256 >> 4) << 32);
    float d[N / 2];
    for (int i = 0; i < N / 2; ++i) d[i] = 0.0f;
    asm volatile("wgmma.fence.sync.aligned;");
    if constexpr (N == 8) {
        asm volatile(
            "wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%0, %1, %2, %3}, {%4, %5, %6, %7}, %8, 0, 1, 1, 0;"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc));
    } else {
        asm volatile(
            "wgmma.mma_async.sync.aligned.m64n24k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
            "%11}, {%12, %13, %14, %15}, %16, 0, 1, 1, 0;"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc));
    }
    asm volatile("wgmma.commit_group.sync.aligned;");
    asm volatile("wgmma.wait_group.sync.aligned 0;");
    for (int i = 0; i < N / 2; ++i) out[t * (N / 2) + i] = d[i];
}

}  // namespace

TEST_CASE("inline PTX: ld/st on shared and global memory, vectors and bar.sync", "[emulator][ptx]") {
    const int n = 64;
    std::mt19937 rng(21);
    std::uniform_real_distribution<float> u(-10.0f, 10.0f);
    std::vector<float> in(4 * n);
    std::vector<unsigned long long> in64(n);
    for (auto& x : in) x = u(rng);
    for (auto& x : in64) x = (uint64_t(rng()) << 32) | rng();
    float *d_in = to_device(in), *d_out = device_buffer<float>(4 * n);
    unsigned long long *d_in64 = to_device(in64), *d_out64 = device_buffer<unsigned long long>(n);
    load_store<<<1, n>>>(d_in, d_in64, d_out, d_out64);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const std::vector<float> out = to_host(d_out, 4 * n);
    const std::vector<unsigned long long> out64 = to_host(d_out64, n);
    for (int i = 0; i < n; ++i) {
        const int next = (i + 1) % n;
        for (int k = 0; k < 4; ++k) CHECK(out[4 * i + k] == in[4 * next + k]);
        CHECK(out64[i] == in64[next]);
    }
    for (void* p : {(void*)d_in, (void*)d_out, (void*)d_in64, (void*)d_out64}) cudaFree(p);
}

TEST_CASE("inline PTX: integer arithmetic, shifts, lop3 and prmt against the CPU", "[emulator][ptx]") {
    const int n = 64;
    std::mt19937_64 rng(33);
    std::vector<unsigned> a(n), b(n), c(n);
    std::vector<unsigned long long> x(n), y(n), z(n);
    for (int i = 0; i < n; ++i) {
        a[i] = unsigned(rng()), b[i] = unsigned(rng()), c[i] = unsigned(rng());
        x[i] = rng(), y[i] = rng(), z[i] = rng();
    }
    a[0] = 0x80000000u, b[0] = 0x7fffffffu;  // the extremes of min, max and mul.hi
    unsigned *d_a = to_device(a), *d_b = to_device(b), *d_c = to_device(c),
             *d_o32 = device_buffer<unsigned>(n * kInt32Results);
    unsigned long long *d_x = to_device(x), *d_y = to_device(y), *d_z = to_device(z),
                       *d_o64 = device_buffer<unsigned long long>(n * kInt64Results);
    integer_ops<<<1, n>>>(d_a, d_b, d_c, d_x, d_y, d_z, d_o32, d_o64);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const std::vector<unsigned> o32 = to_host(d_o32, n * kInt32Results);
    const std::vector<unsigned long long> o64 = to_host(d_o64, n * kInt64Results);
    for (int i = 0; i < n; ++i) {
        const unsigned A = a[i], B = b[i], C = c[i], sh = b[i] % 40;
        const int sA = int(A), sB = int(B);
        const unsigned* o = &o32[std::size_t(i) * kInt32Results];
        CHECK(o[0] == A + B);
        CHECK(o[1] == A - B);
        CHECK(o[2] == A * B);
        CHECK(o[3] == unsigned((int64_t(sA) * sB) >> 32));
        CHECK(o[4] == unsigned((uint64_t(A) * B) >> 32));
        CHECK(o[5] == A * B + C);
        CHECK(o[6] == (A & B));
        CHECK(o[7] == (A | B));
        CHECK(o[8] == (A ^ B));
        CHECK(o[9] == ~A);
        CHECK(o[10] == (sh >= 32 ? 0u : A << sh));  // PTX clamps the shift at the width
        CHECK(o[11] == (sh >= 32 ? 0u : A >> sh));
        CHECK(o[12] == unsigned(sA >> (sh >= 32 ? 31 : sh)));
        CHECK(o[13] == unsigned(sA < sB ? sA : sB));
        CHECK(o[14] == (A > B ? A : B));
        CHECK(o[15] == (A ^ B ^ C));
        CHECK(o[16] == ((A & B) | (A & C) | (B & C)));
        unsigned prmt = 0, fixed = 0;
        const uint64_t bytes = uint64_t(A) | (uint64_t(B) << 32);
        for (int k = 0; k < 4; ++k) {
            const unsigned sel = (C >> (4 * k)) & 15u;
            unsigned byte = unsigned(bytes >> (8 * (sel & 7u))) & 0xffu;
            if (sel & 8u) byte = (byte & 0x80u) ? 0xffu : 0u;
            prmt |= byte << (8 * k);
        }
        fixed = (A & 0xffffu) | (B << 16);  // 0x5410: the low halves of a and b
        CHECK(o[17] == prmt);
        CHECK(o[18] == fixed);
        const int64_t wide = int64_t(sA) * sB;
        CHECK(o[19] == unsigned(uint64_t(wide)));
        CHECK(o[20] == unsigned(uint64_t(wide) >> 32));
        CHECK(o[21] == unsigned(A + x[i]));
        const unsigned long long X = x[i], Y = y[i], Z = z[i];
        const unsigned long long* p = &o64[std::size_t(i) * kInt64Results];
        CHECK(p[0] == X + Y);
        CHECK(p[1] == X - Y);
        CHECK(p[2] == X * Y);
        CHECK(p[3] == X * Y + Z);
        CHECK(p[4] == (X & Y));
        CHECK(p[5] == (X | Y));
        CHECK(p[6] == (X ^ Y));
        CHECK(p[7] == X << sh);
        CHECK(p[8] == (unsigned long long)((long long)X >> sh));
        CHECK(p[9] == (unsigned long long)((long long)X < (long long)Y ? X : Y));
        CHECK(p[10] == (X > Y ? X : Y));
        CHECK(p[11] == (unsigned long long)(long long)sA);
    }
    for (void* q : {(void*)d_a, (void*)d_b, (void*)d_c, (void*)d_o32, (void*)d_x, (void*)d_y, (void*)d_z, (void*)d_o64})
        cudaFree(q);
}

TEST_CASE("inline PTX: f32 arithmetic and cvt to and from bf16 and f16 against the CPU", "[emulator][ptx]") {
    const int n = 64;
    std::mt19937 rng(44);
    std::uniform_real_distribution<float> u(-10.0f, 10.0f), pos(0.01f, 1.0f);
    std::vector<float> a(n), b(n), c(n);
    for (int i = 0; i < n; ++i) a[i] = u(rng), b[i] = u(rng), c[i] = pos(rng) * (i % 2 ? 1.0f : -1.0f);
    float *d_a = to_device(a), *d_b = to_device(b), *d_c = to_device(c);
    unsigned* d_out = device_buffer<unsigned>(n * kFloatResults);
    float_ops<<<1, n>>>(d_a, d_b, d_c, d_out);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const std::vector<unsigned> out = to_host(d_out, n * kFloatResults);
    for (int i = 0; i < n; ++i) {
        const float A = a[i], B = b[i], C = c[i];
        const unsigned* o = &out[std::size_t(i) * kFloatResults];
        CHECK(as_float(o[0]) == A + B);
        CHECK(as_float(o[1]) == A - B);
        CHECK(as_float(o[2]) == A * B);
        CHECK(as_float(o[3]) == std::fma(A, B, C));
        CHECK(as_float(o[4]) == std::fmin(A, B));
        CHECK(as_float(o[5]) == std::fmax(A, B));
        CHECK(as_float(o[6]) == Approx(std::exp2(A)).epsilon(1e-6));  // ex2.approx: 2 ulp on the GPU
        CHECK(as_float(o[7]) == Approx(1.0f / A).epsilon(1e-6));
        CHECK(o[8] == (unsigned(bf16_rn(A)) << 16 | bf16_rn(B)));  // a in the upper half
        CHECK(o[9] == (unsigned(f16_rn(A)) << 16 | f16_rn(B)));
        CHECK(o[10] == bf16_rn(C));
        CHECK(as_float(o[11]) == as_float(unsigned(bf16_rn(C)) << 16));
        CHECK(as_float(o[12]) == f16_to_float(f16_rn(C)));
        CHECK(int(o[13]) == int(std::trunc(A * 100.0f)));
        CHECK(o[14] == (C < 0 ? 0u : unsigned(std::nearbyint(C * 1000.0f))));  // u32 saturates at 0
        CHECK(as_float(o[15]) == float(i * 77777 - 1234567));
    }
    for (void* p : {(void*)d_a, (void*)d_b, (void*)d_c, (void*)d_out}) cudaFree(p);
}

TEST_CASE("inline PTX: shfl.sync, elect.sync and activemask against the CPU", "[emulator][ptx]") {
    const int n = 64;
    std::mt19937 rng(55);
    std::vector<unsigned> v(n);
    for (auto& x : v) x = unsigned(rng());
    unsigned *d_v = to_device(v), *d_out = device_buffer<unsigned>(n * kWarpResults);
    warp_ops<<<1, n>>>(d_v, d_out);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const std::vector<unsigned> out = to_host(d_out, n * kWarpResults);
    for (int i = 0; i < n; ++i) {
        const int w = i / 32 * 32, lane = i % 32;
        const unsigned* o = &out[std::size_t(i) * kWarpResults];
        CHECK(o[0] == v[w + (lane ^ 5)]);
        CHECK(o[1] == v[w + v[i] % 32]);
        CHECK(o[2] == (lane >= 3 ? v[i - 3] : v[i]));
        CHECK(o[3] == unsigned(lane >= 3));
        CHECK(o[4] == (lane + 6 < 32 ? v[i + 6] : v[i]));
        CHECK(o[5] == unsigned(lane + 6 < 32));
        CHECK(o[6] == v[w + lane / 8 * 8 + 2]);
        if (i < 32) {
            CHECK(o[7] == (0u | (unsigned(lane == 0) << 8)));
            CHECK(o[8] == 0xffffffffu);
        } else if (i < 48) {
            CHECK(o[7] == (0u | (unsigned(lane == 0) << 8)));
            CHECK(o[8] == 0x0000ffffu);
        } else {
            CHECK(o[7] == 0xdeadu);
        }
    }
    cudaFree(d_v);
    cudaFree(d_out);
}

// nanosleep.u32 with a register and with an immediate: lane 0 of warp 0 and of
// warp 1 take turns through a flag in shared memory, each polling it with
// nanosleep, so each waits for the other to run.
__global__ void take_turns_ptx(unsigned ns, unsigned* out, int steps) {
    __shared__ int turn;
    if (threadIdx.x == 0) turn = 0;
    __syncthreads();
    if (threadIdx.x % 32) return;
    const int me = int(threadIdx.x / 32);
    for (int k = me; k < steps; k += 2) {
        while (atomicAdd(&turn, 0) != k) {
            if (me) asm volatile("nanosleep.u32 %0;" ::"r"(ns) : "memory");
            else asm volatile("nanosleep.u32 1000;" ::: "memory");
        }
        __threadfence_block();
        out[k] = (k ? out[k - 1] : 0u) * 3u + unsigned(me) + 1u;
        __threadfence_block();
        atomicExch(&turn, k + 1);
    }
}

TEST_CASE("inline PTX: nanosleep.u32 lets the thread that sets a polled flag run", "[emulator][ptx]") {
    const int steps = 21;
    unsigned* d_out = device_buffer<unsigned>(steps);
    take_turns_ptx<<<1, 64>>>(500u, d_out, steps);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    const std::vector<unsigned> out = to_host(d_out, steps);
    unsigned want = 0;
    for (int k = 0; k < steps; ++k) {
        want = want * 3u + unsigned(k % 2) + 1u;
        CHECK(out[std::size_t(k)] == want);
    }
    cudaFree(d_out);
}

TEST_CASE("inline PTX: cp.async zero-fill forms, cp.async.bulk and mbarrier expect_tx, counted arrive, test_wait",
          "[emulator][ptx]") {
    const int n = 64;
    std::mt19937 rng(66);
    std::vector<unsigned> in(6 * n), bulk(4 * n);
    for (auto& x : in) x = unsigned(rng()) | 1u;
    for (auto& x : bulk) x = unsigned(rng());
    unsigned *d_in = to_device(in), *d_bulk = to_device(bulk), *d_out = device_buffer<unsigned>(6 * n),
             *d_bulk_out = device_buffer<unsigned>(4 * n);
    async_copies<<<1, n>>>(d_in, d_bulk, d_out, d_bulk_out);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const std::vector<unsigned> out = to_host(d_out, 6 * n), bulk_out = to_host(d_bulk_out, 4 * n);
    for (int i = 0; i < n; ++i) {
        // 16 bytes of which the first i % 17 come from the source.
        unsigned char want[16] = {};
        std::memcpy(want, &in[4 * i], unsigned(i % 17));
        unsigned w[4];
        std::memcpy(w, want, 16);
        for (int k = 0; k < 4; ++k) CHECK(out[6 * i + k] == w[k]);
        for (int k = 0; k < 2; ++k) CHECK(out[6 * i + 4 + k] == (i % 3 == 0 ? 0u : in[4 * n + 2 * i + k]));
        for (int k = 0; k < 4; ++k) CHECK(bulk_out[4 * i + k] == bulk[4 * i + k]);
    }
    for (void* p : {(void*)d_in, (void*)d_bulk, (void*)d_out, (void*)d_bulk_out}) cudaFree(p);
}

TEST_CASE("inline PTX: stmatrix x1, x2, x4 and .trans against the CPU", "[emulator][ptx]") {
    std::mt19937 rng(77);
    std::vector<unsigned> in(4 * 32);
    for (auto& x : in) x = unsigned(rng());
    unsigned* d_in = to_device(in);
    unsigned short* d_out = device_buffer<unsigned short>(kStmatrixHalves);
    store_matrices<<<1, 32>>>(d_in, d_out);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const std::vector<unsigned short> out = to_host(d_out, kStmatrixHalves);
    // Element (r, c) of an 8x8 matrix held in register k: lane 4r + c/2, half c % 2
    // (transposed: lane 4c + r/2, half r % 2).
    auto held = [&](int k, int r, int c, bool trans) {
        const int lane = trans ? 4 * c + r / 2 : 4 * r + c / 2, half = trans ? r % 2 : c % 2;
        return static_cast<unsigned short>(in[4 * lane + k] >> (16 * half));
    };
    struct Form {
        int base, x;
        bool trans;
        int regs[4];
    };
    const Form forms[] = {
        {0, 4, false, {0, 1, 2, 3}}, {4, 2, true, {0, 1}}, {6, 1, false, {2}}, {7, 4, true, {3, 2, 1, 0}}};
    for (const Form& f : forms)
        for (int j = 0; j < f.x; ++j)
            for (int r = 0; r < 8; ++r)
                for (int c = 0; c < 8; ++c) CHECK(out[64 * (f.base + j) + 8 * r + c] == held(f.regs[j], r, c, f.trans));
    cudaFree(d_in);
    cudaFree(d_out);
}

namespace {
// f16 bits of k / 8 for an integer k in [-64, 64] (exact).
unsigned short f16_exact(float f) { return f == 0.0f ? 0 : f16_rn(f); }

struct MmaForm {
    const char* name;
    int k;
    int in;   // 0 bf16, 1 f16, 2 s8 x s8, 3 u8 x s8
    int acc;  // 0 f32, 1 f16, 2 s32, 3 s32 satfinite
};

// Per element, the PTX ISA's fragment tables (a_pos, for A, is in mma_helpers.h):
// with g = lane / 4 and t = lane % 4, where element i of lane's B and C/D
// fragments sits in the matrices.
void b_pos(int k, int i, int lane, int& row, int& col) {
    const int g = lane / 4, t = lane % 4;
    col = g;
    if (k == 8) row = 2 * t + i;
    else if (k == 16) row = 2 * t + (i & 1) + (i >= 2 ? 8 : 0);
    else row = 4 * t + (i & 3) + (i >= 4 ? 16 : 0);
}
void c_pos(int i, int lane, int& row, int& col) { row = lane / 4 + (i >= 2 ? 8 : 0), col = 2 * (lane % 4) + (i & 1); }
}  // namespace

TEST_CASE("inline PTX: mma.sync m16n8k8, m16n8k16 f16 and m16n8k32 s8 place fragments as the ISA tables",
          "[emulator][ptx]") {
    const MmaForm forms[] = {{"m16n8k16 f32.f16", 16, 1, 0}, {"m16n8k16 f16.f16", 16, 1, 1},
                             {"m16n8k8 f32.bf16", 8, 0, 0},  {"m16n8k8 f32.f16", 8, 1, 0},
                             {"m16n8k32 s32.s8", 32, 2, 2},  {"m16n8k32 satfinite s32.u8.s8", 32, 3, 3}};
    std::mt19937 rng(88);
    for (int f = 0; f < 6; ++f) {
        const MmaForm& m = forms[f];
        INFO(m.name);
        const int K = m.k, per = m.in >= 2 ? 4 : 2, bits = 32 / per;
        // Values: floats k/8 (exact in bf16 and f16), or bytes.
        std::vector<double> A(16 * K), B(K * 8), C(16 * 8);
        for (auto& x : A)
            x = m.in >= 2 ? double(m.in == 3 ? int(rng() % 256) : int(rng() % 256) - 128) : (int(rng() % 17) - 8) / 8.0;
        for (auto& x : B) x = m.in >= 2 ? double(int(rng() % 256) - 128) : (int(rng() % 17) - 8) / 8.0;
        for (int i = 0; i < 16 * 8; ++i) {
            if (m.acc >= 2)
                C[i] = (i % 5 == 0) ? (i % 2 ? 2147483000.0 : -2147483000.0) : double(int(rng() % 20001) - 10000);
            else C[i] = (int(rng() % 33) - 16) / 8.0;
        }
        auto enc = [&](double v) -> unsigned {
            if (m.in >= 2) return unsigned(int(v)) & 0xffu;
            return m.in == 0 ? bf16_rn(float(v)) : f16_exact(float(v));
        };
        std::vector<unsigned> a(4 * 32, 0), b(2 * 32, 0), c(4 * 32, 0);
        for (int lane = 0; lane < 32; ++lane) {
            for (int i = 0; i < K / 2; ++i) {  // 16 * K / 32 elements of A per lane
                int row, col;
                a_pos(K, i, lane, row, col);
                a[4 * lane + i / per] |= enc(A[row * K + col]) << (bits * (i % per));
            }
            for (int i = 0; i < K / 4; ++i) {
                int row, col;
                b_pos(K, i, lane, row, col);
                b[2 * lane + i / per] |= enc(B[row * 8 + col]) << (bits * (i % per));
            }
            for (int i = 0; i < 4; ++i) {
                int row, col;
                c_pos(i, lane, row, col);
                const double v = C[row * 8 + col];
                if (m.acc == 1) c[4 * lane + i / 2] |= unsigned(f16_exact(float(v))) << (16 * (i % 2));
                else if (m.acc == 0) c[4 * lane + i] = as_bits(float(v));
                else c[4 * lane + i] = unsigned(int(v));
            }
        }
        unsigned *d_a = to_device(a), *d_b = to_device(b), *d_c = to_device(c), *d_d = device_buffer<unsigned>(4 * 32);
        mma_forms<<<1, 32>>>(f, d_a, d_b, d_c, d_d);
        REQUIRE(cudaGetLastError() == cudaSuccess);
        const std::vector<unsigned> d = to_host(d_d, 4 * 32);
        for (int lane = 0; lane < 32; ++lane)
            for (int i = 0; i < 4; ++i) {
                int row, col;
                c_pos(i, lane, row, col);
                double want = C[row * 8 + col];
                for (int k = 0; k < K; ++k) want += A[row * K + k] * B[k * 8 + col];
                if (m.acc == 3) want = std::min(std::max(want, -2147483648.0), 2147483647.0);
                if (m.acc >= 2) {
                    CHECK(int(d[4 * lane + i]) == int32_t(uint32_t(int64_t(want))));
                } else if (m.acc == 1) {
                    CHECK(f16_to_float(static_cast<unsigned short>(d[4 * lane + i / 2] >> (16 * (i % 2)))) ==
                          Approx(want).margin(0.02));
                } else {
                    CHECK(as_float(d[4 * lane + i]) == Approx(want).margin(1e-5));
                }
            }
        for (void* p : {(void*)d_a, (void*)d_b, (void*)d_c, (void*)d_d}) cudaFree(p);
    }
}

namespace {
template <int N>
void check_wgmma_n() {
    std::mt19937 rng(99 + N);
    std::vector<double> A(64 * 16), B(16 * N);
    for (auto& x : A) x = (int(rng() % 17) - 8) / 8.0;
    for (auto& x : B) x = (int(rng() % 17) - 8) / 8.0;
    std::vector<unsigned> a(128 * 4, 0);
    for (int tid = 0; tid < 128; ++tid)
        for (int i = 0; i < 8; ++i) {
            int row, col;
            a_pos(16, i, tid % 32, row, col);
            a[4 * tid + i / 2] |= unsigned(bf16_rn(float(A[(16 * (tid / 32) + row) * 16 + col]))) << (16 * (i % 2));
        }
    const int bytes = (N / 8) * 256;
    std::vector<unsigned char> b(bytes, 0xff);
    for (int k = 0; k < 16; ++k)
        for (int n = 0; n < N; ++n) {
            const int at = (n / 8) * 256 + (k / 8) * 128 + (n % 8) * 16 + (k % 8) * 2;
            const unsigned short v = bf16_rn(float(B[k * N + n]));
            b[at] = v & 0xff, b[at + 1] = v >> 8;
        }
    unsigned* d_a = to_device(a);
    unsigned char* d_b = to_device(b);
    float* d_out = device_buffer<float>(128 * (N / 2));
    wgmma_n<N><<<1, 128, bytes>>>(d_a, d_b, bytes, d_out);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const std::vector<float> out = to_host(d_out, 128 * (N / 2));
    for (int tid = 0; tid < 128; ++tid) {
        const int w = tid / 32, g = tid % 32 / 4, t = tid % 4;
        for (int j = 0; j < N / 8; ++j)
            for (int i = 0; i < 4; ++i) {
                const int row = 16 * w + g + 8 * (i / 2), col = 8 * j + 2 * t + i % 2;
                double want = 0;
                for (int k = 0; k < 16; ++k) want += A[row * 16 + k] * B[k * N + col];
                CHECK(out[tid * (N / 2) + 4 * j + i] == Approx(want).margin(1e-5));
            }
    }
    for (void* p : {(void*)d_a, (void*)d_b, (void*)d_out}) cudaFree(p);
}
}  // namespace

namespace {
// The PTX ISA's fragments of mma.m8n8k4 ("Matrix Fragments for mma.m8n8k4
// with .f16 floating point type"), for a lane's element i; the quad-pair of
// the lane, (lane % 16) / 4, owns its own A, B and C.
int m8_upper(int lane) { return lane >= 16 ? 4 : 0; }
void m8_a_pos(bool col_major, int i, int lane, int& row, int& col) {
    if (col_major) row = i + m8_upper(lane), col = lane % 4;
    else row = lane % 4 + m8_upper(lane), col = i;
}
void m8_b_pos(bool row_major, int i, int lane, int& row, int& col) {
    if (row_major) row = lane % 4, col = i + m8_upper(lane);
    else row = i, col = lane % 4 + m8_upper(lane);
}
void m8_c_pos(bool f16, int i, int lane, int& row, int& col) {
    if (f16) {
        row = lane % 4 + m8_upper(lane), col = i;
    } else {
        row = (lane % 4) % 2 + (i & 2) + m8_upper(lane);
        col = (i & 4) + ((lane % 4) & 2) + (i & 1);
    }
}
}  // namespace

TEST_CASE("inline PTX: mma.sync m8n8k4 places quad-pair fragments as the ISA tables", "[emulator][ptx]") {
    struct Form {
        const char* name;
        bool a_col, b_row, d_f16, c_f16;
    };
    const Form forms[] = {{"row.col f32.f32", false, false, false, false},
                          {"col.row f32.f32", true, true, false, false},
                          {"row.row f16.f16", false, true, true, true},
                          {"col.col f32.f16", true, false, false, true}};
    std::mt19937 rng(84);
    for (int f = 0; f < 4; ++f) {
        const Form& m = forms[f];
        INFO(m.name);
        // Four quad-pairs, each its own 8x4 A, 4x8 B and 8x8 C; values k/8 (exact in f16).
        std::vector<double> A(4 * 32), B(4 * 32), C(4 * 64);
        for (auto& x : A) x = (int(rng() % 17) - 8) / 8.0;
        for (auto& x : B) x = (int(rng() % 17) - 8) / 8.0;
        for (auto& x : C) x = (int(rng() % 33) - 16) / 8.0;
        std::vector<unsigned> a(2 * 32, 0), b(2 * 32, 0), c(8 * 32, 0);
        for (int lane = 0; lane < 32; ++lane) {
            const int q = (lane % 16) / 4;
            for (int i = 0; i < 4; ++i) {
                int row, col;
                m8_a_pos(m.a_col, i, lane, row, col);
                a[2 * lane + i / 2] |= unsigned(f16_exact(float(A[32 * q + 4 * row + col]))) << (16 * (i % 2));
                m8_b_pos(m.b_row, i, lane, row, col);
                b[2 * lane + i / 2] |= unsigned(f16_exact(float(B[32 * q + 8 * row + col]))) << (16 * (i % 2));
            }
            for (int i = 0; i < 8; ++i) {
                int row, col;
                m8_c_pos(m.c_f16, i, lane, row, col);
                const float v = float(C[64 * q + 8 * row + col]);
                if (m.c_f16) c[8 * lane + i / 2] |= unsigned(f16_exact(v)) << (16 * (i % 2));
                else c[8 * lane + i] = as_bits(v);
            }
        }
        unsigned *d_a = to_device(a), *d_b = to_device(b), *d_c = to_device(c), *d_d = device_buffer<unsigned>(8 * 32);
        mma_m8n8k4<<<1, 32>>>(f, d_a, d_b, d_c, d_d);
        REQUIRE(cudaGetLastError() == cudaSuccess);
        const std::vector<unsigned> d = to_host(d_d, 8 * 32);
        for (int lane = 0; lane < 32; ++lane)
            for (int i = 0; i < 8; ++i) {
                const int q = (lane % 16) / 4;
                int row, col;
                m8_c_pos(m.d_f16, i, lane, row, col);
                double want = C[64 * q + 8 * row + col];
                for (int k = 0; k < 4; ++k) want += A[32 * q + 4 * row + k] * B[32 * q + 8 * k + col];
                INFO("lane " << lane << " element " << i);
                if (m.d_f16) {
                    CHECK(f16_to_float(static_cast<unsigned short>(d[8 * lane + i / 2] >> (16 * (i % 2)))) ==
                          Approx(want).margin(0.02));
                } else {
                    CHECK(as_float(d[8 * lane + i]) == Approx(want).margin(1e-5));
                }
            }
        for (void* p : {(void*)d_a, (void*)d_b, (void*)d_c, (void*)d_d}) cudaFree(p);
    }
}

TEST_CASE("inline PTX: wgmma m64n8k16 and m64n24k16 bf16 give A*B", "[emulator][ptx]") {
    check_wgmma_n<8>();
    check_wgmma_n<24>();
}
