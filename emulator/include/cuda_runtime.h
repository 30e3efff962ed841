// Emulated CUDA runtime API: the subset this project uses, with the real
// runtime's error codes and messages. Device memory is host memory; work queues
// per stream and runs, at synchronisation, in an order picked by EMU_SEED.
#ifndef EMU_CUDA_RUNTIME_H
#define EMU_CUDA_RUNTIME_H

#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <utility>
#include "emu/device.h"
#include "cuda_bf16.h"
#include "cuda_fp16.h"

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidPitchValue = 12,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorAssert = 710,
    cudaErrorCooperativeLaunchTooLarge = 720,
    cudaErrorInvalidClusterSize = 912,
    cudaErrorUnknown = 999,
};
typedef cudaError_t cudaError;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
    cudaFuncAttributeNonPortableClusterSizeAllowed = 14,
};

enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
    // The values samples query besides (numbers as in CUDA's driver_types.h).
    cudaDevAttrMaxBlockDimX = 2,
    cudaDevAttrMaxBlockDimY = 3,
    cudaDevAttrMaxBlockDimZ = 4,
    cudaDevAttrMaxGridDimX = 5,
    cudaDevAttrMaxGridDimY = 6,
    cudaDevAttrMaxGridDimZ = 7,
    cudaDevAttrTotalConstantMemory = 9,
    cudaDevAttrMaxRegistersPerBlock = 12,
    cudaDevAttrClockRate = 13,
    cudaDevAttrConcurrentKernels = 31,
    cudaDevAttrMemoryClockRate = 36,
    cudaDevAttrGlobalMemoryBusWidth = 37,
    cudaDevAttrL2CacheSize = 38,
    cudaDevAttrMaxThreadsPerMultiProcessor = 39,
    cudaDevAttrMaxRegistersPerMultiprocessor = 82,
    cudaDevAttrCooperativeLaunch = 95,
    cudaDevAttrMaxBlocksPerMultiprocessor = 106,
    cudaDevAttrMemoryPoolsSupported = 115,
};

struct CUstream_st;
struct CUevent_st;
typedef CUstream_st* cudaStream_t;
typedef CUevent_st* cudaEvent_t;

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02
#define cudaHostAllocDefault 0x00
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)

struct cudaDeviceProp {
    char name[256];
    std::size_t totalGlobalMem;
    std::size_t sharedMemPerBlock;
    int regsPerBlock;
    int warpSize;
    std::size_t memPitch;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    int clockRate;
    std::size_t totalConstMem;
    int major;
    int minor;
    int multiProcessorCount;
    int l2CacheSize;
    int persistingL2CacheMaxSize;
    int maxThreadsPerMultiProcessor;
    std::size_t sharedMemPerMultiprocessor;
    int regsPerMultiprocessor;
    std::size_t sharedMemPerBlockOptin;
    int memoryClockRate;
    int memoryBusWidth;
    int maxBlocksPerMultiProcessor;
    int concurrentKernels;
    int asyncEngineCount;
    int unifiedAddressing;
    int managedMemory;
    int ECCEnabled;
    int pciBusID;
    int pciDeviceID;
    int cooperativeLaunch;
};

// ---- the API ----------------------------------------------------------------
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaDeviceReset();
cudaError_t cudaDriverGetVersion(int* v);
cudaError_t cudaRuntimeGetVersion(int* v);

cudaError_t cudaMalloc(void** ptr, std::size_t size);
cudaError_t cudaMallocHost(void** ptr, std::size_t size);
cudaError_t cudaHostAlloc(void** ptr, std::size_t size, unsigned flags);
cudaError_t cudaMallocManaged(void** ptr, std::size_t size, unsigned flags = 1);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes);
template <class T>
inline cudaError_t cudaMalloc(T** ptr, std::size_t size) {
    return cudaMalloc(reinterpret_cast<void**>(ptr), size);
}
template <class T>
inline cudaError_t cudaMallocHost(T** ptr, std::size_t size) {
    return cudaMallocHost(reinterpret_cast<void**>(ptr), size);
}
template <class T>
inline cudaError_t cudaMallocManaged(T** ptr, std::size_t size, unsigned flags = 1) {
    return cudaMallocManaged(reinterpret_cast<void**>(ptr), size, flags);
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind, cudaStream_t stream = 0);
cudaError_t cudaMemset(void* dst, int value, std::size_t n);
cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t n, cudaStream_t stream = 0);

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
// Host work in stream order: fn(user_data) runs once the stream's earlier work has run.
typedef void (*cudaHostFn_t)(void* user_data);
cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* user_data);

cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);
const char* cudaGetErrorName(cudaError_t err);

// Driver functions by name: the emulator knows cuTensorMapEncodeTiled (cuda.h).
enum cudaDriverEntryPointQueryResult {
    cudaDriverEntryPointSuccess = 0,
    cudaDriverEntryPointSymbolNotFound = 1,
    cudaDriverEntryPointVersionNotSufficent = 2,
};
constexpr unsigned long long cudaEnableDefault = 0;
cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** funcPtr, unsigned int cudaVersion,
                                             unsigned long long flags,
                                             cudaDriverEntryPointQueryResult* driverStatus = nullptr);

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value);
template <class F>
inline cudaError_t cudaFuncSetAttribute(F* func, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(reinterpret_cast<const void*>(func), attr, value);
}

// ---- kernel launch ------------------------------------------------------------
// The build's rewrite step turns `k<<<g, b, smem, s>>>(a, b)` into a call of
// ::emu::launch_kernel (below).
namespace emu {
struct LaunchConfig {
    dim3 grid, block;
    std::size_t smem;
    cudaStream_t stream;
    dim3 cluster{0, 0, 0};  // blocks per cluster (cudaLaunchAttributeClusterDimension); 0: none given
    LaunchConfig(dim3 g, dim3 b, std::size_t s = 0, cudaStream_t st = 0) : grid(g), block(b), smem(s), stream(st) {}
};
// Checks the configuration like the runtime, then queues the grid; `body` runs
// once per CUDA thread.
void launch(const void* func, const LaunchConfig& cfg, std::function<void()> body);
// The same, returning the error; a cooperative launch also needs every block
// resident at once (cudaErrorCooperativeLaunchTooLarge otherwise).
cudaError_t launch_checked(const void* func, const LaunchConfig& cfg, std::function<void()> body, bool cooperative);

// cudaLaunchKernel takes the kernel as `const void*` and its arguments as
// pointers. The kernel's parameter types are needed to read them, so every
// typed use of a kernel (a <<<>>> launch, cudaLaunchKernel or
// cudaLaunchCooperativeKernel with the kernel itself, cudaFuncGetAttributes,
// cudaFuncSetAttribute, the occupancy calls) records a launcher for it; a
// kernel cast to void* before any of these is refused with a message.
using ArgsLauncher = cudaError_t (*)(const void* func, const LaunchConfig& cfg, void** args, bool cooperative);
void register_kernel(const void* func, ArgsLauncher launcher);
template <class... P, std::size_t... I>
inline cudaError_t launch_from_args(const void* func, const LaunchConfig& cfg, void** args, bool cooperative,
                                    std::index_sequence<I...>) {
    auto f = reinterpret_cast<void (*)(P...)>(const_cast<void*>(func));
    auto params = std::make_shared<std::tuple<std::decay_t<P>...>>(*static_cast<std::decay_t<P>*>(args[I])...);
    return launch_checked(
        func, cfg, [f, params] { std::apply(f, *params); }, cooperative);
}
template <class... P>
inline cudaError_t launch_from_args(const void* func, const LaunchConfig& cfg, void** args, bool cooperative) {
    return launch_from_args<P...>(func, cfg, args, cooperative, std::index_sequence_for<P...>{});
}
template <class... P>
inline const void* known_kernel(void (*func)(P...)) {
    const void* f = reinterpret_cast<const void*>(func);
    register_kernel(f, &launch_from_args<P...>);
    return f;
}

// ---- kernel launch as people write it ---------------------------------------------
// emu_rewrite turns `CALLEE<<<CFG>>>(ARGS)` into
//
//   ::emu::launch_kernel(::emu::LaunchConfig(CFG),
//       [&](auto t) -> decltype(::emu::kernel_pointer<decltype(t)>(CALLEE)) { return ...(CALLEE); },
//       [=](auto&... a) { CALLEE(a...); },
//       ARGS)
//
// so the arguments are evaluated once, here, in the launching thread. The first
// lambda names the kernel when CALLEE is one function (a kernel, an explicit
// instantiation `k<float, 4>`, a function pointer): its parameters are then
// converted from the arguments at the launch, as the runtime copies them. When
// CALLEE is an overload set or a template whose arguments come from the call,
// that lambda cannot be called (its return type does not exist), and the second
// one calls CALLEE like an ordinary function, so overload resolution and
// template argument deduction run as they would for a call.
template <class Tag, class... P>
auto kernel_pointer(void (*f)(P...)) -> void (*)(P...) {
    return f;
}
// The rewrite passes a literal `NULL` or `0` argument as this: it converts to any
// pointer (null) and to any type made from an int (zero), as the literal would.
struct NullArg {
    template <class T>
    operator T*() const {
        return nullptr;
    }
    template <class T, std::enable_if_t<!std::is_pointer<T>::value && std::is_constructible<T, int>::value, int> = 0>
    operator T() const {
        return T(0);
    }
};
template <class... P, class Call, class... A>
inline void launch_named(void (*func)(P...), const LaunchConfig& cfg, const Call& call, A&&... a) {
    using Params = std::tuple<std::decay_t<P>...>;
    known_kernel(func);  // cudaLaunchKernel((void*)func, ...) can then read its arguments
    if constexpr (sizeof...(P) == sizeof...(A) && std::is_constructible<Params, A&&...>::value) {
        // Each CUDA thread gets its own copy of the converted parameters.
        auto params = std::make_shared<Params>(std::forward<A>(a)...);
        launch(reinterpret_cast<const void*>(func), cfg, [func, params] { std::apply(func, *params); });
    } else {
        // Default arguments, or arguments the parameters cannot be made from:
        // called as written (the compiler names a mismatch).
        auto params = std::make_shared<std::tuple<std::decay_t<A>...>>(std::forward<A>(a)...);
        launch(reinterpret_cast<const void*>(func), cfg, [call, params] { std::apply(call, *params); });
    }
}
template <class Name, class Call, class... A>
inline void launch_kernel(const LaunchConfig& cfg, Name name, Call call, A&&... a) {
    if constexpr (std::is_invocable<Name, int>::value) {
        launch_named(name(0), cfg, call, std::forward<A>(a)...);
    } else {
        // The kernel is not known by address here: launch() applies the largest
        // dynamic shared memory limit set with cudaFuncSetAttribute for any kernel.
        auto params = std::make_shared<std::tuple<std::decay_t<A>...>>(std::forward<A>(a)...);
        launch(nullptr, cfg, [call, params] { std::apply(call, *params); });
    }
}
}  // namespace emu

