// The classifier and cross-entropy, fused and chunked: for each chunk of rows of
// the final hidden states h [N, C], the logits [rows, V] = h W^T are made in
// fp32 (cuBLASLt), one kernel turns them into the loss of each row and the
// gradient of the logits (bf16), and two more products give dh and add to dW.
// Only one chunk of logits exists at a time, so memory does not grow with N:
// at 16 x 4096 tokens and a 128256 vocabulary the fp32 logits of the batch would
// be 34 GB; the plan below keeps the working memory under a budget (default 768 MiB).
//
//   loss[n] = logsumexp(z_n) - z_n[target_n]           (0 where target_n == ignore_index)
//   dz_n    = (softmax(z_n) - onehot(target_n)) * dloss  (dloss = 1 / counted targets, for the mean)
#ifndef KERNELS_CROSS_ENTROPY_CUH
#define KERNELS_CROSS_ENTROPY_CUH

#include "kernels/common.cuh"
#include "kernels/matmul.cuh"

constexpr int kCrossEntropyThreads = 1024;

// One block per row. Pass 1: an online max and sum of exponentials per thread,
// combined across the block; pass 2: the gradient, written as bf16.
template <int VEC>
__global__ void cross_entropy_kernel(bf16* __restrict__ dlogits, float* __restrict__ loss,
                                     const float* __restrict__ logits, const int* __restrict__ targets, int V,
                                     int ignore_index, float dloss) {
    __shared__ float shared_max[kCrossEntropyThreads / 32];
    __shared__ float shared_sum[kCrossEntropyThreads / 32];
    const int row = blockIdx.x;
    const float* z = logits + size_t(row) * V;
    bf16* dz = dlogits + size_t(row) * V;
    const int target = targets[row];
    float m = -INFINITY, s = 0.0f;
    for (int v = threadIdx.x * VEC; v < V; v += blockDim.x * VEC) {
        float x[VEC];
        if constexpr (VEC == 4) {
            float4 f = *reinterpret_cast<const float4*>(z + v);
            x[0] = f.x, x[1] = f.y, x[2] = f.z, x[3] = f.w;
        } else {
            x[0] = z[v];
        }
        for (int i = 0; i < VEC; ++i) {
            if (x[i] > m) {
                s *= __expf(m - x[i]);
                m = x[i];
            }
            s += __expf(x[i] - m);
        }
    }
    // Combine (max, sum) pairs: first within each warp, then across warps.
    for (int offset = 16; offset > 0; offset >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, offset), s2 = __shfl_xor_sync(0xffffffffu, s, offset);
        float mm = fmaxf(m, m2);
        s = (m == -INFINITY ? 0.0f : s * __expf(m - mm)) + (m2 == -INFINITY ? 0.0f : s2 * __expf(m2 - mm));
        m = mm;
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    if (lane == 0) shared_max[warp] = m, shared_sum[warp] = s;
    __syncthreads();
    float block_max = -INFINITY;
    for (int w = 0; w < warps; ++w) block_max = fmaxf(block_max, shared_max[w]);
    float block_sum = 0.0f;
    for (int w = 0; w < warps; ++w)
        if (shared_max[w] != -INFINITY) block_sum += shared_sum[w] * __expf(shared_max[w] - block_max);
    const float lse = block_max + __logf(block_sum);
    const bool counted = target != ignore_index;
    if (threadIdx.x == 0) loss[row] = counted ? lse - z[target] : 0.0f;
    const float scale = counted ? dloss : 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float p = __expf(z[v] - lse);
        dz[v] = __float2bfloat16((p - (v == target ? 1.0f : 0.0f)) * scale);
    }
}

// How the work is chunked and what memory it needs beyond inputs and outputs.
struct CrossEntropyPlan {
    int chunk_rows = 0;
    size_t logits_bytes = 0, dlogits_bytes = 0;
    size_t working_bytes() const { return logits_bytes + dlogits_bytes; }
};

inline CrossEntropyPlan cross_entropy_plan(int N, int V, size_t budget_bytes) {
    CrossEntropyPlan p;
    const size_t per_row = size_t(V) * (sizeof(float) + sizeof(bf16));
    p.chunk_rows = int(std::max<size_t>(1, std::min<size_t>(size_t(N), budget_bytes / per_row)));
    p.logits_bytes = size_t(p.chunk_rows) * V * sizeof(float);
    p.dlogits_bytes = size_t(p.chunk_rows) * V * sizeof(bf16);
    return p;
}

// Forward and backward of the classifier + cross-entropy over N rows.
//   h [N, C] bf16, W [V, C] bf16 (the tied embedding or the LM head), targets [N] (device)
//   loss [N] fp32 per row (0 for ignored), dh [N, C] bf16 (overwritten), dW [V, C] fp32 (added to);
//   dh and dW nullptr: the loss only (evaluation)
//   logits / dlogits: working buffers of plan.logits_bytes / plan.dlogits_bytes
inline void classifier_cross_entropy(MatmulContext& ctx, float* loss, bf16* dh, float* dW, const bf16* h, const bf16* W,
                                     const int* targets, int N, int C, int V, int ignore_index, float dloss,
                                     const CrossEntropyPlan& plan, float* logits, bf16* dlogits,
                                     cudaStream_t stream = 0) {
    for (int start = 0; start < N; start += plan.chunk_rows) {
        const int rows = std::min(plan.chunk_rows, N - start);
        const bf16* h_chunk = h + size_t(start) * C;
        linear_forward(ctx, logits, true, h_chunk, W, nullptr, rows, C, V, stream);
        if (V % 4 == 0)
            cross_entropy_kernel<4><<<rows, kCrossEntropyThreads, 0, stream>>>(dlogits, loss + start, logits,
                                                                               targets + start, V, ignore_index, dloss);
        else
            cross_entropy_kernel<1><<<rows, kCrossEntropyThreads, 0, stream>>>(dlogits, loss + start, logits,
                                                                               targets + start, V, ignore_index, dloss);
        CUDA_CHECK_LAUNCH("cross_entropy_kernel");
        if (dh == nullptr) continue;  // evaluation: the loss only
        linear_backward_input(ctx, dh + size_t(start) * C, dlogits, W, rows, C, V, false, stream);
        linear_backward_weight(ctx, dW, dlogits, h_chunk, rows, C, V, stream);
    }
}

#endif  // KERNELS_CROSS_ENTROPY_CUH
