// The shared part of the attention versions (kernels/attention.cuh has the
// math and the table of versions): index and shape helpers, the 64 x 64 tile
// math of the tensor-core versions (fragment loads, mma.sync and wgmma
// products, the online softmax, the score and store helpers of the backward),
// the Delta kernel every tensor-core backward starts with, and the
// architecture checks. Each version's file (v1_simple.cuh ... v4_tma.cuh)
// depends on this file only.
#ifndef KERNELS_ATTENTION_COMMON_CUH
#define KERNELS_ATTENTION_COMMON_CUH

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

// ---- documents packed into a sequence --------------------------------------
// When several documents share a sequence (fine-tuning shards, train_llama
// --doc-mask), attention stays inside each: for the token at position t of
// sequence b, start[b*T + t] and end[b*T + t] are where its document begins
// and ends (start <= t < end). Query i sees key j when start(i) <= j <= i, so
//   a block of queries [q0, q1] needs the keys [start(q0), q1] only, and
//   a block of keys [k0, k1] is seen by the queries [k0, end(k1) - 1] only
// (start and end never decrease along a sequence). Every version visits just
// those tiles: the ones wholly across a boundary are neither loaded nor
// computed. A tile inside the range needs the mask when it reaches the
// diagonal, T, or a boundary that splits it. Null pointers: each sequence is
// one document (plain causal attention).
// `tiles`, for dev programs and tests: when set, each block adds the tiles
// it computed to tiles[0] (forward), tiles[1] (dq) or tiles[2] (dk, dv).
struct AttnDocs {
    const int* start = nullptr;  // [B*T], device memory
    const int* end = nullptr;    // [B*T]
    unsigned long long* tiles = nullptr;
};

// The first key query `row` (< T) of sequence b sees.
__host__ __device__ inline int attn_doc_start(const AttnDocs& d, int b, int T, int row) {
    return d.start ? d.start[size_t(b) * T + row] : 0;
}
// One past the last query that sees key `key` (< T).
__host__ __device__ inline int attn_doc_end(const AttnDocs& d, int b, int T, int key) {
    return d.end ? d.end[size_t(b) * T + key] : T;
}

// The key tiles (KEYS keys each) a block of query rows [q0, q0 + ROWS) visits:
// first..last. Tiles before `mask_below` (the last row's first key) are split
// by a boundary and need the mask, as does the last (the diagonal one).
template <int ROWS, int KEYS>
struct AttnKeyTiles {
    int first, last, mask_below;
    __device__ AttnKeyTiles(const AttnDocs& d, int b, int T, int q0) {
        const int q1 = min(q0 + ROWS, T) - 1;
        first = attn_doc_start(d, b, T, q0) / KEYS;
        last = q1 / KEYS;
        mask_below = attn_doc_start(d, b, T, q1);
    }
    __device__ int count() const { return last - first + 1; }
    __device__ bool masked(int tile) const { return tile == last || tile * KEYS < mask_below; }
};

// The query tiles (QUERIES rows each, counted from k0, the block's first key)
// a block of keys [k0, k0 + KEYS) is seen by: tiles 0..count-1 of rows
// k0 + QUERIES * i. Those that reach the block's own keys (the diagonal), T,
// or the end of the first key's document need the mask.
template <int KEYS, int QUERIES>
struct AttnQueryTiles {
    int k0, n, mask_from;
    __device__ AttnQueryTiles(const AttnDocs& d, int b, int T, int k0_) : k0(k0_) {
        const int k1 = min(k0 + KEYS, T) - 1;
        n = (attn_doc_end(d, b, T, k1) - k0 + QUERIES - 1) / QUERIES;
        mask_from = min(T, attn_doc_end(d, b, T, k0));  // the first query some key of the block does not see
    }
    __device__ int count() const { return n; }
    __device__ int row(int tile) const { return k0 + tile * QUERIES; }
    __device__ bool masked(int tile) const { return row(tile) < k0 + KEYS || row(tile) + QUERIES > mask_from; }
};

// A thread's query rows' first keys (rows past T: 0) and its keys' document ends (keys past T: T).
template <int N>
__device__ inline void attn_row_starts(int first_key[N], const AttnDocs& d, int b, int T, int row0, int step) {
#pragma unroll
    for (int r = 0; r < N; ++r) first_key[r] = row0 + step * r < T ? attn_doc_start(d, b, T, row0 + step * r) : 0;
}
template <int N>
__device__ inline void attn_key_ends(int key_end[N], const AttnDocs& d, int b, int T, int key0, int step) {
#pragma unroll
    for (int r = 0; r < N; ++r) key_end[r] = key0 + step * r < T ? attn_doc_end(d, b, T, key0 + step * r) : T;
}

// Adds a block's computed tiles to the counter of kernel `which` (one thread calls it).
__device__ inline void attn_count_tiles(const AttnDocs& d, int which, int tiles) {
    if (d.tiles && tiles > 0) atomicAdd(&d.tiles[which], (unsigned long long)tiles);
}

// The document ends from the starts, on the host: [B*T] each.
inline void attention_doc_ends(int* end, const int* start, int B, int T) {
    for (int b = 0; b < B; ++b) {
        const int* s = start + size_t(b) * T;
        int* e = end + size_t(b) * T;
        for (int t = T - 1; t >= 0; --t) e[t] = t + 1 < T && s[t + 1] == s[t] ? e[t + 1] : t + 1;
    }
}

