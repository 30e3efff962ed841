// A header outside the folders the build lists (kernels/, test/emulator/*.cuh),
// reached from test_launch.cu by a relative path: its __shared__ declarations and
// launches are rewritten because the rewrite follows #include "...". It includes
// another header by a path relative to itself.
#pragma once
#include "inner/scale.cuh"

// Sums each block's 64 values through shared memory, scaled by `factor`.
__global__ void header_block_sum(const float* in, float* out, float factor) {
    __shared__ float part[64];
    part[threadIdx.x] = scaled(in[blockIdx.x * 64 + threadIdx.x], factor);
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (int i = 0; i < 64; ++i) s += part[i];
        out[blockIdx.x] = s;
    }
}

inline void launch_header_block_sum(const float* in, float* out, float factor, int blocks) {
    header_block_sum<<<blocks, 64>>>(in, out, factor);
}

// The file this header's code is compiled from, as messages name it.
inline const char* block_sum_file() { return __FILE__; }
