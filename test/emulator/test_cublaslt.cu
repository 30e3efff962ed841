// The cuBLASLt stand-in against a plain GEMM for every layout, transpose,
// type and epilogue combination the project uses.
#include <catch2/catch.hpp>
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cmath>
#include <random>
#include <vector>

#include "device_buffers.h"
#include "emu/control.h"

namespace {

struct Case {
    bool ta, tb;
    cudaDataType_t in_type, out_type;
    cublasLtOrder_t order;
    int m, n, k, pad, batch;
    float alpha, beta;
    cublasLtEpilogue_t epilogue;
};

float round_to(cudaDataType_t t, float v) {
    if (t == CUDA_R_16BF) return __bfloat162float(__float2bfloat16(v));
    if (t == CUDA_R_16F) return __half2float(__float2half(v));
    return v;
}
std::size_t bytes_of(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }
void put(std::vector<unsigned char>& buf, cudaDataType_t t, std::size_t idx, float v) {
    if (t == CUDA_R_32F) reinterpret_cast<float*>(buf.data())[idx] = v;
    else if (t == CUDA_R_16BF) reinterpret_cast<__nv_bfloat16*>(buf.data())[idx] = __float2bfloat16(v);
    else reinterpret_cast<__half*>(buf.data())[idx] = __float2half(v);
}
float get(const std::vector<unsigned char>& buf, cudaDataType_t t, std::size_t idx) {
    if (t == CUDA_R_32F) return reinterpret_cast<const float*>(buf.data())[idx];
    if (t == CUDA_R_16BF) return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(buf.data())[idx]);
    return __half2float(reinterpret_cast<const __half*>(buf.data())[idx]);
}

// A stored matrix of `rows` x `cols` (the layout's own shape), batch items `stride` elements apart.
struct Stored {
    int rows, cols, ld;
    long long stride;
    cublasLtOrder_t order;
    std::size_t index(int i, int j, int b) const {
        return std::size_t(b * stride + (order == CUBLASLT_ORDER_COL ? i + (long long)j * ld : (long long)i * ld + j));
    }
    std::size_t elements(int batch) const { return std::size_t(stride * batch); }
};
Stored make_stored(int rows, int cols, int pad, cublasLtOrder_t order) {
    int ld = (order == CUBLASLT_ORDER_COL ? rows : cols) + pad;
    long long per = (long long)ld * (order == CUBLASLT_ORDER_COL ? cols : rows);
    return Stored{rows, cols, ld, per + 5, order};
}

cublasLtMatrixLayout_t layout(cudaDataType_t t, const Stored& s, int batch) {
    cublasLtMatrixLayout_t l;
    REQUIRE(cublasLtMatrixLayoutCreate(&l, t, s.rows, s.cols, s.ld) == CUBLAS_STATUS_SUCCESS);
    int32_t order = s.order;
    REQUIRE(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_ORDER, &order, sizeof(order)) ==
            CUBLAS_STATUS_SUCCESS);
    int32_t b = batch;
    int64_t stride = s.stride;
    REQUIRE(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &b, sizeof(b)) ==
            CUBLAS_STATUS_SUCCESS);
    REQUIRE(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)) ==
            CUBLAS_STATUS_SUCCESS);
    return l;
}

// Raw bytes to and from the device (the shared helpers of device_buffers.h).
void* upload(const std::vector<unsigned char>& h) { return emu_test::to_device(h); }
std::vector<unsigned char> download(const void* d, std::size_t n) {
    return emu_test::to_host(static_cast<const unsigned char*>(d), n);
}

