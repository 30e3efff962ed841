// The CUDA runtime stand-in: device memory (host memory filled with NaN-like
// garbage), streams and events, launch checks, device properties and errors.
//
// Work given to a stream is queued, not run. When the program synchronises, the
// queued work runs one operation at a time, each time taking the next operation
// of a stream chosen at random (seeded by EMU_SEED) among the streams whose next
// operation may run: stream order, events waited on and the legacy default
// stream's ordering are respected, nothing else. A missing cudaStreamWaitEvent or
// synchronisation therefore shows as a wrong result under some seed.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cuda.h"
#include "cuda_runtime.h"
#include "emu/control.h"
#include "emulator/src/internal.h"

struct CUevent_st {
    unsigned flags = 0;
    uint64_t recorded = 0;   // records issued
    uint64_t completed = 0;  // records that have run
    std::chrono::steady_clock::time_point when{};
};

namespace {

struct Op {
    uint64_t seq;
    std::function<void()> run;
    cudaEvent_t wait_event = nullptr;
    uint64_t wait_target = 0;
};

}  // namespace

struct CUstream_st {
    unsigned flags = 0;
    bool legacy = false;
    std::deque<Op> queue;
};

namespace {

std::recursive_mutex rt_mutex;
CUstream_st legacy_stream = [] {
    CUstream_st s;
    s.legacy = true;
    return s;
}();
std::set<CUstream_st*> streams = {&legacy_stream};
std::set<CUevent_st*> events;
uint64_t next_seq = 1;
std::mt19937_64 rng(0);
bool rng_seeded = false;
thread_local cudaError_t last_error = cudaSuccess;
// A kernel that faulted makes every later synchronisation fail, as on a GPU (sticky).
std::atomic<int> sticky_error{cudaSuccess};
std::map<uintptr_t, std::size_t> device_allocs;
std::map<uintptr_t, std::size_t> pinned_allocs;
std::size_t allocated_bytes = 0;
std::map<const void*, int> max_dynamic_smem;
// Kernels declared with __cluster_dims__: registered before main (from other
// files' static initialisers, so a function-local map with its own lock).
std::map<const void*, dim3>& kernel_cluster_dims() {
    static std::map<const void*, dim3> dims;
    return dims;
}
std::mutex& cluster_dims_mutex() {
    static std::mutex m;
    return m;
}
std::map<const void*, int> nonportable_cluster_size;  // cudaFuncAttributeNonPortableClusterSizeAllowed
std::map<uintptr_t, std::size_t> symbols;             // __device__/__constant__ variables seen by the symbol calls
std::map<const void*, emu::ArgsLauncher> kernel_launchers;  // kernels seen with their types
int current_device = 0;

// The devices a process sees. Under MPI, as many as the node's ranks, so that a
// program that gives rank r device r (cudaSetDevice(local_rank)) runs unchanged:
// each process uses one of them, and they are all the one emulated GPU.
// EMU_DEVICES overrides. A process that uses two devices is not emulated.
int device_count() {
    for (const char* v :
         {"EMU_DEVICES", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"}) {
        const char* e = std::getenv(v);
        if (e && std::atoi(e) >= 1) return std::min(std::atoi(e), 64);
    }
    return 1;
}

std::mt19937_64& seeded_rng() {
    if (!rng_seeded) {
        const char* e = std::getenv("EMU_SEED");
        rng.seed(e ? std::strtoull(e, nullptr, 10) : 0);
        rng_seeded = true;
    }
    return rng;
}

cudaError_t fail(cudaError_t e) {
    last_error = e;
    return e;
}

CUstream_st* resolve(cudaStream_t s) {
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &legacy_stream;
    return s;
}

bool valid_stream(cudaStream_t s) { return streams.count(resolve(s)) != 0; }

bool ready(const CUstream_st& s, const Op& op) {
    if (op.wait_event && op.wait_event->completed < op.wait_target) return false;
    if (s.legacy) {
        for (CUstream_st* t : streams)
            if (t != &s && !(t->flags & cudaStreamNonBlocking) && !t->queue.empty() && t->queue.front().seq < op.seq)
                return false;
    } else if (!(s.flags & cudaStreamNonBlocking)) {
        if (!legacy_stream.queue.empty() && legacy_stream.queue.front().seq < op.seq) return false;
    }
    return true;
}

// Runs one ready operation of a stream picked by the seeded generator; false if none is ready.
bool step() {
    std::vector<CUstream_st*> candidates;
    for (CUstream_st* s : streams)
        if (!s->queue.empty() && ready(*s, s->queue.front())) candidates.push_back(s);
    if (candidates.empty()) return false;
    // Sets iterate in address order; sort by the head's sequence number so a seed gives one order.
    std::sort(candidates.begin(), candidates.end(),
              [](CUstream_st* a, CUstream_st* b) { return a->queue.front().seq < b->queue.front().seq; });
    CUstream_st* s = candidates[seeded_rng()() % candidates.size()];
    Op op = std::move(s->queue.front());
    s->queue.pop_front();
    if (op.run) op.run();
    return true;
}

template <class Done>
void drain_until(Done done) {
    while (!done()) {
        if (!step()) {
            std::fprintf(stderr,
                         "emulator: queued work can never run (a stream waits on an event that is never reached)\n");
            std::abort();
        }
    }
}

void drain_all() {
    drain_until([] {
        for (CUstream_st* s : streams)
            if (!s->queue.empty()) return false;
        return true;
    });
}

void enqueue(cudaStream_t stream, std::function<void()> run, cudaEvent_t wait = nullptr, uint64_t target = 0) {
    CUstream_st* s = resolve(stream);
    s->queue.push_back(Op{next_seq++, std::move(run), wait, target});
}

bool inside(const std::map<uintptr_t, std::size_t>& m, const void* p, std::size_t n) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = m.upper_bound(a);
    if (it == m.begin()) return false;
    --it;
    return a >= it->first && a + n <= it->first + it->second;
}

struct Profile {
    const char* name;
    int major, minor, sms, clock_khz, mem_clock_khz, l2;
    std::size_t global, smem_per_sm, smem_optin;
};
const Profile& profile() {
    static const Profile h100{"NVIDIA H100 80GB HBM3", 9,      0,     132, 1980000, 2619000, 50 << 20,
                              85045395456ull,          233472, 232448};
    static const Profile a100{"NVIDIA A100-SXM4-80GB", 8,      0,     108, 1410000, 1593000, 40 << 20,
                              85198045184ull,          167936, 166912};
    const char* e = std::getenv("EMU_DEVICE");
    if (e && (std::string(e) == "a100" || std::string(e) == "A100")) return a100;
    return h100;
}

// Device memory: an allocation, or a __device__ variable the symbol calls have seen.
bool on_device(const void* p, std::size_t n) { return inside(device_allocs, p, n) || inside(symbols, p, n); }

cudaError_t copy_checked(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind) {
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind > cudaMemcpyDefault) return cudaErrorInvalidMemcpyDirection;
    if (n == 0) return cudaSuccess;
    if (!dst || !src) return cudaErrorInvalidValue;
    if (dst_dev && !on_device(dst, n)) return cudaErrorInvalidValue;
    if (src_dev && !on_device(src, n)) return cudaErrorInvalidValue;
    return cudaSuccess;
}