// ---- host allocation flags and memory advice (llm.c's llmc/ headers use them) ----
#define cudaHostAllocPortable 0x01
#define cudaHostAllocMapped 0x02
#define cudaHostAllocWriteCombined 0x04
// The C++ form of cudaMallocHost with flags (cudaHostAlloc's).
template <class T>
inline cudaError_t cudaMallocHost(T** ptr, std::size_t size, unsigned flags) {
    return cudaHostAlloc(reinterpret_cast<void**>(ptr), size, flags);
}
constexpr int cudaCpuDeviceId = -1;
enum cudaMemoryAdvise {
    cudaMemAdviseSetReadMostly = 1,
    cudaMemAdviseUnsetReadMostly = 2,
    cudaMemAdviseSetPreferredLocation = 3,
    cudaMemAdviseUnsetPreferredLocation = 4,
    cudaMemAdviseSetAccessedBy = 5,
    cudaMemAdviseUnsetAccessedBy = 6,
};
// Where managed memory should live: there is one memory here, so the advice
// changes nothing; the device must still be the CPU or device 0.
inline cudaError_t cudaMemAdvise(const void* ptr, std::size_t, cudaMemoryAdvise, int device) {
    return ptr && (device == cudaCpuDeviceId || device == 0) ? cudaSuccess : cudaErrorInvalidValue;
}

