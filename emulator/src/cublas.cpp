// The cuBLAS stand-in (cublas_v2.h). Each call checks its arguments as cuBLAS
// documents (a bad one gives its status and a message on stderr naming the
// argument), then queues the computation on the handle's stream, where it runs
// with the stream's other work, as cuBLAS's kernels would.
//
// Numbers: every product is summed in double and rounded once to the output
// type. What the compute type allows cuBLAS to do to the inputs is done to
// them first: TF32 (10-bit mantissa) for CUBLAS_COMPUTE_32F_FAST_TF32 and for
// fp32 products under CUBLAS_TF32_TENSOR_OP_MATH, bf16 for
// CUBLAS_COMPUTE_32F_FAST_16BF, fp16 for CUBLAS_COMPUTE_32F_FAST_16F. So a
// program that uses TF32 sees TF32's errors here too.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "cublas_v2.h"
#include "emu/control.h"
#include "emulator/src/internal.h"

struct cublasContext {
    cudaStream_t stream = 0;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
    cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
};

void emu::packed_products(int64_t m, int64_t n, int64_t k, const double* opa, const double* opb,
                          const std::function<void(int64_t i, int64_t j, double dot)>& out) {
    auto columns = [&](int64_t j0, int64_t j1) {
        for (int64_t j = j0; j < j1; ++j)
            for (int64_t i = 0; i < m; ++i) {
                double acc = 0.0;
                const double* x = opa + i * k;
                const double* y = opb + j * k;
                for (int64_t p = 0; p < k; ++p) acc += x[p] * y[p];
                out(i, j, acc);
            }
    };
    int64_t threads = std::min<int64_t>(emu::block_threads(), n);
    if (threads <= 1 || m * n * k < (1 << 20)) {
        columns(0, n);
        return;
    }
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < threads; ++t) pool.emplace_back(columns, n * t / threads, n * (t + 1) / threads);
    for (std::thread& t : pool) t.join();
}

namespace {

// A refused call says why on stderr, then returns its status.
cublasStatus_t refuse(cublasStatus_t s, const char* func, const char* fmt, long long a = 0, long long b = 0,
                      long long c = 0) {
    std::fprintf(stderr, "cuBLAS (emulated): %s: ", func);
    std::fprintf(stderr, fmt, a, b, c);
    std::fprintf(stderr, " (%s)\n", cublasGetStatusName(s));
    return s;
}

// ---- element access -----------------------------------------------------------
double load(const void* p, cudaDataType_t t, int64_t i) {
    switch (t) {
        case CUDA_R_32F:
            return static_cast<const float*>(p)[i];
        case CUDA_R_64F:
            return static_cast<const double*>(p)[i];
        case CUDA_R_16BF:
            return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
        default:  // CUDA_R_16F
            return __half2float(static_cast<const __half*>(p)[i]);
    }
}
// Rounds once to the stored type (for 16-bit types: from the float nearest v).
void store(void* p, cudaDataType_t t, int64_t i, double v) {
    switch (t) {
        case CUDA_R_32F:
            static_cast<float*>(p)[i] = float(v);
            break;
        case CUDA_R_64F:
            static_cast<double*>(p)[i] = v;
            break;
        case CUDA_R_16BF:
            static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(float(v));
            break;
        default:
            static_cast<__half*>(p)[i] = __float2half(float(v));
            break;
    }
}

// What the inputs are rounded to before they are multiplied.
enum class InputRounding { none, tf32, bf16, fp16 };

// TF32 keeps fp32's exponent and 10 mantissa bits; the tensor cores' conversion
// (cvt.rna.tf32.f32) rounds to nearest, ties away from zero.
float to_tf32(float x) {
    if (!std::isfinite(x)) return x;
    uint32_t u;
    std::memcpy(&u, &x, 4);
    u = (u + 0x1000u) & ~0x1fffu;
    float r;
    std::memcpy(&r, &u, 4);
    return r;
}
double round_input(double x, InputRounding r) {
    switch (r) {
        case InputRounding::tf32:
            return to_tf32(float(x));
        case InputRounding::bf16:
            return __bfloat162float(__float2bfloat16(float(x)));
        case InputRounding::fp16:
            return __half2float(__float2half(float(x)));
        default:
            return x;
    }
}

// ---- GEMM -----------------------------------------------------------------------
// One GEMM call, as checked: the shape, the types, and how alpha and beta are read.
struct Gemm {
    cublasOperation_t transa, transb;
    int m, n, k, lda, ldb, ldc;
    cudaDataType_t atype, btype, ctype;
    cudaDataType_t scale_type;  // the type of alpha and beta
    InputRounding rounding;
    bool device_scalars;  // CUBLAS_POINTER_MODE_DEVICE: read alpha and beta when the work runs
    const void *alpha_ptr, *beta_ptr;
    double alpha, beta;  // read at the call in CUBLAS_POINTER_MODE_HOST
};

bool valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

// The checks cuBLAS documents for every GEMM: shapes, operations, leading
// dimensions, scalars and the batch count.
cublasStatus_t check_gemm(const char* func, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                          int k, const void* alpha, int lda, int ldb, const void* beta, int ldc, int batch_count) {
    if (!h) return refuse(CUBLAS_STATUS_NOT_INITIALIZED, func, "the handle is null (no cublasCreate)");
    if (m < 0 || n < 0 || k < 0)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, func, "negative size: m = %lld, n = %lld, k = %lld", m, n, k);
    if (!valid_op(ta) || !valid_op(tb))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, func,
                      "transa = %lld, transb = %lld: each must be CUBLAS_OP_N, _T or _C", ta, tb);
    int rows_a = ta == CUBLAS_OP_N ? m : k, rows_b = tb == CUBLAS_OP_N ? k : n;
    if (lda < std::max(1, rows_a))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, func, "lda = %lld is below the rows of the stored A, max(1, %lld)",
                      lda, rows_a);
    if (ldb < std::max(1, rows_b))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, func, "ldb = %lld is below the rows of the stored B, max(1, %lld)",
                      ldb, rows_b);
    if (ldc < std::max(1, m))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, func, "ldc = %lld is below max(1, m) = %lld", ldc, std::max(1, m));
    if (!alpha || !beta) return refuse(CUBLAS_STATUS_INVALID_VALUE, func, "alpha or beta is a null pointer");
    if (batch_count < 0) return refuse(CUBLAS_STATUS_INVALID_VALUE, func, "batchCount = %lld is negative", batch_count);
    return CUBLAS_STATUS_SUCCESS;
}

