// Planted bug: blocks write their results at out[threadIdx.x], the block's offset
// forgotten, so they write the same cells. Built with -DPLANTED_BUG the race
// checker (scripts/emu-run --tsan) must report a data race between two blocks,
// also when the blocks run one after the other on one OS thread (EMU_THREADS=1);
// the twin runs clean.
//
// With RACE_FAR=1 in the environment only block 4 forgets its offset, so blocks 0 and 4
// write the same cells with three blocks between them. By then the race-checker
// identities of block 0 run the CUDA threads of block 3 (the emulator reuses them
// three blocks later): the report must still lead to block 0, through the list of
// CUDA threads the emulator prints for a reused identity.
#include <cstdio>
#include <cstdlib>
#include "kernels/cuda_check.h"

constexpr int kBlock = 64;

__global__ void scale(const float* in, float* out, float a, int forgetful) {
    int i = blockIdx.x * kBlock + threadIdx.x;
#ifdef PLANTED_BUG
    int o = forgetful < 0 || int(blockIdx.x) == forgetful ? threadIdx.x : i;
#else
    (void)forgetful;
    int o = i;
#endif
    out[o] = a * in[i];
}

int main() {
    const bool far = std::getenv("RACE_FAR") != nullptr;
    const int blocks = far ? 8 : 4, n = 8 * kBlock;
    float h[n], got[n];
    for (int i = 0; i < n; ++i) h[i] = float(i % 10) - 4.5f;
    float *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(got)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    scale<<<blocks, kBlock>>>(d_in, d_out, 3.0f, far ? 4 : -1);
    CUDA_CHECK_LAUNCH("scale");
    CUDA_CHECK(cudaMemcpy(got, d_out, sizeof(got), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < blocks * kBlock && bad < 4; ++i)
        if (got[i] != 3.0f * h[i]) { std::printf("out[%d] = %g, want %g\n", i, got[i], 3.0f * h[i]); ++bad; }
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad != 0;
}
