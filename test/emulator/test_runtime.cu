// The CUDA runtime stand-in: memory, launch checks, errors, events, streams and
// the seeded interleaving of stream work.
#include <catch2/catch.hpp>
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "emu/control.h"

__global__ void fill_kernel(float* p, int n, float v) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = v;
}

__global__ void big_smem_kernel(float* out) {
    extern __shared__ float buf[];
    buf[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = buf[(threadIdx.x + 1) % blockDim.x];
}

template <class T, int K>
__global__ void scaled_copy_kernel(const T* in, T* out) {
    out[threadIdx.x] = in[threadIdx.x] * T(K);
}

TEST_CASE("cudaMalloc memory starts as NaN garbage and memcpy checks its pointers", "[emulator][runtime]") {
    float* d = nullptr;
    REQUIRE(cudaMalloc(&d, 64 * sizeof(float)) == cudaSuccess);
    std::vector<float> h(64, 0.0f);
    REQUIRE(cudaMemcpy(h.data(), d, 64 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (float v : h) REQUIRE(std::isnan(v));
    // Copying past the end of the allocation, or with the direction reversed, is an error.
    REQUIRE(cudaMemcpy(h.data(), d, 65 * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
    REQUIRE(cudaMemcpy(d, h.data(), 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    REQUIRE(cudaMemset(d, 0, 64 * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemcpy(h.data(), d, 64 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (float v : h) REQUIRE(v == 0.0f);
    REQUIRE(cudaFree(d) == cudaSuccess);
    REQUIRE(cudaFree(h.data()) == cudaErrorInvalidValue);
    REQUIRE(std::string(cudaGetErrorString(cudaGetLastError())) == "invalid argument");
}

TEST_CASE("launch configuration errors are reported as the runtime reports them", "[emulator][runtime]") {
    float* d = nullptr;
    REQUIRE(cudaMalloc(&d, 2048 * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemset(d, 0, 2048 * sizeof(float)) == cudaSuccess);
    std::vector<float> h(2048);

    fill_kernel<<<1, 1025>>>(d, 2048, 1.0f);
    cudaError_t e = cudaGetLastError();
    REQUIRE(e == cudaErrorInvalidConfiguration);
    REQUIRE(std::string(cudaGetErrorString(e)) == "invalid configuration argument");
    REQUIRE(std::string(cudaGetErrorName(e)) == "cudaErrorInvalidConfiguration");
    fill_kernel<<<0, 32>>>(d, 2048, 1.0f);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
    fill_kernel<<<dim3(1, 70000), 32>>>(d, 2048, 1.0f);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
    fill_kernel<<<1, dim3(1, 1, 65)>>>(d, 2048, 1.0f);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);

    // Dynamic shared memory above 48 KiB needs the attribute, and the attribute has a ceiling.
    big_smem_kernel<<<1, 32, 48 * 1024 + 4>>>(d);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
    big_smem_kernel<<<1, 32, 48 * 1024>>>(d);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    REQUIRE(cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 232448 + 1) ==
            cudaErrorInvalidValue);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
    REQUIRE(cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) ==
            cudaSuccess);
    big_smem_kernel<<<1, 32, 100 * 1024>>>(d);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    big_smem_kernel<<<1, 32, 100 * 1024 + 4>>>(d);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);

    // None of the refused launches ran: only the two accepted ones wrote.
    REQUIRE(cudaMemcpy(h.data(), d, h.size() * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int i = 0; i < 32; ++i) REQUIRE(h[i] == 1.0f);
    for (int i = 32; i < 2048; ++i) REQUIRE(h[i] == 0.0f);
    REQUIRE(cudaFree(d) == cudaSuccess);
}

TEST_CASE("device properties follow the chosen profile", "[emulator][runtime]") {
    cudaDeviceProp p;
    setenv("EMU_DEVICE", "a100", 1);
    REQUIRE(cudaGetDeviceProperties(&p, 0) == cudaSuccess);
    REQUIRE(p.major == 8);
    REQUIRE(p.multiProcessorCount == 108);
    REQUIRE(p.sharedMemPerBlockOptin == 163 * 1024);
    REQUIRE(std::string(p.name) == "NVIDIA A100-SXM4-80GB");
    setenv("EMU_DEVICE", "h100", 1);
    REQUIRE(cudaGetDeviceProperties(&p, 0) == cudaSuccess);
    REQUIRE(p.major == 9);
    REQUIRE(p.multiProcessorCount == 132);
    REQUIRE(p.sharedMemPerBlockOptin == 227 * 1024);
    REQUIRE(p.maxThreadsPerBlock == 1024);
    REQUIRE(p.warpSize == 32);
    int v = 0;
    REQUIRE(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, 0) == cudaSuccess);
    REQUIRE(v == 132);
    REQUIRE(cudaGetDeviceProperties(&p, 1) == cudaErrorInvalidDevice);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidDevice);
    unsetenv("EMU_DEVICE");
}

TEST_CASE("template kernels launch with explicit template arguments", "[emulator][runtime]") {
    float *in = nullptr, *out = nullptr;
    REQUIRE(cudaMalloc(&in, 32 * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMalloc(&out, 32 * sizeof(float)) == cudaSuccess);
    std::vector<float> h(32);
    for (int i = 0; i < 32; ++i) h[i] = float(i);
    REQUIRE(cudaMemcpy(in, h.data(), 128, cudaMemcpyHostToDevice) == cudaSuccess);
    scaled_copy_kernel<float, 3><<<1, 32>>>(in, out);
    REQUIRE(cudaMemcpy(h.data(), out, 128, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int i = 0; i < 32; ++i) REQUIRE(h[i] == 3.0f * i);
    cudaFree(in);
    cudaFree(out);
}

TEST_CASE("events time work and report their state", "[emulator][runtime]") {
    cudaEvent_t a, b, notiming;
    REQUIRE(cudaEventCreate(&a) == cudaSuccess);
    REQUIRE(cudaEventCreate(&b) == cudaSuccess);
    REQUIRE(cudaEventCreateWithFlags(&notiming, cudaEventDisableTiming) == cudaSuccess);
    float ms = -1;
    REQUIRE(cudaEventElapsedTime(&ms, a, b) == cudaErrorInvalidResourceHandle);  // never recorded
    float* d = nullptr;
    REQUIRE(cudaMalloc(&d, 1 << 20) == cudaSuccess);
    REQUIRE(cudaEventRecord(a) == cudaSuccess);
    fill_kernel<<<256, 256>>>(d, 1 << 18, 2.0f);
    REQUIRE(cudaEventRecord(b) == cudaSuccess);
    REQUIRE(cudaEventRecord(notiming) == cudaSuccess);
    // Nothing has run yet: work waits for a synchronisation.
    REQUIRE(cudaEventElapsedTime(&ms, a, b) == cudaErrorNotReady);
    REQUIRE(cudaEventSynchronize(b) == cudaSuccess);
    REQUIRE(cudaEventQuery(b) == cudaSuccess);
    REQUIRE(cudaEventElapsedTime(&ms, a, b) == cudaSuccess);
    REQUIRE(ms > 0.0f);
    REQUIRE(cudaEventElapsedTime(&ms, a, notiming) == cudaErrorInvalidResourceHandle);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    cudaGetLastError();
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    cudaEventDestroy(notiming);
    cudaFree(d);
}

// Stream A writes x; stream B reads x into y. With the event wait, every seed
// gives the right y; without it some seed runs B first and reads garbage.
__global__ void produce_kernel(float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = float(i);
}
__global__ void consume_kernel(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] + 1.0f;
}

static bool two_streams(uint64_t seed, bool wait) {
    emu::set_stream_seed(seed);
    const int n = 256;
    float *x, *y;
    cudaMalloc(&x, n * sizeof(float));
    cudaMalloc(&y, n * sizeof(float));
    cudaStream_t a, b;
    cudaEvent_t done;
    cudaStreamCreate(&a);
    cudaStreamCreate(&b);
    cudaEventCreateWithFlags(&done, cudaEventDisableTiming);
    produce_kernel<<<n / 64, 64, 0, a>>>(x, n);
    cudaEventRecord(done, a);
    if (wait) cudaStreamWaitEvent(b, done, 0);
    consume_kernel<<<n / 64, 64, 0, b>>>(x, y, n);
    std::vector<float> h(n);
    cudaStreamSynchronize(b);
    cudaMemcpy(h.data(), y, n * sizeof(float), cudaMemcpyDeviceToHost);
    cudaStreamDestroy(a);
    cudaStreamDestroy(b);
    cudaEventDestroy(done);
    cudaFree(x);
    cudaFree(y);
    for (int i = 0; i < n; ++i)
        if (h[i] != float(i) + 1.0f) return false;
    return true;
}

TEST_CASE("stream work interleaves by seed and respects cudaStreamWaitEvent", "[emulator][streams]") {
    int wrong_without_wait = 0;
    for (uint64_t seed = 0; seed < 8; ++seed) {
        INFO("seed " << seed);
        REQUIRE(two_streams(seed, true));
        wrong_without_wait += !two_streams(seed, false);
    }
    REQUIRE(wrong_without_wait > 0);
    REQUIRE(wrong_without_wait < 8);
}

TEST_CASE("the legacy default stream orders itself with blocking streams, not with non-blocking ones",
          "[emulator][streams]") {
    const int n = 64;
    for (uint64_t seed = 0; seed < 6; ++seed) {
        emu::set_stream_seed(seed);
        float *x, *y;
        cudaMalloc(&x, n * sizeof(float));
        cudaMalloc(&y, n * sizeof(float));
        cudaStream_t s;
        cudaStreamCreate(&s);
        produce_kernel<<<1, n, 0, s>>>(x, n);
        consume_kernel<<<1, n>>>(x, y, n);  // default stream: waits for s
        std::vector<float> h(n);
        cudaMemcpy(h.data(), y, n * sizeof(float), cudaMemcpyDeviceToHost);
        for (int i = 0; i < n; ++i) REQUIRE(h[i] == float(i) + 1.0f);
        cudaStreamDestroy(s);
        cudaFree(x);
        cudaFree(y);
    }
    int wrong = 0;
    for (uint64_t seed = 0; seed < 8; ++seed) {
        emu::set_stream_seed(seed);
        float *x, *y;
        cudaMalloc(&x, n * sizeof(float));
        cudaMalloc(&y, n * sizeof(float));
        cudaStream_t s;
        cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        produce_kernel<<<1, n, 0, s>>>(x, n);
        consume_kernel<<<1, n>>>(x, y, n);  // no ordering with a non-blocking stream
        std::vector<float> h(n);
        cudaDeviceSynchronize();
        cudaMemcpy(h.data(), y, n * sizeof(float), cudaMemcpyDeviceToHost);
        wrong += h[5] != 6.0f;
        cudaStreamDestroy(s);
        cudaFree(x);
        cudaFree(y);
    }
    REQUIRE(wrong > 0);
}

TEST_CASE("cudaMemcpyAsync stages pageable host memory when called", "[emulator][streams]") {
    float* d;
    cudaMalloc(&d, 4 * sizeof(float));
    cudaStream_t s;
    cudaStreamCreate(&s);
    std::vector<float> src = {1, 2, 3, 4}, back(4);
    REQUIRE(cudaMemcpyAsync(d, src.data(), 16, cudaMemcpyHostToDevice, s) == cudaSuccess);
    src.assign(4, 9.0f);  // allowed for pageable memory: the runtime took its copy
    REQUIRE(cudaMemcpyAsync(back.data(), d, 16, cudaMemcpyDeviceToHost, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    REQUIRE(back == std::vector<float>({1, 2, 3, 4}));
    cudaStreamDestroy(s);
    cudaFree(d);
}

static void add_one_on_host(void* p) {
    float* x = static_cast<float*>(p);
    for (int i = 0; i < 256; ++i) x[i] += 1.0f;
}

TEST_CASE("cudaLaunchHostFunc runs host work in stream order", "[emulator][streams]") {
    for (uint64_t seed = 0; seed < 4; ++seed) {
        INFO("seed " << seed);
        emu::set_stream_seed(seed);
        const int n = 256;
        float *x, *y;
        cudaMalloc(&x, n * sizeof(float));
        cudaMalloc(&y, n * sizeof(float));
        cudaStream_t s;
        cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        produce_kernel<<<n / 64, 64, 0, s>>>(x, n);
        REQUIRE(cudaLaunchHostFunc(s, add_one_on_host, x) == cudaSuccess);
        consume_kernel<<<n / 64, 64, 0, s>>>(x, y, n);  // y = i + 2 only if the host work ran between
        std::vector<float> h(n);
        REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
        cudaMemcpy(h.data(), y, n * sizeof(float), cudaMemcpyDeviceToHost);
        for (int i = 0; i < n; ++i) REQUIRE(h[i] == float(i) + 2.0f);
        REQUIRE(cudaLaunchHostFunc(s, nullptr, x) == cudaErrorInvalidValue);
        cudaGetLastError();
        cudaStreamDestroy(s);
        cudaFree(x);
        cudaFree(y);
    }
}

__global__ void raw_shared_kernel(unsigned* out) {
    extern __shared__ __align__(16) unsigned char raw[];
    unsigned* words = reinterpret_cast<unsigned*>(raw);
    words[threadIdx.x] = threadIdx.x * 3u;
    __syncthreads();
    out[threadIdx.x] = words[(threadIdx.x + 1) % blockDim.x];
}

TEST_CASE("the rewrite step keeps lines, strings and comments and reads every launch form", "[emulator][rewrite]") {
    // Text that looks like CUDA syntax inside strings and comments is left alone:
    // k<<<1, 2>>>(x); __shared__ float y[3]; extern __shared__ int z[];
    const char* s = "k<<<1, 2>>>(x); __shared__ float y[3];";
    REQUIRE(std::string(s) == std::string("k<<<") + "1, 2>>>(x); __shared__" + " float y[3];");
    unsigned* d = nullptr;
    REQUIRE(cudaMalloc(&d, 64 * sizeof(unsigned)) == cudaSuccess);
    // A launch over four lines, as written:
    // clang-format off
    int before = __LINE__;
    raw_shared_kernel<<<dim3(1, 1, 1),
                        dim3(64),
                        64 * sizeof(unsigned),
                        0>>>(d);
    int after = __LINE__;
    // clang-format on
    REQUIRE(after - before == 5);  // the launch still spans its four lines
    std::vector<unsigned> h(64);
    REQUIRE(cudaMemcpy(h.data(), d, h.size() * sizeof(unsigned), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (unsigned t = 0; t < 64; ++t) REQUIRE(h[t] == ((t + 1) % 64) * 3u);
    cudaFree(d);
}

// ---------------------------------------------------------------------------
// 2-D copies, pitched and stream-ordered memory, symbols, kernel launches by
// pointer, occupancy, kernel attributes, scoped atomics and device attributes.

TEST_CASE("cudaMemcpy2D and cudaMemcpy2DAsync copy rows between pitched buffers", "[emulator][runtime]") {
    const std::size_t rows = 7, cols = 13, hpitch = 16;  // floats
    std::vector<float> h(rows * hpitch);
    for (std::size_t i = 0; i < h.size(); ++i) h[i] = float(std::rand() % 1000) / 7.0f;
    float* d = nullptr;
    std::size_t dpitch = 0;
    REQUIRE(cudaMallocPitch(&d, &dpitch, cols * sizeof(float), rows) == cudaSuccess);
    REQUIRE(dpitch % 512 == 0);
    REQUIRE(dpitch >= cols * sizeof(float));
    REQUIRE(cudaMemcpy2D(d, dpitch, h.data(), hpitch * sizeof(float), cols * sizeof(float), rows,
                         cudaMemcpyHostToDevice) == cudaSuccess);
    // Device to device into a packed buffer on a stream, then back to the host.
    float* packed = nullptr;
    REQUIRE(cudaMalloc(&packed, rows * cols * sizeof(float)) == cudaSuccess);
    cudaStream_t s;
    REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
    REQUIRE(cudaMemcpy2DAsync(packed, cols * sizeof(float), d, dpitch, cols * sizeof(float), rows,
                              cudaMemcpyDeviceToDevice, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    std::vector<float> back(rows * cols, -1.0f);
    REQUIRE(cudaMemcpy(back.data(), packed, back.size() * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) REQUIRE(back[r * cols + c] == h[r * hpitch + c]);
    // A row wider than a pitch, or rows past the end of the allocation, are refused.
    REQUIRE(cudaMemcpy2D(packed, 8, d, dpitch, 12, 2, cudaMemcpyDeviceToDevice) == cudaErrorInvalidPitchValue);
    REQUIRE(std::string(cudaGetErrorString(cudaGetLastError())) == "invalid pitch argument");
    REQUIRE(cudaMemcpy2D(packed, cols * sizeof(float), d, dpitch, cols * sizeof(float), rows + 1,
                         cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
    REQUIRE(cudaStreamDestroy(s) == cudaSuccess);
    REQUIRE(cudaFree(d) == cudaSuccess);
    REQUIRE(cudaFree(packed) == cudaSuccess);
}

__constant__ float sym_coef[8];
__device__ int sym_total;

__global__ void symbol_kernel(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = sym_coef[i % 8] * x[i];
        atomicAdd(&sym_total, i);
    }
}

TEST_CASE("cudaMemcpyToSymbol, cudaMemcpyFromSymbol and cudaGetSymbolAddress reach __constant__ and __device__",
          "[emulator][runtime]") {
    const int n = 100;
    float coef[8];
    for (float& c : coef) c = float(std::rand() % 100) / 9.0f + 0.5f;
    std::vector<float> x(n);
    for (float& v : x) v = float(std::rand() % 1000) / 13.0f;
    REQUIRE(cudaMemcpyToSymbol(sym_coef, coef, sizeof(coef)) == cudaSuccess);
    // Offset copies write part of the symbol; past its end is refused.
    REQUIRE(cudaMemcpyToSymbol(sym_coef, &coef[5], sizeof(float), 5 * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemcpyToSymbol(sym_coef, coef, sizeof(float), 8 * sizeof(float)) == cudaErrorInvalidValue);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
    REQUIRE(cudaMemcpyToSymbol(sym_coef, coef, sizeof(coef), 0, cudaMemcpyDeviceToHost) ==
            cudaErrorInvalidMemcpyDirection);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidMemcpyDirection);
    int* total = nullptr;
    REQUIRE(cudaGetSymbolAddress(reinterpret_cast<void**>(&total), sym_total) == cudaSuccess);
    REQUIRE(cudaMemset(total, 0, sizeof(int)) == cudaSuccess);  // device memory to the runtime
    float *dx = nullptr, *dy = nullptr;
    REQUIRE(cudaMalloc(&dx, n * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMalloc(&dy, n * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    cudaStream_t s;
    REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
    REQUIRE(cudaMemcpyToSymbolAsync(sym_coef, coef, 4 * sizeof(float), 0, cudaMemcpyHostToDevice, s) == cudaSuccess);
    symbol_kernel<<<4, 32, 0, s>>>(dx, dy, n);
    int got_total = -1;
    REQUIRE(cudaMemcpyFromSymbolAsync(&got_total, sym_total, sizeof(int), 0, cudaMemcpyDeviceToHost, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    REQUIRE(got_total == n * (n - 1) / 2);
    std::vector<float> y(n);
    REQUIRE(cudaMemcpy(y.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int i = 0; i < n; ++i) REQUIRE(y[i] == coef[i % 8] * x[i]);
    float back[8];
    REQUIRE(cudaMemcpyFromSymbol(back, sym_coef, sizeof(back)) == cudaSuccess);
    for (int i = 0; i < 8; ++i) REQUIRE(back[i] == coef[i]);
    REQUIRE(cudaStreamDestroy(s) == cudaSuccess);
    REQUIRE(cudaFree(dx) == cudaSuccess);
    REQUIRE(cudaFree(dy) == cudaSuccess);
}

__global__ void axpy_kernel(float a, const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}

TEST_CASE("cudaMallocAsync and cudaFreeAsync order memory with the stream's work", "[emulator][runtime]") {
    const int n = 300;
    std::vector<float> x(n), y(n);
    for (int i = 0; i < n; ++i) {
        x[i] = float(std::rand() % 100) - 50.0f;
        y[i] = float(std::rand() % 100) / 3.0f;
    }
    cudaStream_t s;
    REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
    float *dx = nullptr, *dy = nullptr;
    REQUIRE(cudaMallocAsync(&dx, n * sizeof(float), s) == cudaSuccess);
    REQUIRE(cudaMallocAsync(&dy, n * sizeof(float), s) == cudaSuccess);
    REQUIRE(cudaMemcpyAsync(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice, s) == cudaSuccess);
    REQUIRE(cudaMemcpyAsync(dy, y.data(), n * sizeof(float), cudaMemcpyHostToDevice, s) == cudaSuccess);
    // cudaLaunchKernel: the kernel and pointers to its arguments.
    float a = 2.5f;
    int nn = n;
    void* args[] = {&a, &dx, &dy, &nn};
    REQUIRE(cudaLaunchKernel(axpy_kernel, dim3((n + 127) / 128), dim3(128), args, 0, s) == cudaSuccess);
    std::vector<float> out(n);
    REQUIRE(cudaMemcpyAsync(out.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost, s) == cudaSuccess);
    REQUIRE(cudaFreeAsync(dx, s) == cudaSuccess);
    REQUIRE(cudaFreeAsync(dy, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    for (int i = 0; i < n; ++i) REQUIRE(out[i] == 2.5f * x[i] + y[i]);
    // Freed when the stream reached the free: a second free is refused.
    REQUIRE(cudaFreeAsync(dx, s) == cudaErrorInvalidValue);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
    REQUIRE(cudaStreamDestroy(s) == cudaSuccess);
}

__global__ void untyped_kernel(int* p) { p[threadIdx.x] = int(threadIdx.x) * 3; }

TEST_CASE("occupancy, kernel attributes, device attributes and launches by pointer", "[emulator][runtime]") {
    int blocks = 0;
    REQUIRE(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, fill_kernel, 256, 0) == cudaSuccess);
    REQUIRE(blocks == 8);  // 2048 threads per SM
    REQUIRE(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, fill_kernel, 1024, 0) == cudaSuccess);
    REQUIRE(blocks == 2);
    REQUIRE(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, fill_kernel, 32, 0) == cudaSuccess);
    REQUIRE(blocks == 32);  // 32 blocks per SM at most
    REQUIRE(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, fill_kernel, 100, 40 * 1024) == cudaSuccess);
    REQUIRE(blocks == 233472 / (41 * 1024));  // shared memory bounds it
    int min_grid = 0, block = 0;
    REQUIRE(cudaOccupancyMaxPotentialBlockSize(&min_grid, &block, fill_kernel) == cudaSuccess);
    REQUIRE(block == 1024);
    REQUIRE(min_grid == 2 * 132);
    REQUIRE(cudaOccupancyMaxPotentialBlockSize(&min_grid, &block, fill_kernel, 0, 200) == cudaSuccess);
    REQUIRE(block == 128);  // 16 blocks of 128 fill the SM; 192 leaves 2048 - 10 * 192 threads idle
    REQUIRE(min_grid == 16 * 132);
    cudaFuncAttributes fa;
    REQUIRE(cudaFuncGetAttributes(&fa, fill_kernel) == cudaSuccess);
    REQUIRE(fa.maxThreadsPerBlock == 1024);
    REQUIRE(fa.maxDynamicSharedSizeBytes == 48 * 1024);
    REQUIRE(cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) ==
            cudaSuccess);
    REQUIRE(cudaFuncGetAttributes(&fa, big_smem_kernel) == cudaSuccess);
    REQUIRE(fa.maxDynamicSharedSizeBytes == 100 * 1024);

    int v = 0;
    struct {
        cudaDeviceAttr attr;
        int want;
    } attrs[] = {{cudaDevAttrCooperativeLaunch, 1},       {cudaDevAttrMaxThreadsPerMultiProcessor, 2048},
                 {cudaDevAttrL2CacheSize, 50 << 20},      {cudaDevAttrMaxBlocksPerMultiprocessor, 32},
                 {cudaDevAttrMaxBlockDimZ, 64},           {cudaDevAttrMaxGridDimY, 65535},
                 {cudaDevAttrClockRate, 1980000},         {cudaDevAttrGlobalMemoryBusWidth, 5120},
                 {cudaDevAttrMaxRegistersPerBlock, 65536}};
    for (const auto& a : attrs) {
        REQUIRE(cudaDeviceGetAttribute(&v, a.attr, 0) == cudaSuccess);
        REQUIRE(v == a.want);
    }
    cudaDeviceProp p;
    REQUIRE(cudaGetDeviceProperties(&p, 0) == cudaSuccess);
    REQUIRE(p.cooperativeLaunch == 1);
    int dev = -1, count = 0;
    REQUIRE(setenv("EMU_DEVICES", "1", 1) == 0);
    REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess);
    REQUIRE(count == 1);
    REQUIRE(cudaSetDevice(0) == cudaSuccess);
    REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
    REQUIRE(dev == 0);
    REQUIRE(cudaSetDevice(1) == cudaErrorInvalidDevice);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidDevice);
    // Under MPI a process sees as many devices as its node has ranks (here set by
    // EMU_DEVICES), so that rank r can take device r: each is the one emulated GPU.
    REQUIRE(setenv("EMU_DEVICES", "3", 1) == 0);
    REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess);
    REQUIRE(count == 3);
    REQUIRE(cudaSetDevice(2) == cudaSuccess);
    REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
    REQUIRE(dev == 2);
    REQUIRE(cudaGetDeviceProperties(&p, 2) == cudaSuccess);
    REQUIRE(cudaSetDevice(3) == cudaErrorInvalidDevice);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidDevice);
    REQUIRE(cudaSetDevice(0) == cudaSuccess);
    REQUIRE(unsetenv("EMU_DEVICES") == 0);

    // A kernel first seen as void* cannot have its arguments read: refused, with a message.
    int* d = nullptr;
    REQUIRE(cudaMalloc(&d, 32 * sizeof(int)) == cudaSuccess);
    void* args[] = {&d};
    REQUIRE(cudaLaunchKernel((const void*)untyped_kernel, dim3(1), dim3(32), args) == cudaErrorInvalidDeviceFunction);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidDeviceFunction);
    REQUIRE(cudaFuncGetAttributes(&fa, untyped_kernel) == cudaSuccess);  // now its type is known
    REQUIRE(cudaLaunchKernel((const void*)untyped_kernel, dim3(1), dim3(32), args) == cudaSuccess);
    std::vector<int> h(32);
    REQUIRE(cudaMemcpy(h.data(), d, 32 * sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int i = 0; i < 32; ++i) REQUIRE(h[i] == 3 * i);
    REQUIRE(cudaLaunchKernel(untyped_kernel, dim3(1), dim3(2000), args) == cudaErrorInvalidConfiguration);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
    REQUIRE(cudaFree(d) == cudaSuccess);
}

__global__ void scoped_atomics_kernel(const int* x, int* acc, unsigned* bits, float* fsum) {
    int v = x[blockIdx.x * blockDim.x + threadIdx.x];
    atomicAdd_block(&acc[0], v);
    atomicAdd_system(&acc[1], v);
    atomicMax_block(&acc[2], v);
    atomicMin_system(&acc[3], v);
    atomicSub_block(&acc[4], v);
    atomicXor_system(&bits[0], unsigned(v));
    atomicOr_block(&bits[1], 1u << (v % 32));
    atomicAnd_system(&bits[2], ~(1u << (v % 32)));
    atomicAdd_block(fsum, float(v) * 0.5f);
    atomicInc_system(&bits[3], 1000000u);
    int old = atomicCAS_block(&acc[5], -1, int(threadIdx.x));  // only the first thread of the grid swaps
    if (old == -1) atomicExch_system(&acc[6], v);
}

TEST_CASE("atomic _block and _system forms act as the plain atomics", "[emulator][runtime]") {
    const int n = 256;
    std::vector<int> x(n);
    for (int& v : x) v = std::rand() % 10000 + 1;
    int *dx = nullptr, *acc = nullptr;
    unsigned* bits = nullptr;
    float* fsum = nullptr;
    REQUIRE(cudaMalloc(&dx, n * sizeof(int)) == cudaSuccess);
    REQUIRE(cudaMalloc(&acc, 7 * sizeof(int)) == cudaSuccess);
    REQUIRE(cudaMalloc(&bits, 4 * sizeof(unsigned)) == cudaSuccess);
    REQUIRE(cudaMalloc(&fsum, sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemcpy(dx, x.data(), n * sizeof(int), cudaMemcpyHostToDevice) == cudaSuccess);
    int acc0[7] = {0, 0, 0, 1 << 30, 0, -1, 0};
    unsigned bits0[4] = {0, 0, 0xffffffffu, 0};
    float f0 = 0;
    REQUIRE(cudaMemcpy(acc, acc0, sizeof(acc0), cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(bits, bits0, sizeof(bits0), cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(fsum, &f0, sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    scoped_atomics_kernel<<<4, 64>>>(dx, acc, bits, fsum);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    int a[7];
    unsigned b[4];
    float f = 0;
    REQUIRE(cudaMemcpy(a, acc, sizeof(a), cudaMemcpyDeviceToHost) == cudaSuccess);
    REQUIRE(cudaMemcpy(b, bits, sizeof(b), cudaMemcpyDeviceToHost) == cudaSuccess);
    REQUIRE(cudaMemcpy(&f, fsum, sizeof(f), cudaMemcpyDeviceToHost) == cudaSuccess);
    long long sum = 0;
    int mx = 0, mn = 1 << 30;
    unsigned xr = 0, orr = 0, andd = 0xffffffffu;
    for (int v : x) {
        sum += v;
        mx = std::max(mx, v);
        mn = std::min(mn, v);
        xr ^= unsigned(v);
        orr |= 1u << (v % 32);
        andd &= ~(1u << (v % 32));
    }
    REQUIRE(a[0] == sum);
    REQUIRE(a[1] == sum);
    REQUIRE(a[2] == mx);
    REQUIRE(a[3] == mn);
    REQUIRE(a[4] == -sum);
    REQUIRE(b[0] == xr);
    REQUIRE(b[1] == orr);
    REQUIRE(b[2] == andd);
    REQUIRE(b[3] == unsigned(n));
    REQUIRE(f == Approx(0.5 * double(sum)));
    REQUIRE(a[5] >= 0);
    REQUIRE(a[5] < 64);
    bool found = false;
    for (int v : x) found = found || v == a[6];
    REQUIRE(found);
    REQUIRE(cudaProfilerStart() == cudaSuccess);
    REQUIRE(cudaProfilerStop() == cudaSuccess);
    REQUIRE(cudaFree(dx) == cudaSuccess);
    REQUIRE(cudaFree(acc) == cudaSuccess);
    REQUIRE(cudaFree(bits) == cudaSuccess);
    REQUIRE(cudaFree(fsum) == cudaSuccess);
}

__global__ void nvcc_habits_kernel(const int* a, const unsigned* b, const float* optional, long long* out, int n) {
    int i = threadIdx.x;
    if (i >= n) return;
    out[4 * i] = min(a[i], b[i]);  // compared as unsigned, as CUDA's overload does
    out[4 * i + 1] = max(a[i], b[i]);
    out[4 * i + 2] = optional == nullptr ? 1 : 0;
    out[4 * i + 3] = isfinite(1.0f / float(a[i])) ? 1 : 0;
}

TEST_CASE("NULL kernel arguments, mixed signed/unsigned min/max and isfinite, as nvcc takes them",
          "[emulator][runtime]") {
    const int n = 64;
    std::vector<int> a(n);
    std::vector<unsigned> b(n);
    for (int i = 0; i < n; ++i) {
        a[i] = std::rand() % 2001 - 1000;  // some negative, some zero
        b[i] = unsigned(std::rand() % 1000);
    }
    a[3] = 0;
    int* da = nullptr;
    unsigned* db = nullptr;
    long long* dout = nullptr;
    REQUIRE(cudaMalloc(&da, n * sizeof(int)) == cudaSuccess);
    REQUIRE(cudaMalloc(&db, n * sizeof(unsigned)) == cudaSuccess);
    REQUIRE(cudaMalloc(&dout, 4 * n * sizeof(long long)) == cudaSuccess);
    REQUIRE(cudaMemcpy(da, a.data(), n * sizeof(int), cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(db, b.data(), n * sizeof(unsigned), cudaMemcpyHostToDevice) == cudaSuccess);
    nvcc_habits_kernel<<<1, n>>>(da, db, NULL, dout, n);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    std::vector<long long> h(4 * n);
    REQUIRE(cudaMemcpy(h.data(), dout, h.size() * sizeof(long long), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int i = 0; i < n; ++i) {
        unsigned ua = unsigned(a[i]);
        REQUIRE(h[4 * i] == (long long)std::min(ua, b[i]));
        REQUIRE(h[4 * i + 1] == (long long)std::max(ua, b[i]));
        REQUIRE(h[4 * i + 2] == 1);
        REQUIRE(h[4 * i + 3] == (a[i] != 0 ? 1 : 0));
    }
    REQUIRE(cudaFree(da) == cudaSuccess);
    REQUIRE(cudaFree(db) == cudaSuccess);
    REQUIRE(cudaFree(dout) == cudaSuccess);
}
