// Tensor maps for the TMA tests and planted programs: the driver's
// cuTensorMapEncodeTiled reached through the runtime (as the kernels' launchers
// reach it, so nothing links -lcuda), and a 3-D bf16 map built with it.
#ifndef TEST_EMULATOR_TENSOR_MAP_CUH
#define TEST_EMULATOR_TENSOR_MAP_CUH

#include <cstdint>
#include <cuda.h>
#include <cuda_runtime.h>

using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// cuTensorMapEncodeTiled from the driver, or nullptr when it has none.
inline EncodeTiledFn encode_tiled_fn() {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
        return nullptr;
    return reinterpret_cast<EncodeTiledFn>(fn);
}

// A map of the bf16 tensor at `base` with dims[0] x dims[1] x dims[2] elements
// (dims[0] contiguous), strides[0] and strides[1] bytes from one index of
// dimension 1 and 2 to the next, copied in boxes of box[0] x box[1] x box[2].
inline CUresult encode_bf16_3d(CUtensorMap* map, const void* base, const uint64_t dims[3], const uint64_t strides[2],
                               const uint32_t box[3], CUtensorMapSwizzle swizzle) {
    const EncodeTiledFn encode = encode_tiled_fn();
    if (!encode) return CUDA_ERROR_NOT_SUPPORTED;
    const cuuint64_t d[3] = {dims[0], dims[1], dims[2]}, s[2] = {strides[0], strides[1]};
    const cuuint32_t b[3] = {box[0], box[1], box[2]}, unit[3] = {1, 1, 1};
    return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(base), d, s, b, unit,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_NONE,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}

#endif  // TEST_EMULATOR_TENSOR_MAP_CUH
