// wgmma.mma_async on every shared-memory layout the PTX ISA gives its
// descriptor ("Shared Memory Matrix Layout": no swizzle, 32-, 64- and
// 128-byte swizzles, K-major and MN-major), for A from shared memory or
// registers, bf16 and f16 inputs, f32 and f16 accumulators, each against a
// double-precision product; and TMA boxes with the 32- and 64-byte swizzles.
// The layouts are written here from the ISA's description, not from the
// emulator's code.
#include <catch2/catch.hpp>
#include <cuda.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "device_buffers.h"
#include "kernels/ptx.h"
#include "mma_helpers.h"

namespace {

using emu_test::a_pos;
using emu_test::bf16_rn;
using emu_test::f16_rn;
using emu_test::f16_to_float;
using emu_test::to_device;
using emu_test::to_host;

// D (64 x 128) = A (64 x 64) B (64 x 128) in four k-steps of 16.
constexpr int kM = 64, kN = 128, kK = 64, kSteps = kK / 16;

struct WgmmaRun {
    const unsigned char* tiles;             // A (when in shared memory) and B, as they lie in shared memory
    int bytes;                              // their size
    const unsigned* a_regs;                 // A from registers: 4 per thread and k-step, [(s * 128 + tid) * 4 + j]
    unsigned long long a_fields, b_fields;  // the descriptors without their start address
    int a_off, b_off;                       // where the tiles start in dynamic shared memory
    int a_step[kSteps], b_step[kSteps];     // what each k-step adds to the start address, in bytes
    void* out;                              // thread tid's D registers at [tid * count + i]
};

__device__ unsigned long long start_field(unsigned address) { return (address & 0x3FFFFu) >> 4; }

// One warpgroup, f32 accumulators; scale-d is 0 on the first k-step, so the
// garbage the accumulators start with must not count.
template <bool F16, bool A_SMEM, int TA, int TB, int SA, int SB>
__global__ void wgmma_f32_kernel(WgmmaRun p) {
    extern __shared__ __align__(1024) unsigned char smem[];
    for (int i = threadIdx.x; i < p.bytes; i += blockDim.x) smem[i] = p.tiles[i];
    asm volatile("fence.proxy.async.shared::cta;");
    __syncthreads();
    const unsigned tid = threadIdx.x, base = unsigned(__cvta_generic_to_shared(smem));
    float d[64];
    for (int i = 0; i < 64; ++i) d[i] = 1000.0f + float(tid + i);
    asm volatile("wgmma.fence.sync.aligned;");
    for (int s = 0; s < kSteps; ++s) {
        const unsigned long long da = p.a_fields | start_field(base + p.a_off + p.a_step[s]),
                                 db = p.b_fields | start_field(base + p.b_off + p.b_step[s]);
        const int acc = s > 0;
        const unsigned* a = p.a_regs + (s * 128 + tid) * 4;
        if constexpr (A_SMEM && !F16) {
            asm volatile(
                "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
                "%11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, "
                "%31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, "
                "%51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, %67, %68, %69, "
                "%70;\n}\n"
                : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),
                  "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                  "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),
                  "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
                  "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),
                  "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]),
                  "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                : "l"(da), "l"(db), "r"(acc), "n"(SA), "n"(SB), "n"(TA), "n"(TB));
        } else if constexpr (A_SMEM) {
            asm volatile(
                "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
                "%11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, "
                "%31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, "
                "%51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, %67, %68, %69, "
                "%70;\n}\n"
                : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),
                  "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                  "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),
                  "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
                  "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),
                  "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]),
                  "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                : "l"(da), "l"(db), "r"(acc), "n"(SA), "n"(SB), "n"(TA), "n"(TB));
        } else if constexpr (!F16) {
            asm volatile(
                "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
                "%11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, "
                "%31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, "
                "%51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, %70, "
                "%71, %72;\n}\n"
                : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),
                  "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                  "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),
                  "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
                  "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),
                  "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]),
                  "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc), "n"(SA), "n"(SB), "n"(TB));
        } else {
            asm volatile(
                "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
                "%11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, "
                "%31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, "
                "%51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, %70, "
                "%71, %72;\n}\n"
                : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),
                  "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                  "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),
                  "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
                  "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),
                  "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]),
                  "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc), "n"(SA), "n"(SB), "n"(TB));
        }
        (void)da, (void)a;
    }
    asm volatile("wgmma.commit_group.sync.aligned;");
    asm volatile("wgmma.wait_group.sync.aligned 0;");
    for (int i = 0; i < 64; ++i) static_cast<float*>(p.out)[tid * 64 + i] = d[i];
}

