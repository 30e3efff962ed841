// RoPE in the Hugging Face / Llama "rotate half" layout, in place, on the heads
// of a row-strided tensor: row n (token n, position t = n % T, or t minus its
// document's start when the sequences pack documents: doc_starts, [N], as in
// reference/ops.h) holds `heads` heads
// of head_dim values starting at column `col0`, so the same kernel rotates q
// and k inside the fused QKV buffer, with different head counts (GQA).
//
//   x[i]        <- x[i] cos - x[i + D/2] sin
//   x[i + D/2]  <- x[i + D/2] cos + x[i] sin          (angle = pos * inv_freq[i])
//
// The backward is the same rotation by the opposite angle (sign = -1).
// cos and sin come from fp32 tables [T, D/2] built once on the host with the
// Llama-3.1 frequency scaling (reference/ops.h: rope_tables).
#ifndef KERNELS_ROPE_CUH
#define KERNELS_ROPE_CUH

#include "kernels/common.cuh"

// One thread rotates VEC pairs of one head.
template <int VEC>
__global__ void rope_kernel(bf16* x, const float* __restrict__ cos_table, const float* __restrict__ sin_table, int N,
                            int T, int row_stride, int col0, int heads, int D, float sign, const int* doc_starts) {
    const int half = D / 2, per_head = half / VEC;
    const size_t idx = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= size_t(N) * heads * per_head) return;
    const int i0 = int(idx % per_head) * VEC;
    const int h = int(idx / per_head % heads);
    const size_t n = idx / per_head / heads;
    const int pos = int(n % T) - (doc_starts ? doc_starts[n] : 0);
    bf16* p1 = x + n * row_stride + col0 + size_t(h) * D + i0;
    bf16* p2 = p1 + half;
    const float* c = cos_table + size_t(pos) * half + i0;
    const float* s = sin_table + size_t(pos) * half + i0;
    if constexpr (VEC == 8) {
        Packed128<bf16> a = load128(p1), b = load128(p2), ra, rb;
        for (int k = 0; k < VEC; ++k) {
            float x1 = __bfloat162float(a[k]), x2 = __bfloat162float(b[k]), cs = c[k], sn = sign * s[k];
            ra[k] = __float2bfloat16(x1 * cs - x2 * sn);
            rb[k] = __float2bfloat16(x2 * cs + x1 * sn);
        }
        store128(p1, ra);
        store128(p2, rb);
    } else {
        float x1 = __bfloat162float(*p1), x2 = __bfloat162float(*p2), cs = *c, sn = sign * *s;
        *p1 = __float2bfloat16(x1 * cs - x2 * sn);
        *p2 = __float2bfloat16(x2 * cs + x1 * sn);
    }
}

inline void rope_rotate(bf16* x, const float* cos_table, const float* sin_table, int N, int T, int row_stride, int col0,
                        int heads, int D, float sign, cudaStream_t stream, const int* doc_starts) {
    const int half = D / 2;
    if (half % 8 == 0 && row_stride % 8 == 0 && col0 % 8 == 0) {
        const long long threads = (long long)N * heads * (half / 8);
        rope_kernel<8><<<ceil_div(threads, 256), 256, 0, stream>>>(x, cos_table, sin_table, N, T, row_stride, col0,
                                                                   heads, D, sign, doc_starts);
    } else {
        const long long threads = (long long)N * heads * half;
        rope_kernel<1><<<ceil_div(threads, 256), 256, 0, stream>>>(x, cos_table, sin_table, N, T, row_stride, col0,
                                                                   heads, D, sign, doc_starts);
    }
    CUDA_CHECK_LAUNCH("rope_kernel");
}

// In place: the heads at columns [col0, col0 + heads * D) of every row.
inline void rope_forward(bf16* x, const float* cos_table, const float* sin_table, int N, int T, int row_stride,
                         int col0, int heads, int D, cudaStream_t stream = 0, const int* doc_starts = nullptr) {
    rope_rotate(x, cos_table, sin_table, N, T, row_stride, col0, heads, D, 1.0f, stream, doc_starts);
}

inline void rope_backward(bf16* dx, const float* cos_table, const float* sin_table, int N, int T, int row_stride,
                          int col0, int heads, int D, cudaStream_t stream = 0, const int* doc_starts = nullptr) {
    rope_rotate(dx, cos_table, sin_table, N, T, row_stride, col0, heads, D, -1.0f, stream, doc_starts);
}

#endif  // KERNELS_ROPE_CUH
