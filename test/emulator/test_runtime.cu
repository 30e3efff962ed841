// The CUDA runtime stand-in: memory, launch checks, errors, events, streams and
// the seeded interleaving of stream work.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

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