// The same with f16 accumulators, two to a 32-bit register.
template <bool A_SMEM, int TA, int TB>
__global__ void wgmma_f16_kernel(WgmmaRun p) {
    extern __shared__ __align__(1024) unsigned char smem[];
    for (int i = threadIdx.x; i < p.bytes; i += blockDim.x) smem[i] = p.tiles[i];
    asm volatile("fence.proxy.async.shared::cta;");
    __syncthreads();
    const unsigned tid = threadIdx.x, base = unsigned(__cvta_generic_to_shared(smem));
    unsigned d[32];
    for (int i = 0; i < 32; ++i) d[i] = 0x5bff5bffu;  // 255.875, garbage for scale-d = 0
    asm volatile("wgmma.fence.sync.aligned;");
    for (int s = 0; s < kSteps; ++s) {
        const unsigned long long da = p.a_fields | start_field(base + p.a_off + p.a_step[s]),
                                 db = p.b_fields | start_field(base + p.b_off + p.b_step[s]);
        const int acc = s > 0;
        const unsigned* a = p.a_regs + (s * 128 + tid) * 4;
        if constexpr (A_SMEM) {
            asm volatile(
                "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                "wgmma.mma_async.sync.aligned.m64n128k16.f16.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
                "%11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, "
                "%31}, %32, %33, p, 1, 1, %35, %36;\n}\n"
                : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
                  "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
                  "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]),
                  "+r"(d[23]), "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]),
                  "+r"(d[30]), "+r"(d[31])
                : "l"(da), "l"(db), "r"(acc), "n"(TA), "n"(TB));
        } else {
            asm volatile(
                "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                "wgmma.mma_async.sync.aligned.m64n128k16.f16.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
                "%11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, "
                "%31}, {%32, %33, %34, %35}, %36, p, 1, 1, "
                "%38;\n}\n"
                : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
                  "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
                  "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]),
                  "+r"(d[23]), "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]),
                  "+r"(d[30]), "+r"(d[31])
                : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc), "n"(TB));
        }
        (void)da, (void)a;
    }
    asm volatile("wgmma.commit_group.sync.aligned;");
    asm volatile("wgmma.wait_group.sync.aligned 0;");
    for (int i = 0; i < 32; ++i) static_cast<unsigned*>(p.out)[tid * 32 + i] = d[i];
}

// ---- the layouts, from the PTX ISA ----------------------------------------------
// An operand is an MN x K tile of 16-bit elements (MN: A's M or B's N), element
// (mn, k) at v[mn * kK + k]. The descriptor's layout type: 0 none, 1 the
// 128-byte swizzle, 2 64-byte, 3 32-byte.
struct Layout {
    int type;
    bool mn_major;
};
int span_bytes(int type) { return type == 1 ? 128 : type == 2 ? 64 : type == 3 ? 32 : 0; }
const char* layout_name(Layout l) {
    static const char* names[2][4] = {{"K-major no swizzle", "K-major 128B", "K-major 64B", "K-major 32B"},
                                      {"MN-major no swizzle", "MN-major 128B", "MN-major 64B", "MN-major 32B"}};
    return names[l.mn_major][l.type];
}

