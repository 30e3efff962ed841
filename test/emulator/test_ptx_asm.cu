// Raw inline PTX run by the emulator's interpreter: special registers and the
// scalar instructions (setp, selp, mov, guards), each against a CPU computation
// on random values.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cstdint>
#include <random>
#include <vector>

#include "device_buffers.h"

namespace {

using emu_test::to_device;
using emu_test::to_host;

__global__ void special_registers(unsigned* out) {
    unsigned lane = 0, tid = 0, warp = 0;
    asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
    asm volatile("mov.u32 %0, %%tid.x;" : "=r"(tid));
    asm volatile("mov.u32 %0, %%warpid;" : "=r"(warp));
    out[3 * threadIdx.x] = lane;
    out[3 * threadIdx.x + 1] = tid;
    out[3 * threadIdx.x + 2] = warp;
}

// lt = a < b (signed), mx = max(a, b) through guarded movs, below = (unsigned 64-bit) x < y.
__global__ void compare_select(const int* a, const int* b, const unsigned long long* x, const unsigned long long* y,
                               unsigned* lt, int* mx, unsigned* below) {
    const unsigned i = threadIdx.x;
    unsigned r = 0;
    asm("{\n.reg .pred p;\nsetp.lt.s32 p, %1, %2;\nselp.u32 %0, 1, 0, p;\n}\n" : "=r"(r) : "r"(a[i]), "r"(b[i]));
    lt[i] = r;
    int m = 0;
    asm("{ .reg .pred q; setp.gt.s32 q, %1, %2; @q mov.b32 %0, %1; @!q mov.b32 %0, %2; }"
        : "+r"(m)
        : "r"(a[i]), "r"(b[i]));
    mx[i] = m;
    unsigned u = 0;
    asm("{\n.reg .pred p;\nsetp.lt.u64 p, %1, %2;\nselp.u32 %0, 1, 0, p;\n}\n" : "=r"(u) : "l"(x[i]), "l"(y[i]));
    below[i] = u;
}

// mov.b32 packs two 16-bit halves and unpacks them; mov.b64 the same with 32-bit halves.
__global__ void mov_packing(const unsigned short* h, const unsigned* w, unsigned* packed, unsigned short* halves,
                            unsigned long long* packed64, unsigned* words) {
    const unsigned i = threadIdx.x;
    unsigned p = 0;
    asm("mov.b32 %0, {%1, %2};" : "=r"(p) : "h"(h[2 * i]), "h"(h[2 * i + 1]));
    packed[i] = p;
    unsigned short lo = 0, hi = 0;
    asm("mov.b32 {%0, %1}, %2;" : "=h"(lo), "=h"(hi) : "r"(w[i]));
    halves[2 * i] = lo, halves[2 * i + 1] = hi;
    unsigned long long q = 0;
    asm("mov.b64 %0, {%1, %2};" : "=l"(q) : "r"(w[i]), "r"(p));
    packed64[i] = q;
    unsigned a = 0, b = 0;
    asm("mov.b64 {%0, %1}, %2;" : "=r"(a), "=r"(b) : "l"(q));
    words[2 * i] = b, words[2 * i + 1] = a;
}

}  // namespace

TEST_CASE("inline PTX: %laneid, %tid.x and %warpid name the running thread", "[emulator][ptx]") {
    unsigned* d_out = nullptr;
    REQUIRE(cudaMalloc(&d_out, 96 * 3 * sizeof(unsigned)) == cudaSuccess);
    special_registers<<<1, 96>>>(d_out);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const std::vector<unsigned> out = to_host(d_out, 96 * 3);
    for (unsigned i = 0; i < 96; ++i) {
        CHECK(out[3 * i] == i % 32);
        CHECK(out[3 * i + 1] == i);
        CHECK(out[3 * i + 2] == i / 32);
    }
    cudaFree(d_out);
}

TEST_CASE("inline PTX: setp, selp and guarded mov against the CPU", "[emulator][ptx]") {
    const int n = 64;
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> small(-1000, 1000);
    std::vector<int> a(n), b(n);
    std::vector<unsigned long long> x(n), y(n);
    for (int i = 0; i < n; ++i) {
        a[i] = small(rng), b[i] = small(rng);
        x[i] = (uint64_t(rng()) << 32) | rng(), y[i] = (uint64_t(rng()) << 32) | rng();
    }
    int *d_a = to_device(a), *d_b = to_device(b), *d_mx = nullptr;
    unsigned long long *d_x = to_device(x), *d_y = to_device(y);
    unsigned *d_lt = nullptr, *d_below = nullptr;
    REQUIRE(cudaMalloc(&d_lt, n * sizeof(unsigned)) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_mx, n * sizeof(int)) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_below, n * sizeof(unsigned)) == cudaSuccess);
    compare_select<<<1, n>>>(d_a, d_b, d_x, d_y, d_lt, d_mx, d_below);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const std::vector<unsigned> lt = to_host(d_lt, n), below = to_host(d_below, n);
    const std::vector<int> mx = to_host(d_mx, n);
    for (int i = 0; i < n; ++i) {
        CHECK(lt[i] == unsigned(a[i] < b[i]));
        CHECK(mx[i] == (a[i] > b[i] ? a[i] : b[i]));
        CHECK(below[i] == unsigned(x[i] < y[i]));
    }
    for (void* p : {(void*)d_a, (void*)d_b, (void*)d_mx, (void*)d_x, (void*)d_y, (void*)d_lt, (void*)d_below})
        cudaFree(p);
}

TEST_CASE("inline PTX: mov.b32 and mov.b64 pack and unpack {lo, hi} halves", "[emulator][ptx]") {
    const int n = 32;
    std::mt19937 rng(5);
    std::vector<unsigned short> h(2 * n);
    std::vector<unsigned> w(n);
    for (auto& x : h) x = static_cast<unsigned short>(rng() | 1u);
    for (auto& x : w) x = unsigned(rng()) | 1u;
    unsigned short *d_h = to_device(h), *d_halves = nullptr;
    unsigned *d_w = to_device(w), *d_packed = nullptr, *d_words = nullptr;
    unsigned long long* d_packed64 = nullptr;
    REQUIRE(cudaMalloc(&d_packed, n * sizeof(unsigned)) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_halves, 2 * n * sizeof(unsigned short)) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_packed64, n * sizeof(unsigned long long)) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_words, 2 * n * sizeof(unsigned)) == cudaSuccess);
    mov_packing<<<1, n>>>(d_h, d_w, d_packed, d_halves, d_packed64, d_words);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const std::vector<unsigned> packed = to_host(d_packed, n), words = to_host(d_words, 2 * n);
    const std::vector<unsigned short> halves = to_host(d_halves, 2 * n);
    const std::vector<unsigned long long> packed64 = to_host(d_packed64, n);
    for (int i = 0; i < n; ++i) {
        const unsigned p = unsigned(h[2 * i]) | (unsigned(h[2 * i + 1]) << 16);
        CHECK(packed[i] == p);
        CHECK(halves[2 * i] == (w[i] & 0xffffu));
        CHECK(halves[2 * i + 1] == (w[i] >> 16));
        CHECK(packed64[i] == (uint64_t(w[i]) | (uint64_t(p) << 32)));
        CHECK(words[2 * i] == p);
        CHECK(words[2 * i + 1] == w[i]);
    }
    for (void* q : {(void*)d_h, (void*)d_halves, (void*)d_w, (void*)d_packed, (void*)d_words, (void*)d_packed64})
        cudaFree(q);
}