// Blocks of `threads` threads with `smem` bytes of dynamic shared memory that
// fit on one SM (registers are assumed to fit; the emulator does not know them).
int blocks_per_sm(const void* func, int threads, std::size_t smem) {
    if (threads <= 0 || threads > 1024) return 0;
    auto it = max_dynamic_smem.find(func);
    std::size_t limit = it != max_dynamic_smem.end() ? std::size_t(it->second) : 48 * 1024;
    if (smem > limit) return 0;
    int warps = (threads + 31) / 32;
    int by_threads = 2048 / (warps * 32);
    int by_smem = int(profile().smem_per_sm / (smem + 1024));
    return std::min(std::min(by_threads, 32), by_smem);
}

}  // namespace

namespace emu {

void enqueue_host_work(cudaStream_t stream, std::function<void()> work) {
    std::lock_guard<std::recursive_mutex> lock(rt_mutex);
    enqueue(stream, std::move(work));
}

void set_stream_seed(uint64_t seed) {
    std::lock_guard<std::recursive_mutex> lock(rt_mutex);
    rng.seed(seed);
    rng_seeded = true;
}

void launch(const void* func, const LaunchConfig& c, std::function<void()> body) {
    launch_checked(func, c, std::move(body), false);
}

cudaError_t launch_checked(const void* func, const LaunchConfig& c, std::function<void()> body, bool cooperative) {
    std::lock_guard<std::recursive_mutex> lock(rt_mutex);
    const dim3 b = c.block, g = c.grid;
    unsigned long long threads = 1ull * b.x * b.y * b.z;
    if (threads == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 || g.x == 0 || g.y == 0 || g.z == 0 ||
        g.x > 2147483647u || g.y > 65535 || g.z > 65535)
        return fail(cudaErrorInvalidConfiguration);
    auto it = max_dynamic_smem.find(func);
    std::size_t limit = it != max_dynamic_smem.end() ? std::size_t(it->second) : 48 * 1024;
    if (!func) {
        // A kernel named by an overload set or a deduced template (not known by
        // address): the largest limit set for any kernel.
        for (const auto& kv : max_dynamic_smem) limit = std::max(limit, std::size_t(kv.second));
    }
    if (c.smem > limit) return fail(cudaErrorInvalidValue);
    if (!valid_stream(c.stream)) return fail(cudaErrorInvalidResourceHandle);
    // A cooperative grid must fit on the device at once, as grid.sync() needs.
    if (cooperative && 1ull * g.x * g.y * g.z > 1ull * blocks_per_sm(func, int(threads), c.smem) * profile().sms)
        return fail(cudaErrorCooperativeLaunchTooLarge);
    GridSpec spec{g, b, c.smem, cooperative};
    // Thread-block clusters: from the launch attribute or the kernel's __cluster_dims__.
    dim3 cl = c.cluster;
    std::optional<dim3> declared;
    {
        std::lock_guard<std::mutex> dims_lock(cluster_dims_mutex());
        auto it = kernel_cluster_dims().find(func);
        if (it != kernel_cluster_dims().end()) declared = it->second;
    }
    if (declared) {
        const dim3 d = *declared;
        if (cl.x && (cl.x != d.x || cl.y != d.y || cl.z != d.z)) {
            std::fprintf(stderr,
                         "emulator: launch: the kernel is declared __cluster_dims__(%u, %u, %u), the launch asks for "
                         "clusters of %u x %u x %u\n",
                         d.x, d.y, d.z, cl.x, cl.y, cl.z);
            return fail(cudaErrorInvalidClusterSize);
        }
        cl = d;
    }
    if (cl.x || cl.y || cl.z) {
        auto np = nonportable_cluster_size.find(func);
        const unsigned most = np != nonportable_cluster_size.end() && np->second ? 16 : 8;
        const unsigned long long blocks = 1ull * cl.x * cl.y * cl.z;
        if (blocks == 0 || blocks > most) {
            std::fprintf(
                stderr, "emulator: launch: clusters of %u x %u x %u blocks: a cluster holds 1 to %u blocks%s\n", cl.x,
                cl.y, cl.z, most, most == 8 ? " (16 with cudaFuncAttributeNonPortableClusterSizeAllowed)" : "");
            return fail(cudaErrorInvalidClusterSize);
        }
        if (g.x % cl.x || g.y % cl.y || g.z % cl.z) {
            std::fprintf(stderr,
                         "emulator: launch: the grid (%u, %u, %u) is not a whole number of clusters of %u x %u x %u "
                         "blocks\n",
                         g.x, g.y, g.z, cl.x, cl.y, cl.z);
            return fail(cudaErrorInvalidClusterSize);
        }
        spec.clustered = true;
        spec.cluster = cl;
    }
    enqueue(c.stream, [spec, body = std::move(body)] {
        run_grid(spec, body);
        if (take_kernel_fault()) sticky_error = cudaErrorIllegalAddress;
    });
    return cudaSuccess;
}

void register_kernel(const void* func, ArgsLauncher launcher) {
    std::lock_guard<std::recursive_mutex> lock(rt_mutex);
    kernel_launchers.emplace(func, launcher);
}

bool register_cluster_dims(const void* func, unsigned x, unsigned y, unsigned z) {
    std::lock_guard<std::mutex> lock(cluster_dims_mutex());
    kernel_cluster_dims()[func] = dim3(x, y, z);
    return true;
}

void register_symbol(const void* addr, std::size_t bytes) {
    std::lock_guard<std::recursive_mutex> lock(rt_mutex);
    symbols[reinterpret_cast<uintptr_t>(addr)] = bytes;
}

cudaError_t max_potential_block_size(int* min_grid, int* block, const void* func, std::size_t smem, int limit) {
    std::lock_guard<std::recursive_mutex> lock(rt_mutex);
    if (!min_grid || !block) return fail(cudaErrorInvalidValue);
    if (!func) return fail(cudaErrorInvalidDeviceFunction);
    int top = limit > 0 && limit < 1024 ? limit : 1024;
    int best = 0, best_threads = 0;
    for (int t = top / 32 * 32; t >= 32; t -= 32) {
        int resident = blocks_per_sm(func, t, smem) * t;
        if (resident > best_threads) {
            best_threads = resident;
            best = t;
        }
    }
    if (best == 0) return fail(cudaErrorInvalidValue);  // no block size fits the shared memory
    *block = best;
    *min_grid = blocks_per_sm(func, best, smem) * profile().sms;
    return cudaSuccess;
}

}  // namespace emu

