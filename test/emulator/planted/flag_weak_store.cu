// Planted bug: a wrong asm string in a hand-over between warps. Warp 1 fills a
// buffer in shared memory with plain stores and raises a flag; lane 0 of warp 0
// polls the flag with ld.acquire and then warp 0 doubles the buffer into out.
// The twin raises the flag with st.release; the bug with a weak st.shared, so
// on a GPU warp 0 may see the flag before the buffer. The emulator's memory is
// sequential and both give the right result; the race checker
// (scripts/emu-run --tsan) must report the bug's race, and the twin runs clean.
#include <cstdio>
#include "kernels/cuda_check.h"

__global__ void double_handed_over(const float* in, float* out) {
    __shared__ float buffer[32];
    __shared__ unsigned flag;
    const unsigned lane = threadIdx.x % 32;
    const unsigned at = unsigned(__cvta_generic_to_shared(&flag));
    if (threadIdx.x == 0) flag = 0;
    __syncthreads();
    if (threadIdx.x >= 32) {
        buffer[lane] = in[lane];
        __syncwarp();
        if (lane == 0) {
#ifdef PLANTED_BUG
            asm volatile("st.shared.u32 [%0], %1;" ::"r"(at), "r"(1u) : "memory");
#else
            asm volatile("st.release.cta.shared.u32 [%0], %1;" ::"r"(at), "r"(1u) : "memory");
#endif
        }
        return;
    }
    if (lane == 0) {
        unsigned seen = 0;
        do {
            asm volatile("ld.acquire.cta.shared.u32 %0, [%1];" : "=r"(seen) : "r"(at) : "memory");
        } while (!seen);
    }
    __syncwarp();
    out[lane] = 2.0f * buffer[lane];
}

int main() {
    float h[32], got[32];
    for (int i = 0; i < 32; ++i) h[i] = float(i * 3 % 17) - 4.0f;
    float *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(got)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    double_handed_over<<<1, 64>>>(d_in, d_out);
    CUDA_CHECK_LAUNCH("double_handed_over");
    CUDA_CHECK(cudaMemcpy(got, d_out, sizeof(got), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < 32; ++i)
        if (got[i] != 2.0f * h[i]) {
            std::printf("out[%d]: got %g, want %g\n", i, got[i], 2.0f * h[i]);
            bad = 1;
        }
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
