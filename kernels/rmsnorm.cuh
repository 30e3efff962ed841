// RMSNorm forward (optionally fused with the residual add before it) and
// backward, on bf16 activations with fp32 math.
//
//   forward:  h = inp (+ residual);  out = h * rstd * weight,  rstd = 1/sqrt(mean(h^2) + eps)
//   backward: dinp = dresidual + rstd * weight * dout - rstd^3 / C * h * sum(weight * dout * h)
//             dweight += sum over rows of dout * h * rstd          (deterministic)
//
// One warp per row for the row-wise parts: lanes stride over the row 8 bf16 at a
// time with 128-bit loads when C is a multiple of 8, one at a time otherwise, and
// reduce with warp shuffles. The weight gradient is a column reduction: each
// block sums a 256-column (or 32-column) strip over a slice of the rows in a
// fixed order, and a second pass adds the slices in a fixed order, so the
// result is bit-identical on every run.
//
// Rows need not be contiguous: row r starts at (r / group) * group_stride +
// (r % group) * C. Plain RMSNorm has group 1 (rows of C one after another);
// QK-norm (RMSNorm per head, one weight of head_dim shared by the heads) runs on
// the heads of q or k inside the fused QKV buffer: group = heads, C = head_dim,
// group_stride = the buffer's row width.
#ifndef KERNELS_RMSNORM_CUH
#define KERNELS_RMSNORM_CUH

#include "kernels/common.cuh"

__device__ inline size_t rmsnorm_row_start(int row, int C, int group, size_t group_stride) {
    return size_t(row / group) * group_stride + size_t(row % group) * C;
}

template <int VEC>
__global__ void rmsnorm_forward_kernel(bf16* __restrict__ out, float* __restrict__ rstd, bf16* residual_out,
                                       const bf16* inp, const bf16* residual, const bf16* __restrict__ weight, int N,
                                       int C, float eps, int group, size_t group_stride) {
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const size_t base = rmsnorm_row_start(row, C, group, group_stride);
    // Pass 1: the (fused) input, rounded to bf16 as it is stored, and its sum of squares.
    float sum_sq = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        if constexpr (VEC == 8) {
            Packed128<bf16> x = load128(inp + base + c);
            if (residual) {
                Packed128<bf16> r = load128(residual + base + c);
                for (int i = 0; i < VEC; ++i) x[i] = __float2bfloat16(__bfloat162float(x[i]) + __bfloat162float(r[i]));
                store128(residual_out + base + c, x);
            }
            for (int i = 0; i < VEC; ++i) {
                float v = __bfloat162float(x[i]);
                sum_sq += v * v;
            }
        } else {
            bf16 x = inp[base + c];
            if (residual) {
                x = __float2bfloat16(__bfloat162float(x) + __bfloat162float(residual[base + c]));
                residual_out[base + c] = x;
            }
            float v = __bfloat162float(x);
            sum_sq += v * v;
        }
    }
    sum_sq = warp_sum(sum_sq);
    const float r = rsqrtf(sum_sq / C + eps);
    if (lane == 0) rstd[row] = r;
    // Pass 2: normalise. The row is re-read from cache; each lane reads back only
    // the elements it wrote itself in pass 1.
    const bf16* h = residual ? residual_out : inp;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        if constexpr (VEC == 8) {
            Packed128<bf16> x = load128(h + base + c), w = load128(weight + c), y;
            for (int i = 0; i < VEC; ++i) y[i] = __float2bfloat16(__bfloat162float(x[i]) * r * __bfloat162float(w[i]));
            store128(out + base + c, y);
        } else {
            out[base + c] = __float2bfloat16(__bfloat162float(h[base + c]) * r * __bfloat162float(weight[c]));
        }
    }
}

