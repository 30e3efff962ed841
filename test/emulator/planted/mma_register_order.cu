// Planted bug: the A registers of an mma.sync are written in the wrong order
// ({a0, a2, a1, a3}): valid PTX, which the GPU runs with A's rows 8..15 and
// columns 8..15 exchanged. The emulator executes the asm text itself, so the
// product is wrong there too and the check against the CPU fails.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cuda_bf16.h>
#include "kernels/cuda_check.h"

__device__ uint32_t pack(unsigned short lo, unsigned short hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

// One warp: D (16 x 8) = A (16 x 16, row-major) B (16 x 8, B[k * 8 + n]), in the fragment layouts of kernels/ptx.h.
__global__ void mma_kernel(const unsigned short* A, const unsigned short* B, float* D) {
    const unsigned lane = threadIdx.x, g = lane / 4, t = lane % 4;
    const uint32_t a0 = pack(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]);
    const uint32_t a1 = pack(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]);
    const uint32_t a2 = pack(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]);
    const uint32_t a3 = pack(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9]);
    const uint32_t b0 = pack(B[(2 * t) * 8 + g], B[(2 * t + 1) * 8 + g]);
    const uint32_t b1 = pack(B[(2 * t + 8) * 8 + g], B[(2 * t + 9) * 8 + g]);
    const float zero = 0.0f;
    float d[4];
#ifndef PLANTED_BUG
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%10, %10, %10, %10};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(zero));
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %6, %5, %7}, {%8, %9}, "
                 "{%10, %10, %10, %10};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(zero));
#endif
    for (unsigned i = 0; i < 4; ++i) D[(g + 8 * (i / 2)) * 8 + 2 * t + (i % 2)] = d[i];
}

int main() {
    static unsigned short a[256], b[128];
    static float fa[256], fb[128];
    unsigned s = 12345;
    auto next = [&] {  // a random multiple of 1/16 in [-2, 2], never 0
        s = s * 1103515245u + 12345u;
        int v = int((s >> 16) % 64) - 32;
        return float(v == 0 ? 1 : v) / 16.0f;
    };
    for (int i = 0; i < 256; ++i) fa[i] = next(), a[i] = __bfloat16_as_ushort(__float2bfloat16(fa[i]));
    for (int i = 0; i < 128; ++i) fb[i] = next(), b[i] = __bfloat16_as_ushort(__float2bfloat16(fb[i]));
    unsigned short *d_a, *d_b;
    float* d_d;
    CUDA_CHECK(cudaMalloc(&d_a, sizeof(a)));
    CUDA_CHECK(cudaMalloc(&d_b, sizeof(b)));
    CUDA_CHECK(cudaMalloc(&d_d, 128 * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(d_a, a, sizeof(a), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_b, b, sizeof(b), cudaMemcpyHostToDevice));
    mma_kernel<<<1, 32>>>(d_a, d_b, d_d);
    CUDA_CHECK_LAUNCH("mma_kernel");
    static float d[128];
    CUDA_CHECK(cudaMemcpy(d, d_d, sizeof(d), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 8; ++n) {
            float want = 0.0f;
            for (int k = 0; k < 16; ++k) want += fa[m * 16 + k] * fb[k * 8 + n];
            if (!(std::fabs(d[m * 8 + n] - want) <= 1e-3f)) {  // NaN fails too
                if (!bad) std::printf("D[%d][%d] = %g, want %g\n", m, n, d[m * 8 + n], want);
                bad = 1;
            }
        }
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
