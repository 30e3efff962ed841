// Kernel launches as people write them (templates with deduced arguments,
// overloads, NULL arguments, function pointers, launches in templates and
// macros), the built-in variables as variables, headers reached by relative
// paths, and the CUDA keywords that are no-ops or plain C++ here. Every result is
// checked against a plain CPU computation on random inputs.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <random>
#include <thread>
#include <vector>

#include "device_buffers.h"
#include "headers/block_sum.cuh"

namespace {

using emu_test::to_device;
using emu_test::to_host;

std::vector<float> random_floats(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::vector<float> v(n);
    for (float& x : v) x = u(rng);
    return v;
}

}  // namespace

// ---- kernels -------------------------------------------------------------------

// A template whose argument is deduced from the call.
template <class T>
__global__ void axpy(T a, const T* x, T* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}

// Explicit template arguments, one a value.
template <class T, int K>
__global__ void scale_by(const T* __restrict__ x, T* __restrict__ y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * T(K);
}

// A kernel and a host function of the same name; two kernels of the same name.
__global__ void add_one(float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += 1.0f;
}
void add_one(std::vector<float>& v) {
    for (float& x : v) x += 1.0f;
}
__global__ void store(float* out, float v) { out[threadIdx.x] = v + float(threadIdx.x); }
__global__ void store(int* out, int v) { out[threadIdx.x] = v * 2 + int(threadIdx.x); }

// A pointer that may be null; a default argument.
__global__ void maybe_bias(const float* bias, float* y, int n, float extra = 0.5f) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = y[i] * 2.0f + (bias ? bias[i] : 0.0f) + extra;
}

// Parameters of other types than the arguments (long to int, int to float, float to double).
__global__ void mixed(double* out, int n, float f, double d) {
    int i = threadIdx.x;
    if (i < n) out[i] = double(f) * d + i;
}

__global__ void record(int* out, int v) { out[threadIdx.x + blockIdx.x * blockDim.x] = v; }

// Every built-in, on a 3-D grid of 3-D blocks.
__global__ void coordinates(unsigned* out) {
    unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned per_block = blockDim.x * blockDim.y * blockDim.z;
    unsigned* o = out + 8 * (block * per_block + thread);
    o[0] = threadIdx.x;
    o[1] = threadIdx.y;
    o[2] = threadIdx.z;
    o[3] = blockIdx.x;
    o[4] = blockIdx.y;
    o[5] = blockIdx.z;
    o[6] = gridDim.x * 100 + gridDim.y * 10 + gridDim.z;
    o[7] = warpSize;
}

// ---- the keywords --------------------------------------------------------------
__managed__ int managed_counter;
__constant__ float constant_weights[4] = {0.5f, -1.0f, 2.0f, 0.25f};

struct Params {
    float scale;
    int n;
};

__device__ __forceinline__ float weighted(float x, int i) { return x * constant_weights[i % 4]; }
__device__ __noinline__ float shifted(float x) { return x + 1.0f; }

__global__ void __launch_bounds__(128)
    keywords_1(const float* __restrict__ x, float* __restrict__ y, const __grid_constant__ Params p) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < p.n) y[i] = shifted(weighted(x[i], i)) * p.scale;
}
__global__ void __launch_bounds__(64, 2) count_blocks() {
    if (threadIdx.x == 0) atomicAdd(&managed_counter, 1);
}

// __shared__ in a template: each instantiation has its own array of its own size.
template <int N>
__global__ void reverse_in_shared(const float* in, float* out) {
    __shared__ float tile[N];
    static __shared__ int seen;
    if (threadIdx.x == 0) seen = 0;
    __syncthreads();
    tile[threadIdx.x] = in[threadIdx.x];
    atomicAdd(&seen, 1);
    __syncthreads();
    out[threadIdx.x] = tile[N - 1 - threadIdx.x] + float(seen);
}

// A device lambda passed to a template kernel.
template <class F>
__global__ void apply(const float* x, float* y, int n, F f) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = f(x[i]);
}

__global__ void big_dynamic(float* out) {
    extern __shared__ float buf[];
    buf[threadIdx.x] = float(threadIdx.x);
    __syncthreads();
    out[threadIdx.x] = buf[blockDim.x - 1 - threadIdx.x];
}
template <class T>
__global__ void big_dynamic_t(T* out) {
    extern __shared__ float buf[];
    buf[threadIdx.x] = float(threadIdx.x);
    __syncthreads();
    out[threadIdx.x] = T(buf[blockDim.x - 1 - threadIdx.x]);
}