__device__ inline float attn_warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Every launcher checks the shape first: D 64 or 128, H a multiple of KV.
inline void attention_check_shape(int H, int KV, int D) {
    if ((D != 64 && D != 128) || KV <= 0 || H % KV != 0) {
        std::fflush(stdout);
        std::fprintf(stderr, "attention: unsupported shape H=%d KV=%d D=%d (D must be 64 or 128, KV divide H)\n", H, KV,
                     D);
        std::exit(EXIT_FAILURE);
    }
}

// Floats of scratch memory attention_backward needs: Delta, [B, H, T].
inline size_t attention_backward_scratch(int B, int T, int H) { return size_t(B) * H * T; }

constexpr int kAttnMmaRows = 64;  // query rows per block, 16 per warp
constexpr int kAttnMmaKeys = 64;  // keys per tile
static_assert(kAttnMmaRows == 64 && kAttnMmaKeys == 64, "the fragment helpers below assume 64 x 64 tiles");
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
__host__ __device__ constexpr int attn_mma_stride() {
    return D + 8;
}  // bf16 per shared row

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
__device__ inline void attn_mma_abt(float acc[8][4], const uint32_t a[D / 16][4], const bf16* tile, int lane, int begin,
                                    int end) {
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
__device__ inline void attn_mma_abt_shared_a(float acc[8][4], const bf16* a_tile, int warp, const bf16* tile, int lane,
                                             int begin, int end) {
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
// masked on the tiles that need it (keys past the row, past T, or before the
// row's document: first_key),
// turned into unnormalised probabilities; the running maxima m and sums l are
// updated and the output accumulators o rescaled.
template <int D, int NB = 8>  // NB: 8-key blocks of the tile
__device__ inline void attn_online_softmax(float s[NB][4], float o[D / 8][4], float m[2], float l[2], int row0, int k0,
                                           int T, int t4, bool masked, float scale_log2, const int first_key[2]) {
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int row = row0 + 8 * (i / 2), key = k0 + nb * 8 + 2 * t4 + (i % 2);
            float x = s[nb][i] * scale_log2;
            if (masked && (key > row || key >= T || key < first_key[i / 2])) x = -INFINITY;
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
// out in place of S, P recomputed from lse; masked as in the forward.
__device__ inline void attn_dq_scores(float s[8][4], const float dp[8][4], const float lse2[2], const float dlt[2],
                                      int row0, int k0, int T, int t4, bool masked, float scale_log2,
                                      const int first_key[2]) {
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int r = i / 2, row = row0 + 8 * r, key = k0 + nb * 8 + 2 * t4 + (i % 2);
            float p = exp2f(s[nb][i] * scale_log2 - lse2[r]);
            if (masked && (key > row || key >= T || key < first_key[r])) p = 0.0f;
            s[nb][i] = p * (dp[nb][i] - dlt[r]);
        }
}

// dk/dv's tile (keys key0, key0 + 8; queries i0..i0+63 with their lse and
// Delta in shared memory): S^T in, P^T out in place; dP^T in, dS^T out in
// place; masked past the end of the key's document too (key_end0, key_end1:
// scalars, not an array, which ptxas can keep in registers).
__device__ inline void attn_dkv_scores(float s[8][4], float dp[8][4], const float* lse_t, const float* delta_t,
                                       int key0, int i0, int T, int t4, bool masked, float scale_log2, int key_end0,
                                       int key_end1) {
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int c = nb * 8 + 2 * t4 + (i % 2), query = i0 + c, key = key0 + 8 * (i / 2);
            float p = exp2f(s[nb][i] * scale_log2 - lse_t[c]);
            if (masked && (query < key || query >= T || query >= (i < 2 ? key_end0 : key_end1))) p = 0.0f;
            s[nb][i] = p;
            dp[nb][i] = p * (dp[nb][i] - delta_t[c]);
        }
}

// lse (base 2) and Delta of query rows i0..i0+63 of head h into shared memory (0 past T).
__device__ inline void attn_load_query_stats(float* lse_s, float* delta_s, const float* lse, const float* delta, int b,
                                             int h, int H, int T, int i0) {
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
    attn_wg_ab_desc<D, false>(
        acc, x, [cols_tile](int kk) { return wgmma_desc(cols_tile + kk * 2 * 8 * D, (D / 8) * 128, 128); });
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
        std::fflush(stdout);
        std::fprintf(stderr, "%s: needs an sm_90 GPU (H100, H200), this one is sm_%d\n", who, arch);
        std::exit(EXIT_FAILURE);
    }
}

// Kernel 1 of every tensor-core backward: Delta_i = dO_i . o_i for every row
// (one warp per row), into the scratch.
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

// One kernel's launch configuration, as dev/perf-report reads it (`attention
// --launch-info`): name, threads per block, dynamic shared memory, sm_XY.
inline void attn_print_launch_info(const char* name, int threads, size_t smem64, size_t smem128, int arch) {
    std::printf("void %s<64> %d %zu %d\n", name, threads, smem64, arch);
    std::printf("void %s<128> %d %zu %d\n", name, threads, smem128, arch);
}

#endif  // KERNELS_ATTENTION_COMMON_CUH
