// Emulated cuda_fp16.h: see emu/lowp.h.
#include "emu/lowp.h"
