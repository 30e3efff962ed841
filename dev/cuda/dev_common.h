// Shared host code of the dev/cuda programs: random bf16 inputs, device
// buffers that convert from and to float, poisoning, comparison with a CPU
// reference (max absolute and relative error, PASS/FAIL), timing, arguments.
#ifndef DEV_CUDA_DEV_COMMON_H
#define DEV_CUDA_DEV_COMMON_H

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/common.cuh"
#include "model/rng.h"

// Round a float to the nearest bf16 (ties to even), as __float2bfloat16 does.
inline float round_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    std::memcpy(&f, &u, 4);
    return f;
}

inline bf16 to_bf16(float f) {
    float r = round_bf16(f);
    uint32_t u;
    std::memcpy(&u, &r, 4);
    uint16_t h = uint16_t(u >> 16);
    bf16 b;
    std::memcpy(static_cast<void*>(&b), &h, 2);
    return b;
}

inline float from_bf16(bf16 b) {
    uint16_t h;
    std::memcpy(&h, &b, 2);
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

struct DevRng {
    llama::Rng rng;
    explicit DevRng(uint64_t seed) : rng(seed) {}
    // Normal(mean, std) values, rounded to bf16 so that the kernel and the CPU
    // reference see exactly the same inputs.
    std::vector<float> bf16_vector(size_t n, float mean = 0.0f, float std = 1.0f) {
        std::vector<float> v(n);
        for (float& x : v) x = round_bf16(mean + std * float(rng.normal()));
        return v;
    }
};

template <typename T>
struct DeviceBuffer {
    T* ptr = nullptr;
    size_t n = 0;
    explicit DeviceBuffer(size_t count) : n(count) { CUDA_CHECK(cudaMalloc(&ptr, n * sizeof(T) + 16)); }
    explicit DeviceBuffer(const std::vector<float>& host) : DeviceBuffer(host.size()) {
        std::vector<T> tmp(n);
        for (size_t i = 0; i < n; ++i) tmp[i] = convert(host[i]);
        CUDA_CHECK(cudaMemcpy(ptr, tmp.data(), n * sizeof(T), cudaMemcpyHostToDevice));
    }
    ~DeviceBuffer() { cudaFree(ptr); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    // Fill with 0xFF bytes (NaN for float and bf16): an output the kernel does
    // not write shows up in the comparison.
    void poison() { CUDA_CHECK(cudaMemset(ptr, 0xFF, n * sizeof(T))); }
    std::vector<float> to_host() const {
        std::vector<T> tmp(n);
        CUDA_CHECK(cudaMemcpy(tmp.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
        std::vector<float> out(n);
        for (size_t i = 0; i < n; ++i) out[i] = back(tmp[i]);
        return out;
    }
    static T convert(float f) {
        if constexpr (std::is_same<T, bf16>::value) return to_bf16(f);
        else return T(f);
    }
    static float back(T v) {
        if constexpr (std::is_same<T, bf16>::value) return from_bf16(v);
        else return float(v);
    }
};

// Every element within atol + rtol * |expected|; prints the worst errors.
inline bool compare(const std::string& what, const std::vector<float>& got, const std::vector<float>& expect,
                    double atol, double rtol) {
    double max_abs = 0, max_rel = 0;
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < expect.size(); ++i) {
        double e = expect[i], g = got[i], d = std::fabs(g - e);
        if (!(d <= atol + rtol * std::fabs(e))) {
            if (bad++ == 0) first_bad = i;
        }
        if (std::isfinite(d)) {
            max_abs = std::max(max_abs, d);
            if (std::fabs(e) > 1e-3) max_rel = std::max(max_rel, d / std::fabs(e));
        }
    }
    std::printf("  %-40s max abs err %.3e, max rel err %.3e: %s", what.c_str(), max_abs, max_rel, bad ? "FAIL" : "ok");
    if (bad)
        std::printf(" (%zu of %zu off; first at %zu: got %g, expected %g)", bad, expect.size(), first_bad,
                    double(got[first_bad]), double(expect[first_bad]));
    std::printf("\n");
    return bad == 0;
}

// Milliseconds per call of `fn`, averaged over repeats after a warm-up.
template <typename F>
float time_ms(F fn, int repeats = 20) {
    fn();
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    CUDA_CHECK(cudaEventRecord(start));
    for (int i = 0; i < repeats; ++i) fn();
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    return ms / repeats;
}

// The device-to-device copy bandwidth (GB/s, counting bytes read and written),
// measured once: memory-bound kernels are judged against it.
inline double copy_bandwidth_gbs() {
    static double gbs = 0;
    if (gbs == 0) {
        const size_t bytes = size_t(256) << 20;
        void *a = nullptr, *b = nullptr;
        CUDA_CHECK(cudaMalloc(&a, bytes));
        CUDA_CHECK(cudaMalloc(&b, bytes));
        float ms = time_ms([&] { CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice)); }, 10);
        gbs = 2.0 * bytes / ms / 1e6;
        CUDA_CHECK(cudaFree(a));
        CUDA_CHECK(cudaFree(b));
    }
    return gbs;
}

// Prints the time of a memory-bound kernel, its bandwidth and the fraction of the copy bandwidth.
inline void report_bandwidth(const char* what, float ms, double bytes) {
    const double gbs = bytes / ms / 1e6;
    std::printf("  %s: %.3f ms, %.1f GB/s, %.0f%% of the device-to-device copy bandwidth (%.0f GB/s)\n", what, ms, gbs,
                100.0 * gbs / copy_bandwidth_gbs(), copy_bandwidth_gbs());
}

// --version N, --bench, then the shape as integers.
struct DevArgs {
    int version = 1;
    bool bench = false;
    std::vector<int> shape;
    DevArgs(int argc, char** argv, int max_version) {
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            if (a == "--version" && i + 1 < argc) version = std::atoi(argv[++i]);
            else if (a == "--bench") bench = true;
            else if (!a.empty() && a.find_first_not_of("0123456789") == std::string::npos)
                shape.push_back(std::atoi(a.c_str()));
            else {
                std::fprintf(stderr, "%s: unknown argument '%s' (use --version N, --bench, and the shape)\n", argv[0],
                             a.c_str());
                std::exit(2);
            }
        }
        if (version < 1 || version > max_version) {
            std::fprintf(stderr, "%s: --version %d: versions are 1..%d\n", argv[0], version, max_version);
            std::exit(2);
        }
    }
};

#endif  // DEV_CUDA_DEV_COMMON_H
