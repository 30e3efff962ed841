// Attention version 3: Hopper (sm_90a), version 2's tiles with each block one
// warpgroup, the products by wgmma.mma_async.
#ifndef KERNELS_ATTENTION_V3_WGMMA_CUH
#define KERNELS_ATTENTION_V3_WGMMA_CUH

#include "kernels/attention/common.cuh"

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

template <int D>
constexpr size_t attn_wgmma_forward_smem() {  // two K tiles, one V tile (columns layout), Q (padded rows)
    return 3 * size_t(kAttnWgTile) * D * sizeof(bf16) + size_t(kAttnWgTile) * attn_mma_stride<D>() * sizeof(bf16);
}

template <int D>
__global__ void __launch_bounds__(128) attention_forward_wgmma_kernel(bf16* out, float* lse, const bf16* qkv, int T,
                                                                      int H, int KV, float scale_log2, AttnDocs docs) {
    constexpr int TILE = kAttnWgTile * D;
    extern __shared__ __align__(128) bf16 attn_wg_smem[];
    bf16* k_s = attn_wg_smem;    // two K tiles, rows layout (descriptor operands first: 16-byte offsets)
    bf16* v_s = k_s + 2 * TILE;  // one V tile, columns layout
    bf16* q_s = v_s + TILE;      // Q, padded rows as in version 2

    const int q0 = (gridDim.x - 1 - blockIdx.x) * kAttnWgTile, h = blockIdx.y, b = blockIdx.z;
    const int g_kv = h / (H / KV), width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const AttnKeyTiles<kAttnWgTile, kAttnWgTile> tiles(docs, b, T, q0);  // the key tiles the block sees

    attn_load_tile<kAttnWgTile, D>(q_s, qkv, b, q0, T, width, h * D);
    attn_load_rows_core<D>(k_s, qkv, b, tiles.first * kAttnWgTile, T, width, (H + g_kv) * D);
    cp_async_commit();
    attn_load_cols_core<D>(v_s, qkv, b, tiles.first * kAttnWgTile, T, width, (H + KV + g_kv) * D);

    uint32_t qf[D / 16][4];  // this warp's 16 query rows as A fragments
    float o[D / 8][4];
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) o[nb][i] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g and g + 8, base-2 units
    const int row0 = q0 + warp * 16 + g;
    int first_key[2];
    attn_row_starts<2>(first_key, docs, b, T, row0, 8);

    for (int tile = tiles.first; tile <= tiles.last; ++tile) {
        const int k0 = tile * kAttnWgTile, buf = (tile - tiles.first) & 1;
        if (tile < tiles.last) {  // start the next K tile, then wait for this one
            attn_load_rows_core<D>(k_s + (buf ^ 1) * TILE, qkv, b, k0 + kAttnWgTile, T, width, (H + g_kv) * D);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        fence_proxy_async();  // this thread's K and V stores, seen by wgmma
        __syncthreads();
        if (tile == tiles.first) attn_load_a<D>(qf, q_s, warp, lane);

        float s[8][4];
        attn_wg_abt<D>(s, qf, k_s + buf * TILE);  // S = Q K^T
        attn_online_softmax<D, 8>(s, o, m, l, row0, k0, T, t4, tiles.masked(tile), scale_log2, first_key);
        attn_wg_ab<D>(o, s, v_s);  // O += P V
        __syncthreads();           // the K buffer and V are free again
        if (tile < tiles.last) attn_load_cols_core<D>(v_s, qkv, b, k0 + kAttnWgTile, T, width, (H + KV + g_kv) * D);
    }
    attn_store_rows<D>(out, lse, o, m, l, b, h, H, T, row0, t4);
    if (threadIdx.x == 0) attn_count_tiles(docs, 0, tiles.count());
}

template <int D>
constexpr size_t attn_wgmma_backward_smem() {  // up to 6 tiles in core layouts, 2 padded, + 2x2x64 floats
    return 6 * size_t(kAttnWgTile) * D * sizeof(bf16) + 2 * size_t(kAttnWgTile) * attn_mma_stride<D>() * sizeof(bf16) +
           4 * 64 * sizeof(float);
}

