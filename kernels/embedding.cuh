// Token embedding forward and a deterministic backward.
//
//   forward:  out[n, :] = wte[tokens[n], :]                      (bf16, 128-bit copies)
//   backward: dwte[v, :] += sum over n with tokens[n] == v of dout[n, :]   (fp32)
//
// The backward owns each (token, column) with one thread that adds the rows of
// that token in position order, so the result is bit-identical whatever order
// the blocks run in, with no atomics. It needs the positions grouped by token:
// embedding_backward_plan builds that on the host from the batch's tokens (the
// host has them from the data loader) as a small CSR table to upload.
#ifndef KERNELS_EMBEDDING_CUH
#define KERNELS_EMBEDDING_CUH

#include <vector>

#include "kernels/common.cuh"

template <int VEC>
__global__ void embedding_forward_kernel(bf16* __restrict__ out, const int* __restrict__ tokens,
                                         const bf16* __restrict__ wte, int N, int C) {
    const size_t idx = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * VEC;
    if (idx >= size_t(N) * C) return;
    const size_t n = idx / C, c = idx % C;
    const bf16* src = wte + size_t(tokens[n]) * C + c;
    if constexpr (VEC == 8) store128(out + idx, load128(src));
    else out[idx] = *src;
}

// Block (u, y): unique token u, columns [y * blockDim.x * VEC, ...).
// rows[offsets[u] .. offsets[u+1]) are the positions of token ids[u], ascending.
template <int VEC>
__global__ void embedding_backward_kernel(float* __restrict__ dwte, const bf16* __restrict__ dout,
                                          const int* __restrict__ ids, const int* __restrict__ offsets,
                                          const int* __restrict__ rows, int C) {
    const int u = blockIdx.x;
    const int c = (blockIdx.y * blockDim.x + threadIdx.x) * VEC;
    if (c >= C) return;
    float acc[VEC];
    for (int i = 0; i < VEC; ++i) acc[i] = 0.0f;
    for (int k = offsets[u]; k < offsets[u + 1]; ++k) {
        const size_t base = size_t(rows[k]) * C + c;
        if constexpr (VEC == 8) {
            Packed128<bf16> d = load128(dout + base);
            for (int i = 0; i < VEC; ++i) acc[i] += __bfloat162float(d[i]);
        } else {
            acc[0] += __bfloat162float(dout[base]);
        }
    }
    float* dst = dwte + size_t(ids[u]) * C + c;
    for (int i = 0; i < VEC; ++i) dst[i] += acc[i];
}

inline void embedding_forward(bf16* out, const int* tokens, const bf16* wte, int N, int C, cudaStream_t stream = 0) {
    const long long n = (long long)N * C;
    if (C % 8 == 0) embedding_forward_kernel<8><<<ceil_div(n / 8, 256), 256, 0, stream>>>(out, tokens, wte, N, C);
    else embedding_forward_kernel<1><<<ceil_div(n, 256), 256, 0, stream>>>(out, tokens, wte, N, C);
    CUDA_CHECK_LAUNCH("embedding_forward_kernel");
}

// The positions of a batch grouped by token id: ids (unique, ascending),
// offsets (size ids + 1) and rows, laid out in one int array for one upload:
// [ids..., offsets..., rows...].
struct EmbeddingPlan {
    int unique = 0;
    std::vector<int> table;
    const int* ids(const int* base) const { return base; }
    const int* offsets(const int* base) const { return base + unique; }
    const int* rows(const int* base) const { return base + 2 * unique + 1; }
};

// Counting sort of the positions by token id (stable: positions stay ascending).
inline EmbeddingPlan embedding_backward_plan(const int* tokens, int N, int vocab) {
    std::vector<int> count(vocab + 1, 0);
    for (int n = 0; n < N; ++n) count[tokens[n] + 1]++;
    for (int v = 0; v < vocab; ++v) count[v + 1] += count[v];  // count[v] = first slot of token v
    EmbeddingPlan plan;
    std::vector<int> ids, offsets, rows(N);
    std::vector<int> next(count.begin(), count.end() - 1);
    for (int n = 0; n < N; ++n) rows[next[tokens[n]]++] = n;
    for (int v = 0; v < vocab; ++v)
        if (count[v + 1] > count[v]) {
            ids.push_back(v);
            offsets.push_back(count[v]);
        }
    offsets.push_back(N);
    plan.unique = int(ids.size());
    plan.table = ids;
    plan.table.insert(plan.table.end(), offsets.begin(), offsets.end());
    plan.table.insert(plan.table.end(), rows.begin(), rows.end());
    return plan;
}

// d_table: the plan's table on the device.
inline void embedding_backward(float* dwte, const bf16* dout, const EmbeddingPlan& plan, const int* d_table, int C,
                               cudaStream_t stream = 0) {
    if (plan.unique == 0) return;
    if (C % 8 == 0)
        embedding_backward_kernel<8><<<dim3(plan.unique, ceil_div(C, 128 * 8)), 128, 0, stream>>>(
            dwte, dout, plan.ids(d_table), plan.offsets(d_table), plan.rows(d_table), C);
    else
        embedding_backward_kernel<1><<<dim3(plan.unique, ceil_div(C, 128)), 128, 0, stream>>>(
            dwte, dout, plan.ids(d_table), plan.offsets(d_table), plan.rows(d_table), C);
    CUDA_CHECK_LAUNCH("embedding_backward_kernel");
}

#endif  // KERNELS_EMBEDDING_CUH