// A launch inside a function template and inside a macro.
template <class T>
void launch_axpy(T a, const T* x, T* y, int n, cudaStream_t s) {
    axpy<<<(n + 63) / 64, 64, 0, s>>>(a, x, y, n);
}
#define LAUNCH_ADD_ONE(ptr, n) add_one<<<((n) + 31) / 32, 32>>>(ptr, n)

// ---- tests ----------------------------------------------------------------------

TEST_CASE("template kernels launch with deduced and with explicit arguments", "[emulator][launch]") {
    const int n = 300;
    auto hx = random_floats(n, 1), hy = random_floats(n, 2);
    float* x = to_device(hx);
    float* y = to_device(hy);
    axpy<<<(n + 127) / 128, 128>>>(1.5f, x, y, n);  // T = float, deduced
    std::vector<double> dx(hx.begin(), hx.end()), dy(hy.begin(), hy.end());
    double* x2 = to_device(dx);
    double* y2 = to_device(dy);
    axpy<<<dim3((n + 63) / 64), dim3(64)>>>(-0.25, x2, y2, n);  // T = double
    float* z = nullptr;
    REQUIRE(cudaMalloc(&z, n * sizeof(float)) == cudaSuccess);
    scale_by<float, 3><<<(n + 31) / 32, 32>>>(x, z, n);
    auto ry = to_host(y, n);
    auto ry2 = to_host(y2, n);
    auto rz = to_host(z, n);
    for (int i = 0; i < n; ++i) {
        REQUIRE(ry[i] == 1.5f * hx[i] + hy[i]);
        REQUIRE(ry2[i] == -0.25 * dx[i] + dy[i]);
        REQUIRE(rz[i] == hx[i] * 3.0f);
    }
    cudaFree(x), cudaFree(y), cudaFree(x2), cudaFree(y2), cudaFree(z);
}

TEST_CASE("overloaded kernels and kernels named like host functions", "[emulator][launch]") {
    const int n = 100;
    auto h = random_floats(n, 3);
    float* d = to_device(h);
    add_one<<<4, 32>>>(d, n);  // the kernel
    auto expect = h;
    add_one(expect);  // the host function of the same name
    auto r = to_host(d, n);
    for (int i = 0; i < n; ++i) REQUIRE(r[i] == expect[i]);
    int* di = nullptr;
    REQUIRE(cudaMalloc(&di, 32 * sizeof(int)) == cudaSuccess);
    store<<<1, 32>>>(d, 0.75f);
    store<<<1, 32>>>(di, 21);
    auto rf = to_host(d, 32);
    auto ri = to_host(di, 32);
    for (int t = 0; t < 32; ++t) {
        REQUIRE(rf[t] == 0.75f + float(t));
        REQUIRE(ri[t] == 42 + t);
    }
    cudaFree(d), cudaFree(di);
}

TEST_CASE("NULL, 0 and nullptr arguments, default arguments and converted arguments", "[emulator][launch]") {
    const int n = 64;
    auto hb = random_floats(n, 4), hy = random_floats(n, 5);
    float* bias = to_device(hb);
    float* y = to_device(hy);
    maybe_bias<<<1, n>>>(NULL, y, n, 0.0f);
    maybe_bias<<<1, n>>>(0, y, n);  // the default `extra`
    maybe_bias<<<1, n>>>(nullptr, y, n, 1.0f);
    maybe_bias<<<1, n>>>(bias, y, n, 0);
    auto r = to_host(y, n);
    for (int i = 0; i < n; ++i) {
        float e = hy[i] * 2.0f;
        e = e * 2.0f + 0.5f;
        e = e * 2.0f + 1.0f;
        e = e * 2.0f + hb[i];
        REQUIRE(r[i] == e);
    }
    double* out = nullptr;
    REQUIRE(cudaMalloc(&out, 16 * sizeof(double)) == cudaSuccess);
    std::size_t count = 16;  // size_t to int
    int f = 3;               // int to float
    float d = 0.5f;          // float to double
    mixed<<<1, 16>>>(out, count, f, d);
    auto ro = to_host(out, 16);
    for (int i = 0; i < 16; ++i) REQUIRE(ro[i] == 1.5 + i);
    cudaFree(bias), cudaFree(y), cudaFree(out);
}