#define LOCK std::lock_guard<std::recursive_mutex> lock(rt_mutex)

cudaError_t cudaGetDeviceCount(int* count) {
    if (!count) return fail(cudaErrorInvalidValue);
    *count = device_count();
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
    if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
    current_device = device;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
    if (!device) return fail(cudaErrorInvalidValue);
    *device = current_device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
    if (!p) return fail(cudaErrorInvalidValue);
    if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
    const Profile& f = profile();
    std::memset(p, 0, sizeof(*p));
    std::snprintf(p->name, sizeof(p->name), "%s", f.name);
    p->totalGlobalMem = f.global;
    p->sharedMemPerBlock = 48 * 1024;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->memPitch = 2147483647;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->clockRate = f.clock_khz;
    p->totalConstMem = 65536;
    p->major = f.major;
    p->minor = f.minor;
    p->multiProcessorCount = f.sms;
    p->l2CacheSize = f.l2;
    p->maxThreadsPerMultiProcessor = 2048;
    p->sharedMemPerMultiprocessor = f.smem_per_sm;
    p->regsPerMultiprocessor = 65536;
    p->sharedMemPerBlockOptin = f.smem_optin;
    p->memoryClockRate = f.mem_clock_khz;
    p->memoryBusWidth = 5120;
    p->maxBlocksPerMultiProcessor = 32;
    p->concurrentKernels = 1;
    p->asyncEngineCount = 2;
    p->unifiedAddressing = 1;
    p->managedMemory = 1;
    p->ECCEnabled = 1;
    p->cooperativeLaunch = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    if (!value) return fail(cudaErrorInvalidValue);
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess) return e;
    switch (attr) {
        case cudaDevAttrMaxThreadsPerBlock:
            *value = p.maxThreadsPerBlock;
            break;
        case cudaDevAttrMaxSharedMemoryPerBlock:
            *value = int(p.sharedMemPerBlock);
            break;
        case cudaDevAttrWarpSize:
            *value = p.warpSize;
            break;
        case cudaDevAttrMultiProcessorCount:
            *value = p.multiProcessorCount;
            break;
        case cudaDevAttrComputeCapabilityMajor:
            *value = p.major;
            break;
        case cudaDevAttrComputeCapabilityMinor:
            *value = p.minor;
            break;
        case cudaDevAttrMaxSharedMemoryPerMultiprocessor:
            *value = int(p.sharedMemPerMultiprocessor);
            break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin:
            *value = int(p.sharedMemPerBlockOptin);
            break;
        case cudaDevAttrMaxBlockDimX:
        case cudaDevAttrMaxBlockDimY:
        case cudaDevAttrMaxBlockDimZ:
            *value = p.maxThreadsDim[attr - cudaDevAttrMaxBlockDimX];
            break;
        case cudaDevAttrMaxGridDimX:
        case cudaDevAttrMaxGridDimY:
        case cudaDevAttrMaxGridDimZ:
            *value = p.maxGridSize[attr - cudaDevAttrMaxGridDimX];
            break;
        case cudaDevAttrTotalConstantMemory:
            *value = int(p.totalConstMem);
            break;
        case cudaDevAttrMaxRegistersPerBlock:
            *value = p.regsPerBlock;
            break;
        case cudaDevAttrClockRate:
            *value = p.clockRate;
            break;
        case cudaDevAttrConcurrentKernels:
            *value = p.concurrentKernels;
            break;
        case cudaDevAttrMemoryClockRate:
            *value = p.memoryClockRate;
            break;
        case cudaDevAttrGlobalMemoryBusWidth:
            *value = p.memoryBusWidth;
            break;
        case cudaDevAttrL2CacheSize:
            *value = p.l2CacheSize;
            break;
        case cudaDevAttrMaxThreadsPerMultiProcessor:
            *value = p.maxThreadsPerMultiProcessor;
            break;
        case cudaDevAttrMaxRegistersPerMultiprocessor:
            *value = p.regsPerMultiprocessor;
            break;
        case cudaDevAttrCooperativeLaunch:
            *value = p.cooperativeLaunch;
            break;
        case cudaDevAttrMaxBlocksPerMultiprocessor:
            *value = p.maxBlocksPerMultiProcessor;
            break;
        case cudaDevAttrMemoryPoolsSupported:
            *value = 1;
            break;
        default:
            return fail(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
    LOCK;
    drain_all();
    if (sticky_error) return fail(cudaError_t(sticky_error.load()));
    return cudaSuccess;
}
cudaError_t cudaDeviceReset() {
    LOCK;
    drain_all();
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
    if (!v) return fail(cudaErrorInvalidValue);
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
    if (!v) return fail(cudaErrorInvalidValue);
    *v = 13000;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, std::size_t size) {
    LOCK;
    if (!ptr) return fail(cudaErrorInvalidValue);
    if (size == 0) {
        *ptr = nullptr;
        return cudaSuccess;
    }
    if (allocated_bytes + size > profile().global) return fail(cudaErrorMemoryAllocation);
    void* p = nullptr;
    if (posix_memalign(&p, 256, size) != 0 || !p) return fail(cudaErrorMemoryAllocation);
    std::memset(p, 0xff, size);  // NaN as float and bf16, -1 as an integer
    device_allocs[reinterpret_cast<uintptr_t>(p)] = size;
    allocated_bytes += size;
    *ptr = p;
    return cudaSuccess;
}
cudaError_t cudaMallocManaged(void** ptr, std::size_t size, unsigned) { return cudaMalloc(ptr, size); }

cudaError_t cudaFree(void* ptr) {
    LOCK;
    if (!ptr) return cudaSuccess;
    drain_all();  // cudaFree synchronises the device
    auto it = device_allocs.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == device_allocs.end()) return fail(cudaErrorInvalidValue);
    allocated_bytes -= it->second;
    device_allocs.erase(it);
    std::free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, std::size_t size) {
    LOCK;
    if (!ptr) return fail(cudaErrorInvalidValue);
    void* p = std::malloc(size ? size : 1);
    if (!p) return fail(cudaErrorMemoryAllocation);
    pinned_allocs[reinterpret_cast<uintptr_t>(p)] = size;
    *ptr = p;
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** ptr, std::size_t size, unsigned) { return cudaMallocHost(ptr, size); }
cudaError_t cudaHostGetDevicePointer(void** device, void* host, unsigned) {
    LOCK;
    if (!device || !pinned_allocs.count(reinterpret_cast<uintptr_t>(host))) return fail(cudaErrorInvalidValue);
    *device = host;
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void* ptr) {
    LOCK;
    if (!ptr) return cudaSuccess;
    drain_all();
    auto it = pinned_allocs.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == pinned_allocs.end()) return fail(cudaErrorInvalidValue);
    pinned_allocs.erase(it);
    std::free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes) {
    LOCK;
    if (!free_bytes || !total_bytes) return fail(cudaErrorInvalidValue);
    *total_bytes = profile().global;
    *free_bytes = profile().global - allocated_bytes;
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind, cudaStream_t stream) {
    LOCK;
    cudaError_t e = copy_checked(dst, src, n, kind);
    if (e != cudaSuccess) return fail(e);
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    if (n == 0) return cudaSuccess;
    bool src_is_pageable_host = !on_device(src, n) && !inside(pinned_allocs, src, n);
    if (src_is_pageable_host) {
        // The runtime stages pageable host memory before the call returns.
        auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                                   static_cast<const unsigned char*>(src) + n);
        enqueue(stream, [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); });
    } else {
        enqueue(stream, [dst, src, n] { std::memmove(dst, src, n); });
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind) {
    LOCK;
    cudaError_t e = cudaMemcpyAsync(dst, src, n, kind, 0);
    if (e != cudaSuccess) return e;
    drain_until([] { return legacy_stream.queue.empty(); });
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t n, cudaStream_t stream) {
    LOCK;
    if (n == 0) return cudaSuccess;
    if (!on_device(dst, n)) return fail(cudaErrorInvalidValue);
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    enqueue(stream, [dst, value, n] { std::memset(dst, value, n); });
    return cudaSuccess;
}

