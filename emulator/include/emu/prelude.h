// Read before every emulated CUDA source, as nvcc reads cuda_runtime.h.
#include "cuda_runtime.h"
#include "emu/device_extras.h"
