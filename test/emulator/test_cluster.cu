// Thread-block clusters (Hopper): launches by __cluster_dims__ and by
// cudaLaunchKernelEx, the cluster's coordinates, cluster.sync() and
// distributed shared memory through cooperative groups and through raw PTX
// (mapa, ld/st.shared::cluster, barrier.cluster, %cluster_* registers), each
// against a CPU computation on random inputs; and refused launches.
#include <catch2/catch.hpp>
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "test/emulator/device_buffers.h"

namespace cg = cooperative_groups;
using emu_test::to_device;
using emu_test::to_host;

#define CHECK_CUDA(call) REQUIRE((call) == cudaSuccess)

namespace {
// Random ints in [-1000, -1] and [1, 1000]: never zero, so a partial sum that
// is dropped or counted twice changes the result.
std::vector<int> nonzero_ints(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> mag(1, 1000), sign(0, 1);
    std::vector<int> v(n);
    for (int& x : v) x = sign(rng) ? mag(rng) : -mag(rng);
    return v;
}

// The sum of each cluster's slice: cluster c holds blocks c*per .. c*per+per-1
// of a 1-D grid, block b the elements b*threads .. b*threads+threads-1.
std::vector<long long> cluster_sums(const std::vector<int>& in, int clusters, int per, int threads) {
    std::vector<long long> s(std::size_t(clusters), 0);
    for (std::size_t i = 0; i < in.size(); ++i) s[i / std::size_t(per * threads)] += in[i];
    return s;
}

constexpr int kThreads = 64;

// The block's sum of its slice, into `partial` (every thread returns after the block's barrier).
__device__ void block_sum(const int* in, int* scratch, long long& partial) {
    const int t = int(threadIdx.x);
    scratch[t] = in[blockIdx.x * blockDim.x + t];
    __syncthreads();
    if (t == 0) {
        long long s = 0;
        for (int i = 0; i < int(blockDim.x); ++i) s += scratch[i];
        partial = s;
    }
    __syncthreads();
}
}  // namespace

// ---------------------------------------------------------------------------
// Clusters of two, declared on the kernel; the partials in static __shared__
// variables, read by block rank 0 through map_shared_rank.
__global__ void __cluster_dims__(2, 1, 1) cluster2_sum_kernel(const int* in, long long* out) {
    __shared__ int scratch[kThreads];
    __shared__ long long partial;
    cg::cluster_group cluster = cg::this_cluster();
    block_sum(in, scratch, partial);
    cluster.sync();  // every block's partial is written
    if (cluster.block_rank() == 0 && threadIdx.x == 0) {
        long long s = 0;
        for (unsigned r = 0; r < cluster.num_blocks(); ++r) s += *cluster.map_shared_rank(&partial, int(r));
        out[blockIdx.x / 2] = s;
    }
    cluster.sync();  // no block exits while rank 0 reads its shared memory
}

// Clusters given at the launch (cudaLaunchKernelEx); the partials in dynamic
// shared memory, and the closing barrier split into arrive and wait.
__global__ void cluster_dyn_sum_kernel(const int* in, long long* out) {
    extern __shared__ long long dyn[];  // [0] the partial, then the scratch
    cg::cluster_group cluster = cg::this_cluster();
    block_sum(in, reinterpret_cast<int*>(dyn + 1), dyn[0]);
    cluster.sync();
    if (cluster.block_rank() == 0 && threadIdx.x == 0) {
        long long s = 0;
        for (unsigned r = 0; r < cluster.num_blocks(); ++r) {
            long long* remote = cluster.map_shared_rank(dyn, int(r));
            if (cluster.query_shared_rank(remote) != r) s = -(1LL << 40);  // a wrong rank shows in the sum
            s += *remote;
        }
        out[blockIdx.x / cluster.num_blocks()] = s;
    }
    auto token = cluster.barrier_arrive();
    cluster.barrier_wait(std::move(token));
}