// A tile laid out as a kernel would (as TMA boxes would land), with the
// descriptor's LBO and SBO that describe it and each k-step's start advance:
//   K-major, no swizzle: 8 x 16-byte core matrices, the MN / 8 of one k/8
//     column after another: LBO (next 8 k) = MN * 16, SBO (next 8 mn) = 128.
//   K-major, swizzled with span S: panels of S / 2 k's, each MN rows of S
//     bytes; SBO = 8 rows = 8 S, LBO unused (1); a k-step of 16 moves 32 bytes
//     along the row, or to the next panel.
//   MN-major, no swizzle: core matrices of 8 k-rows of 8 mn (16 bytes): SBO
//     (next 8 mn) = 128, LBO (next 8 k) = MN * 16.
//   MN-major, swizzled with span S: panels of S / 2 mn's, each K rows of S
//     bytes; LBO (next panel) = K * S, SBO (next 8 k-rows) = 8 S.
// The swizzle (CuTe's Swizzle<b, 4, 3>: the tile starts 1024-byte aligned, so
// offsets are addresses) then moves the 16-byte chunk c of each S-byte row to
// c ^ (the address bits 7.. of the row, b of them).
struct Placed {
    std::vector<unsigned char> bytes;
    unsigned long long fields = 0;
    int step[kSteps] = {};
};
Placed place(const std::vector<unsigned short>& v, int mn_count, Layout l) {
    Placed p;
    p.bytes.assign(std::size_t(mn_count) * kK * 2, 0);
    const int S = span_bytes(l.type);
    int lbo, sbo;
    if (!l.type) lbo = mn_count * 16, sbo = 128;
    else if (l.mn_major) lbo = kK * S, sbo = 8 * S;
    else lbo = 16, sbo = 8 * S;
    for (int mn = 0; mn < mn_count; ++mn)
        for (int k = 0; k < kK; ++k) {
            std::size_t off;
            if (!l.type && !l.mn_major) off = (k / 8) * lbo + (mn / 8) * sbo + (mn % 8) * 16 + (k % 8) * 2;
            else if (!l.type) off = (k / 8) * lbo + (mn / 8) * sbo + (k % 8) * 16 + (mn % 8) * 2;
            else if (l.mn_major) off = (mn / (S / 2)) * lbo + k * S + (mn % (S / 2)) * 2;
            else off = (k / (S / 2)) * (mn_count * S) + mn * S + (k % (S / 2)) * 2;
            if (l.type) {
                const int b = l.type == 1 ? 3 : l.type == 2 ? 2 : 1;
                off ^= ((off >> 7) & ((1u << b) - 1)) << 4;
            }
            p.bytes[off] = v[std::size_t(mn) * kK + k] & 0xff;
            p.bytes[off + 1] = v[std::size_t(mn) * kK + k] >> 8;
        }
    for (int s = 0; s < kSteps; ++s) {
        const int k = 16 * s;
        if (!l.type) p.step[s] = (k / 8) * lbo;
        else if (l.mn_major) p.step[s] = k * S;
        else p.step[s] = (k / (S / 2)) * (mn_count * S) + (k % (S / 2)) * 2;
    }
    p.fields = (static_cast<unsigned long long>(lbo >> 4) << 16) | (static_cast<unsigned long long>(sbo >> 4) << 32) |
               (static_cast<unsigned long long>(l.type) << 62);
    return p;
}

struct Case {
    bool f16;      // f16 inputs (else bf16)
    bool f16_acc;  // f16 accumulators (f16 inputs)
    bool a_smem;   // A from shared memory (else registers)
    Layout a, b;   // a: when in shared memory
    int sa, sb;    // imm-scale-a, imm-scale-b
    std::string name() const {
        std::ostringstream o;
        o << (f16_acc ? "f16.f16.f16"
              : f16   ? "f32.f16.f16"
                      : "f32.bf16.bf16")
          << ", A " << (a_smem ? layout_name(a) : "from registers") << ", B " << layout_name(b) << ", scales " << sa
          << " " << sb;
        return o.str();
    }
};

template <class Kernel>
void launch(Kernel k, const WgmmaRun& run) {
    REQUIRE(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, run.bytes) == cudaSuccess);
    k<<<1, 128, run.bytes>>>(run);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
}

