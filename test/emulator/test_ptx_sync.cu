// Raw inline PTX that synchronises through memory (ptx_sync_kernels.cuh):
// strong loads and stores as polls and hand-overs between warps, and every
// atom and red operation against a CPU computation on random operands.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include "device_buffers.h"
#include "ptx_sync_kernels.cuh"

namespace {

using emu_test::device_zeros;
using emu_test::to_device;
using emu_test::to_host;

// The values the turn-taking kernels write: out[k] = out[k - 1] * mul + (k % 3) + 1.
std::vector<unsigned> turns(int steps, unsigned mul) {
    std::vector<unsigned> want(static_cast<std::size_t>(steps));
    unsigned v = 0;
    for (int k = 0; k < steps; ++k) want[std::size_t(k)] = v = v * mul + unsigned(k % 3) + 1u;
    return want;
}

}  // namespace

// With EMU_SPIN_SECONDS=0 a block is reported as soon as 8 rounds in a row
// see no progress, so the turns stop if a hand-over is not counted as
// progress; they never end if a poll does not let the other warps run.
TEST_CASE(
    "inline PTX: warps take turns through ld.acquire (in an asm loop), volatile, relaxed polls and "
    "st.release/volatile, red",
    "[emulator][ptx]") {
    setenv("EMU_SPIN_SECONDS", "0", 1);
    const int steps = 31;
    unsigned *d_turn = device_zeros<unsigned>(1), *d_out = device_zeros<unsigned>(steps);
    strong_turns_kernel<<<1, 96>>>(d_turn, d_out, steps);
    const cudaError_t err = cudaDeviceSynchronize();
    unsetenv("EMU_SPIN_SECONDS");
    REQUIRE(err == cudaSuccess);
    CHECK(to_host(d_out, steps) == turns(steps, 3u));
    CHECK(to_host(d_turn, 1)[0] == unsigned(steps));
    cudaFree(d_turn);
    cudaFree(d_out);
}

TEST_CASE(
    "inline PTX: warps take turns through shared memory: ld.acquire.cta (in an asm loop), an atom read, "
    "ld.volatile.v2, strong stores",
    "[emulator][ptx]") {
    setenv("EMU_SPIN_SECONDS", "0", 1);
    const int steps = 31;
    unsigned* d_out = device_zeros<unsigned>(steps);
    strong_turns_shared_kernel<<<1, 96>>>(d_out, steps);
    const cudaError_t err = cudaDeviceSynchronize();
    unsetenv("EMU_SPIN_SECONDS");
    REQUIRE(err == cudaSuccess);
    CHECK(to_host(d_out, steps) == turns(steps, 5u));
    cudaFree(d_out);
}

TEST_CASE("inline PTX: labels and bra: CUTLASS's mbarrier wait loop in one asm statement", "[emulator][ptx]") {
    std::vector<float> in(32);
    std::mt19937 rng(7);
    for (float& x : in) x = float(int(rng() % 2001) - 1000) / 8.0f;
    float* d_in = to_device(in);
    float* d_out = device_zeros<float>(32);
    labelled_wait_kernel<<<1, 64>>>(d_in, d_out);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    const std::vector<float> out = to_host(d_out, 32);
    for (int i = 0; i < 32; ++i) CHECK(out[std::size_t(i)] == 2.0f * in[std::size_t(i)]);
    cudaFree(d_in);
    cudaFree(d_out);
}