// dinp = dresidual (may be nullptr, may alias dinp) + the norm's gradient.
template <int VEC>
__global__ void rmsnorm_backward_dinp_kernel(bf16* dinp, const bf16* dresidual, const bf16* __restrict__ dout,
                                             const bf16* __restrict__ inp, const bf16* __restrict__ weight,
                                             const float* __restrict__ rstd, int N, int C, int group,
                                             size_t group_stride) {
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const size_t base = rmsnorm_row_start(row, C, group, group_stride);
    float dot = 0.0f;  // sum over the row of weight * dout * h
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        if constexpr (VEC == 8) {
            Packed128<bf16> dy = load128(dout + base + c), x = load128(inp + base + c), w = load128(weight + c);
            for (int i = 0; i < VEC; ++i)
                dot += __bfloat162float(w[i]) * __bfloat162float(dy[i]) * __bfloat162float(x[i]);
        } else {
            dot += __bfloat162float(weight[c]) * __bfloat162float(dout[base + c]) * __bfloat162float(inp[base + c]);
        }
    }
    dot = warp_sum(dot);
    const float r = rstd[row];
    const float k = r * r * r / C * dot;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        if constexpr (VEC == 8) {
            Packed128<bf16> dy = load128(dout + base + c), x = load128(inp + base + c), w = load128(weight + c), d;
            Packed128<bf16> acc;
            if (dresidual) acc = load128(dresidual + base + c);
            for (int i = 0; i < VEC; ++i) {
                float g = r * __bfloat162float(w[i]) * __bfloat162float(dy[i]) - k * __bfloat162float(x[i]);
                if (dresidual) g += __bfloat162float(acc[i]);
                d[i] = __float2bfloat16(g);
            }
            store128(dinp + base + c, d);
        } else {
            float g = r * __bfloat162float(weight[c]) * __bfloat162float(dout[base + c]) -
                      k * __bfloat162float(inp[base + c]);
            if (dresidual) g += __bfloat162float(dresidual[base + c]);
            dinp[base + c] = __float2bfloat16(g);
        }
    }
}

// Partial weight gradients: block (x, y) sums columns [x * 32 * VEC, ...) over
// rows y * 8 + warp, stepping by gridDim.y * 8, into partial[y][column].
template <int VEC>
__global__ void rmsnorm_backward_dweight_partial_kernel(float* __restrict__ partial, const bf16* __restrict__ dout,
                                                        const bf16* __restrict__ inp, const float* __restrict__ rstd,
                                                        int N, int C, int group, size_t group_stride) {
    constexpr int kWarps = 8;
    __shared__ float sums[kWarps][32 * VEC];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int col = blockIdx.x * 32 * VEC + lane * VEC;
    float acc[VEC];
    for (int i = 0; i < VEC; ++i) acc[i] = 0.0f;
    if (col < C) {
        for (int row = blockIdx.y * kWarps + warp; row < N; row += gridDim.y * kWarps) {
            const size_t base = rmsnorm_row_start(row, C, group, group_stride) + col;
            const float r = rstd[row];
            if constexpr (VEC == 8) {
                Packed128<bf16> dy = load128(dout + base), x = load128(inp + base);
                for (int i = 0; i < VEC; ++i) acc[i] += __bfloat162float(dy[i]) * __bfloat162float(x[i]) * r;
            } else {
                acc[0] += __bfloat162float(dout[base]) * __bfloat162float(inp[base]) * r;
            }
        }
    }
    for (int i = 0; i < VEC; ++i) sums[warp][lane * VEC + i] = acc[i];
    __syncthreads();
    // The warps' sums added in a fixed order.
    for (int j = threadIdx.x; j < 32 * VEC; j += blockDim.x) {
        const int c = blockIdx.x * 32 * VEC + j;
        if (c >= C) continue;
        float s = 0.0f;
        for (int w = 0; w < kWarps; ++w) s += sums[w][j];
        partial[size_t(blockIdx.y) * C + c] = s;
    }
}

__global__ void rmsnorm_backward_dweight_final_kernel(float* __restrict__ dweight, const float* __restrict__ partial,
                                                      int slices, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int y = 0; y < slices; ++y) s += partial[size_t(y) * C + c];
    dweight[c] += s;
}

// ---------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------
constexpr int kRmsnormBlock = 256;         // 8 rows per block
constexpr int kRmsnormDweightSlices = 64;  // row slices of the weight gradient

// Rows of C starting every group_stride elements in groups of `group` (see the top).
inline void rmsnorm_forward_rows(bf16* out, float* rstd, bf16* residual_out, const bf16* inp, const bf16* residual,
                                 const bf16* weight, int N, int C, float eps, int group, size_t group_stride,
                                 cudaStream_t stream) {
    const int grid = ceil_div(N, kRmsnormBlock / 32);
    const bool vec = C % 8 == 0 && group_stride % 8 == 0;
    if (vec)
        rmsnorm_forward_kernel<8><<<grid, kRmsnormBlock, 0, stream>>>(out, rstd, residual_out, inp, residual, weight, N,
                                                                      C, eps, group, group_stride);
    else
        rmsnorm_forward_kernel<1><<<grid, kRmsnormBlock, 0, stream>>>(out, rstd, residual_out, inp, residual, weight, N,
                                                                      C, eps, group, group_stride);
    CUDA_CHECK_LAUNCH("rmsnorm_forward_kernel");
}

