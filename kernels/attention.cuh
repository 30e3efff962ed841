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
// The math, for one query row i of head h (scale = 1/sqrt(D), keys j <= i,
// and j at or after the start of i's document when the sequences pack
// documents: see AttnDocs in kernels/attention/common.cuh):
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
// The versions, with the same arguments and results, each in its own file
// under kernels/attention/ and a row of the table below (a new version is one
// file and one row):
//   1 simple  CUDA cores: one warp per query row (forward, dq) or key row (dk,
//             dv), one lane per key (or query) of a 32-wide tile
//   2 mma     tensor cores: mma.sync m16n8k16, ldmatrix, cp.async double
//             buffering, 64 x 64 tiles (the model's default, every GPU)
//   3 wgmma   Hopper (sm_90a): version 2's tiles, each block one warpgroup,
//             the products by wgmma.mma_async
//   4 tma     Hopper (sm_90a): a producer warp loads swizzled tiles by TMA into
//             a ring of shared-memory slots guarded by mbarriers, two consumer
//             warpgroups run wgmma products on them
// kernels/attention/common.cuh holds what they share. attention_forward and
// attention_backward (below) run the version asked for, 2 unless told. The
// backward needs attention_backward_scratch(B, T, H) floats of scratch
// (Delta). Head dims 64 and 128; H a multiple of KV; any T >= 1. Index
// arithmetic that can pass 2^31 is done in size_t.
#ifndef KERNELS_ATTENTION_CUH
#define KERNELS_ATTENTION_CUH

#include <cstdio>
#include <cstdlib>

#include "kernels/attention/common.cuh"
#include "kernels/attention/v1_simple.cuh"
#include "kernels/attention/v2_mma.cuh"
#include "kernels/attention/v3_wgmma.cuh"
#include "kernels/attention/v4_tma.cuh"

using AttentionForwardFn = void (*)(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                                    AttnDocs docs, cudaStream_t stream);
using AttentionBackwardFn = void (*)(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                                     const float* lse, int B, int T, int H, int KV, int D, AttnDocs docs,
                                     cudaStream_t stream);
struct AttentionVersion {
    int number;
    const char* name;
    int min_arch;  // the oldest GPU it runs on, sm_XY (90: sm_90a kernels, H100 and H200)
    AttentionForwardFn forward;
    AttentionBackwardFn backward;
    void (*launch_info)();  // its kernels' launch configurations, for dev/perf-report
};

// The one list of versions: train_llama's --attention-kernel, the model's
// dispatch, dev/cuda/attention (--list-versions prints it for the scripts) and
// the tests read it.
inline constexpr AttentionVersion kAttentionVersionTable[] = {
    {1, "simple", 80, attention_forward_simple, attention_backward_simple, attention_launch_info_simple},
    {2, "mma", 80, attention_forward_mma, attention_backward_mma, attention_launch_info_mma},
    {3, "wgmma", 90, attention_forward_wgmma, attention_backward_wgmma, attention_launch_info_wgmma},
    {4, "tma", 90, attention_forward_tma, attention_backward_tma, attention_launch_info_tma},
};
constexpr int kAttentionVersions = int(sizeof(kAttentionVersionTable) / sizeof(kAttentionVersionTable[0]));
constexpr int kAttentionDefaultVersion = 2;

// Row `version` of the table (1-based, as the flag counts); stops with a message if there is none.
inline const AttentionVersion& attention_version(int version) {
    if (version < 1 || version > kAttentionVersions) {
        std::fflush(stdout);
        std::fprintf(stderr, "attention: version %d: the versions are 1 to %d\n", version, kAttentionVersions);
        std::exit(EXIT_FAILURE);
    }
    return kAttentionVersionTable[version - 1];
}

// Whether this GPU can run version v (sm_90a code runs on sm_90 only); `arch`
// gets the GPU's sm_XY number.
inline bool attention_version_runs_here(const AttentionVersion& v, int& arch) {
    const bool hopper = attn_wgmma_supported(arch);
    return v.min_arch == 90 ? hopper : arch >= v.min_arch;
}

// One line per version, "NUMBER NAME sm_ARCH", the default marked
// (dev/cuda/attention --list-versions, train_llama --list-attention-versions).
inline void attention_print_versions() {
    for (const AttentionVersion& v : kAttentionVersionTable)
        std::printf("%d %s sm_%d%s\n", v.number, v.name, v.min_arch,
                    v.number == kAttentionDefaultVersion ? " (default)" : "");
}

// The kernels the model uses. docs: the documents packed into the sequences
// (kernels/attention/common.cuh: AttnDocs), none by default.
inline void attention_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int H, int KV, int D,
                              cudaStream_t stream = 0, int version = kAttentionDefaultVersion, AttnDocs docs = {}) {
    attention_version(version).forward(out, lse, qkv, B, T, H, KV, D, docs, stream);
}

inline void attention_backward(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const bf16* out,
                               const float* lse, int B, int T, int H, int KV, int D, cudaStream_t stream = 0,
                               int version = kAttentionDefaultVersion, AttnDocs docs = {}) {
    attention_version(version).backward(dqkv, scratch, dout, qkv, out, lse, B, T, H, KV, D, docs, stream);
}

#endif  // KERNELS_ATTENTION_CUH
