// Planted bug: an ldmatrix with .trans where the fragment wants the matrix as
// it is: valid PTX, which the GPU runs giving each lane the transposed
// elements. The emulator executes the asm text itself, so the registers are
// wrong there too and the check against the CPU fails.
#include <cstdint>
#include <cstdio>
#include "kernels/cuda_check.h"

// One warp loads one 8 x 8 matrix of 16-bit values: lane l gives the address of
// row l % 8 and receives row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1.
__global__ void ldmatrix_kernel(const unsigned short* m, uint32_t* out) {
    __shared__ __align__(16) unsigned short tile[64];
    for (int i = threadIdx.x; i < 64; i += 32) tile[i] = m[i];
    __syncthreads();
    const uint32_t row = uint32_t(__cvta_generic_to_shared(&tile[(threadIdx.x % 8) * 8]));
    uint32_t r;
#ifndef PLANTED_BUG
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r) : "r"(row));
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r) : "r"(row));
#endif
    out[threadIdx.x] = r;
}

int main() {
    static unsigned short m[64];
    unsigned s = 777;
    for (int i = 0; i < 64; ++i) {
        s = s * 1103515245u + 12345u;
        m[i] = static_cast<unsigned short>((s >> 8) | 1u);  // random, never 0
    }
    unsigned short* d_m;
    uint32_t* d_out;
    CUDA_CHECK(cudaMalloc(&d_m, sizeof(m)));
    CUDA_CHECK(cudaMalloc(&d_out, 32 * sizeof(uint32_t)));
    CUDA_CHECK(cudaMemcpy(d_m, m, sizeof(m), cudaMemcpyHostToDevice));
    ldmatrix_kernel<<<1, 32>>>(d_m, d_out);
    CUDA_CHECK_LAUNCH("ldmatrix_kernel");
    static uint32_t out[32];
    CUDA_CHECK(cudaMemcpy(out, d_out, sizeof(out), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int l = 0; l < 32; ++l) {
        const uint32_t want = uint32_t(m[(l / 4) * 8 + 2 * (l % 4)]) | (uint32_t(m[(l / 4) * 8 + 2 * (l % 4) + 1]) << 16);
        if (out[l] != want) {
            if (!bad) std::printf("lane %d: 0x%08x, want 0x%08x\n", l, out[l], want);
            bad = 1;
        }
    }
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
