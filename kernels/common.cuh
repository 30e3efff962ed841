// Shared pieces of the kernels: the bf16 type, 128-bit packed loads and
// stores, warp reductions, and launch arithmetic.
#ifndef KERNELS_COMMON_CUH
#define KERNELS_COMMON_CUH

#include <algorithm>
#include <cstddef>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda_check.h"

typedef __nv_bfloat16 bf16;

// 16 bytes of T, moved by one 128-bit load or store.
template <typename T>
struct alignas(16) Packed128 {
    static constexpr int size = 16 / sizeof(T);
    T v[size];
    __device__ T& operator[](int i) { return v[i]; }
    __device__ const T& operator[](int i) const { return v[i]; }
};

template <typename T>
__device__ inline Packed128<T> load128(const T* p) {
    return *reinterpret_cast<const Packed128<T>*>(p);
}
template <typename T>
__device__ inline void store128(T* p, const Packed128<T>& x) {
    *reinterpret_cast<Packed128<T>*>(p) = x;
}

__device__ inline float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

inline int ceil_div(long long a, long long b) { return int((a + b - 1) / b); }

#endif  // KERNELS_COMMON_CUH
