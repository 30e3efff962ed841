// Attention version 4: Hopper (sm_90a), TMA and warp specialisation: a producer
// warp loads swizzled tiles by TMA into a ring of shared-memory slots guarded by
// mbarriers; two consumer warpgroups run wgmma products on them.
#ifndef KERNELS_ATTENTION_V4_TMA_CUH
#define KERNELS_ATTENTION_V4_TMA_CUH

#include "kernels/attention/common.cuh"

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
constexpr int kAttnTmaConsumers = 2;  // consumer warpgroups
static_assert(kAttnTmaConsumers == 2, "the producers' lists of tiles below name two consumer warpgroups");
constexpr int kAttnTmaRows = kAttnTmaConsumers * kAttnWgTile;   // rows per block
constexpr int kAttnTmaStages = 2;                               // slots of the ring
constexpr int kAttnTmaThreads = (kAttnTmaConsumers + 1) * 128;  // + the producer warpgroup
// Registers per thread: 168 at launch (65536 / 384); the producers drop to
// 24, the consumers rise to 240 (2 x 128 x 240 + 128 x 24 <= 65536).
constexpr int kAttnTmaProducerRegs = 24, kAttnTmaConsumerRegs = 240;
constexpr int kAttnTmaBox = 64;    // columns (128 bytes) and rows of a box
constexpr int kAttnTmaKeys = 128;  // keys per tile of the forward's ring

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
// `tiles` K and V tiles of KEYS keys each (keys key0, key0 + KEYS, ...) into
// the ring (slot tiles 0 and 1).
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
                                       int col_v, int key0, int tiles, int b) {
    attn_produce_once<D, ONCE, Smem>(smem, r, once_maps, once_cols, q0, b);
    for (int j = 0; j < tiles; ++j) {
        const int s = attn_ring_claim(r, j), t0 = key0 + j * KEYS;
        mbarrier_arrive_expect_tx(&r.full[s], unsigned(2 * Smem::slot_tile_bytes));
        attn_tma_tile<D, KEYS>(Smem::slot_tile(smem, s, 0), qkv_map, col_k, t0, b, &r.full[s]);
        attn_tma_tile<D, KEYS>(Smem::slot_tile(smem, s, 1), qkv_map, col_v, t0, b, &r.full[s]);
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
                                 int KV, float scale_log2, AttnDocs docs) {
    using L = AttnTmaForwardSmem<D>;
    extern __shared__ __align__(1024) unsigned char attn_tma_smem[];
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kAttnTmaRows, h = blockIdx.y, b = blockIdx.z;
    const int g_kv = h / (H / KV);
    const AttnKeyTiles<kAttnTmaRows, kAttnTmaKeys> tiles(docs, b, T, q0);  // key tiles of the block: the fills
    const int wg = threadIdx.x / 128;                                      // kAttnTmaConsumers: the producer
    const AttnRing ring = attn_ring_init(attn_tma_smem + L::bars, 1);

    if (wg == kAttnTmaConsumers) {
        setmaxnreg_dec<kAttnTmaProducerRegs>();
        if (threadIdx.x == kAttnTmaConsumers * 128) {
            const CUtensorMap* maps[kAttnTmaConsumers] = {&qkv_map, &qkv_map};
            const int cols[kAttnTmaConsumers] = {h * D, h * D};
            attn_produce_kv<D, kAttnTmaConsumers, L, kAttnTmaKeys>(attn_tma_smem, ring, maps, cols, q0, &qkv_map,
                                                                   (H + g_kv) * D, (H + KV + g_kv) * D,
                                                                   tiles.first * kAttnTmaKeys, tiles.count(), b);
        }
        return;
    }

    setmaxnreg_inc<kAttnTmaConsumerRegs>();
    const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const int r0 = q0 + wg * kAttnWgTile;  // this warpgroup's first row
    // Key tiles it sees (none when its rows are past T), a range of the block's.
    const AttnKeyTiles<kAttnWgTile, kAttnTmaKeys> mine(docs, b, T, min(r0, T - 1));
    const bool active = r0 < T;
    const int row0 = r0 + warp * 16 + g;
    int first_key[2];
    attn_row_starts<2>(first_key, docs, b, T, row0, 8);
    uint32_t qf[D / 16][4];
    float o[D / 8][4];
    attn_zero<D>(o);
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g and g + 8, base-2 units

    mbarrier_wait_parity(ring.once, 0);
    attn_load_a_sw128<D>(qf, L::once_tile(attn_tma_smem, wg), warp, lane);
    for (int j = 0; j < tiles.count(); ++j) {
        const int s = attn_ring_take(ring, j), tile = tiles.first + j;
        if (active && tile >= mine.first && tile <= mine.last) {  // warpgroup-uniform
            constexpr int N = kAttnTmaKeys;
            float sc[N / 8][4];
            attn_wg_abt_sw128<D, N>(sc, qf, L::slot_tile(attn_tma_smem, s, 0));  // S = Q K^T
            attn_online_softmax<D, N / 8>(sc, o, m, l, row0, tile * N, T, t4, mine.masked(tile), scale_log2, first_key);
            attn_wg_ab_sw128<D, N>(o, sc, L::slot_tile(attn_tma_smem, s, 1));  // O += P V
        }
        mbarrier_arrive(&ring.empty[s]);
    }
    if (active) attn_store_rows<D>(out, lse, o, m, l, b, h, H, T, row0, t4);
    if (active && threadIdx.x % 128 == 0) attn_count_tiles(docs, 0, mine.count());
}

// Backward, dq: Q and dO of the block's 128 rows once (tiles 0-1 and 2-3); the
// ring as in the forward.
template <int D>
using AttnTmaDqSmem = AttnTmaSmem<D, 2 * kAttnTmaConsumers, 2>;

template <int D>
__global__ void __launch_bounds__(kAttnTmaThreads, 1)
    attention_backward_dq_tma_kernel(const __grid_constant__ CUtensorMap qkv_map,
                                     const __grid_constant__ CUtensorMap dout_map, bf16* dqkv, const float* delta,
                                     const float* lse, int T, int H, int KV, float scale, AttnDocs docs) {
    using L = AttnTmaDqSmem<D>;
    extern __shared__ __align__(1024) unsigned char attn_tma_smem[];
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kAttnTmaRows, h = blockIdx.y, b = blockIdx.z;
    const int g_kv = h / (H / KV), width = (H + 2 * KV) * D;
    const AttnKeyTiles<kAttnTmaRows, kAttnWgTile> tiles(docs, b, T, q0);
    const int wg = threadIdx.x / 128;
    const AttnRing ring = attn_ring_init(attn_tma_smem + L::bars, 1);

    if (wg == kAttnTmaConsumers) {
        setmaxnreg_dec<kAttnTmaProducerRegs>();
        if (threadIdx.x == kAttnTmaConsumers * 128) {
            const CUtensorMap* maps[2 * kAttnTmaConsumers] = {&qkv_map, &qkv_map, &dout_map, &dout_map};
            const int cols[2 * kAttnTmaConsumers] = {h * D, h * D, h * D, h * D};
            attn_produce_kv<D, 2 * kAttnTmaConsumers, L>(attn_tma_smem, ring, maps, cols, q0, &qkv_map, (H + g_kv) * D,
                                                         (H + KV + g_kv) * D, tiles.first * kAttnWgTile, tiles.count(),
                                                         b);
        }
        return;
    }

    setmaxnreg_inc<kAttnTmaConsumerRegs>();
    const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const int r0 = q0 + wg * kAttnWgTile;
    const AttnKeyTiles<kAttnWgTile, kAttnWgTile> mine(docs, b, T, min(r0, T - 1));  // as in the forward
    const bool active = r0 < T;
    const int row0 = r0 + warp * 16 + g;
    const float scale_log2 = scale * kLog2e;
    float lse2[2], dlt[2];
    attn_row_stats(lse2, dlt, lse, delta, b, h, H, T, row0);
    int first_key[2];
    attn_row_starts<2>(first_key, docs, b, T, row0, 8);
    uint32_t qf[D / 16][4], dof[D / 16][4];
    float dq[D / 8][4];
    attn_zero<D>(dq);

    mbarrier_wait_parity(ring.once, 0);
    attn_load_a_sw128<D>(qf, L::once_tile(attn_tma_smem, wg), warp, lane);
    attn_load_a_sw128<D>(dof, L::once_tile(attn_tma_smem, kAttnTmaConsumers + wg), warp, lane);
    for (int j = 0; j < tiles.count(); ++j) {
        const int s = attn_ring_take(ring, j), tile = tiles.first + j;
        if (active && tile >= mine.first && tile <= mine.last) {
            const bf16* k_t = L::slot_tile(attn_tma_smem, s, 0);
            float sc[8][4], dp[8][4];
            attn_wg_abt_sw128<D>(sc, qf, k_t);                                 // S = Q K^T
            attn_wg_abt_sw128<D>(dp, dof, L::slot_tile(attn_tma_smem, s, 1));  // dP = dO V^T
            attn_dq_scores(sc, dp, lse2, dlt, row0, tile * kAttnWgTile, T, t4, mine.masked(tile), scale_log2,
                           first_key);
            attn_wg_ab_sw128<D>(dq, sc, k_t);  // dq += dS K
        }
        mbarrier_arrive(&ring.empty[s]);
    }
    if (active) attn_store_dq<D>(dqkv, dq, b, h, T, width, row0, t4, scale);
    if (active && threadIdx.x % 128 == 0) attn_count_tiles(docs, 1, mine.count());
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
                                      const float* lse, int T, int H, int KV, float scale, AttnDocs docs) {
    using L = AttnTmaDkvSmem<D>;
    extern __shared__ __align__(1024) unsigned char attn_tma_smem[];
    const int k0 = blockIdx.x * kAttnTmaRows, g_kv = blockIdx.y, b = blockIdx.z;
    const int group = H / KV, width = (H + 2 * KV) * D;
    // The query tiles of the block's keys, of every head of the group in turn: the fills.
    const AttnQueryTiles<kAttnTmaRows, kAttnWgTile> queries(docs, b, T, k0);
    const int per_head = queries.count(), tiles = per_head * group;
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
            const int h = g_kv * group + j / per_head, i0 = queries.row(j % per_head);
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
    // The query tiles its keys are seen by (none when they are past T), a range of the block's.
    const AttnQueryTiles<kAttnWgTile, kAttnWgTile> mine(docs, b, T, min(kw0, T - 1));
    const bool active = kw0 < T;
    const float scale_log2 = scale * kLog2e;
    float dk[D / 8][4], dv[D / 8][4];
    attn_zero<D>(dk);
    attn_zero<D>(dv);

    mbarrier_wait_parity(ring.once, 0);
    const bf16* k_t = L::once_tile(attn_tma_smem, wg);
    const bf16* v_t = L::once_tile(attn_tma_smem, kAttnTmaConsumers + wg);
    for (int j = 0; j < tiles; ++j) {
        const int s = attn_ring_take(ring, j);
        const int i0 = queries.row(j % per_head), mt = (i0 - kw0) / kAttnWgTile;  // mt: as a tile of mine
        if (active && i0 >= kw0 && mt < mine.count()) {  // queries before its keys or past their documents see none
            const bf16* q_t = L::slot_tile(attn_tma_smem, s, 0);
            const bf16* do_t = L::slot_tile(attn_tma_smem, s, 1);
            const float* stats = L::slot_extra(attn_tma_smem, s);
            float sc[8][4], dp[8][4];
            attn_wg_abt_sw128_ss<D>(sc, k_t, q_t);   // S^T = K Q^T
            attn_wg_abt_sw128_ss<D>(dp, v_t, do_t);  // dP^T = V dO^T
            int key_end[2];                          // read here, not kept through the loop (as version 2: registers)
            attn_key_ends<2>(key_end, docs, b, T, key0, 8);
            attn_dkv_scores(sc, dp, stats, stats + kAttnWgTile, key0, i0, T, t4, mine.masked(mt), scale_log2,
                            key_end[0], key_end[1]);
            attn_wg_ab_sw128<D>(dv, sc, do_t);  // dv += P^T dO
            attn_wg_ab_sw128<D>(dk, dp, q_t);   // dk += dS^T Q
        }
        mbarrier_arrive(&ring.empty[s]);
    }
    if (active) attn_store_dkv<D>(dqkv, dk, dv, b, g_kv, H, KV, T, width, key0, t4, scale);
    if (active && threadIdx.x % 128 == 0) attn_count_tiles(docs, 2, group * mine.count());
}

// A tensor map of a row-major bf16 buffer of B x T rows of `width` columns
// (3-D: columns, tokens, batch), in boxes of 64 x 64 with the 128-byte swizzle.
inline CUtensorMap attn_tensor_map(const bf16* buf, int B, int T, int width, const char* who) {
    CUtensorMap map;
    const uint64_t dims[3] = {uint64_t(width), uint64_t(T), uint64_t(B)};
    const uint64_t strides[2] = {uint64_t(width) * sizeof(bf16), uint64_t(T) * width * sizeof(bf16)};
    const uint32_t box[3] = {kAttnTmaBox, kAttnTmaBox, 1};
    const CUresult r = tma_encode_bf16_3d(&map, buf, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B,
                                          CU_TENSOR_MAP_L2_PROMOTION_L2_128B);
    if (r == CUDA_ERROR_NOT_SUPPORTED) {
        std::fflush(stdout);
        std::fprintf(stderr, "%s: the driver has no cuTensorMapEncodeTiled (CUDA 12 or later needed)\n", who);
        std::exit(EXIT_FAILURE);
    }
    if (r != CUDA_SUCCESS) {
        std::fflush(stdout);
        std::fprintf(stderr,
                     "%s: cuTensorMapEncodeTiled failed (error %d) for a buffer of %d x %d rows of %d columns\n", who,
                     int(r), B, T, width);
        std::exit(EXIT_FAILURE);
    }
    return map;
}

// Version 4 forward (Hopper TMA + warp specialisation, sm_90a), same arguments and results as versions 1-3.
template <int D>
inline void attention_forward_tma_launch(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV,
                                         AttnDocs docs, cudaStream_t stream) {
    const CUtensorMap map = attn_tensor_map(qkv, B, T, (H + 2 * KV) * D, "attention_forward_tma");
    constexpr size_t smem = AttnTmaForwardSmem<D>::bytes;
    CUDA_CHECK(
        cudaFuncSetAttribute(attention_forward_tma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    attention_forward_tma_kernel<D><<<dim3(ceil_div(T, kAttnTmaRows), H, B), kAttnTmaThreads, smem, stream>>>(
        map, out, lse, T, H, KV, kLog2e / std::sqrt(float(D)), docs);
    CUDA_CHECK_LAUNCH("attention_forward_tma_kernel");
}
inline void attention_forward_tma(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                                  AttnDocs docs = {}, cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    attn_require_sm90("attention_forward_tma");
    mbarrier_timeout_watch();
    if (D == 64) attention_forward_tma_launch<64>(out, lse, qkv, B, T, H, KV, docs, stream);
    else attention_forward_tma_launch<128>(out, lse, qkv, B, T, H, KV, docs, stream);
}

template <int D>
inline void attention_backward_tma_launch(bf16* dqkv, const float* delta, const bf16* dout, const bf16* qkv,
                                          const float* lse, int B, int T, int H, int KV, AttnDocs docs,
                                          cudaStream_t stream) {
    const CUtensorMap qkv_map = attn_tensor_map(qkv, B, T, (H + 2 * KV) * D, "attention_backward_tma");
    const CUtensorMap dout_map = attn_tensor_map(dout, B, T, H * D, "attention_backward_tma");
    const float scale = 1.0f / std::sqrt(float(D));
    constexpr size_t dq_smem = AttnTmaDqSmem<D>::bytes, dkv_smem = AttnTmaDkvSmem<D>::bytes;
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dq_tma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(dq_smem)));
    CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dkv_tma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(dkv_smem)));
    attention_backward_dq_tma_kernel<D><<<dim3(ceil_div(T, kAttnTmaRows), H, B), kAttnTmaThreads, dq_smem, stream>>>(
        qkv_map, dout_map, dqkv, delta, lse, T, H, KV, scale, docs);
    CUDA_CHECK_LAUNCH("attention_backward_dq_tma_kernel");
    attention_backward_dkv_tma_kernel<D><<<dim3(ceil_div(T, kAttnTmaRows), KV, B), kAttnTmaThreads, dkv_smem, stream>>>(
        qkv_map, dout_map, dqkv, delta, lse, T, H, KV, scale, docs);
    CUDA_CHECK_LAUNCH("attention_backward_dkv_tma_kernel");
}

