// A planted hang for dev/gpu-run: one block whose threads all wait on an
// mbarrier that nobody arrives on. On a GPU this kernel never ends, unless it
// is built with bounded waits (-DLLAMA_MBARRIER_TIMEOUT_NS, as the GPU bundle
// is), when the wait gives up and traps, and the CUDA check after it prints
// where it waited. In the emulator the same wait is reported as a deadlock, or
// spins like the GPU with EMU_DEADLOCK=hang. dev/gpu-run --plant-hang runs it to show that one hung
// step ends within its time box and the steps after it still run.
#include <cstdio>
#include <cstdlib>

#include <cuda_runtime.h>

#include "kernels/ptx.h"

__global__ void planted_hang_kernel(int* out) {
    __shared__ alignas(8) uint64_t bar;
    if (threadIdx.x == 0) {
        mbarrier_init(&bar, 1);  // one arrival completes phase 0; none ever comes
        mbarrier_init_fence();
    }
    __syncthreads();
    mbarrier_wait_parity(&bar, 0);
    out[threadIdx.x] = 1;
}

int main() {
    int* out = nullptr;
    CUDA_CHECK(cudaMalloc(&out, 64 * sizeof(int)));
    mbarrier_timeout_watch();
    std::printf("planted_hang: launching a kernel that waits on an mbarrier nobody arrives on\n");
    std::fflush(stdout);
    planted_hang_kernel<<<1, 64>>>(out);
    CUDA_CHECK_LAUNCH("planted_hang_kernel");
    CUDA_CHECK(cudaDeviceSynchronize());
    std::printf("planted_hang: the kernel ended\n");
    return 0;
}