// dq: as version 2's kernel 2, with S = Q K^T and dP = dO V^T over K and V in
// the rows layout and dq += dS K over K in the columns layout.
template <int D>
__global__ void __launch_bounds__(128)
    attention_backward_dq_wgmma_kernel(bf16* dqkv, const float* delta, const bf16* dout, const bf16* qkv,
                                       const float* lse, int T, int H, int KV, float scale, AttnDocs docs) {
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
    const AttnKeyTiles<kAttnWgTile, kAttnWgTile> tiles(docs, b, T, q0);
    const float scale_log2 = scale * kLog2e;

    attn_load_tile<kAttnWgTile, D>(q_s, qkv, b, q0, T, width, h * D);
    attn_load_tile<kAttnWgTile, D>(do_s, dout, b, q0, T, H * D, h * D);
    attn_load_rows_core<D>(k_s, qkv, b, tiles.first * kAttnWgTile, T, width, (H + g_kv) * D);
    attn_load_rows_core<D>(v_s, qkv, b, tiles.first * kAttnWgTile, T, width, (H + KV + g_kv) * D);
    cp_async_commit();
    attn_load_cols_core<D>(kc_s, qkv, b, tiles.first * kAttnWgTile, T, width, (H + g_kv) * D);
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
        const int buf = (tile - tiles.first) & 1, k0 = tile * kAttnWgTile;
        if (tile < tiles.last) {
            attn_load_rows_core<D>(k_s + (buf ^ 1) * TILE, qkv, b, k0 + kAttnWgTile, T, width, (H + g_kv) * D);
            attn_load_rows_core<D>(v_s + (buf ^ 1) * TILE, qkv, b, k0 + kAttnWgTile, T, width, (H + KV + g_kv) * D);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        fence_proxy_async();
        __syncthreads();
        if (tile == tiles.first) {
            attn_load_a<D>(qf, q_s, warp, lane);
            attn_load_a<D>(dof, do_s, warp, lane);
        }
        float s[8][4], dp[8][4];
        attn_wg_abt<D>(s, qf, k_s + buf * TILE);    // S = Q K^T
        attn_wg_abt<D>(dp, dof, v_s + buf * TILE);  // dP = dO V^T
        // dS in place of S; masked as in the forward.
        attn_dq_scores(s, dp, lse2, dlt, row0, k0, T, t4, tiles.masked(tile), scale_log2, first_key);
        attn_wg_ab<D>(dq, s, kc_s);  // dq += dS K
        __syncthreads();
        if (tile < tiles.last) attn_load_cols_core<D>(kc_s, qkv, b, k0 + kAttnWgTile, T, width, (H + g_kv) * D);
    }
    attn_store_dq<D>(dqkv, dq, b, h, T, width, row0, t4, scale);
    if (threadIdx.x == 0) attn_count_tiles(docs, 1, tiles.count());
}