// Version 4 backward (Hopper TMA + warp specialisation, sm_90a), same arguments and results as versions 1-3.
inline void attention_backward_tma(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                                   const float* lse, int B, int T, int H, int KV, int D, AttnDocs docs = {},
                                   cudaStream_t stream = 0) {
    attention_check_shape(H, KV, D);
    attn_require_sm90("attention_backward_tma");
    mbarrier_timeout_watch();
    attention_backward_delta(scratch, dout, out, B, T, H, D, stream);
    if (D == 64) attention_backward_tma_launch<64>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, docs, stream);
    else attention_backward_tma_launch<128>(dqkv, scratch, dout, qkv, lse, B, T, H, KV, docs, stream);
}

// Version 4's kernels for dev/perf-report (no CUDA call).
inline void attention_launch_info_tma() {
    const int t = kAttnTmaThreads;
    attn_print_launch_info("attention_forward_tma_kernel", t, AttnTmaForwardSmem<64>::bytes,
                           AttnTmaForwardSmem<128>::bytes, 90);
    attn_print_launch_info("attention_backward_dq_tma_kernel", t, AttnTmaDqSmem<64>::bytes, AttnTmaDqSmem<128>::bytes,
                           90);
    attn_print_launch_info("attention_backward_dkv_tma_kernel", t, AttnTmaDkvSmem<64>::bytes,
                           AttnTmaDkvSmem<128>::bytes, 90);
}

#endif  // KERNELS_ATTENTION_V4_TMA_CUH
