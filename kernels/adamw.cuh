// The optimizer step on the GPU: the global gradient norm (deterministic, two
// fixed-order passes), the clipping scale computed on the device (no host
// round trip), and a fused AdamW that reads the fp32 gradient, master weight
// and moments once and writes the master weight, the moments and the bf16
// working copy in the same pass.
//
//   g = grad * clip_scale;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   w = w (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps);  w_bf16 = bf16(w)
#ifndef KERNELS_ADAMW_CUH
#define KERNELS_ADAMW_CUH

#include <cstdint>

#include "kernels/common.cuh"

constexpr int kNormBlocks = 256;   // at most this many partial sums; the count depends only on n,
constexpr int kNormThreads = 512;  // so the order of the additions is fixed for a given size

// partial[blockIdx.x] = sum of squares of this block's grid-stride share.
__global__ void grad_norm_partial_kernel(float* __restrict__ partial, const float* __restrict__ grad, size_t n) {
    __shared__ float warp_sums[kNormThreads / 32];
    float s = 0.0f;
    const size_t n4 = n / 4;
    const float4* g4 = reinterpret_cast<const float4*>(grad);
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n4; i += size_t(gridDim.x) * blockDim.x) {
        float4 v = g4[i];
        s += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    for (size_t i = n4 * 4 + size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
        s += grad[i] * grad[i];
    s = warp_sum(s);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int w = 0; w < kNormThreads / 32; ++w) total += warp_sums[w];
        partial[blockIdx.x] = total;
    }
}

// out[0] = global norm, out[1] = clipping scale min(1, max_norm / (norm + 1e-6)) (1 when max_norm <= 0).
__global__ void grad_norm_final_kernel(float* __restrict__ out, const float* __restrict__ partial, int count,
                                       float max_norm) {
    __shared__ float warp_sums[kNormBlocks / 32];
    float s = int(threadIdx.x) < count ? partial[threadIdx.x] : 0.0f;
    s = warp_sum(s);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int w = 0; w < kNormBlocks / 32; ++w) total += warp_sums[w];
        const float norm = sqrtf(total);
        out[0] = norm;
        out[1] = (max_norm > 0.0f && norm > 0.0f) ? fminf(1.0f, max_norm / (norm + 1e-6f)) : 1.0f;
    }
}

// `scratch` holds kNormBlocks floats; `out` two floats (norm, clip scale), on the device.
inline void grad_norm(float* out, float* scratch, const float* grad, size_t n, float max_norm,
                      cudaStream_t stream = 0) {
    const int blocks = std::max(1, std::min(kNormBlocks, ceil_div((long long)n, kNormThreads * 8)));
    grad_norm_partial_kernel<<<blocks, kNormThreads, 0, stream>>>(scratch, grad, n);
    CUDA_CHECK_LAUNCH("grad_norm_partial_kernel");
    grad_norm_final_kernel<<<1, kNormBlocks, 0, stream>>>(out, scratch, blocks, max_norm);
    CUDA_CHECK_LAUNCH("grad_norm_final_kernel");
}

struct AdamWParams {
    float lr, beta1, beta2, eps, weight_decay;
    int step;  // from 1
};

// One element's AdamW step (the same arithmetic in both versions below).
__device__ inline void adamw_element(float& w, float& mi, float& vi, float& w16, float g, const AdamWParams& p,
                                     float bc1, float bc2) {
    mi = p.beta1 * mi + (1.0f - p.beta1) * g;
    vi = p.beta2 * vi + (1.0f - p.beta2) * g * g;
    w = w * (1.0f - p.lr * p.weight_decay);
    w -= p.lr * (mi / bc1) / (sqrtf(vi / bc2) + p.eps);
    w16 = w;
}

// Element k, read and written one value at a time.
__device__ inline void adamw_scalar(size_t k, float* master, bf16* weight, const float* grad, float* m, float* v,
                                    const AdamWParams& p, float scale, float bc1, float bc2) {
    float w = master[k], mi = m[k], vi = v[k], w16;
    adamw_element(w, mi, vi, w16, grad[k] * scale, p, bc1, bc2);
    m[k] = mi;
    v[k] = vi;
    master[k] = w;
    weight[k] = __float2bfloat16(w16);
}

