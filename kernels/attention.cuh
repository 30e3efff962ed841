// Causal grouped-query attention, forward and backward, in the FlashAttention
// style: keys and values are streamed through shared memory in tiles, the
// softmax is computed online, and the T x T score matrix is never stored.
//
// Layout. The input is the fused QKV buffer, row-major [N = B*T rows, W = (H +
// 2*KV) * D columns]: row n = b*T + t holds the query heads at columns
// [0, H*D), the key heads at [H*D, (H+KV)*D) and the value heads at
// [(H+KV)*D, W), as kernels/rope.cuh leaves them. Query head h reads key/value
// head h / (H / KV); K and V are never copied up to H heads.
//   out: [N, H*D] bf16            lse: [B, H, T] fp32 (log-sum-exp of each row)
//   dqkv: [N, W] bf16, the same fused layout (dq, dk, dv; written, not added to)
//
// The math, for one query row i of head h (scale = 1/sqrt(D), keys j <= i):
//   s_j = scale * q_i . k_j,   lse_i = log sum_j exp(s_j),   p_j = exp(s_j - lse_i)
//   o_i = sum_j p_j v_j
// The forward visits the keys tile by tile, keeping a running maximum m and a
// running sum l = sum exp(s_j - m); when a tile raises the maximum from m to m',
// l and the partial output are multiplied by exp(m - m') first. At the end
// o = o / l and lse = m + log l.
// The backward recomputes p_j from lse (no second softmax pass), with
//   Delta_i = dO_i . o_i   (= sum_j p_j dP_ij, computed first)
//   dP_ij = dO_i . v_j,    dS_ij = p_ij (dP_ij - Delta_i)
//   dq_i = scale * sum_j dS_ij k_j,   dk_j = scale * sum_i dS_ij q_i,   dv_j = sum_i p_ij dO_i
// where the sums for dk_j and dv_j run over the rows i of every query head of
// the group of key head j. All sums are in fp32.
//
// Four versions, with the same arguments and results:
//   1: simple, CUDA cores (attention_forward_simple, attention_backward_simple):
//      one warp per query row (forward, dq) or per key row (dk, dv), one lane
//      per key (or query) of a 32-wide tile.
//   2: tensor cores (attention_forward_mma, attention_backward_mma): mma.sync
//      m16n8k16 bf16 with fp32 accumulation, ldmatrix, cp.async double
//      buffering, through kernels/ptx.h; 64 x 64 tiles.
//   3: Hopper (attention_forward_wgmma, attention_backward_wgmma, sm_90a):
//      version 2's tiles, each block one warpgroup, the products by wgmma.mma_async.
//   4: Hopper with TMA and warp specialisation (attention_forward_tma,
//      attention_backward_tma, sm_90a): a producer warp loads swizzled tiles by
//      TMA into a ring of shared-memory slots guarded by mbarriers, two
//      consumer warpgroups run version 3's products on them.
// attention_forward / attention_backward (at the end) are version 2, on every
// GPU: versions 3 and 4 are checked in the emulator only until a Hopper GPU
// confirms them. The
// backward needs attention_backward_scratch(B, T, H) floats of scratch (Delta).
// Head dims 64 and 128; H a multiple of KV; any T >= 1. Index arithmetic that
// can pass 2^31 is done in size_t.
#ifndef KERNELS_ATTENTION_CUH
#define KERNELS_ATTENTION_CUH

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "kernels/common.cuh"
#include "kernels/ptx.h"

// Where head `head` of token (b, t) starts in a row-major buffer with `width`
// columns, `col0` being the first column of that group of heads.
__device__ inline size_t attn_offset(int b, int t, int T, int width, int col0, int head, int D) {
    return (size_t(b) * T + t) * size_t(width) + col0 + size_t(head) * D;
}