double gelu(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

void run_case(const Case& c, cublasLtHandle_t handle) {
    std::mt19937 rng(c.m * 131 + c.n * 17 + c.k + c.ta * 2 + c.tb);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    // Logical operands: opA is m x k, opB is k x n, C is m x n (row-major host arrays).
    std::vector<float> A(std::size_t(c.batch) * c.m * c.k), B(std::size_t(c.batch) * c.k * c.n),
        C(std::size_t(c.batch) * c.m * c.n);
    for (auto& v : A) v = round_to(c.in_type, u(rng));
    for (auto& v : B) v = round_to(c.in_type, u(rng));
    for (auto& v : C) v = round_to(c.out_type, u(rng));
    std::vector<float> bias(std::max(c.m, c.n));
    for (auto& v : bias) v = round_to(c.out_type, u(rng));

    Stored sa = c.ta ? make_stored(c.k, c.m, c.pad, c.order) : make_stored(c.m, c.k, c.pad, c.order);
    Stored sb = c.tb ? make_stored(c.n, c.k, c.pad, c.order) : make_stored(c.k, c.n, c.pad, c.order);
    Stored sc = make_stored(c.m, c.n, c.pad, c.order);
    std::vector<unsigned char> ha(sa.elements(c.batch) * bytes_of(c.in_type)),
        hb(sb.elements(c.batch) * bytes_of(c.in_type));
    std::vector<unsigned char> hc(sc.elements(c.batch) * bytes_of(c.out_type)),
        hbias(bias.size() * bytes_of(c.out_type));
    for (int b = 0; b < c.batch; ++b) {
        for (int i = 0; i < c.m; ++i)
            for (int p = 0; p < c.k; ++p)
                put(ha, c.in_type, c.ta ? sa.index(p, i, b) : sa.index(i, p, b),
                    A[(std::size_t(b) * c.m + i) * c.k + p]);
        for (int p = 0; p < c.k; ++p)
            for (int j = 0; j < c.n; ++j)
                put(hb, c.in_type, c.tb ? sb.index(j, p, b) : sb.index(p, j, b),
                    B[(std::size_t(b) * c.k + p) * c.n + j]);
        for (int i = 0; i < c.m; ++i)
            for (int j = 0; j < c.n; ++j)
                put(hc, c.out_type, sc.index(i, j, b), C[(std::size_t(b) * c.m + i) * c.n + j]);
    }
    for (std::size_t i = 0; i < bias.size(); ++i) put(hbias, c.out_type, i, bias[i]);
    void *da = upload(ha), *db = upload(hb), *dc = upload(hc), *dbias = upload(hbias), *dd = nullptr;
    REQUIRE(cudaMalloc(&dd, hc.size()) == cudaSuccess);

    cublasLtMatmulDesc_t desc;
    REQUIRE(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    int32_t ta = c.ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = c.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    uint32_t epi = c.epilogue;
    REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)) ==
            CUBLAS_STATUS_SUCCESS);
    REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)) ==
            CUBLAS_STATUS_SUCCESS);
    REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)) ==
            CUBLAS_STATUS_SUCCESS);
    REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &dbias, sizeof(dbias)) ==
            CUBLAS_STATUS_SUCCESS);
    auto la = layout(c.in_type, sa, c.batch), lb = layout(c.in_type, sb, c.batch);
    auto lc = layout(c.out_type, sc, c.batch), ld = layout(c.out_type, sc, c.batch);
    cublasLtMatmulPreference_t pref;
    REQUIRE(cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS);
    uint64_t ws = 1 << 20;
    REQUIRE(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)) ==
            CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    REQUIRE(cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, lc, ld, pref, 1, &heur, &found) ==
            CUBLAS_STATUS_SUCCESS);
    REQUIRE(found == 1);
    cudaStream_t stream;
    REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
    REQUIRE(cublasLtMatmul(handle, desc, &c.alpha, da, la, db, lb, &c.beta, dc, lc, dd, ld, &heur.algo, nullptr, 0,
                           stream) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
    auto hd = download(dd, hc.size());
    auto hbias_out = download(dbias, hbias.size());

    double tol = c.out_type == CUDA_R_32F ? 1e-4 : 2e-2;
    for (int b = 0; b < c.batch; ++b)
        for (int i = 0; i < c.m; ++i)
            for (int j = 0; j < c.n; ++j) {
                double want = 0;
                for (int p = 0; p < c.k; ++p)
                    want += double(A[(std::size_t(b) * c.m + i) * c.k + p]) * B[(std::size_t(b) * c.k + p) * c.n + j];
                want = c.alpha * want + c.beta * C[(std::size_t(b) * c.m + i) * c.n + j];
                if (c.epilogue == CUBLASLT_EPILOGUE_BIAS || c.epilogue == CUBLASLT_EPILOGUE_RELU_BIAS ||
                    c.epilogue == CUBLASLT_EPILOGUE_GELU_BIAS)
                    want += bias[i];
                if (c.epilogue == CUBLASLT_EPILOGUE_RELU_BIAS) want = std::max(want, 0.0);
                if (c.epilogue == CUBLASLT_EPILOGUE_GELU_BIAS) want = gelu(want);
                float got = get(hd, c.out_type, sc.index(i, j, b));
                if (!(std::fabs(got - want) <= tol * (1.0 + std::fabs(want)))) {  // NaN (unwritten) fails too
                    FAIL("D[" << b << "][" << i << "][" << j << "] = " << got << ", want " << want);
                }
            }
    if (c.epilogue == CUBLASLT_EPILOGUE_BGRADB) {
        // Bias gradient of op(B), summed over k, one value per column of D (last batch item).
        int b = c.batch - 1;
        for (int j = 0; j < c.n; ++j) {
            double want = 0;
            for (int p = 0; p < c.k; ++p) want += B[(std::size_t(b) * c.k + p) * c.n + j];
            REQUIRE(get(hbias_out, c.out_type, j) == Approx(want).margin(tol * (1 + std::fabs(want))));
        }
    }
    if (c.epilogue == CUBLASLT_EPILOGUE_BGRADA) {
        int b = c.batch - 1;
        for (int i = 0; i < c.m; ++i) {
            double want = 0;
            for (int p = 0; p < c.k; ++p) want += A[(std::size_t(b) * c.m + i) * c.k + p];
            REQUIRE(get(hbias_out, c.out_type, i) == Approx(want).margin(tol * (1 + std::fabs(want))));
        }
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
    cudaStreamDestroy(stream);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
    cudaFree(dd);
    cudaFree(dbias);
}

}  // namespace