// C = alpha * op(A) * op(B) + beta * C for one matrix of the batch. op(A) is
// copied row by row and op(B) column by column (rounded as the compute type
// allows), so each element of C is one contiguous dot product.
void run_gemm(const Gemm& g, const void* a, const void* b, void* c, double alpha, double beta) {
    const int64_t m = g.m, n = g.n, k = g.k;
    if (m == 0 || n == 0) return;
    std::vector<double> opa, opb;
    const bool product = alpha != 0.0 && k > 0;  // alpha == 0: A and B are not read, as in BLAS
    if (product) {
        opa.resize(std::size_t(m * k));
        opb.resize(std::size_t(n * k));
        for (int64_t i = 0; i < m; ++i)
            for (int64_t p = 0; p < k; ++p) {
                int64_t at = g.transa == CUBLAS_OP_N ? i + p * g.lda : p + i * g.lda;
                opa[std::size_t(i * k + p)] = round_input(load(a, g.atype, at), g.rounding);
            }
        for (int64_t j = 0; j < n; ++j)
            for (int64_t p = 0; p < k; ++p) {
                int64_t at = g.transb == CUBLAS_OP_N ? p + j * g.ldb : j + p * g.ldb;
                opb[std::size_t(j * k + p)] = round_input(load(b, g.btype, at), g.rounding);
            }
    }
    emu::packed_products(m, n, product ? k : 0, opa.data(), opb.data(), [&](int64_t i, int64_t j, double acc) {
        double v = alpha * acc;
        // beta == 0: C is only written, so garbage (NaN) in it does not propagate.
        if (beta != 0.0) v += beta * load(c, g.ctype, i + j * g.ldc);
        store(c, g.ctype, i + j * g.ldc, v);
    });
}

// The batch's matrices: either pointer arrays (in device memory, read when the
// work runs) or a base pointer and a stride in elements.
struct Batch {
    int count = 1;
    const void* const* a_array = nullptr;
    const void* const* b_array = nullptr;
    void* const* c_array = nullptr;
    const void *a = nullptr, *b = nullptr;
    void* c = nullptr;
    long long stride_a = 0, stride_b = 0, stride_c = 0;
};