// ---- cooperative launches, occupancy, 2-D copies, symbols, stream-ordered memory ----
cudaError_t cudaLaunchKernel(const void* func, dim3 grid, dim3 block, void** args, std::size_t smem = 0,
                             cudaStream_t stream = 0);
cudaError_t cudaLaunchCooperativeKernel(const void* func, dim3 grid, dim3 block, void** args, std::size_t smem = 0,
                                        cudaStream_t stream = 0);
template <class... P>
inline cudaError_t cudaLaunchKernel(void (*func)(P...), dim3 grid, dim3 block, void** args, std::size_t smem = 0,
                                    cudaStream_t stream = 0) {
    return cudaLaunchKernel(::emu::known_kernel(func), grid, block, args, smem, stream);
}
template <class... P>
inline cudaError_t cudaLaunchCooperativeKernel(void (*func)(P...), dim3 grid, dim3 block, void** args,
                                               std::size_t smem = 0, cudaStream_t stream = 0) {
    return cudaLaunchCooperativeKernel(::emu::known_kernel(func), grid, block, args, smem, stream);
}

// cudaLaunchKernelEx: a launch configuration with attributes (thread-block
// clusters, cooperative launches), as CUDA 12 spells it.
enum cudaLaunchAttributeID {
    cudaLaunchAttributeIgnore = 0,
    cudaLaunchAttributeAccessPolicyWindow = 1,
    cudaLaunchAttributeCooperative = 2,
    cudaLaunchAttributeSynchronizationPolicy = 3,
    cudaLaunchAttributeClusterDimension = 4,
    cudaLaunchAttributeClusterSchedulingPolicyPreference = 5,
    cudaLaunchAttributeProgrammaticStreamSerialization = 6,
    cudaLaunchAttributeProgrammaticEvent = 7,
    cudaLaunchAttributePriority = 8,
};
enum cudaClusterSchedulingPolicy {
    cudaClusterSchedulingPolicyDefault = 0,
    cudaClusterSchedulingPolicySpread = 1,
    cudaClusterSchedulingPolicyLoadBalancing = 2,
};
union cudaLaunchAttributeValue {
    char pad[64];
    int cooperative;
    struct {
        unsigned int x;
        unsigned int y;
        unsigned int z;
    } clusterDim;
    cudaClusterSchedulingPolicy clusterSchedulingPolicyPreference;
    int programmaticStreamSerializationAllowed;
    int priority;
};
typedef struct cudaLaunchAttribute_st {
    cudaLaunchAttributeID id;
    char pad[8 - sizeof(cudaLaunchAttributeID)];
    cudaLaunchAttributeValue val;
} cudaLaunchAttribute;
typedef struct cudaLaunchConfig_st {
    dim3 gridDim;
    dim3 blockDim;
    std::size_t dynamicSmemBytes;
    cudaStream_t stream;
    cudaLaunchAttribute* attrs;
    unsigned int numAttrs;
} cudaLaunchConfig_t;
// Attributes other than the cluster dimension, cooperative, the cluster
// scheduling policy, programmatic serialization and priority (accepted, no
// effect) are refused with cudaErrorInvalidValue and a message.
cudaError_t cudaLaunchKernelExC(const cudaLaunchConfig_t* config, const void* func, void** args);
template <class... ExpTypes, class... ActTypes>
inline cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* config, void (*kernel)(ExpTypes...),
                                      ActTypes&&... args) {
    return [&](ExpTypes... coercedArgs) {
        void* pArgs[sizeof...(ExpTypes) + 1] = {&coercedArgs...};
        return cudaLaunchKernelExC(config, ::emu::known_kernel(kernel), pArgs);
    }(std::forward<ActTypes>(args)...);
}
namespace emu {
// A kernel declared with __cluster_dims__ (emu_rewrite registers it after its definition).
bool register_cluster_dims(const void* func, unsigned x, unsigned y, unsigned z);
template <class Name>
inline bool register_cluster_dims_of(Name name, unsigned x, unsigned y, unsigned z) {
    if constexpr (std::is_invocable<Name, int>::value)
        return register_cluster_dims(reinterpret_cast<const void*>(name(0)), x, y, z);
    else return false;  // a template kernel: its launch does not know the dimensions (the body checks them)
}
}  // namespace emu

