// Runs a grid: blocks on one or several OS threads, every CUDA thread of a block
// as a fiber (Boost.Context fcontext). Barriers and warp collectives park a fiber
// and hand control back to the block's scheduler loop, which resumes the fibers in
// turn until all have finished. This file is never compiled with ThreadSanitizer
// instrumentation: its own bookkeeping is not kernel memory traffic. It tells the
// race checker about fibers and about the order barriers create instead.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <map>
#include <string>
#include <vector>

#include <boost/context/detail/fcontext.hpp>

#include "emu/control.h"
#include "emu/device.h"
#include "emu/ptx.h"
#include "emulator/src/internal.h"

#if defined(EMU_TSAN)
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void __tsan_set_fiber_name(void* fiber, const char* name);
}
#define EMU_TSAN_RELEASE(p) __tsan_release((void*)(p))
#define EMU_TSAN_ACQUIRE(p) __tsan_acquire((void*)(p))
#else
#define EMU_TSAN_RELEASE(p) ((void)0)
#define EMU_TSAN_ACQUIRE(p) ((void)0)
#endif

#if defined(EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace bctx = boost::context::detail;

// The built-in variables of the running CUDA thread (emu/device.h).
__thread uint3 threadIdx;
__thread uint3 blockIdx;
__thread dim3 blockDim;
__thread dim3 gridDim;

