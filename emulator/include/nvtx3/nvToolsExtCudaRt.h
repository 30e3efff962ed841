// NVTX names for CUDA streams and events: nothing to name without a profiler.
#ifndef EMU_NVTOOLSEXTCUDART_H
#define EMU_NVTOOLSEXTCUDART_H

#include <cuda_runtime.h>
#include "nvtx3/nvToolsExt.h"

inline void nvtxNameCudaStreamA(cudaStream_t, const char*) {}
inline void nvtxNameCudaEventA(cudaEvent_t, const char*) {}
inline void nvtxNameCudaDeviceA(int, const char*) {}

#endif  // EMU_NVTOOLSEXTCUDART_H