template <class... P>
inline cudaError_t cudaFuncSetAttribute(void (*func)(P...), cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(::emu::known_kernel(func), attr, value);
}

// What the runtime reports of a kernel. The emulator does not compile for a
// GPU: registers, local and static shared memory are unknown and read 0 (and
// the occupancy calls assume the registers fit).
struct cudaFuncAttributes {
    std::size_t sharedSizeBytes;
    std::size_t constSizeBytes;
    std::size_t localSizeBytes;
    int maxThreadsPerBlock;
    int numRegs;
    int ptxVersion;
    int binaryVersion;
    int cacheModeCA;
    int maxDynamicSharedSizeBytes;
    int preferredShmemCarveout;
};
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void* func);
template <class... P>
inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, void (*func)(P...)) {
    return cudaFuncGetAttributes(attr, ::emu::known_kernel(func));
}
// Blocks of `blockSize` threads that fit on one SM: the SM's 2048 threads, its
// 32 blocks and its shared memory (the dynamic bytes plus the 1 KiB the runtime
// reserves per block) limit them.
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* numBlocks, const void* func, int blockSize,
                                                          std::size_t dynamicSMemSize);
template <class... P>
inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* numBlocks, void (*func)(P...), int blockSize,
                                                                 std::size_t dynamicSMemSize) {
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(numBlocks, ::emu::known_kernel(func), blockSize,
                                                         dynamicSMemSize);
}
namespace emu {
cudaError_t max_potential_block_size(int* minGridSize, int* blockSize, const void* func, std::size_t smem, int limit);
}
// The block size (a multiple of 32) with the most resident threads per SM, the
// largest such; minGridSize is the grid that fills every SM with it.
template <class... P>
inline cudaError_t cudaOccupancyMaxPotentialBlockSize(int* minGridSize, int* blockSize, void (*func)(P...),
                                                      std::size_t dynamicSMemSize = 0, int blockSizeLimit = 0) {
    return ::emu::max_potential_block_size(minGridSize, blockSize, ::emu::known_kernel(func), dynamicSMemSize,
                                           blockSizeLimit);
}

cudaError_t cudaMemcpy2D(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
                         std::size_t height, cudaMemcpyKind kind);
cudaError_t cudaMemcpy2DAsync(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width,
                              std::size_t height, cudaMemcpyKind kind, cudaStream_t stream = 0);
// Rows padded to a multiple of 512 bytes.
cudaError_t cudaMallocPitch(void** ptr, std::size_t* pitch, std::size_t width, std::size_t height);
template <class T>
inline cudaError_t cudaMallocPitch(T** ptr, std::size_t* pitch, std::size_t width, std::size_t height) {
    return cudaMallocPitch(reinterpret_cast<void**>(ptr), pitch, width, height);
}
// Stream-ordered allocation: the memory is allocated at the call (so usable by
// the stream's later work) and freed when the stream reaches cudaFreeAsync.
cudaError_t cudaMallocAsync(void** ptr, std::size_t size, cudaStream_t stream);
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream);
template <class T>
inline cudaError_t cudaMallocAsync(T** ptr, std::size_t size, cudaStream_t stream) {
    return cudaMallocAsync(reinterpret_cast<void**>(ptr), size, stream);
}

