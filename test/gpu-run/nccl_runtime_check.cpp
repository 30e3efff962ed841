// The GPU bundle's trainer loads NCCL at run time (gpu/nccl_runtime.h). This
// program, built the same way, resolves every NCCL function the trainer calls
// from the library it would load, and prints the library's version; with
// LLAMA_NCCL_LIB naming a missing file it must stop with the message the
// trainer would give. (No GPU needed: nothing here calls into CUDA.)
#include <cstdio>

#include "gpu/nccl_runtime.h"

int main() {
    const char* names[] = {"ncclGetUniqueId", "ncclCommInitRank", "ncclAllReduce", "ncclReduce",
                           "ncclAllGather",   "ncclGroupStart",   "ncclGroupEnd",  "ncclGetErrorString"};
    for (const char* name : names) (void)nccl_runtime::function<void (*)()>(name);
    const int v = nccl_runtime::version();
    std::printf("nccl_runtime: %s: %zu functions resolved, NCCL %d.%d.%d\n", nccl_runtime::library_name().c_str(),
                sizeof names / sizeof names[0], v / 10000, v / 100 % 100, v % 100);
    std::printf("nccl_runtime: ncclGetErrorString(ncclInvalidArgument) = \"%s\"\n",
                ncclGetErrorString(ncclInvalidArgument));
    return v > 0 ? 0 : 1;
}