TEST_CASE("cuBLASLt matmul matches a plain GEMM for every transpose, type and layout", "[emulator][cublaslt]") {
    cublasLtHandle_t handle;
    REQUIRE(cublasLtCreate(&handle) == CUBLAS_STATUS_SUCCESS);
    struct Types {
        cudaDataType_t in, out;
    } types[] = {
        {CUDA_R_32F, CUDA_R_32F}, {CUDA_R_16BF, CUDA_R_16BF}, {CUDA_R_16BF, CUDA_R_32F}, {CUDA_R_16F, CUDA_R_16F}};
    for (auto t : types)
        for (bool ta : {false, true})
            for (bool tb : {false, true})
                for (cublasLtOrder_t order : {CUBLASLT_ORDER_COL, CUBLASLT_ORDER_ROW}) {
                    INFO("in " << t.in << " out " << t.out << " transa " << ta << " transb " << tb << " order "
                               << order);
                    run_case(Case{ta, tb, t.in, t.out, order, 7, 5, 9, 3, 2, 1.5f, 0.5f, CUBLASLT_EPILOGUE_DEFAULT},
                             handle);
                }
    cublasLtDestroy(handle);
}

TEST_CASE("cuBLASLt epilogues: bias, ReLU, GELU and bias gradients", "[emulator][cublaslt]") {
    cublasLtHandle_t handle;
    REQUIRE(cublasLtCreate(&handle) == CUBLAS_STATUS_SUCCESS);
    for (cublasLtEpilogue_t e : {CUBLASLT_EPILOGUE_BIAS, CUBLASLT_EPILOGUE_RELU_BIAS, CUBLASLT_EPILOGUE_GELU_BIAS,
                                 CUBLASLT_EPILOGUE_BGRADA, CUBLASLT_EPILOGUE_BGRADB})
        for (cudaDataType_t t : {CUDA_R_32F, CUDA_R_16BF})
            for (bool ta : {false, true})
                for (bool tb : {false, true}) {
                    INFO("epilogue " << e << " type " << t << " transa " << ta << " transb " << tb);
                    run_case(Case{ta, tb, t, t, CUBLASLT_ORDER_COL, 16, 12, 24, 0, 1, 1.0f, 0.0f, e}, handle);
                }
    cublasLtDestroy(handle);
}