// Runs the kernel of case c on `run` (the kernels' template arguments are the asm's immediates).
void run_case(const Case& c, const WgmmaRun& run) {
    const int ta = c.a_smem && c.a.mn_major, tb = c.b.mn_major;
    if (c.f16_acc) {
        if (!c.a_smem)
            return tb ? launch(wgmma_f16_kernel<false, 0, 1>, run) : launch(wgmma_f16_kernel<false, 0, 0>, run);
        if (ta) return tb ? launch(wgmma_f16_kernel<true, 1, 1>, run) : launch(wgmma_f16_kernel<true, 1, 0>, run);
        return tb ? launch(wgmma_f16_kernel<true, 0, 1>, run) : launch(wgmma_f16_kernel<true, 0, 0>, run);
    }
    if (!c.f16) {  // bf16: scales 1
        if (!c.a_smem)
            return tb ? launch(wgmma_f32_kernel<false, false, 0, 1, 1, 1>, run)
                      : launch(wgmma_f32_kernel<false, false, 0, 0, 1, 1>, run);
        if (ta)
            return tb ? launch(wgmma_f32_kernel<false, true, 1, 1, 1, 1>, run)
                      : launch(wgmma_f32_kernel<false, true, 1, 0, 1, 1>, run);
        return tb ? launch(wgmma_f32_kernel<false, true, 0, 1, 1, 1>, run)
                  : launch(wgmma_f32_kernel<false, true, 0, 0, 1, 1>, run);
    }
    // f16: A from registers negated (imm-scale-a -1), K-major A from shared memory with B negated.
    if (!c.a_smem)
        return tb ? launch(wgmma_f32_kernel<true, false, 0, 1, -1, 1>, run)
                  : launch(wgmma_f32_kernel<true, false, 0, 0, -1, 1>, run);
    if (ta)
        return tb ? launch(wgmma_f32_kernel<true, true, 1, 1, 1, 1>, run)
                  : launch(wgmma_f32_kernel<true, true, 1, 0, 1, 1>, run);
    return tb ? launch(wgmma_f32_kernel<true, true, 0, 1, 1, -1>, run)
              : launch(wgmma_f32_kernel<true, true, 0, 0, 1, -1>, run);
}

