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
int current_device = 0;

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

cudaError_t copy_checked(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind) {
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind > cudaMemcpyDefault) return cudaErrorInvalidMemcpyDirection;
    if (n == 0) return cudaSuccess;
    if (!dst || !src) return cudaErrorInvalidValue;
    if (dst_dev && !inside(device_allocs, dst, n)) return cudaErrorInvalidValue;
    if (src_dev && !inside(device_allocs, src, n)) return cudaErrorInvalidValue;
    return cudaSuccess;
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
    std::lock_guard<std::recursive_mutex> lock(rt_mutex);
    const dim3 b = c.block, g = c.grid;
    unsigned long long threads = 1ull * b.x * b.y * b.z;
    if (threads == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 || g.x == 0 || g.y == 0 || g.z == 0 ||
        g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
        fail(cudaErrorInvalidConfiguration);
        return;
    }
    auto it = max_dynamic_smem.find(func);
    std::size_t limit = it != max_dynamic_smem.end() ? std::size_t(it->second) : 48 * 1024;
    if (c.smem > limit) {
        fail(cudaErrorInvalidValue);
        return;
    }
    if (!valid_stream(c.stream)) {
        fail(cudaErrorInvalidResourceHandle);
        return;
    }
    GridSpec spec{g, b, c.smem};
    enqueue(c.stream, [spec, body = std::move(body)] {
        run_grid(spec, body);
        if (take_kernel_fault()) sticky_error = cudaErrorIllegalAddress;
    });
}

}  // namespace emu

#define LOCK std::lock_guard<std::recursive_mutex> lock(rt_mutex)

cudaError_t cudaGetDeviceCount(int* count) {
    if (!count) return fail(cudaErrorInvalidValue);
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
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
    if (device != 0) return fail(cudaErrorInvalidDevice);
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
    bool src_is_pageable_host = !inside(device_allocs, src, n) && !inside(pinned_allocs, src, n);
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
    if (!inside(device_allocs, dst, n)) return fail(cudaErrorInvalidValue);
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
    return fail(cudaErrorInvalidValue);
}

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
    if (swizzle == CU_TENSOR_MAP_SWIZZLE_128B) {
        if (inner > 128) return CUDA_ERROR_INVALID_VALUE;
        if (inner != 128) return CUDA_ERROR_NOT_SUPPORTED;
        f.swizzle128 = 1;
    } else if (swizzle != CU_TENSOR_MAP_SWIZZLE_NONE) {
        return CUDA_ERROR_NOT_SUPPORTED;
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