cudaError_t cudaMemset(void* dst, int value, std::size_t n) {
    LOCK;
    cudaError_t e = cudaMemsetAsync(dst, value, n, 0);
    if (e != cudaSuccess) return e;
    drain_until([] { return legacy_stream.queue.empty(); });
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
    LOCK;
    if (!stream) return fail(cudaErrorInvalidValue);
    CUstream_st* s = new CUstream_st;
    s->flags = flags;
    streams.insert(s);
    *stream = s;
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    LOCK;
    if (!stream || !streams.count(stream) || stream == &legacy_stream) return fail(cudaErrorInvalidResourceHandle);
    drain_until([stream] { return stream->queue.empty(); });
    streams.erase(stream);
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    LOCK;
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    CUstream_st* s = resolve(stream);
    drain_until([s] { return s->queue.empty(); });
    if (sticky_error) return fail(cudaError_t(sticky_error.load()));
    return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
    LOCK;
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    CUstream_st* s = resolve(stream);
    if (s->queue.empty()) return cudaSuccess;
    step();  // let the device make progress, so that polling loops end
    return s->queue.empty() ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned) {
    LOCK;
    if (!valid_stream(stream) || !events.count(event)) return fail(cudaErrorInvalidResourceHandle);
    if (event->recorded == 0) return cudaSuccess;  // waiting on a never-recorded event does nothing
    enqueue(stream, nullptr, event, event->recorded);
    return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* user_data) {
    LOCK;
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    if (!fn) return fail(cudaErrorInvalidValue);
    enqueue(stream, [fn, user_data] { fn(user_data); });
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
    LOCK;
    if (!event) return fail(cudaErrorInvalidValue);
    CUevent_st* e = new CUevent_st;
    e->flags = flags;
    events.insert(e);
    *event = e;
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    LOCK;
    if (!events.count(event)) return fail(cudaErrorInvalidResourceHandle);
    drain_all();  // queued waits may still name the event
    events.erase(event);
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    LOCK;
    if (!events.count(event) || !valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    uint64_t target = ++event->recorded;
    enqueue(stream, [event, target] {
        event->completed = std::max(event->completed, target);
        event->when = std::chrono::steady_clock::now();
    });
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    LOCK;
    if (!events.count(event)) return fail(cudaErrorInvalidResourceHandle);
    drain_until([event] { return event->completed >= event->recorded; });
    return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
    LOCK;
    if (!events.count(event)) return fail(cudaErrorInvalidResourceHandle);
    if (event->completed >= event->recorded) return cudaSuccess;
    step();
    return event->completed >= event->recorded ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    LOCK;
    if (!ms) return fail(cudaErrorInvalidValue);
    if (!events.count(start) || !events.count(end)) return fail(cudaErrorInvalidResourceHandle);
    if ((start->flags | end->flags) & cudaEventDisableTiming) return fail(cudaErrorInvalidResourceHandle);
    if (start->recorded == 0 || end->recorded == 0) return fail(cudaErrorInvalidResourceHandle);
    if (start->completed < start->recorded || end->completed < end->recorded) return fail(cudaErrorNotReady);
    *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
    return cudaSuccess;
}

cudaError_t cudaGetLastError() {
    if (sticky_error) return cudaError_t(sticky_error.load());
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError() { return last_error; }

const char* cudaGetErrorString(cudaError_t err) {
    switch (err) {
        case cudaSuccess:
            return "no error";
        case cudaErrorIllegalAddress:
            return "an illegal memory access was encountered";
        case cudaErrorInvalidValue:
            return "invalid argument";
        case cudaErrorMemoryAllocation:
            return "out of memory";
        case cudaErrorInitializationError:
            return "initialization error";
        case cudaErrorInvalidConfiguration:
            return "invalid configuration argument";
        case cudaErrorInvalidMemcpyDirection:
            return "invalid copy direction for memcpy";
        case cudaErrorInvalidDeviceFunction:
            return "invalid device function";
        case cudaErrorNoDevice:
            return "no CUDA-capable device is detected";
        case cudaErrorInvalidDevice:
            return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle:
            return "invalid resource handle";
        case cudaErrorNotReady:
            return "device not ready";
        case cudaErrorLaunchOutOfResources:
            return "too many resources requested for launch";
        case cudaErrorAssert:
            return "device-side assert triggered";
        case cudaErrorCooperativeLaunchTooLarge:
            return "too many blocks in cooperative launch";
        case cudaErrorInvalidClusterSize:
            return "invalid cluster size";
        case cudaErrorInvalidPitchValue:
            return "invalid pitch argument";
        default:
            return "unknown error";
    }
}

const char* cudaGetErrorName(cudaError_t err) {
    switch (err) {
        case cudaSuccess:
            return "cudaSuccess";
        case cudaErrorIllegalAddress:
            return "cudaErrorIllegalAddress";
        case cudaErrorInvalidValue:
            return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation:
            return "cudaErrorMemoryAllocation";
        case cudaErrorInitializationError:
            return "cudaErrorInitializationError";
        case cudaErrorInvalidConfiguration:
            return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidMemcpyDirection:
            return "cudaErrorInvalidMemcpyDirection";
        case cudaErrorInvalidDeviceFunction:
            return "cudaErrorInvalidDeviceFunction";
        case cudaErrorNoDevice:
            return "cudaErrorNoDevice";
        case cudaErrorInvalidDevice:
            return "cudaErrorInvalidDevice";
        case cudaErrorInvalidResourceHandle:
            return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotReady:
            return "cudaErrorNotReady";
        case cudaErrorLaunchOutOfResources:
            return "cudaErrorLaunchOutOfResources";
        case cudaErrorAssert:
            return "cudaErrorAssert";
        case cudaErrorCooperativeLaunchTooLarge:
            return "cudaErrorCooperativeLaunchTooLarge";
        case cudaErrorInvalidClusterSize:
            return "cudaErrorInvalidClusterSize";
        case cudaErrorInvalidPitchValue:
            return "cudaErrorInvalidPitchValue";
        default:
            return "cudaErrorUnknown";
    }
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
    LOCK;
    if (!func) return fail(cudaErrorInvalidDeviceFunction);
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || std::size_t(value) > profile().smem_optin) return fail(cudaErrorInvalidValue);
        max_dynamic_smem[func] = value;
        return cudaSuccess;
    }
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) {
        if (value < -1 || value > 100) return fail(cudaErrorInvalidValue);
        return cudaSuccess;
    }
    if (attr == cudaFuncAttributeNonPortableClusterSizeAllowed) {
        if (value != 0 && value != 1) return fail(cudaErrorInvalidValue);
        nonportable_cluster_size[func] = value;
        return cudaSuccess;
    }
    return fail(cudaErrorInvalidValue);
}