// Floats of scratch memory the backward needs for a width of C.
inline size_t rmsnorm_backward_scratch(int C) { return size_t(kRmsnormDweightSlices) * C; }

inline void rmsnorm_backward_rows(bf16* dinp, float* dweight, float* scratch, const bf16* dresidual, const bf16* dout,
                                  const bf16* inp, const bf16* weight, const float* rstd, int N, int C, int group,
                                  size_t group_stride, cudaStream_t stream) {
    const int grid = ceil_div(N, kRmsnormBlock / 32);
    const int slices = std::min(kRmsnormDweightSlices, ceil_div(N, 8));
    if (C % 8 == 0 && group_stride % 8 == 0) {
        rmsnorm_backward_dinp_kernel<8>
            <<<grid, kRmsnormBlock, 0, stream>>>(dinp, dresidual, dout, inp, weight, rstd, N, C, group, group_stride);
        CUDA_CHECK_LAUNCH("rmsnorm_backward_dinp_kernel");
        rmsnorm_backward_dweight_partial_kernel<8>
            <<<dim3(ceil_div(C, 256), slices), 256, 0, stream>>>(scratch, dout, inp, rstd, N, C, group, group_stride);
    } else {
        rmsnorm_backward_dinp_kernel<1>
            <<<grid, kRmsnormBlock, 0, stream>>>(dinp, dresidual, dout, inp, weight, rstd, N, C, group, group_stride);
        CUDA_CHECK_LAUNCH("rmsnorm_backward_dinp_kernel");
        rmsnorm_backward_dweight_partial_kernel<1>
            <<<dim3(ceil_div(C, 32), slices), 256, 0, stream>>>(scratch, dout, inp, rstd, N, C, group, group_stride);
    }
    CUDA_CHECK_LAUNCH("rmsnorm_backward_dweight_partial_kernel");
    rmsnorm_backward_dweight_final_kernel<<<ceil_div(C, 256), 256, 0, stream>>>(dweight, scratch, slices, C);
    CUDA_CHECK_LAUNCH("rmsnorm_backward_dweight_final_kernel");
}

// RMSNorm of N contiguous rows of C. residual and residual_out may both be
// nullptr (no fused add); otherwise residual_out = inp + residual is written and normalised.
inline void rmsnorm_forward(bf16* out, float* rstd, bf16* residual_out, const bf16* inp, const bf16* residual,
                            const bf16* weight, int N, int C, float eps, cudaStream_t stream = 0) {
    rmsnorm_forward_rows(out, rstd, residual_out, inp, residual, weight, N, C, eps, 1, size_t(C), stream);
}

// dinp = dresidual + d/dinp; dweight (fp32) += d/dweight. dresidual may be
// nullptr or alias dinp. `scratch` holds rmsnorm_backward_scratch(C) floats.
inline void rmsnorm_backward(bf16* dinp, float* dweight, float* scratch, const bf16* dresidual, const bf16* dout,
                             const bf16* inp, const bf16* weight, const float* rstd, int N, int C,
                             cudaStream_t stream = 0) {
    rmsnorm_backward_rows(dinp, dweight, scratch, dresidual, dout, inp, weight, rstd, N, C, 1, size_t(C), stream);
}

// QK-norm of the `heads` heads of head_dim at column col0 of a buffer of rows of
// `row_width` (the fused QKV layout), for N tokens: rstd holds N * heads values.
// out and inp have the same layout (out may be another fused buffer).
inline void qk_norm_forward(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int N, int heads, int head_dim,
                            int row_width, int col0, float eps, cudaStream_t stream = 0) {
    rmsnorm_forward_rows(out + col0, rstd, nullptr, inp + col0, nullptr, weight, N * heads, head_dim, eps, heads,
                         size_t(row_width), stream);
}

// dinp (same layout) is overwritten; dweight (fp32) += the weight's gradient.
inline void qk_norm_backward(bf16* dinp, float* dweight, float* scratch, const bf16* dout, const bf16* inp,
                             const bf16* weight, const float* rstd, int N, int heads, int head_dim, int row_width,
                             int col0, cudaStream_t stream = 0) {
    rmsnorm_backward_rows(dinp + col0, dweight, scratch, nullptr, dout + col0, inp + col0, weight, rstd, N * heads,
                          head_dim, heads, size_t(row_width), stream);
}

#endif  // KERNELS_RMSNORM_CUH
