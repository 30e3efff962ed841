// Emulated cuda_bf16.h: see emu/lowp.h.
#include "emu/lowp.h"