std::size_t type_bytes(cudaDataType_t t) { return t == CUDA_R_64F ? 8 : t == CUDA_R_32F ? 4 : 2; }

void queue_gemm(cublasHandle_t h, const Gemm& g, const Batch& bt) {
    if (g.m == 0 || g.n == 0 || bt.count == 0) return;
    emu::enqueue_host_work(h->stream, [g, bt] {
        double alpha = g.alpha, beta = g.beta;
        if (g.device_scalars) {
            alpha = load(g.alpha_ptr, g.scale_type, 0);
            beta = load(g.beta_ptr, g.scale_type, 0);
        }
        for (int i = 0; i < bt.count; ++i) {
            if (bt.a_array) {
                run_gemm(g, bt.a_array[i], bt.b_array[i], bt.c_array[i], alpha, beta);
            } else {
                const char* a = static_cast<const char*>(bt.a) + i * bt.stride_a * (long long)type_bytes(g.atype);
                const char* b = static_cast<const char*>(bt.b) + i * bt.stride_b * (long long)type_bytes(g.btype);
                char* c = static_cast<char*>(bt.c) + i * bt.stride_c * (long long)type_bytes(g.ctype);
                run_gemm(g, a, b, c, alpha, beta);
            }
        }
    });
}

// Fills in what every GEMM shares; the caller sets the types and the rounding.
Gemm make_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* alpha,
               int lda, int ldb, const void* beta, int ldc, cudaDataType_t scale_type) {
    Gemm g{};
    g.transa = ta;
    g.transb = tb;
    g.m = m;
    g.n = n;
    g.k = k;
    g.lda = lda;
    g.ldb = ldb;
    g.ldc = ldc;
    g.scale_type = scale_type;
    g.device_scalars = h->pointer_mode == CUBLAS_POINTER_MODE_DEVICE;
    g.alpha_ptr = alpha;
    g.beta_ptr = beta;
    if (!g.device_scalars) {
        g.alpha = load(alpha, scale_type, 0);
        g.beta = load(beta, scale_type, 0);
    }
    return g;
}

bool tf32_math(cublasHandle_t h) { return (h->math & 0xf) == CUBLAS_TF32_TENSOR_OP_MATH; }