TEST_CASE("inline PTX: atom and red, every operation and type, in global and shared memory", "[emulator][ptx]") {
    const int blocks = 5, threads = 96, n = blocks * threads;
    std::mt19937_64 rng(2026);
    std::vector<unsigned> a(n);
    std::vector<unsigned long long> b(n);
    std::vector<float> f(n);
    for (int i = 0; i < n; ++i) {
        a[std::size_t(i)] = unsigned(rng());
        b[std::size_t(i)] = rng();
        f[std::size_t(i)] = float(int(rng() % 129) - 64);
    }
    // Starting values: each counter once away from its operation's identity.
    const std::vector<unsigned> u32_init = {7u, 0xffffffffu, 0x10u, 0x5a5a5a5au, 0u, 0u, 0xffffffffu, 0u, 0xabcdu, 3u};
    const std::vector<int> s32_init = {-5, 0x7fffffff, int(0x80000000u)};
    const std::vector<unsigned long long> u64_init = {1ull << 40, 0x0123456789abcdefull, ~0ull, ~0ull, 0ull};
    const std::vector<long long> s64_init = {0x7fffffffffffffffll, (long long)0x8000000000000000ull};
    unsigned* d_a = to_device(a);
    unsigned long long* d_b = to_device(b);
    float* d_f = to_device(f);
    unsigned* d_u32 = to_device(u32_init);
    int* d_s32 = to_device(s32_init);
    unsigned long long* d_u64 = to_device(u64_init);
    long long* d_s64 = to_device(s64_init);
    float* d_f32 = to_device(std::vector<float>{0.5f});
    double* d_f64 = to_device(std::vector<double>{0.25});
    unsigned *d_olds = device_zeros<unsigned>(n), *d_xolds = device_zeros<unsigned>(n),
             *d_bu32 = device_zeros<unsigned>(blocks);
    unsigned long long *d_bu64 = device_zeros<unsigned long long>(blocks),
                       *d_olds64 = device_zeros<unsigned long long>(n);
    float* d_folds = device_zeros<float>(n);
    atom_ops_kernel<<<blocks, threads>>>(d_a, d_b, d_f, d_u32, d_s32, d_u64, d_s64, d_f32, d_f64, d_olds, d_xolds,
                                         d_olds64, d_folds, d_bu32, d_bu64);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);

    std::vector<unsigned> u32 = u32_init;
    std::vector<int> s32 = s32_init;
    std::vector<unsigned long long> u64 = u64_init;
    std::vector<long long> s64 = s64_init;
    float f32 = 0.5f;
    double f64 = 0.25;
    std::vector<unsigned> bu32(blocks, 0);
    std::vector<unsigned long long> bu64(blocks, 0);
    for (int i = 0; i < n; ++i) {
        const unsigned x = a[std::size_t(i)];
        const unsigned long long y = b[std::size_t(i)];
        u32[0] += 1;
        u32[1] &= ~(1u << x % 32);
        u32[2] |= 1u << x % 32;
        u32[3] ^= x;
        u32[4] = u32[4] >= 6 ? 0 : u32[4] + 1;
        u32[5] = (u32[5] == 0 || u32[5] > 10) ? 10 : u32[5] - 1;
        u32[6] = std::min(u32[6], x);
        u32[7] = std::max(u32[7], x);
        u32[9] += x % 7 + 1;
        s32[0] += int(x) >> 20;
        s32[1] = std::min(s32[1], int(x));
        s32[2] = std::max(s32[2], int(x));
        u64[0] += y;
        u64[1] ^= y;
        u64[2] &= ~(1ull << y % 64);
        u64[3] = std::min(u64[3], y);
        u64[4] = std::max(u64[4], y);
        s64[0] = std::min(s64[0], (long long)y);
        s64[1] = std::max(s64[1], (long long)y);
        f32 += f[std::size_t(i)];
        f64 += double(f[std::size_t(i)]);
        bu32[std::size_t(i / threads)] += x % 1000;
        bu64[std::size_t(i / threads)] += y % 1000;
    }
    std::vector<unsigned> got_u32 = to_host(d_u32, u32.size());
    // exch: the values returned and the one left are the start and the operands, in some order.
    std::vector<unsigned> exch = to_host(d_xolds, std::size_t(n)), want_exch = a;
    exch.push_back(got_u32[8]);
    want_exch.push_back(u32_init[8]);
    std::sort(exch.begin(), exch.end());
    std::sort(want_exch.begin(), want_exch.end());
    CHECK(exch == want_exch);
    got_u32[8] = u32[8] = 0;
    CHECK(got_u32 == u32);
    CHECK(to_host(d_s32, s32.size()) == s32);
    CHECK(to_host(d_u64, u64.size()) == u64);
    CHECK(to_host(d_s64, s64.size()) == s64);
    CHECK(to_host(d_f32, 1)[0] == f32);  // small integers: exact in any order
    CHECK(to_host(d_f64, 1)[0] == f64);
    CHECK(to_host(d_bu32, blocks) == bu32);
    CHECK(to_host(d_bu64, blocks) == bu64);
    // atom.add returns the old value: each of 7 .. 7 + n - 1 once.
    std::vector<unsigned> olds = to_host(d_olds, std::size_t(n));
    std::sort(olds.begin(), olds.end());
    for (int i = 0; i < n; ++i) CHECK(olds[std::size_t(i)] == u32_init[0] + unsigned(i));
    // The u64 and f32 adds return the old value: the olds and the total are
    // the start and each old plus its thread's operand, in some order.
    const std::vector<unsigned long long> olds64 = to_host(d_olds64, std::size_t(n));
    const std::vector<float> folds = to_host(d_folds, std::size_t(n));
    std::vector<unsigned long long> before64 = olds64, after64{u64_init[0]};
    std::vector<float> beforef = folds, afterf{0.5f};
    before64.push_back(u64[0]);
    beforef.push_back(f32);
    for (int i = 0; i < n; ++i) {
        after64.push_back(olds64[std::size_t(i)] + b[std::size_t(i)]);
        afterf.push_back(folds[std::size_t(i)] + f[std::size_t(i)]);
    }
    for (auto* v : {&before64, &after64}) std::sort(v->begin(), v->end());
    for (auto* v : {&beforef, &afterf}) std::sort(v->begin(), v->end());
    CHECK(before64 == after64);
    CHECK(beforef == afterf);
    for (void* p : std::vector<void*>{d_a, d_b, d_f, d_u32, d_s32, d_u64, d_s64, d_f32, d_f64, d_olds, d_xolds,
                                      d_olds64, d_folds, d_bu32, d_bu64})
        cudaFree(p);
}
