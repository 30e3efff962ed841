// Emulated CUDA driver API: the subset this project uses, which is the tensor
// map of Hopper's TMA (cuTensorMapEncodeTiled), with the driver's names and
// values. Programs usually reach it through cudaGetDriverEntryPointByVersion,
// which the runtime stand-in answers for these functions.
#ifndef EMU_CUDA_H
#define EMU_CUDA_H

#include <cstdint>
#include "cuda_runtime.h"

typedef uint32_t cuuint32_t;
typedef uint64_t cuuint64_t;

enum CUresult {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_NOT_SUPPORTED = 801,
};

#define CU_TENSOR_MAP_NUM_QWORDS 16
typedef struct CUtensorMap_st {
    alignas(64) cuuint64_t opaque[CU_TENSOR_MAP_NUM_QWORDS];
} CUtensorMap;

typedef enum CUtensorMapDataType_enum {
    CU_TENSOR_MAP_DATA_TYPE_UINT8 = 0,
    CU_TENSOR_MAP_DATA_TYPE_UINT16,
    CU_TENSOR_MAP_DATA_TYPE_UINT32,
    CU_TENSOR_MAP_DATA_TYPE_INT32,
    CU_TENSOR_MAP_DATA_TYPE_UINT64,
    CU_TENSOR_MAP_DATA_TYPE_INT64,
    CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
    CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
    CU_TENSOR_MAP_DATA_TYPE_FLOAT64,
    CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
} CUtensorMapDataType;
typedef enum CUtensorMapInterleave_enum {
    CU_TENSOR_MAP_INTERLEAVE_NONE = 0,
    CU_TENSOR_MAP_INTERLEAVE_16B,
    CU_TENSOR_MAP_INTERLEAVE_32B
} CUtensorMapInterleave;
typedef enum CUtensorMapSwizzle_enum {
    CU_TENSOR_MAP_SWIZZLE_NONE = 0,
    CU_TENSOR_MAP_SWIZZLE_32B,
    CU_TENSOR_MAP_SWIZZLE_64B,
    CU_TENSOR_MAP_SWIZZLE_128B
} CUtensorMapSwizzle;
typedef enum CUtensorMapL2promotion_enum {
    CU_TENSOR_MAP_L2_PROMOTION_NONE = 0,
    CU_TENSOR_MAP_L2_PROMOTION_L2_64B,
    CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
    CU_TENSOR_MAP_L2_PROMOTION_L2_256B
} CUtensorMapL2promotion;
typedef enum CUtensorMapFloatOOBfill_enum {
    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE = 0,
    CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA
} CUtensorMapFloatOOBfill;

// A tiled tensor map: the driver's checks (rank 1..5, 16-byte aligned address,
// strides multiples of 16 below 2^40, boxes of 1..256 elements whose inner
// dimension is a multiple of 16 bytes, at most the swizzle span when swizzled)
// and, for the emulated TMA, the fields below. Only element strides of 1, no
// interleave, and no swizzle or a 32-, 64- or 128-byte swizzle with an inner
// box of exactly the swizzle's span are emulated; anything else is
// CUDA_ERROR_NOT_SUPPORTED.
CUresult cuTensorMapEncodeTiled(CUtensorMap* tensorMap, CUtensorMapDataType tensorDataType, cuuint32_t tensorRank,
                                void* globalAddress, const cuuint64_t* globalDim, const cuuint64_t* globalStrides,
                                const cuuint32_t* boxDim, const cuuint32_t* elementStrides,
                                CUtensorMapInterleave interleave, CUtensorMapSwizzle swizzle,
                                CUtensorMapL2promotion l2Promotion, CUtensorMapFloatOOBfill oobFill);

namespace emu {
// What the emulator keeps in a CUtensorMap's opaque words.
struct TensorMapFields {
    uint64_t magic;
    const unsigned char* base;
    uint32_t rank, elem_bytes, swizzle, pad;  // swizzle: the span in bytes (32, 64, 128), 0 for none
    uint64_t dim[5];
    uint64_t stride[4];  // bytes from one index to the next of dimensions 1..4 (dimension 0: elem_bytes)
    uint32_t box[5];
};
static_assert(sizeof(TensorMapFields) <= sizeof(CUtensorMap), "the fields must fit the opaque words");
constexpr uint64_t kTensorMapMagic = 0x54454e534f524d41ull;
}  // namespace emu

#endif  // EMU_CUDA_H