// The Ex calls: which type combinations cuBLAS supports for each compute type
// (the table of cublasGemmEx), the scale type that goes with them, and what the
// inputs may be rounded to.
cublasStatus_t ex_types(const char* func, cublasHandle_t h, cudaDataType_t at, cudaDataType_t bt, cudaDataType_t ct,
                        cublasComputeType_t compute, cublasGemmAlgo_t algo, cudaDataType_t* scale,
                        InputRounding* rounding) {
    bool algo_ok = (algo >= CUBLAS_GEMM_DEFAULT && algo <= CUBLAS_GEMM_ALGO23) ||
                   (algo >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && algo <= CUBLAS_GEMM_ALGO15_TENSOR_OP);
    if (!algo_ok) return refuse(CUBLAS_STATUS_INVALID_VALUE, func, "algo = %lld is not a cublasGemmAlgo_t", algo);
    *rounding = InputRounding::none;
    bool ok = false;
    if (at != bt) {
        ok = false;
    } else if (compute == CUBLAS_COMPUTE_16F || compute == CUBLAS_COMPUTE_16F_PEDANTIC) {
        *scale = CUDA_R_16F;
        ok = at == CUDA_R_16F && ct == CUDA_R_16F;
    } else if (compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_PEDANTIC) {
        *scale = CUDA_R_32F;
        ok = (at == CUDA_R_32F && ct == CUDA_R_32F) ||
             ((at == CUDA_R_16F || at == CUDA_R_16BF) && (ct == at || ct == CUDA_R_32F));
        if (compute == CUBLAS_COMPUTE_32F && at == CUDA_R_32F && tf32_math(h)) *rounding = InputRounding::tf32;
    } else if (compute == CUBLAS_COMPUTE_32F_FAST_16F || compute == CUBLAS_COMPUTE_32F_FAST_16BF ||
               compute == CUBLAS_COMPUTE_32F_FAST_TF32) {
        *scale = CUDA_R_32F;
        ok = at == CUDA_R_32F && ct == CUDA_R_32F;
        *rounding = compute == CUBLAS_COMPUTE_32F_FAST_16F    ? InputRounding::fp16
                    : compute == CUBLAS_COMPUTE_32F_FAST_16BF ? InputRounding::bf16
                                                              : InputRounding::tf32;
    } else if (compute == CUBLAS_COMPUTE_64F || compute == CUBLAS_COMPUTE_64F_PEDANTIC) {
        *scale = CUDA_R_64F;
        ok = at == CUDA_R_64F && ct == CUDA_R_64F;
    }
    if (!ok) {
        std::fprintf(stderr,
                     "cuBLAS (emulated): %s: Atype %d, Btype %d, Ctype %d with computeType %d is not a supported "
                     "combination (CUBLAS_STATUS_NOT_SUPPORTED)\n",
                     func, int(at), int(bt), int(ct), int(compute));
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

// ---- vectors ----------------------------------------------------------------------
// Element i of a vector of n elements with increment inc (negative: from the end, as in BLAS).
int64_t vindex(int64_t i, int64_t n, int64_t inc) { return inc >= 0 ? i * inc : (n - 1 - i) * -inc; }

float read_scalar(cublasHandle_t h, const float* p) { return h->pointer_mode == CUBLAS_POINTER_MODE_HOST ? *p : 0.0f; }

}  // namespace

// ---- handles ----------------------------------------------------------------------
cublasStatus_t cublasCreate(cublasHandle_t* handle) {
    if (!handle) return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasCreate", "the handle pointer is null");
    *handle = new cublasContext;
    return CUBLAS_STATUS_SUCCESS;
}
// Like cuBLAS, waits for the device's work first.
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle) return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasDestroy", "the handle is null");
    cudaDeviceSynchronize();
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetVersion(cublasHandle_t handle, int* version) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!version) return CUBLAS_STATUS_INVALID_VALUE;
    *version = CUBLAS_VERSION;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t* stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!stream) return CUBLAS_STATUS_INVALID_VALUE;
    *stream = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    int base = mode & 0xf, flags = mode & ~0xf;
    if (base > CUBLAS_TF32_TENSOR_OP_MATH || (flags & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasSetMathMode", "mode = %lld is not a cublasMath_t", mode);
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->math;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetPointerMode(cublasHandle_t handle, cublasPointerMode_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasSetPointerMode", "mode = %lld is not a cublasPointerMode_t",
                      mode);
    handle->pointer_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetPointerMode(cublasHandle_t handle, cublasPointerMode_t* mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->pointer_mode;
    return CUBLAS_STATUS_SUCCESS;
}
// The emulator needs no workspace; the call is checked and accepted.
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, std::size_t bytes) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes > 0 && !workspace)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasSetWorkspace", "a workspace of %lld bytes at a null pointer",
                      (long long)bytes);
    return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS:
            return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED:
            return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED:
            return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE:
            return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH:
            return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR:
            return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED:
            return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR:
            return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED:
            return "CUBLAS_STATUS_NOT_SUPPORTED";
        case CUBLAS_STATUS_LICENSE_ERROR:
            return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}
const char* cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS:
            return "the operation completed successfully";
        case CUBLAS_STATUS_NOT_INITIALIZED:
            return "the library was not initialized";
        case CUBLAS_STATUS_ALLOC_FAILED:
            return "the resource allocation failed";
        case CUBLAS_STATUS_INVALID_VALUE:
            return "an invalid numeric value was used as an argument";
        case CUBLAS_STATUS_ARCH_MISMATCH:
            return "an absent device architectural feature is required";
        case CUBLAS_STATUS_MAPPING_ERROR:
            return "an access to GPU memory space failed";
        case CUBLAS_STATUS_EXECUTION_FAILED:
            return "the GPU program failed to execute";
        case CUBLAS_STATUS_INTERNAL_ERROR:
            return "an internal operation failed";
        case CUBLAS_STATUS_NOT_SUPPORTED:
            return "the functionality requested is not supported";
        case CUBLAS_STATUS_LICENSE_ERROR:
            return "error detected trying to check the license";
    }
    return "unknown error";
}