TEST_CASE("a cluster-wide sum through distributed shared memory with cooperative groups", "[emulator][cluster]") {
    SECTION("clusters of 2 from __cluster_dims__, static __shared__, 7 clusters") {
        const int clusters = 7, blocks = 2 * clusters;
        const std::vector<int> h = nonzero_ints(std::size_t(blocks) * kThreads, 1);
        int* in = to_device(h);
        long long* out = nullptr;
        CHECK_CUDA(cudaMalloc(&out, clusters * sizeof(long long)));
        cluster2_sum_kernel<<<blocks, kThreads>>>(in, out);
        CHECK_CUDA(cudaGetLastError());
        REQUIRE(to_host(out, clusters) == cluster_sums(h, clusters, 2, kThreads));
        // The same kernel by cudaLaunchKernelEx without the attribute: its __cluster_dims__ still hold.
        CHECK_CUDA(cudaMemset(out, 0, clusters * sizeof(long long)));
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(blocks);
        cfg.blockDim = dim3(kThreads);
        CHECK_CUDA(cudaLaunchKernelEx(&cfg, cluster2_sum_kernel, in, out));
        REQUIRE(to_host(out, clusters) == cluster_sums(h, clusters, 2, kThreads));
        cudaFree(in);
        cudaFree(out);
    }
    SECTION("clusters of 4 from cudaLaunchKernelEx, dynamic shared memory, 5 clusters, several OS threads") {
        const int clusters = 5, per = 4, blocks = per * clusters;
        const std::vector<int> h = nonzero_ints(std::size_t(blocks) * kThreads, 2);
        int* in = to_device(h);
        long long* out = nullptr;
        CHECK_CUDA(cudaMalloc(&out, clusters * sizeof(long long)));
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeClusterDimension;
        attr[0].val.clusterDim.x = per;
        attr[0].val.clusterDim.y = 1;
        attr[0].val.clusterDim.z = 1;
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(blocks);
        cfg.blockDim = dim3(kThreads);
        cfg.dynamicSmemBytes = sizeof(long long) + kThreads * sizeof(int);
        cfg.attrs = attr;
        cfg.numAttrs = 1;
        CHECK_CUDA(cudaLaunchKernelEx(&cfg, cluster_dyn_sum_kernel, in, out));
        REQUIRE(to_host(out, clusters) == cluster_sums(h, clusters, per, kThreads));
        cudaFree(in);
        cudaFree(out);
    }
}

// ---------------------------------------------------------------------------
// The same sum in raw PTX, as CUTLASS-style code writes it: %cluster_ctarank,
// barrier.cluster.arrive.release / wait.acquire, mapa.shared::cluster and
// ld.shared::cluster.u64 (pull), st.shared::cluster.v2.u32 into rank 0's table
// (push), red.shared::cluster.add.u64 into rank 0's total and fence.acq_rel.cluster,
// and mapa.u64 on a generic pointer read by a plain load.
__global__ void __cluster_dims__(4, 1, 1) cluster_ptx_sum_kernel(const int* in, long long* out, int* table_out) {
    __shared__ int scratch[kThreads];
    __shared__ long long partial;
    __shared__ int2 table[4];             // rank 0's: {low 32 bits of the partial, rank} pushed by each block
    __shared__ unsigned long long total;  // rank 0's: the sum of the partials, added by each block
    if (threadIdx.x == 0) total = 0;
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
    block_sum(in, scratch, partial);
    unsigned rank, nrank;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(nrank));
    if (threadIdx.x == 0) {
        const uint32_t mine = uint32_t(__cvta_generic_to_shared(&table[rank]));
        uint32_t there;
        asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(there) : "r"(mine), "r"(0u));
        asm volatile("st.shared::cluster.v2.u32 [%0], {%1, %2};" ::"r"(there), "r"(uint32_t(partial)), "r"(rank)
                     : "memory");
        const uint32_t mine_total = uint32_t(__cvta_generic_to_shared(&total));
        asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(there) : "r"(mine_total), "r"(0u));
        asm volatile("red.relaxed.cluster.shared::cluster.add.u64 [%0], %1;\n\tfence.acq_rel.cluster;" ::"r"(there),
                     "l"(partial)
                     : "memory");
    }
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
    if (rank == 0 && threadIdx.x == 0) {
        const uint32_t local = uint32_t(__cvta_generic_to_shared(&partial));
        long long s = 0;
        for (unsigned r = 0; r < nrank; ++r) {
            uint32_t remote;
            unsigned long long v;
            asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(r));
            asm volatile("ld.shared::cluster.u64 %0, [%1];" : "=l"(v) : "r"(remote) : "memory");
            s += (long long)v;
            // The generic form: a pointer into block r's shared memory.
            unsigned long long p;
            asm volatile("mapa.u64 %0, %1, %2;" : "=l"(p) : "l"(&partial), "r"(r));
            if (*reinterpret_cast<const long long*>(p) != (long long)v) s = -(1LL << 40);
            table_out[2 * (blockIdx.x / 4 * 4 + r)] = table[r].x;
            table_out[2 * (blockIdx.x / 4 * 4 + r) + 1] = table[r].y;
        }
        out[blockIdx.x / 4] = (long long)total == s ? s : -(1LL << 41);
    }
    asm volatile("barrier.cluster.arrive;\n\tbarrier.cluster.wait;" ::: "memory");
}

