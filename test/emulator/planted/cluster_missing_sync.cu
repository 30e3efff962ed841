// Planted bug: each block of a cluster reads its neighbour's shared memory
// (distributed shared memory, map_shared_rank) without the cluster.sync()
// between the neighbour's writes and the read. Built with -DPLANTED_BUG the
// race checker must report a data race; the twin runs clean.
#include <cooperative_groups.h>
#include <cstdio>
#include "kernels/cuda_check.h"

namespace cg = cooperative_groups;

__global__ void rotate_through_cluster(const int* in, int* out) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900  // clusters are sm_90's
    __shared__ int vals[32];
    cg::cluster_group cluster = cg::this_cluster();
    const unsigned next = (cluster.block_rank() + 1) % cluster.num_blocks();
    vals[threadIdx.x] = in[blockIdx.x * 32 + threadIdx.x] * 3;
#ifndef PLANTED_BUG
    cluster.sync();  // the neighbour's vals are written
#endif
    out[blockIdx.x * 32 + threadIdx.x] = cluster.map_shared_rank(vals, int(next))[threadIdx.x];
    cluster.sync();  // no block exits while its neighbour reads its vals
#endif
}

int main() {
    const int clusters = 3, per = 4, blocks = clusters * per, n = blocks * 32;
    int h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = i * 7 + 1;
    int *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = per;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(32);
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, rotate_through_cluster, (const int*)d_in, d_out));
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int b = 0; b < blocks; ++b) {
        const int next = b / per * per + (b % per + 1) % per;
        for (int t = 0; t < 32; ++t)
            if (r[b * 32 + t] != h[next * 32 + t] * 3) bad = 1;
    }
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