// Version 1: one thread per element.
__global__ void adamw_kernel(float* __restrict__ master, bf16* __restrict__ weight, const float* __restrict__ grad,
                             float* __restrict__ m, float* __restrict__ v, size_t n, AdamWParams p,
                             const float* __restrict__ clip) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float scale = clip ? clip[1] : 1.0f;
    const float bc1 = 1.0f - powf(p.beta1, float(p.step)), bc2 = 1.0f - powf(p.beta2, float(p.step));
    adamw_scalar(i, master, weight, grad, m, v, p, scale, bc1, bc2);
}

// Version 2: four elements per thread, 128-bit loads and stores of the fp32
// arrays and one 64-bit store of the four bf16 (pointers 16-byte aligned); the
// last n % 4 elements one at a time.
__global__ void adamw_vec4_kernel(float* __restrict__ master, bf16* __restrict__ weight, const float* __restrict__ grad,
                                  float* __restrict__ m, float* __restrict__ v, size_t n, AdamWParams p,
                                  const float* __restrict__ clip) {
    const size_t i = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
    if (i >= n) return;
    const float scale = clip ? clip[1] : 1.0f;
    const float bc1 = 1.0f - powf(p.beta1, float(p.step)), bc2 = 1.0f - powf(p.beta2, float(p.step));
    if (i + 4 <= n) {
        float4 w = *reinterpret_cast<const float4*>(master + i), g = *reinterpret_cast<const float4*>(grad + i);
        float4 mi = *reinterpret_cast<const float4*>(m + i), vi = *reinterpret_cast<const float4*>(v + i);
        float w16[4];
        adamw_element(w.x, mi.x, vi.x, w16[0], g.x * scale, p, bc1, bc2);
        adamw_element(w.y, mi.y, vi.y, w16[1], g.y * scale, p, bc1, bc2);
        adamw_element(w.z, mi.z, vi.z, w16[2], g.z * scale, p, bc1, bc2);
        adamw_element(w.w, mi.w, vi.w, w16[3], g.w * scale, p, bc1, bc2);
        *reinterpret_cast<float4*>(m + i) = mi;
        *reinterpret_cast<float4*>(v + i) = vi;
        *reinterpret_cast<float4*>(master + i) = w;
        struct alignas(8) Bf16x4 {
            bf16 v[4];
        } packed;
        for (int k = 0; k < 4; ++k) packed.v[k] = __float2bfloat16(w16[k]);
        *reinterpret_cast<Bf16x4*>(weight + i) = packed;
        return;
    }
    for (size_t k = i; k < n; ++k) adamw_scalar(k, master, weight, grad, m, v, p, scale, bc1, bc2);
}

inline void adamw_update_v1(float* master, bf16* weight, const float* grad, float* m, float* v, size_t n,
                            const AdamWParams& p, const float* clip, cudaStream_t stream = 0) {
    adamw_kernel<<<ceil_div((long long)n, 256), 256, 0, stream>>>(master, weight, grad, m, v, n, p, clip);
    CUDA_CHECK_LAUNCH("adamw_kernel");
}

// One tensor: its own weight decay (0 for norms and biases). `clip` points to
// grad_norm's output (or nullptr for no clipping). Version 2 where the pointers
// allow it, else version 1.
inline void adamw_update(float* master, bf16* weight, const float* grad, float* m, float* v, size_t n,
                         const AdamWParams& p, const float* clip, cudaStream_t stream = 0) {
    auto aligned = [](const void* ptr, size_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; };
    if (!(aligned(master, 16) && aligned(grad, 16) && aligned(m, 16) && aligned(v, 16) && aligned(weight, 8)))
        return adamw_update_v1(master, weight, grad, m, v, n, p, clip, stream);
    adamw_vec4_kernel<<<ceil_div(ceil_div((long long)n, 4), 256), 256, 0, stream>>>(master, weight, grad, m, v, n, p,
                                                                                    clip);
    CUDA_CHECK_LAUNCH("adamw_vec4_kernel");
}

// The bf16 working copy of fp32 master weights (after loading a checkpoint or
// initial weights; the AdamW kernel keeps it current afterwards).
__global__ void float_to_bf16_kernel(bf16* __restrict__ out, const float* __restrict__ in, size_t n) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __float2bfloat16(in[i]);
}

inline void float_to_bf16(bf16* out, const float* in, size_t n, cudaStream_t stream = 0) {
    float_to_bf16_kernel<<<ceil_div((long long)n, 256), 256, 0, stream>>>(out, in, n);
    CUDA_CHECK_LAUNCH("float_to_bf16_kernel");
}

#endif  // KERNELS_ADAMW_CUH
