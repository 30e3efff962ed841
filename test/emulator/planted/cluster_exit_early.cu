// Planted bug: the blocks of a cluster read their neighbour's shared memory
// (through a pointer from map_shared_rank) and return without the
// cluster.sync() that keeps every block's shared memory alive until the others
// are done with it. Built with -DPLANTED_BUG the memory checker must report the
// read of an exited block's shared memory; the twin runs clean.
#include <cooperative_groups.h>
#include <cstdio>
#include "kernels/cuda_check.h"

namespace cg = cooperative_groups;

__global__ void swap_through_cluster(const int* in, int* out) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900  // clusters are sm_90's
    __shared__ int vals[32];
    cg::cluster_group cluster = cg::this_cluster();
    const int* other = cluster.map_shared_rank(vals, int(cluster.block_rank() ^ 1u));
    vals[threadIdx.x] = in[blockIdx.x * 32 + threadIdx.x] + 5;
    cluster.sync();
    out[blockIdx.x * 32 + threadIdx.x] = other[threadIdx.x];
#ifndef PLANTED_BUG
    cluster.sync();  // the neighbour has read this block's vals
#endif
#endif
}

int main() {
    const int blocks = 6, n = blocks * 32;
    int h[n], r[n];
    for (int i = 0; i < n; ++i) h[i] = i * 3 - 11;
    int *d_in, *d_out;
    CUDA_CHECK(cudaMalloc(&d_in, sizeof(h)));
    CUDA_CHECK(cudaMalloc(&d_out, sizeof(r)));
    CUDA_CHECK(cudaMemcpy(d_in, h, sizeof(h), cudaMemcpyHostToDevice));
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 2;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(32);
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, swap_through_cluster, (const int*)d_in, d_out));
    CUDA_CHECK(cudaMemcpy(r, d_out, sizeof(r), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; ++i)
        if (r[i] != h[i ^ 32] + 5) bad = 1;
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    std::printf(bad ? "check FAILED\n" : "check ok\n");
    return bad;
}
