// NCCL loaded at run time, for builds made with -DLLAMA_NCCL_DLOPEN (the GPU
// bundle, dev/build.mk): such a binary needs no libnccl to start, runs on one
// GPU without it, and loads it only when several ranks must talk. It is looked
// for as LLAMA_NCCL_LIB names it, else as libnccl.so.2 on the loader's path (a
// pip-installed NCCL lives in site-packages/nvidia/nccl/lib: name that file).
//
// <nccl.h> gives the types; each function the trainer calls is resolved at its
// first call and the NCCL names below are redirected to these, so the code that
// calls NCCL is the same in every build.
#ifndef GPU_NCCL_RUNTIME_H
#define GPU_NCCL_RUNTIME_H

#include <cstdio>
#include <cstdlib>
#include <string>

#include <dlfcn.h>
#include <nccl.h>

namespace nccl_runtime {

// The library name tried: LLAMA_NCCL_LIB, else libnccl.so.2.
inline std::string library_name() {
    const char* env = std::getenv("LLAMA_NCCL_LIB");
    return env && *env ? env : "libnccl.so.2";
}

[[noreturn]] inline void fail(const std::string& what) {
    std::fflush(stdout);
    std::fprintf(stderr, "train_llama: %s\n", what.c_str());
    std::exit(EXIT_FAILURE);
}

inline void* library() {
    static void* handle = [] {
        void* h = dlopen(library_name().c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!h)
            fail("several ranks need NCCL, and " + library_name() + " could not be loaded (" + dlerror() +
                 "); set LLAMA_NCCL_LIB to the path of libnccl.so.2");
        return h;
    }();
    return handle;
}

template <class F>
F function(const char* name) {
    void* f = dlsym(library(), name);
    if (!f) fail(library_name() + " has no " + name + ": is it NCCL 2?");
    return reinterpret_cast<F>(f);
}

// Every function below, once each (dev/build.mk's check loads them all).
inline ncclResult_t GetUniqueId(ncclUniqueId* id) {
    static const auto f = function<ncclResult_t (*)(ncclUniqueId*)>("ncclGetUniqueId");
    return f(id);
}
inline ncclResult_t CommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
    static const auto f = function<ncclResult_t (*)(ncclComm_t*, int, ncclUniqueId, int)>("ncclCommInitRank");
    return f(comm, nranks, id, rank);
}
inline ncclResult_t AllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                              ncclComm_t comm, cudaStream_t stream) {
    static const auto f =
        function<ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t)>(
            "ncclAllReduce");
    return f(send, recv, count, type, op, comm, stream);
}
inline ncclResult_t Reduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op, int root,
                           ncclComm_t comm, cudaStream_t stream) {
    static const auto f = function<ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, int,
                                                    ncclComm_t, cudaStream_t)>("ncclReduce");
    return f(send, recv, count, type, op, root, comm, stream);
}
inline ncclResult_t AllGather(const void* send, void* recv, size_t count, ncclDataType_t type, ncclComm_t comm,
                              cudaStream_t stream) {
    static const auto f =
        function<ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, cudaStream_t)>(
            "ncclAllGather");
    return f(send, recv, count, type, comm, stream);
}
inline ncclResult_t GroupStart() {
    static const auto f = function<ncclResult_t (*)()>("ncclGroupStart");
    return f();
}
inline ncclResult_t GroupEnd() {
    static const auto f = function<ncclResult_t (*)()>("ncclGroupEnd");
    return f();
}
inline const char* GetErrorString(ncclResult_t r) {
    static const auto f = function<const char* (*)(ncclResult_t)>("ncclGetErrorString");
    return f(r);
}
// The library's version (ncclGetVersion), e.g. 22807 for 2.28.7.
inline int version() {
    static const auto f = function<ncclResult_t (*)(int*)>("ncclGetVersion");
    int v = 0;
    return f(&v) == ncclSuccess ? v : 0;
}

}  // namespace nccl_runtime

#define ncclGetUniqueId nccl_runtime::GetUniqueId
#define ncclCommInitRank nccl_runtime::CommInitRank
#define ncclAllReduce nccl_runtime::AllReduce
#define ncclReduce nccl_runtime::Reduce
#define ncclAllGather nccl_runtime::AllGather
#define ncclGroupStart nccl_runtime::GroupStart
#define ncclGroupEnd nccl_runtime::GroupEnd
#define ncclGetErrorString nccl_runtime::GetErrorString

#endif  // GPU_NCCL_RUNTIME_H
