// Device-language pieces that nvcc's headers provide beyond emu/device.h:
// __trap(), the mixed-sign min/max overloads of CUDA's math_functions.h, and
// the C math library's names (isfinite, isnan, signbit, the float overloads of
// sqrt, exp, ...) in the global namespace, as cuda_runtime.h makes them.
#ifndef EMU_DEVICE_EXTRAS_H
#define EMU_DEVICE_EXTRAS_H

// libstdc++'s <math.h> declares <cmath>'s functions, classification macros
// included (isfinite, isnan, isinf, signbit, ...), in the global namespace,
// with their float and double overloads: sqrt(float) is a float, as under nvcc.
#include <math.h>

#include "emu/device.h"

// __trap() stops the kernel, as a failed assert does: the emulator names the
// block and thread and aborts the program.
[[noreturn]] inline void __trap() { ::emu::kernel_fail("__trap() called: the kernel stops"); }

// The mixed-sign overloads of CUDA's min/max: a signed and an unsigned integer
// of the same width compare as unsigned (the signed one converted), and a float
// with a double gives a double. Other mixes (long with int, ...) are
// ambiguous, as under nvcc.
#define EMU_MINMAX_MIXED(R, A, B)                                                  \
    inline R min(A a, B b) { return ::min(static_cast<R>(a), static_cast<R>(b)); } \
    inline R max(A a, B b) { return ::max(static_cast<R>(a), static_cast<R>(b)); }
EMU_MINMAX_MIXED(unsigned int, int, unsigned int)
EMU_MINMAX_MIXED(unsigned int, unsigned int, int)
EMU_MINMAX_MIXED(unsigned long, long, unsigned long)
EMU_MINMAX_MIXED(unsigned long, unsigned long, long)
EMU_MINMAX_MIXED(unsigned long long, long long, unsigned long long)
EMU_MINMAX_MIXED(unsigned long long, unsigned long long, long long)
EMU_MINMAX_MIXED(double, float, double)
EMU_MINMAX_MIXED(double, double, float)
#undef EMU_MINMAX_MIXED

#endif  // EMU_DEVICE_EXTRAS_H