__device__ inline float attn_warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

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
                                                                       int H, int KV, float scale) {
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
    #pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        #pragma unroll
        for (int i = 0; i < PER_LANE; ++i) o[r][i] = 0.0f;
    }

    // Causal: the last key any row of this block sees is min(q0 + 15, T - 1).
    const int last_key = min(q0 + kAttnRows, T) - 1;
    for (int k0 = 0; k0 <= last_key; k0 += kAttnKeys) {
        __syncthreads();  // the previous tile is no longer read
        attn_load_kv_tile<D>(sm.k, sm.v, qkv, b, k0, T, H, KV, g);
        __syncthreads();
        #pragma unroll
        for (int r = 0; r < kAttnRowsPerWarp; ++r) {
            const int row = warp * kAttnRowsPerWarp + r, i = q0 + row;
            if (i >= T) continue;  // the same for the whole warp
            const int j = k0 + lane;
            float s = -INFINITY;
            if (j <= i) {
                s = 0.0f;
                for (int d = 0; d < D; ++d) s += sm.q[row][d] * __bfloat162float(sm.k[lane][d]);
            }
            // k0 <= q0 <= i, so key k0 is always visible and the tile maximum is finite.
            const float m_new = fmaxf(m[r], attn_warp_max(s));
            const float p = __expf(s - m_new);
            const float correction = __expf(m[r] - m_new);  // 0 on the first tile (m = -inf)
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
}

// Backward, part 1: dq for 16 query rows of one (batch, head), and Delta for
// those rows (saved for part 2). The same tiling as the forward: lane j of a
// warp handles key j of the tile; dS is shared through shared memory and each
// lane accumulates its dims of dq.
template <int D>
__global__ void __launch_bounds__(128) attention_backward_dq_simple_kernel(bf16* dqkv, float* delta, const bf16* dout,
                                                                           const bf16* qkv, const bf16* out,
                                                                           const float* lse, int T, int H, int KV,
                                                                           float scale) {
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

    const int last_key = min(q0 + kAttnRows, T) - 1;
    for (int k0 = 0; k0 <= last_key; k0 += kAttnKeys) {
        __syncthreads();
        attn_load_kv_tile<D>(sm.k, sm.v, qkv, b, k0, T, H, KV, g);
        __syncthreads();
        #pragma unroll
        for (int r = 0; r < kAttnRowsPerWarp; ++r) {
            const int row = warp * kAttnRowsPerWarp + r, i = q0 + row;
            if (i >= T) continue;
            const int j = k0 + lane;
            float ds = 0.0f;
            if (j <= i) {
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
}

// Backward, part 2: dk and dv for 16 key rows of one (batch, KV head). The
// roles of queries and keys swap: each warp owns 4 key rows, query tiles of 32
// rows (of every query head of the group, in turn) go through shared memory,
// lane i handles query i of the tile. Only queries i >= j see key j.
template <int D>
__global__ void __launch_bounds__(128) attention_backward_dkv_simple_kernel(bf16* dqkv, const float* delta,
                                                                            const bf16* dout, const bf16* qkv,
                                                                            const float* lse, int T, int H, int KV,
                                                                            float scale) {
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
    const int first_query = k0 / QUERIES * QUERIES;
    for (int h = g * group; h < (g + 1) * group; ++h) {
        const float* lse_h = lse + (size_t(b) * H + h) * T;
        const float* delta_h = delta + (size_t(b) * H + h) * T;
        for (int i0 = first_query; i0 < T; i0 += QUERIES) {
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
                if (i < T && i >= j) {
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
}

// ===========================================================================
// Launchers
// ===========================================================================
inline void attention_check_shape(int H, int KV, int D) {
    if ((D != 64 && D != 128) || KV <= 0 || H % KV != 0) {
        std::fprintf(stderr, "attention: unsupported shape H=%d KV=%d D=%d (D must be 64 or 128, KV divide H)\n", H,
                     KV, D);
        std::exit(EXIT_FAILURE);
    }
}

// Version 1 forward: out [B*T, H*D], lse [B, H, T].
inline void attention_forward_simple(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                                     cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    const dim3 grid(ceil_div(T, kAttnRows), H, B);
    const float scale = 1.0f / std::sqrt(float(D));
    if (D == 64) attention_forward_simple_kernel<64><<<grid, 128, 0, stream>>>(out, lse, qkv, T, H, KV, scale);
    else attention_forward_simple_kernel<128><<<grid, 128, 0, stream>>>(out, lse, qkv, T, H, KV, scale);
    CUDA_CHECK_LAUNCH("attention_forward_simple_kernel");
}

// Floats of scratch memory attention_backward needs: Delta, [B, H, T].
inline size_t attention_backward_scratch(int B, int T, int H) { return size_t(B) * H * T; }

// Version 1 backward: writes dq, dk, dv into dqkv (fused layout, every element
// written). `scratch` holds attention_backward_scratch(B, T, H) floats.
inline void attention_backward_simple(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                                      const float* lse, int B, int T, int H, int KV, int D, cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    const float scale = 1.0f / std::sqrt(float(D));
    const dim3 grid_q(ceil_div(T, kAttnRows), H, B), grid_kv(ceil_div(T, kAttnRows), KV, B);
    if (D == 64)
        attention_backward_dq_simple_kernel<64>
            <<<grid_q, 128, 0, stream>>>(dqkv, scratch, dout, qkv, out, lse, T, H, KV, scale);
    else
        attention_backward_dq_simple_kernel<128>
            <<<grid_q, 128, 0, stream>>>(dqkv, scratch, dout, qkv, out, lse, T, H, KV, scale);
    CUDA_CHECK_LAUNCH("attention_backward_dq_simple_kernel");
    if (D == 64)
        attention_backward_dkv_simple_kernel<64>
            <<<grid_kv, 128, 0, stream>>>(dqkv, scratch, dout, qkv, lse, T, H, KV, scale);
    else
        attention_backward_dkv_simple_kernel<128>
            <<<grid_kv, 128, 0, stream>>>(dqkv, scratch, dout, qkv, lse, T, H, KV, scale);
    CUDA_CHECK_LAUNCH("attention_backward_dkv_simple_kernel");
}

// ===========================================================================
// Version 2: tensor cores
// ===========================================================================
// Forward. A block has 4 warps and handles 64 query rows of one (batch, head);
// warp w owns rows 16w..16w+15 of the block, which is the M = 16 of one
// mma.m16n8k16. Key/value tiles of 64 rows are copied into shared memory with
// cp.async, two buffers: while the warps compute on tile j, tile j + 1 is in
// flight. Per tile, each warp computes
//   S (16 x 64) = Q (16 x D) K^T          D/16 k-steps x 8 n-blocks of 8 keys
//   online softmax on S, in registers
//   O (16 x D) += P (16 x 64) V (64 x D)  4 k-steps of 16 keys x D/8 n-blocks
// The S accumulators of the first product have exactly the layout of the A
// operand of the second (rows g and g + 8, columns 2t and 2t + 1 of each
// 8-column block), so P goes from fp32 registers to bf16 registers without
// passing through shared memory. Q stays in registers for the whole block.
//
// Fragments are loaded with ldmatrix: the A operand (Q, row-major) and the B
// operand of S = Q K^T (K^T column-major is K row-major) without
// transposition, the B operand of P V (V row-major, needed column-major) with
// .trans. Shared rows are D + 8 bf16 long: the 8 rows of one 8x8 matrix then
// start 16 bytes apart modulo 128 and ldmatrix reads them without bank
// conflicts; 16-byte alignment for cp.async is kept.
//
// The softmax works in base 2: x = s * scale * log2(e), p = 2^(x - m). Each
// thread holds two rows (g and g + 8 of its warp's 16); a row's 64 scores of a
// tile are spread over the 4 threads of a quad (lanes 4g..4g+3), so row maxima
// need two shuffles; row sums are kept per thread and added up at the end.
// Causality: with 64-row query and key tiles, only the last key tile of a block
// (the diagonal one, which is also the only one that can reach past T) needs a
// mask; on it, each warp also skips the 16-key groups that none of its rows
// can see (and a warp whose rows all lie past T skips the products). Blocks
// are launched heaviest first (the last query tiles see the most keys).
constexpr int kAttnMmaRows = 64;  // query rows per block, 16 per warp
constexpr int kAttnMmaKeys = 64;  // keys per tile
static_assert(kAttnMmaRows == 64 && kAttnMmaKeys == 64, "the fragment helpers below assume 64 x 64 tiles");
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
__host__ __device__ constexpr int attn_mma_stride() { return D + 8; }  // bf16 per shared row

template <int D>
constexpr size_t attn_mma_forward_smem() {  // Q, two K and two V tiles
    return size_t(kAttnMmaRows + 4 * kAttnMmaKeys) * attn_mma_stride<D>() * sizeof(bf16);
}

__device__ inline uint32_t pack_bf16x2(float lo, float hi) {
    return uint32_t(__bfloat16_as_ushort(__float2bfloat16(lo))) |
           (uint32_t(__bfloat16_as_ushort(__float2bfloat16(hi))) << 16);
}

__device__ inline Packed128<bf16> attn_zeros128() {
    Packed128<bf16> zero;
    #pragma unroll
    for (int k = 0; k < Packed128<bf16>::size; ++k) zero[k] = __float2bfloat16(0.0f);
    return zero;
}

// 16 bytes of token t's row (columns col.. of batch b's rows of `width`) into
// shared memory by cp.async, or zeros when t is at or past T.
__device__ inline void attn_copy16_or_zeros(bf16* d, const bf16* src, int b, int t, int T, int width, int col) {
    if (t < T) cp_async_16(d, src + (size_t(b) * T + t) * size_t(width) + col);
    else store128(d, attn_zeros128());
}

// Copies rows [t0, t0 + ROWS) of one head (D columns from `col0` of a row-major
// buffer with `width` columns, batch b) into shared memory with row stride P,
// 16 bytes per cp.async. Rows at or past T are filled with zeros.
template <int ROWS, int D>
__device__ inline void attn_load_tile(bf16* dst, const bf16* src, int b, int t0, int T, int width, int col0) {
    constexpr int P = attn_mma_stride<D>(), CHUNKS = D / 8;
    for (int idx = threadIdx.x; idx < ROWS * CHUNKS; idx += blockDim.x) {
        const int r = idx / CHUNKS, c = idx % CHUNKS * 8, t = t0 + r;
        attn_copy16_or_zeros(dst + r * P + c, src, b, t, T, width, col0 + c);
    }
}

// The warp's 16 rows (16w..16w+15) of a shared tile as A fragments, one per
// k-step of 16 columns: matrices (rows 0-7, cols 0-7), (rows 8-15, cols 0-7),
// (rows 0-7, cols 8-15), (rows 8-15, cols 8-15); lane l addresses row l % 8 of
// matrix l / 8.
template <int D>
__device__ inline void attn_load_a(uint32_t frag[D / 16][4], const bf16* tile, int warp, int lane) {
    const bf16* base = tile + (warp * 16 + lane % 8 + 8 * ((lane / 8) & 1)) * attn_mma_stride<D>() + 8 * (lane / 16);
    #pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4(frag[kk], base + kk * 16);
}

// acc (16 x 64) = A (16 x D) X^T, X being 64 rows of a shared tile (keys, or
// queries): X^T read column-major is X row-major, so no transposition. One
// ldmatrix_x4 gives the B fragments of two 8-row blocks of X: matrices
// (rows 0-7, cols 0-7), (rows 0-7, cols 8-15), (rows 8-15, cols 0-7), (rows 8-15, cols 8-15).
// Only the columns of 16-row groups [begin, end) of X are computed (the warp's
// causally visible ones); the others are left at zero.
template <int D>
__device__ inline void attn_mma_abt(float acc[8][4], const uint32_t a[D / 16][4], const bf16* tile, int lane,
                                    int begin, int end) {
    constexpr int P = attn_mma_stride<D>();
    #pragma unroll
    for (int nb = 0; nb < 8; ++nb)
        #pragma unroll
        for (int i = 0; i < 4; ++i) acc[nb][i] = 0.0f;
    #pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
        #pragma unroll
        for (int nb = 0; nb < 8; nb += 2) {
            if (nb < 2 * begin || nb >= 2 * end) continue;  // warp-uniform
            uint32_t bf[4];
            ldmatrix_x4(bf, tile + (nb * 8 + 8 * (lane / 16) + lane % 8) * P + kk * 16 + 8 * ((lane / 8) & 1));
            mma_m16n8k16_bf16(acc[nb], a[kk], bf, acc[nb]);
            mma_m16n8k16_bf16(acc[nb + 1], a[kk], bf + 2, acc[nb + 1]);
        }
}

// The same product with A read from shared memory (the warp's 16 rows of
// a_tile) one k-step at a time, for kernels that cannot keep A in registers.
template <int D>
__device__ inline void attn_mma_abt_shared_a(float acc[8][4], const bf16* a_tile, int warp, const bf16* tile,
                                             int lane, int begin, int end) {
    constexpr int P = attn_mma_stride<D>();
    const bf16* a_base = a_tile + (warp * 16 + lane % 8 + 8 * ((lane / 8) & 1)) * P + 8 * (lane / 16);
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[nb][i] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[4];
        ldmatrix_x4(a, a_base + kk * 16);
#pragma unroll
        for (int nb = 0; nb < 8; nb += 2) {
            if (nb < 2 * begin || nb >= 2 * end) continue;  // warp-uniform
            uint32_t bf[4];
            ldmatrix_x4(bf, tile + (nb * 8 + 8 * (lane / 16) + lane % 8) * P + kk * 16 + 8 * ((lane / 8) & 1));
            mma_m16n8k16_bf16(acc[nb], a, bf, acc[nb]);
            mma_m16n8k16_bf16(acc[nb + 1], a, bf + 2, acc[nb + 1]);
        }
    }
}

// acc (16 x D) += X (16 x 64, fp32 accumulators, rounded to bf16) Y, Y being
// the 64 rows x D of a shared tile. The accumulators of a 16 x 64 product have
// exactly the layout of the A operand (rows g and g + 8, columns 2t and 2t + 1
// of each 8-column block): the A fragment of k-step kk is blocks 2kk and
// 2kk + 1. Y is needed column-major: ldmatrix .trans, matrices (rows 0-7,
// cols 0-7), (rows 8-15, cols 0-7), (rows 0-7, cols 8-15), (rows 8-15, cols 8-15).
// Only k-steps [begin, end) are done: the columns of X outside are zero.
template <int D>
__device__ inline void attn_mma_ab(float acc[D / 8][4], const float x[8][4], const bf16* tile, int lane, int begin,
                                   int end) {
    constexpr int P = attn_mma_stride<D>();
    #pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        if (kk < begin || kk >= end) continue;  // warp-uniform
        const uint32_t af[4] = {pack_bf16x2(x[2 * kk][0], x[2 * kk][1]), pack_bf16x2(x[2 * kk][2], x[2 * kk][3]),
                                pack_bf16x2(x[2 * kk + 1][0], x[2 * kk + 1][1]),
                                pack_bf16x2(x[2 * kk + 1][2], x[2 * kk + 1][3])};
        #pragma unroll
        for (int nb = 0; nb < D / 8; nb += 2) {
            uint32_t bf[4];
            ldmatrix_x4_trans(bf, tile + (kk * 16 + 8 * ((lane / 8) & 1) + lane % 8) * P + nb * 8 + 8 * (lane / 16));
            mma_m16n8k16_bf16(acc[nb], af, bf, acc[nb]);
            mma_m16n8k16_bf16(acc[nb + 1], af, bf + 2, acc[nb + 1]);
        }
    }
}

// The online softmax of one key tile for a thread's two rows (row0 = its warp's
// row g, and row0 + 8): the scores s (16 x 64 per warp, in the accumulator
// layout: s[nb][i] is row g + 8(i/2), key 8nb + 2t + i%2) are scaled to base 2,
// masked on the tile that reaches the diagonal (keys past the row or past T),
// turned into unnormalised probabilities; the running maxima m and sums l are
// updated and the output accumulators o rescaled.
template <int D, int NB = 8>  // NB: 8-key blocks of the tile
__device__ inline void attn_online_softmax(float s[NB][4], float o[D / 8][4], float m[2], float l[2], int row0,
                                           int k0, int T, int t4, bool masked, float scale_log2) {
    float tile_max[2] = {-INFINITY, -INFINITY};
    #pragma unroll
    for (int nb = 0; nb < NB; ++nb)
        #pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int row = row0 + 8 * (i / 2), key = k0 + nb * 8 + 2 * t4 + (i % 2);
            float x = s[nb][i] * scale_log2;
            if (masked && (key > row || key >= T)) x = -INFINITY;
            s[nb][i] = x;
            tile_max[i / 2] = fmaxf(tile_max[i / 2], x);
        }
    float correction[2];
    #pragma unroll
    for (int r = 0; r < 2; ++r) {
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
        const float m_new = fmaxf(m[r], tile_max[r]);
        // A row with no visible key so far keeps m = -inf; subtract 0 then, not -inf.
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;
        correction[r] = exp2f(m[r] - m_use);
        m[r] = m_new;
        l[r] *= correction[r];
        #pragma unroll
        for (int nb = 0; nb < NB; ++nb)
            #pragma unroll
            for (int i = 2 * r; i < 2 * r + 2; ++i) {
                s[nb][i] = exp2f(s[nb][i] - m_use);
                l[r] += s[nb][i];
            }
    }
    #pragma unroll
    for (int nb = 0; nb < D / 8; ++nb) {
        o[nb][0] *= correction[0];
        o[nb][1] *= correction[0];
        o[nb][2] *= correction[1];
        o[nb][3] *= correction[1];
    }
}

// Sums each row's l over its quad, normalises, and stores the thread's two rows
// of out (columns 8nb + 2t, + 1) and their log-sum-exp (natural log).
template <int D>
__device__ inline void attn_store_rows(bf16* out, float* lse, const float o[D / 8][4], const float m[2], float l[2],
                                       int b, int h, int H, int T, int row0, int t4) {
    #pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        const int row = row0 + 8 * r;
        if (row >= T) continue;
        const float inv = 1.0f / l[r];
        bf16* dst = out + (size_t(b) * T + row) * size_t(H) * D + size_t(h) * D + 2 * t4;
        #pragma unroll
        for (int nb = 0; nb < D / 8; ++nb) {
            dst[nb * 8] = __float2bfloat16(o[nb][2 * r] * inv);
            dst[nb * 8 + 1] = __float2bfloat16(o[nb][2 * r + 1] * inv);
        }
        if (t4 == 0) lse[(size_t(b) * H + h) * T + row] = (m[r] + log2f(l[r])) * 0.6931471805599453f;
    }
}

template <int D>
__global__ void __launch_bounds__(128) attention_forward_mma_kernel(bf16* out, float* lse, const bf16* qkv, int T,
                                                                    int H, int KV, float scale_log2) {
    constexpr int P = attn_mma_stride<D>();
    constexpr int SBLOCKS = kAttnMmaKeys / 8;  // 8-key column blocks of S
    constexpr int OBLOCKS = D / 8;             // 8-dim column blocks of O
    extern __shared__ bf16 attn_smem[];
    bf16* q_s = attn_smem;
    bf16* k_s = q_s + kAttnMmaRows * P;     // two buffers of kAttnMmaKeys rows
    bf16* v_s = k_s + 2 * kAttnMmaKeys * P;  // two buffers

    const int q0 = (gridDim.x - 1 - blockIdx.x) * kAttnMmaRows, h = blockIdx.y, b = blockIdx.z;
    const int g_kv = h / (H / KV), width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const int tiles = (min(q0 + kAttnMmaRows, T) - 1) / kAttnMmaKeys + 1;

    attn_load_tile<kAttnMmaRows, D>(q_s, qkv, b, q0, T, width, h * D);
    attn_load_tile<kAttnMmaKeys, D>(k_s, qkv, b, 0, T, width, (H + g_kv) * D);
    attn_load_tile<kAttnMmaKeys, D>(v_s, qkv, b, 0, T, width, (H + KV + g_kv) * D);
    cp_async_commit();

    uint32_t qf[D / 16][4];  // this warp's 16 query rows as A fragments
    float o[OBLOCKS][4];
    #pragma unroll
    for (int nb = 0; nb < OBLOCKS; ++nb)
        #pragma unroll
        for (int i = 0; i < 4; ++i) o[nb][i] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g and g + 8, base-2 units
    const int row0 = q0 + warp * 16 + g;                         // the first of this thread's two rows

    for (int tile = 0; tile < tiles; ++tile) {
        const int buf = tile & 1, k0 = tile * kAttnMmaKeys;
        if (tile + 1 < tiles) {  // start the next tile, then wait for this one
            const int nbuf = buf ^ 1;
            attn_load_tile<kAttnMmaKeys, D>(k_s + nbuf * kAttnMmaKeys * P, qkv, b, k0 + kAttnMmaKeys, T, width,
                                            (H + g_kv) * D);
            attn_load_tile<kAttnMmaKeys, D>(v_s + nbuf * kAttnMmaKeys * P, qkv, b, k0 + kAttnMmaKeys, T, width,
                                            (H + KV + g_kv) * D);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (tile == 0) attn_load_a<D>(qf, q_s, warp, lane);
        const bf16* kt = k_s + buf * kAttnMmaKeys * P;
        const bf16* vt = v_s + buf * kAttnMmaKeys * P;

        // Keys of this tile that some row of the warp may see, in groups of 16: all
        // of them but on the last tile, none for a warp whose rows are all past T.
        const int visible = min(min(q0 + warp * 16 + 16, T) - k0, kAttnMmaKeys);
        const int groups = visible > 0 ? (visible + 15) / 16 : 0;
        float s[SBLOCKS][4];  // S = Q K^T
        attn_mma_abt<D>(s, qf, kt, lane, 0, groups);

        // Scale to base 2, mask (last tile only), and the online softmax.
        attn_online_softmax<D, 8>(s, o, m, l, row0, k0, T, t4, tile == tiles - 1, scale_log2);

        attn_mma_ab<D>(o, s, vt, lane, 0, groups);  // O += P V
        __syncthreads();  // every warp is done with this buffer before it is refilled
    }

    // Sum each row over its quad, normalise, store.
    attn_store_rows<D>(out, lse, o, m, l, b, h, H, T, row0, t4);
}

// Version 2 forward (tensor cores), same arguments and results as version 1.
inline void attention_forward_mma(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                                  cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    const dim3 grid(ceil_div(T, kAttnMmaRows), H, B);
    const float scale_log2 = 1.4426950408889634f / std::sqrt(float(D));
    if (D == 64) {
        constexpr size_t smem = attn_mma_forward_smem<64>();
        CUDA_CHECK(cudaFuncSetAttribute(attention_forward_mma_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(smem)));
        attention_forward_mma_kernel<64><<<grid, 128, smem, stream>>>(out, lse, qkv, T, H, KV, scale_log2);
    } else {
        constexpr size_t smem = attn_mma_forward_smem<128>();
        CUDA_CHECK(cudaFuncSetAttribute(attention_forward_mma_kernel<128>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        attention_forward_mma_kernel<128><<<grid, 128, smem, stream>>>(out, lse, qkv, T, H, KV, scale_log2);
    }
    CUDA_CHECK_LAUNCH("attention_forward_mma_kernel");
}

// ---- pieces of the backward shared by versions 2 and 3 ----------------------
// A thread's two query rows (row0, row0 + 8): their lse in base 2 and Delta (0 past T).
__device__ inline void attn_row_stats(float lse2[2], float dlt[2], const float* lse, const float* delta, int b, int h,
                                      int H, int T, int row0) {
    #pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = row0 + 8 * r;
        lse2[r] = row < T ? lse[(size_t(b) * H + h) * T + row] * kLog2e : 0.0f;
        dlt[r] = row < T ? delta[(size_t(b) * H + h) * T + row] : 0.0f;
    }
}

// dq's tile (rows row0, row0 + 8; keys k0..k0+63): S and dP in, dS = P (dP - Delta)
// out in place of S, P recomputed from lse; masked on the diagonal tile.
__device__ inline void attn_dq_scores(float s[8][4], const float dp[8][4], const float lse2[2], const float dlt[2],
                                      int row0, int k0, int T, int t4, bool masked, float scale_log2) {
    #pragma unroll
    for (int nb = 0; nb < 8; ++nb)
        #pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int r = i / 2, row = row0 + 8 * r, key = k0 + nb * 8 + 2 * t4 + (i % 2);
            float p = exp2f(s[nb][i] * scale_log2 - lse2[r]);
            if (masked && (key > row || key >= T)) p = 0.0f;
            s[nb][i] = p * (dp[nb][i] - dlt[r]);
        }
}

// dk/dv's tile (keys key0, key0 + 8; queries i0..i0+63 with their lse and
// Delta in shared memory): S^T in, P^T out in place; dP^T in, dS^T out in place.
__device__ inline void attn_dkv_scores(float s[8][4], float dp[8][4], const float* lse_t, const float* delta_t,
                                       int key0, int i0, int T, int t4, bool masked, float scale_log2) {
    #pragma unroll
    for (int nb = 0; nb < 8; ++nb)
        #pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int c = nb * 8 + 2 * t4 + (i % 2), query = i0 + c, key = key0 + 8 * (i / 2);
            float p = exp2f(s[nb][i] * scale_log2 - lse_t[c]);
            if (masked && (query < key || query >= T)) p = 0.0f;
            s[nb][i] = p;
            dp[nb][i] = p * (dp[nb][i] - delta_t[c]);
        }
}

// lse (base 2) and Delta of query rows i0..i0+63 of head h into shared memory (0 past T).
__device__ inline void attn_load_query_stats(float* lse_s, float* delta_s, const float* lse, const float* delta,
                                             int b, int h, int H, int T, int i0) {
    const int c = threadIdx.x % 64, t = i0 + c;
    const size_t at = (size_t(b) * H + h) * T + t;
    if (threadIdx.x < 64) lse_s[c] = t < T ? lse[at] * kLog2e : 0.0f;
    else if (threadIdx.x < 128) delta_s[c] = t < T ? delta[at] : 0.0f;
}

// Stores a thread's two rows of dq (times scale) into the fused dqkv.
template <int D>
__device__ inline void attn_store_dq(bf16* dqkv, const float dq[D / 8][4], int b, int h, int T, int width, int row0,
                                     int t4, float scale) {
    #pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = row0 + 8 * r;
        if (row >= T) continue;
        bf16* dst = dqkv + (size_t(b) * T + row) * size_t(width) + size_t(h) * D + 2 * t4;
        #pragma unroll
        for (int nb = 0; nb < D / 8; ++nb) {
            dst[nb * 8] = __float2bfloat16(dq[nb][2 * r] * scale);
            dst[nb * 8 + 1] = __float2bfloat16(dq[nb][2 * r + 1] * scale);
        }
    }
}

// Stores a thread's two keys of dk (times scale) and dv into the fused dqkv.
template <int D>
__device__ inline void attn_store_dkv(bf16* dqkv, const float dk[D / 8][4], const float dv[D / 8][4], int b, int g_kv,
                                      int H, int KV, int T, int width, int key0, int t4, float scale) {
    #pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int key = key0 + 8 * r;
        if (key >= T) continue;
        bf16* dk_dst = dqkv + (size_t(b) * T + key) * size_t(width) + size_t(H + g_kv) * D + 2 * t4;
        bf16* dv_dst = dk_dst + size_t(KV) * D;
        #pragma unroll
        for (int nb = 0; nb < D / 8; ++nb) {
            dk_dst[nb * 8] = __float2bfloat16(dk[nb][2 * r] * scale);
            dk_dst[nb * 8 + 1] = __float2bfloat16(dk[nb][2 * r + 1] * scale);
            dv_dst[nb * 8] = __float2bfloat16(dv[nb][2 * r]);
            dv_dst[nb * 8 + 1] = __float2bfloat16(dv[nb][2 * r + 1]);
        }
    }
}

// ===========================================================================
// Version 3: Hopper warpgroup MMA (sm_90a), forward and backward
// ===========================================================================
// Version 2's blocks (64 rows of one (batch, head), 4 warps of 16 rows) are one
// warpgroup each, so every product of a 64-row tile pair is a few
// wgmma.mma_async for the whole block instead of many mma.sync per warp. A
// comes from registers (Q, dO, K or V rows as fragments; P and dS straight from
// the accumulators), B from shared memory in the no-swizzle K-major
// core-matrix layout (kernels/ptx.h), in one of two layouts of a tile of 64
// token rows x D columns:
//   rows layout:    B(k = column, n = row), for products over the columns
//                   (S = Q K^T): the core matrix of rows 8r.. and columns 8c.. at
//                   (c * 8 + r) * 128 bytes; lbo (next 8 columns) 1024, sbo 128
//   columns layout: B(k = row, n = column), for products over the rows
//                   (O = P V): that core matrix at (r * D/8 + c) * 128 bytes;
//                   lbo (next 8 rows) D/8 * 128, sbo 128
// Tiles in the rows layout arrive by cp.async (16 bytes = one core-matrix
// row), double buffered; the columns layout is a transposition on the way in
// (128-bit global loads, 16-bit shared stores), one tile at a time. Every row
// and key of a tile goes through the products (wgmma is warpgroup-wide: no
// per-warp skipping as in version 2); masks and softmax are version 2's.
// Version 4 adds TMA loads, swizzled layouts and producer/consumer warpgroups.
constexpr int kAttnWgTile = kAttnMmaRows;  // rows of a tile, as in version 2

// Rows [t0, t0 + 64) of one head (D columns from col0 of rows of `width`) into
// the rows layout, by cp.async; rows at or past T are zeros.
template <int D>
__device__ inline void attn_load_rows_core(bf16* dst, const bf16* src, int b, int t0, int T, int width, int col0) {
    constexpr int CHUNKS = D / 8;
    for (int idx = threadIdx.x; idx < kAttnWgTile * CHUNKS; idx += blockDim.x) {
        const int row = idx / CHUNKS, c = idx % CHUNKS;
        attn_copy16_or_zeros(dst + (c * 8 + row / 8) * 64 + (row % 8) * 8, src, b, t0 + row, T, width, col0 + c * 8);
    }
}

// The same rows into the columns layout (transposed).
template <int D>
__device__ inline void attn_load_cols_core(bf16* dst, const bf16* src, int b, int t0, int T, int width, int col0) {
    constexpr int CHUNKS = D / 8;
    for (int idx = threadIdx.x; idx < kAttnWgTile * CHUNKS; idx += blockDim.x) {
        const int row = idx % kAttnWgTile, c = idx / kAttnWgTile, t = t0 + row;
        const Packed128<bf16> x =
            t < T ? load128(src + (size_t(b) * T + t) * size_t(width) + col0 + c * 8) : attn_zeros128();
        bf16* d = dst + ((row / 8) * CHUNKS + c) * 64 + row % 8;
        #pragma unroll
        for (int i = 0; i < 8; ++i) d[i * 8] = x[i];  // core-matrix row i: column 8c + i
    }
}

// s (64 x 64) = A (64 x D, this warp's 16 rows as fragments) X^T, X a tile in the rows layout.
template <int D>
__device__ inline void attn_wg_abt(float s[8][4], const uint32_t a[D / 16][4], const bf16* rows_tile) {
    wgmma_fence();
    #pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
        wgmma_m64n64k16_bf16(&s[0][0], a[kk], wgmma_desc(rows_tile + kk * 2 * 8 * 64, 1024, 128), kk > 0);
    wgmma_commit();
    wgmma_wait<0>();
}

// acc (64 x D) += X (64 x KEYS accumulators, rounded to bf16: they are A
// fragments already, see attn_mma_ab) Y, k-step kk of Y (rows 16kk..16kk+15)
// described by desc(kk), MN-major or not.
template <int D, bool B_MN_MAJOR, class Desc, int KEYS = 64>
__device__ inline void attn_wg_ab_desc(float acc[D / 8][4], const float x[KEYS / 8][4], Desc desc) {
    uint32_t xf[KEYS / 16][4];
    #pragma unroll
    for (int kk = 0; kk < KEYS / 16; ++kk) {
        xf[kk][0] = pack_bf16x2(x[2 * kk][0], x[2 * kk][1]);
        xf[kk][1] = pack_bf16x2(x[2 * kk][2], x[2 * kk][3]);
        xf[kk][2] = pack_bf16x2(x[2 * kk + 1][0], x[2 * kk + 1][1]);
        xf[kk][3] = pack_bf16x2(x[2 * kk + 1][2], x[2 * kk + 1][3]);
    }
    wgmma_fence();
    #pragma unroll
    for (int kk = 0; kk < KEYS / 16; ++kk) {
        if constexpr (D == 64) wgmma_m64n64k16_bf16<B_MN_MAJOR>(&acc[0][0], xf[kk], desc(kk), true);
        else wgmma_m64n128k16_bf16<B_MN_MAJOR>(&acc[0][0], xf[kk], desc(kk), true);
    }
    wgmma_commit();
    wgmma_wait<0>();
}

// The same with Y a tile in the columns layout.
template <int D>
__device__ inline void attn_wg_ab(float acc[D / 8][4], const float x[8][4], const bf16* cols_tile) {
    attn_wg_ab_desc<D, false>(acc, x, [cols_tile](int kk) {
        return wgmma_desc(cols_tile + kk * 2 * 8 * D, (D / 8) * 128, 128);
    });
}

template <int D>
constexpr size_t attn_wgmma_forward_smem() {  // two K tiles, one V tile (columns layout), Q (padded rows)
    return 3 * size_t(kAttnWgTile) * D * sizeof(bf16) + size_t(kAttnWgTile) * attn_mma_stride<D>() * sizeof(bf16);
}

template <int D>
__global__ void __launch_bounds__(128) attention_forward_wgmma_kernel(bf16* out, float* lse, const bf16* qkv, int T,
                                                                      int H, int KV, float scale_log2) {
    constexpr int TILE = kAttnWgTile * D;
    extern __shared__ __align__(128) bf16 attn_wg_smem[];
    bf16* k_s = attn_wg_smem;     // two K tiles, rows layout (descriptor operands first: 16-byte offsets)
    bf16* v_s = k_s + 2 * TILE;   // one V tile, columns layout
    bf16* q_s = v_s + TILE;       // Q, padded rows as in version 2

    const int q0 = (gridDim.x - 1 - blockIdx.x) * kAttnWgTile, h = blockIdx.y, b = blockIdx.z;
    const int g_kv = h / (H / KV), width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const int tiles = (min(q0 + kAttnWgTile, T) - 1) / kAttnWgTile + 1;

    attn_load_tile<kAttnWgTile, D>(q_s, qkv, b, q0, T, width, h * D);
    attn_load_rows_core<D>(k_s, qkv, b, 0, T, width, (H + g_kv) * D);
    cp_async_commit();
    attn_load_cols_core<D>(v_s, qkv, b, 0, T, width, (H + KV + g_kv) * D);

    uint32_t qf[D / 16][4];  // this warp's 16 query rows as A fragments
    float o[D / 8][4];
    #pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
        #pragma unroll
        for (int i = 0; i < 4; ++i) o[nb][i] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g and g + 8, base-2 units
    const int row0 = q0 + warp * 16 + g;

    for (int tile = 0; tile < tiles; ++tile) {
        const int k0 = tile * kAttnWgTile;
        if (tile + 1 < tiles) {  // start the next K tile, then wait for this one
            attn_load_rows_core<D>(k_s + ((tile + 1) & 1) * TILE, qkv, b, k0 + kAttnWgTile, T, width,
                                   (H + g_kv) * D);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        fence_proxy_async();  // this thread's K and V stores, seen by wgmma
        __syncthreads();
        if (tile == 0) attn_load_a<D>(qf, q_s, warp, lane);

        float s[8][4];
        attn_wg_abt<D>(s, qf, k_s + (tile & 1) * TILE);  // S = Q K^T
        attn_online_softmax<D, 8>(s, o, m, l, row0, k0, T, t4, tile == tiles - 1, scale_log2);
        attn_wg_ab<D>(o, s, v_s);  // O += P V
        __syncthreads();  // the K buffer and V are free again
        if (tile + 1 < tiles)
            attn_load_cols_core<D>(v_s, qkv, b, k0 + kAttnWgTile, T, width, (H + KV + g_kv) * D);
    }
    attn_store_rows<D>(out, lse, o, m, l, b, h, H, T, row0, t4);
}

template <int D>
constexpr size_t attn_wgmma_backward_smem() {  // up to 6 tiles in core layouts, 2 padded, + 2x2x64 floats
    return 6 * size_t(kAttnWgTile) * D * sizeof(bf16) + 2 * size_t(kAttnWgTile) * attn_mma_stride<D>() * sizeof(bf16) +
           4 * 64 * sizeof(float);
}

// dq: as version 2's kernel 2, with S = Q K^T and dP = dO V^T over K and V in
// the rows layout and dq += dS K over K in the columns layout.
template <int D>
__global__ void __launch_bounds__(128) attention_backward_dq_wgmma_kernel(bf16* dqkv, const float* delta,
                                                                          const bf16* dout, const bf16* qkv,
                                                                          const float* lse, int T, int H, int KV,
                                                                          float scale) {
    constexpr int TILE = kAttnWgTile * D, P = attn_mma_stride<D>();
    extern __shared__ __align__(128) bf16 attn_wg_smem[];
    bf16* k_s = attn_wg_smem;     // two K tiles, rows layout
    bf16* v_s = k_s + 2 * TILE;   // two V tiles, rows layout
    bf16* kc_s = v_s + 2 * TILE;  // one K tile, columns layout
    bf16* q_s = kc_s + TILE;      // Q and dO, padded rows
    bf16* do_s = q_s + kAttnWgTile * P;

    const int q0 = (gridDim.x - 1 - blockIdx.x) * kAttnWgTile, h = blockIdx.y, b = blockIdx.z;
    const int g_kv = h / (H / KV), width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const int tiles = (min(q0 + kAttnWgTile, T) - 1) / kAttnWgTile + 1;
    const float scale_log2 = scale * kLog2e;

    attn_load_tile<kAttnWgTile, D>(q_s, qkv, b, q0, T, width, h * D);
    attn_load_tile<kAttnWgTile, D>(do_s, dout, b, q0, T, H * D, h * D);
    attn_load_rows_core<D>(k_s, qkv, b, 0, T, width, (H + g_kv) * D);
    attn_load_rows_core<D>(v_s, qkv, b, 0, T, width, (H + KV + g_kv) * D);
    cp_async_commit();
    attn_load_cols_core<D>(kc_s, qkv, b, 0, T, width, (H + g_kv) * D);

    const int row0 = q0 + warp * 16 + g;
    float lse2[2], dlt[2];
    attn_row_stats(lse2, dlt, lse, delta, b, h, H, T, row0);
    uint32_t qf[D / 16][4], dof[D / 16][4];
    float dq[D / 8][4];
    #pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
        #pragma unroll
        for (int i = 0; i < 4; ++i) dq[nb][i] = 0.0f;

    for (int tile = 0; tile < tiles; ++tile) {
        const int buf = tile & 1, k0 = tile * kAttnWgTile;
        if (tile + 1 < tiles) {
            attn_load_rows_core<D>(k_s + (buf ^ 1) * TILE, qkv, b, k0 + kAttnWgTile, T, width, (H + g_kv) * D);
            attn_load_rows_core<D>(v_s + (buf ^ 1) * TILE, qkv, b, k0 + kAttnWgTile, T, width,
                                   (H + KV + g_kv) * D);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        fence_proxy_async();
        __syncthreads();
        if (tile == 0) {
            attn_load_a<D>(qf, q_s, warp, lane);
            attn_load_a<D>(dof, do_s, warp, lane);
        }
        float s[8][4], dp[8][4];
        attn_wg_abt<D>(s, qf, k_s + buf * TILE);    // S = Q K^T
        attn_wg_abt<D>(dp, dof, v_s + buf * TILE);  // dP = dO V^T
        // dS in place of S; the diagonal tile, the only one that can pass T, is masked.
        attn_dq_scores(s, dp, lse2, dlt, row0, k0, T, t4, tile == tiles - 1, scale_log2);
        attn_wg_ab<D>(dq, s, kc_s);  // dq += dS K
        __syncthreads();
        if (tile + 1 < tiles) attn_load_cols_core<D>(kc_s, qkv, b, k0 + kAttnWgTile, T, width, (H + g_kv) * D);
    }

    attn_store_dq<D>(dqkv, dq, b, h, T, width, row0, t4, scale);
}

// dk, dv: as version 2's kernel 3, with S^T = K Q^T and dP^T = V dO^T over Q
// and dO in the rows layout, dv += P^T dO and dk += dS^T Q over dO and Q in the
// columns layout; K and V rows are read as A fragments before each product.
template <int D>
__global__ void __launch_bounds__(128) attention_backward_dkv_wgmma_kernel(bf16* dqkv, const float* delta,
                                                                           const bf16* dout, const bf16* qkv,
                                                                           const float* lse, int T, int H, int KV,
                                                                           float scale) {
    constexpr int TILE = kAttnWgTile * D, P = attn_mma_stride<D>();
    extern __shared__ __align__(128) bf16 attn_wg_smem[];
    bf16* q_s = attn_wg_smem;     // two Q tiles, rows layout
    bf16* do_s = q_s + 2 * TILE;  // two dO tiles, rows layout
    bf16* qc_s = do_s + 2 * TILE; // one Q tile, columns layout
    bf16* k_s = qc_s + TILE;      // K and V, padded rows
    bf16* v_s = k_s + kAttnWgTile * P;
    bf16* doc_s = v_s + kAttnWgTile * P;  // one dO tile, columns layout (after the padded tiles: 16-byte offsets)
    float* lse_s = reinterpret_cast<float*>(doc_s + TILE);  // two buffers of 64, base 2
    float* delta_s = lse_s + 2 * 64;

    const int k0 = blockIdx.x * kAttnWgTile, g_kv = blockIdx.y, b = blockIdx.z;
    const int group = H / KV, width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const float scale_log2 = scale * kLog2e;
    const int per_head = (T - k0 + 63) / 64, tiles = per_head * group;

    auto query_tile = [&](int it, int& h, int& i0) {
        h = g_kv * group + it / per_head;
        i0 = k0 + it % per_head * 64;
    };
    auto load_rows = [&](int it, int buf) {  // Q and dO by cp.async, lse and Delta by plain loads
        int h, i0;
        query_tile(it, h, i0);
        attn_load_rows_core<D>(q_s + buf * TILE, qkv, b, i0, T, width, h * D);
        attn_load_rows_core<D>(do_s + buf * TILE, dout, b, i0, T, H * D, h * D);
        attn_load_query_stats(lse_s + buf * 64, delta_s + buf * 64, lse, delta, b, h, H, T, i0);
    };
    auto load_cols = [&](int it) {
        int h, i0;
        query_tile(it, h, i0);
        attn_load_cols_core<D>(qc_s, qkv, b, i0, T, width, h * D);
        attn_load_cols_core<D>(doc_s, dout, b, i0, T, H * D, h * D);
    };
    attn_load_tile<kAttnWgTile, D>(k_s, qkv, b, k0, T, width, (H + g_kv) * D);
    attn_load_tile<kAttnWgTile, D>(v_s, qkv, b, k0, T, width, (H + KV + g_kv) * D);
    load_rows(0, 0);
    cp_async_commit();
    load_cols(0);

    float dk[D / 8][4], dv[D / 8][4];
    #pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
        #pragma unroll
        for (int i = 0; i < 4; ++i) dk[nb][i] = dv[nb][i] = 0.0f;
    const int key0 = k0 + warp * 16 + g;

    for (int it = 0; it < tiles; ++it) {
        const int buf = it & 1, i0 = k0 + it % per_head * 64;
        if (it + 1 < tiles) {
            load_rows(it + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        fence_proxy_async();
        __syncthreads();
        float s[8][4], dp[8][4];
        {
            uint32_t af[D / 16][4];
            attn_load_a<D>(af, k_s, warp, lane);
            attn_wg_abt<D>(s, af, q_s + buf * TILE);  // S^T = K Q^T
            attn_load_a<D>(af, v_s, warp, lane);
            attn_wg_abt<D>(dp, af, do_s + buf * TILE);  // dP^T = V dO^T
        }
        const bool masked = i0 == k0 || i0 + 64 > T;
        // P^T and dS^T in place of S^T and dP^T.
        attn_dkv_scores(s, dp, lse_s + buf * 64, delta_s + buf * 64, key0, i0, T, t4, masked, scale_log2);
        attn_wg_ab<D>(dv, s, doc_s);  // dv += P^T dO
        attn_wg_ab<D>(dk, dp, qc_s);  // dk += dS^T Q
        __syncthreads();
        if (it + 1 < tiles) load_cols(it + 1);
    }

    attn_store_dkv<D>(dqkv, dk, dv, b, g_kv, H, KV, T, width, key0, t4, scale);
}

// ===========================================================================
// Version 4: Hopper, TMA and warp specialisation (sm_90a), forward and backward
// ===========================================================================
// Each block has three roles:
//   the producer warpgroup (warps 8-11), which gives its registers to the
//     consumers (setmaxnreg) and of which one warp works (warp 8): one
//     thread issues every tile copy by TMA, from
//     tensor maps of the qkv and dout buffers (3-D: columns, tokens, batch;
//     boxes of 64 rows x 64 columns, 128 bytes a row), so rows past T come in
//     as zeros and every box is in the 128-byte swizzled layout that wgmma
//     reads;
//   two consumer warpgroups (warps 0-3 and 4-7), each owning 64 rows (of
//     queries, or of keys for dk/dv) as one version 3 block does, with the
//     products by wgmma.
// The tiles the block needs throughout (its own rows) arrive once, announced
// on the `once` mbarrier. The streamed tiles go round a ring of
// kAttnTmaStages slots, each with two mbarriers: `full` (the producer
// announces the slot's bytes, TMA delivers them) and `empty` (the 256
// consumer threads arrive when their products are done with the slot; a
// forward fill holds 128 keys, a backward fill 64 rows). Fill j
// of the ring uses slot j % S: the consumers wait for phase j / S of its full
// barrier, the producer for phase j / S - 1 of its empty one. With two slots,
// the next tile is in flight while the warpgroups compute on this one, and the
// two warpgroups overlap each other's softmax and products. Both warpgroups
// take every fill (waiting and arriving keep the phases in step) and compute
// only on those their rows can see.
// The swizzled tiles serve both kinds of product without a transposed copy:
//   A X^T (S = Q K^T, dP = dO V^T, S^T = K Q^T, dP^T = V dO^T): X as a K-major
//     B (k = head dim): k-step kk starts kk * 32 bytes into the 128-byte rows
//     of 64-column block kk / 4 (a tile is D/64 such blocks, each its rows
//     of 128 bytes one under the other);
//   A Y (O += P V, dq += dS K, dv += P^T dO, dk += dS^T Q): Y as an MN-major B
//     (n = head dim): k-step kk starts 16 rows further, the second 64 columns
//     (D = 128) one block further (lbo).
// A operands from the tiles are read into fragments by ldmatrix on the
// swizzled rows (Q, dO), or by wgmma from shared memory (K and V in dk/dv's
// S^T and dP^T). Masks, softmax, scores and stores are version 2's.
constexpr int kAttnTmaConsumers = 2;                           // consumer warpgroups
static_assert(kAttnTmaConsumers == 2, "the producers' lists of tiles below name two consumer warpgroups");
constexpr int kAttnTmaRows = kAttnTmaConsumers * kAttnWgTile;  // rows per block
constexpr int kAttnTmaStages = 2;                              // slots of the ring
constexpr int kAttnTmaThreads = (kAttnTmaConsumers + 1) * 128;  // + the producer warpgroup
// Registers per thread: 168 at launch (65536 / 384); the producers drop to
// 24, the consumers rise to 240 (2 x 128 x 240 + 128 x 24 <= 65536).
constexpr int kAttnTmaProducerRegs = 24, kAttnTmaConsumerRegs = 240;
constexpr int kAttnTmaBox = 64;                                // columns (128 bytes) and rows of a box
constexpr int kAttnTmaKeys = 128;                              // keys per tile of the forward's ring

// Dynamic shared memory of a version 4 kernel: ONCE tiles, then the ring's
// slots of SLOT tiles and EXTRA bytes each, then the barriers; tiles are
// 64 rows x D (D/64 boxes of 8 KiB) and 1024-byte aligned.
template <int D, int ONCE, int SLOT, size_t EXTRA = 0, int SLOT_ROWS = kAttnWgTile>
struct AttnTmaSmem {
    static constexpr size_t tile = size_t(kAttnWgTile) * D * sizeof(bf16);
    static constexpr size_t slot_tile_bytes = size_t(SLOT_ROWS) * D * sizeof(bf16);
    static constexpr size_t slot = SLOT * slot_tile_bytes + (EXTRA + 1023) / 1024 * 1024;
    static constexpr size_t ring = ONCE * tile;
    static constexpr size_t bars = ring + kAttnTmaStages * slot;
    static constexpr size_t bytes = bars + (2 * kAttnTmaStages + 1) * sizeof(uint64_t);
    __device__ static bf16* once_tile(unsigned char* smem, int i) { return reinterpret_cast<bf16*>(smem + i * tile); }
    __device__ static bf16* slot_tile(unsigned char* smem, int s, int i) {
        return reinterpret_cast<bf16*>(smem + ring + s * slot + i * slot_tile_bytes);
    }
    __device__ static float* slot_extra(unsigned char* smem, int s) {
        return reinterpret_cast<float*>(smem + ring + s * slot + SLOT * slot_tile_bytes);
    }
};

// The barriers: full[kAttnTmaStages], empty[kAttnTmaStages], once. A fill of
// the ring takes `fill_arrivals` arrivals (the producer thread's, with the
// bytes, and any plain stores' by other producer lanes).
struct AttnRing {
    uint64_t* full;
    uint64_t* empty;
    uint64_t* once;
};
__device__ inline AttnRing attn_ring_init(unsigned char* bars, unsigned fill_arrivals) {
    AttnRing r;
    r.full = reinterpret_cast<uint64_t*>(bars);
    r.empty = r.full + kAttnTmaStages;
    r.once = r.empty + kAttnTmaStages;
    if (threadIdx.x == 0) {
        for (int s = 0; s < kAttnTmaStages; ++s) {
            mbarrier_init(&r.full[s], fill_arrivals);
            mbarrier_init(&r.empty[s], kAttnTmaConsumers * 128);
        }
        mbarrier_init(r.once, 1);
        mbarrier_init_fence();
    }
    __syncthreads();
    return r;
}
// Fill j: the producer waits until the consumers released the slot's last use,
// the consumers until the slot is full. (A bounded wait that gives up names the
// caller of these.)
__device__ inline int attn_ring_claim(const AttnRing& r, int j, const char* caller = __builtin_FUNCTION(),
                                      int line = __builtin_LINE()) {
    const int s = j % kAttnTmaStages;
    mbarrier_wait_parity(&r.empty[s], ((j / kAttnTmaStages) & 1) ^ 1, caller, line);
    return s;
}
__device__ inline int attn_ring_take(const AttnRing& r, int j, const char* caller = __builtin_FUNCTION(),
                                     int line = __builtin_LINE()) {
    const int s = j % kAttnTmaStages;
    mbarrier_wait_parity(&r.full[s], (j / kAttnTmaStages) & 1, caller, line);
    return s;
}

// Rows [t0, t0 + ROWS) of batch b, columns [col0, col0 + D), counted against
// `bar`: D/64 column blocks of ROWS x 64 (128-byte rows, swizzled), each made
// of ROWS/64 boxes of 64 x 64 one under the other.
template <int D, int ROWS = kAttnWgTile>
__device__ inline void attn_tma_tile(bf16* dst, const CUtensorMap* map, int col0, int t0, int b, uint64_t* bar) {
    #pragma unroll
    for (int c = 0; c < D / kAttnTmaBox; ++c)
        #pragma unroll
        for (int r = 0; r < ROWS / kAttnTmaBox; ++r)
            tma_load_3d(dst + (c * ROWS + r * kAttnTmaBox) * kAttnTmaBox, map, col0 + c * kAttnTmaBox,
                        t0 + r * kAttnTmaBox, b, bar);
}

// The tiles a block needs throughout: tile i is rows row0 + 64 (i % 2) of
// maps[i], columns cols[i].
// The producer of the forward and dq kernels: those tiles (rows from q0), then
// the K and V tiles of KEYS keys each (keys 0, KEYS, ...) into the ring (slot
// tiles 0 and 1).
template <int D, int ONCE, class Smem>
__device__ inline void attn_produce_once(unsigned char* smem, const AttnRing& r, const CUtensorMap* const maps[ONCE],
                                         const int cols[ONCE], int row0, int b) {
    mbarrier_arrive_expect_tx(r.once, unsigned(ONCE * Smem::tile));
    for (int i = 0; i < ONCE; ++i)
        attn_tma_tile<D>(Smem::once_tile(smem, i), maps[i], cols[i], row0 + (i % kAttnTmaConsumers) * kAttnWgTile, b,
                         r.once);
}

template <int D, int ONCE, class Smem, int KEYS = kAttnWgTile>
__device__ inline void attn_produce_kv(unsigned char* smem, const AttnRing& r, const CUtensorMap* const once_maps[ONCE],
                                       const int once_cols[ONCE], int q0, const CUtensorMap* qkv_map, int col_k,
                                       int col_v, int tiles, int b) {
    attn_produce_once<D, ONCE, Smem>(smem, r, once_maps, once_cols, q0, b);
    for (int j = 0; j < tiles; ++j) {
        const int s = attn_ring_claim(r, j);
        mbarrier_arrive_expect_tx(&r.full[s], unsigned(2 * Smem::slot_tile_bytes));
        attn_tma_tile<D, KEYS>(Smem::slot_tile(smem, s, 0), qkv_map, col_k, j * KEYS, b, &r.full[s]);
        attn_tma_tile<D, KEYS>(Smem::slot_tile(smem, s, 1), qkv_map, col_v, j * KEYS, b, &r.full[s]);
    }
}

// The warp's 16 rows of a swizzled tile as A fragments (attn_load_a's
// matrices): element (r, c) lies in box c / 64, row r, 16-byte chunk
// ((c % 64) / 8) ^ (r % 8).
template <int D>
__device__ inline void attn_load_a_sw128(uint32_t frag[D / 16][4], const bf16* tile, int warp, int lane) {
    const int r = warp * 16 + lane % 8 + 8 * ((lane / 8) & 1);
    #pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        const int c = kk * 16 + 8 * (lane / 16);
        ldmatrix_x4(frag[kk], tile + (c / kAttnTmaBox) * kAttnWgTile * kAttnTmaBox + r * kAttnTmaBox +
                                  (((c % kAttnTmaBox) / 8) ^ (r % 8)) * 8);
    }
}

// The descriptor of k-step kk (16 columns) of a swizzled tile of ROWS rows, K-major.
template <int ROWS = kAttnWgTile>
__device__ inline uint64_t attn_sw128_k_desc(const bf16* tile, int kk) {
    return wgmma_desc_sw128(tile + (kk / 4) * ROWS * kAttnTmaBox + (kk % 4) * 16, 16, 1024);
}

// s (64 x KEYS) = A (64 x D fragments) X^T, X a swizzled tile of KEYS rows (K-major B).
template <int D, int KEYS = kAttnWgTile>
__device__ inline void attn_wg_abt_sw128(float s[KEYS / 8][4], const uint32_t a[D / 16][4], const bf16* tile) {
    wgmma_fence();
    #pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        if constexpr (KEYS == 64) wgmma_m64n64k16_bf16(&s[0][0], a[kk], attn_sw128_k_desc<KEYS>(tile, kk), kk > 0);
        else wgmma_m64n128k16_bf16(&s[0][0], a[kk], attn_sw128_k_desc<KEYS>(tile, kk), kk > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
}

// The same product with A a swizzled tile too (the warpgroup's 64 rows), read
// by wgmma from shared memory: no A registers.
template <int D>
__device__ inline void attn_wg_abt_sw128_ss(float s[8][4], const bf16* a_tile, const bf16* tile) {
    wgmma_fence();
    #pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
        wgmma_m64n64k16_bf16_ss(&s[0][0], attn_sw128_k_desc(a_tile, kk), attn_sw128_k_desc(tile, kk), kk > 0);
    wgmma_commit();
    wgmma_wait<0>();
}

// acc (64 x D) += X (64 x KEYS accumulators, rounded to bf16) Y, Y a swizzled
// tile of KEYS rows (MN-major B; lbo: the next 64-column block).
template <int D, int KEYS = kAttnWgTile>
__device__ inline void attn_wg_ab_sw128(float acc[D / 8][4], const float x[KEYS / 8][4], const bf16* tile) {
    const auto desc = [tile](int kk) {
        constexpr uint32_t block_bytes = KEYS * kAttnTmaBox * sizeof(bf16);
        return wgmma_desc_sw128(tile + kk * 16 * kAttnTmaBox, block_bytes, 1024);
    };
    attn_wg_ab_desc<D, true, decltype(desc), KEYS>(acc, x, desc);
}

template <int D>
__device__ inline void attn_zero(float acc[D / 8][4]) {
    #pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
        #pragma unroll
        for (int i = 0; i < 4; ++i) acc[nb][i] = 0.0f;
}

// Forward: Q of the block's 128 rows once; fill j of the ring holds K and V of
// keys 128j..128j+127, so S = Q K^T is m64n128 and O += P V takes 8 k-steps.
template <int D>
using AttnTmaForwardSmem = AttnTmaSmem<D, kAttnTmaConsumers, 2, 0, kAttnTmaKeys>;

template <int D>
__global__ void __launch_bounds__(kAttnTmaThreads, 1)
    attention_forward_tma_kernel(const __grid_constant__ CUtensorMap qkv_map, bf16* out, float* lse, int T, int H,
                                 int KV, float scale_log2) {
    using L = AttnTmaForwardSmem<D>;
    extern __shared__ __align__(1024) unsigned char attn_tma_smem[];
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kAttnTmaRows, h = blockIdx.y, b = blockIdx.z;
    const int g_kv = h / (H / KV);
    const int tiles = (min(q0 + kAttnTmaRows, T) - 1) / kAttnTmaKeys + 1;  // key tiles of the block
    const int wg = threadIdx.x / 128;                                     // kAttnTmaConsumers: the producer
    const AttnRing ring = attn_ring_init(attn_tma_smem + L::bars, 1);

    if (wg == kAttnTmaConsumers) {
        setmaxnreg_dec<kAttnTmaProducerRegs>();
        if (threadIdx.x == kAttnTmaConsumers * 128) {
            const CUtensorMap* maps[kAttnTmaConsumers] = {&qkv_map, &qkv_map};
            const int cols[kAttnTmaConsumers] = {h * D, h * D};
            attn_produce_kv<D, kAttnTmaConsumers, L, kAttnTmaKeys>(attn_tma_smem, ring, maps, cols, q0, &qkv_map,
                                                                   (H + g_kv) * D, (H + KV + g_kv) * D, tiles, b);
        }
        return;
    }

    setmaxnreg_inc<kAttnTmaConsumerRegs>();
    const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const int r0 = q0 + wg * kAttnWgTile;  // this warpgroup's first row
    // Key tiles it sees; only its last can reach past its rows or past T.
    const int my_tiles = r0 < T ? (min(r0 + kAttnWgTile, T) - 1) / kAttnTmaKeys + 1 : 0;
    const int row0 = r0 + warp * 16 + g;
    uint32_t qf[D / 16][4];
    float o[D / 8][4];
    attn_zero<D>(o);
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g and g + 8, base-2 units

    mbarrier_wait_parity(ring.once, 0);
    attn_load_a_sw128<D>(qf, L::once_tile(attn_tma_smem, wg), warp, lane);
    for (int j = 0; j < tiles; ++j) {
        const int s = attn_ring_take(ring, j);
        if (j < my_tiles) {  // warpgroup-uniform
            constexpr int N = kAttnTmaKeys;
            float sc[N / 8][4];
            attn_wg_abt_sw128<D, N>(sc, qf, L::slot_tile(attn_tma_smem, s, 0));  // S = Q K^T
            attn_online_softmax<D, N / 8>(sc, o, m, l, row0, j * N, T, t4, j == my_tiles - 1, scale_log2);
            attn_wg_ab_sw128<D, N>(o, sc, L::slot_tile(attn_tma_smem, s, 1));  // O += P V
        }
        mbarrier_arrive(&ring.empty[s]);
    }
    if (my_tiles > 0) attn_store_rows<D>(out, lse, o, m, l, b, h, H, T, row0, t4);
}

// Backward, dq: Q and dO of the block's 128 rows once (tiles 0-1 and 2-3); the
// ring as in the forward.
template <int D>
using AttnTmaDqSmem = AttnTmaSmem<D, 2 * kAttnTmaConsumers, 2>;

template <int D>
__global__ void __launch_bounds__(kAttnTmaThreads, 1)
    attention_backward_dq_tma_kernel(const __grid_constant__ CUtensorMap qkv_map,
                                     const __grid_constant__ CUtensorMap dout_map, bf16* dqkv, const float* delta,
                                     const float* lse, int T, int H, int KV, float scale) {
    using L = AttnTmaDqSmem<D>;
    extern __shared__ __align__(1024) unsigned char attn_tma_smem[];
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kAttnTmaRows, h = blockIdx.y, b = blockIdx.z;
    const int g_kv = h / (H / KV), width = (H + 2 * KV) * D;
    const int tiles = (min(q0 + kAttnTmaRows, T) - 1) / kAttnWgTile + 1;
    const int wg = threadIdx.x / 128;
    const AttnRing ring = attn_ring_init(attn_tma_smem + L::bars, 1);

    if (wg == kAttnTmaConsumers) {
        setmaxnreg_dec<kAttnTmaProducerRegs>();
        if (threadIdx.x == kAttnTmaConsumers * 128) {
            const CUtensorMap* maps[2 * kAttnTmaConsumers] = {&qkv_map, &qkv_map, &dout_map, &dout_map};
            const int cols[2 * kAttnTmaConsumers] = {h * D, h * D, h * D, h * D};
            attn_produce_kv<D, 2 * kAttnTmaConsumers, L>(attn_tma_smem, ring, maps, cols, q0, &qkv_map,
                                                         (H + g_kv) * D, (H + KV + g_kv) * D, tiles, b);
        }
        return;
    }

    setmaxnreg_inc<kAttnTmaConsumerRegs>();
    const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const int r0 = q0 + wg * kAttnWgTile;
    const int my_tiles = r0 < T ? (min(r0 + kAttnWgTile, T) - 1) / kAttnWgTile + 1 : 0;
    const int row0 = r0 + warp * 16 + g;
    const float scale_log2 = scale * kLog2e;
    float lse2[2], dlt[2];
    attn_row_stats(lse2, dlt, lse, delta, b, h, H, T, row0);
    uint32_t qf[D / 16][4], dof[D / 16][4];
    float dq[D / 8][4];
    attn_zero<D>(dq);

    mbarrier_wait_parity(ring.once, 0);
    attn_load_a_sw128<D>(qf, L::once_tile(attn_tma_smem, wg), warp, lane);
    attn_load_a_sw128<D>(dof, L::once_tile(attn_tma_smem, kAttnTmaConsumers + wg), warp, lane);
    for (int j = 0; j < tiles; ++j) {
        const int s = attn_ring_take(ring, j);
        if (j < my_tiles) {
            const bf16* k_t = L::slot_tile(attn_tma_smem, s, 0);
            float sc[8][4], dp[8][4];
            attn_wg_abt_sw128<D>(sc, qf, k_t);                                 // S = Q K^T
            attn_wg_abt_sw128<D>(dp, dof, L::slot_tile(attn_tma_smem, s, 1));  // dP = dO V^T
            attn_dq_scores(sc, dp, lse2, dlt, row0, j * kAttnWgTile, T, t4, j == my_tiles - 1, scale_log2);
            attn_wg_ab_sw128<D>(dq, sc, k_t);  // dq += dS K
        }
        mbarrier_arrive(&ring.empty[s]);
    }
    if (my_tiles > 0) attn_store_dq<D>(dqkv, dq, b, h, T, width, row0, t4, scale);
}

// Backward, dk and dv: K and V of the block's 128 keys once (tiles 0-1 and
// 2-3); fill j of the ring holds Q and dO of one 64-row query tile (every
// query head of the group in turn, from the block's first key on), and that
// tile's lse (base 2) and Delta, which the other 31 lanes of the producer warp
// store (0 past T) and announce by their own arrivals on the full barrier.
template <int D>
using AttnTmaDkvSmem = AttnTmaSmem<D, 2 * kAttnTmaConsumers, 2, 2 * kAttnWgTile * sizeof(float)>;

template <int D>
__global__ void __launch_bounds__(kAttnTmaThreads, 1)
    attention_backward_dkv_tma_kernel(const __grid_constant__ CUtensorMap qkv_map,
                                      const __grid_constant__ CUtensorMap dout_map, bf16* dqkv, const float* delta,
                                      const float* lse, int T, int H, int KV, float scale) {
    using L = AttnTmaDkvSmem<D>;
    extern __shared__ __align__(1024) unsigned char attn_tma_smem[];
    const int k0 = blockIdx.x * kAttnTmaRows, g_kv = blockIdx.y, b = blockIdx.z;
    const int group = H / KV, width = (H + 2 * KV) * D;
    const int per_head = (T - k0 + kAttnWgTile - 1) / kAttnWgTile, tiles = per_head * group;
    const int wg = threadIdx.x / 128;
    const AttnRing ring = attn_ring_init(attn_tma_smem + L::bars, 32);

    if (wg == kAttnTmaConsumers) {
        setmaxnreg_dec<kAttnTmaProducerRegs>();
        if (threadIdx.x >= kAttnTmaConsumers * 128 + 32) return;  // one producer warp is enough
        const int lane = threadIdx.x % 32;
        if (lane == 0) {
            const CUtensorMap* maps[2 * kAttnTmaConsumers] = {&qkv_map, &qkv_map, &qkv_map, &qkv_map};
            const int k_col = (H + g_kv) * D, v_col = (H + KV + g_kv) * D;
            const int cols[2 * kAttnTmaConsumers] = {k_col, k_col, v_col, v_col};
            attn_produce_once<D, 2 * kAttnTmaConsumers, L>(attn_tma_smem, ring, maps, cols, k0, b);
        }
        for (int j = 0; j < tiles; ++j) {
            const int s = attn_ring_claim(ring, j);
            const int h = g_kv * group + j / per_head, i0 = k0 + j % per_head * kAttnWgTile;
            float* stats = L::slot_extra(attn_tma_smem, s);  // lse (base 2), then Delta
            for (int c = lane; c < kAttnWgTile; c += 32) {
                const int t = i0 + c;
                const size_t at = (size_t(b) * H + h) * T + t;
                stats[c] = t < T ? lse[at] * kLog2e : 0.0f;
                stats[kAttnWgTile + c] = t < T ? delta[at] : 0.0f;
            }
            // Each lane's arrival comes after its stores (an arrival releases them).
            if (lane == 0) {
                mbarrier_arrive_expect_tx(&ring.full[s], unsigned(2 * L::tile));
                attn_tma_tile<D>(L::slot_tile(attn_tma_smem, s, 0), &qkv_map, h * D, i0, b, &ring.full[s]);
                attn_tma_tile<D>(L::slot_tile(attn_tma_smem, s, 1), &dout_map, h * D, i0, b, &ring.full[s]);
            } else {
                mbarrier_arrive(&ring.full[s]);
            }
        }
        return;
    }

    setmaxnreg_inc<kAttnTmaConsumerRegs>();
    const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const int kw0 = k0 + wg * kAttnWgTile;  // this warpgroup's first key
    const int key0 = kw0 + warp * 16 + g;
    const float scale_log2 = scale * kLog2e;
    float dk[D / 8][4], dv[D / 8][4];
    attn_zero<D>(dk);
    attn_zero<D>(dv);

    mbarrier_wait_parity(ring.once, 0);
    const bf16* k_t = L::once_tile(attn_tma_smem, wg);
    const bf16* v_t = L::once_tile(attn_tma_smem, kAttnTmaConsumers + wg);
    for (int j = 0; j < tiles; ++j) {
        const int s = attn_ring_take(ring, j);
        const int i0 = k0 + j % per_head * kAttnWgTile;
        if (kw0 < T && i0 >= kw0) {  // queries before the warpgroup's keys see none of them
            const bf16* q_t = L::slot_tile(attn_tma_smem, s, 0);
            const bf16* do_t = L::slot_tile(attn_tma_smem, s, 1);
            const float* stats = L::slot_extra(attn_tma_smem, s);
            float sc[8][4], dp[8][4];
            attn_wg_abt_sw128_ss<D>(sc, k_t, q_t);   // S^T = K Q^T
            attn_wg_abt_sw128_ss<D>(dp, v_t, do_t);  // dP^T = V dO^T
            const bool masked = i0 == kw0 || i0 + kAttnWgTile > T;
            attn_dkv_scores(sc, dp, stats, stats + kAttnWgTile, key0, i0, T, t4, masked, scale_log2);
            attn_wg_ab_sw128<D>(dv, sc, do_t);  // dv += P^T dO
            attn_wg_ab_sw128<D>(dk, dp, q_t);   // dk += dS^T Q
        }
        mbarrier_arrive(&ring.empty[s]);
    }
    if (kw0 < T) attn_store_dkv<D>(dqkv, dk, dv, b, g_kv, H, KV, T, width, key0, t4, scale);
}

// Whether the current GPU can run version 3 (wgmma: sm_90); `arch` gets its sm_XY number.
inline bool attn_wgmma_supported(int& arch) {
    int device = 0, major = 0, minor = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    arch = major * 10 + minor;
    return arch == 90;
}

// On any other GPU the version 3 launchers stop with a message.
inline void attn_require_sm90(const char* who) {
    int arch = 0;
    if (!attn_wgmma_supported(arch)) {
        std::fprintf(stderr, "%s: needs an sm_90 GPU (H100, H200), this one is sm_%d\n", who, arch);
        std::exit(EXIT_FAILURE);
    }
}

// Version 3 forward (Hopper wgmma, sm_90a), same arguments and results as versions 1 and 2.
inline void attention_forward_wgmma(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                                    cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    attn_require_sm90("attention_forward_wgmma");
    const dim3 grid(ceil_div(T, kAttnWgTile), H, B);
    const float scale_log2 = kLog2e / std::sqrt(float(D));
    if (D == 64) {
        constexpr size_t smem = attn_wgmma_forward_smem<64>();
        CUDA_CHECK(cudaFuncSetAttribute(attention_forward_wgmma_kernel<64>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        attention_forward_wgmma_kernel<64><<<grid, 128, smem, stream>>>(out, lse, qkv, T, H, KV, scale_log2);
    } else {
        constexpr size_t smem = attn_wgmma_forward_smem<128>();
        CUDA_CHECK(cudaFuncSetAttribute(attention_forward_wgmma_kernel<128>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        attention_forward_wgmma_kernel<128><<<grid, 128, smem, stream>>>(out, lse, qkv, T, H, KV, scale_log2);
    }
    CUDA_CHECK_LAUNCH("attention_forward_wgmma_kernel");
}

// A tensor map of a row-major bf16 buffer of B x T rows of `width` columns
// (3-D: columns, tokens, batch), in boxes of 64 x 64 with the 128-byte swizzle.
inline CUtensorMap attn_tensor_map(const bf16* buf, int B, int T, int width, const char* who) {
    CUtensorMap map;
    const uint64_t dims[3] = {uint64_t(width), uint64_t(T), uint64_t(B)};
    const uint64_t strides[2] = {uint64_t(width) * sizeof(bf16), uint64_t(T) * width * sizeof(bf16)};
    const uint32_t box[3] = {kAttnTmaBox, kAttnTmaBox, 1};
    const CUresult r =
        tma_encode_bf16_3d(&map, buf, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B);
    if (r == CUDA_ERROR_NOT_SUPPORTED) {
        std::fprintf(stderr, "%s: the driver has no cuTensorMapEncodeTiled (CUDA 12 or later needed)\n", who);
        std::exit(EXIT_FAILURE);
    }
    if (r != CUDA_SUCCESS) {
        std::fprintf(stderr, "%s: cuTensorMapEncodeTiled failed (error %d) for a buffer of %d x %d rows of %d columns\n",
                     who, int(r), B, T, width);
        std::exit(EXIT_FAILURE);
    }
    return map;
}

// Version 4 forward (Hopper TMA + warp specialisation, sm_90a), same arguments and results as versions 1-3.
template <int D>
inline void attention_forward_tma_launch(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV,
                                         cudaStream_t stream) {
    const CUtensorMap map = attn_tensor_map(qkv, B, T, (H + 2 * KV) * D, "attention_forward_tma");
    constexpr size_t smem = AttnTmaForwardSmem<D>::bytes;
    CUDA_CHECK(cudaFuncSetAttribute(attention_forward_tma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(smem)));
    attention_forward_tma_kernel<D><<<dim3(ceil_div(T, kAttnTmaRows), H, B), kAttnTmaThreads, smem, stream>>>(
        map, out, lse, T, H, KV, kLog2e / std::sqrt(float(D)));
    CUDA_CHECK_LAUNCH("attention_forward_tma_kernel");
}
inline void attention_forward_tma(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                                  cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    attn_require_sm90("attention_forward_tma");
    if (D == 64) attention_forward_tma_launch<64>(out, lse, qkv, B, T, H, KV, stream);
    else attention_forward_tma_launch<128>(out, lse, qkv, B, T, H, KV, stream);
}

template <int D>
inline void attention_backward_tma_launch(bf16* dqkv, const float* delta, const bf16* dout, const bf16* qkv,
                                          const float* lse, int B, int T, int H, int KV, cudaStream_t stream) {
    const CUtensorMap qkv_map = attn_tensor_map(qkv, B, T, (H + 2 * KV) * D, "attention_backward_tma");
    const CUtensorMap dout_map = attn_tensor_map(dout, B, T, H * D, "attention_backward_tma");
    const float scale = 1.0f / std::sqrt(float(D));
    constexpr size_t dq_smem = AttnTmaDqSmem<D>::bytes, dkv_smem = AttnTmaDkvSmem<D>::bytes;
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dq_tma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(dq_smem)));
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dkv_tma_kernel<D>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, int(dkv_smem)));
    attention_backward_dq_tma_kernel<D><<<dim3(ceil_div(T, kAttnTmaRows), H, B), kAttnTmaThreads, dq_smem, stream>>>(
        qkv_map, dout_map, dqkv, delta, lse, T, H, KV, scale);
    CUDA_CHECK_LAUNCH("attention_backward_dq_tma_kernel");
    attention_backward_dkv_tma_kernel<D><<<dim3(ceil_div(T, kAttnTmaRows), KV, B), kAttnTmaThreads, dkv_smem, stream>>>(
        qkv_map, dout_map, dqkv, delta, lse, T, H, KV, scale);
    CUDA_CHECK_LAUNCH("attention_backward_dkv_tma_kernel");
}

template <int D>
inline void attention_backward_wgmma_launch(bf16* dqkv, const float* delta, const bf16* dout, const bf16* qkv,
                                            const float* lse, int B, int T, int H, int KV, cudaStream_t stream) {
    constexpr size_t smem = attn_wgmma_backward_smem<D>();
    const float scale = 1.0f / std::sqrt(float(D));
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dq_wgmma_kernel<D>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dkv_wgmma_kernel<D>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    attention_backward_dq_wgmma_kernel<D>
        <<<dim3(ceil_div(T, 64), H, B), 128, smem, stream>>>(dqkv, delta, dout, qkv, lse, T, H, KV, scale);
    CUDA_CHECK_LAUNCH("attention_backward_dq_wgmma_kernel");
    attention_backward_dkv_wgmma_kernel<D>
        <<<dim3(ceil_div(T, 64), KV, B), 128, smem, stream>>>(dqkv, delta, dout, qkv, lse, T, H, KV, scale);
    CUDA_CHECK_LAUNCH("attention_backward_dkv_wgmma_kernel");
}

// ---------------------------------------------------------------------------
// Backward with tensor cores, in three kernels:
//   1. Delta_i = dO_i . o_i for every row (one warp per row), into scratch.
//   2. dq: a block per 64 query rows of one (batch, head), warp w owning rows
//      16w..16w+15 (Q and dO rows kept as A fragments in registers). K/V tiles
//      of 64 keys stream through shared memory (cp.async, double buffered):
//        S = Q K^T,  dP = dO V^T,  P = 2^(S scale log2(e) - lse log2(e)),
//        dS = P (dP - Delta),  dq += dS K.
//   3. dk, dv: a block per 64 keys of one (batch, KV head), warp w owning keys
//      16w..16w+15 (K and V read as A fragments from shared memory, where they
//      stay, leaving the registers to dk and dv). Query tiles of 64 rows of
//      every query head of the group stream through shared memory, from the
//      diagonal tile on, with their lse and Delta:
//        S^T = K Q^T,  dP^T = V dO^T,  P^T and dS^T as above (per column),
//        dv += P^T dO,  dk += dS^T Q.
// Each warp owns its outputs, so there are no atomics and the result is
// deterministic; S and dP are computed twice (in kernels 2 and 3), 7 matrix
// products per tile pair instead of 5, the price of doing without them.
__global__ void attention_backward_delta_kernel(float* delta, const bf16* dout, const bf16* out, int B, int T, int H,
                                                int D) {
    const size_t row = size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;  // (b, t, h) in out's order
    const int lane = threadIdx.x % 32;
    if (row >= size_t(B) * T * H) return;
    const bf16* o = out + row * D;
    const bf16* dy = dout + row * D;
    float part = 0.0f;
    for (int d = lane * 8; d < D; d += 32 * 8) {
        const Packed128<bf16> a = load128(o + d), c = load128(dy + d);
        #pragma unroll
        for (int k = 0; k < Packed128<bf16>::size; ++k) part += __bfloat162float(a[k]) * __bfloat162float(c[k]);
    }
    part = warp_sum(part);
    const int h = int(row % H), t = int(row / H % T), b = int(row / H / T);
    if (lane == 0) delta[(size_t(b) * H + h) * T + t] = part;
}

// Kernel 1 of every tensor-core backward: Delta into the scratch.
inline void attention_backward_delta(float* delta, const bf16* dout, const bf16* out, int B, int T, int H, int D,
                                     cudaStream_t stream) {
    const long long rows = (long long)B * T * H;
    attention_backward_delta_kernel<<<ceil_div(rows, 4), 128, 0, stream>>>(delta, dout, out, B, T, H, D);
    CUDA_CHECK_LAUNCH("attention_backward_delta_kernel");
}

template <int D>
constexpr size_t attn_mma_backward_smem() {  // two single tiles and two double-buffered ones, + 2x2x64 floats
    return size_t(6 * 64) * attn_mma_stride<D>() * sizeof(bf16) + 4 * 64 * sizeof(float);
}

template <int D>
__global__ void __launch_bounds__(128) attention_backward_dq_mma_kernel(bf16* dqkv, const float* delta,
                                                                        const bf16* dout, const bf16* qkv,
                                                                        const float* lse, int T, int H, int KV,
                                                                        float scale) {
    constexpr int P = attn_mma_stride<D>(), TILE = 64 * P;
    extern __shared__ bf16 attn_smem[];
    bf16* q_s = attn_smem;
    bf16* do_s = q_s + TILE;
    bf16* k_s = do_s + TILE;     // two buffers
    bf16* v_s = k_s + 2 * TILE;  // two buffers

    const int q0 = (gridDim.x - 1 - blockIdx.x) * 64, h = blockIdx.y, b = blockIdx.z;
    const int g_kv = h / (H / KV), width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const int tiles = (min(q0 + 64, T) - 1) / 64 + 1;
    const float scale_log2 = scale * kLog2e;

    attn_load_tile<64, D>(q_s, qkv, b, q0, T, width, h * D);
    attn_load_tile<64, D>(do_s, dout, b, q0, T, H * D, h * D);
    attn_load_tile<64, D>(k_s, qkv, b, 0, T, width, (H + g_kv) * D);
    attn_load_tile<64, D>(v_s, qkv, b, 0, T, width, (H + KV + g_kv) * D);
    cp_async_commit();

    // This thread's two rows: their lse (base 2) and Delta.
    const int row0 = q0 + warp * 16 + g;
    float lse2[2], dlt[2];
    attn_row_stats(lse2, dlt, lse, delta, b, h, H, T, row0);
    uint32_t qf[D / 16][4], dof[D / 16][4];
    float dq[D / 8][4];
    #pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
        #pragma unroll
        for (int i = 0; i < 4; ++i) dq[nb][i] = 0.0f;

    for (int tile = 0; tile < tiles; ++tile) {
        const int buf = tile & 1, k0 = tile * 64;
        if (tile + 1 < tiles) {
            attn_load_tile<64, D>(k_s + (buf ^ 1) * TILE, qkv, b, k0 + 64, T, width, (H + g_kv) * D);
            attn_load_tile<64, D>(v_s + (buf ^ 1) * TILE, qkv, b, k0 + 64, T, width, (H + KV + g_kv) * D);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (tile == 0) {
            attn_load_a<D>(qf, q_s, warp, lane);
            attn_load_a<D>(dof, do_s, warp, lane);
        }
        // As in the forward: the keys some row of the warp may see, in groups of 16.
        const int visible = min(min(q0 + warp * 16 + 16, T) - k0, 64);
        const int groups = visible > 0 ? (visible + 15) / 16 : 0;
        float s[8][4], dp[8][4];
        attn_mma_abt<D>(s, qf, k_s + buf * TILE, lane, 0, groups);    // S = Q K^T
        attn_mma_abt<D>(dp, dof, v_s + buf * TILE, lane, 0, groups);  // dP = dO V^T
        // dS in place of S; the diagonal tile, the only one that can pass T, is masked.
        attn_dq_scores(s, dp, lse2, dlt, row0, k0, T, t4, tile == tiles - 1, scale_log2);
        attn_mma_ab<D>(dq, s, k_s + buf * TILE, lane, 0, groups);  // dq += dS K
        __syncthreads();
    }

    attn_store_dq<D>(dqkv, dq, b, h, T, width, row0, t4, scale);
}

template <int D>
__global__ void __launch_bounds__(128) attention_backward_dkv_mma_kernel(bf16* dqkv, const float* delta,
                                                                         const bf16* dout, const bf16* qkv,
                                                                         const float* lse, int T, int H, int KV,
                                                                         float scale) {
    constexpr int P = attn_mma_stride<D>(), TILE = 64 * P;
    extern __shared__ bf16 attn_smem[];
    bf16* k_s = attn_smem;
    bf16* v_s = k_s + TILE;
    bf16* q_s = v_s + TILE;      // two buffers
    bf16* do_s = q_s + 2 * TILE;  // two buffers
    float* lse_s = reinterpret_cast<float*>(do_s + 2 * TILE);  // two buffers of 64, base 2
    float* delta_s = lse_s + 2 * 64;                           // two buffers of 64

    const int k0 = blockIdx.x * 64, g_kv = blockIdx.y, b = blockIdx.z;
    const int group = H / KV, width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const float scale_log2 = scale * kLog2e;
    // Query tiles i0 = k0, k0 + 64, ... < T of each head of the group, as one sequence.
    const int per_head = (T - k0 + 63) / 64, tiles = per_head * group;

    // Query tile `it` into buffer `buf`: Q and dO rows by cp.async, lse and Delta by plain loads
    // (the buffer is free: the last reader passed the __syncthreads that ends its iteration).
    auto load_queries = [&](int it, int buf) {
        const int h = g_kv * group + it / per_head, i0 = k0 + it % per_head * 64;
        attn_load_tile<64, D>(q_s + buf * TILE, qkv, b, i0, T, width, h * D);
        attn_load_tile<64, D>(do_s + buf * TILE, dout, b, i0, T, H * D, h * D);
        attn_load_query_stats(lse_s + buf * 64, delta_s + buf * 64, lse, delta, b, h, H, T, i0);
    };
    attn_load_tile<64, D>(k_s, qkv, b, k0, T, width, (H + g_kv) * D);
    attn_load_tile<64, D>(v_s, qkv, b, k0, T, width, (H + KV + g_kv) * D);
    load_queries(0, 0);
    cp_async_commit();

    float dk[D / 8][4], dv[D / 8][4];  // K and V stay in shared memory: registers go to dk and dv
    #pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
        #pragma unroll
        for (int i = 0; i < 4; ++i) dk[nb][i] = dv[nb][i] = 0.0f;
    const int key0 = k0 + warp * 16 + g;  // this thread's keys: key0 and key0 + 8

    for (int it = 0; it < tiles; ++it) {
        const int buf = it & 1, i0 = k0 + it % per_head * 64;
        if (it + 1 < tiles) {
            load_queries(it + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        // Queries of this tile that some key of the warp may see, in groups of 16:
        // from the warp's first key on (diagonal tile), before T (last tile), none
        // for a warp whose keys are all past T.
        const int first = i0 == k0 ? warp : 0;
        const int last = k0 + warp * 16 < T ? (min(T - i0, 64) + 15) / 16 : 0;
        float s[8][4], dp[8][4];
        attn_mma_abt_shared_a<D>(s, k_s, warp, q_s + buf * TILE, lane, first, last);    // S^T = K Q^T
        attn_mma_abt_shared_a<D>(dp, v_s, warp, do_s + buf * TILE, lane, first, last);  // dP^T = V dO^T
        // Queries before the key (diagonal tile) or past T (last tile) see nothing.
        const bool masked = i0 == k0 || i0 + 64 > T;
        // P^T and dS^T in place of S^T and dP^T.
        attn_dkv_scores(s, dp, lse_s + buf * 64, delta_s + buf * 64, key0, i0, T, t4, masked, scale_log2);
        attn_mma_ab<D>(dv, s, do_s + buf * TILE, lane, first, last);  // dv += P^T dO
        attn_mma_ab<D>(dk, dp, q_s + buf * TILE, lane, first, last);  // dk += dS^T Q
        __syncthreads();
    }

    attn_store_dkv<D>(dqkv, dk, dv, b, g_kv, H, KV, T, width, key0, t4, scale);
}

template <int D>
inline void attention_backward_mma_launch(bf16* dqkv, const float* delta, const bf16* dout, const bf16* qkv,
                                          const float* lse, int B, int T, int H, int KV, cudaStream_t stream) {
    constexpr size_t smem = attn_mma_backward_smem<D>();
    const float scale = 1.0f / std::sqrt(float(D));
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dq_mma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(smem)));
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dkv_mma_kernel<D>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    attention_backward_dq_mma_kernel<D>
        <<<dim3(ceil_div(T, 64), H, B), 128, smem, stream>>>(dqkv, delta, dout, qkv, lse, T, H, KV, scale);
    CUDA_CHECK_LAUNCH("attention_backward_dq_mma_kernel");
    attention_backward_dkv_mma_kernel<D>
        <<<dim3(ceil_div(T, 64), KV, B), 128, smem, stream>>>(dqkv, delta, dout, qkv, lse, T, H, KV, scale);
    CUDA_CHECK_LAUNCH("attention_backward_dkv_mma_kernel");
}

// Version 2 backward (tensor cores), same arguments and results as version 1.
inline void attention_backward_mma(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                                   const float* lse, int B, int T, int H, int KV, int D, cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    attention_backward_delta(scratch, dout, out, B, T, H, D, stream);
    if (D == 64) attention_backward_mma_launch<64>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, stream);
    else attention_backward_mma_launch<128>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, stream);
}

// Version 3 backward (Hopper wgmma, sm_90a), same arguments and results as versions 1 and 2.
inline void attention_backward_wgmma(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                                     const float* lse, int B, int T, int H, int KV, int D, cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    attn_require_sm90("attention_backward_wgmma");
    attention_backward_delta(scratch, dout, out, B, T, H, D, stream);
    if (D == 64) attention_backward_wgmma_launch<64>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, stream);
    else attention_backward_wgmma_launch<128>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, stream);
}

// Version 4 backward (Hopper TMA + warp specialisation, sm_90a), same arguments and results as versions 1-3.
inline void attention_backward_tma(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                                   const float* lse, int B, int T, int H, int KV, int D, cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    attn_require_sm90("attention_backward_tma");
    attention_backward_delta(scratch, dout, out, B, T, H, D, stream);
    if (D == 64) attention_backward_tma_launch<64>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, stream);
    else attention_backward_tma_launch<128>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, stream);
}

