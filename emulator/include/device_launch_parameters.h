// Nothing to add: the built-in variables come from cuda_runtime.h.
#include "cuda_runtime.h"
