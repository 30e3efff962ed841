// cuBLAS's v2 API, as programs include it; the declarations are in cublas_api.h.
#ifndef EMU_CUBLAS_V2_H
#define EMU_CUBLAS_V2_H

#include "cublas_api.h"

#endif  // EMU_CUBLAS_V2_H