// __device__ and __constant__ variables are ordinary globals here; the symbol
// calls treat them as device memory of their size (copies past the end are
// cudaErrorInvalidValue).
namespace emu {
void register_symbol(const void* addr, std::size_t bytes);
}
template <class T>
inline cudaError_t cudaGetSymbolAddress(void** devPtr, const T& symbol) {
    if (!devPtr) return cudaErrorInvalidValue;
    ::emu::register_symbol(&symbol, sizeof(T));
    *devPtr = const_cast<void*>(static_cast<const void*>(&symbol));
    return cudaSuccess;
}
template <class T>
inline cudaError_t cudaGetSymbolSize(std::size_t* size, const T&) {
    if (!size) return cudaErrorInvalidValue;
    *size = sizeof(T);
    return cudaSuccess;
}
namespace emu {
cudaError_t memcpy_symbol(bool to_symbol, const void* symbol, std::size_t symbol_bytes, void* other, std::size_t count,
                          std::size_t offset, cudaMemcpyKind kind, bool async, cudaStream_t stream);
}
template <class T>
inline cudaError_t cudaMemcpyToSymbol(const T& symbol, const void* src, std::size_t count, std::size_t offset = 0,
                                      cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
    return ::emu::memcpy_symbol(true, &symbol, sizeof(T), const_cast<void*>(src), count, offset, kind, false, 0);
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbol(void* dst, const T& symbol, std::size_t count, std::size_t offset = 0,
                                        cudaMemcpyKind kind = cudaMemcpyDeviceToHost) {
    return ::emu::memcpy_symbol(false, &symbol, sizeof(T), dst, count, offset, kind, false, 0);
}
template <class T>
inline cudaError_t cudaMemcpyToSymbolAsync(const T& symbol, const void* src, std::size_t count, std::size_t offset = 0,
                                           cudaMemcpyKind kind = cudaMemcpyHostToDevice, cudaStream_t stream = 0) {
    return ::emu::memcpy_symbol(true, &symbol, sizeof(T), const_cast<void*>(src), count, offset, kind, true, stream);
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbolAsync(void* dst, const T& symbol, std::size_t count, std::size_t offset = 0,
                                             cudaMemcpyKind kind = cudaMemcpyDeviceToHost, cudaStream_t stream = 0) {
    return ::emu::memcpy_symbol(false, &symbol, sizeof(T), dst, count, offset, kind, true, stream);
}

// atomicAdd_block, atomicAdd_system and the like: every atomic is exact across
// the whole emulated device, so the scoped forms are the plain ones.
#define EMU_SCOPED_ATOMIC(NAME)                                        \
    template <class T, class... A>                                     \
    inline auto NAME##_block(T* p, A... a)->decltype(NAME(p, a...)) {  \
        return NAME(p, a...);                                          \
    }                                                                  \
    template <class T, class... A>                                     \
    inline auto NAME##_system(T* p, A... a)->decltype(NAME(p, a...)) { \
        return NAME(p, a...);                                          \
    }
EMU_SCOPED_ATOMIC(atomicAdd)
EMU_SCOPED_ATOMIC(atomicSub)
EMU_SCOPED_ATOMIC(atomicExch)
EMU_SCOPED_ATOMIC(atomicMin)
EMU_SCOPED_ATOMIC(atomicMax)
EMU_SCOPED_ATOMIC(atomicInc)
EMU_SCOPED_ATOMIC(atomicDec)
EMU_SCOPED_ATOMIC(atomicCAS)
EMU_SCOPED_ATOMIC(atomicAnd)
EMU_SCOPED_ATOMIC(atomicOr)
EMU_SCOPED_ATOMIC(atomicXor)
#undef EMU_SCOPED_ATOMIC
// Mapped host memory (kernels/ptx.h's bounded mbarrier waits report through
// it): the device pointer of host memory is the host pointer.
cudaError_t cudaHostGetDevicePointer(void** device, void* host, unsigned flags);
template <class T>
cudaError_t cudaHostAlloc(T** ptr, std::size_t size, unsigned flags) {
    return cudaHostAlloc(reinterpret_cast<void**>(ptr), size, flags);
}
template <class T>
cudaError_t cudaHostGetDevicePointer(T** device, void* host, unsigned flags) {
    return cudaHostGetDevicePointer(reinterpret_cast<void**>(device), host, flags);
}

#endif  // EMU_CUDA_RUNTIME_H
