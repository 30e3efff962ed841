// libcu++'s atomics (<cuda/atomic>, <cuda/std/atomic>): warps that take turns
// through a flag with load/store, wait and read-modify-writes, and every
// operation from every thread of several blocks against a CPU fold. The same
// file runs on a GPU (bin/test_ptx_gpu of the GPU bundle) against the real
// libcu++.
#include <catch2/catch.hpp>
#include <cuda/atomic>
#include <cuda/std/atomic>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include "device_buffers.h"

namespace {

using emu_test::device_zeros;
using emu_test::to_device;
using emu_test::to_host;

// Lane 0 of warps 0, 1 and 2 take turns through a flag in shared memory: step
// k is warp k % 3's, and it writes out[k] from out[k - 1]. Each waits and
// hands over in its own way:
//   warp 0: load(acquire) in a loop, then store(release);
//   warp 1: wait(seen) until the flag changes (relaxed loads and an acquire
//           fence), then fetch_add(1) and notify_all;
//   warp 2: compare_exchange_strong(k, k + 1), retried until it succeeds
//           (each failure is an atomic read).
__global__ void atomic_turns_kernel(unsigned* out, int steps) {
    __shared__ unsigned flag;
    if (threadIdx.x == 0) flag = 0;
    __syncthreads();
    if (threadIdx.x % 32) return;
    cuda::atomic_ref<unsigned, cuda::thread_scope_block> f(flag);
    const unsigned me = threadIdx.x / 32;
    for (int k = int(me); k < steps; k += 3) {
        const unsigned want = unsigned(k);
        if (me == 0) {
            while (f.load(cuda::memory_order_acquire) != want) {
            }
        } else if (me == 1) {
            for (unsigned seen = f.load(cuda::memory_order_relaxed); seen != want;
                 seen = f.load(cuda::memory_order_relaxed))
                f.wait(seen, cuda::memory_order_relaxed);
            cuda::atomic_thread_fence(cuda::memory_order_acquire, cuda::thread_scope_block);
        }
        if (me != 2) out[k] = (k ? out[k - 1] : 0u) * 3u + me + 1u;
        if (me == 0) {
            f.store(want + 1, cuda::memory_order_release);
        } else if (me == 1) {
            f.fetch_add(1, cuda::memory_order_acq_rel);
            f.notify_all();
        } else {
            // The write comes after the exchange that took the turn, so the
            // next warp waits for this one's hand-over below.
            unsigned expected = want;
            while (!f.compare_exchange_strong(expected, ~0u, cuda::memory_order_acquire)) expected = want;
            out[k] = (k ? out[k - 1] : 0u) * 3u + me + 1u;
            f.store(want + 1, cuda::memory_order_release);
        }
    }
}

// Every thread of every block applies each operation once, with operands from
// a (32 bits), b (64 bits) and f (small integers: float sums are exact in any
// order):
//   i32[0] fetch_add a % 1000     i32[1] fetch_sub a % 77    i32[2] fetch_and ~(1 << a % 32)
//   i32[3] fetch_or 1 << a % 32   i32[4] fetch_xor a         i32[5] fetch_min a
//   i32[6] fetch_max a            i32[7] ++                  i32[8] += a % 5
//   i32[9] exchange a (olds[t] its result)
//   i32[10] add a % 7 + 1 through a compare_exchange_weak loop
//   u64[0] fetch_add b (cuda::std::atomic_ref)   u64[1] fetch_max b
//   f32[0] fetch_add f    f64[0] fetch_sub f
// and per block a __shared__ cuda::atomic<unsigned, thread_scope_block> that
// every thread increments, read by thread 0 into block_count.
__global__ void atomic_ops_kernel(const int* a, const unsigned long long* b, const float* f, int* i32,
                                  unsigned long long* u64, float* f32, double* f64, int* olds, unsigned* block_count) {
    __shared__ cuda::atomic<unsigned, cuda::thread_scope_block> count;
    if (threadIdx.x == 0) count.store(0, cuda::memory_order_relaxed);
    __syncthreads();
    const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
    const int x = a[t];
    using ref = cuda::atomic_ref<int, cuda::thread_scope_device>;
    ref(i32[0]).fetch_add(x % 1000);
    ref(i32[1]).fetch_sub(x % 77, cuda::memory_order_relaxed);
    ref(i32[2]).fetch_and(~int(1u << (unsigned(x) % 32)));
    ref(i32[3]).fetch_or(int(1u << (unsigned(x) % 32)));
    ref(i32[4]).fetch_xor(x);
    ref(i32[5]).fetch_min(x);
    ref(i32[6]).fetch_max(x);
    ++ref(i32[7]);
    ref(i32[8]) += x % 5;
    olds[t] = ref(i32[9]).exchange(x);
    ref sum(i32[10]);
    int seen = sum.load(cuda::memory_order_relaxed);
    while (!sum.compare_exchange_weak(seen, seen + int(unsigned(x) % 7) + 1, cuda::memory_order_acq_rel,
                                      cuda::memory_order_relaxed)) {
    }
    cuda::std::atomic_ref<unsigned long long>(u64[0]).fetch_add(b[t]);
    cuda::atomic_ref<unsigned long long, cuda::thread_scope_system>(u64[1]).fetch_max(b[t]);
    cuda::atomic_ref<float, cuda::thread_scope_device>(f32[0]).fetch_add(f[t]);
    cuda::atomic_ref<double, cuda::thread_scope_device>(f64[0]).fetch_sub(double(f[t]));
    count.fetch_add(1, cuda::memory_order_relaxed);
    __syncthreads();
    if (threadIdx.x == 0) block_count[blockIdx.x] = count.load();
}

}  // namespace