// ---- cooperative launches, kernel attributes, occupancy -------------------------
namespace {
cudaError_t launch_by_pointer(const void* func, dim3 grid, dim3 block, void** args, std::size_t smem,
                              cudaStream_t stream, bool cooperative, const char* api, dim3 cluster = dim3(0, 0, 0)) {
    emu::ArgsLauncher launcher = nullptr;
    {
        LOCK;
        if (!func) return fail(cudaErrorInvalidDeviceFunction);
        auto it = kernel_launchers.find(func);
        if (it == kernel_launchers.end()) {
            std::fprintf(stderr,
                         "emulator: %s: this kernel was cast to void* and never used with its type, so its "
                         "parameters cannot be read from the args array; pass the kernel itself (not (void*)kernel), "
                         "or name it once in cudaFuncGetAttributes or an occupancy call first\n",
                         api);
            return fail(cudaErrorInvalidDeviceFunction);
        }
        launcher = it->second;
    }
    if (!args) {
        std::fprintf(stderr, "emulator: %s: the args array is null\n", api);
        return fail(cudaErrorInvalidValue);
    }
    emu::LaunchConfig cfg(grid, block, smem, stream);
    cfg.cluster = cluster;
    return launcher(func, cfg, args, cooperative);
}
}  // namespace

cudaError_t cudaLaunchKernel(const void* func, dim3 grid, dim3 block, void** args, std::size_t smem,
                             cudaStream_t stream) {
    return launch_by_pointer(func, grid, block, args, smem, stream, false, "cudaLaunchKernel");
}
cudaError_t cudaLaunchCooperativeKernel(const void* func, dim3 grid, dim3 block, void** args, std::size_t smem,
                                        cudaStream_t stream) {
    return launch_by_pointer(func, grid, block, args, smem, stream, true, "cudaLaunchCooperativeKernel");
}
cudaError_t cudaLaunchKernelExC(const cudaLaunchConfig_t* config, const void* func, void** args) {
    if (!config || (config->numAttrs && !config->attrs)) return fail(cudaErrorInvalidValue);
    bool cooperative = false;
    dim3 cluster(0, 0, 0);
    for (unsigned i = 0; i < config->numAttrs; ++i) {
        const cudaLaunchAttribute& a = config->attrs[i];
        switch (a.id) {
            case cudaLaunchAttributeIgnore:
            case cudaLaunchAttributeClusterSchedulingPolicyPreference:
            case cudaLaunchAttributeProgrammaticStreamSerialization:
            case cudaLaunchAttributePriority:
                break;  // nothing to schedule differently here
            case cudaLaunchAttributeCooperative:
                cooperative = a.val.cooperative != 0;
                break;
            case cudaLaunchAttributeClusterDimension:
                cluster = dim3(a.val.clusterDim.x, a.val.clusterDim.y, a.val.clusterDim.z);
                if (cluster.x == 0 || cluster.y == 0 || cluster.z == 0) {
                    std::fprintf(stderr, "emulator: cudaLaunchKernelEx: a cluster dimension is 0\n");
                    return fail(cudaErrorInvalidClusterSize);
                }
                break;
            default:
                std::fprintf(stderr, "emulator: cudaLaunchKernelEx: launch attribute %d is not emulated\n", int(a.id));
                return fail(cudaErrorInvalidValue);
        }
    }
    return launch_by_pointer(func, config->gridDim, config->blockDim, args, config->dynamicSmemBytes, config->stream,
                             cooperative, "cudaLaunchKernelEx", cluster);
}

cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void* func) {
    LOCK;
    if (!attr) return fail(cudaErrorInvalidValue);
    if (!func) return fail(cudaErrorInvalidDeviceFunction);
    std::memset(attr, 0, sizeof(*attr));
    attr->maxThreadsPerBlock = 1024;
    attr->ptxVersion = attr->binaryVersion = profile().major * 10 + profile().minor;
    auto it = max_dynamic_smem.find(func);
    attr->maxDynamicSharedSizeBytes = it != max_dynamic_smem.end() ? it->second : 48 * 1024;
    attr->preferredShmemCarveout = -1;
    return cudaSuccess;
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* numBlocks, const void* func, int blockSize,
                                                          std::size_t dynamicSMemSize) {
    LOCK;
    if (!numBlocks) return fail(cudaErrorInvalidValue);
    if (!func) return fail(cudaErrorInvalidDeviceFunction);
    if (blockSize <= 0 || blockSize > 1024) return fail(cudaErrorInvalidValue);
    *numBlocks = blocks_per_sm(func, blockSize, dynamicSMemSize);
    return cudaSuccess;
}

// ---- 2-D copies, pitched and stream-ordered memory, symbols ---------------------
cudaError_t cudaMemcpy2DAsync(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
                              std::size_t height, cudaMemcpyKind kind, cudaStream_t stream) {
    LOCK;
    if (width > dpitch || width > spitch) return fail(cudaErrorInvalidPitchValue);
    if (width == 0 || height == 0) return cudaSuccess;
    // The rows span from the first byte of the first row to the last byte of the last one.
    std::size_t dspan = (height - 1) * dpitch + width, sspan = (height - 1) * spitch + width;
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind > cudaMemcpyDefault) return fail(cudaErrorInvalidMemcpyDirection);
    if (!dst || !src) return fail(cudaErrorInvalidValue);
    if ((dst_dev && !on_device(dst, dspan)) || (src_dev && !on_device(src, sspan))) return fail(cudaErrorInvalidValue);
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    auto rows = [](unsigned char* d, std::size_t dp, const unsigned char* s, std::size_t sp, std::size_t w,
                   std::size_t h) {
        for (std::size_t r = 0; r < h; ++r) std::memmove(d + r * dp, s + r * sp, w);
    };
    unsigned char* d = static_cast<unsigned char*>(dst);
    const unsigned char* s = static_cast<const unsigned char*>(src);
    if (!on_device(src, sspan) && !inside(pinned_allocs, src, sspan)) {
        // Pageable host memory is staged before the call returns.
        auto staged = std::make_shared<std::vector<unsigned char>>(s, s + sspan);
        enqueue(stream, [=] { rows(d, dpitch, staged->data(), spitch, width, height); });
    } else {
        enqueue(stream, [=] { rows(d, dpitch, s, spitch, width, height); });
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpy2D(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
                         std::size_t height, cudaMemcpyKind kind) {
    LOCK;
    cudaError_t e = cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind, 0);
    if (e != cudaSuccess) return e;
    drain_until([] { return legacy_stream.queue.empty(); });
    return cudaSuccess;
}

