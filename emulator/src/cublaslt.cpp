// The cuBLASLt stand-in: D = epilogue(alpha * op(A) * op(B) + beta * C), computed
// in fp32 (double for the sums) on the host when the stream's work runs.
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "cublasLt.h"
#include "emulator/src/internal.h"

struct cublasLtContext {
    int unused = 0;
};
struct cublasLtMatmulDescOpaque_t {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
    uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void* bias = nullptr;
    int32_t bias_type = -1;  // -1: the type of D
    int64_t bias_batch_stride = 0;
};
struct cublasLtMatrixLayoutOpaque_t {
    int32_t type;
    int32_t order = CUBLASLT_ORDER_COL;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch = 1;
    int64_t batch_stride = 0;
};
struct cublasLtMatmulPreferenceOpaque_t {
    uint64_t max_workspace = 0;
};

namespace {

bool supported_type(int32_t t) { return t == CUDA_R_32F || t == CUDA_R_16BF || t == CUDA_R_16F; }
std::size_t type_size(int32_t t) { return t == CUDA_R_32F ? 4 : 2; }

float load(const void* p, int32_t type, int64_t index) {
    switch (type) {
        case CUDA_R_32F:
            return static_cast<const float*>(p)[index];
        case CUDA_R_16BF:
            return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[index]);
        default:
            return __half2float(static_cast<const __half*>(p)[index]);
    }
}
void store(void* p, int32_t type, int64_t index, float v) {
    switch (type) {
        case CUDA_R_32F:
            static_cast<float*>(p)[index] = v;
            break;
        case CUDA_R_16BF:
            static_cast<__nv_bfloat16*>(p)[index] = __float2bfloat16(v);
            break;
        default:
            static_cast<__half*>(p)[index] = __float2half(v);
            break;
    }
}
// Element (i, j) of batch item `batch` of a matrix described by `l`.
int64_t offset(const cublasLtMatrixLayoutOpaque_t& l, int64_t i, int64_t j, int64_t batch) {
    int64_t base = batch * l.batch_stride;
    return l.order == CUBLASLT_ORDER_COL ? base + i + j * l.ld : base + i * l.ld + j;
}
bool layout_ok(const cublasLtMatrixLayoutOpaque_t& l) {
    if (l.order == CUBLASLT_ORDER_COL) return l.ld >= int64_t(l.rows) && l.ld > 0;
    return l.ld >= int64_t(l.cols) && l.ld > 0;
}
float gelu_tanh(float x) {
    const float c = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasLtContext;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    cudaDeviceSynchronize();
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    if (scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    *desc = new cublasLtMatmulDescOpaque_t{compute, scale};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}

template <class T>
static bool read_attr(T& out, const void* buf, std::size_t size) {
    if (!buf || size != sizeof(T)) return false;
    std::memcpy(&out, buf, sizeof(T));
    return true;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, std::size_t size) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    bool ok = false;
    switch (attr) {
        case CUBLASLT_MATMUL_DESC_TRANSA:
            ok = read_attr(desc->transa, buf, size);
            break;
        case CUBLASLT_MATMUL_DESC_TRANSB:
            ok = read_attr(desc->transb, buf, size);
            break;
        case CUBLASLT_MATMUL_DESC_EPILOGUE:
            ok = read_attr(desc->epilogue, buf, size);
            break;
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
            ok = read_attr(desc->bias, buf, size);
            break;
        case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
            ok = read_attr(desc->bias_type, buf, size);
            break;
        case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE:
            ok = read_attr(desc->bias_batch_stride, buf, size);
            break;
        default:
            return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return ok ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType_t type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    if (!supported_type(type)) return CUBLAS_STATUS_NOT_SUPPORTED;
    auto* l = new cublasLtMatrixLayoutOpaque_t;
    l->type = type;
    l->rows = rows;
    l->cols = cols;
    l->ld = ld;
    *layout = l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, std::size_t size) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    bool ok = false;
    switch (attr) {
        case CUBLASLT_MATRIX_LAYOUT_ORDER:
            ok = read_attr(layout->order, buf, size);
            break;
        case CUBLASLT_MATRIX_LAYOUT_ROWS:
            ok = read_attr(layout->rows, buf, size);
            break;
        case CUBLASLT_MATRIX_LAYOUT_COLS:
            ok = read_attr(layout->cols, buf, size);
            break;
        case CUBLASLT_MATRIX_LAYOUT_LD:
            ok = read_attr(layout->ld, buf, size);
            break;
        case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT:
            ok = read_attr(layout->batch, buf, size);
            break;
        case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
            ok = read_attr(layout->batch_stride, buf, size);
            break;
        default:
            return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return ok ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = new cublasLtMatmulPreferenceOpaque_t;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    std::size_t size) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES)
        return read_attr(pref->max_workspace, buf, size) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_PREF_SEARCH_MODE) return CUBLAS_STATUS_SUCCESS;
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