// The kernels the model uses: version 2 unless `version` names another
// (train_llama --attention-kernel; 3 and 4 need an sm_90 GPU).
constexpr int kAttentionVersions = 4;
inline void attention_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                              cudaStream_t stream = 0, int version = 2) {
    switch (version) {
        case 1: attention_forward_simple(out, lse, qkv, B, T, H, KV, D, stream); break;
        case 3: attention_forward_wgmma(out, lse, qkv, B, T, H, KV, D, stream); break;
        case 4: attention_forward_tma(out, lse, qkv, B, T, H, KV, D, stream); break;
        default: attention_forward_mma(out, lse, qkv, B, T, H, KV, D, stream);
    }
}

inline void attention_backward(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                               const float* lse, int B, int T, int H, int KV, int D, cudaStream_t stream = 0,
                               int version = 2) {
    switch (version) {
        case 1: attention_backward_simple(dqkv, scratch, dout, qkv, out, lse, B, T, H, KV, D, stream); break;
        case 3: attention_backward_wgmma(dqkv, scratch, dout, qkv, out, lse, B, T, H, KV, D, stream); break;
        case 4: attention_backward_tma(dqkv, scratch, dout, qkv, out, lse, B, T, H, KV, D, stream); break;
        default: attention_backward_mma(dqkv, scratch, dout, qkv, out, lse, B, T, H, KV, D, stream);
    }
}

#endif  // KERNELS_ATTENTION_CUH