// EMU_SPIN_SECONDS=0: a hand-over not counted as progress stops the turns.
TEST_CASE("libcu++ atomics: warps take turns with load/store, wait and notify, compare_exchange",
          "[emulator][atomic]") {
    setenv("EMU_SPIN_SECONDS", "0", 1);
    const int steps = 31;
    unsigned* d_out = device_zeros<unsigned>(steps);
    atomic_turns_kernel<<<1, 96>>>(d_out, steps);
    const cudaError_t err = cudaDeviceSynchronize();
    unsetenv("EMU_SPIN_SECONDS");
    REQUIRE(err == cudaSuccess);
    const std::vector<unsigned> out = to_host(d_out, steps);
    unsigned v = 0;
    for (int k = 0; k < steps; ++k) {
        v = v * 3u + unsigned(k % 3) + 1u;
        CHECK(out[std::size_t(k)] == v);
    }
    cudaFree(d_out);
}

TEST_CASE("libcu++ atomics: every operation from every thread of 5 blocks, atomic_ref and a __shared__ atomic",
          "[emulator][atomic]") {
    const int blocks = 5, threads = 96, n = blocks * threads;
    std::mt19937_64 rng(11);
    std::vector<int> a(n);
    std::vector<unsigned long long> b(n);
    std::vector<float> f(n);
    for (int i = 0; i < n; ++i) {
        a[std::size_t(i)] = int(uint32_t(rng()));
        b[std::size_t(i)] = rng();
        f[std::size_t(i)] = float(int(rng() % 129) - 64);
    }
    const std::vector<int> i32_init = {5, -1, int(0x0f0f0000u), -7, 0x7fffffff, int(0x80000000u), 0, 41, 12345, 3, 17};
    const std::vector<unsigned long long> u64_init = {99, 0};
    int* d_a = to_device(a);
    unsigned long long* d_b = to_device(b);
    float* d_f = to_device(f);
    int* d_i32 = to_device(i32_init);
    unsigned long long* d_u64 = to_device(u64_init);
    float* d_f32 = to_device(std::vector<float>{0.5f});
    double* d_f64 = to_device(std::vector<double>{0.25});
    int* d_olds = device_zeros<int>(n);
    unsigned* d_count = device_zeros<unsigned>(blocks);
    atomic_ops_kernel<<<blocks, threads>>>(d_a, d_b, d_f, d_i32, d_u64, d_f32, d_f64, d_olds, d_count);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);

    std::vector<int> i32 = i32_init;
    std::vector<unsigned long long> u64 = u64_init;
    float f32 = 0.5f;
    double f64 = 0.25;
    for (int i = 0; i < n; ++i) {
        const int x = a[std::size_t(i)];
        i32[0] += x % 1000;
        i32[1] -= x % 77;
        i32[2] &= ~int(1u << (unsigned(x) % 32));
        i32[3] |= int(1u << (unsigned(x) % 32));
        i32[4] ^= x;
        i32[5] = std::min(i32[5], x);
        i32[6] = std::max(i32[6], x);
        i32[7] += 1;
        i32[8] += x % 5;
        i32[10] += int(unsigned(x) % 7) + 1;
        u64[0] += b[std::size_t(i)];
        u64[1] = std::max(u64[1], b[std::size_t(i)]);
        f32 += f[std::size_t(i)];
        f64 -= double(f[std::size_t(i)]);
    }
    std::vector<int> got = to_host(d_i32, i32.size());
    // exchange: the values returned and the one left are the start and the operands, in some order.
    std::vector<int> exch = to_host(d_olds, std::size_t(n)), want_exch = a;
    exch.push_back(got[9]);
    want_exch.push_back(i32_init[9]);
    std::sort(exch.begin(), exch.end());
    std::sort(want_exch.begin(), want_exch.end());
    CHECK(exch == want_exch);
    got[9] = i32[9] = 0;
    CHECK(got == i32);
    CHECK(to_host(d_u64, 2) == u64);
    CHECK(to_host(d_f32, 1)[0] == f32);
    CHECK(to_host(d_f64, 1)[0] == f64);
    CHECK(to_host(d_count, blocks) == std::vector<unsigned>(blocks, unsigned(threads)));
    for (void* p : std::vector<void*>{d_a, d_b, d_f, d_i32, d_u64, d_f32, d_f64, d_olds, d_count}) cudaFree(p);
}
