// The kernel side of the emulator: built-in variables, barriers, warp intrinsics,
// shared memory, atomics and device math. Every CUDA thread runs as a fiber; the
// functions declared `extern` here live in emulator/src/scheduler.cpp, which is
// compiled without sanitizer instrumentation so that its bookkeeping is not
// mistaken for kernel memory traffic.
#ifndef EMU_DEVICE_H
#define EMU_DEVICE_H

#include <cmath>
#include <math.h>  // isfinite, isnan, isinf unqualified, as CUDA's math headers declare them
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <climits>
#include <type_traits>
#include <functional>
#include <vector>
#include "emu/types.h"

#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__  // an ordinary global, which host and kernels share
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __cluster_dims__(...)  // emu_rewrite reads it; a header it does not rewrite drops it
#define __grid_constant__
#define __align__(n) alignas(n)
#ifndef __restrict__
#define __restrict__ __restrict
#endif

namespace emu {

// What one CUDA thread sees of itself; set by the scheduler before each switch.
struct ThreadCoords {
    uint3 threadIdx;
    uint3 blockIdx;
    dim3 blockDim;
    dim3 gridDim;
    unsigned lane;  // threadIdx linearised, modulo 32
};
// __thread, not thread_local: no initialisation wrapper, so each access is one load.
extern __thread ThreadCoords* tls_coords;

// Atomics (and strong stores in inline PTX) run on this OS thread that
// changed memory. A thread that sets a flag another thread polls makes
// progress; one that only polls it does not (see poll_pause). The fibers of an OS thread share the count, so it is read
// and written with relaxed atomics: the race checker neither reports it nor sees order in it.
extern __thread unsigned long long atomic_changes;
inline void count_change(bool changed) {
    if (changed)
        __atomic_store_n(&atomic_changes, __atomic_load_n(&atomic_changes, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}
// Lets the other threads run before the caller goes on, so a thread that polls
// a flag waits for the thread that sets it: __nanosleep, a strong load in
// inline PTX (ld.volatile, ld.relaxed, ld.acquire), and an integer atomic
// that left memory as it was (an atomic read such as atomicAdd(p, 0), a
// compare-and-swap that failed, an exchange that found its own value).
void poll_pause();
// After an integer read-modify-write atomic.
inline void atomic_done(bool changed) {
    if (changed) count_change(true);
    else poll_pause();
}

// Barrier over the block's fibers. op: 0 plain, 1 count, 2 and, 3 or.
int block_sync(int op, int pred);
// Warp collective: every lane of `mask` (restricted to lanes that exist) deposits
// `mine`; returns when all have; `all` receives the 32 deposits (lanes that did not
// take part read as all ones). Returns the effective mask.
unsigned warp_collective(unsigned mask, uint64_t mine, uint64_t* all);
unsigned active_lanes();
// Shared memory of the running block.
void* dynamic_shared();
int register_shared_slot();
void* shared_slot(int slot, std::size_t bytes, std::size_t align);
// Aborts with the thread and block named.
[[noreturn]] void kernel_fail(const char* what);

// cp.async bookkeeping of one CUDA thread (kernels/ptx.h uses it): copies issued
// and not yet waited for, each tagged with the commit group it belongs to.
struct AsyncCopy {
    void* dst;
    const void* src;
    unsigned bytes;
    unsigned group;
};
struct AsyncCopyState {
    std::vector<AsyncCopy> pending;
    unsigned committed = 0;
};
AsyncCopyState& async_copy_state();

// wgmma.mma_async bookkeeping of one CUDA thread (kernels/ptx.h uses it): the
// products issued and not yet waited for, each run when wgmma.wait_group
// retires its commit group (so a kernel that reads its accumulators early, or
// changes the shared memory operand before the wait, sees what a GPU would
// not guarantee); `fenced` says a wgmma.fence came since the last wait.
struct WgmmaOp {
    unsigned group;
    std::function<void()> run;
};
struct WgmmaState {
    std::vector<WgmmaOp> pending;
    unsigned committed = 0;
    bool fenced = false;
};
WgmmaState& wgmma_state();

// mbarrier (Hopper's shared-memory transaction barrier; kernels/ptx.h uses
// it). The emulator keeps each barrier's state beside the block, keyed by its
// shared-memory address: the arrivals a phase needs, those still missing, the
// transaction bytes still expected, and the phases completed. A phase completes
// when every arrival has come and the bytes are all in.
void mbarrier_init(void* bar, unsigned count);
// `count` arrivals, after announcing `tx_bytes` more expected bytes.
void mbarrier_arrive(void* bar, unsigned tx_bytes, unsigned count = 1);
// Announces `tx_bytes` more expected bytes (mbarrier.expect_tx), no arrival.
void mbarrier_expect_tx(void* bar, unsigned tx_bytes);
// Bytes of an asynchronous copy that landed (TMA's complete_tx).
void mbarrier_complete_tx(void* bar, unsigned bytes);
// Whether the phase of parity `parity` has completed; if not, lets the other
// threads run once before answering again.
bool mbarrier_try_wait(void* bar, unsigned parity);
// Blocks until the phase of parity `parity` has completed.
void mbarrier_wait(void* bar, unsigned parity);

// Cooperative groups and libcu++ (cooperative_groups.h, cuda/barrier).
// Whether the running kernel came from cudaLaunchCooperativeKernel.
bool in_cooperative_launch();
// grid.sync(): returns when every thread of the grid that has not returned has arrived.
void grid_sync();
// coalesced_threads(): parks the lane until no thread of the block can go on;
// then the lanes of the warp parked at the same call (file, line, column) form
// the group (a mask).
unsigned coalesce_lanes(const char* file, unsigned line, unsigned column);
// The phases an mbarrier has completed (cuda::barrier's arrival tokens).
unsigned mbarrier_phase(void* bar);
// One arrival that also lowers the barrier's count for the phases after this one.
void mbarrier_arrive_drop(void* bar);

// Thread-block clusters (Hopper). A launch without clusters runs every block
// as a cluster of one (not explicit), as the GPU does.
struct ClusterInfo {
    dim3 dims;         // blocks per cluster in x, y, z
    unsigned rank;     // the running block's rank in its cluster (x fastest)
    unsigned nblocks;  // blocks in the cluster
    bool is_explicit;  // launched with clusters (__cluster_dims__ or the launch attribute)
};
ClusterInfo cluster_info();
// The cluster barrier (barrier.cluster.arrive / .wait; cluster.sync() is both):
// a phase completes when every thread of the cluster that has not returned has
// arrived. `release` false: .relaxed (orders nothing for the race checker).
void cluster_arrive(bool release);
void cluster_wait();
// The same place as `p` (in the shared memory of a block of the cluster) in the
// shared memory of the block of rank `rank`; the rank and the address are checked.
void* cluster_map_shared(const void* p, unsigned rank);
// The rank of the block whose shared memory holds `p`.
unsigned cluster_query_rank(const void* p);
// A kernel declared __cluster_dims__(x, y, z) checks the launch gave it those clusters.
void declared_cluster_dims(unsigned x, unsigned y, unsigned z);

template <class T, class Tag>
T& static_shared(Tag) {
    static const int slot = register_shared_slot();
    return *static_cast<T*>(shared_slot(slot, sizeof(T), alignof(T) < 16 ? 16 : alignof(T)));
}

template <class T>
inline uint64_t pack_bits(const T& v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                  "warp intrinsics take values of at most 8 bytes");
    uint64_t r = 0;
    std::memcpy(&r, &v, sizeof(T));
    return r;
}
template <class T>
inline T unpack_bits(uint64_t r) {
    T v;
    std::memcpy(&v, &r, sizeof(T));
    return v;
}
inline unsigned lane_id() { return tls_coords->lane; }

}  // namespace emu

// Built-in variables: thread-local copies of the running CUDA thread's
// coordinates, which the scheduler writes before it switches to a fiber (so a
// read is one load, as through a macro). They are variables, not macros, so
// host code may name its own variables `gridDim` or `blockDim` (shadowing
// these), and gdb can print them. Kernels only read them.
extern __thread uint3 threadIdx;
extern __thread uint3 blockIdx;
extern __thread dim3 blockDim;
extern __thread dim3 gridDim;
constexpr int warpSize = 32;

// ---- barriers -------------------------------------------------------------
inline void __syncthreads() { ::emu::block_sync(0, 0); }
inline int __syncthreads_count(int p) { return ::emu::block_sync(1, p != 0); }
inline int __syncthreads_and(int p) { return ::emu::block_sync(2, p != 0); }
inline int __syncthreads_or(int p) { return ::emu::block_sync(3, p != 0); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    uint64_t all[32];
    ::emu::warp_collective(mask, 0, all);
}
inline unsigned __activemask() { return ::emu::active_lanes(); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- warp shuffles, votes and reductions ----------------------------------
template <class T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {
    uint64_t all[32];
    ::emu::warp_collective(mask, ::emu::pack_bits(var), all);
    unsigned lane = ::emu::lane_id();
    unsigned seg = lane & ~unsigned(width - 1);
    return ::emu::unpack_bits<T>(all[seg + (unsigned(srcLane) & unsigned(width - 1))]);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    uint64_t all[32];
    ::emu::warp_collective(mask, ::emu::pack_bits(var), all);
    unsigned lane = ::emu::lane_id();
    if ((lane & unsigned(width - 1)) < delta) return var;
    return ::emu::unpack_bits<T>(all[lane - delta]);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    uint64_t all[32];
    ::emu::warp_collective(mask, ::emu::pack_bits(var), all);
    unsigned lane = ::emu::lane_id();
    if ((lane & unsigned(width - 1)) + delta >= unsigned(width)) return var;
    return ::emu::unpack_bits<T>(all[lane + delta]);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {
    uint64_t all[32];
    ::emu::warp_collective(mask, ::emu::pack_bits(var), all);
    unsigned lane = ::emu::lane_id();
    unsigned src = lane ^ unsigned(laneMask);
    unsigned seg = lane & ~unsigned(width - 1);
    if (src < seg || src >= seg + unsigned(width) || src >= 32) return var;
    return ::emu::unpack_bits<T>(all[src]);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    uint64_t all[32];
    unsigned eff = ::emu::warp_collective(mask, pred != 0, all);
    unsigned r = 0;
    for (unsigned l = 0; l < 32; ++l)
        if ((eff >> l & 1u) && all[l]) r |= 1u << l;
    return r;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) {
    uint64_t all[32];
    unsigned eff = ::emu::warp_collective(mask, pred != 0, all);
    for (unsigned l = 0; l < 32; ++l)
        if ((eff >> l & 1u) && !all[l]) return 0;
    return 1;
}
inline unsigned __match_any_sync(unsigned mask, unsigned long long v) {
    uint64_t all[32];
    unsigned eff = ::emu::warp_collective(mask, v, all);
    unsigned r = 0;
    for (unsigned l = 0; l < 32; ++l)
        if ((eff >> l & 1u) && all[l] == v) r |= 1u << l;
    return r;
}
#define EMU_WARP_REDUCE(NAME, T, INIT, OP)                                     \
    inline T NAME(unsigned mask, T v) {                                        \
        uint64_t all[32];                                                      \
        unsigned eff = ::emu::warp_collective(mask, ::emu::pack_bits(v), all); \
        T r = INIT;                                                            \
        for (unsigned l = 0; l < 32; ++l)                                      \
            if (eff >> l & 1u) {                                               \
                T x = ::emu::unpack_bits<T>(all[l]);                           \
                r = OP;                                                        \
            }                                                                  \
        return r;                                                              \
    }
EMU_WARP_REDUCE(__reduce_add_sync, unsigned, 0u, r + x)
EMU_WARP_REDUCE(__reduce_add_sync, int, 0, int(unsigned(r) + unsigned(x)))
EMU_WARP_REDUCE(__reduce_min_sync, unsigned, UINT_MAX, (x < r ? x : r))
EMU_WARP_REDUCE(__reduce_min_sync, int, INT_MAX, (x < r ? x : r))
EMU_WARP_REDUCE(__reduce_max_sync, unsigned, 0u, (x > r ? x : r))
EMU_WARP_REDUCE(__reduce_max_sync, int, INT_MIN, (x > r ? x : r))
EMU_WARP_REDUCE(__reduce_and_sync, unsigned, ~0u, r& x)
EMU_WARP_REDUCE(__reduce_or_sync, unsigned, 0u, r | x)
EMU_WARP_REDUCE(__reduce_xor_sync, unsigned, 0u, r ^ x)
#undef EMU_WARP_REDUCE

// ---- atomics (safe across the OS threads that run blocks) -----------------
namespace emu {
template <class T, class F>
inline T atomic_update(T* p, F f) {
    using U = std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
    U* q = reinterpret_cast<U*>(p);
    U old = __atomic_load_n(q, __ATOMIC_RELAXED);
    for (;;) {
        T o = unpack_bits<T>(old);
        T n = f(o);
        U nb = 0;
        std::memcpy(&nb, &n, sizeof(T));
        if (__atomic_compare_exchange_n(q, &old, nb, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
            count_change(nb != old);
            return o;
        }
    }
}
}  // namespace emu
// Each counts whether it changed memory, or lets the other threads run if it
// did not (see atomic_done): o is the old value, v the operand.
#define EMU_ATOMIC_RMW(T, NAME, BUILTIN, CHANGED)    \
    inline T NAME(T* p, T v) {                       \
        const T o = BUILTIN(p, v, __ATOMIC_SEQ_CST); \
        ::emu::atomic_done(CHANGED);                 \
        return o;                                    \
    }
#define EMU_ATOMIC_INT(T)                                                                   \
    EMU_ATOMIC_RMW(T, atomicAdd, __atomic_fetch_add, v != 0)                                \
    EMU_ATOMIC_RMW(T, atomicSub, __atomic_fetch_sub, v != 0)                                \
    EMU_ATOMIC_RMW(T, atomicAnd, __atomic_fetch_and, (o & v) != o)                          \
    EMU_ATOMIC_RMW(T, atomicOr, __atomic_fetch_or, (o | v) != o)                            \
    EMU_ATOMIC_RMW(T, atomicXor, __atomic_fetch_xor, v != 0)                                \
    EMU_ATOMIC_RMW(T, atomicExch, __atomic_exchange_n, o != v)                              \
    inline T atomicCAS(T* p, T cmp, T v) {                                                  \
        const T want = cmp;                                                                 \
        __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
        ::emu::atomic_done(cmp == want && want != v);                                       \
        return cmp;                                                                         \
    }                                                                                       \
    inline T atomicMax(T* p, T v) {                                                         \
        return ::emu::atomic_update(p, [v](T o) { return o > v ? o : v; });                 \
    }                                                                                       \
    inline T atomicMin(T* p, T v) {                                                         \
        return ::emu::atomic_update(p, [v](T o) { return o < v ? o : v; });                 \
    }
EMU_ATOMIC_INT(int)
EMU_ATOMIC_INT(unsigned int)
EMU_ATOMIC_INT(unsigned long long)
EMU_ATOMIC_INT(long long)
#undef EMU_ATOMIC_INT
#undef EMU_ATOMIC_RMW
inline float atomicAdd(float* p, float v) {
    return ::emu::atomic_update(p, [v](float o) { return o + v; });
}
inline double atomicAdd(double* p, double v) {
    return ::emu::atomic_update(p, [v](double o) { return o + v; });
}
inline float atomicExch(float* p, float v) {
    return ::emu::unpack_bits<float>(
        atomicExch(reinterpret_cast<unsigned*>(p), ::emu::unpack_bits<unsigned>(::emu::pack_bits(v))));
}
inline float atomicMax(float* p, float v) {
    return ::emu::atomic_update(p, [v](float o) { return fmaxf(o, v); });
}
inline float atomicMin(float* p, float v) {
    return ::emu::atomic_update(p, [v](float o) { return fminf(o, v); });
}
inline unsigned atomicInc(unsigned* p, unsigned lim) {
    return ::emu::atomic_update(p, [lim](unsigned o) { return o >= lim ? 0u : o + 1; });
}
inline unsigned atomicDec(unsigned* p, unsigned lim) {
    return ::emu::atomic_update(p, [lim](unsigned o) { return (o == 0 || o > lim) ? lim : o - 1; });
}

// ---- device math and bit tricks --------------------------------------------
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline void __sincosf(float x, float* s, float* c) {
    *s = sinf(x);
    *c = cosf(x);
}
inline void sincosf_emu(float x, float* s, float* c) {
    *s = sinf(x);
    *c = cosf(x);
}
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float exp2f_emu(float x) { return exp2f(x); }
inline int __float2int_rn(float x) { return int(nearbyintf(x)); }
inline int __float2int_rz(float x) { return int(x); }
inline unsigned __float2uint_rn(float x) { return unsigned(nearbyintf(x)); }
inline float __int2float_rn(int x) { return float(x); }
inline int __float_as_int(float x) { return ::emu::unpack_bits<int>(::emu::pack_bits(x)); }
inline unsigned __float_as_uint(float x) { return ::emu::unpack_bits<unsigned>(::emu::pack_bits(x)); }
inline float __int_as_float(int x) { return ::emu::unpack_bits<float>(::emu::pack_bits(x)); }
inline float __uint_as_float(unsigned x) { return ::emu::unpack_bits<float>(::emu::pack_bits(x)); }
inline long long __double_as_longlong(double x) { return ::emu::unpack_bits<long long>(::emu::pack_bits(x)); }
inline double __longlong_as_double(long long x) { return ::emu::unpack_bits<double>(::emu::pack_bits(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned((unsigned long long)a * b >> 32); }
inline int __mulhi(int a, int b) { return int((long long)a * b >> 32); }
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
    s &= 31;
    return s ? (hi << s) | (lo >> (32 - s)) : hi;
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
    s &= 31;
    return s ? (lo >> s) | (hi << (32 - s)) : lo;
}
// CUDA's overloaded min/max for integers and floats.
#define EMU_MINMAX(T)                                \
    inline T min(T a, T b) { return b < a ? b : a; } \
    inline T max(T a, T b) { return a < b ? b : a; }
EMU_MINMAX(int)
EMU_MINMAX(unsigned int)
EMU_MINMAX(long)
EMU_MINMAX(unsigned long)
EMU_MINMAX(long long)
EMU_MINMAX(unsigned long long)
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
#undef EMU_MINMAX

// Cache-hinted loads and stores are plain memory accesses here.
template <class T>
inline T __ldg(const T* p) {
    return *p;
}
template <class T>
inline T __ldcg(const T* p) {
    return *p;
}
template <class T>
inline T __ldca(const T* p) {
    return *p;
}
template <class T>
inline T __ldcs(const T* p) {
    return *p;
}
template <class T>
inline T __ldlu(const T* p) {
    return *p;
}
template <class T>
inline T __ldcv(const T* p) {
    return *p;
}
template <class T>
inline void __stcg(T* p, T v) {
    *p = v;
}
template <class T>
inline void __stcs(T* p, T v) {
    *p = v;
}
template <class T>
inline void __stwb(T* p, T v) {
    *p = v;
}
template <class T>
inline void __stwt(T* p, T v) {
    *p = v;
}

long long emu_clock64();
inline long long clock64() { return emu_clock64(); }
inline long long __clock64() { return emu_clock64(); }
inline void __nanosleep(unsigned) { emu::poll_pause(); }

#endif  // EMU_DEVICE_H