TEST_CASE("cuBLASLt: a product large enough to be split over the emulator's OS threads is whole",
          "[emulator][cublaslt]") {
    // m * n * k above 2^20: the columns of D are shared out among threads.
    emu::set_block_threads(3);
    struct Restore {
        ~Restore() { emu::set_block_threads(0); }
    } restore;
    cublasLtHandle_t handle;
    REQUIRE(cublasLtCreate(&handle) == CUBLAS_STATUS_SUCCESS);
    run_case(Case{true, false, CUDA_R_16BF, CUDA_R_16BF, CUBLASLT_ORDER_COL, 131, 97, 101, 3, 2, 1.0f, 0.5f,
                  CUBLASLT_EPILOGUE_GELU_BIAS},
             handle);
    run_case(Case{false, true, CUDA_R_32F, CUDA_R_32F, CUBLASLT_ORDER_ROW, 97, 131, 101, 0, 1, 0.75f, 0.0f,
                  CUBLASLT_EPILOGUE_BGRADB},
             handle);
    cublasLtDestroy(handle);
}

TEST_CASE("cuBLASLt refuses shapes that do not agree", "[emulator][cublaslt]") {
    cublasLtHandle_t handle;
    REQUIRE(cublasLtCreate(&handle) == CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulDesc_t desc;
    REQUIRE(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    cublasLtMatrixLayout_t a, b, c, small_ld;
    REQUIRE(cublasLtMatrixLayoutCreate(&a, CUDA_R_32F, 4, 6, 4) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(cublasLtMatrixLayoutCreate(&b, CUDA_R_32F, 5, 3, 5) == CUBLAS_STATUS_SUCCESS);  // k = 5, not 6
    REQUIRE(cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, 4, 3, 4) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(cublasLtMatrixLayoutCreate(&small_ld, CUDA_R_32F, 4, 3, 2) == CUBLAS_STATUS_SUCCESS);
    float one = 1.0f, zero = 0.0f;
    float* buf = nullptr;
    REQUIRE(cudaMalloc(&buf, 1024) == cudaSuccess);
    REQUIRE(cublasLtMatmul(handle, desc, &one, buf, a, buf, b, &zero, buf, c, buf, c, nullptr, nullptr, 0, 0) ==
            CUBLAS_STATUS_INVALID_VALUE);
    cublasLtMatrixLayout_t b_ok;
    REQUIRE(cublasLtMatrixLayoutCreate(&b_ok, CUDA_R_32F, 6, 3, 6) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(cublasLtMatmul(handle, desc, &one, buf, a, buf, b_ok, &zero, buf, c, buf, small_ld, nullptr, nullptr, 0,
                           0) == CUBLAS_STATUS_INVALID_VALUE);
    uint32_t epi = CUBLASLT_EPILOGUE_BIAS;  // no bias pointer set
    REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)) ==
            CUBLAS_STATUS_SUCCESS);
    REQUIRE(cublasLtMatmul(handle, desc, &one, buf, a, buf, b_ok, &zero, buf, c, buf, c, nullptr, nullptr, 0, 0) ==
            CUBLAS_STATUS_INVALID_VALUE);
    cudaFree(buf);
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(b_ok);
    cublasLtMatrixLayoutDestroy(c);
    cublasLtMatrixLayoutDestroy(small_ld);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(handle);
}