void check_case(const Case& c, std::mt19937& rng) {
    INFO(c.name());
    // Random values of either sign in [1/4, 2), never zero, exact in the input type.
    std::uniform_real_distribution<float> mag(0.25f, 2.0f);
    auto draw = [&](double& x) {
        const float f = (rng() & 1 ? -1.0f : 1.0f) * mag(rng);
        const unsigned short h = c.f16 ? f16_rn(f) : bf16_rn(f);
        x = c.f16 ? f16_to_float(h) : emu_test::as_float(unsigned(h) << 16);
        return h;
    };
    std::vector<double> A(kM * kK), B(kN * kK);  // A[m * kK + k], B[n * kK + k]
    std::vector<unsigned short> a16(A.size()), b16(B.size());
    for (std::size_t i = 0; i < A.size(); ++i) a16[i] = draw(A[i]);
    for (std::size_t i = 0; i < B.size(); ++i) b16[i] = draw(B[i]);
    const Placed pa = place(a16, kM, c.a), pb = place(b16, kN, c.b);
    std::vector<unsigned char> tiles(pa.bytes);
    tiles.insert(tiles.end(), pb.bytes.begin(), pb.bytes.end());
    // A from registers: per k-step the mma A fragment of warp w's rows 16w..16w+15.
    std::vector<unsigned> regs(std::size_t(kSteps) * 128 * 4, 0);
    for (int s = 0; s < kSteps; ++s)
        for (int tid = 0; tid < 128; ++tid)
            for (int i = 0; i < 8; ++i) {
                int row, col;
                a_pos(16, i, tid % 32, row, col);
                regs[(std::size_t(s) * 128 + tid) * 4 + i / 2] |=
                    unsigned(a16[std::size_t(16 * (tid / 32) + row) * kK + 16 * s + col]) << (16 * (i % 2));
            }
    WgmmaRun run{};
    unsigned char* d_tiles = to_device(tiles);
    unsigned* d_regs = to_device(regs);
    const int count = c.f16_acc ? 32 : 64;
    std::vector<unsigned> zero(std::size_t(128) * count, 0);
    unsigned* d_out = to_device(zero);
    run.tiles = d_tiles;
    run.bytes = int(tiles.size());
    run.a_regs = d_regs;
    run.a_fields = pa.fields, run.b_fields = pb.fields;
    run.a_off = 0, run.b_off = int(pa.bytes.size());
    for (int s = 0; s < kSteps; ++s) run.a_step[s] = pa.step[s], run.b_step[s] = pb.step[s];
    run.out = d_out;
    run_case(c, run);
    const std::vector<unsigned> out = to_host(d_out, zero.size());
    int bad = 0;
    std::string first;
    for (int tid = 0; tid < 128; ++tid) {
        const int w = tid / 32, g = tid % 32 / 4, t = tid % 4;
        for (int j = 0; j < kN / 8; ++j)
            for (int h = 0; h < 2; ++h)
                for (int e = 0; e < 2; ++e) {
                    const int m = 16 * w + g + 8 * h, n = 8 * j + 2 * t + e;
                    double want = 0, mags = 0, partials = 0;
                    for (int k = 0; k < kK; ++k) {
                        const double x = c.sa * c.sb * A[std::size_t(m) * kK + k] * B[std::size_t(n) * kK + k];
                        want += x, mags += std::fabs(x);
                        if (k % 16 == 15) partials += std::fabs(want);
                    }
                    // fp32 sums in k order: at most K units of 2^-24 of the magnitudes; an f16
                    // accumulator also rounds once per k-step (2^-11 of each partial sum).
                    double tol = kK * std::ldexp(mags, -24) + 1e-6, got;
                    if (c.f16_acc) {
                        tol += std::ldexp(partials, -11) + std::ldexp(1.0, -14);
                        got = f16_to_float(static_cast<unsigned short>(out[tid * 32 + 2 * j + h] >> (16 * e)));
                    } else {
                        got = emu_test::as_float(out[tid * 64 + 4 * j + 2 * h + e]);
                    }
                    if (!(std::fabs(got - want) <= tol)) {
                        if (!bad++) {
                            std::ostringstream o;
                            o << "D[" << m << "][" << n << "] = " << got << ", want " << want;
                            first = o.str();
                        }
                    }
                }
    }
    INFO(bad << " wrong elements, the first " << first);
    CHECK(bad == 0);
    for (void* q : {(void*)d_tiles, (void*)d_regs, (void*)d_out}) cudaFree(q);
}

}  // namespace

TEST_CASE("wgmma: every swizzle, K-major and MN-major, A from shared memory or registers, bf16 and f16",
          "[emulator][ptx][wgmma]") {
    std::mt19937 rng(2024);
    int cases = 0;
    for (int f16 = 0; f16 < 2; ++f16)
        for (int bt = 0; bt < 4; ++bt)
            for (int bmn = 0; bmn < 2; ++bmn)
                for (int as = 0; as < 3; ++as) {  // registers, K-major, MN-major
                    Case c{};
                    c.f16 = f16, c.a_smem = as > 0;
                    c.b = {bt, bmn == 1};
                    c.a = {(bt + as) % 4, as == 2};  // A's swizzle differs from B's
                    c.sa = f16 && !c.a_smem ? -1 : 1;
                    c.sb = f16 && as == 1 ? -1 : 1;
                    check_case(c, rng);
                    ++cases;
                }
    CHECK(cases == 48);
}

TEST_CASE("wgmma: f16 accumulators, two to a register, with A from registers and from shared memory",
          "[emulator][ptx][wgmma]") {
    std::mt19937 rng(77);
    check_case(Case{true, true, false, {0, false}, {2, true}, 1, 1}, rng);
    check_case(Case{true, true, true, {3, true}, {1, false}, 1, 1}, rng);
    check_case(Case{true, true, true, {0, false}, {0, true}, 1, 1}, rng);
}