// dk, dv: as version 2's kernel 3, with S^T = K Q^T and dP^T = V dO^T over Q
// and dO in the rows layout, dv += P^T dO and dk += dS^T Q over dO and Q in the
// columns layout; K and V rows are read as A fragments before each product.
template <int D>
__global__ void __launch_bounds__(128)
    attention_backward_dkv_wgmma_kernel(bf16* dqkv, const float* delta, const bf16* dout, const bf16* qkv,
                                        const float* lse, int T, int H, int KV, float scale, AttnDocs docs) {
    constexpr int TILE = kAttnWgTile * D, P = attn_mma_stride<D>();
    extern __shared__ __align__(128) bf16 attn_wg_smem[];
    bf16* q_s = attn_wg_smem;      // two Q tiles, rows layout
    bf16* do_s = q_s + 2 * TILE;   // two dO tiles, rows layout
    bf16* qc_s = do_s + 2 * TILE;  // one Q tile, columns layout
    bf16* k_s = qc_s + TILE;       // K and V, padded rows
    bf16* v_s = k_s + kAttnWgTile * P;
    bf16* doc_s = v_s + kAttnWgTile * P;  // one dO tile, columns layout (after the padded tiles: 16-byte offsets)
    float* lse_s = reinterpret_cast<float*>(doc_s + TILE);  // two buffers of 64, base 2
    float* delta_s = lse_s + 2 * 64;

    const int k0 = blockIdx.x * kAttnWgTile, g_kv = blockIdx.y, b = blockIdx.z;
    const int group = H / KV, width = (H + 2 * KV) * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const float scale_log2 = scale * kLog2e;
    const AttnQueryTiles<kAttnWgTile, 64> queries(docs, b, T, k0);  // as in version 2
    const int per_head = queries.count(), tiles = per_head * group;
    auto query_tile = [&](int it, int& h, int& i0) {
        h = g_kv * group + it / per_head;
        i0 = queries.row(it % per_head);
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
    int key_end[2];
    attn_key_ends<2>(key_end, docs, b, T, key0, 8);
    for (int it = 0; it < tiles; ++it) {
        const int buf = it & 1, i0 = queries.row(it % per_head);
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
        const bool masked = queries.masked(it % per_head);
        // P^T and dS^T in place of S^T and dP^T.
        attn_dkv_scores(s, dp, lse_s + buf * 64, delta_s + buf * 64, key0, i0, T, t4, masked, scale_log2, key_end[0],
                        key_end[1]);
        attn_wg_ab<D>(dv, s, doc_s);  // dv += P^T dO
        attn_wg_ab<D>(dk, dp, qc_s);  // dk += dS^T Q
        __syncthreads();
        if (it + 1 < tiles) load_cols(it + 1);
    }

    attn_store_dkv<D>(dqkv, dk, dv, b, g_kv, H, KV, T, width, key0, t4, scale);
    if (threadIdx.x == 0) attn_count_tiles(docs, 2, tiles);
}

// Version 3 forward (Hopper wgmma, sm_90a), same arguments and results as versions 1 and 2.
inline void attention_forward_wgmma(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                                    AttnDocs docs = {}, cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    attn_require_sm90("attention_forward_wgmma");
    const dim3 grid(ceil_div(T, kAttnWgTile), H, B);
    const float scale_log2 = kLog2e / std::sqrt(float(D));
    if (D == 64) {
        constexpr size_t smem = attn_wgmma_forward_smem<64>();
        CUDA_CHECK(cudaFuncSetAttribute(attention_forward_wgmma_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(smem)));
        attention_forward_wgmma_kernel<64><<<grid, 128, smem, stream>>>(out, lse, qkv, T, H, KV, scale_log2, docs);
    } else {
        constexpr size_t smem = attn_wgmma_forward_smem<128>();
        CUDA_CHECK(cudaFuncSetAttribute(attention_forward_wgmma_kernel<128>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        attention_forward_wgmma_kernel<128><<<grid, 128, smem, stream>>>(out, lse, qkv, T, H, KV, scale_log2, docs);
    }
    CUDA_CHECK_LAUNCH("attention_forward_wgmma_kernel");
}

template <int D>
inline void attention_backward_wgmma_launch(bf16* dqkv, const float* delta, const bf16* dout, const bf16* qkv,
                                            const float* lse, int B, int T, int H, int KV, AttnDocs docs,
                                            cudaStream_t stream) {
    constexpr size_t smem = attn_wgmma_backward_smem<D>();
    const float scale = 1.0f / std::sqrt(float(D));
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dq_wgmma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(smem)));
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dkv_wgmma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(smem)));
    attention_backward_dq_wgmma_kernel<D>
        <<<dim3(ceil_div(T, 64), H, B), 128, smem, stream>>>(dqkv, delta, dout, qkv, lse, T, H, KV, scale, docs);
    CUDA_CHECK_LAUNCH("attention_backward_dq_wgmma_kernel");
    attention_backward_dkv_wgmma_kernel<D>
        <<<dim3(ceil_div(T, 64), KV, B), 128, smem, stream>>>(dqkv, delta, dout, qkv, lse, T, H, KV, scale, docs);
    CUDA_CHECK_LAUNCH("attention_backward_dkv_wgmma_kernel");
}

// Version 3 backward (Hopper wgmma, sm_90a), same arguments and results as versions 1 and 2.
inline void attention_backward_wgmma(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                                     const float* lse, int B, int T, int H, int KV, int D, AttnDocs docs = {},
                                     cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    attn_require_sm90("attention_backward_wgmma");
    attention_backward_delta(scratch, dout, out, B, T, H, D, stream);
    if (D == 64) attention_backward_wgmma_launch<64>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, docs, stream);
    else attention_backward_wgmma_launch<128>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, docs, stream);
}

// Version 3's kernels for dev/perf-report (no CUDA call).
inline void attention_launch_info_wgmma() {
    attn_print_launch_info("attention_forward_wgmma_kernel", 128, attn_wgmma_forward_smem<64>(),
                           attn_wgmma_forward_smem<128>(), 90);
    attn_print_launch_info("attention_backward_dq_wgmma_kernel", 128, attn_wgmma_backward_smem<64>(),
                           attn_wgmma_backward_smem<128>(), 90);
    attn_print_launch_info("attention_backward_dkv_wgmma_kernel", 128, attn_wgmma_backward_smem<64>(),
                           attn_wgmma_backward_smem<128>(), 90);
}

#endif  // KERNELS_ATTENTION_V3_WGMMA_CUH
