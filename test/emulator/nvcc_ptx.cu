// Compiles the kernels of ptx_kernels.cuh with nvcc for every GPU target, so the
// inline PTX of kernels/ptx.h is assembled in CI (the emulated build runs them).
#include <cstdio>
#include "kernels/cuda_check.h"
#include "ptx_kernels.cuh"

int main() {
    std::printf("ptx kernels: mma %p, ldmatrix %p, cp.async %p, tile gemm %p, wgmma %p %p\n",
                reinterpret_cast<const void*>(mma_fragments_kernel), reinterpret_cast<const void*>(ldmatrix_kernel),
                reinterpret_cast<const void*>(cp_async_kernel), reinterpret_cast<const void*>(tile_gemm_kernel),
                reinterpret_cast<const void*>(wgmma_kernel<64>), reinterpret_cast<const void*>(wgmma_kernel<128>));
    return 0;
}
