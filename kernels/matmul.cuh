// Matrix products through cuBLASLt: bf16 inputs, fp32 accumulation, bf16 or
// fp32 outputs, the bias added by cuBLASLt's epilogue. Written in the row-major
// terms of the model (a linear layer's weight is [out, in], as in PyTorch):
//
//   linear_forward:         out[N, OC]  = inp[N, IC] @ W[OC, IC]^T (+ bias[OC])
//   linear_backward_input:  dinp[N, IC] = dout[N, OC] @ W[OC, IC]      (beta 0: overwrite, 1: add)
//   linear_backward_weight: dW[OC, IC] += dout[N, OC]^T @ inp[N, IC]   (fp32 gradient)
//
// cuBLASLt is column-major: a row-major [R, C] matrix is a column-major [C, R]
// one, so out^T = W @ inp^T is computed as D[OC, N] = op(W)[OC, IC] @ inp^T[IC, N].
#ifndef KERNELS_MATMUL_CUH
#define KERNELS_MATMUL_CUH

#include <cstdio>
#include <cstdlib>
#include <cublasLt.h>

#include "kernels/common.cuh"

inline void cublas_check_impl(cublasStatus_t status, const char* what, const char* file, int line) {
    if (status != CUBLAS_STATUS_SUCCESS) {
        std::fflush(stdout);
        std::fprintf(stderr, "cuBLASLt error at %s:%d: %s failed with status %d\n", file, line, what, int(status));
        std::exit(EXIT_FAILURE);
    }
}
#define CUBLAS_CHECK(call) cublas_check_impl((call), #call, __FILE__, __LINE__)

struct MatmulContext {
    cublasLtHandle_t handle = nullptr;
    void* workspace = nullptr;
    size_t workspace_bytes = 32u << 20;  // 32 MiB, as cuBLASLt recommends for Hopper
    MatmulContext() {
        CUBLAS_CHECK(cublasLtCreate(&handle));
        CUDA_CHECK(cudaMalloc(&workspace, workspace_bytes));
    }
    ~MatmulContext() {
        cudaFree(workspace);
        cublasLtDestroy(handle);
    }
    MatmulContext(const MatmulContext&) = delete;
    MatmulContext& operator=(const MatmulContext&) = delete;
};

// Column-major D[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta D (+ bias[m] to every column).
// A and B are bf16; D is bf16 or fp32 (d_type).
inline void matmul_colmajor(MatmulContext& ctx, void* D, cudaDataType_t d_type, const bf16* A, bool trans_a,
                            const bf16* B, bool trans_b, int m, int n, int k, float alpha, float beta, const bf16* bias,
                            cudaStream_t stream) {
    cublasLtMatmulDesc_t desc;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
    if (bias) {
        cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bias_type = CUDA_R_16BF;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
        CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
    }
    cublasLtMatrixLayout_t la, lb, ld;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, trans_a ? k : m, trans_a ? m : k, trans_a ? k : m));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, trans_b ? n : k, trans_b ? k : n, trans_b ? n : k));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, d_type, m, n, m));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &ctx.workspace_bytes, sizeof(ctx.workspace_bytes)));
    cublasLtMatmulHeuristicResult_t heuristic;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(ctx.handle, desc, la, lb, ld, ld, pref, 1, &heuristic, &found));
    if (found == 0) {
        std::fflush(stdout);
        std::fprintf(stderr, "cuBLASLt: no algorithm for m=%d n=%d k=%d transA=%d transB=%d bias=%d\n", m, n, k,
                     int(trans_a), int(trans_b), bias != nullptr);
        std::exit(EXIT_FAILURE);
    }
    CUBLAS_CHECK(cublasLtMatmul(ctx.handle, desc, &alpha, A, la, B, lb, &beta, D, ld, D, ld, &heuristic.algo,
                                ctx.workspace, ctx.workspace_bytes, stream));
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
}

// out[N, OC] (bf16, or fp32 when out_fp32) = inp[N, IC] @ W[OC, IC]^T + bias.
inline void linear_forward(MatmulContext& ctx, void* out, bool out_fp32, const bf16* inp, const bf16* W,
                           const bf16* bias, int N, int IC, int OC, cudaStream_t stream = 0) {
    matmul_colmajor(ctx, out, out_fp32 ? CUDA_R_32F : CUDA_R_16BF, W, true, inp, false, OC, N, IC, 1.0f, 0.0f, bias,
                    stream);
}

// dinp[N, IC] = dout[N, OC] @ W[OC, IC] (+ dinp when accumulate).
inline void linear_backward_input(MatmulContext& ctx, bf16* dinp, const bf16* dout, const bf16* W, int N, int IC,
                                  int OC, bool accumulate, cudaStream_t stream = 0) {
    matmul_colmajor(ctx, dinp, CUDA_R_16BF, W, false, dout, false, IC, N, OC, 1.0f, accumulate ? 1.0f : 0.0f, nullptr,
                    stream);
}

// dW[OC, IC] (fp32) += dout[N, OC]^T @ inp[N, IC].
inline void linear_backward_weight(MatmulContext& ctx, float* dW, const bf16* dout, const bf16* inp, int N, int IC,
                                   int OC, cudaStream_t stream = 0) {
    matmul_colmajor(ctx, dW, CUDA_R_32F, inp, false, dout, true, IC, OC, N, 1.0f, 1.0f, nullptr, stream);
}

// dbias[c] (fp32) += sum over rows of dout[n, c]; deterministic: each block sums
// 256 columns over a slice of the rows in order, then the slices are added in order.
__global__ void bias_grad_partial_kernel(float* __restrict__ partial, const bf16* __restrict__ dout, int N, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int n = blockIdx.y; n < N; n += gridDim.y) s += __bfloat162float(dout[size_t(n) * C + c]);
    partial[size_t(blockIdx.y) * C + c] = s;
}

__global__ void bias_grad_final_kernel(float* __restrict__ dbias, const float* __restrict__ partial, int slices,
                                       int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int y = 0; y < slices; ++y) s += partial[size_t(y) * C + c];
    dbias[c] += s;
}

constexpr int kBiasGradSlices = 32;
inline size_t bias_grad_scratch(int C) { return size_t(kBiasGradSlices) * C; }

inline void bias_grad(float* dbias, float* scratch, const bf16* dout, int N, int C, cudaStream_t stream = 0) {
    const int slices = std::min(kBiasGradSlices, std::max(N, 1));
    bias_grad_partial_kernel<<<dim3(ceil_div(C, 256), slices), 256, 0, stream>>>(scratch, dout, N, C);
    CUDA_CHECK_LAUNCH("bias_grad_partial_kernel");
    bias_grad_final_kernel<<<ceil_div(C, 256), 256, 0, stream>>>(dbias, scratch, slices, C);
    CUDA_CHECK_LAUNCH("bias_grad_final_kernel");
}

#endif  // KERNELS_MATMUL_CUH
