// Read before every emulated CUDA source, as nvcc reads cuda_runtime.h.
#include "cuda_runtime.h"
#include "emu/device_extras.h"
// Inline PTX: the rewritten asm statements call the PTX interpreter.
#include "emu/ptx.h"
// The emulated device is an H100: the macros nvcc defines for sm_90a device
// code, so that code guarded by them (kernels/ptx.h's wgmma and TMA) takes the
// same path as on the GPU. Host code sees them too (one compilation serves
// both sides here); nothing in the project tests them for host-only paths.
#define __CUDA_ARCH__ 900
#define __CUDA_ARCH_FEAT_SM90_ALL 1
