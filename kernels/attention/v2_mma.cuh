// Attention version 2: tensor cores (mma.sync m16n8k16 bf16, fp32 accumulation),
// ldmatrix, cp.async double buffering, 64 x 64 tiles; on every GPU. The model's default.
#ifndef KERNELS_ATTENTION_V2_MMA_CUH
#define KERNELS_ATTENTION_V2_MMA_CUH

#include "kernels/attention/common.cuh"

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

template <int D>
constexpr size_t attn_mma_forward_smem() {  // Q, two K and two V tiles
    return size_t(kAttnMmaRows + 4 * kAttnMmaKeys) * attn_mma_stride<D>() * sizeof(bf16);
}

template <int D>
__global__ void __launch_bounds__(128) attention_forward_mma_kernel(bf16* out, float* lse, const bf16* qkv, int T,
                                                                    int H, int KV, float scale_log2, AttnDocs docs) {
    constexpr int P = attn_mma_stride<D>();
    constexpr int SBLOCKS = kAttnMmaKeys / 8;  // 8-key column blocks of S
    constexpr int OBLOCKS = D / 8;             // 8-dim column blocks of O
    extern __shared__ bf16 attn_smem[];
    bf16* q_s = attn_smem;
    bf16* k_s = q_s + kAttnMmaRows * P;      // two buffers of kAttnMmaKeys rows
    bf16* v_s = k_s + 2 * kAttnMmaKeys * P;  // two buffers

    const int q0 = (gridDim.x - 1 - blockIdx.x) * kAttnMmaRows, h = blockIdx.y, b = blockIdx.z;
    const int g_kv = h / (H / KV), width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const AttnKeyTiles<kAttnMmaRows, kAttnMmaKeys> tiles(docs, b, T, q0);  // the key tiles the block sees

    attn_load_tile<kAttnMmaRows, D>(q_s, qkv, b, q0, T, width, h * D);
    attn_load_tile<kAttnMmaKeys, D>(k_s, qkv, b, tiles.first * kAttnMmaKeys, T, width, (H + g_kv) * D);
    attn_load_tile<kAttnMmaKeys, D>(v_s, qkv, b, tiles.first * kAttnMmaKeys, T, width, (H + KV + g_kv) * D);
    cp_async_commit();

    uint32_t qf[D / 16][4];  // this warp's 16 query rows as A fragments
    float o[OBLOCKS][4];
#pragma unroll
    for (int nb = 0; nb < OBLOCKS; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) o[nb][i] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g and g + 8, base-2 units
    const int row0 = q0 + warp * 16 + g;                       // the first of this thread's two rows
    int first_key[2];                                          // and their documents' starts
    attn_row_starts<2>(first_key, docs, b, T, row0, 8);

    for (int tile = tiles.first; tile <= tiles.last; ++tile) {
        const int buf = (tile - tiles.first) & 1, k0 = tile * kAttnMmaKeys;
        if (tile < tiles.last) {  // start the next tile, then wait for this one
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
        if (tile == tiles.first) attn_load_a<D>(qf, q_s, warp, lane);
        const bf16* kt = k_s + buf * kAttnMmaKeys * P;
        const bf16* vt = v_s + buf * kAttnMmaKeys * P;

        // Keys of this tile that some row of the warp may see, in groups of 16: all
        // of them but on the last tile, none for a warp whose rows are all past T.
        const int visible = min(min(q0 + warp * 16 + 16, T) - k0, kAttnMmaKeys);
        const int groups = visible > 0 ? (visible + 15) / 16 : 0;
        float s[SBLOCKS][4];  // S = Q K^T
        attn_mma_abt<D>(s, qf, kt, lane, 0, groups);

        // Scale to base 2, mask (the diagonal tile, and tiles a document boundary splits), and the online softmax.
        attn_online_softmax<D, 8>(s, o, m, l, row0, k0, T, t4, tiles.masked(tile), scale_log2, first_key);

        attn_mma_ab<D>(o, s, vt, lane, 0, groups);  // O += P V
        __syncthreads();                            // every warp is done with this buffer before it is refilled
    }

    // Sum each row over its quad, normalise, store.
    attn_store_rows<D>(out, lse, o, m, l, b, h, H, T, row0, t4);
    if (threadIdx.x == 0) attn_count_tiles(docs, 0, tiles.count());
}

// Version 2 forward (tensor cores), same arguments and results as version 1.
inline void attention_forward_mma(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                                  AttnDocs docs = {}, cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    const dim3 grid(ceil_div(T, kAttnMmaRows), H, B);
    const float scale_log2 = 1.4426950408889634f / std::sqrt(float(D));
    if (D == 64) {
        constexpr size_t smem = attn_mma_forward_smem<64>();
        CUDA_CHECK(cudaFuncSetAttribute(attention_forward_mma_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(smem)));
        attention_forward_mma_kernel<64><<<grid, 128, smem, stream>>>(out, lse, qkv, T, H, KV, scale_log2, docs);
    } else {
        constexpr size_t smem = attn_mma_forward_smem<128>();
        CUDA_CHECK(cudaFuncSetAttribute(attention_forward_mma_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(smem)));
        attention_forward_mma_kernel<128><<<grid, 128, smem, stream>>>(out, lse, qkv, T, H, KV, scale_log2, docs);
    }
    CUDA_CHECK_LAUNCH("attention_forward_mma_kernel");
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

template <int D>
constexpr size_t attn_mma_backward_smem() {  // two single tiles and two double-buffered ones, + 2x2x64 floats
    return size_t(6 * 64) * attn_mma_stride<D>() * sizeof(bf16) + 4 * 64 * sizeof(float);
}

template <int D>
__global__ void __launch_bounds__(128)
    attention_backward_dq_mma_kernel(bf16* dqkv, const float* delta, const bf16* dout, const bf16* qkv,
                                     const float* lse, int T, int H, int KV, float scale, AttnDocs docs) {
    constexpr int P = attn_mma_stride<D>(), TILE = 64 * P;
    extern __shared__ bf16 attn_smem[];
    bf16* q_s = attn_smem;
    bf16* do_s = q_s + TILE;
    bf16* k_s = do_s + TILE;     // two buffers
    bf16* v_s = k_s + 2 * TILE;  // two buffers

    const int q0 = (gridDim.x - 1 - blockIdx.x) * 64, h = blockIdx.y, b = blockIdx.z;
    const int g_kv = h / (H / KV), width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const AttnKeyTiles<64, 64> tiles(docs, b, T, q0);
    const float scale_log2 = scale * kLog2e;

    attn_load_tile<64, D>(q_s, qkv, b, q0, T, width, h * D);
    attn_load_tile<64, D>(do_s, dout, b, q0, T, H * D, h * D);
    attn_load_tile<64, D>(k_s, qkv, b, tiles.first * 64, T, width, (H + g_kv) * D);
    attn_load_tile<64, D>(v_s, qkv, b, tiles.first * 64, T, width, (H + KV + g_kv) * D);
    cp_async_commit();

    // This thread's two rows: their lse (base 2), Delta and first keys.
    const int row0 = q0 + warp * 16 + g;
    float lse2[2], dlt[2];
    attn_row_stats(lse2, dlt, lse, delta, b, h, H, T, row0);
    int first_key[2];
    attn_row_starts<2>(first_key, docs, b, T, row0, 8);
    uint32_t qf[D / 16][4], dof[D / 16][4];
    float dq[D / 8][4];
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) dq[nb][i] = 0.0f;

    for (int tile = tiles.first; tile <= tiles.last; ++tile) {
        const int buf = (tile - tiles.first) & 1, k0 = tile * 64;
        if (tile < tiles.last) {
            attn_load_tile<64, D>(k_s + (buf ^ 1) * TILE, qkv, b, k0 + 64, T, width, (H + g_kv) * D);
            attn_load_tile<64, D>(v_s + (buf ^ 1) * TILE, qkv, b, k0 + 64, T, width, (H + KV + g_kv) * D);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (tile == tiles.first) {
            attn_load_a<D>(qf, q_s, warp, lane);
            attn_load_a<D>(dof, do_s, warp, lane);
        }
        // As in the forward: the keys some row of the warp may see, in groups of 16.
        const int visible = min(min(q0 + warp * 16 + 16, T) - k0, 64);
        const int groups = visible > 0 ? (visible + 15) / 16 : 0;
        float s[8][4], dp[8][4];
        attn_mma_abt<D>(s, qf, k_s + buf * TILE, lane, 0, groups);    // S = Q K^T
        attn_mma_abt<D>(dp, dof, v_s + buf * TILE, lane, 0, groups);  // dP = dO V^T
        // dS in place of S; masked as in the forward.
        attn_dq_scores(s, dp, lse2, dlt, row0, k0, T, t4, tiles.masked(tile), scale_log2, first_key);
        attn_mma_ab<D>(dq, s, k_s + buf * TILE, lane, 0, groups);  // dq += dS K
        __syncthreads();
    }

    attn_store_dq<D>(dqkv, dq, b, h, T, width, row0, t4, scale);
    if (threadIdx.x == 0) attn_count_tiles(docs, 1, tiles.count());
}

template <int D>
__global__ void __launch_bounds__(128)
    attention_backward_dkv_mma_kernel(bf16* dqkv, const float* delta, const bf16* dout, const bf16* qkv,
                                      const float* lse, int T, int H, int KV, float scale, AttnDocs docs) {
    constexpr int P = attn_mma_stride<D>(), TILE = 64 * P;
    extern __shared__ bf16 attn_smem[];
    bf16* k_s = attn_smem;
    bf16* v_s = k_s + TILE;
    bf16* q_s = v_s + TILE;                                    // two buffers
    bf16* do_s = q_s + 2 * TILE;                               // two buffers
    float* lse_s = reinterpret_cast<float*>(do_s + 2 * TILE);  // two buffers of 64, base 2
    float* delta_s = lse_s + 2 * 64;                           // two buffers of 64

    const int k0 = blockIdx.x * 64, g_kv = blockIdx.y, b = blockIdx.z;
    const int group = H / KV, width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const float scale_log2 = scale * kLog2e;
    // Query tiles i0 = k0, k0 + 64, ... up to the end of the last key's document
    // (T without documents), of each head of the group, as one sequence.
    const AttnQueryTiles<64, 64> queries(docs, b, T, k0);
    const int per_head = queries.count(), tiles = per_head * group;

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
        const int buf = it & 1, i0 = queries.row(it % per_head);
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
        // Queries before the key (diagonal tile), past T or past the key's document see nothing.
        const bool masked = queries.masked(it % per_head);
        // P^T and dS^T in place of S^T and dP^T. (The ends of the keys' documents are read
        // here, not kept through the loop: two more registers would make ptxas spill at D = 64.)
        int key_end[2];
        attn_key_ends<2>(key_end, docs, b, T, key0, 8);
        attn_dkv_scores(s, dp, lse_s + buf * 64, delta_s + buf * 64, key0, i0, T, t4, masked, scale_log2, key_end[0],
                        key_end[1]);
        attn_mma_ab<D>(dv, s, do_s + buf * TILE, lane, first, last);  // dv += P^T dO
        attn_mma_ab<D>(dk, dp, q_s + buf * TILE, lane, first, last);  // dk += dS^T Q
        __syncthreads();
    }

    attn_store_dkv<D>(dqkv, dk, dv, b, g_kv, H, KV, T, width, key0, t4, scale);
    if (threadIdx.x == 0) attn_count_tiles(docs, 2, tiles);
}

template <int D>
inline void attention_backward_mma_launch(bf16* dqkv, const float* delta, const bf16* dout, const bf16* qkv,
                                          const float* lse, int B, int T, int H, int KV, AttnDocs docs,
                                          cudaStream_t stream) {
    constexpr size_t smem = attn_mma_backward_smem<D>();
    const float scale = 1.0f / std::sqrt(float(D));
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dq_mma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(smem)));
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dkv_mma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(smem)));
    attention_backward_dq_mma_kernel<D>
        <<<dim3(ceil_div(T, 64), H, B), 128, smem, stream>>>(dqkv, delta, dout, qkv, lse, T, H, KV, scale, docs);
    CUDA_CHECK_LAUNCH("attention_backward_dq_mma_kernel");
    attention_backward_dkv_mma_kernel<D>
        <<<dim3(ceil_div(T, 64), KV, B), 128, smem, stream>>>(dqkv, delta, dout, qkv, lse, T, H, KV, scale, docs);
    CUDA_CHECK_LAUNCH("attention_backward_dkv_mma_kernel");
}

// Version 2 backward (tensor cores), same arguments and results as version 1.
inline void attention_backward_mma(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                                   const float* lse, int B, int T, int H, int KV, int D, AttnDocs docs = {},
                                   cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    attention_backward_delta(scratch, dout, out, B, T, H, D, stream);
    if (D == 64) attention_backward_mma_launch<64>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, docs, stream);
    else attention_backward_mma_launch<128>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, docs, stream);
}

// Version 2's kernels for dev/perf-report (no CUDA call).
inline void attention_launch_info_mma() {
    attn_print_launch_info("attention_forward_mma_kernel", 128, attn_mma_forward_smem<64>(),
                           attn_mma_forward_smem<128>(), 80);
    attn_print_launch_info("attention_backward_dq_mma_kernel", 128, attn_mma_backward_smem<64>(),
                           attn_mma_backward_smem<128>(), 80);
    attn_print_launch_info("attention_backward_dkv_mma_kernel", 128, attn_mma_backward_smem<64>(),
                           attn_mma_backward_smem<128>(), 80);
}

#endif  // KERNELS_ATTENTION_V2_MMA_CUH