namespace {
// One TMA box into 1024-byte aligned dynamic shared memory, copied out byte for byte.
__global__ void tma_swizzle_kernel(const __grid_constant__ CUtensorMap map, int c0, int c1, int c2, int bytes,
                                   unsigned char* out) {
    extern __shared__ __align__(1024) unsigned char tma_smem[];
    __shared__ __align__(8) uint64_t bar;
    if (threadIdx.x == 0) mbarrier_init(&bar, 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        mbarrier_arrive_expect_tx(&bar, unsigned(bytes));
        tma_load_3d(tma_smem, &map, c0, c1, c2, &bar);
    }
    mbarrier_wait_parity(&bar, 0);
    for (int i = threadIdx.x; i < bytes; i += blockDim.x) out[i] = tma_smem[i];
}
}  // namespace

TEST_CASE("TMA: boxes with the 32- and 64-byte swizzles land at the swizzled addresses", "[emulator][ptx][tma]") {
    const uint64_t dims[3] = {48, 40, 3};  // bf16, rows of 48 elements (96 bytes)
    const uint64_t strides[2] = {48 * 2, 48 * 2 * 40};
    std::mt19937 rng(5);
    std::vector<unsigned short> x(dims[0] * dims[1] * dims[2]);
    for (auto& v : x) v = bf16_rn((rng() & 1 ? -1.0f : 1.0f) * (0.5f + float(rng() % 1000) / 1000.0f));
    unsigned short* d_x = to_device(x);
    for (int span : {32, 64}) {
        INFO("swizzle " << span << " bytes");
        const CUtensorMapSwizzle swz = span == 32 ? CU_TENSOR_MAP_SWIZZLE_32B : CU_TENSOR_MAP_SWIZZLE_64B;
        const uint32_t inner = uint32_t(span / 2), rows = 24;
        CUtensorMap map;
        // The driver's rule: the inner box dimension at most the span; the emulator takes exactly the span.
        const uint32_t too_wide[3] = {inner * 2, rows, 1}, narrow[3] = {8, rows, 1};
        CHECK(tma_encode_bf16_3d(&map, d_x, dims, strides, too_wide, swz) == CUDA_ERROR_INVALID_VALUE);
        if (span == 64) CHECK(tma_encode_bf16_3d(&map, d_x, dims, strides, narrow, swz) == CUDA_ERROR_NOT_SUPPORTED);
        const uint32_t box[3] = {inner, rows, 1};
        REQUIRE(tma_encode_bf16_3d(&map, d_x, dims, strides, box, swz) == CUDA_SUCCESS);
        const int bytes = int(inner * rows * 2), c0 = 40, c1 = 20, c2 = 1;  // partly past dims 0 and 1: zeros
        std::vector<unsigned char> zero(std::size_t(bytes), 0xee);
        unsigned char* d_out = to_device(zero);
        tma_swizzle_kernel<<<1, 64, bytes>>>(map, c0, c1, c2, bytes, d_out);
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
        const std::vector<unsigned char> out = to_host(d_out, std::size_t(bytes));
        // Row r of the box is `span` bytes; its 16-byte chunk q lands at chunk q ^ (r / 4 % 2)
        // for 32 bytes, q ^ (r / 2 % 4) for 64 (the 8-row pattern of 256 or 512 bytes).
        for (uint32_t r = 0; r < rows; ++r)
            for (uint32_t i = 0; i < inner; ++i) {
                const uint32_t q = i * 2 / 16, within = i * 2 % 16;
                const uint32_t moved = span == 32 ? q ^ (r / 4 % 2) : q ^ (r / 2 % 4);
                const std::size_t at = std::size_t(r) * span + moved * 16 + within;
                const long long gx = c0 + i, gy = c1 + r;
                const unsigned short want =
                    gx < (long long)dims[0] && gy < (long long)dims[1] ? x[(c2 * dims[1] + gy) * dims[0] + gx] : 0;
                INFO("row " << r << " element " << i);
                REQUIRE((out[at] | (out[at + 1] << 8)) == want);
            }
        cudaFree(d_out);
    }
    cudaFree(d_x);
}
