// Attention version 1: CUDA cores, one warp per query row (forward, dq) or per
// key row (dk, dv), one lane per key (or query) of a 32-wide tile. The simplest
// version, and the one to read first.
#ifndef KERNELS_ATTENTION_V1_SIMPLE_CUH
#define KERNELS_ATTENTION_V1_SIMPLE_CUH

#include "kernels/attention/common.cuh"

// ===========================================================================
// Version 1: CUDA cores
// ===========================================================================
// A block has 4 warps and handles 16 query rows of one (batch, head): each warp
// owns 4 rows. Key/value tiles of 32 rows are loaded into shared memory by the
// whole block; then, for each of its rows, a warp computes 32 scores (lane j:
// key j of the tile), updates the online softmax with two warp reductions and
// adds p_j v_j to the output, each lane owning the dims lane, lane + 32, ...
constexpr int kAttnWarps = 4;
constexpr int kAttnRowsPerWarp = 4;
constexpr int kAttnRows = kAttnWarps * kAttnRowsPerWarp;  // 16 query rows per block
constexpr int kAttnKeys = 32;                             // keys per tile: one per lane

// The shared memory of each kernel is one struct (one __shared__ object per
// kernel). Key/value (or query) tiles that lanes read row by row, lane r
// reading row r, are padded by 2 bf16 so that the lanes hit different banks.
template <int D>
struct AttnForwardSimpleSmem {
    float q[kAttnRows][D];  // the block's queries, scaled
    bf16 k[kAttnKeys][D + 2];
    bf16 v[kAttnKeys][D + 2];
    float p[kAttnWarps][kAttnRowsPerWarp][kAttnKeys];  // probabilities of each warp's rows
};

template <int D>
struct AttnDqSimpleSmem {
    float q[kAttnRows][D];  // scaled
    float do_[kAttnRows][D];
    bf16 k[kAttnKeys][D + 2];
    bf16 v[kAttnKeys][D + 2];
    float ds[kAttnWarps][kAttnRowsPerWarp][kAttnKeys];
};

constexpr int kAttnDkvKeys = kAttnWarps * kAttnRowsPerWarp;  // 16 key rows per block of the dk/dv kernel
constexpr int kAttnDkvQueries = 32;                          // query rows per tile: one per lane

template <int D>
struct AttnDkvSimpleSmem {
    float k[kAttnDkvKeys][D];  // scaled
    float v[kAttnDkvKeys][D];
    bf16 q[kAttnDkvQueries][D + 2];
    bf16 do_[kAttnDkvQueries][D + 2];
    float lse[kAttnDkvQueries];
    float delta[kAttnDkvQueries];
    float p[kAttnWarps][kAttnRowsPerWarp][kAttnDkvQueries];
    float ds[kAttnWarps][kAttnRowsPerWarp][kAttnDkvQueries];
};

// Loads keys [k0, k0 + kAttnKeys) of KV head g (their K and V rows) into a
// shared tile, the whole block cooperating; rows past T are zero.
template <int D>
__device__ inline void attn_load_kv_tile(bf16 (&k)[kAttnKeys][D + 2], bf16 (&v)[kAttnKeys][D + 2], const bf16* qkv,
                                         int b, int k0, int T, int H, int KV, int g) {
    const int width = (H + 2 * KV) * D;
    const bf16 zero = __float2bfloat16(0.0f);
    for (int idx = threadIdx.x; idx < kAttnKeys * D; idx += blockDim.x) {
        const int r = idx / D, d = idx % D, t = k0 + r;
        k[r][d] = t < T ? qkv[attn_offset(b, t, T, width, H * D, g, D) + d] : zero;
        v[r][d] = t < T ? qkv[attn_offset(b, t, T, width, (H + KV) * D, g, D) + d] : zero;
    }
}

