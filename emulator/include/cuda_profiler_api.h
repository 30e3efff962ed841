// Profiler control: there is no profiler to start or stop in the emulator.
#ifndef EMU_CUDA_PROFILER_API_H
#define EMU_CUDA_PROFILER_API_H

#include "cuda_runtime.h"

inline cudaError_t cudaProfilerStart() { return cudaSuccess; }
inline cudaError_t cudaProfilerStop() { return cudaSuccess; }

#endif  // EMU_CUDA_PROFILER_API_H
