// Planted bug: warp 1 fills a ring of 4 slots in shared memory and raises each
// slot's flag once the slot is full; warp 0 polls each flag with __nanosleep and
// then doubles the slot into out. The producer's loop stops one slot early, so
// warp 0 polls the last flag forever: on a GPU the block hangs; the emulator
// reports a deadlock and names the polling threads (after EMU_SPIN_SECONDS with
// nothing new, 10 by default).
#include <cstdio>
#include "kernels/cuda_check.h"

constexpr int kSlots = 4;

__global__ void double_through_ring(const float* in, float* out) {
    __shared__ float slot[kSlots][32];
    __shared__ int full[kSlots];
    const int lane = threadIdx.x % 32;
    if (threadIdx.x < kSlots) full[threadIdx.x] = 0;
    __syncthreads();
    if (threadIdx.x >= 32) {
#ifdef PLANTED_BUG
        for (int s = 0; s < kSlots - 1; ++s) {
#else
        for (int s = 0; s < kSlots; ++s) {
#endif
            slot[s][lane] = in[s * 32 + lane];
            __syncwarp();
            if (lane == 0) {
                __threadfence_block();
                atomicExch(&full[s], 1);
            }
        }
    } else {
        for (int s = 0; s < kSlots; ++s) {
            while (atomicAdd(&full[s], 0) == 0) __nanosleep(64);
            __threadfence_block();
            out[s * 32 + lane] = 2.0f * slot[s][lane];
        }
    }
}

int main() {
    float h[kSlots * 32];
    for (int i = 0; i < kSlots * 32; ++i) h[i] = float(i % 29) - 7.5f;
    float *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(h)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    double_through_ring<<<1, 64>>>(d_in, d_out);
    CUDA_CHECK_LAUNCH("double_through_ring");
    float r[kSlots * 32];
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < kSlots * 32; ++i)
        if (r[i] != 2.0f * h[i]) {
            if (!bad) std::printf("out[%d] = %g, want %g\n", i, r[i], 2.0f * h[i]);
            bad = 1;
        }
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
