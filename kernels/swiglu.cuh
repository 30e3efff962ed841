// SwiGLU forward and backward on the fused gate/up projection: the matrix
// product of the MLP writes gate and up side by side, row n = [gate(F) | up(F)],
// so one matmul serves both and these kernels read each row once.
//
//   forward:  out = silu(gate) * up,                     silu(g) = g * sigmoid(g)
//   backward: dgate = dout * up * sig * (1 + g * (1 - sig)),  dup = dout * silu(g)
//
// Elementwise, 8 bf16 per thread with 128-bit loads when F is a multiple of 8.
#ifndef KERNELS_SWIGLU_CUH
#define KERNELS_SWIGLU_CUH

#include "kernels/common.cuh"

template <int VEC>
__global__ void swiglu_forward_kernel(bf16* __restrict__ out, const bf16* __restrict__ gate_up, int N, int F) {
    const size_t i = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * VEC;  // element of out
    if (i >= size_t(N) * F) return;
    const size_t row = i / F, col = i % F;
    const bf16* g = gate_up + row * 2 * F + col;
    const bf16* u = g + F;
    if constexpr (VEC == 8) {
        Packed128<bf16> gv = load128(g), uv = load128(u), o;
        for (int k = 0; k < VEC; ++k) {
            float x = __bfloat162float(gv[k]);
            o[k] = __float2bfloat16(x / (1.0f + __expf(-x)) * __bfloat162float(uv[k]));
        }
        store128(out + i, o);
    } else {
        float x = __bfloat162float(*g);
        out[i] = __float2bfloat16(x / (1.0f + __expf(-x)) * __bfloat162float(*u));
    }
}

template <int VEC>
__global__ void swiglu_backward_kernel(bf16* __restrict__ dgate_up, const bf16* __restrict__ dout,
                                       const bf16* __restrict__ gate_up, int N, int F) {
    const size_t i = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * VEC;
    if (i >= size_t(N) * F) return;
    const size_t row = i / F, col = i % F;
    const size_t gi = row * 2 * F + col;
    if constexpr (VEC == 8) {
        Packed128<bf16> gv = load128(gate_up + gi), uv = load128(gate_up + gi + F), dv = load128(dout + i), dg, du;
        for (int k = 0; k < VEC; ++k) {
            float x = __bfloat162float(gv[k]), up = __bfloat162float(uv[k]), d = __bfloat162float(dv[k]);
            float sig = 1.0f / (1.0f + __expf(-x));
            dg[k] = __float2bfloat16(d * up * sig * (1.0f + x * (1.0f - sig)));
            du[k] = __float2bfloat16(d * x * sig);
        }
        store128(dgate_up + gi, dg);
        store128(dgate_up + gi + F, du);
    } else {
        float x = __bfloat162float(gate_up[gi]), up = __bfloat162float(gate_up[gi + F]), d = __bfloat162float(dout[i]);
        float sig = 1.0f / (1.0f + __expf(-x));
        dgate_up[gi] = __float2bfloat16(d * up * sig * (1.0f + x * (1.0f - sig)));
        dgate_up[gi + F] = __float2bfloat16(d * x * sig);
    }
}

constexpr int kSwigluBlock = 256;

inline void swiglu_forward(bf16* out, const bf16* gate_up, int N, int F, cudaStream_t stream = 0) {
    const long long n = (long long)N * F;
    if (F % 8 == 0)
        swiglu_forward_kernel<8><<<ceil_div(n / 8, kSwigluBlock), kSwigluBlock, 0, stream>>>(out, gate_up, N, F);
    else swiglu_forward_kernel<1><<<ceil_div(n, kSwigluBlock), kSwigluBlock, 0, stream>>>(out, gate_up, N, F);
    CUDA_CHECK_LAUNCH("swiglu_forward_kernel");
}

inline void swiglu_backward(bf16* dgate_up, const bf16* dout, const bf16* gate_up, int N, int F,
                            cudaStream_t stream = 0) {
    const long long n = (long long)N * F;
    if (F % 8 == 0)
        swiglu_backward_kernel<8>
            <<<ceil_div(n / 8, kSwigluBlock), kSwigluBlock, 0, stream>>>(dgate_up, dout, gate_up, N, F);
    else
        swiglu_backward_kernel<1>
            <<<ceil_div(n, kSwigluBlock), kSwigluBlock, 0, stream>>>(dgate_up, dout, gate_up, N, F);
    CUDA_CHECK_LAUNCH("swiglu_backward_kernel");
}

#endif  // KERNELS_SWIGLU_CUH