TEST_CASE("kernels called through function pointers", "[emulator][launch]") {
    const int n = 96;
    auto h = random_floats(n, 6);
    float* d = to_device(h);
    void (*k)(float*, int) = add_one;
    k<<<3, 32>>>(d, n);
    auto deduced = &axpy<float>;
    deduced<<<3, 32>>>(2.0f, d, d, n);  // y = 2y + y
    void (*table[2])(float*, int) = {add_one, add_one};
    int which = 1;
    table[which]<<<3, 32>>>(d, n);
    (*k)<<<3, 32>>>(d, n);
    auto r = to_host(d, n);
    for (int i = 0; i < n; ++i) REQUIRE(r[i] == (h[i] + 1.0f) * 3.0f + 2.0f);
    cudaFree(d);
}

TEST_CASE("launches inside templates and macros, with every configuration form", "[emulator][launch]") {
    const int n = 200;
    auto hx = random_floats(n, 7), hy = random_floats(n, 8);
    float* x = to_device(hx);
    float* y = to_device(hy);
    cudaStream_t s;
    REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
    launch_axpy(0.5f, x, y, n, s);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    LAUNCH_ADD_ONE(y, n);
    add_one<<<n, 1, 0>>>(y, n);
    add_one<<<n, 1, 0, s>>>(y, n);
    // A comment that ends in a dot, on the line above a launch.
    add_one<<<n, 1>>>(y, n);
    // clang-format off
    scale_by<float, 2>
        <<<1, n>>>(y, y, n);  // the kernel on the line above its <<<
    // clang-format on
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    auto r = to_host(y, n);
    for (int i = 0; i < n; ++i) {
        float e = 0.5f * hx[i] + hy[i];
        for (int k = 0; k < 4; ++k) e += 1.0f;  // the four add_one launches
        REQUIRE(r[i] == e * 2.0f);
    }
    cudaStreamDestroy(s);
    cudaFree(x), cudaFree(y);
}

TEST_CASE("arguments are evaluated once, at the launch, in the launching thread", "[emulator][launch]") {
    int* d = nullptr;
    REQUIRE(cudaMalloc(&d, 4 * 32 * sizeof(int)) == cudaSuccess);
    cudaStream_t s;
    REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
    std::mt19937 rng(9);
    int v = int(rng() % 1000) + 1;
    int first = v;
    int calls = 0;
    std::thread::id launcher = std::this_thread::get_id(), evaluated;
    auto next = [&] {
        ++calls;
        evaluated = std::this_thread::get_id();
        return v * 3;
    };
    record<<<4, 32, 0, s>>>(d, v++);     // the work waits on the stream; v changes after the launch
    record<<<2, 32, 0, s>>>(d, next());  // one call for 64 threads
    v = -1;
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    auto r = to_host(d, 4 * 32);
    REQUIRE(calls == 1);
    REQUIRE(evaluated == launcher);
    for (int i = 0; i < 64; ++i) REQUIRE(r[i] == (first + 1) * 3);
    for (int i = 64; i < 128; ++i) REQUIRE(r[i] == first);
    cudaStreamDestroy(s);
    cudaFree(d);
}

TEST_CASE("launch errors for template and overloaded kernels", "[emulator][launch]") {
    float* d = nullptr;
    REQUIRE(cudaMalloc(&d, 256 * sizeof(float)) == cudaSuccess);
    const std::size_t big = 64 * 1024;
    big_dynamic<<<1, 256, big>>>(d);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
    // Deduced: the kernel is not known by address, so the largest limit set on
    // any kernel applies (other tests raise theirs); above the device's 227 KiB
    // it is refused.
    big_dynamic_t<<<1, 256, 256 * 1024>>>(d);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
    axpy<<<1, 2048>>>(1.0f, d, d, 256);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
    REQUIRE(cudaFuncSetAttribute(big_dynamic, cudaFuncAttributeMaxDynamicSharedMemorySize, int(big)) == cudaSuccess);
    big_dynamic<<<1, 256, big>>>(d);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    auto r = to_host(d, 256);
    for (int t = 0; t < 256; ++t) REQUIRE(r[t] == float(255 - t));
    // Explicit instantiation: the attribute is set on this very function.
    REQUIRE(cudaFuncSetAttribute(big_dynamic_t<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(big)) ==
            cudaSuccess);
    big_dynamic_t<float><<<1, 128, big>>>(d);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    r = to_host(d, 128);
    for (int t = 0; t < 128; ++t) REQUIRE(r[t] == float(127 - t));
    cudaFree(d);
}