namespace emu {

__thread ThreadCoords* tls_coords = nullptr;
__thread unsigned long long atomic_changes = 0;

namespace {

struct Block;

struct Fiber {
    ThreadCoords coords;
    Block* block = nullptr;
    unsigned warp = 0;
    bctx::fcontext_t ctx = nullptr;   // where the fiber resumes
    bctx::fcontext_t back = nullptr;  // where it returns to (its scheduler)
    char* stack = nullptr;            // lowest usable byte
    std::size_t stack_size = 0;
    bool done = false;
    bool waiting = false;
    bool polling = false;  // in __nanosleep, a strong PTX load or an atomic that changed nothing (poll_pause)
    void* tsan_fiber = nullptr;
    bool tsan_reused = false;  // its race-checker identity ran an earlier CUDA thread (see take_identity)
    unsigned tsan_serial = 0;  // that identity's History
    void* asan_fake = nullptr;
    char* asan_low = nullptr;  // the memory checker: below here its stack is unpoisoned (see release_stack)
    AsyncCopyState async;
    WgmmaState wgmma;
    bool cluster_arrived = false;  // barrier.cluster.arrive done, its wait not yet
    unsigned cluster_gen = 0;      // the cluster barrier's phase it arrived in
};

struct Warp {
    unsigned exists = 0;    // lanes present in the block
    unsigned exited = 0;    // lanes that returned
    unsigned arrived = 0;   // lanes parked at the current collective
    unsigned released = 0;  // lanes allowed to leave it
    uint64_t slot[32];
    // What the race checker is told about who waited for whom at a collective.
    // One sync object per lane when only some lanes take part; when every lane
    // does (nearly always) one object per generation of such collectives, two
    // alternating: no lane reaches generation g + 2 before every lane has left g.
    char tsan_sync[32];
    char tsan_whole[2];
    unsigned whole_gen = 0;
    uint64_t completed = 0;  // collectives completed (see run_round)
    bool crossed = false;    // a lane used a barrier of the block's (see run_round)
    // coalesced_threads(): lanes parked at a call (and where), and the group
    // each one was given when the block stalled.
    unsigned coalescing = 0;
    uint64_t coalesce_site[32];  // the call: its file, line and column mixed
    unsigned coalesced[32];
};

struct SharedSlot {
    void* ptr = nullptr;
    std::size_t bytes = 0;
    std::size_t align = 16;
};

// One mbarrier's state (see emu/device.h).
struct Mbar {
    unsigned count = 0;    // arrivals per phase
    unsigned pending = 0;  // arrivals still missing in the current phase
    long long tx = 0;      // transaction bytes still expected in the current phase
    unsigned phase = 0;    // phases completed
    char tsan_sync;
};

// The grid-wide barrier of a cooperative launch (grid.sync()). Its blocks all
// run on one OS thread, so plain counters do.
struct GridBarrier {
    long long live = 0;     // threads of the grid that have not returned
    long long arrived = 0;  // threads parked at the current grid.sync()
    unsigned gen = 0;
    char tsan_sync[2];
};

// A thread-block cluster: blocks that run together (interleaved on one OS
// thread) and share a barrier and their shared memory. A launch without
// clusters gives every block a cluster of its own (1x1x1, not explicit), as
// the GPU does.
constexpr unsigned kMaxClusterBlocks = 16;
struct Cluster {
    dim3 dims{1, 1, 1};
    unsigned nblocks = 1;
    bool is_explicit = false;
    Block* blocks[kMaxClusterBlocks] = {};  // by rank
    long long live = 0;                     // threads of the cluster that have not returned
    long long arrived = 0;                  // threads arrived at the current phase of the barrier
    unsigned gen = 0;
    char tsan_sync[2];
};

struct Block {
    bool faulted = false;  // a thread faulted: the block's other threads are abandoned
    Cluster* cluster = nullptr;
    unsigned cluster_rank = 0;  // this block's rank in its cluster
    std::vector<Fiber> fibers;
    GridBarrier* grid = nullptr;        // set for cooperative launches only
    std::map<const void*, Mbar> mbars;  // node-based: no bucket array that the checker's memset would see
    std::vector<Warp> warps;
    std::deque<SharedSlot> slots;
    // The slots this block allocated, for the shared window (a plain array: this
    // file is not instrumented, but std::vector's code may come from a file that is).
    int used_slots[32];
    int n_used_slots = 0;  // more than 32: the window searches every slot
    void* dyn = nullptr;
    std::size_t dyn_bytes = 0;
    int live = 0;
    int arrived = 0;
    unsigned gen = 0;
    int accum[2] = {0, 0};
    int participants[2] = {0, 0};
    char tsan_sync[2];
    char done_sync;
    uint64_t progress = 0;
    const std::function<void()>* body = nullptr;
};

// Per OS thread: the fiber running now and the scheduler's identity.
thread_local Fiber* current = nullptr;
[[maybe_unused]] thread_local void* sched_tsan_fiber = nullptr;
[[maybe_unused]] thread_local const void* sched_stack_bottom = nullptr;
[[maybe_unused]] thread_local std::size_t sched_stack_size = 0;

[[maybe_unused]] char grid_done_sync;
std::atomic<int> configured_threads{0};

// Blocks, or groups of blocks run together, taken and not yet finished by the
// OS threads of every launch: a thread that polls a flag (see poll_pause) may
// be waiting for one of them. An OS thread counts itself before it takes a
// block, so a block never sees the one before it as not yet running.
std::atomic<int> units_running{0};
struct RunningUnit {
    RunningUnit() { ++units_running; }
    ~RunningUnit() { --units_running; }
    RunningUnit(const RunningUnit&) = delete;
    RunningUnit& operator=(const RunningUnit&) = delete;
};

// How long threads that poll a flag may find nothing new, with no other block
// running, before the block is reported as a deadlock (read when
// a block stalls, which is rare).
double spin_seconds() {
    const char* e = std::getenv("EMU_SPIN_SECONDS");
    return e && *e ? std::atof(e) : 10.0;
}

// A thread that polls a flag (poll_pause: __nanosleep, a strong PTX load, or
// an atomic that changed nothing) and finds it unset makes no progress, so a round of the
// block in which nothing else happened looks like a deadlock. An atomic that
// changed memory in the round is progress (the thread that sets a flag with
// atomicExch may itself have just come out of a poll: two warps that hand work
// to each other through flags). Rounds without progress may still not be a
// deadlock: the flag may be set by a block on another OS thread, or with a
// plain store, and a poll loop may pass several polls (an atomic read, then a
// __nanosleep) before it sees the flag another thread set. Such a block runs
// on as long as other blocks run (pausing between rounds: their OS threads
// need the core more), and then for spin_seconds() and at least kPollRounds
// rounds; only then is it reported.
constexpr int kPollRounds = 8;
class PollWatch {
public:
    void progressed() { armed_ = false; }
    // After a round without progress: whether to run another.
    template <class Blocks>
    bool keep_polling(const Blocks& blocks) {
        bool any = false;
        for (const Block* b : blocks)
            for (const Fiber& f : b->fibers) any = any || (f.polling && !f.done);
        if (!any) return false;
        const auto now = std::chrono::steady_clock::now();
        if (units_running.load() > 1) {
            armed_ = false;
            std::this_thread::sleep_for(std::chrono::microseconds(20));
            return true;
        }
        if (!armed_) {
            since_ = now;
            rounds_ = 0;
            armed_ = true;
        }
        return ++rounds_ < kPollRounds || std::chrono::duration<double>(now - since_).count() < spin_seconds();
    }

private:
    std::chrono::steady_clock::time_point since_{};
    int rounds_ = 0;
    bool armed_ = false;
};

std::size_t stack_bytes() {
    static std::size_t bytes = [] {
        const char* e = std::getenv("EMU_STACK_KB");
        std::size_t kb = e ? std::strtoul(e, nullptr, 10) : 0;
#if defined(EMU_TSAN) || defined(EMU_ASAN)
        if (kb == 0) kb = 256;
#else
        if (kb == 0) kb = 64;
#endif
        return kb * 1024;
    }();
    return bytes;
}

std::size_t page_bytes() {
    static std::size_t p = std::size_t(sysconf(_SC_PAGESIZE));
    return p;
}

// Fiber stacks with a guard page below them, so that an overflow is a clear crash.
std::mutex stack_mutex;
std::vector<char*> stack_pool;

// A fresh stack: `pooled` takes one back from the pool when it can.
[[maybe_unused]] char* acquire_stack(bool pooled = true) {
    if (pooled) {
        std::lock_guard<std::mutex> lock(stack_mutex);
        if (!stack_pool.empty()) {
            char* s = stack_pool.back();
            stack_pool.pop_back();
            return s;
        }
    }
    std::size_t total = stack_bytes() + page_bytes();
    void* m = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        std::fprintf(stderr, "emulator: cannot map a fiber stack\n");
        std::abort();
    }
    mprotect(m, page_bytes(), PROT_NONE);
    return static_cast<char*>(m) + page_bytes();
}

// The memory checker leaves the redzones of the frames still on a fiber's stack
// poisoned, and the next fiber must not see them. A fiber that returned has only
// the frames of its exit left, at the top: `low` is where they end (nullptr: the
// whole stack). Unpoisoning only that much, instead of the whole 256 KB each
// time, makes a checked run of a kernel with many small blocks 2 to 3 times faster.
[[maybe_unused]] void release_stack(char* s, [[maybe_unused]] char* low = nullptr) {
#if defined(EMU_ASAN)
    char* from = s;
    if (low && low - s > 4096) from = low - 4096;  // below the last frame: what the switch itself pushed
    __asan_unpoison_memory_region(from, std::size_t(s + stack_bytes() - from));
#endif
    std::lock_guard<std::mutex> lock(stack_mutex);
    stack_pool.push_back(s);
}

void switch_to_scheduler(Fiber* f, bool finishing) {
#if defined(EMU_TSAN)
    __tsan_switch_to_fiber(sched_tsan_fiber, 1 /* __tsan_switch_to_fiber_no_sync */);
#endif
#if defined(EMU_ASAN)
    __sanitizer_start_switch_fiber(finishing ? nullptr : &f->asan_fake, sched_stack_bottom, sched_stack_size);
#else
    (void)finishing;
#endif
    bctx::transfer_t t = bctx::jump_fcontext(f->back, nullptr);
    f->back = t.fctx;
#if defined(EMU_ASAN)
    __sanitizer_finish_switch_fiber(f->asan_fake, nullptr, nullptr);
#endif
}

void yield() { switch_to_scheduler(current, false); }

// The current thread's warp uses a barrier other warps use (see run_round).
void crossing() { current->block->warps[current->warp].crossed = true; }

template <class Pred>
void wait_until(Pred ready) {
    if (ready()) return;
    Fiber* f = current;
    f->waiting = true;
    do {
        yield();
    } while (!ready());
    f->waiting = false;
    ++f->block->progress;
}

void complete_block_barrier(Block& b) {
    unsigned g = b.gen;
    b.participants[g & 1] = b.arrived;
    b.arrived = 0;
    b.accum[(g + 1) & 1] = 0;
    ++b.gen;
    ++b.progress;
}

void complete_cluster_barrier(Cluster& c, Block& b) {
    c.arrived = 0;
    ++c.gen;
    ++b.progress;
}

#if defined(EMU_ASAN)
// A block of a cluster whose threads have all returned has no shared memory on
// a GPU any more: the other blocks' reads of it are reported.
void poison_block_shared(Block& b, bool poison) {
    auto mark = poison ? __asan_poison_memory_region : __asan_unpoison_memory_region;
    if (b.dyn_bytes) mark(b.dyn, b.dyn_bytes);
    for (SharedSlot& s : b.slots)
        if (s.ptr) mark(s.ptr, s.bytes);
}
#endif

void complete_grid_barrier(Block& b) {
    b.grid->arrived = 0;
    ++b.grid->gen;
    ++b.progress;
}

void fiber_entry(bctx::transfer_t t) {
    Fiber* f = static_cast<Fiber*>(t.data);
    f->back = t.fctx;
#if defined(EMU_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &sched_stack_bottom, &sched_stack_size);
#endif
    Block& b = *f->block;
    (*b.body)();
    if (!f->wgmma.pending.empty())
        kernel_fail("thread exited with wgmma.mma_async products never waited for (wgmma.wait_group)");
    f->done = true;
    --b.live;
    ++b.progress;
    b.warps[f->warp].exited |= 1u << f->coords.lane;
    if (b.arrived > 0 && b.arrived == b.live) complete_block_barrier(b);
    {
        Cluster& c = *b.cluster;
        --c.live;
        if (f->cluster_arrived && f->cluster_gen == c.gen) --c.arrived;  // arrived, left without waiting
        if (c.arrived > 0 && c.arrived == c.live) complete_cluster_barrier(c, b);
#if defined(EMU_ASAN)
        if (b.live == 0 && c.nblocks > 1) poison_block_shared(b, true);
#endif
    }
    if (b.grid) {
        --b.grid->live;
        if (b.grid->arrived > 0 && b.grid->arrived == b.grid->live) complete_grid_barrier(b);
    }
    EMU_TSAN_RELEASE(&grid_done_sync);
    EMU_TSAN_RELEASE(&b.done_sync);
#if defined(EMU_ASAN)
    f->asan_low = static_cast<char*>(__builtin_frame_address(0));
#endif
    switch_to_scheduler(f, true);
    std::abort();  // a finished fiber is never resumed
}

void resume(Fiber& f) {
    current = &f;
    tls_coords = &f.coords;
    ::threadIdx = f.coords.threadIdx;
    ::blockIdx = f.coords.blockIdx;
    ::blockDim = f.coords.blockDim;
    ::gridDim = f.coords.gridDim;
    if (!f.waiting) ++f.block->progress;
#if defined(EMU_TSAN)
    // The first switch to a reused identity synchronises, which orders the
    // launch before the new CUDA thread as creating a fiber does.
    __tsan_switch_to_fiber(f.tsan_fiber, f.tsan_reused ? 0 : 1 /* no sync */);
    f.tsan_reused = false;
#endif
#if defined(EMU_ASAN)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, f.stack_size);
#endif
    bctx::transfer_t t = bctx::jump_fcontext(f.ctx, &f);
#if defined(EMU_ASAN)
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    f.ctx = t.fctx;
    current = nullptr;
    tls_coords = nullptr;
}

// EMU_DEADLOCK=hang: a block that can never finish spins on, as a GPU would,
// instead of being reported (to test what a hung kernel does to its caller).
bool hang_on_deadlock() {
    static const bool hang = [] {
        const char* e = std::getenv("EMU_DEADLOCK");
        return e && std::string(e) == "hang";
    }();
    return hang;
}

[[noreturn]] void report_deadlock(Block& b) {
    std::fprintf(stderr,
                 "emulator: deadlock in block [%u,%u,%u]: every thread still running waits at a barrier or warp "
                 "collective that can never complete (a __syncthreads() not reached by all threads, a warp "
                 "mask naming lanes that exited or never arrive, an mbarrier phase whose arrivals or "
                 "transaction bytes never come, or a grid.sync() or cluster barrier that some threads never "
                 "reach), or polls a flag that no thread sets (nothing new for %g s, EMU_SPIN_SECONDS, "
                 "with no other block running)\n",
                 b.fibers[0].coords.blockIdx.x, b.fibers[0].coords.blockIdx.y, b.fibers[0].coords.blockIdx.z,
                 spin_seconds());
    int shown = 0;
    for (Fiber& f : b.fibers) {
        if (f.done) continue;
        if (shown++ == 8) {
            std::fprintf(stderr, "  ...\n");
            break;
        }
        std::fprintf(
            stderr, "  thread [%u,%u,%u] (warp %u lane %u) is %s\n", f.coords.threadIdx.x, f.coords.threadIdx.y,
            f.coords.threadIdx.z, f.warp, f.coords.lane,
            f.polling ? "polling (__nanosleep, a strong PTX load, or an atomic that changed nothing)" : "waiting");
    }
    std::abort();
}

// coalesced_threads(): when no thread of the block can go on, the lanes parked
// at a coalesced_threads() call are the lanes that reached it together; each
// call site of each warp forms one group. Returns whether any group was formed.
bool form_coalesced_groups(Block& b) {
    bool formed = false;
    for (Warp& w : b.warps) {
        while (w.coalescing) {
            unsigned first = unsigned(__builtin_ctz(w.coalescing));
            unsigned group = 0;
            for (unsigned l = 0; l < 32; ++l)
                if ((w.coalescing >> l & 1u) && w.coalesce_site[l] == w.coalesce_site[first]) group |= 1u << l;
            for (unsigned l = 0; l < 32; ++l)
                if (group >> l & 1u) w.coalesced[l] = group;
            w.coalescing &= ~group;
            formed = true;
        }
    }
    if (formed) ++b.progress;
    return formed;
}

#if defined(EMU_TSAN)
// A CUDA thread's race-checker identity: a ThreadSanitizer fiber, and the stack
// that only it ever runs on (so the stack's accesses by earlier CUDA threads are
// that identity's own, never a race).
struct Identity {
    void* fiber;
    char* stack;
    unsigned serial;  // its History (0: none yet)
};

// Creating and destroying a ThreadSanitizer fiber for every CUDA thread cost
// about 20 us each (its shadow stack and trace mapped and unmapped, their pages
// faulted in), more than most kernels' threads run. So an OS thread keeps its
// identities for the whole launch and gives each to a new CUDA thread once
// kReuseAfter more units of work (blocks, clusters) have run.
//
// What that costs in races seen: a reused identity is ordered after everything
// its earlier CUDA threads did (and what their barriers ordered before them), so
// a race between two CUDA threads that share an identity is not seen. Races
// between units fewer than kReuseAfter apart are checked as before, and those
// between units further apart more often than before, as no identity's history
// is dropped during a launch (dev/results/2026-12-07-race-checker-coverage.md).
constexpr std::size_t kReuseAfter = 3;
thread_local std::vector<Identity> tsan_finished;                 // the unit running now
thread_local std::vector<Identity> tsan_recent[kReuseAfter - 1];  // the units before it, newest first
thread_local std::vector<Identity> tsan_free;                     // ready for a new CUDA thread
thread_local void* tsan_cleaner = nullptr;                        // frees finished blocks (finish_block)

// Race reports name a thread by its identity's name, which is its CUDA thread's
// now: an access that an earlier CUDA thread of a reused identity made would be
// put on the wrong one. So a reused identity is named with a serial number
// ("block [3,0,0] thread [63,0,0] (identity 2)"); every identity's last CUDA
// threads are kept here, and the emulator prints them after every report that names it
// (__tsan_on_report below).
constexpr unsigned kHistory = 6;
struct History {
    unsigned long long n = 0;                 // CUDA threads it ran
    uint3 block[kHistory], thread[kHistory];  // the last ones, a ring indexed by n
};
struct Serial {
    unsigned v;
};
// Types of this file only, so that no instrumented copy of their code is linked.
std::atomic_flag history_lock = ATOMIC_FLAG_INIT;  // a spin lock (see HistoryLock)
std::deque<History> histories;                     // by serial - 1
std::vector<Serial> free_serials;

// `annotated`: the checker is told of the lock, which orders the deque's own
// copies (they go through its interceptors); never from a report (a fiber's
// order must not change there).
struct HistoryLock {
    explicit HistoryLock(bool annotated = true) : annotated(annotated) {
        while (history_lock.test_and_set(std::memory_order_acquire)) {
        }
        if (annotated) EMU_TSAN_ACQUIRE(&history_lock);
    }
    ~HistoryLock() {
        if (annotated) EMU_TSAN_RELEASE(&history_lock);
        history_lock.clear(std::memory_order_release);
    }
    bool annotated;
};

// Records that each fiber's identity now runs its CUDA thread, giving an
// identity that has none a serial number. One lock for the whole block.
void record_history(Block& b) {
    HistoryLock lock;
    for (Fiber& f : b.fibers) {
        unsigned& serial = f.tsan_serial;
        if (serial == 0) {
            if (!free_serials.empty()) {
                serial = free_serials.back().v;
                free_serials.pop_back();
            } else {
                histories.emplace_back();
                serial = unsigned(histories.size());
            }
            histories[serial - 1] = History{};
        }
        History& h = histories[serial - 1];
        h.block[h.n % kHistory] = f.coords.blockIdx;
        h.thread[h.n % kHistory] = f.coords.threadIdx;
        ++h.n;
    }
}

// Writes v in decimal at p; returns the end.
char* put_decimal(char* p, unsigned v) {
    char digits[10];
    int n = 0;
    do {
        digits[n++] = char('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = digits[--n];
    return p;
}

char* put_text(char* p, const char* s) {
    while (*s) *p++ = *s++;
    return p;
}

char* put_triple(char* p, uint3 v) {
    p = put_decimal(put_text(p, "["), v.x);
    p = put_decimal(put_text(p, ","), v.y);
    p = put_decimal(put_text(p, ","), v.z);
    return put_text(p, "]");
}

// Race reports name the CUDA thread ("Thread T12 'block [0,0,0] thread [5,0,0]'"),
// and a reused identity's serial (ThreadSanitizer keeps 63 characters). Written
// by hand: snprintf, which ThreadSanitizer intercepts, took 14% of a run of
// small blocks.
void name_identity(const Fiber& f) {
    char name[96];
    char* p = put_triple(put_text(name, "block "), f.coords.blockIdx);
    p = put_triple(put_text(p, " thread "), f.coords.threadIdx);
    if (f.tsan_reused) p = put_text(put_decimal(put_text(p, " (identity "), f.tsan_serial), ")");
    *p = 0;
    __tsan_set_fiber_name(f.tsan_fiber, name);
}

void destroy_identity(const Identity& id) {
    if (id.serial) {
        HistoryLock lock;
        histories[id.serial - 1].n = 0;
        free_serials.push_back(Serial{id.serial});
    }
    __tsan_destroy_fiber(id.fiber);
    munmap(id.stack - page_bytes(), stack_bytes() + page_bytes());  // wipes the checker's memory of the stack
}

void destroy_identities(std::vector<Identity>& v) {
    for (const Identity& id : v) destroy_identity(id);
    v.clear();
}

Identity take_identity(bool& reused) {
    reused = !tsan_free.empty();
    if (reused) {
        Identity id = tsan_free.back();
        tsan_free.pop_back();
        return id;
    }
    return Identity{__tsan_create_fiber(0), acquire_stack(false), 0};
}
#endif

// Ends a unit of work on this OS thread; `last`: no more will follow.
void end_unit([[maybe_unused]] bool last) {
#if defined(EMU_TSAN)
    std::vector<Identity>& oldest = tsan_recent[kReuseAfter - 2];
    tsan_free.insert(tsan_free.end(), oldest.begin(), oldest.end());
    oldest.clear();
    for (std::size_t i = kReuseAfter - 2; i > 0; --i) tsan_recent[i].swap(tsan_recent[i - 1]);
    tsan_recent[0].swap(tsan_finished);
    if (last) {
        destroy_identities(tsan_free);
        for (std::vector<Identity>& v : tsan_recent) destroy_identities(v);
        if (tsan_cleaner) __tsan_destroy_fiber(tsan_cleaner);
        tsan_cleaner = nullptr;
    }
#endif
}

// Makes the block's fibers (not yet started).
void setup_block(Block& b, const GridSpec& g, unsigned block_linear, const std::function<void()>& body) {
    b.body = &body;
    unsigned n = g.block.x * g.block.y * g.block.z;
    unsigned nwarps = (n + 31) / 32;
    b.fibers.resize(n);
    b.warps.resize(nwarps);
    for (unsigned w = 0; w < nwarps; ++w) {
        unsigned lanes = std::min(32u, n - w * 32);
        b.warps[w].exists = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
    }
    uint3 bid{block_linear % g.grid.x, (block_linear / g.grid.x) % g.grid.y, block_linear / (g.grid.x * g.grid.y)};
    // Dynamic shared memory: exactly the bytes the launch asked for, filled with
    // garbage, 1024-byte aligned (TMA's and wgmma's 128-byte swizzle need it).
    if (posix_memalign(&b.dyn, 1024, g.smem) != 0) std::abort();
    b.dyn_bytes = g.smem;
    if (g.smem) std::memset(b.dyn, 0xff, g.smem);
    b.live = int(n);
    for (unsigned i = 0; i < n; ++i) {
        Fiber& f = b.fibers[i];
        f.block = &b;
        f.warp = i / 32;
        f.coords.threadIdx = uint3{i % g.block.x, (i / g.block.x) % g.block.y, i / (g.block.x * g.block.y)};
        f.coords.blockIdx = bid;
        f.coords.blockDim = g.block;
        f.coords.gridDim = g.grid;
        f.coords.lane = i % 32;
#if defined(EMU_TSAN)
        const Identity id = take_identity(f.tsan_reused);
        f.tsan_fiber = id.fiber;
        f.stack = id.stack;
        f.tsan_serial = id.serial;
#else
        f.stack = acquire_stack();
#endif
        f.stack_size = stack_bytes();
        f.ctx = bctx::make_fcontext(f.stack + f.stack_size, f.stack_size, fiber_entry);
    }
#if defined(EMU_TSAN)
    record_history(b);
    for (Fiber& f : b.fibers) name_identity(f);
#endif
}

// Set by a kernel thread that faults (see fault_handler below).
std::atomic<bool> grid_faulted{false};
std::atomic<bool> any_fault{false};

// Resumes every unfinished fiber of the block, warp by warp; returns how many
// are left. A warp whose lanes completed a warp collective (a shuffle, a vote,
// __syncwarp) in their turn, and touched no barrier that other warps use
// (__syncthreads, an mbarrier, a cluster or grid barrier), takes another turn
// at once, up to kWarpTurns in a round: a warp reduction then runs its steps
// one after another on 32 fibers, not one step per round of the whole block.
// That order is one a GPU may take too, and it is cheaper: the lanes' stacks
// stay in the caches, and under the race checker their identities keep their
// slots in its clocks (it has 256: a block of 256 or more threads, resumed in
// turn, had them taken back and handed out again at every collective). A warp
// that works with the others through a barrier keeps pace with them, one turn
// a round, as before (a producer warp does not run ahead of its consumers),
// and the cap keeps a warp that spins on another warp's store from starving it.
constexpr int kWarpTurns = 32;

// A thread that faulted abandons the block (the launch fails, as on a GPU).
int run_round(Block& b) {
    int alive = 0;
    const std::size_t n = b.fibers.size();
    for (std::size_t first = 0; first < n; first += 32) {
        Warp& w = b.warps[first / 32];
        const std::size_t last = std::min(n, first + 32);
        for (int turn = 1;; ++turn) {
            const uint64_t completed = w.completed;
            w.crossed = false;
            int left = 0;
            for (std::size_t i = first; i < last; ++i) {
                Fiber& f = b.fibers[i];
                if (f.done) continue;
                resume(f);
                if (b.faulted) return 0;
                if (!f.done) ++left;
            }
            if (left == 0 || w.completed == completed || w.crossed || turn == kWarpTurns) {
                alive += left;
                break;
            }
        }
    }
    return alive;
}

// Frees what the block's fibers used, once all have finished.
void finish_block(Block& b) {
    std::optional<std::deque<SharedSlot>> fresh_slots;
    fresh_slots.emplace();
#if defined(EMU_TSAN)
    // Kept for end_unit, by the scheduler (the list's memory is its own). An
    // identity whose CUDA thread did not return (a block abandoned) is not reused.
    for (Fiber& f : b.fibers) {
        if (f.done) tsan_finished.push_back(Identity{f.tsan_fiber, f.stack, f.tsan_serial});
        else destroy_identity(Identity{f.tsan_fiber, f.stack, f.tsan_serial});
    }
    // Free the block's memory as a race-checker identity of its own that has seen
    // every fiber finish, so that the scheduler itself stays unordered with the
    // fibers and later blocks on this OS thread are still checked against this one
    // (their identities live on: see end_unit). Nothing is ever ordered after the
    // cleaner, so one serves every block of the OS thread's launch: a new one
    // per block (its state mapped and unmapped) took a quarter of the time of
    // llm.c's attention_forward 1.
    if (!tsan_cleaner) tsan_cleaner = __tsan_create_fiber(0);
    __tsan_switch_to_fiber(tsan_cleaner, 0);
    EMU_TSAN_ACQUIRE(&b.done_sync);
#endif
#if !defined(EMU_TSAN)
    for (Fiber& f : b.fibers) release_stack(f.stack, f.asan_low);  // asan_low: set only by a fiber that returned
#endif
#if defined(EMU_ASAN)
    poison_block_shared(b, false);
#endif
    for (SharedSlot& s : b.slots) std::free(s.ptr);
    // The slot table grows from the fibers (a deque node per 32 slots): its nodes
    // are freed here too, and the block keeps the empty table made before the switch.
    b.slots.swap(*fresh_slots);
    fresh_slots.reset();
    decltype(b.mbars)().swap(b.mbars);  // allocated by the fibers, freed here as the slots are
    std::free(b.dyn);
    std::vector<Fiber>().swap(b.fibers);  // the fibers read their coordinates from here
#if defined(EMU_TSAN)
    __tsan_switch_to_fiber(sched_tsan_fiber, 1 /* no sync */);
#endif
}

void run_block(const GridSpec& g, unsigned block_linear, const std::function<void()>& body) {
    Block b;
    setup_block(b, g, block_linear, body);
    Cluster c;  // the block is a cluster of its own
    c.blocks[0] = &b;
    c.live = b.live;
    b.cluster = &c;
    PollWatch watch;
    const Block* const self[1] = {&b};
    for (;;) {
        // Only this block's threads run on this OS thread during the round.
        const uint64_t before = b.progress + atomic_changes;
        if (run_round(b) == 0) break;
        if (b.progress + atomic_changes != before) watch.progressed();
        else if (!form_coalesced_groups(b) && !hang_on_deadlock() && !watch.keep_polling(self)) report_deadlock(b);
    }
    finish_block(b);
}

// The linear index in the grid of the block of rank `rank` in cluster `cluster`
// (clusters and the blocks in a cluster both numbered x fastest).
unsigned clustered_block_linear(const GridSpec& g, unsigned cluster, unsigned rank) {
    const dim3 d = g.cluster;
    const unsigned ncx = g.grid.x / d.x, ncy = g.grid.y / d.y;
    const unsigned cx = cluster % ncx, cy = (cluster / ncx) % ncy, cz = cluster / (ncx * ncy);
    const unsigned rx = rank % d.x, ry = (rank / d.x) % d.y, rz = rank / (d.x * d.y);
    const unsigned bx = cx * d.x + rx, by = cy * d.y + ry, bz = cz * d.z + rz;
    return bx + g.grid.x * (by + g.grid.y * bz);
}

// Makes the blocks of cluster `index` (blocks[first ...]) and ties them to `c`.
void setup_cluster(Cluster& c, std::deque<Block>& blocks, std::size_t first, const GridSpec& g, unsigned index,
                   const std::function<void()>& body) {
    c.dims = g.cluster;
    c.nblocks = g.cluster.x * g.cluster.y * g.cluster.z;
    c.is_explicit = true;
    for (unsigned r = 0; r < c.nblocks; ++r) {
        Block& b = blocks[first + r];
        setup_block(b, g, clustered_block_linear(g, index, r), body);
        b.cluster = &c;
        b.cluster_rank = r;
        c.blocks[r] = &b;
        c.live += b.live;
    }
}

// Runs blocks that must be resident together (a cooperative grid, a cluster):
// interleaved on the calling OS thread, a round of each in turn.
void run_together(std::deque<Block>& blocks) {
    PollWatch watch;
    std::vector<const Block*> all;
    for (const Block& b : blocks) all.push_back(&b);
    for (;;) {
        uint64_t before = atomic_changes, after = 0;
        int alive = 0;
        for (Block& b : blocks) before += b.progress;
        for (Block& b : blocks)
            if (b.live > 0) alive += run_round(b);
        if (alive == 0 || grid_faulted) break;
        after = atomic_changes;
        for (Block& b : blocks) after += b.progress;
        if (after != before) watch.progressed();
        if (after != before || hang_on_deadlock()) continue;
        bool formed = false;
        for (Block& b : blocks) formed = form_coalesced_groups(b) || formed;
        if (formed || watch.keep_polling(all)) continue;
        for (Block& b : blocks)
            if (b.live > 0) report_deadlock(b);
    }
    for (Block& b : blocks) finish_block(b);
}

// The blocks of one cluster of a clustered launch.
void run_cluster(const GridSpec& g, unsigned index, const std::function<void()>& body) {
    Cluster c;
    std::deque<Block> blocks(g.cluster.x * g.cluster.y * g.cluster.z);  // a deque: the fibers point at their block
    setup_cluster(c, blocks, 0, g, index, body);
    run_together(blocks);
}

// A cooperative launch: every block is resident at once, as grid.sync() needs.
// The blocks run interleaved on the calling OS thread, a round of each in turn.
void run_cooperative_grid(const GridSpec& g, const std::function<void()>& body) {
#if defined(EMU_TSAN)
    sched_tsan_fiber = __tsan_get_current_fiber();
#endif
    unsigned total = g.grid.x * g.grid.y * g.grid.z;
    GridBarrier grid;
    grid.live = (long long)total * g.block.x * g.block.y * g.block.z;
    std::deque<Block> blocks(total);  // a deque: the fibers point at their block
    std::deque<Cluster> clusters;
    if (g.clustered) {
        const unsigned per = g.cluster.x * g.cluster.y * g.cluster.z;
        for (unsigned i = 0; i < total / per; ++i) {
            clusters.emplace_back();
            setup_cluster(clusters.back(), blocks, std::size_t(i) * per, g, i, body);
        }
    } else {
        for (unsigned i = 0; i < total; ++i) {
            setup_block(blocks[i], g, i, body);
            clusters.emplace_back();
            clusters.back().blocks[0] = &blocks[i];
            clusters.back().live = blocks[i].live;
            blocks[i].cluster = &clusters.back();
        }
    }
    for (Block& b : blocks) b.grid = &grid;
    run_together(blocks);
}

}  // namespace

void* dynamic_shared() {
    if (!current) kernel_fail("dynamic shared memory used outside a kernel");
    return current->block->dyn;
}

int register_shared_slot() {
    static std::atomic<int> next{0};
    return next++;
}

namespace {
// The block's static __shared__ variable of `slot`, allocated at its first use
// (by one of the block's threads, or by a thread of its cluster that maps it).
SharedSlot& block_slot(Block& b, int slot, std::size_t bytes, std::size_t align) {
    if (std::size_t(slot) >= b.slots.size()) b.slots.resize(std::size_t(slot) + 1);
    SharedSlot& s = b.slots[std::size_t(slot)];
    if (!s.ptr) {
        // Each array gets its own heap block so that AddressSanitizer sees its ends.
        if (posix_memalign(&s.ptr, align, bytes) != 0) std::abort();
        std::memset(s.ptr, 0xff, bytes);
        s.bytes = bytes;
        s.align = align;
        if (b.n_used_slots < 32) b.used_slots[b.n_used_slots] = slot;
        ++b.n_used_slots;
        EMU_TSAN_RELEASE(&s);
    }
    EMU_TSAN_ACQUIRE(&s);
    return s;
}
}  // namespace

void* shared_slot(int slot, std::size_t bytes, std::size_t align) {
    if (!current) kernel_fail("__shared__ variable used outside a kernel");
    return block_slot(*current->block, slot, bytes, align).ptr;
}

// The shared window (emu/ptx.h): dynamic shared memory from address 0, the
// static __shared__ variable of slot k from (k + 1) * 2^18.
uint32_t shared_window_address(const void* p) {
    if (!current) kernel_fail("__cvta_generic_to_shared used outside a kernel");
    const Block& b = *current->block;
    const char* c = static_cast<const char*>(p);
    const char* dyn = static_cast<const char*>(b.dyn);
    if (b.dyn_bytes && c >= dyn && c < dyn + b.dyn_bytes) return uint32_t(c - dyn);
    const int n = b.n_used_slots <= 32 ? b.n_used_slots : int(b.slots.size());
    for (int i = 0; i < n; ++i) {
        const int k = b.n_used_slots <= 32 ? b.used_slots[i] : i;
        const SharedSlot& s = b.slots[std::size_t(k)];
        const char* base = static_cast<const char*>(s.ptr);
        if (c >= base && c < base + s.bytes) {
            if (k + 1 >= (1 << 14)) kernel_fail("__cvta_generic_to_shared: more than 16383 __shared__ variables");
            return (uint32_t(k + 1) << 18) + uint32_t(c - base);
        }
    }
    kernel_fail("__cvta_generic_to_shared: the address is not in the block's shared memory");
}

void* shared_window_pointer(uint32_t address, std::size_t bytes) {
    if (!current) kernel_fail("a shared-memory address used outside a kernel");
    const Block& b = *current->block;
    const uint32_t region = address >> 18, off = address & 0x3FFFFu;
    char* base = nullptr;
    std::size_t size = 0;
    if (region == 0) {
        base = static_cast<char*>(b.dyn), size = b.dyn_bytes;
    } else if (region - 1 < b.slots.size()) {
        base = static_cast<char*>(b.slots[region - 1].ptr), size = b.slots[region - 1].bytes;
    }
    if (!base || off + bytes > size) {
        char msg[160];
        std::snprintf(msg, sizeof msg, "shared-memory address 0x%x (%zu bytes) is outside the block's shared memory",
                      address, bytes);
        kernel_fail(msg);
    }
    return base + off;
}

std::size_t dynamic_shared_bytes() {
    if (!current) kernel_fail("dynamic shared memory used outside a kernel");
    return current->block->dyn_bytes;
}

int block_sync(int op, int pred) {
    Fiber* f = current;
    if (!f) kernel_fail("__syncthreads() called outside a kernel");
    crossing();
    Block& b = *f->block;
    unsigned g = b.gen;
    b.accum[g & 1] += pred;
    ++b.arrived;
    EMU_TSAN_RELEASE(&b.tsan_sync[g & 1]);
    if (b.arrived == b.live) complete_block_barrier(b);
    else wait_until([&] { return b.gen != g; });
    EMU_TSAN_ACQUIRE(&b.tsan_sync[g & 1]);
    int count = b.accum[g & 1];
    switch (op) {
        case 1:
            return count;
        case 2:
            return count == b.participants[g & 1];
        case 3:
            return count > 0;
        default:
            return 0;
    }
}

namespace {
void warp_barrier(Warp& w, unsigned eff, unsigned lane) {
    unsigned me = 1u << lane;
    // Every lane: one release and one acquire of the generation's object, not
    // one acquire per lane (the checker's clock operations were most of the time
    // of a warp-reduction loop).
    const bool whole = eff == w.exists;
    [[maybe_unused]] char* sync = whole ? &w.tsan_whole[w.whole_gen & 1] : &w.tsan_sync[lane];
    w.arrived |= me;
    EMU_TSAN_RELEASE(sync);
    if ((w.arrived & eff) == eff) {
        w.arrived &= ~eff;
        w.released |= eff & ~me;
        if (whole) ++w.whole_gen;
        ++w.completed;
        ++current->block->progress;
    } else {
        wait_until([&] { return (w.released & me) != 0; });
        w.released &= ~me;
    }
#if defined(EMU_TSAN)
    if (whole) EMU_TSAN_ACQUIRE(sync);
    else
        for (unsigned l = 0; l < 32; ++l)
            if (eff >> l & 1u) EMU_TSAN_ACQUIRE(&w.tsan_sync[l]);
#endif
}
}  // namespace

unsigned warp_collective(unsigned mask, uint64_t mine, uint64_t* all) {
    Fiber* f = current;
    if (!f) kernel_fail("warp intrinsic called outside a kernel");
    Warp& w = f->block->warps[f->warp];
    unsigned lane = f->coords.lane;
    unsigned eff = mask & w.exists;
    if (!(eff >> lane & 1u)) kernel_fail("warp intrinsic called by a lane that is not in its mask");
    w.slot[lane] = mine;
    warp_barrier(w, eff, lane);
    if (all) {
        for (unsigned l = 0; l < 32; ++l) all[l] = (eff >> l & 1u) ? w.slot[l] : ~uint64_t(0);
        warp_barrier(w, eff, lane);
    }
    return eff;
}

WgmmaState& wgmma_state() {
    if (!current) kernel_fail("wgmma used outside a kernel");
    return current->wgmma;
}

namespace {
Mbar& find_mbar(const void* bar, const char* op) {
    if (!current) kernel_fail("mbarrier used outside a kernel");
    crossing();
    auto it = current->block->mbars.find(bar);
    if (it == current->block->mbars.end()) {
        char msg[128];
        std::snprintf(msg, sizeof(msg), "mbarrier %s on an address never given to mbarrier.init", op);
        kernel_fail(msg);
    }
    return it->second;
}
void mbar_complete_phase_if_done(Mbar& m) {
    if (m.pending == 0 && m.tx == 0) {
        ++m.phase;
        m.pending = m.count;
        ++current->block->progress;
    }
}
}  // namespace

void mbarrier_init(void* bar, unsigned count) {
    if (!current) kernel_fail("mbarrier used outside a kernel");
    if (reinterpret_cast<uintptr_t>(bar) % 8) kernel_fail("mbarrier.init: the barrier is not 8-byte aligned");
    if (count == 0 || count >= (1u << 20)) kernel_fail("mbarrier.init: the count must be in [1, 2^20)");
    crossing();
    Mbar& m = current->block->mbars[bar];
    m.count = m.pending = count;
    m.tx = 0;
    m.phase = 0;
}

void mbarrier_arrive(void* bar, unsigned tx_bytes, unsigned count) {
    Mbar& m = find_mbar(bar, "arrive");
    if (m.pending < count) kernel_fail("mbarrier.arrive: more arrivals than the barrier's count in one phase");
    EMU_TSAN_RELEASE(&m.tsan_sync);
    m.tx += tx_bytes;
    m.pending -= count;
    if (m.tx < 0 && m.pending == 0)
        kernel_fail("mbarrier: more transaction bytes arrived than were expected (arrive.expect_tx) in one phase");
    mbar_complete_phase_if_done(m);
}

void mbarrier_expect_tx(void* bar, unsigned tx_bytes) {
    Mbar& m = find_mbar(bar, "expect_tx");
    m.tx += tx_bytes;
}

void mbarrier_complete_tx(void* bar, unsigned bytes) {
    Mbar& m = find_mbar(bar, "complete_tx");
    EMU_TSAN_RELEASE(&m.tsan_sync);
    m.tx -= bytes;
    if (m.tx < 0 && m.pending == 0)
        kernel_fail("mbarrier: more transaction bytes arrived than were expected (arrive.expect_tx) in one phase");
    mbar_complete_phase_if_done(m);
}

// The phase of parity p has completed when the current phase's parity differs
// from p (a fresh barrier is in phase 0, so a wait for parity 1 passes at once).
bool mbarrier_try_wait(void* bar, unsigned parity) {
    Mbar& m = find_mbar(bar, "try_wait");
    auto ready = [&m, parity] { return (m.phase & 1u) != (parity & 1u); };
    if (!ready()) {
        Fiber* f = current;
        f->waiting = true;  // a thread that only spins here is no progress
        yield();
        f->waiting = false;
        if (!ready()) return false;
        ++f->block->progress;
    }
    EMU_TSAN_ACQUIRE(&m.tsan_sync);
    return true;
}

void poll_pause() {
    Fiber* f = current;
    if (!f) return;
    f->waiting = f->polling = true;  // a thread that only polls is no progress (see PollWatch)
    yield();
    f->waiting = f->polling = false;
}

void mbarrier_wait(void* bar, unsigned parity) {
    Mbar& m = find_mbar(bar, "wait");
    wait_until([&m, parity] { return (m.phase & 1u) != (parity & 1u); });
    EMU_TSAN_ACQUIRE(&m.tsan_sync);
}

AsyncCopyState& async_copy_state() {
    if (!current) kernel_fail("cp.async used outside a kernel");
    return current->async;
}

bool in_cooperative_launch() {
    if (!current) kernel_fail("this_grid() used outside a kernel");
    return current->block->grid != nullptr;
}

void grid_sync() {
    Fiber* f = current;
    if (!f) kernel_fail("grid.sync() called outside a kernel");
    crossing();
    Block& b = *f->block;
    if (!b.grid)
        kernel_fail(
            "grid.sync() in a kernel launched with <<<>>> or cudaLaunchKernel: only "
            "cudaLaunchCooperativeKernel keeps every block resident, which grid.sync() needs");
    GridBarrier& g = *b.grid;
    unsigned gen = g.gen;
    ++g.arrived;
    EMU_TSAN_RELEASE(&g.tsan_sync[gen & 1]);
    if (g.arrived == g.live) complete_grid_barrier(b);
    else wait_until([&] { return g.gen != gen; });
    EMU_TSAN_ACQUIRE(&g.tsan_sync[gen & 1]);
}

// ---- thread-block clusters ------------------------------------------------------
namespace {
Cluster& current_cluster(const char* what) {
    if (!current) {
        char msg[128];
        std::snprintf(msg, sizeof msg, "%s used outside a kernel", what);
        kernel_fail(msg);
    }
    return *current->block->cluster;
}

// Where `p` lies in block b's shared memory: region 0 the dynamic shared
// memory, k + 1 the static __shared__ variable of slot k; false if it does not.
bool locate_shared(const Block& b, const void* p, uint32_t& region, std::size_t& offset) {
    const char* c = static_cast<const char*>(p);
    const char* dyn = static_cast<const char*>(b.dyn);
    if (b.dyn_bytes && c >= dyn && c < dyn + b.dyn_bytes) {
        region = 0, offset = std::size_t(c - dyn);
        return true;
    }
    const int n = b.n_used_slots <= 32 ? b.n_used_slots : int(b.slots.size());
    for (int i = 0; i < n; ++i) {
        const int k = b.n_used_slots <= 32 ? b.used_slots[i] : i;
        const SharedSlot& s = b.slots[std::size_t(k)];
        const char* base = static_cast<const char*>(s.ptr);
        if (base && c >= base && c < base + s.bytes) {
            region = uint32_t(k) + 1, offset = std::size_t(c - base);
            return true;
        }
    }
    return false;
}

// The block of rank `rank` of the running thread's cluster, checked.
Block& cluster_block(Cluster& c, unsigned rank, const char* what) {
    char msg[224];
    if (rank >= c.nblocks) {
        std::snprintf(msg, sizeof msg, "%s: block rank %u is outside the cluster of %u blocks", what, rank, c.nblocks);
        kernel_fail(msg);
    }
    Block& t = *c.blocks[rank];
    if (&t != current->block && t.live == 0) {
        std::snprintf(msg, sizeof msg,
                      "%s: block rank %u of the cluster has exited, so its shared memory is gone (a cluster.sync() "
                      "before the owner exits keeps it)",
                      what, rank);
        kernel_fail(msg);
    }
    return t;
}

// The bytes at `offset` of `region` of block t's shared memory (a static
// variable that t has not touched yet is allocated as the cluster's others have it).
char* region_pointer(Cluster& c, Block& t, uint32_t region, std::size_t offset, std::size_t bytes, const char* what) {
    char* base = nullptr;
    std::size_t size = 0;
    if (region == 0) {
        base = static_cast<char*>(t.dyn), size = t.dyn_bytes;
    } else {
        const std::size_t k = region - 1;
        if (k < t.slots.size() && t.slots[k].ptr) {
            EMU_TSAN_ACQUIRE(&t.slots[k]);
            base = static_cast<char*>(t.slots[k].ptr), size = t.slots[k].bytes;
        } else {
            for (unsigned r = 0; r < c.nblocks && !base; ++r) {
                const Block& o = *c.blocks[r];
                if (k < o.slots.size() && o.slots[k].ptr) {
                    SharedSlot& s = block_slot(t, int(k), o.slots[k].bytes, o.slots[k].align);
                    base = static_cast<char*>(s.ptr), size = s.bytes;
                }
            }
        }
    }
    if (!base || offset + bytes > size) {
        char msg[224];
        std::snprintf(msg, sizeof msg,
                      "%s: %zu bytes at offset %zu of %s are outside the shared memory of block rank %u", what, bytes,
                      offset, region == 0 ? "dynamic shared memory" : "a __shared__ variable", t.cluster_rank);
        kernel_fail(msg);
    }
    return base + offset;
}
}  // namespace

ClusterInfo cluster_info() {
    const Cluster& c = current_cluster("a cluster query");
    const Block& b = *current->block;
    ClusterInfo i;
    i.dims = c.dims;
    i.rank = b.cluster_rank;
    i.nblocks = c.nblocks;
    i.is_explicit = c.is_explicit;
    return i;
}

void cluster_arrive(bool release) {
    Cluster& c = current_cluster("barrier.cluster.arrive (cluster.sync())");
    Fiber* f = current;
    if (f->cluster_arrived)
        kernel_fail("barrier.cluster.arrive twice with no barrier.cluster.wait between (cluster barrier_arrive/wait)");
    f->cluster_arrived = true;
    f->cluster_gen = c.gen;
    crossing();
    if (release) EMU_TSAN_RELEASE(&c.tsan_sync[c.gen & 1]);
    ++c.arrived;
    if (c.arrived == c.live) complete_cluster_barrier(c, *f->block);
}

void cluster_wait() {
    Cluster& c = current_cluster("barrier.cluster.wait (cluster.sync())");
    Fiber* f = current;
    if (!f->cluster_arrived)
        kernel_fail(
            "barrier.cluster.wait with no barrier.cluster.arrive before it (cluster barrier_wait without "
            "barrier_arrive)");
    const unsigned gen = f->cluster_gen;
    crossing();
    wait_until([&] { return c.gen != gen; });
    f->cluster_arrived = false;
    EMU_TSAN_ACQUIRE(&c.tsan_sync[gen & 1]);
}

void* cluster_map_shared(const void* p, unsigned rank) {
    const char* what = "map_shared_rank (mapa)";
    Cluster& c = current_cluster(what);
    uint32_t region = 0;
    std::size_t offset = 0;
    bool found = false;
    for (unsigned r = 0; r < c.nblocks && !found; ++r) found = locate_shared(*c.blocks[r], p, region, offset);
    if (!found)
        kernel_fail("map_shared_rank (mapa): the address is not in the shared memory of a block of the cluster");
    return region_pointer(c, cluster_block(c, rank, what), region, offset, 0, what);
}

unsigned cluster_query_rank(const void* p) {
    Cluster& c = current_cluster("query_shared_rank");
    uint32_t region = 0;
    std::size_t offset = 0;
    for (unsigned r = 0; r < c.nblocks; ++r)
        if (locate_shared(*c.blocks[r], p, region, offset)) return r;
    kernel_fail("query_shared_rank: the address is not in the shared memory of a block of the cluster");
}

// The shared::cluster window (emu/ptx.h): bits 27..31 hold the block's rank + 1
// (0: the running block), bits 0..26 its shared::cta address.
uint32_t cluster_window_map(uint32_t address, unsigned rank) {
    const char* what = "mapa.shared::cluster";
    Cluster& c = current_cluster(what);
    if (address >> 27) {
        // A shared::cta address of a __shared__ variable numbered 511 or more cannot be told from a cluster address.
        const std::size_t k = (address >> 18) - 1;
        const Block& b = *current->block;
        if (k < b.slots.size() && b.slots[k].ptr)
            kernel_fail(
                "mapa.shared::cluster: the __shared__ variable's slot is 511 or more, beyond what the "
                "emulator's shared::cluster window holds");
    }
    cluster_block(c, rank, what);
    return ((rank + 1) << 27) | (address & 0x07FFFFFFu);
}

void* cluster_window_pointer(uint32_t address, std::size_t bytes) {
    const char* what = "ld/st.shared::cluster";
    Cluster& c = current_cluster(what);
    const uint32_t tag = address >> 27, cta = address & 0x07FFFFFFu;
    if (tag == 0) return shared_window_pointer(address, bytes);
    Block& t = cluster_block(c, tag - 1, what);
    return region_pointer(c, t, cta >> 18, cta & 0x3FFFFu, bytes, what);
}

void declared_cluster_dims(unsigned x, unsigned y, unsigned z) {
    const Cluster& c = current_cluster("__cluster_dims__");
    if (c.dims.x == x && c.dims.y == y && c.dims.z == z && c.is_explicit) return;
    char msg[320];
    std::snprintf(msg, sizeof msg,
                  "the kernel is declared __cluster_dims__(%u, %u, %u) but runs in clusters of %u x %u x %u%s "
                  "(a template kernel's __cluster_dims__ is not known to its launch in the emulator: launch it with "
                  "cudaLaunchKernelEx and cudaLaunchAttributeClusterDimension)",
                  x, y, z, c.dims.x, c.dims.y, c.dims.z, c.is_explicit ? "" : " (no cluster launch)");
    kernel_fail(msg);
}

unsigned coalesce_lanes(const char* file, unsigned line, unsigned column) {
    uint64_t site = reinterpret_cast<uintptr_t>(file) * 0x9E3779B97F4A7C15ull ^ (uint64_t(line) << 20) ^ column;
    Fiber* f = current;
    if (!f) kernel_fail("coalesced_threads() called outside a kernel");
    Warp& w = f->block->warps[f->warp];
    unsigned me = 1u << f->coords.lane;
    w.coalescing |= me;
    w.coalesce_site[f->coords.lane] = site;
    wait_until([&] { return (w.coalescing & me) == 0; });
    return w.coalesced[f->coords.lane];
}

unsigned mbarrier_phase(void* bar) { return find_mbar(bar, "arrive").phase; }

void mbarrier_arrive_drop(void* bar) {
    Mbar& m = find_mbar(bar, "arrive_and_drop");
    if (m.count == 0) kernel_fail("barrier arrive_and_drop: no arrivals left to drop");
    --m.count;
    mbarrier_arrive(bar, 0);
}

unsigned active_lanes() {
    Fiber* f = current;
    if (!f) kernel_fail("__activemask() called outside a kernel");
    Warp& w = f->block->warps[f->warp];
    return w.exists & ~w.exited;
}

void kernel_fail(const char* what) {
    if (current) {
        const ThreadCoords& c = current->coords;
        std::fprintf(stderr, "emulator: %s, in block [%u,%u,%u], thread [%u,%u,%u]\n", what, c.blockIdx.x, c.blockIdx.y,
                     c.blockIdx.z, c.threadIdx.x, c.threadIdx.y, c.threadIdx.z);
    } else {
        std::fprintf(stderr, "emulator: %s\n", what);
    }
    std::fflush(stderr);
    std::abort();
}

void set_block_threads(int n) { configured_threads = n; }

int block_threads() {
    int n = configured_threads.load();
    if (n > 0) return n;
    const char* e = std::getenv("EMU_THREADS");
    if (e && std::atoi(e) > 0) return std::atoi(e);
    unsigned hw = std::thread::hardware_concurrency();
    return int(std::min(8u, std::max(1u, hw)));
}

namespace {

// A kernel thread that faults (an illegal memory access, as kernels/ptx.h's
// bounded mbarrier wait does on purpose when it gives up) fails the launch as
// on a GPU: its block and the blocks not yet started are abandoned, and the
// runtime's next synchronisation returns cudaErrorIllegalAddress (sticky), so
// the program's error check runs. Only in the plain build: the checkers handle
// faults themselves.

#if !defined(EMU_TSAN) && !defined(EMU_ASAN)
void fault_handler(int sig, siginfo_t* info, void*) {
    Fiber* f = current;
    if (!f) {  // not in a kernel: the default action
        signal(sig, SIG_DFL);
        return;
    }
    const ThreadCoords& c = f->coords;
    char msg[256];
    const int n = std::snprintf(msg, sizeof msg,
                                "emulator: kernel fault (%s at address %p), in block [%u,%u,%u], thread [%u,%u,%u]: "
                                "the launch fails with cudaErrorIllegalAddress\n",
                                sig == SIGSEGV  ? "SIGSEGV"
                                : sig == SIGBUS ? "SIGBUS"
                                                : "SIGILL",
                                info->si_addr, c.blockIdx.x, c.blockIdx.y, c.blockIdx.z, c.threadIdx.x, c.threadIdx.y,
                                c.threadIdx.z);
    if (n > 0) (void)!write(2, msg, std::size_t(std::min(n, int(sizeof msg) - 1)));
    f->block->faulted = true;
    grid_faulted = true;
    any_fault = true;
    f->done = true;
    switch_to_scheduler(f, true);  // never resumed: the fiber's stack is dropped with the block
}

void install_fault_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa;
        std::memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = fault_handler;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;  // left by a jump, not a return: keep the signal unblocked
        sigemptyset(&sa.sa_mask);
        for (int sig : {SIGSEGV, SIGBUS, SIGILL}) sigaction(sig, &sa, nullptr);
    });
}
#else
void install_fault_handler() {}
#endif

}  // namespace