template <int D>
__global__ void __launch_bounds__(128) attention_forward_simple_kernel(bf16* out, float* lse, const bf16* qkv, int T,
                                                                       int H, int KV, float scale, AttnDocs docs) {
    constexpr int PER_LANE = D / 32;
    __shared__ AttnForwardSimpleSmem<D> sm;

    const int q0 = blockIdx.x * kAttnRows, h = blockIdx.y, b = blockIdx.z;
    const int g = h / (H / KV), width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

    // The block's query rows, pre-multiplied by the scale (rows past T are zero).
    for (int idx = threadIdx.x; idx < kAttnRows * D; idx += blockDim.x) {
        const int r = idx / D, d = idx % D, t = q0 + r;
        sm.q[r][d] = t < T ? scale * __bfloat162float(qkv[attn_offset(b, t, T, width, 0, h, D) + d]) : 0.0f;
    }

    float m[kAttnRowsPerWarp], l[kAttnRowsPerWarp], o[kAttnRowsPerWarp][PER_LANE];
    int first_key[kAttnRowsPerWarp];  // each row's first visible key (its document's start)
#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < PER_LANE; ++i) o[r][i] = 0.0f;
    }
    attn_row_starts<kAttnRowsPerWarp>(first_key, docs, b, T, q0 + warp * kAttnRowsPerWarp, 1);

    // Causal: the last key any row of this block sees is min(q0 + 15, T - 1);
    // the first, its first row's document start.
    const AttnKeyTiles<kAttnRows, kAttnKeys> tiles(docs, b, T, q0);
    for (int k0 = tiles.first * kAttnKeys; k0 <= tiles.last * kAttnKeys; k0 += kAttnKeys) {
        __syncthreads();  // the previous tile is no longer read
        attn_load_kv_tile<D>(sm.k, sm.v, qkv, b, k0, T, H, KV, g);
        __syncthreads();
#pragma unroll
        for (int r = 0; r < kAttnRowsPerWarp; ++r) {
            const int row = warp * kAttnRowsPerWarp + r, i = q0 + row;
            if (i >= T) continue;  // the same for the whole warp
            const int j = k0 + lane;
            float s = -INFINITY;
            if (j <= i && j >= first_key[r]) {
                s = 0.0f;
                for (int d = 0; d < D; ++d) s += sm.q[row][d] * __bfloat162float(sm.k[lane][d]);
            }
            // A row that has seen no key yet (its document starts later) keeps
            // m = -inf: subtract 0 then, not -inf.
            const float m_new = fmaxf(m[r], attn_warp_max(s));
            const float m_use = m_new == -INFINITY ? 0.0f : m_new;
            const float p = __expf(s - m_use);
            const float correction = __expf(m[r] - m_use);  // 0 while m = -inf
            l[r] = l[r] * correction + warp_sum(p);
            m[r] = m_new;
            sm.p[warp][r][lane] = p;
            __syncwarp();
#pragma unroll
            for (int c = 0; c < PER_LANE; ++c) o[r][c] *= correction;
#pragma unroll
            for (int jj = 0; jj < kAttnKeys; ++jj) {
                const float pj = sm.p[warp][r][jj];
#pragma unroll
                for (int c = 0; c < PER_LANE; ++c) o[r][c] += pj * __bfloat162float(sm.v[jj][lane + 32 * c]);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        const int i = q0 + warp * kAttnRowsPerWarp + r;
        if (i >= T) continue;
        const float inv = 1.0f / l[r];
        bf16* dst = out + attn_offset(b, i, T, H * D, 0, h, D);
#pragma unroll
        for (int c = 0; c < PER_LANE; ++c) dst[lane + 32 * c] = __float2bfloat16(o[r][c] * inv);
        if (lane == 0) lse[(size_t(b) * H + h) * T + i] = m[r] + logf(l[r]);
    }
    if (threadIdx.x == 0) attn_count_tiles(docs, 0, tiles.count());
}

// Backward, part 1: dq for 16 query rows of one (batch, head), and Delta for
// those rows (saved for part 2). The same tiling as the forward: lane j of a
// warp handles key j of the tile; dS is shared through shared memory and each
// lane accumulates its dims of dq.
template <int D>
__global__ void __launch_bounds__(128)
    attention_backward_dq_simple_kernel(bf16* dqkv, float* delta, const bf16* dout, const bf16* qkv, const bf16* out,
                                        const float* lse, int T, int H, int KV, float scale, AttnDocs docs) {
    constexpr int PER_LANE = D / 32;
    __shared__ AttnDqSimpleSmem<D> sm;

    const int q0 = blockIdx.x * kAttnRows, h = blockIdx.y, b = blockIdx.z;
    const int g = h / (H / KV), width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

    for (int idx = threadIdx.x; idx < kAttnRows * D; idx += blockDim.x) {
        const int r = idx / D, d = idx % D, t = q0 + r;
        sm.q[r][d] = t < T ? scale * __bfloat162float(qkv[attn_offset(b, t, T, width, 0, h, D) + d]) : 0.0f;
        sm.do_[r][d] = t < T ? __bfloat162float(dout[attn_offset(b, t, T, H * D, 0, h, D) + d]) : 0.0f;
    }
    __syncthreads();

    // Delta_i = dO_i . o_i, one warp per row.
    float row_delta[kAttnRowsPerWarp], row_lse[kAttnRowsPerWarp], dq[kAttnRowsPerWarp][PER_LANE];
#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        const int row = warp * kAttnRowsPerWarp + r, i = q0 + row;
        float part = 0.0f;
        if (i < T) {
            const bf16* o = out + attn_offset(b, i, T, H * D, 0, h, D);
#pragma unroll
            for (int c = 0; c < PER_LANE; ++c) part += sm.do_[row][lane + 32 * c] * __bfloat162float(o[lane + 32 * c]);
        }
        row_delta[r] = warp_sum(part);
        row_lse[r] = i < T ? lse[(size_t(b) * H + h) * T + i] : 0.0f;
        if (i < T && lane == 0) delta[(size_t(b) * H + h) * T + i] = row_delta[r];
#pragma unroll
        for (int c = 0; c < PER_LANE; ++c) dq[r][c] = 0.0f;
    }

    int first_key[kAttnRowsPerWarp];
    attn_row_starts<kAttnRowsPerWarp>(first_key, docs, b, T, q0 + warp * kAttnRowsPerWarp, 1);
    const AttnKeyTiles<kAttnRows, kAttnKeys> tiles(docs, b, T, q0);  // as in the forward
    for (int k0 = tiles.first * kAttnKeys; k0 <= tiles.last * kAttnKeys; k0 += kAttnKeys) {
        __syncthreads();
        attn_load_kv_tile<D>(sm.k, sm.v, qkv, b, k0, T, H, KV, g);
        __syncthreads();
#pragma unroll
        for (int r = 0; r < kAttnRowsPerWarp; ++r) {
            const int row = warp * kAttnRowsPerWarp + r, i = q0 + row;
            if (i >= T) continue;
            const int j = k0 + lane;
            float ds = 0.0f;
            if (j <= i && j >= first_key[r]) {
                float s = 0.0f, dp = 0.0f;
                for (int d = 0; d < D; ++d) {
                    s += sm.q[row][d] * __bfloat162float(sm.k[lane][d]);
                    dp += sm.do_[row][d] * __bfloat162float(sm.v[lane][d]);
                }
                ds = __expf(s - row_lse[r]) * (dp - row_delta[r]);
            }
            sm.ds[warp][r][lane] = ds;
            __syncwarp();
#pragma unroll
            for (int jj = 0; jj < kAttnKeys; ++jj) {
                const float dsj = sm.ds[warp][r][jj];
#pragma unroll
                for (int c = 0; c < PER_LANE; ++c) dq[r][c] += dsj * __bfloat162float(sm.k[jj][lane + 32 * c]);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        const int i = q0 + warp * kAttnRowsPerWarp + r;
        if (i >= T) continue;
        bf16* dst = dqkv + attn_offset(b, i, T, width, 0, h, D);
#pragma unroll
        for (int c = 0; c < PER_LANE; ++c) dst[lane + 32 * c] = __float2bfloat16(scale * dq[r][c]);
    }
    if (threadIdx.x == 0) attn_count_tiles(docs, 1, tiles.count());
}

// Backward, part 2: dk and dv for 16 key rows of one (batch, KV head). The
// roles of queries and keys swap: each warp owns 4 key rows, query tiles of 32
// rows (of every query head of the group, in turn) go through shared memory,
// lane i handles query i of the tile. Only queries i >= j see key j.
template <int D>
__global__ void __launch_bounds__(128)
    attention_backward_dkv_simple_kernel(bf16* dqkv, const float* delta, const bf16* dout, const bf16* qkv,
                                         const float* lse, int T, int H, int KV, float scale, AttnDocs docs) {
    constexpr int PER_LANE = D / 32;
    constexpr int KEYS = kAttnDkvKeys, QUERIES = kAttnDkvQueries;
    __shared__ AttnDkvSimpleSmem<D> sm;

    const int k0 = blockIdx.x * KEYS, g = blockIdx.y, b = blockIdx.z;
    const int group = H / KV, width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

    // The block's keys, pre-multiplied by the scale, and values.
    for (int idx = threadIdx.x; idx < KEYS * D; idx += blockDim.x) {
        const int r = idx / D, d = idx % D, t = k0 + r;
        sm.k[r][d] = t < T ? scale * __bfloat162float(qkv[attn_offset(b, t, T, width, H * D, g, D) + d]) : 0.0f;
        sm.v[r][d] = t < T ? __bfloat162float(qkv[attn_offset(b, t, T, width, (H + KV) * D, g, D) + d]) : 0.0f;
    }

    float dk[kAttnRowsPerWarp][PER_LANE], dv[kAttnRowsPerWarp][PER_LANE];
#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r)
#pragma unroll
        for (int c = 0; c < PER_LANE; ++c) dk[r][c] = dv[r][c] = 0.0f;

    // Queries before k0 see none of these keys: start at the tile holding k0.
    // Queries at or past the end of the last key's document see none either.
    int key_end[kAttnRowsPerWarp];
    attn_key_ends<kAttnRowsPerWarp>(key_end, docs, b, T, k0 + warp * kAttnRowsPerWarp, 1);
    const int first_query = k0 / QUERIES * QUERIES;
    const int end_query = attn_doc_end(docs, b, T, min(k0 + KEYS, T) - 1);
    for (int h = g * group; h < (g + 1) * group; ++h) {
        const float* lse_h = lse + (size_t(b) * H + h) * T;
        const float* delta_h = delta + (size_t(b) * H + h) * T;
        for (int i0 = first_query; i0 < end_query; i0 += QUERIES) {
            __syncthreads();
            for (int idx = threadIdx.x; idx < QUERIES * D; idx += blockDim.x) {
                const int r = idx / D, d = idx % D, t = i0 + r;
                const bf16 zero = __float2bfloat16(0.0f);
                sm.q[r][d] = t < T ? qkv[attn_offset(b, t, T, width, 0, h, D) + d] : zero;
                sm.do_[r][d] = t < T ? dout[attn_offset(b, t, T, H * D, 0, h, D) + d] : zero;
            }
            if (threadIdx.x < QUERIES) {
                const int t = i0 + threadIdx.x;
                sm.lse[threadIdx.x] = t < T ? lse_h[t] : 0.0f;
                sm.delta[threadIdx.x] = t < T ? delta_h[t] : 0.0f;
            }
            __syncthreads();
#pragma unroll
            for (int r = 0; r < kAttnRowsPerWarp; ++r) {
                const int row = warp * kAttnRowsPerWarp + r, j = k0 + row;
                if (j >= T) continue;
                const int i = i0 + lane;
                float p = 0.0f, ds = 0.0f;
                if (i < T && i >= j && i < key_end[r]) {
                    float s = 0.0f, dp = 0.0f;
                    for (int d = 0; d < D; ++d) {
                        s += sm.k[row][d] * __bfloat162float(sm.q[lane][d]);
                        dp += sm.v[row][d] * __bfloat162float(sm.do_[lane][d]);
                    }
                    p = __expf(s - sm.lse[lane]);
                    ds = p * (dp - sm.delta[lane]);
                }
                sm.p[warp][r][lane] = p;
                sm.ds[warp][r][lane] = ds;
                __syncwarp();
#pragma unroll
                for (int ii = 0; ii < QUERIES; ++ii) {
                    const float pi = sm.p[warp][r][ii], dsi = sm.ds[warp][r][ii];
#pragma unroll
                    for (int c = 0; c < PER_LANE; ++c) {
                        dv[r][c] += pi * __bfloat162float(sm.do_[ii][lane + 32 * c]);
                        dk[r][c] += dsi * __bfloat162float(sm.q[ii][lane + 32 * c]);
                    }
                }
            }
        }
    }

#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        const int j = k0 + warp * kAttnRowsPerWarp + r;
        if (j >= T) continue;
        bf16* dk_dst = dqkv + attn_offset(b, j, T, width, H * D, g, D);
        bf16* dv_dst = dqkv + attn_offset(b, j, T, width, (H + KV) * D, g, D);
#pragma unroll
        for (int c = 0; c < PER_LANE; ++c) {
            dk_dst[lane + 32 * c] = __float2bfloat16(scale * dk[r][c]);
            dv_dst[lane + 32 * c] = __float2bfloat16(dv[r][c]);
        }
    }
    if (threadIdx.x == 0) attn_count_tiles(docs, 2, group * ((end_query - first_query + QUERIES - 1) / QUERIES));
}

// Version 1 forward: out [B*T, H*D], lse [B, H, T].
inline void attention_forward_simple(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                                     AttnDocs docs = {}, cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    const dim3 grid(ceil_div(T, kAttnRows), H, B);
    const float scale = 1.0f / std::sqrt(float(D));
    if (D == 64) attention_forward_simple_kernel<64><<<grid, 128, 0, stream>>>(out, lse, qkv, T, H, KV, scale, docs);
    else attention_forward_simple_kernel<128><<<grid, 128, 0, stream>>>(out, lse, qkv, T, H, KV, scale, docs);
    CUDA_CHECK_LAUNCH("attention_forward_simple_kernel");
}

// Version 1 backward: writes dq, dk, dv into dqkv (fused layout, every element
// written). `scratch` holds attention_backward_scratch(B, T, H) floats.
inline void attention_backward_simple(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                                      const float* lse, int B, int T, int H, int KV, int D, AttnDocs docs = {},
                                      cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    const float scale = 1.0f / std::sqrt(float(D));
    const dim3 grid_q(ceil_div(T, kAttnRows), H, B), grid_kv(ceil_div(T, kAttnRows), KV, B);
    if (D == 64)
        attention_backward_dq_simple_kernel<64>
            <<<grid_q, 128, 0, stream>>>(dqkv, scratch, dout, qkv, out, lse, T, H, KV, scale, docs);
    else
        attention_backward_dq_simple_kernel<128>
            <<<grid_q, 128, 0, stream>>>(dqkv, scratch, dout, qkv, out, lse, T, H, KV, scale, docs);
    CUDA_CHECK_LAUNCH("attention_backward_dq_simple_kernel");
    if (D == 64)
        attention_backward_dkv_simple_kernel<64>
            <<<grid_kv, 128, 0, stream>>>(dqkv, scratch, dout, qkv, lse, T, H, KV, scale, docs);
    else
        attention_backward_dkv_simple_kernel<128>
            <<<grid_kv, 128, 0, stream>>>(dqkv, scratch, dout, qkv, lse, T, H, KV, scale, docs);
    CUDA_CHECK_LAUNCH("attention_backward_dkv_simple_kernel");
}

// Version 1's kernels for dev/perf-report (no CUDA call).
inline void attention_launch_info_simple() {
    attn_print_launch_info("attention_forward_simple_kernel", 128, 0, 0, 80);
    attn_print_launch_info("attention_backward_dq_simple_kernel", 128, 0, 0, 80);
    attn_print_launch_info("attention_backward_dkv_simple_kernel", 128, 0, 0, 80);
}

#endif  // KERNELS_ATTENTION_V1_SIMPLE_CUH