TEST_CASE("a cluster-wide sum through distributed shared memory in raw PTX", "[emulator][cluster][ptx]") {
    const int clusters = 3, blocks = 4 * clusters;
    const std::vector<int> h = nonzero_ints(std::size_t(blocks) * kThreads, 3);
    int* in = to_device(h);
    long long* out = nullptr;
    int* table = nullptr;
    CHECK_CUDA(cudaMalloc(&out, clusters * sizeof(long long)));
    CHECK_CUDA(cudaMalloc(&table, 2 * blocks * sizeof(int)));
    cluster_ptx_sum_kernel<<<blocks, kThreads>>>(in, out, table);
    CHECK_CUDA(cudaGetLastError());
    const std::vector<long long> want = cluster_sums(h, clusters, 4, kThreads);
    REQUIRE(to_host(out, clusters) == want);
    const std::vector<int> t = to_host(table, 2 * blocks);
    for (int b = 0; b < blocks; ++b) {
        long long s = 0;
        for (int i = 0; i < kThreads; ++i) s += h[std::size_t(b * kThreads + i)];
        REQUIRE(t[std::size_t(2 * b)] == int(uint32_t(s)));
        REQUIRE(t[std::size_t(2 * b + 1)] == b % 4);
    }
    cudaFree(in);
    cudaFree(out);
    cudaFree(table);
}

// ---------------------------------------------------------------------------
// Every coordinate of a 3-D clustered grid, from cooperative groups and from
// the special registers.
constexpr int kIds = 16;
__global__ void cluster_ids_kernel(unsigned* out) {
    cg::cluster_group cluster = cg::this_cluster();
    const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned t = threadIdx.x + blockDim.x * threadIdx.y;
    unsigned* o = out + kIds * (block * blockDim.x * blockDim.y + t);
    unsigned ctarank, nctarank, cid_x, cid_z, ncid_y, cta_y, ncta_z, is_explicit;
    asm("mov.u32 %0, %%cluster_ctarank;" : "=r"(ctarank));
    asm("mov.u32 %0, %%cluster_nctarank;" : "=r"(nctarank));
    asm("mov.u32 %0, %%clusterid.x;" : "=r"(cid_x));
    asm("mov.u32 %0, %%clusterid.z;" : "=r"(cid_z));
    asm("mov.u32 %0, %%nclusterid.y;" : "=r"(ncid_y));
    asm("mov.u32 %0, %%cluster_ctaid.y;" : "=r"(cta_y));
    asm("mov.u32 %0, %%cluster_nctaid.z;" : "=r"(ncta_z));
    asm("{\n\t.reg .pred p;\n\tmov.pred p, %%is_explicit_cluster;\n\tselp.u32 %0, 1, 0, p;\n\t}" : "=r"(is_explicit));
    const unsigned vals[kIds] = {cluster.block_rank(),
                                 cluster.num_blocks(),
                                 cluster.dim_blocks().y,
                                 cluster.block_index().x,
                                 cluster.block_index().z,
                                 cluster.thread_rank(),
                                 cluster.num_threads(),
                                 cluster.thread_index().x,
                                 ctarank,
                                 nctarank,
                                 cid_x,
                                 cid_z,
                                 ncid_y,
                                 cta_y,
                                 ncta_z,
                                 is_explicit};
    for (int i = 0; i < kIds; ++i) o[i] = vals[i];
}

