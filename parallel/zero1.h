// ZeRO-1, all of it in one place: optimizer state sharded over the ranks of a
// data-parallel run (Rajbhandari et al., "ZeRO", 2020, stage 1).
//
// The parameters are one flat fp32 buffer (model/params.h's ParamLayout).
// ZeRO-1 pads it to `world` equal shards; rank r keeps the fp32 master weights
// and AdamW moments of shard r only. Each optimizer step then goes:
//
//   1. gradients summed over the ranks, but each shard only on its owner
//      (a reduce-scatter; owners() says where each range of gradients goes);
//   2. the global gradient norm: each rank's shard, squared, summed over the
//      ranks (global_norm());
//   3. AdamW on the owned pieces of every tensor (for_each_owned_piece(),
//      which keeps each tensor's own weight decay);
//   4. the updated weights all-gathered, so every rank has them whole again.
//
// Checkpoints keep the moments in one part per rank (parts()).
//
// Both builds follow these steps with this header. How the bytes travel is
// each build's own: the CPU build moves host vectors through parallel/comm.h
// (MPI or TCP; reduce_scatter() and all_gather() below); the GPU build moves
// device buffers with NCCL (gpu/model.cuh), bucket by bucket as the backward
// finishes each layer.
#ifndef PARALLEL_ZERO1_H
#define PARALLEL_ZERO1_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "model/params.h"
#include "parallel/comm.h"

namespace llama {

// One rank's shard of a flat buffer of `total` elements: the buffer is padded
// to `world` shards of `size` elements (a multiple of 64: 256-byte aligned),
// and this rank owns [begin, end()) (the last rank's may be short or empty).
struct Shard {
    long long total = 0, padded = 0, size = 0, begin = 0;
    static Shard of(long long total, int rank, int world) {
        Shard s;
        s.total = total;
        s.size = ((total + world - 1) / world + 63) / 64 * 64;
        s.padded = s.size * world;
        s.begin = s.size * rank;
        return s;
    }
    long long end() const { return std::min(begin + size, total); }
    long long owned() const { return std::max(0LL, end() - begin); }
    // The part of [offset, offset + n) this rank owns, as [lo, hi) (empty when lo >= hi).
    void clip(long long offset, long long n, long long& lo, long long& hi) const {
        lo = std::max(offset, begin);
        hi = std::min(offset + n, end());
    }
};

class Zero1 {
public:
    // Off (or one rank): a single shard that is the whole buffer, so the same
    // code paths update everything.
    Zero1() = default;
    Zero1(long long total, int rank, int world, bool on)
        : on_(on && world > 1), world_(on_ ? world : 1), shard_(Shard::of(total, on_ ? rank : 0, world_)) {}

    bool on() const { return on_; }
    const Shard& shard() const { return shard_; }

    // Step 1: the owners of the gradients [begin, begin + n): f(owner, lo, hi)
    // for each rank whose shard holds part of the range.
    template <class F>
    void owners(long long begin, long long n, F&& f) const {
        for (long long owner = begin / shard_.size; owner < world_ && owner * shard_.size < begin + n; ++owner)
            f(int(owner), std::max(begin, owner * shard_.size), std::min(begin + n, (owner + 1) * shard_.size));
    }

    // Step 2: the global norm from this rank's squared norm (of its shard when
    // on; of everything when off), `sum` summing a number over the ranks.
    template <class Sum>
    double global_norm(double local_squared, Sum&& sum) const {
        return std::sqrt(on_ ? sum(local_squared) : local_squared);
    }

    // Step 3: f(tensor, lo, hi, local) for the part [lo, hi) of each tensor in
    // this rank's shard, which sits at `local` in the shard-sized buffers
    // (master weights and moments).
    template <class F>
    void for_each_owned_piece(const ParamLayout& layout, F&& f) const {
        for (const ParamTensor& t : layout.tensors()) {
            long long lo, hi;
            shard_.clip(t.offset, t.numel, lo, hi);
            if (lo < hi) f(t, lo, hi, lo - shard_.begin);
        }
    }

    // Checkpoints: every rank's shard that holds something, in rank order
    // (a tiny model on many ranks leaves the last ones empty).
    static std::vector<std::pair<int, Shard>> parts(long long total, int world) {
        std::vector<std::pair<int, Shard>> out;
        for (int r = 0; r < world; ++r) {
            const Shard s = Shard::of(total, r, world);
            if (s.owned() > 0) out.push_back({r, s});
        }
        return out;
    }

    // Steps 1 and 4 on host vectors of the whole buffer (the CPU build):
    // reduce_scatter() leaves this rank's shard of `v` summed over the ranks
    // (the rest of `v` is stale); all_gather() fills `v` with every rank's shard.
    void reduce_scatter(const Comm& comm, std::vector<float>& v) {
        to_padded(v);
        comm.reduce_scatter_sum(padded_.data(), shard_.size);
        std::copy(padded_.begin() + shard_.begin, padded_.begin() + shard_.end(), v.begin() + shard_.begin);
    }
    void all_gather(const Comm& comm, std::vector<float>& v) {
        to_padded(v);
        comm.all_gather(padded_.data(), shard_.size);
        std::copy(padded_.begin(), padded_.begin() + (long long)v.size(), v.begin());
    }

private:
    void to_padded(const std::vector<float>& v) {
        padded_.assign(size_t(shard_.padded), 0.0f);
        std::copy(v.begin(), v.end(), padded_.begin());
    }
    bool on_ = false;
    int world_ = 1;
    Shard shard_;
    std::vector<float> padded_;  // the host path's staging, shard.padded floats
};

}  // namespace llama

#endif  // PARALLEL_ZERO1_H