bool take_kernel_fault() { return any_fault.exchange(false); }

void run_grid(const GridSpec& g, const std::function<void()>& body) {
    install_fault_handler();
    grid_faulted = false;
    if (g.cooperative) {
        RunningUnit running;
        run_cooperative_grid(g, body);
        end_unit(true);
        EMU_TSAN_ACQUIRE(&grid_done_sync);
        return;
    }
    // Blocks, or whole clusters (each on one OS thread), are taken in turn by the pool.
    const unsigned per = g.clustered ? g.cluster.x * g.cluster.y * g.cluster.z : 1;
    unsigned total = g.grid.x * g.grid.y * g.grid.z / per;
    unsigned nthreads = std::min<unsigned>(unsigned(block_threads()), total);
    std::atomic<unsigned> next{0};
    auto work = [&] {
#if defined(EMU_TSAN)
        sched_tsan_fiber = __tsan_get_current_fiber();
#endif
        for (;;) {
            RunningUnit running;
            unsigned i = next++;
            if (i >= total || grid_faulted) break;
            if (g.clustered) run_cluster(g, i, body);
            else run_block(g, i, body);
            end_unit(false);
        }
        end_unit(true);
    };
    if (nthreads <= 1) {
        work();
    } else {
        std::vector<std::thread> pool;
        for (unsigned t = 1; t < nthreads; ++t) pool.emplace_back(work);
        work();
        for (std::thread& t : pool) t.join();
    }
    EMU_TSAN_ACQUIRE(&grid_done_sync);
}

}  // namespace emu