cudaError_t cudaMallocPitch(void** ptr, std::size_t* pitch, std::size_t width, std::size_t height) {
    LOCK;
    if (!ptr || !pitch) return fail(cudaErrorInvalidValue);
    std::size_t p = (width + 511) / 512 * 512;
    cudaError_t e = cudaMalloc(ptr, p * height);
    if (e == cudaSuccess) *pitch = p;
    return e;
}

cudaError_t cudaMallocAsync(void** ptr, std::size_t size, cudaStream_t stream) {
    LOCK;
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    return cudaMalloc(ptr, size);
}

cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream) {
    LOCK;
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    if (!ptr) return cudaSuccess;
    if (!device_allocs.count(reinterpret_cast<uintptr_t>(ptr))) return fail(cudaErrorInvalidValue);
    enqueue(stream, [ptr] {
        auto it = device_allocs.find(reinterpret_cast<uintptr_t>(ptr));
        if (it == device_allocs.end()) return;  // freed twice: the second is refused below
        allocated_bytes -= it->second;
        device_allocs.erase(it);
        std::free(ptr);
    });
    return cudaSuccess;
}

namespace emu {
cudaError_t memcpy_symbol(bool to_symbol, const void* symbol, std::size_t symbol_bytes, void* other, std::size_t count,
                          std::size_t offset, cudaMemcpyKind kind, bool async, cudaStream_t stream) {
    LOCK;
    register_symbol(symbol, symbol_bytes);
    if (offset > symbol_bytes || count > symbol_bytes - offset) return fail(cudaErrorInvalidValue);
    // The symbol side is device memory: only the other side's direction may vary.
    if (to_symbol && kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)
        return fail(cudaErrorInvalidMemcpyDirection);
    if (!to_symbol && kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)
        return fail(cudaErrorInvalidMemcpyDirection);
    char* at = const_cast<char*>(static_cast<const char*>(symbol)) + offset;
    void* dst = to_symbol ? static_cast<void*>(at) : other;
    const void* src = to_symbol ? static_cast<const void*>(other) : static_cast<const void*>(at);
    return async ? cudaMemcpyAsync(dst, src, count, kind, stream) : cudaMemcpy(dst, src, count, kind);
}
}  // namespace emu

