// Moving test data between the host and device memory in the emulator's
// Catch2 suites: each call's result is checked, so a failed copy fails the test.
#ifndef TEST_EMULATOR_DEVICE_BUFFERS_H
#define TEST_EMULATOR_DEVICE_BUFFERS_H

#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

namespace emu_test {

// A device copy of `h` (cudaFree it).
template <class T>
T* to_device(const std::vector<T>& h) {
    T* d = nullptr;
    REQUIRE(cudaMalloc(&d, h.size() * sizeof(T)) == cudaSuccess);
    REQUIRE(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
    return d;
}

// n elements of device memory set to zero (cudaFree it).
template <class T>
T* device_zeros(std::size_t n) {
    T* d = nullptr;
    REQUIRE(cudaMalloc(&d, n * sizeof(T)) == cudaSuccess);
    REQUIRE(cudaMemset(d, 0, n * sizeof(T)) == cudaSuccess);
    return d;
}

// The first n elements at device pointer d.
template <class T>
std::vector<T> to_host(const T* d, std::size_t n) {
    std::vector<T> h(n);
    REQUIRE(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
}

}  // namespace emu_test

#endif  // TEST_EMULATOR_DEVICE_BUFFERS_H