// ---- copies -------------------------------------------------------------------------
namespace {
cublasStatus_t copy_strided(const char* func, int n, int elem, const void* x, int incx, void* y, int incy) {
    if (elem <= 0 || incx <= 0 || incy <= 0)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, func, "elemSize, incx and incy must be positive (elemSize = %lld)",
                      elem);
    for (int i = 0; i < n; ++i)
        if (cudaMemcpy(static_cast<char*>(y) + (long long)i * incy * elem,
                       static_cast<const char*>(x) + (long long)i * incx * elem, std::size_t(elem),
                       cudaMemcpyDefault) != cudaSuccess)
            return refuse(CUBLAS_STATUS_MAPPING_ERROR, func, "the copy of element %lld failed", i);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t copy_matrix(const char* func, int rows, int cols, int elem, const void* a, int lda, void* b, int ldb) {
    if (rows < 0 || cols < 0 || elem <= 0 || lda < std::max(1, rows) || ldb < std::max(1, rows))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, func, "rows = %lld, cols = %lld: negative, or lda/ldb below rows",
                      rows, cols);
    for (int j = 0; j < cols; ++j)
        if (cudaMemcpy(static_cast<char*>(b) + (long long)j * ldb * elem,
                       static_cast<const char*>(a) + (long long)j * lda * elem, std::size_t(rows) * std::size_t(elem),
                       cudaMemcpyDefault) != cudaSuccess)
            return refuse(CUBLAS_STATUS_MAPPING_ERROR, func, "the copy of column %lld failed", j);
    return CUBLAS_STATUS_SUCCESS;
}
}  // namespace

cublasStatus_t cublasSetVector(int n, int elem_size, const void* x, int incx, void* y, int incy) {
    return copy_strided("cublasSetVector", n, elem_size, x, incx, y, incy);
}
cublasStatus_t cublasGetVector(int n, int elem_size, const void* x, int incx, void* y, int incy) {
    return copy_strided("cublasGetVector", n, elem_size, x, incx, y, incy);
}
cublasStatus_t cublasSetMatrix(int rows, int cols, int elem_size, const void* a, int lda, void* b, int ldb) {
    return copy_matrix("cublasSetMatrix", rows, cols, elem_size, a, lda, b, ldb);
}
cublasStatus_t cublasGetMatrix(int rows, int cols, int elem_size, const void* a, int lda, void* b, int ldb) {
    return copy_matrix("cublasGetMatrix", rows, cols, elem_size, a, lda, b, ldb);
}