TEST_CASE("built-ins are variables: every coordinate, and host variables of the same names", "[emulator][launch]") {
    // Host code may name its own variables like the built-ins (llm.c's programs do).
    dim3 gridDim(3, 2, 2);
    dim3 blockDim(4, 2, 3);
    int warpSize = 7;
    REQUIRE(warpSize == 7);
    unsigned blocks = gridDim.x * gridDim.y * gridDim.z, threads = blockDim.x * blockDim.y * blockDim.z;
    unsigned* d = nullptr;
    REQUIRE(cudaMalloc(&d, 8 * blocks * threads * sizeof(unsigned)) == cudaSuccess);
    coordinates<<<gridDim, blockDim>>>(d);
    auto r = to_host(d, 8 * blocks * threads);
    for (unsigned b = 0; b < blocks; ++b)
        for (unsigned t = 0; t < threads; ++t) {
            const unsigned* o = &r[8 * (b * threads + t)];
            REQUIRE(o[0] == t % 4);
            REQUIRE(o[1] == t / 4 % 2);
            REQUIRE(o[2] == t / 8);
            REQUIRE(o[3] == b % 3);
            REQUIRE(o[4] == b / 3 % 2);
            REQUIRE(o[5] == b / 6);
            REQUIRE(o[6] == 322u);
            REQUIRE(o[7] == 32u);
        }
    cudaFree(d);
}

TEST_CASE("CUDA keywords: launch bounds, grid constants, managed and constant memory, static and template shared",
          "[emulator][launch]") {
    const int n = 150;
    auto hx = random_floats(n, 10);
    float* x = to_device(hx);
    float* y = nullptr;
    REQUIRE(cudaMalloc(&y, n * sizeof(float)) == cudaSuccess);
    Params p{1.25f, n};
    keywords_1<<<(n + 127) / 128, 128>>>(x, y, p);
    auto r = to_host(y, n);
    const float w[4] = {0.5f, -1.0f, 2.0f, 0.25f};
    for (int i = 0; i < n; ++i) REQUIRE(r[i] == (hx[i] * w[i % 4] + 1.0f) * 1.25f);

    managed_counter = 0;
    count_blocks<<<5, 64>>>();
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    REQUIRE(managed_counter == 5);

    reverse_in_shared<32><<<1, 32>>>(x, y);
    auto r32 = to_host(y, 32);
    reverse_in_shared<64><<<1, 64>>>(x, y);
    auto r64 = to_host(y, 64);
    for (int t = 0; t < 32; ++t) REQUIRE(r32[t] == hx[31 - t] + 32.0f);
    for (int t = 0; t < 64; ++t) REQUIRE(r64[t] == hx[63 - t] + 64.0f);

    float offset = 0.125f;
    apply<<<(n + 63) / 64, 64>>>(x, y, n, [=] __device__(float v) { return v * v + offset; });
    r = to_host(y, n);
    for (int i = 0; i < n; ++i) REQUIRE(r[i] == hx[i] * hx[i] + offset);
    cudaFree(x), cudaFree(y);
}

TEST_CASE("headers reached by relative paths are rewritten, and keep their file names", "[emulator][launch]") {
    const int blocks = 5;
    auto h = random_floats(64 * blocks, 11);
    float* in = to_device(h);
    float* out = nullptr;
    REQUIRE(cudaMalloc(&out, blocks * sizeof(float)) == cudaSuccess);
    launch_header_block_sum(in, out, 0.5f, blocks);
    auto r = to_host(out, blocks);
    for (int b = 0; b < blocks; ++b) {
        float s = 0.0f;
        for (int i = 0; i < 64; ++i) s += h[b * 64 + i] * 0.5f;
        REQUIRE(r[b] == Approx(s).margin(1e-5));
    }
    std::string file = block_sum_file(), tail = "test/emulator/headers/block_sum.cuh";
    REQUIRE(file.size() >= tail.size());
    REQUIRE(file.substr(file.size() - tail.size()) == tail);
    cudaFree(in), cudaFree(out);
}
