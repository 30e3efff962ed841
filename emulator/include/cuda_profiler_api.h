// cudaProfilerStart/Stop: no profiler here, so they succeed and do nothing.
#ifndef EMU_CUDA_PROFILER_API_H
#define EMU_CUDA_PROFILER_API_H

#include <cuda_runtime.h>

inline cudaError_t cudaProfilerStart() { return cudaSuccess; }
inline cudaError_t cudaProfilerStop() { return cudaSuccess; }

#endif  // EMU_CUDA_PROFILER_API_H