// ---- level 1 ------------------------------------------------------------------------
cublasStatus_t cublasSaxpy(cublasHandle_t h, int n, const float* alpha, const float* x, int incx, float* y, int incy) {
    if (!h) return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSaxpy", "the handle is null (no cublasCreate)");
    if (!alpha) return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasSaxpy", "alpha is a null pointer");
    if (n <= 0) return CUBLAS_STATUS_SUCCESS;
    bool dev = h->pointer_mode == CUBLAS_POINTER_MODE_DEVICE;
    float a = read_scalar(h, alpha);
    emu::enqueue_host_work(h->stream, [=] {
        float al = dev ? *alpha : a;
        for (int64_t i = 0; i < n; ++i) {
            int64_t yi = vindex(i, n, incy);
            y[yi] = float(double(al) * x[vindex(i, n, incx)] + y[yi]);
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSscal(cublasHandle_t h, int n, const float* alpha, float* x, int incx) {
    if (!h) return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSscal", "the handle is null (no cublasCreate)");
    if (!alpha) return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasSscal", "alpha is a null pointer");
    if (n <= 0 || incx <= 0) return CUBLAS_STATUS_SUCCESS;
    bool dev = h->pointer_mode == CUBLAS_POINTER_MODE_DEVICE;
    float a = read_scalar(h, alpha);
    emu::enqueue_host_work(h->stream, [=] {
        float al = dev ? *alpha : a;
        for (int64_t i = 0; i < n; ++i) x[i * incx] *= al;
    });
    return CUBLAS_STATUS_SUCCESS;
}
// With CUBLAS_POINTER_MODE_HOST the result is on the host, so the call waits
// for the stream, as cuBLAS does.
cublasStatus_t cublasSdot(cublasHandle_t h, int n, const float* x, int incx, const float* y, int incy, float* result) {
    if (!h) return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSdot", "the handle is null (no cublasCreate)");
    if (!result) return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasSdot", "result is a null pointer");
    emu::enqueue_host_work(h->stream, [=] {
        double s = 0.0;
        for (int64_t i = 0; i < n; ++i) s += double(x[vindex(i, n, incx)]) * y[vindex(i, n, incy)];
        *result = float(s);
    });
    if (h->pointer_mode == CUBLAS_POINTER_MODE_HOST) cudaStreamSynchronize(h->stream);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSnrm2(cublasHandle_t h, int n, const float* x, int incx, float* result) {
    if (!h) return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSnrm2", "the handle is null (no cublasCreate)");
    if (!result) return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasSnrm2", "result is a null pointer");
    emu::enqueue_host_work(h->stream, [=] {
        double s = 0.0;
        if (incx > 0)
            for (int64_t i = 0; i < n; ++i) s += double(x[i * incx]) * x[i * incx];
        *result = float(std::sqrt(s));
    });
    if (h->pointer_mode == CUBLAS_POINTER_MODE_HOST) cudaStreamSynchronize(h->stream);
    return CUBLAS_STATUS_SUCCESS;
}

// ---- level 2 ------------------------------------------------------------------------
// y = alpha * op(A) * x + beta * y, A stored m x n.
cublasStatus_t cublasSgemv(cublasHandle_t h, cublasOperation_t trans, int m, int n, const float* alpha, const float* a,
                           int lda, const float* x, int incx, const float* beta, float* y, int incy) {
    const char* f = "cublasSgemv";
    if (!h) return refuse(CUBLAS_STATUS_NOT_INITIALIZED, f, "the handle is null (no cublasCreate)");
    if (m < 0 || n < 0) return refuse(CUBLAS_STATUS_INVALID_VALUE, f, "negative size (m = %lld, n = %lld)", m, n);
    if (!valid_op(trans))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, f, "trans = %lld is not a cublasOperation_t", trans);
    if (lda < std::max(1, m))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, f, "lda = %lld is below max(1, m = %lld)", lda, m);
    if (incx == 0 || incy == 0)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, f, "incx = %lld, incy = %lld: zero", incx, incy);
    if (!alpha || !beta) return refuse(CUBLAS_STATUS_INVALID_VALUE, f, "alpha or beta is a null pointer");
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    bool dev = h->pointer_mode == CUBLAS_POINTER_MODE_DEVICE;
    float al = read_scalar(h, alpha), be = read_scalar(h, beta);
    emu::enqueue_host_work(h->stream, [=] {
        double alv = dev ? *alpha : al, bev = dev ? *beta : be;
        bool t = trans != CUBLAS_OP_N;
        int64_t ylen = t ? n : m, xlen = t ? m : n;
        for (int64_t i = 0; i < ylen; ++i) {
            double acc = 0.0;
            if (alv != 0.0)
                for (int64_t p = 0; p < xlen; ++p)
                    acc += double(t ? a[p + i * lda] : a[i + p * lda]) * x[vindex(p, xlen, incx)];
            int64_t yi = vindex(i, ylen, incy);
            double v = alv * acc;
            if (bev != 0.0) v += bev * y[yi];
            y[yi] = float(v);
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}

// ---- GEMM ---------------------------------------------------------------------------
namespace {
// `count` matrices at base pointers and strides in elements (one: count 1, strides 0).
Batch strided_batch(const void* a, long long stride_a, const void* b, long long stride_b, void* c, long long stride_c,
                    int count) {
    Batch bt;
    bt.count = count;
    bt.a = a;
    bt.b = b;
    bt.c = c;
    bt.stride_a = stride_a;
    bt.stride_b = stride_b;
    bt.stride_c = stride_c;
    return bt;
}
// `count` matrices given by arrays of pointers (in device memory, read when the work runs).
Batch array_batch(const void* const* a, const void* const* b, void* const* c, int count) {
    Batch bt;
    bt.count = count;
    bt.a_array = a;
    bt.b_array = b;
    bt.c_array = c;
    return bt;
}
// The typed GEMMs (S, D, H): A, B, C and the scalars of one type.
cublasStatus_t typed_gemm(const char* f, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                          int k, const void* alpha, int lda, int ldb, const void* beta, int ldc, cudaDataType_t type,
                          InputRounding rounding, const Batch& bt) {
    cublasStatus_t s = check_gemm(f, h, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc, bt.count);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    Gemm g = make_gemm(h, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc, type);
    g.atype = g.btype = g.ctype = type;
    g.rounding = rounding;
    queue_gemm(h, g, bt);
    return CUBLAS_STATUS_SUCCESS;
}
// The Ex GEMMs: each matrix's type given, the scalars' type and the inputs'
// rounding following from the compute type (ex_types).
cublasStatus_t ex_gemm(const char* f, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                       const void* alpha, cudaDataType_t atype, int lda, cudaDataType_t btype, int ldb,
                       const void* beta, cudaDataType_t ctype, int ldc, cublasComputeType_t compute,
                       cublasGemmAlgo_t algo, const Batch& bt) {
    cublasStatus_t s = check_gemm(f, h, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc, bt.count);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    cudaDataType_t scale;
    InputRounding rounding;
    s = ex_types(f, h, atype, btype, ctype, compute, algo, &scale, &rounding);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    Gemm g = make_gemm(h, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc, scale);
    g.atype = atype;
    g.btype = btype;
    g.ctype = ctype;
    g.rounding = rounding;
    queue_gemm(h, g, bt);
    return CUBLAS_STATUS_SUCCESS;
}
InputRounding sgemm_rounding(cublasHandle_t h) { return h && tf32_math(h) ? InputRounding::tf32 : InputRounding::none; }
}  // namespace

cublasStatus_t cublasDgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const double* alpha, const double* a, int lda, const double* b, int ldb, const double* beta,
                           double* c, int ldc) {
    return typed_gemm("cublasDgemm", h, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc, CUDA_R_64F, InputRounding::none,
                      strided_batch(a, 0, b, 0, c, 0, 1));
}
cublasStatus_t cublasHgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const __half* alpha, const __half* a, int lda, const __half* b, int ldb, const __half* beta,
                           __half* c, int ldc) {
    return typed_gemm("cublasHgemm", h, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc, CUDA_R_16F, InputRounding::none,
                      strided_batch(a, 0, b, 0, c, 0, 1));
}
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta,
                           float* c, int ldc) {
    return typed_gemm("cublasSgemm", h, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc, CUDA_R_32F, sgemm_rounding(h),
                      strided_batch(a, 0, b, 0, c, 0, 1));
}
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float* alpha, const float* a, int lda, long long stride_a,
                                         const float* b, int ldb, long long stride_b, const float* beta, float* c,
                                         int ldc, long long stride_c, int batch_count) {
    return typed_gemm("cublasSgemmStridedBatched", h, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc, CUDA_R_32F,
                      sgemm_rounding(h), strided_batch(a, stride_a, b, stride_b, c, stride_c, batch_count));
}
cublasStatus_t cublasSgemmBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const float* alpha, const float* const a[], int lda, const float* const b[], int ldb,
                                  const float* beta, float* const c[], int ldc, int batch_count) {
    return typed_gemm("cublasSgemmBatched", h, ta, tb, m, n, k, alpha, lda, ldb, beta, ldc, CUDA_R_32F,
                      sgemm_rounding(h),
                      array_batch(reinterpret_cast<const void* const*>(a), reinterpret_cast<const void* const*>(b),
                                  reinterpret_cast<void* const*>(c), batch_count));
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void* alpha, const void* a, cudaDataType_t atype, int lda,
                                          long long stride_a, const void* b, cudaDataType_t btype, int ldb,
                                          long long stride_b, const void* beta, void* c, cudaDataType_t ctype, int ldc,
                                          long long stride_c, int batch_count, cublasComputeType_t compute,
                                          cublasGemmAlgo_t algo) {
    return ex_gemm("cublasGemmStridedBatchedEx", h, ta, tb, m, n, k, alpha, atype, lda, btype, ldb, beta, ctype, ldc,
                   compute, algo, strided_batch(a, stride_a, b, stride_b, c, stride_c, batch_count));
}
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* a, cudaDataType_t atype, int lda, const void* b,
                            cudaDataType_t btype, int ldb, const void* beta, void* c, cudaDataType_t ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    return ex_gemm("cublasGemmEx", h, ta, tb, m, n, k, alpha, atype, lda, btype, ldb, beta, ctype, ldc, compute, algo,
                   strided_batch(a, 0, b, 0, c, 0, 1));
}
cublasStatus_t cublasGemmBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const void* alpha, const void* const a[], cudaDataType_t atype, int lda,
                                   const void* const b[], cudaDataType_t btype, int ldb, const void* beta,
                                   void* const c[], cudaDataType_t ctype, int ldc, int batch_count,
                                   cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    return ex_gemm("cublasGemmBatchedEx", h, ta, tb, m, n, k, alpha, atype, lda, btype, ldb, beta, ctype, ldc, compute,
                   algo, array_batch(a, b, c, batch_count));
}