namespace {
// Checks that the shapes agree: op(A) is m x k, op(B) is k x n, C and D are m x n.
cublasStatus_t check_shapes(const cublasLtMatmulDescOpaque_t& d, const cublasLtMatrixLayoutOpaque_t& a,
                            const cublasLtMatrixLayoutOpaque_t& b, const cublasLtMatrixLayoutOpaque_t& c,
                            const cublasLtMatrixLayoutOpaque_t& o) {
    if (d.transa == CUBLAS_OP_C || d.transb == CUBLAS_OP_C) return CUBLAS_STATUS_NOT_SUPPORTED;
    uint64_t m = d.transa == CUBLAS_OP_N ? a.rows : a.cols, ka = d.transa == CUBLAS_OP_N ? a.cols : a.rows;
    uint64_t kb = d.transb == CUBLAS_OP_N ? b.rows : b.cols, n = d.transb == CUBLAS_OP_N ? b.cols : b.rows;
    if (ka != kb || c.rows != m || c.cols != n || o.rows != m || o.cols != n) return CUBLAS_STATUS_INVALID_VALUE;
    if (!layout_ok(a) || !layout_ok(b) || !layout_ok(c) || !layout_ok(o)) return CUBLAS_STATUS_INVALID_VALUE;
    if (a.batch != o.batch || b.batch != o.batch || c.batch != o.batch) return CUBLAS_STATUS_INVALID_VALUE;
    switch (d.epilogue) {
        case CUBLASLT_EPILOGUE_DEFAULT:
        case CUBLASLT_EPILOGUE_RELU:
        case CUBLASLT_EPILOGUE_GELU:
            break;
        case CUBLASLT_EPILOGUE_BIAS:
        case CUBLASLT_EPILOGUE_RELU_BIAS:
        case CUBLASLT_EPILOGUE_GELU_BIAS:
        case CUBLASLT_EPILOGUE_BGRADA:
        case CUBLASLT_EPILOGUE_BGRADB:
            if (!d.bias) return CUBLAS_STATUS_INVALID_VALUE;
            break;
        default:
            return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}
}  // namespace

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!desc || !a || !b || !c || !d || !pref || requested < 1 || !results || !returned)
        return CUBLAS_STATUS_INVALID_VALUE;
    cublasStatus_t s = check_shapes(*desc, *a, *b, *c, *d);
    *returned = 0;
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    std::memset(&results[0], 0, sizeof(results[0]));
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* a,
                              cublasLtMatrixLayout_t adesc, const void* b, cublasLtMatrixLayout_t bdesc,
                              const void* beta, const void* c, cublasLtMatrixLayout_t cdesc, void* d,
                              cublasLtMatrixLayout_t ddesc, const cublasLtMatmulAlgo_t*, void*, std::size_t,
                              cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!desc || !alpha || !beta || !a || !b || !d || !adesc || !bdesc || !cdesc || !ddesc)
        return CUBLAS_STATUS_INVALID_VALUE;
    cublasStatus_t s = check_shapes(*desc, *adesc, *bdesc, *cdesc, *ddesc);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    float al, be;
    std::memcpy(&al, alpha, 4);
    std::memcpy(&be, beta, 4);
    if (be != 0.0f && !c) return CUBLAS_STATUS_INVALID_VALUE;
    // Descriptors may be changed or destroyed once the call returns: copy them.
    auto md = *desc;
    auto la = *adesc, lb = *bdesc, lc = *cdesc, ld = *ddesc;
    emu::enqueue_host_work(stream, [=] {
        int64_t m = int64_t(ld.rows), n = int64_t(ld.cols);
        int64_t k = md.transa == CUBLAS_OP_N ? int64_t(la.cols) : int64_t(la.rows);
        int32_t bias_type = md.bias_type < 0 ? ld.type : md.bias_type;
        // op(A) row by row and op(B) column by column, so that each element of
        // D is one contiguous dot product (emu::packed_products).
        std::vector<double> opa(std::size_t(m * k)), opb(std::size_t(n * k));
        for (int64_t bt = 0; bt < ld.batch; ++bt) {
            const char* bias =
                static_cast<const char*>(md.bias) + bt * md.bias_batch_stride * int64_t(type_size(bias_type));
            for (int64_t i = 0; i < m; ++i)
                for (int64_t p = 0; p < k; ++p)
                    opa[std::size_t(i * k + p)] = md.transa == CUBLAS_OP_N ? load(a, la.type, offset(la, i, p, bt))
                                                                           : load(a, la.type, offset(la, p, i, bt));
            for (int64_t j = 0; j < n; ++j)
                for (int64_t p = 0; p < k; ++p)
                    opb[std::size_t(j * k + p)] = md.transb == CUBLAS_OP_N ? load(b, lb.type, offset(lb, p, j, bt))
                                                                           : load(b, lb.type, offset(lb, j, p, bt));
            emu::packed_products(m, n, k, opa.data(), opb.data(), [&](int64_t i, int64_t j, double acc) {
                float v = al * float(acc);
                if (be != 0.0f) v += be * load(c, lc.type, offset(lc, i, j, bt));
                uint32_t e = md.epilogue;
                if (e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS || e == CUBLASLT_EPILOGUE_GELU_BIAS)
                    v += load(bias, bias_type, i);
                if (e == CUBLASLT_EPILOGUE_RELU || e == CUBLASLT_EPILOGUE_RELU_BIAS) v = v > 0.0f ? v : 0.0f;
                if (e == CUBLASLT_EPILOGUE_GELU || e == CUBLASLT_EPILOGUE_GELU_BIAS) v = gelu_tanh(v);
                store(d, ld.type, offset(ld, i, j, bt), v);
            });
            // Bias gradients: the sum of op(A) over k for each row of D (BGRADA),
            // or of op(B) over k for each column of D (BGRADB).
            if (md.epilogue == CUBLASLT_EPILOGUE_BGRADA || md.epilogue == CUBLASLT_EPILOGUE_BGRADB) {
                bool grad_a = md.epilogue == CUBLASLT_EPILOGUE_BGRADA;
                const std::vector<double>& op = grad_a ? opa : opb;
                int64_t len = grad_a ? m : n;
                for (int64_t r = 0; r < len; ++r) {
                    double sum = 0.0;
                    for (int64_t p = 0; p < k; ++p) sum += op[std::size_t(r * k + p)];
                    store(const_cast<char*>(bias), bias_type, r, float(sum));
                }
            }
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}
