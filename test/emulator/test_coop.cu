// Cooperative groups (thread blocks, tiles, coalesced and labeled groups,
// reductions and scans, grid-wide sync of cooperative launches) and libcu++'s
// barrier and pipeline, each against a plain CPU computation on random inputs.
#include <catch2/catch.hpp>
#include <cooperative_groups.h>
#include <cooperative_groups/memcpy_async.h>
#include <cooperative_groups/reduce.h>
#include <cooperative_groups/scan.h>
#include <cuda/barrier>
#include <cuda/pipeline>
#include <cuda_pipeline.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace cg = cooperative_groups;

#define CHECK_CUDA(call) REQUIRE((call) == cudaSuccess)

namespace {
template <class T>
struct CoopBuffer {
    T* ptr = nullptr;
    std::size_t n;
    explicit CoopBuffer(std::size_t count) : n(count) { CHECK_CUDA(cudaMalloc(&ptr, n * sizeof(T))); }
    ~CoopBuffer() { cudaFree(ptr); }
    std::vector<T> get() const {
        std::vector<T> h(n);
        REQUIRE(cudaMemcpy(h.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
        return h;
    }
    void put(const std::vector<T>& h) { CHECK_CUDA(cudaMemcpy(ptr, h.data(), n * sizeof(T), cudaMemcpyHostToDevice)); }
};

std::vector<int> random_ints(std::size_t n, int lo, int hi, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> d(lo, hi);
    std::vector<int> v(n);
    for (int& x : v) x = d(rng);
    return v;
}
}  // namespace

// ---------------------------------------------------------------------------
__global__ void block_and_tile_ids_kernel(int* out) {
    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<8> tile = cg::tiled_partition<8>(block);
    cg::thread_block_tile<32, cg::thread_block> warp = cg::tiled_partition<32>(block);
    int* o = out + 10 * (blockIdx.x * block.size() + block.thread_rank());
    o[0] = int(block.size());
    o[1] = int(block.group_index().x);
    o[2] = int(block.thread_index().y);
    o[3] = int(block.dim_threads().z);
    o[4] = int(tile.thread_rank());
    o[5] = int(tile.meta_group_rank());
    o[6] = int(tile.meta_group_size());
    o[7] = int(warp.num_threads());
    o[8] = int(warp.meta_group_rank());
    o[9] = int(cg::this_grid().is_valid());  // not a cooperative launch
}

TEST_CASE("thread_block and tiled_partition<N> give the ranks and sizes CUDA gives", "[emulator][coop]") {
    const dim3 block(16, 3, 2);  // 96 threads: tiles of 8 and three warps
    const int nthreads = 96, blocks = 2;
    CoopBuffer<int> out(10 * nthreads * blocks);
    block_and_tile_ids_kernel<<<blocks, block>>>(out.ptr);
    CHECK_CUDA(cudaGetLastError());
    auto h = out.get();
    for (int b = 0; b < blocks; ++b)
        for (int t = 0; t < nthreads; ++t) {
            const int* o = &h[10 * (b * nthreads + t)];
            REQUIRE(o[0] == nthreads);
            REQUIRE(o[1] == b);
            REQUIRE(o[2] == (t / 16) % 3);
            REQUIRE(o[3] == 2);
            REQUIRE(o[4] == t % 8);
            REQUIRE(o[5] == t / 8);
            REQUIRE(o[6] == nthreads / 8);
            REQUIRE(o[7] == 32);
            REQUIRE(o[8] == t / 32);
            REQUIRE(o[9] == 0);
        }
}

// ---------------------------------------------------------------------------
struct Wide {  // more than 8 bytes: shuffled word by word
    int a, b, c;
};

template <int N>
__global__ void tile_collectives_kernel(const int* in, int* out) {
    cg::thread_block_tile<N> tile = cg::tiled_partition<N>(cg::this_thread_block());
    int t = threadIdx.x, r = tile.thread_rank();
    int v = in[t];
    int* o = out + 10 * t;
    o[0] = tile.shfl(v, (r * 7 + 3) % N);
    o[1] = tile.shfl_down(v, 3);
    o[2] = tile.shfl_up(v, 5);
    o[3] = tile.shfl_xor(v, N > 1 ? N / 2 + 0 : 0);
    o[4] = int(tile.ballot(v & 1));
    o[5] = tile.any(v > 90);
    o[6] = tile.all(v > 5);
    o[7] = int(tile.match_any(v % 3));
    Wide w{v, -v, v * 2};
    Wide got = tile.shfl(w, (r + 1) % N);
    o[8] = got.a + got.b + got.c;
    tile.sync();
    o[9] = int(tile.size());
}

template <int N>
void check_tile_collectives() {
    const int n = 64;
    auto in = random_ints(n, 0, 100, 11 + N);
    CoopBuffer<int> din(n), dout(10 * n);
    din.put(in);
    tile_collectives_kernel<N><<<1, n>>>(din.ptr, dout.ptr);
    CHECK_CUDA(cudaGetLastError());
    auto h = dout.get();
    for (int t = 0; t < n; ++t) {
        int base = t / N * N, r = t % N;
        const int* o = &h[10 * t];
        INFO("N " << N << " thread " << t);
        REQUIRE(o[0] == in[base + (r * 7 + 3) % N]);
        REQUIRE(o[1] == (r + 3 < N ? in[t + 3] : in[t]));
        REQUIRE(o[2] == (r >= 5 ? in[t - 5] : in[t]));
        REQUIRE(o[3] == in[base + (r ^ (N / 2))]);
        unsigned ballot = 0, match = 0;
        bool any = false, all = true;
        for (int k = 0; k < N; ++k) {
            int x = in[base + k];
            if (x & 1) ballot |= 1u << k;
            if (x % 3 == in[t] % 3) match |= 1u << k;
            any = any || x > 90;
            all = all && x > 5;
        }
        REQUIRE(unsigned(o[4]) == ballot);
        REQUIRE(o[5] == int(any));
        REQUIRE(o[6] == int(all));
        REQUIRE(unsigned(o[7]) == match);
        REQUIRE(o[8] == 2 * in[base + (r + 1) % N]);
        REQUIRE(o[9] == N);
    }
}

TEST_CASE("tile shfl, shfl_up/down/xor, ballot, any, all and match_any stay within each tile", "[emulator][coop]") {
    check_tile_collectives<1>();
    check_tile_collectives<2>();
    check_tile_collectives<4>();
    check_tile_collectives<8>();
    check_tile_collectives<16>();
    check_tile_collectives<32>();
}

// ---------------------------------------------------------------------------
__global__ void reduce_scan_kernel(const float* xf, const int* xi, float* of, int* oi) {
    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);
    cg::thread_block_tile<8> tile8 = cg::tiled_partition<8>(block);
    int t = block.thread_rank();
    float f = xf[t];
    int v = xi[t];
    of[2 * t + 0] = cg::reduce(warp, f, cg::plus<float>());
    of[2 * t + 1] = cg::reduce(tile8, f, [](float a, float b) { return fmaxf(a, b); });
    int* o = oi + 9 * t;
    o[0] = cg::reduce(warp, v, cg::less<int>());
    o[1] = cg::reduce(warp, v, cg::greater<int>());
    o[2] = cg::reduce(tile8, v, cg::bit_and<int>());
    o[3] = cg::reduce(tile8, v, cg::bit_or<int>());
    o[4] = cg::reduce(warp, v, cg::bit_xor<int>());
    o[5] = cg::inclusive_scan(warp, v);
    o[6] = cg::exclusive_scan(warp, v);
    o[7] = cg::inclusive_scan(tile8, v, cg::greater<int>());
    o[8] = cg::exclusive_scan(tile8, v, cg::plus<int>());
}

TEST_CASE("cg::reduce, inclusive_scan and exclusive_scan with the cg operators and a lambda", "[emulator][coop]") {
    const int n = 128;
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> uf(-1.0f, 1.0f);
    std::vector<float> xf(n);
    for (float& x : xf) x = uf(rng);
    auto xi = random_ints(n, 0, 1 << 20, 6);
    CoopBuffer<float> dxf(n), of(2 * n);
    CoopBuffer<int> dxi(n), oi(9 * n);
    dxf.put(xf);
    dxi.put(xi);
    reduce_scan_kernel<<<1, n>>>(dxf.ptr, dxi.ptr, of.ptr, oi.ptr);
    CHECK_CUDA(cudaGetLastError());
    auto hf = of.get();
    auto hi = oi.get();
    for (int t = 0; t < n; ++t) {
        INFO("thread " << t);
        int w = t / 32 * 32, e = t / 8 * 8;
        double sum = 0;
        float mx = -2;
        int mn = 1 << 30, mxi = -1, band = -1, bor = 0, bxor = 0, incl = 0, excl = 0, inclmax = -1, exclsum = 0;
        for (int k = w; k < w + 32; ++k) {
            sum += xf[k];
            mn = std::min(mn, xi[k]);
            mxi = std::max(mxi, xi[k]);
            bxor ^= xi[k];
            if (k <= t) incl += xi[k];
            if (k < t) excl += xi[k];
        }
        for (int k = e; k < e + 8; ++k) {
            mx = std::max(mx, xf[k]);
            band &= xi[k];
            bor |= xi[k];
            if (k <= t) inclmax = std::max(inclmax, xi[k]);
            if (k < t) exclsum += xi[k];
        }
        REQUIRE(hf[2 * t] == Approx(sum).margin(1e-5));
        REQUIRE(hf[2 * t] == hf[2 * w]);  // every lane gets the same bits
        REQUIRE(hf[2 * t + 1] == mx);
        const int* o = &hi[9 * t];
        REQUIRE(o[0] == mn);
        REQUIRE(o[1] == mxi);
        REQUIRE(o[2] == band);
        REQUIRE(o[3] == bor);
        REQUIRE(o[4] == bxor);
        REQUIRE(o[5] == incl);
        REQUIRE(o[6] == excl);
        REQUIRE(o[7] == inclmax);
        REQUIRE(o[8] == exclsum);
    }
}

// ---------------------------------------------------------------------------
// Dynamic tiles: tiled_partition(block, 16) is a thread_group; its sync orders a
// shared-memory exchange within the tile.
__global__ void dynamic_tile_kernel(const int* in, int* out) {
    __shared__ int buf[128];
    cg::thread_group tile = cg::tiled_partition(cg::this_thread_block(), 16);
    int t = threadIdx.x, r = int(tile.thread_rank());
    buf[t] = in[t] * 3;
    tile.sync();
    out[2 * t] = buf[t - r + (r + 5) % int(tile.size())];
    out[2 * t + 1] = int(tile.size());
}

TEST_CASE("tiled_partition(group, n) makes tiles whose sync orders shared memory", "[emulator][coop]") {
    const int n = 128;
    auto in = random_ints(n, -1000, 1000, 8);
    CoopBuffer<int> din(n), dout(2 * n);
    din.put(in);
    dynamic_tile_kernel<<<1, n>>>(din.ptr, dout.ptr);
    CHECK_CUDA(cudaGetLastError());
    auto h = dout.get();
    for (int t = 0; t < n; ++t) {
        REQUIRE(h[2 * t] == 3 * in[t / 16 * 16 + (t % 16 + 5) % 16]);
        REQUIRE(h[2 * t + 1] == 16);
    }
}

// ---------------------------------------------------------------------------
// coalesced_threads in a branch: the lanes that took it, ranked in lane order;
// the classic aggregated atomic (one atomicAdd per group) fills a list. The
// lanes of the other branch form their own group at their own call.
// labeled_partition groups the lanes of a warp by a label.
__global__ void coalesced_kernel(const int* in, int* info, int* list, int* count) {
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(cg::this_thread_block());
    int t = threadIdx.x, v = in[t];
    if (v % 3 == 0) {
        cg::coalesced_group g = cg::coalesced_threads();
        int base = 0;
        if (g.thread_rank() == 0) base = atomicAdd(count, int(g.size()));
        base = g.shfl(base, 0);
        list[base + g.thread_rank()] = t;
        info[4 * t] = int(g.size());
        info[4 * t + 1] = int(g.thread_rank());
    } else {
        cg::coalesced_group g = cg::coalesced_threads();  // the other lanes: a group of their own
        info[4 * t] = 1000 + int(g.size());
        info[4 * t + 1] = int(g.thread_rank());
    }
    cg::coalesced_group same = cg::labeled_partition(warp, v % 4);
    info[4 * t + 2] = int(same.size()) * 100 + int(same.thread_rank());
    info[4 * t + 3] = cg::reduce(same, v, cg::plus<int>());
}

TEST_CASE("coalesced_threads groups the lanes in a branch; labeled_partition groups by label", "[emulator][coop]") {
    const int n = 96;
    auto in = random_ints(n, 0, 1000, 9);
    CoopBuffer<int> din(n), info(4 * n), list(n), count(1);
    din.put(in);
    CHECK_CUDA(cudaMemset(count.ptr, 0, sizeof(int)));
    coalesced_kernel<<<1, n>>>(din.ptr, info.ptr, list.ptr, count.ptr);
    CHECK_CUDA(cudaGetLastError());
    auto h = info.get();
    auto l = list.get();
    int c = count.get()[0];
    std::vector<int> want;
    for (int t = 0; t < n; ++t) {
        INFO("thread " << t);
        int w = t / 32 * 32, size = 0, rank = 0, lsize = 0, lrank = 0, lsum = 0;
        for (int k = w; k < w + 32; ++k) {
            if ((in[k] % 3 == 0) == (in[t] % 3 == 0)) {
                ++size;
                if (k < t) ++rank;
            }
            if (in[k] % 4 == in[t] % 4) {
                ++lsize;
                lsum += in[k];
                if (k < t) ++lrank;
            }
        }
        if (in[t] % 3 == 0) {
            want.push_back(t);
            REQUIRE(h[4 * t] == size);
            REQUIRE(h[4 * t + 1] == rank);
        } else {
            REQUIRE(h[4 * t] == 1000 + size);
            REQUIRE(h[4 * t + 1] == rank);
        }
        REQUIRE(h[4 * t + 2] == lsize * 100 + lrank);
        REQUIRE(h[4 * t + 3] == lsum);
    }
    REQUIRE(c == int(want.size()));
    std::vector<int> got(l.begin(), l.begin() + c);
    std::sort(got.begin(), got.end());
    REQUIRE(got == want);
}

// ---------------------------------------------------------------------------
// grid.sync(): each phase reads what other blocks wrote in the phase before.
__global__ void grid_phases_kernel(const int* in, int* a, int* b, int* out, int n) {
    cg::grid_group grid = cg::this_grid();
    int r = int(grid.thread_rank());
    a[r] = in[r] * 2 + 1;
    grid.sync();
    b[r] = a[(r + 37) % n] + a[(r * 5 + 1) % n];
    grid.sync();
    if (r == 0) {
        int s = 0;
        for (int k = 0; k < n; ++k) s += b[k];
        out[0] = s;
        out[1] = int(grid.size());
        out[2] = int(grid.is_valid());
        out[3] = int(grid.num_blocks());
    }
}

// The blocks of a cooperative launch run interleaved on one OS thread: block 0
// polls, with atomicAdd(p, 0) alone, the flag that the last block raises once
// it has written its value.
__global__ void wait_for_last_block_kernel(int* flag, int* value, int* out) {
    if (threadIdx.x != 0) return;
    if (blockIdx.x == 0) {
        while (atomicAdd(flag, 0) == 0) {
        }
        __threadfence();
        *out = *value + 1;
    } else if (blockIdx.x == gridDim.x - 1) {
        *value = 41;
        __threadfence();
        atomicExch(flag, 1);
    }
}

TEST_CASE("a block of a cooperative launch that polls another block's flag with atomics lets it run",
          "[emulator][coop]") {
    CoopBuffer<int> flag(1), value(1), out(1);
    CHECK_CUDA(cudaMemset(flag.ptr, 0, sizeof(int)));
    void* args[] = {&flag.ptr, &value.ptr, &out.ptr};
    CHECK_CUDA(cudaLaunchCooperativeKernel(wait_for_last_block_kernel, 4, 32, args, 0, 0));
    REQUIRE(out.get()[0] == 42);
}

__global__ void grid_fill_kernel(int* p) { p[blockIdx.x * blockDim.x + threadIdx.x] = 7; }

TEST_CASE("cudaLaunchCooperativeKernel runs every block at once so grid.sync() completes", "[emulator][coop]") {
    const int blocks = 6, threads = 64, n = blocks * threads;
    auto in = random_ints(n, -500, 500, 10);
    CoopBuffer<int> din(n), a(n), b(n), out(4);
    din.put(in);
    int nn = n;
    void* args[] = {&din.ptr, &a.ptr, &b.ptr, &out.ptr, &nn};
    CHECK_CUDA(cudaLaunchCooperativeKernel(grid_phases_kernel, blocks, threads, args, 0, 0));
    auto h = out.get();
    long long want = 0;
    for (int r = 0; r < n; ++r) want += (in[(r + 37) % n] * 2 + 1) + (in[(r * 5 + 1) % n] * 2 + 1);
    REQUIRE(h[0] == want);
    REQUIRE(h[1] == n);
    REQUIRE(h[2] == 1);
    REQUIRE(h[3] == blocks);
    // The kernel is known now, so the void* form (as samples write it) works too.
    CHECK_CUDA(cudaMemset(out.ptr, 0, 4 * sizeof(int)));
    CHECK_CUDA(cudaLaunchCooperativeKernel((void*)grid_phases_kernel, blocks, threads, args, 0, 0));
    REQUIRE(out.get()[0] == want);

    // A cooperative grid larger than the device holds at once is refused, and does not run.
    int attr = 0;
    CHECK_CUDA(cudaDeviceGetAttribute(&attr, cudaDevAttrCooperativeLaunch, 0));
    REQUIRE(attr == 1);
    const int smem = 200 * 1024;  // one block per SM
    CHECK_CUDA(cudaFuncSetAttribute(grid_fill_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    int per_sm = 0, sms = 0;
    CHECK_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, grid_fill_kernel, 32, smem));
    CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    REQUIRE(per_sm == 1);
    const int fit = per_sm * sms;
    CoopBuffer<int> p((fit + 1) * 32);
    CHECK_CUDA(cudaMemset(p.ptr, 0, (fit + 1) * 32 * sizeof(int)));
    void* pargs[] = {&p.ptr};
    REQUIRE(cudaLaunchCooperativeKernel(grid_fill_kernel, fit + 1, 32, pargs, smem, 0) ==
            cudaErrorCooperativeLaunchTooLarge);
    REQUIRE(cudaGetLastError() == cudaErrorCooperativeLaunchTooLarge);
    CHECK_CUDA(cudaDeviceSynchronize());
    for (int v : p.get()) REQUIRE(v == 0);
    CHECK_CUDA(cudaLaunchCooperativeKernel(grid_fill_kernel, fit, 32, pargs, smem, 0));
    auto hp = p.get();
    for (int i = 0; i < (fit + 1) * 32; ++i) REQUIRE(hp[i] == (i < fit * 32 ? 7 : 0));
}

// ---------------------------------------------------------------------------
// cuda::barrier: phases of a block-wide exchange through shared memory, the
// split arrive/wait form, and arrive_and_drop lowering the count.
__global__ void barrier_kernel(const int* in, int* out, int rounds) {
    __shared__ cuda::barrier<cuda::thread_scope_block> bar;
    __shared__ int buf[128];
    int t = threadIdx.x, n = blockDim.x;
    out += 2 * n * blockIdx.x;
    if (t == 0) init(&bar, n);
    __syncthreads();
    int v = in[t];
    for (int k = 0; k < rounds; ++k) {
        buf[t] = v;
        bar.arrive_and_wait();
        v = v + buf[(t + k + 1) % n];
        auto token = bar.arrive();
        bar.wait(std::move(token));
    }
    out[t] = v;
    // The upper half leaves the barrier; the rest go on with half the count.
    if (t >= n / 2) {
        bar.arrive_and_drop();
        return;
    }
    buf[t] = v * 2;
    bar.arrive_and_wait();
    out[n + t] = buf[(t + 1) % (n / 2)];
}

TEST_CASE("cuda::barrier phases: arrive_and_wait, arrive then wait, arrive_and_drop", "[emulator][coop]") {
    const int n = 128, rounds = 3;
    auto in = random_ints(n, -1000, 1000, 12);
    CoopBuffer<int> din(n), dout(4 * n);
    din.put(in);
    barrier_kernel<<<2, n>>>(din.ptr, dout.ptr, rounds);
    CHECK_CUDA(cudaGetLastError());
    auto h = dout.get();
    std::vector<int> v = in;
    for (int k = 0; k < rounds; ++k) {
        std::vector<int> next(n);
        for (int t = 0; t < n; ++t) next[t] = v[t] + v[(t + k + 1) % n];
        v = next;
    }
    for (int b = 0; b < 2; ++b) {
        for (int t = 0; t < n; ++t) REQUIRE(h[2 * n * b + t] == v[t]);
        for (int t = 0; t < n / 2; ++t) REQUIRE(h[2 * n * b + n + t] == 2 * v[(t + 1) % (n / 2)]);
    }
}

// ---------------------------------------------------------------------------
// Pipelines: a double-buffered sum of chunks. The thread-scope pipeline copies
// each thread's own element; the block-scope one copies whole chunks with the
// block and every thread reads all of it after consumer_wait.
constexpr int kChunk = 64;

__global__ void pipeline_kernel(const float* in, float* out, int chunks) {
    __shared__ float own[2][kChunk];
    __shared__ float all[2][kChunk];
    __shared__ cuda::pipeline_shared_state<cuda::thread_scope_block, 2> state;
    cg::thread_block block = cg::this_thread_block();
    int t = threadIdx.x;
    cuda::pipeline<cuda::thread_scope_thread> mine = cuda::make_pipeline();
    auto shared_pipe = cuda::make_pipeline(block, &state);
    float acc_own = 0, acc_all = 0;
    // Prologue: stage 0 in flight.
    mine.producer_acquire();
    cuda::memcpy_async(&own[0][t], &in[t], sizeof(float), mine);
    mine.producer_commit();
    shared_pipe.producer_acquire();
    cuda::memcpy_async(block, all[0], in, sizeof(float) * kChunk, shared_pipe);
    shared_pipe.producer_commit();
    for (int c = 0; c < chunks; ++c) {
        if (c + 1 < chunks) {
            int s = (c + 1) % 2;
            mine.producer_acquire();
            cuda::memcpy_async(&own[s][t], &in[(c + 1) * kChunk + t], sizeof(float), mine);
            mine.producer_commit();
            shared_pipe.producer_acquire();
            cuda::memcpy_async(block, all[s], in + (c + 1) * kChunk, sizeof(float) * kChunk, shared_pipe);
            shared_pipe.producer_commit();
        }
        mine.consumer_wait();
        acc_own += own[c % 2][t] * float(c + 1);
        mine.consumer_release();
        shared_pipe.consumer_wait();
        acc_all += all[c % 2][(t + c) % kChunk];
        block.sync();  // everyone has read the stage before it is refilled
        shared_pipe.consumer_release();
    }
    out[2 * t] = acc_own;
    out[2 * t + 1] = acc_all;
}

TEST_CASE("cuda::pipeline of a thread and of a block double-buffer copies into shared memory", "[emulator][coop]") {
    const int chunks = 5;
    std::mt19937 rng(13);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> in(chunks * kChunk);
    for (float& x : in) x = u(rng);
    CoopBuffer<float> din(in.size()), dout(2 * kChunk);
    din.put(in);
    pipeline_kernel<<<1, kChunk>>>(din.ptr, dout.ptr, chunks);
    CHECK_CUDA(cudaGetLastError());
    auto h = dout.get();
    for (int t = 0; t < kChunk; ++t) {
        float own = 0, all = 0;
        for (int c = 0; c < chunks; ++c) {
            own += in[c * kChunk + t] * float(c + 1);
            all += in[c * kChunk + (t + c) % kChunk];
        }
        REQUIRE(h[2 * t] == Approx(own));
        REQUIRE(h[2 * t + 1] == Approx(all));
    }
}

// ---------------------------------------------------------------------------
// Asynchronous copies land at the wait: before it the destination still holds
// what was there. cg::memcpy_async + cg::wait, cuda::memcpy_async with a
// barrier, and the cuda_pipeline.h primitives (with a zero fill).
__global__ void async_copies_kernel(const int* in, int* out) {
    __shared__ int a[64];
    __shared__ int b[64];
    __shared__ int c[64];
    __shared__ cuda::barrier<cuda::thread_scope_block> bar;
    cg::thread_block block = cg::this_thread_block();
    int t = threadIdx.x;
    a[t] = -1;
    c[t] = -1;
    if (t == 0) init(&bar, 64);
    block.sync();
    cg::memcpy_async(block, a, in, sizeof(int) * 64);
    out[4 * t] = a[t];  // before the wait: this thread's share has not landed
    cg::wait(block);
    out[4 * t + 1] = a[63 - t];
    cuda::memcpy_async(block, b, in + 64, sizeof(int) * 64, bar);
    bar.arrive_and_wait();
    out[4 * t + 2] = b[(t + 9) % 64];
    // Two batches of 16 bytes per 4 threads; the second keeps only 8 bytes, the rest zeros.
    if (t % 4 == 0) {
        __pipeline_memcpy_async(&c[t], &in[128 + t], 16);
        __pipeline_commit();
        __pipeline_memcpy_async(&c[t], &in[192 + t], 16, 8);
        __pipeline_commit();
        __pipeline_wait_prior(1);  // the first batch only
        out[4 * t + 3] = c[t] + c[t + 3];
        __pipeline_wait_prior(0);
    }
    block.sync();
    if (t % 4 != 0) out[4 * t + 3] = c[t];
}

TEST_CASE("memcpy_async copies land at the wait (cg, cuda::barrier, __pipeline primitives)", "[emulator][coop]") {
    auto in = random_ints(256, 1, 100000, 14);
    CoopBuffer<int> din(256), dout(4 * 64);
    din.put(in);
    async_copies_kernel<<<1, 64>>>(din.ptr, dout.ptr);
    CHECK_CUDA(cudaGetLastError());
    auto h = dout.get();
    for (int t = 0; t < 64; ++t) {
        INFO("thread " << t);
        REQUIRE(h[4 * t] == -1);
        REQUIRE(h[4 * t + 1] == in[63 - t]);
        REQUIRE(h[4 * t + 2] == in[64 + (t + 9) % 64]);
        if (t % 4 == 0) REQUIRE(h[4 * t + 3] == in[128 + t] + in[128 + t + 3]);
        else REQUIRE(h[4 * t + 3] == (t % 4 == 1 ? in[192 + t] : 0));
    }
}
