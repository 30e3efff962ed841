// Raw inline PTX run by the emulator's interpreter: special registers and the
// scalar instructions (setp, selp, mov, guards), each against a CPU computation
// on random values.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cstdint>
#include <random>
#include <vector>

namespace {

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

template <class T>
T* to_device(const std::vector<T>& h) {
    T* d = nullptr;
    REQUIRE(cudaMalloc(&d, h.size() * sizeof(T)) == cudaSuccess);
    REQUIRE(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
    return d;
}
template <class T>
std::vector<T> to_host(const T* d, std::size_t n) {
    std::vector<T> h(n);
    REQUIRE(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
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