#if defined(EMU_TSAN)
// Called by ThreadSanitizer after it has printed a report: for each thread of the
// report that is a reused identity, the CUDA threads it ran (see History).
extern "C" {
int __tsan_get_report_data(void* report, const char** description, int* count, int* stack_count, int* mop_count,
                           int* loc_count, int* mutex_count, int* thread_count, int* unique_tid_count,
                           void** sleep_trace, unsigned long trace_size);
int __tsan_get_report_thread(void* report, unsigned long idx, int* tid, unsigned long* os_id, int* running,
                             const char** name, int* parent_tid, void** trace, unsigned long trace_size);

void __tsan_on_report(void* report) {
    const char* description = nullptr;
    int count = 0, stacks = 0, mops = 0, locs = 0, mutexes = 0, threads = 0, unique = 0;
    void* frame[1];  // the runtime writes a trace's first frame even when asked for none
    if (!__tsan_get_report_data(report, &description, &count, &stacks, &mops, &locs, &mutexes, &threads, &unique, frame,
                                1))
        return;
    for (int i = 0; i < threads; ++i) {
        int tid = 0, running = 0, parent = 0;
        unsigned long os_id = 0;
        const char* name = nullptr;
        if (!__tsan_get_report_thread(report, unsigned(i), &tid, &os_id, &running, &name, &parent, frame, 1) || !name)
            continue;
        const char* tag = std::strstr(name, " (identity ");
        if (!tag) continue;
        const unsigned serial = unsigned(std::strtoul(tag + 11, nullptr, 10));
        emu::HistoryLock lock(false);
        if (serial == 0 || serial > emu::histories.size()) continue;
        const emu::History& h = emu::histories[serial - 1];
        const int shown = int(std::min<unsigned long long>(h.n, emu::kHistory));
        std::fprintf(stderr,
                     "emulator: thread T%d of this report is a race-checker identity that ran several CUDA threads "
                     "in turn, and an earlier access above by it may be any of theirs; the last %d, newest last%s:",
                     tid, shown, h.n > emu::kHistory ? " (earlier ones not kept)" : "");
        for (unsigned long long k = h.n - unsigned(shown); k < h.n; ++k) {
            const uint3 b = h.block[k % emu::kHistory], t = h.thread[k % emu::kHistory];
            std::fprintf(stderr, "%s block [%u,%u,%u] thread [%u,%u,%u]", k + unsigned(shown) == h.n ? "" : ",", b.x,
                         b.y, b.z, t.x, t.y, t.z);
        }
        std::fprintf(stderr, "\n");
    }
}
}
#endif

long long emu_clock64() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// A failed assert() in a kernel names the block and thread, as CUDA's device assert does.
extern "C" [[noreturn]] void __assert_fail(const char* expr, const char* file, unsigned int line,
                                           const char* func) noexcept {
    if (emu::current) {
        const emu::ThreadCoords& c = emu::current->coords;
        std::fprintf(stderr, "%s:%u: %s: block: [%u,%u,%u], thread: [%u,%u,%u] Assertion `%s` failed.\n", file, line,
                     func, c.blockIdx.x, c.blockIdx.y, c.blockIdx.z, c.threadIdx.x, c.threadIdx.y, c.threadIdx.z, expr);
    } else {
        std::fprintf(stderr, "%s:%u: %s: Assertion `%s' failed.\n", file, line, func, expr);
    }
    std::fflush(stderr);
    std::abort();
}
