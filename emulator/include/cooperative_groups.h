// Cooperative groups (CUDA's cooperative_groups.h) on the emulator's barriers
// and warp collectives. A group is a set of threads that synchronise and
// exchange values together:
//   thread_block          the block (sync is __syncthreads)
//   thread_block_tile<N>  N consecutive lanes of a warp, N a power of two <= 32
//                         (sync is __syncwarp on the tile's lanes; shfl, ballot,
//                         ... are the warp intrinsics restricted to the tile)
//   coalesced_group       the lanes of a warp that reached coalesced_threads()
//                         together (or a labeled_partition of a warp group)
//   grid_group            the whole grid of a cudaLaunchCooperativeKernel launch
//   cluster_group         the blocks of a thread-block cluster (Hopper), with
//                         their shared memory (map_shared_rank)
// Warp-level groups are described by the mask of their lanes in the warp; a
// thread's rank is the number of group lanes below its own.
#ifndef EMU_COOPERATIVE_GROUPS_H
#define EMU_COOPERATIVE_GROUPS_H

#include <cstring>
#include <type_traits>

#include "cuda_runtime.h"

namespace cooperative_groups {

namespace details {
inline unsigned linear_thread() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
inline unsigned block_threads() { return blockDim.x * blockDim.y * blockDim.z; }
// Rank of `lane` among the set lanes of `mask`.
inline unsigned rank_in(unsigned mask, unsigned lane) { return unsigned(__popc(mask & ((1u << lane) - 1u))); }
// The lane holding rank `r` of `mask` (r < popc(mask)).
inline unsigned lane_of_rank(unsigned mask, unsigned r) {
    for (unsigned l = 0; l < 32; ++l)
        if ((mask >> l & 1u) && r-- == 0) return l;
    return 32;
}
// Bits of `lanes` (a subset of `mask`) renumbered by rank in `mask`.
inline unsigned compact(unsigned mask, unsigned lanes) {
    unsigned r = 0, k = 0;
    for (unsigned l = 0; l < 32; ++l)
        if (mask >> l & 1u) {
            if (lanes >> l & 1u) r |= 1u << k;
            ++k;
        }
    return r;
}
// Every group lane's value of `v`, indexed by rank: one warp collective for
// values of up to 8 bytes, one per 8-byte word for larger ones.
template <class T>
inline void gather(unsigned mask, const T& v, T* out) {
    static_assert(std::is_trivially_copyable<T>::value, "group collectives take trivially copyable values");
    constexpr unsigned words = (sizeof(T) + 7) / 8;
    uint64_t mine[words] = {};
    std::memcpy(mine, &v, sizeof(T));
    uint64_t all[words][32];
    for (unsigned w = 0; w < words; ++w) ::emu::warp_collective(mask, mine[w], all[w]);
    unsigned k = 0;
    for (unsigned l = 0; l < 32; ++l)
        if (mask >> l & 1u) {
            uint64_t buf[words];
            for (unsigned w = 0; w < words; ++w) buf[w] = all[w][l];
            std::memcpy(&out[k++], buf, sizeof(T));
        }
}
}  // namespace details

// The type every group converts to: sync, size and rank.
class thread_group {
public:
    enum class kind { block, warp, grid, cluster };
    void sync() const {
        if (kind_ == kind::block) __syncthreads();
        else if (kind_ == kind::warp) __syncwarp(mask_);
        else if (kind_ == kind::cluster) ::emu::cluster_arrive(true), ::emu::cluster_wait();
        else ::emu::grid_sync();
    }
    unsigned long long size() const {
        if (kind_ == kind::block) return details::block_threads();
        if (kind_ == kind::warp) return unsigned(__popc(mask_));
        if (kind_ == kind::cluster) return 1ull * details::block_threads() * ::emu::cluster_info().nblocks;
        return 1ull * details::block_threads() * gridDim.x * gridDim.y * gridDim.z;
    }
    unsigned long long num_threads() const { return size(); }
    unsigned long long thread_rank() const {
        if (kind_ == kind::block) return details::linear_thread();
        if (kind_ == kind::warp) return details::rank_in(mask_, ::emu::lane_id());
        if (kind_ == kind::cluster)
            return 1ull * ::emu::cluster_info().rank * details::block_threads() + details::linear_thread();
        unsigned long long b = blockIdx.x + 1ull * gridDim.x * (blockIdx.y + 1ull * gridDim.y * blockIdx.z);
        return b * details::block_threads() + details::linear_thread();
    }
    // The lanes of the warp in the group (warp-level groups).
    unsigned emu_mask() const { return mask_; }
    kind emu_kind() const { return kind_; }

protected:
    thread_group(kind k, unsigned mask) : kind_(k), mask_(mask) {}
    kind kind_;
    unsigned mask_;
};

class thread_block : public thread_group {
public:
    thread_block() : thread_group(kind::block, 0) {}
    void sync() const { __syncthreads(); }
    unsigned size() const { return details::block_threads(); }
    unsigned num_threads() const { return size(); }
    unsigned thread_rank() const { return details::linear_thread(); }
    dim3 group_index() const { return dim3(blockIdx.x, blockIdx.y, blockIdx.z); }
    dim3 thread_index() const { return dim3(threadIdx.x, threadIdx.y, threadIdx.z); }
    dim3 dim_threads() const { return blockDim; }
    dim3 group_dim() const { return blockDim; }
};
inline thread_block this_thread_block() { return thread_block(); }

// Shuffles, votes and matches over the lanes of a warp-level group, by rank.
class warp_group : public thread_group {
public:
    void sync() const { __syncwarp(mask_); }
    unsigned num_threads() const { return unsigned(__popc(mask_)); }
    unsigned size() const { return num_threads(); }
    unsigned thread_rank() const { return details::rank_in(mask_, ::emu::lane_id()); }
    template <class T>
    T shfl(T v, unsigned src_rank) const {
        T all[32];
        details::gather(mask_, v, all);
        return all[src_rank % num_threads()];
    }
    // Ranks past the end (or below 0) keep their own value, as the intrinsics do.
    template <class T>
    T shfl_down(T v, unsigned delta) const {
        T all[32];
        details::gather(mask_, v, all);
        unsigned r = thread_rank();
        return r + delta < num_threads() ? all[r + delta] : v;
    }
    template <class T>
    T shfl_up(T v, unsigned delta) const {
        T all[32];
        details::gather(mask_, v, all);
        unsigned r = thread_rank();
        return r >= delta ? all[r - delta] : v;
    }
    template <class T>
    T shfl_xor(T v, unsigned lane_mask) const {
        T all[32];
        details::gather(mask_, v, all);
        unsigned src = thread_rank() ^ lane_mask;
        return src < num_threads() ? all[src] : v;
    }
    unsigned ballot(int pred) const { return details::compact(mask_, __ballot_sync(mask_, pred)); }
    int any(int pred) const { return __any_sync(mask_, pred); }
    int all(int pred) const { return __all_sync(mask_, pred); }
    template <class T>
    unsigned match_any(T v) const {
        return details::compact(mask_, __match_any_sync(mask_, ::emu::pack_bits(v)));
    }
    template <class T>
    unsigned match_all(T v, int& pred) const {
        unsigned same = __match_any_sync(mask_, ::emu::pack_bits(v));
        pred = same == mask_;
        return pred ? details::compact(mask_, mask_) : 0u;
    }

protected:
    explicit warp_group(unsigned mask) : thread_group(kind::warp, mask) {}
};

// Lanes of a warp grouped at run time: coalesced_threads(), labeled_partition(),
// binary_partition(), tiled_partition(group, n).
class coalesced_group : public warp_group {
public:
    explicit coalesced_group(unsigned mask) : warp_group(mask) {}
    unsigned meta_group_rank() const { return meta_rank_; }
    unsigned meta_group_size() const { return meta_size_; }
    coalesced_group& emu_meta(unsigned rank, unsigned size) {
        meta_rank_ = rank;
        meta_size_ = size;
        return *this;
    }

private:
    unsigned meta_rank_ = 0, meta_size_ = 1;
};

// N consecutive lanes of a warp (N a power of two, 1 to 32); tile k of the
// block holds the threads whose linear index divided by N is k.
template <unsigned N, class Parent = void>
class thread_block_tile;
template <unsigned N>
class thread_block_tile<N, void> : public warp_group {
    static_assert(N >= 1 && N <= 32 && (N & (N - 1)) == 0, "thread_block_tile<N>: N must be a power of two, 1 to 32");

public:
    thread_block_tile() : warp_group(tile_mask()) {}
    static constexpr unsigned num_threads() { return N; }
    static constexpr unsigned size() { return N; }
    unsigned thread_rank() const { return ::emu::lane_id() % N; }
    unsigned meta_group_rank() const { return details::linear_thread() / N; }
    unsigned meta_group_size() const { return (details::block_threads() + N - 1) / N; }
    void sync() const { __syncwarp(mask_); }
    // The width argument of the intrinsics does the work for whole tiles.
    template <class T>
    T shfl(T v, int src_rank) const {
        if constexpr (sizeof(T) <= 8) return __shfl_sync(mask_, v, src_rank, int(N));
        else return warp_group::shfl(v, unsigned(src_rank) % N);
    }
    template <class T>
    T shfl_down(T v, unsigned delta) const {
        if constexpr (sizeof(T) <= 8) return __shfl_down_sync(mask_, v, delta, int(N));
        else return warp_group::shfl_down(v, delta);
    }
    template <class T>
    T shfl_up(T v, unsigned delta) const {
        if constexpr (sizeof(T) <= 8) return __shfl_up_sync(mask_, v, delta, int(N));
        else return warp_group::shfl_up(v, delta);
    }
    template <class T>
    T shfl_xor(T v, unsigned lane_mask) const {
        if constexpr (sizeof(T) <= 8) return __shfl_xor_sync(mask_, v, int(lane_mask), int(N));
        else return warp_group::shfl_xor(v, lane_mask);
    }

private:
    static unsigned tile_mask() {
        unsigned lanes = N == 32 ? 0xffffffffu : ((1u << N) - 1u);
        return lanes << (::emu::lane_id() & ~(N - 1));
    }
};
// thread_block_tile<N, thread_block> and the like: the same tile, named with its parent.
template <unsigned N, class Parent>
class thread_block_tile : public thread_block_tile<N, void> {
public:
    thread_block_tile() = default;
    thread_block_tile(const thread_block_tile<N, void>&) {}
};

namespace details {
inline void check_tile_size(unsigned n) {
    if (n == 0 || n > 32 || (n & (n - 1)) != 0)
        ::emu::kernel_fail("tiled_partition(group, n): n must be a power of two from 1 to 32 in the emulator");
}
}  // namespace details

template <unsigned N, class Parent>
inline thread_block_tile<N, Parent> tiled_partition(const Parent&) {
    return thread_block_tile<N, Parent>();
}

// tiled_partition(group, n): tiles of n threads of the parent, by rank. For a
// block or a whole tile these are n consecutive lanes of a warp.
inline thread_group tiled_partition(const thread_group& parent, unsigned n) {
    details::check_tile_size(n);
    if (parent.emu_kind() == thread_group::kind::grid || parent.emu_kind() == thread_group::kind::cluster)
        ::emu::kernel_fail("tiled_partition of a grid_group or cluster_group is not supported");
    unsigned mask = 0;
    if (parent.emu_kind() == thread_group::kind::block) {
        unsigned lanes = n == 32 ? 0xffffffffu : ((1u << n) - 1u);
        mask = lanes << (::emu::lane_id() & ~(n - 1));
    } else {
        unsigned pm = parent.emu_mask();
        unsigned first = details::rank_in(pm, ::emu::lane_id()) / n * n;
        for (unsigned r = first; r < first + n; ++r) {
            unsigned l = details::lane_of_rank(pm, r);
            if (l < 32) mask |= 1u << l;
        }
    }
    return coalesced_group(mask);
}
inline coalesced_group tiled_partition(const coalesced_group& parent, unsigned n) {
    details::check_tile_size(n);
    unsigned pm = parent.emu_mask(), r = parent.thread_rank();
    unsigned first = r / n * n, mask = 0;
    for (unsigned k = first; k < first + n; ++k) {
        unsigned l = details::lane_of_rank(pm, k);
        if (l < 32) mask |= 1u << l;
    }
    return coalesced_group(mask).emu_meta(r / n, (parent.size() + n - 1) / n);
}

// The lanes of the warp that reach this call together: a lane waits here until
// no thread of its block can go on without it, and the lanes of its warp that
// are then waiting at the same call (the same file, line and column: the
// default arguments name the caller's) are the group. (A GPU groups the lanes
// that are converged at the call; the emulator has no notion of convergence.)
#if defined(__has_builtin)
#if __has_builtin(__builtin_COLUMN)
#define EMU_CALL_COLUMN __builtin_COLUMN()
#endif
#endif
#ifndef EMU_CALL_COLUMN
#define EMU_CALL_COLUMN 0u  // g++ 12 knows the caller's line, not its column
#endif
inline coalesced_group coalesced_threads(const char* file = __builtin_FILE(), unsigned line = __builtin_LINE(),
                                         unsigned column = EMU_CALL_COLUMN) {
    return coalesced_group(::emu::coalesce_lanes(file, line, column));
}

// The lanes of a warp-level group with the same label, or the same predicate.
template <class Label>
inline coalesced_group labeled_partition(const warp_group& g, Label label) {
    static_assert(std::is_integral<Label>::value, "labeled_partition takes an integer label");
    return coalesced_group(__match_any_sync(g.emu_mask(), (unsigned long long)label));
}
inline coalesced_group binary_partition(const warp_group& g, bool pred) {
    unsigned yes = __ballot_sync(g.emu_mask(), pred);
    return coalesced_group(pred ? yes : g.emu_mask() & ~yes);
}

// The grid of a cooperative launch (cudaLaunchCooperativeKernel). sync() in a
// kernel launched any other way stops the kernel with a message.
class grid_group : public thread_group {
public:
    grid_group() : thread_group(kind::grid, 0) {}
    void sync() const { ::emu::grid_sync(); }
    bool is_valid() const { return ::emu::in_cooperative_launch(); }
    unsigned long long size() const { return thread_group::size(); }
    unsigned long long num_threads() const { return size(); }
    unsigned long long thread_rank() const { return thread_group::thread_rank(); }
    unsigned long long num_blocks() const { return 1ull * gridDim.x * gridDim.y * gridDim.z; }
    unsigned long long block_rank() const {
        return blockIdx.x + 1ull * gridDim.x * (blockIdx.y + 1ull * gridDim.y * blockIdx.z);
    }
    dim3 group_dim() const { return gridDim; }
    dim3 dim_blocks() const { return gridDim; }
    dim3 block_index() const { return dim3(blockIdx.x, blockIdx.y, blockIdx.z); }
};
inline grid_group this_grid() { return grid_group(); }

// The thread-block cluster of the running block (Hopper): a launch with
// __cluster_dims__ or cudaLaunchAttributeClusterDimension, else a cluster of
// the block alone. sync() is barrier.cluster.arrive + wait: it completes when
// every thread of the cluster that has not returned has arrived, and orders
// the shared memory accesses of all the cluster's blocks (for the race checker
// each arrival releases, the wait acquires). map_shared_rank(p, r) is the same
// place as p in the shared memory of block rank r; a rank outside the cluster,
// an address outside shared memory, or a block that has exited stops the kernel.
class cluster_group : public thread_group {
public:
    using arrival_token = struct {};
    cluster_group() : thread_group(kind::cluster, 0) {}
    static void sync() {
        ::emu::cluster_arrive(true);
        ::emu::cluster_wait();
    }
    static arrival_token barrier_arrive() {
        ::emu::cluster_arrive(true);
        return arrival_token();
    }
    static void barrier_wait() { ::emu::cluster_wait(); }
    static void barrier_wait(arrival_token&&) { ::emu::cluster_wait(); }
    static unsigned query_shared_rank(const void* addr) { return ::emu::cluster_query_rank(addr); }
    template <class T>
    static T* map_shared_rank(T* addr, int rank) {
        return static_cast<T*>(::emu::cluster_map_shared(addr, unsigned(rank)));
    }
    static dim3 block_index() {
        const dim3 d = ::emu::cluster_info().dims;
        return dim3(blockIdx.x % d.x, blockIdx.y % d.y, blockIdx.z % d.z);
    }
    static unsigned block_rank() { return ::emu::cluster_info().rank; }
    static dim3 thread_index() {
        const dim3 b = block_index();
        return dim3(b.x * blockDim.x + threadIdx.x, b.y * blockDim.y + threadIdx.y, b.z * blockDim.z + threadIdx.z);
    }
    static unsigned thread_rank() { return block_rank() * details::block_threads() + details::linear_thread(); }
    static dim3 dim_blocks() { return ::emu::cluster_info().dims; }
    static unsigned num_blocks() { return ::emu::cluster_info().nblocks; }
    static dim3 dim_threads() {
        const dim3 d = dim_blocks();
        return dim3(d.x * blockDim.x, d.y * blockDim.y, d.z * blockDim.z);
    }
    static unsigned num_threads() { return num_blocks() * details::block_threads(); }
    static unsigned size() { return num_threads(); }
    static bool is_valid() { return true; }
};
inline cluster_group this_cluster() { return cluster_group(); }

// Free-function forms.
template <class G>
inline void sync(const G& g) {
    g.sync();
}
template <class G>
inline unsigned long long thread_rank(const G& g) {
    return g.thread_rank();
}
template <class G>
inline unsigned long long group_size(const G& g) {
    return g.size();
}

}  // namespace cooperative_groups

#endif  // EMU_COOPERATIVE_GROUPS_H