// ---- driver API: tensor maps ---------------------------------------------------
CUresult cuTensorMapEncodeTiled(CUtensorMap* tensorMap, CUtensorMapDataType tensorDataType, cuuint32_t tensorRank,
                                void* globalAddress, const cuuint64_t* globalDim, const cuuint64_t* globalStrides,
                                const cuuint32_t* boxDim, const cuuint32_t* elementStrides,
                                CUtensorMapInterleave interleave, CUtensorMapSwizzle swizzle,
                                CUtensorMapL2promotion l2Promotion, CUtensorMapFloatOOBfill oobFill) {
    (void)l2Promotion;
    static const uint32_t sizes[] = {1, 2, 4, 4, 8, 8, 2, 4, 8, 2};
    if (!tensorMap || !globalAddress || !globalDim || !boxDim || !elementStrides) return CUDA_ERROR_INVALID_VALUE;
    if (tensorRank < 1 || tensorRank > 5 || unsigned(tensorDataType) > 9) return CUDA_ERROR_INVALID_VALUE;
    if (reinterpret_cast<uintptr_t>(tensorMap) % 64 || reinterpret_cast<uintptr_t>(globalAddress) % 16)
        return CUDA_ERROR_INVALID_VALUE;
    if (tensorRank > 1 && !globalStrides) return CUDA_ERROR_INVALID_VALUE;
    emu::TensorMapFields f{};
    f.magic = emu::kTensorMapMagic;
    f.base = static_cast<const unsigned char*>(globalAddress);
    f.rank = tensorRank;
    f.elem_bytes = sizes[tensorDataType];
    for (uint32_t i = 0; i < tensorRank; ++i) {
        if (globalDim[i] == 0 || globalDim[i] > (uint64_t(1) << 32)) return CUDA_ERROR_INVALID_VALUE;
        if (boxDim[i] == 0 || boxDim[i] > 256 || elementStrides[i] == 0 || elementStrides[i] > 8)
            return CUDA_ERROR_INVALID_VALUE;
        if (i > 0 && elementStrides[i] != 1) return CUDA_ERROR_NOT_SUPPORTED;  // dimension 0's is ignored
        f.dim[i] = globalDim[i];
        f.box[i] = boxDim[i];
        if (i > 0) {
            const uint64_t st = globalStrides[i - 1];
            if (st % 16 || st >= (uint64_t(1) << 40)) return CUDA_ERROR_INVALID_VALUE;
            f.stride[i - 1] = st;
        }
    }
    const uint64_t inner = uint64_t(boxDim[0]) * f.elem_bytes;
    if (inner % 16) return CUDA_ERROR_INVALID_VALUE;
    if (interleave != CU_TENSOR_MAP_INTERLEAVE_NONE) return CUDA_ERROR_NOT_SUPPORTED;
    if (oobFill != CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) return CUDA_ERROR_NOT_SUPPORTED;
    if (swizzle != CU_TENSOR_MAP_SWIZZLE_NONE) {
        if (unsigned(swizzle) > 3) return CUDA_ERROR_INVALID_VALUE;
        const uint32_t span = 16u << unsigned(swizzle);  // 32, 64, 128 bytes
        if (inner > span) return CUDA_ERROR_INVALID_VALUE;
        if (inner != span) return CUDA_ERROR_NOT_SUPPORTED;
        f.swizzle = span;
    }
    std::memset(tensorMap, 0, sizeof(*tensorMap));
    std::memcpy(tensorMap, &f, sizeof(f));
    return CUDA_SUCCESS;
}

cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** funcPtr, unsigned int cudaVersion,
                                             unsigned long long flags, cudaDriverEntryPointQueryResult* driverStatus) {
    (void)flags;
    if (!symbol || !funcPtr) return fail(cudaErrorInvalidValue);
    *funcPtr = nullptr;
    cudaDriverEntryPointQueryResult status = cudaDriverEntryPointSymbolNotFound;
    if (std::strcmp(symbol, "cuTensorMapEncodeTiled") == 0) {
        if (cudaVersion >= 12000) {
            *funcPtr = reinterpret_cast<void*>(&cuTensorMapEncodeTiled);
            status = cudaDriverEntryPointSuccess;
        } else {
            status = cudaDriverEntryPointVersionNotSufficent;
        }
    }
    if (driverStatus) *driverStatus = status;
    return cudaSuccess;
}
