// The data types that the CUDA libraries (cuBLAS, cuBLASLt) take as arguments,
// with the numbers of NVIDIA's library_types.h (they show in printed statuses).
#ifndef EMU_LIBRARY_TYPES_H
#define EMU_LIBRARY_TYPES_H

enum cudaDataType_t {
    CUDA_R_32F = 0,
    CUDA_R_64F = 1,
    CUDA_R_16F = 2,
    CUDA_R_8I = 3,
    CUDA_C_32F = 4,
    CUDA_C_64F = 5,
    CUDA_C_16F = 6,
    CUDA_R_32I = 10,
    CUDA_R_16BF = 14,
};
typedef cudaDataType_t cudaDataType;

#endif  // EMU_LIBRARY_TYPES_H
