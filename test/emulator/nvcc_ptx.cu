// Compiles the kernels of ptx_kernels.cuh and ptx_sync_kernels.cuh with nvcc for
// every GPU target, so the inline PTX of kernels/ptx.h and of the emulator's
// tests is assembled in CI (the emulated build runs them).
#include <cstdio>
#include "kernels/cuda_check.h"
#include "ptx_kernels.cuh"
#include "ptx_sync_kernels.cuh"

int main() {
    std::printf("ptx kernels: mma %p, ldmatrix %p, cp.async %p, tile gemm %p, wgmma %p %p\n",
                reinterpret_cast<const void*>(mma_fragments_kernel), reinterpret_cast<const void*>(ldmatrix_kernel),
                reinterpret_cast<const void*>(cp_async_kernel), reinterpret_cast<const void*>(tile_gemm_kernel),
                reinterpret_cast<const void*>(wgmma_kernel<64>), reinterpret_cast<const void*>(wgmma_kernel<128>));
    std::printf("mbarrier %p %p, tma %p %p, swizzled wgmma %p %p %p %p\n",
                reinterpret_cast<const void*>(mbarrier_phase_kernel), reinterpret_cast<const void*>(mbarrier_tx_kernel),
                reinterpret_cast<const void*>(tma_box_kernel), reinterpret_cast<const void*>(tma_ring_kernel),
                reinterpret_cast<const void*>(wgmma_sw128_kernel<64, false>),
                reinterpret_cast<const void*>(wgmma_sw128_kernel<128, false>),
                reinterpret_cast<const void*>(wgmma_sw128_kernel<64, true>),
                reinterpret_cast<const void*>(wgmma_sw128_kernel<128, true>));
    std::printf("wgmma with A in shared memory %p %p %p %p, setmaxnreg %p\n",
                reinterpret_cast<const void*>(wgmma_ss_kernel<true, false>),
                reinterpret_cast<const void*>(wgmma_ss_kernel<true, true>),
                reinterpret_cast<const void*>(wgmma_ss_kernel<false, false>),
                reinterpret_cast<const void*>(wgmma_ss_kernel<false, true>),
                reinterpret_cast<const void*>(setmaxnreg_kernel));
    std::printf("strong loads and stores %p %p, atom and red %p, labelled wait %p\n",
                reinterpret_cast<const void*>(strong_turns_kernel),
                reinterpret_cast<const void*>(strong_turns_shared_kernel),
                reinterpret_cast<const void*>(atom_ops_kernel), reinterpret_cast<const void*>(labelled_wait_kernel));
    return 0;
}
