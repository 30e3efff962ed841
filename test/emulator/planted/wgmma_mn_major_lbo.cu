// Planted bug: B is MN-major with the 64-byte swizzle, in two panels of 32
// columns (each 16 k-rows of 64 bytes, the next panel LBO = 1024 bytes on;
// the next 8 k-rows SBO = 512 bytes on), but the descriptor has LBO and SBO
// swapped. The GPU then reads B's elements from the wrong places; the
// emulator decodes the same descriptor, so the product is wrong there too and
// the check against the CPU fails.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include "kernels/cuda_check.h"
#include "kernels/ptx.h"

__device__ uint32_t pack(unsigned short lo, unsigned short hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

// One warpgroup: D (64 x 64) = A (64 x 16, row-major, from registers) B (16 x 64, B[k * 64 + n]).
__global__ void wgmma_kernel(const unsigned short* A, const unsigned short* B, float* D) {
    extern __shared__ __align__(1024) unsigned char b_bytes[];
    // MN-major, 64-byte swizzle: element (k, n) at (n / 32) 1024 + k 64 + (n % 32) 2 bytes, then the
    // 16-byte chunk bits 4-5 of the address XORed with its bits 7-8.
    for (int i = threadIdx.x; i < 16 * 64; i += blockDim.x) {
        const int k = i / 64, n = i % 64;
        unsigned off = (n / 32) * 1024 + k * 64 + (n % 32) * 2;
        off ^= ((off >> 7) & 3u) << 4;
        *reinterpret_cast<unsigned short*>(b_bytes + off) = B[i];
    }
    fence_proxy_async();
    __syncthreads();
    const unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4, r0 = 16 * w + g;
    const uint32_t a[4] = {pack(A[r0 * 16 + 2 * t], A[r0 * 16 + 2 * t + 1]),
                           pack(A[(r0 + 8) * 16 + 2 * t], A[(r0 + 8) * 16 + 2 * t + 1]),
                           pack(A[r0 * 16 + 2 * t + 8], A[r0 * 16 + 2 * t + 9]),
                           pack(A[(r0 + 8) * 16 + 2 * t + 8], A[(r0 + 8) * 16 + 2 * t + 9])};
#ifdef PLANTED_BUG
    const uint64_t desc = wgmma_desc(b_bytes, 512, 1024) | (uint64_t(2) << 62);  // LBO and SBO swapped
#else
    const uint64_t desc = wgmma_desc(b_bytes, 1024, 512) | (uint64_t(2) << 62);  // 64-byte swizzle
#endif
    float d[32];
    for (int i = 0; i < 32; ++i) d[i] = 0.0f;
    wgmma_fence();
    wgmma_m64n64k16_bf16<true>(d, a, desc, false);
    wgmma_commit();
    wgmma_wait<0>();
    for (int j = 0; j < 8; ++j)
        for (int i = 0; i < 4; ++i) D[(r0 + 8 * (i / 2)) * 64 + 8 * j + 2 * t + (i % 2)] = d[4 * j + i];
}

int main() {
    static unsigned short a[64 * 16], b[16 * 64];
    static float fa[64 * 16], fb[16 * 64];
    unsigned s = 9191;
    auto next = [&] {  // a random multiple of 1/16 in [-2, 2], never 0
        s = s * 1103515245u + 12345u;
        int v = int((s >> 16) % 64) - 32;
        return float(v == 0 ? 1 : v) / 16.0f;
    };
    auto bits = [](float f) {  // exact: these values fit bf16
        uint32_t u;
        std::memcpy(&u, &f, 4);
        return static_cast<unsigned short>(u >> 16);
    };
    for (int i = 0; i < 64 * 16; ++i) fa[i] = next(), a[i] = bits(fa[i]);
    for (int i = 0; i < 16 * 64; ++i) fb[i] = next(), b[i] = bits(fb[i]);
    unsigned short *d_a, *d_b;
    float* d_d;
    CUDA_CHECK(cudaMalloc(&d_a, sizeof(a)));
    CUDA_CHECK(cudaMalloc(&d_b, sizeof(b)));
    CUDA_CHECK(cudaMalloc(&d_d, 64 * 64 * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(d_a, a, sizeof(a), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_b, b, sizeof(b), cudaMemcpyHostToDevice));
    // 2 KiB: B's two panels; the swapped reading stays inside them.
    wgmma_kernel<<<1, 128, 2048>>>(d_a, d_b, d_d);
    CUDA_CHECK_LAUNCH("wgmma_kernel");
    static float d[64 * 64];
    CUDA_CHECK(cudaMemcpy(d, d_d, sizeof(d), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int m = 0; m < 64; ++m)
        for (int n = 0; n < 64; ++n) {
            float want = 0.0f;
            for (int k = 0; k < 16; ++k) want += fa[m * 16 + k] * fb[k * 64 + n];
            if (!(std::fabs(d[m * 64 + n] - want) <= 1e-3f)) {  // NaN fails too
                if (!bad) std::printf("D[%d][%d] = %g, want %g\n", m, n, d[m * 64 + n], want);
                bad = 1;
            }
        }
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