TEST_CASE("cluster ranks and coordinates of cooperative groups and the %cluster_ registers", "[emulator][cluster]") {
    const dim3 cl(2, 2, 2), grid(4, 2, 6), block(8, 2);  // 8 blocks per cluster, 2 x 1 x 3 clusters
    const unsigned nblocks = grid.x * grid.y * grid.z, nthreads = block.x * block.y;
    unsigned* out = nullptr;
    CHECK_CUDA(cudaMalloc(&out, kIds * nblocks * nthreads * sizeof(unsigned)));
    cudaLaunchAttribute attr[2];
    attr[0].id = cudaLaunchAttributeClusterSchedulingPolicyPreference;
    attr[0].val.clusterSchedulingPolicyPreference = cudaClusterSchedulingPolicySpread;
    attr[1].id = cudaLaunchAttributeClusterDimension;
    attr[1].val.clusterDim.x = cl.x;
    attr[1].val.clusterDim.y = cl.y;
    attr[1].val.clusterDim.z = cl.z;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.attrs = attr;
    cfg.numAttrs = 2;
    CHECK_CUDA(cudaLaunchKernelEx(&cfg, cluster_ids_kernel, out));
    std::vector<unsigned> h = to_host(out, kIds * nblocks * nthreads);
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx)
                for (unsigned t = 0; t < nthreads; ++t) {
                    const unsigned b = bx + grid.x * (by + grid.y * bz);
                    const unsigned* o = &h[kIds * (b * nthreads + t)];
                    const unsigned rank = bx % cl.x + cl.x * (by % cl.y + cl.y * (bz % cl.z));
                    const unsigned want[kIds] = {rank,          8,
                                                 cl.y,          bx % cl.x,
                                                 bz % cl.z,     rank * nthreads + t,
                                                 8 * nthreads,  bx % cl.x * block.x + t % block.x,
                                                 rank,          8,
                                                 bx / cl.x,     bz / cl.z,
                                                 grid.y / cl.y, by % cl.y,
                                                 cl.z,          1};
                    for (int i = 0; i < kIds; ++i) {
                        INFO("block " << b << " thread " << t << " value " << i);
                        REQUIRE(o[i] == want[i]);
                    }
                }
    // A launch without clusters: every block is a cluster of one, not an explicit one.
    cluster_ids_kernel<<<dim3(3, 1, 1), block>>>(out);
    CHECK_CUDA(cudaGetLastError());
    h = to_host(out, kIds * 3 * nthreads);
    for (unsigned b = 0; b < 3; ++b) {
        const unsigned* o = &h[kIds * (b * nthreads)];
        REQUIRE(o[0] == 0);
        REQUIRE(o[1] == 1);
        REQUIRE(o[9] == 1);
        REQUIRE(o[10] == b);
        REQUIRE(o[15] == 0);
    }
    cudaFree(out);
}

// ---------------------------------------------------------------------------
__global__ void __cluster_dims__(2, 1, 1) cluster_noop_kernel(int* out) {
    if (threadIdx.x == 0) out[blockIdx.x] = 1;
}
__global__ void plain_noop_kernel(int* out) {
    if (threadIdx.x == 0) out[blockIdx.x] = 1;
}

TEST_CASE("cluster launches the runtime refuses do not run", "[emulator][cluster]") {
    int* out = nullptr;
    CHECK_CUDA(cudaMalloc(&out, 32 * sizeof(int)));
    CHECK_CUDA(cudaMemset(out, 0, 32 * sizeof(int)));
    // A grid of 3 blocks is not a whole number of clusters of 2.
    cluster_noop_kernel<<<3, 32>>>(out);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidClusterSize);
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 4;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(6);
    cfg.blockDim = dim3(32);
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    REQUIRE(cudaLaunchKernelEx(&cfg, plain_noop_kernel, out) == cudaErrorInvalidClusterSize);
    // More than the 8 portable blocks per cluster.
    attr[0].val.clusterDim.x = 16;
    cfg.gridDim = dim3(32);
    REQUIRE(cudaLaunchKernelEx(&cfg, plain_noop_kernel, out) == cudaErrorInvalidClusterSize);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidClusterSize);
    // An attribute that contradicts the kernel's __cluster_dims__.
    attr[0].val.clusterDim.x = 4;
    cfg.gridDim = dim3(8);
    REQUIRE(cudaLaunchKernelEx(&cfg, cluster_noop_kernel, out) == cudaErrorInvalidClusterSize);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidClusterSize);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    CHECK_CUDA(cudaDeviceSynchronize());
    REQUIRE(to_host(out, 32) == std::vector<int>(32, 0));
    // With cudaFuncAttributeNonPortableClusterSizeAllowed, 16 blocks are allowed.
    CHECK_CUDA(cudaFuncSetAttribute(plain_noop_kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    attr[0].val.clusterDim.x = 16;
    cfg.gridDim = dim3(32);
    CHECK_CUDA(cudaLaunchKernelEx(&cfg, plain_noop_kernel, out));
    REQUIRE(to_host(out, 32) == std::vector<int>(32, 1));
    REQUIRE(std::string(cudaGetErrorName(cudaErrorInvalidClusterSize)) == "cudaErrorInvalidClusterSize");
    cudaFree(out);
}
