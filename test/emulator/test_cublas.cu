// The cuBLAS stand-in (cublas_v2.h) against a plain double-precision product:
// every GEMM entry point, every transpose pair, odd shapes, leading dimensions
// above the rows, batches, host and device scalars; the level-1 and level-2
// calls; and the statuses of bad arguments.
#include <catch2/catch.hpp>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "emu/control.h"
#include "device_buffers.h"

namespace {

#define CHECK_BLAS(call) REQUIRE((call) == CUBLAS_STATUS_SUCCESS)

std::size_t bytes_of(cudaDataType_t t) { return t == CUDA_R_64F ? 8 : t == CUDA_R_32F ? 4 : 2; }
double get(const std::vector<unsigned char>& buf, cudaDataType_t t, std::size_t i) {
    switch (t) {
        case CUDA_R_64F:
            return reinterpret_cast<const double*>(buf.data())[i];
        case CUDA_R_32F:
            return reinterpret_cast<const float*>(buf.data())[i];
        case CUDA_R_16BF:
            return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(buf.data())[i]);
        default:
            return __half2float(reinterpret_cast<const __half*>(buf.data())[i]);
    }
}
void put(std::vector<unsigned char>& buf, cudaDataType_t t, std::size_t i, double v) {
    switch (t) {
        case CUDA_R_64F:
            reinterpret_cast<double*>(buf.data())[i] = v;
            break;
        case CUDA_R_32F:
            reinterpret_cast<float*>(buf.data())[i] = float(v);
            break;
        case CUDA_R_16BF:
            reinterpret_cast<__nv_bfloat16*>(buf.data())[i] = __float2bfloat16(float(v));
            break;
        default:
            reinterpret_cast<__half*>(buf.data())[i] = __float2half(float(v));
            break;
    }
}
// TF32: fp32 with 10 mantissa bits, rounded to nearest with ties away from zero.
double tf32(double x) {
    float f = float(x);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u = (u + 0x1000u) & ~0x1fffu;
    std::memcpy(&f, &u, 4);
    return f;
}

// A column-major matrix of `rows` x `cols` as cuBLAS stores it: leading
// dimension `ld`, `batch` items `stride` elements apart. Every stored element,
// padding included, holds a random value; `bytes` is the stored form.
struct Stored {
    cudaDataType_t type;
    int rows, cols, ld, batch;
    long long stride;
    std::vector<unsigned char> bytes;
    std::size_t index(int i, int j, int b) const { return std::size_t(b * stride + i + (long long)j * ld); }
    double at(int i, int j, int b) const { return get(bytes, type, index(i, j, b)); }
};
Stored make_stored(std::mt19937& rng, cudaDataType_t t, int rows, int cols, int pad, int batch) {
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    Stored s{t, rows, cols, rows + pad, batch, 0, {}};
    s.stride = (long long)s.ld * cols + 3;  // batch items not back to back
    std::size_t n = std::size_t(s.stride * batch);
    s.bytes.resize(n * bytes_of(t));
    for (std::size_t i = 0; i < n; ++i) put(s.bytes, t, i, u(rng));
    return s;
}

// Raw bytes to and from the device (the shared helpers of device_buffers.h).
void* upload(const std::vector<unsigned char>& h) { return emu_test::to_device(h); }
std::vector<unsigned char> download(const void* d, std::size_t n) {
    return emu_test::to_host(static_cast<const unsigned char*>(d), n);
}
// Device array of the batch items' addresses (for the *Batched calls).
void** pointer_array(void* base, const Stored& s) {
    std::vector<unsigned char> h(sizeof(void*) * std::size_t(s.batch));
    for (int b = 0; b < s.batch; ++b) {
        void* p = static_cast<char*>(base) + std::size_t(b * s.stride) * bytes_of(s.type);
        std::memcpy(h.data() + sizeof(void*) * std::size_t(b), &p, sizeof(void*));
    }
    return static_cast<void**>(upload(h));
}

enum class Entry {
    Sgemm,
    Dgemm,
    Hgemm,
    GemmEx,
    SgemmBatched,
    SgemmStridedBatched,
    GemmBatchedEx,
    GemmStridedBatchedEx
};

struct Case {
    Entry entry;
    cublasOperation_t ta, tb;
    int m, n, k, pad, batch;
    cudaDataType_t in, out;
    cublasComputeType_t compute;
    double alpha, beta;
    bool tf32_inputs;  // the product is allowed to round its inputs to TF32
};

// How far the result may be from the double-precision product: the output
// type's rounding (the emulator sums exactly and rounds once).
double tolerance(cudaDataType_t t) {
    switch (t) {
        case CUDA_R_64F:
            return 1e-12;
        case CUDA_R_32F:
            return 1e-6;
        case CUDA_R_16BF:
            return 8e-3;
        default:
            return 1e-3;
    }
}

void run_case(cublasHandle_t h, const Case& c) {
    INFO("entry " << int(c.entry) << " ta " << c.ta << " tb " << c.tb << " m " << c.m << " n " << c.n << " k " << c.k
                  << " pad " << c.pad << " batch " << c.batch << " in " << c.in << " out " << c.out);
    std::mt19937 rng(unsigned(c.m * 1000 + c.n * 100 + c.k * 10 + c.ta * 3 + c.tb + int(c.entry) * 7));
    bool na = c.ta == CUBLAS_OP_N, nb = c.tb == CUBLAS_OP_N;
    Stored A = make_stored(rng, c.in, na ? c.m : c.k, na ? c.k : c.m, c.pad, c.batch);
    Stored B = make_stored(rng, c.in, nb ? c.k : c.n, nb ? c.n : c.k, c.pad + 1, c.batch);
    Stored C = make_stored(rng, c.out, c.m, c.n, c.pad + 2, c.batch);
    void *da = upload(A.bytes), *db = upload(B.bytes), *dc = upload(C.bytes);

    // alpha and beta in the scale type of the call.
    float af = float(c.alpha), bf = float(c.beta);
    double ad = c.alpha, bd = c.beta;
    __half ah = __float2half(af), bh = __float2half(bf);
    const void *alpha = &af, *beta = &bf;
    if (c.entry == Entry::Dgemm || c.compute == CUBLAS_COMPUTE_64F) alpha = &ad, beta = &bd;
    if (c.entry == Entry::Hgemm || c.compute == CUBLAS_COMPUTE_16F) alpha = &ah, beta = &bh;

    void **pa = nullptr, **pb = nullptr, **pc = nullptr;
    cublasGemmAlgo_t algo = c.m % 2 ? CUBLAS_GEMM_DEFAULT : CUBLAS_GEMM_DEFAULT_TENSOR_OP;
    cublasStatus_t s = CUBLAS_STATUS_INTERNAL_ERROR;
    switch (c.entry) {
        case Entry::Sgemm:
            s = cublasSgemm(h, c.ta, c.tb, c.m, c.n, c.k, &af, (const float*)da, A.ld, (const float*)db, B.ld, &bf,
                            (float*)dc, C.ld);
            break;
        case Entry::Dgemm:
            s = cublasDgemm(h, c.ta, c.tb, c.m, c.n, c.k, &ad, (const double*)da, A.ld, (const double*)db, B.ld, &bd,
                            (double*)dc, C.ld);
            break;
        case Entry::Hgemm:
            s = cublasHgemm(h, c.ta, c.tb, c.m, c.n, c.k, &ah, (const __half*)da, A.ld, (const __half*)db, B.ld, &bh,
                            (__half*)dc, C.ld);
            break;
        case Entry::GemmEx:
            s = cublasGemmEx(h, c.ta, c.tb, c.m, c.n, c.k, alpha, da, c.in, A.ld, db, c.in, B.ld, beta, dc, c.out, C.ld,
                             c.compute, algo);
            break;
        case Entry::SgemmStridedBatched:
            s = cublasSgemmStridedBatched(h, c.ta, c.tb, c.m, c.n, c.k, &af, (const float*)da, A.ld, A.stride,
                                          (const float*)db, B.ld, B.stride, &bf, (float*)dc, C.ld, C.stride, c.batch);
            break;
        case Entry::GemmStridedBatchedEx:
            s = cublasGemmStridedBatchedEx(h, c.ta, c.tb, c.m, c.n, c.k, alpha, da, c.in, A.ld, A.stride, db, c.in,
                                           B.ld, B.stride, beta, dc, c.out, C.ld, C.stride, c.batch, c.compute, algo);
            break;
        case Entry::SgemmBatched:
        case Entry::GemmBatchedEx:
            pa = pointer_array(da, A);
            pb = pointer_array(db, B);
            pc = pointer_array(dc, C);
            if (c.entry == Entry::SgemmBatched)
                s = cublasSgemmBatched(h, c.ta, c.tb, c.m, c.n, c.k, &af, (const float* const*)pa, A.ld,
                                       (const float* const*)pb, B.ld, &bf, (float* const*)pc, C.ld, c.batch);
            else
                s = cublasGemmBatchedEx(h, c.ta, c.tb, c.m, c.n, c.k, alpha, (const void* const*)pa, c.in, A.ld,
                                        (const void* const*)pb, c.in, B.ld, beta, (void* const*)pc, c.out, C.ld,
                                        c.batch, c.compute, algo);
            break;
    }
    REQUIRE(s == CUBLAS_STATUS_SUCCESS);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    std::vector<unsigned char> got = download(dc, C.bytes.size());

    auto input = [&](double v) { return c.tf32_inputs ? tf32(v) : v; };
    double tol = tolerance(c.out);
    std::vector<bool> inside(C.bytes.size() / bytes_of(c.out), false);
    for (int b = 0; b < c.batch; ++b)
        for (int j = 0; j < c.n; ++j)
            for (int i = 0; i < c.m; ++i) {
                double sum = 0.0;
                for (int p = 0; p < c.k; ++p)
                    sum += input(na ? A.at(i, p, b) : A.at(p, i, b)) * input(nb ? B.at(p, j, b) : B.at(j, p, b));
                double want = c.alpha * sum + c.beta * C.at(i, j, b);
                double have = get(got, c.out, C.index(i, j, b));
                inside[C.index(i, j, b)] = true;
                if (!(std::fabs(have - want) <= tol * (1.0 + std::fabs(want))))  // NaN fails too
                    FAIL("C[" << b << "](" << i << ", " << j << ") = " << have << ", want " << want);
            }
    // The padding rows and the gaps between batch items are left alone.
    for (std::size_t e = 0; e < inside.size(); ++e)
        if (!inside[e] && get(got, c.out, e) != get(C.bytes, c.out, e)) FAIL("element " << e << " outside C changed");
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
    cudaFree(pa);
    cudaFree(pb);
    cudaFree(pc);
}

const cublasOperation_t kOps[] = {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C};
struct Shape {
    int m, n, k, pad;
};
const Shape kShapes[] = {{7, 5, 3, 0}, {1, 9, 4, 2}, {16, 3, 11, 5}};

struct Handle {
    cublasHandle_t h = nullptr;
    Handle() { REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS); }
    ~Handle() { cublasDestroy(h); }
};

}  // namespace

TEST_CASE("cublasSgemm, Dgemm and Hgemm match a double product for every transpose pair and odd shapes",
          "[emulator][cublas]") {
    Handle hd;
    for (auto ta : kOps)
        for (auto tb : kOps)
            for (const Shape& sh : kShapes) {
                run_case(hd.h, {Entry::Sgemm, ta, tb, sh.m, sh.n, sh.k, sh.pad, 1, CUDA_R_32F, CUDA_R_32F,
                                CUBLAS_COMPUTE_32F, 0.75, -1.25, false});
                run_case(hd.h, {Entry::Dgemm, ta, tb, sh.m, sh.n, sh.k, sh.pad, 1, CUDA_R_64F, CUDA_R_64F,
                                CUBLAS_COMPUTE_64F, 0.7, -1.3, false});
                run_case(hd.h, {Entry::Hgemm, ta, tb, sh.m, sh.n, sh.k, sh.pad, 1, CUDA_R_16F, CUDA_R_16F,
                                CUBLAS_COMPUTE_16F, 0.75, 0.5, false});
            }
}

TEST_CASE("cublasGemmEx matches a double product for each supported type combination", "[emulator][cublas]") {
    struct Types {
        cudaDataType_t in, out;
        cublasComputeType_t compute;
        bool tf32;
    };
    const Types types[] = {
        {CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F, false},
        {CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F, false},
        {CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, false},
        {CUDA_R_16F, CUDA_R_32F, CUBLAS_COMPUTE_32F, false},
        {CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_16F, false},
        {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, false},
        {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_PEDANTIC, false},
        {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32, true},
        {CUDA_R_64F, CUDA_R_64F, CUBLAS_COMPUTE_64F, false},
    };
    Handle hd;
    for (const Types& t : types)
        for (auto ta : kOps)
            for (auto tb : kOps) {
                const Shape& sh = kShapes[(ta * 3 + tb) % 3];
                run_case(hd.h, {Entry::GemmEx, ta, tb, sh.m, sh.n, sh.k, sh.pad, 1, t.in, t.out, t.compute, 0.75,
                                t.compute == CUBLAS_COMPUTE_16F ? 0.5 : -1.25, t.tf32});
            }
}

TEST_CASE("batched and strided batched GEMMs compute every item of the batch", "[emulator][cublas]") {
    Handle hd;
    for (auto ta : kOps)
        for (auto tb : kOps) {
            const Shape& sh = kShapes[(ta + tb) % 3];
            run_case(hd.h, {Entry::SgemmStridedBatched, ta, tb, sh.m, sh.n, sh.k, sh.pad, 3, CUDA_R_32F, CUDA_R_32F,
                            CUBLAS_COMPUTE_32F, 1.5, 0.25, false});
            run_case(hd.h, {Entry::SgemmBatched, ta, tb, sh.m, sh.n, sh.k, sh.pad, 4, CUDA_R_32F, CUDA_R_32F,
                            CUBLAS_COMPUTE_32F, -0.5, 1.0, false});
            run_case(hd.h, {Entry::GemmStridedBatchedEx, ta, tb, sh.m, sh.n, sh.k, sh.pad, 3, CUDA_R_16BF, CUDA_R_16BF,
                            CUBLAS_COMPUTE_32F, 1.0, 0.0, false});
            run_case(hd.h, {Entry::GemmBatchedEx, ta, tb, sh.m, sh.n, sh.k, sh.pad, 2, CUDA_R_16F, CUDA_R_32F,
                            CUBLAS_COMPUTE_32F, 0.75, -1.25, false});
        }
}

TEST_CASE("a product large enough to be split over the emulator's OS threads is whole", "[emulator][cublas]") {
    // m * n * k above 2^20: the columns of C are shared out among threads.
    emu::set_block_threads(3);
    struct Restore {
        ~Restore() { emu::set_block_threads(0); }
    } restore;
    Handle hd;
    run_case(hd.h, {Entry::Sgemm, CUBLAS_OP_T, CUBLAS_OP_N, 131, 97, 101, 3, 1, CUDA_R_32F, CUDA_R_32F,
                    CUBLAS_COMPUTE_32F, 0.75, -1.25, false});
    run_case(hd.h, {Entry::GemmStridedBatchedEx, CUBLAS_OP_N, CUBLAS_OP_T, 97, 131, 101, 0, 2, CUDA_R_16BF, CUDA_R_32F,
                    CUBLAS_COMPUTE_32F, 1.0, 0.5, false});
}

TEST_CASE("TF32 rounds fp32 inputs only where the compute type or math mode allows it", "[emulator][cublas]") {
    // A = 1 + 2^-12 (lost in TF32's 10-bit mantissa), B = 1.
    Handle hd;
    float ha = 1.0f + 1.0f / 4096.0f, hb = 1.0f, one = 1.0f, zero = 0.0f;
    float *a, *b, *c;
    REQUIRE(cudaMalloc(&a, 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&b, 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&c, 4) == cudaSuccess);
    REQUIRE(cudaMemcpy(a, &ha, 4, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(b, &hb, 4, cudaMemcpyHostToDevice) == cudaSuccess);
    auto result = [&] {
        float r = 0.0f;
        REQUIRE(cudaMemcpy(&r, c, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
        return r;
    };
    cublasMath_t mode;
    CHECK_BLAS(cublasGetMathMode(hd.h, &mode));
    CHECK(mode == CUBLAS_DEFAULT_MATH);
    CHECK_BLAS(cublasSgemm(hd.h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a, 1, b, 1, &zero, c, 1));
    CHECK(result() == ha);
    CHECK_BLAS(cublasGemmEx(hd.h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a, CUDA_R_32F, 1, b, CUDA_R_32F, 1, &zero, c,
                            CUDA_R_32F, 1, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
    CHECK(result() == 1.0f);
    // The compute type given the pre-cuBLAS-11 way, as a cudaDataType: plain fp32.
    CHECK_BLAS(cublasGemmEx(hd.h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a, CUDA_R_32F, 1, b, CUDA_R_32F, 1, &zero, c,
                            CUDA_R_32F, 1, CUDA_R_32F, CUBLAS_GEMM_DEFAULT));
    CHECK(result() == ha);
    CHECK_BLAS(cublasSetMathMode(hd.h, CUBLAS_TF32_TENSOR_OP_MATH));
    CHECK_BLAS(cublasGetMathMode(hd.h, &mode));
    CHECK(mode == CUBLAS_TF32_TENSOR_OP_MATH);
    CHECK_BLAS(cublasSgemm(hd.h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a, 1, b, 1, &zero, c, 1));
    CHECK(result() == 1.0f);
    // PEDANTIC compute stays fp32 whatever the math mode.
    CHECK_BLAS(cublasGemmEx(hd.h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a, CUDA_R_32F, 1, b, CUDA_R_32F, 1, &zero, c,
                            CUDA_R_32F, 1, CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
    CHECK(result() == ha);
    CHECK_BLAS(cublasSetMathMode(hd.h, CUBLAS_PEDANTIC_MATH));
    CHECK_BLAS(cublasSgemm(hd.h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a, 1, b, 1, &zero, c, 1));
    CHECK(result() == ha);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
}

TEST_CASE("beta = 0 does not read C and alpha = 0 does not read A and B", "[emulator][cublas]") {
    // cudaMalloc'd memory starts as NaN here: a product that read it would be NaN.
    Handle hd;
    const int m = 4, n = 3, k = 5;
    std::vector<float> ha(m * k), hb(k * n), hc(m * n);
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (auto& v : ha) v = u(rng);
    for (auto& v : hb) v = u(rng);
    for (auto& v : hc) v = u(rng);
    float *a, *b, *c, *nan_buf;
    REQUIRE(cudaMalloc(&a, ha.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&b, hb.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&c, hc.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&nan_buf, 64 * 4) == cudaSuccess);
    REQUIRE(cudaMemcpy(a, ha.data(), ha.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(b, hb.data(), hb.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    float one = 1.0f, zero = 0.0f, two = 2.0f;
    std::vector<float> r(m * n);
    // beta = 0, C never written before (NaN): C = A B.
    CHECK_BLAS(cublasSgemm(hd.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, a, m, b, k, &zero, c, m));
    REQUIRE(cudaMemcpy(r.data(), c, r.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) {
            double want = 0;
            for (int p = 0; p < k; ++p) want += double(ha[i + p * m]) * hb[p + j * k];
            CHECK(r[i + j * m] == Approx(want).margin(1e-6));
        }
    // alpha = 0 with NaN A and B: C = beta C.
    REQUIRE(cudaMemcpy(c, hc.data(), hc.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK_BLAS(cublasSgemm(hd.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &zero, nan_buf, m, nan_buf, k, &two, c, m));
    REQUIRE(cudaMemcpy(r.data(), c, r.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int e = 0; e < m * n; ++e) CHECK(r[e] == 2.0f * hc[e]);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cudaFree(nan_buf);
}

static __global__ void blas_fill_kernel(float* p, int n, float base) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = base + 0.125f * float(i % 7);
}

TEST_CASE("a GEMM runs in its stream's order, after the kernels queued before it", "[emulator][cublas]") {
    Handle hd;
    cudaStream_t st;
    REQUIRE(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess);
    CHECK_BLAS(cublasSetStream(hd.h, st));
    cudaStream_t got_stream = nullptr;
    CHECK_BLAS(cublasGetStream(hd.h, &got_stream));
    CHECK(got_stream == st);
    const int m = 6, n = 5, k = 7;
    float *a, *b, *c;
    REQUIRE(cudaMalloc(&a, m * k * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&b, k * n * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&c, m * n * 4) == cudaSuccess);
    blas_fill_kernel<<<1, 64, 0, st>>>(a, m * k, -0.5f);
    blas_fill_kernel<<<1, 64, 0, st>>>(b, k * n, 0.25f);
    float one = 1.0f, zero = 0.0f;
    CHECK_BLAS(cublasSgemm(hd.h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, a, k, b, k, &zero, c, m));
    std::vector<float> r(m * n);
    REQUIRE(cudaMemcpyAsync(r.data(), c, r.size() * 4, cudaMemcpyDeviceToHost, st) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(st) == cudaSuccess);
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) {
            double want = 0;
            for (int p = 0; p < k; ++p)
                want += double(-0.5f + 0.125f * float((p + i * k) % 7)) * (0.25f + 0.125f * float((p + j * k) % 7));
            CHECK(r[i + j * m] == Approx(want).margin(1e-6));
        }
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cudaStreamDestroy(st);
}

TEST_CASE("device pointer mode reads alpha and beta from device memory when the work runs", "[emulator][cublas]") {
    Handle hd;
    cublasPointerMode_t pm;
    CHECK_BLAS(cublasGetPointerMode(hd.h, &pm));
    CHECK(pm == CUBLAS_POINTER_MODE_HOST);
    CHECK_BLAS(cublasSetPointerMode(hd.h, CUBLAS_POINTER_MODE_DEVICE));
    const int m = 3, n = 2, k = 4;
    std::vector<float> ha(m * k), hb(k * n), hc(m * n);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (auto& v : ha) v = u(rng);
    for (auto& v : hb) v = u(rng);
    for (auto& v : hc) v = u(rng);
    float *a, *b, *c, *scalars;
    REQUIRE(cudaMalloc(&a, ha.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&b, hb.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&c, hc.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&scalars, 8) == cudaSuccess);
    REQUIRE(cudaMemcpy(a, ha.data(), ha.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(b, hb.data(), hb.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(c, hc.data(), hc.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    // The scalars are written by a kernel queued before the GEMM on the same stream.
    blas_fill_kernel<<<1, 2>>>(scalars, 2, 1.5f);  // alpha = 1.5, beta = 1.625
    CHECK_BLAS(cublasSgemm(hd.h, CUBLAS_OP_N, CUBLAS_OP_T, m, n, k, scalars, a, m, b, n, scalars + 1, c, m));
    std::vector<float> r(m * n);
    REQUIRE(cudaMemcpy(r.data(), c, r.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) {
            double want = 0;
            for (int p = 0; p < k; ++p) want += double(ha[i + p * m]) * hb[j + p * n];
            CHECK(r[i + j * m] == Approx(1.5 * want + 1.625 * hc[i + j * m]).margin(1e-6));
        }
    // Level 1 with the result in device memory.
    CHECK_BLAS(cublasSdot(hd.h, m * k, a, 1, a, 1, scalars));
    float dot = 0;
    REQUIRE(cudaMemcpy(&dot, scalars, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    double want = 0;
    for (float v : ha) want += double(v) * v;
    CHECK(dot == Approx(want).margin(1e-6));
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cudaFree(scalars);
}

TEST_CASE("cublasSgemv, Saxpy, Sscal, Sdot and Snrm2 match plain loops", "[emulator][cublas]") {
    Handle hd;
    const int m = 7, n = 5, lda = 9;
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> ha(lda * n), hx(2 * m), hy(3 * m);
    for (auto& v : ha) v = u(rng);
    for (auto& v : hx) v = u(rng);
    for (auto& v : hy) v = u(rng);
    float *a, *x, *y;
    REQUIRE(cudaMalloc(&a, ha.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&x, hx.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&y, hy.size() * 4) == cudaSuccess);
    CHECK_BLAS(cublasSetMatrix(m, n, 4, ha.data(), lda, a, lda));
    CHECK_BLAS(cublasSetVector(int(hx.size()), 4, hx.data(), 1, x, 1));
    std::vector<float> r(hy.size());
    for (auto trans : kOps) {
        // op(A) x with x every 2nd element, y every 3rd.
        bool t = trans != CUBLAS_OP_N;
        int xlen = t ? m : n, ylen = t ? n : m;
        float alpha = 0.5f, beta = -2.0f;
        CHECK_BLAS(cublasSetVector(int(hy.size()), 4, hy.data(), 1, y, 1));
        CHECK_BLAS(cublasSgemv(hd.h, trans, m, n, &alpha, a, lda, x, 2, &beta, y, 3));
        CHECK_BLAS(cublasGetVector(int(hy.size()), 4, y, 1, r.data(), 1));
        for (int i = 0; i < ylen; ++i) {
            double want = 0;
            for (int p = 0; p < xlen; ++p) want += double(t ? ha[p + i * lda] : ha[i + p * lda]) * hx[2 * p];
            CHECK(r[3 * i] == Approx(alpha * want + beta * hy[3 * i]).margin(1e-6));
            CHECK(r[3 * i + 1] == hy[3 * i + 1]);
        }
    }
    // axpy with a negative increment walks x from its end, as in BLAS.
    CHECK_BLAS(cublasSetVector(int(hy.size()), 4, hy.data(), 1, y, 1));
    float alpha = 1.75f;
    CHECK_BLAS(cublasSaxpy(hd.h, m, &alpha, x, -2, y, 1));
    CHECK_BLAS(cublasGetVector(int(hy.size()), 4, y, 1, r.data(), 1));
    for (int i = 0; i < m; ++i) CHECK(r[i] == Approx(hy[i] + 1.75 * hx[2 * (m - 1 - i)]).margin(1e-6));
    CHECK(r[m] == hy[m]);
    float scale = -3.0f;
    CHECK_BLAS(cublasSscal(hd.h, m, &scale, y, 3));
    CHECK_BLAS(cublasGetVector(int(hy.size()), 4, y, 1, r.data(), 1));
    CHECK(r[3] == Approx(-3.0 * (hy[3] + 1.75 * hx[2 * (m - 4)])).margin(1e-6));
    float dot = 0, nrm = 0;
    CHECK_BLAS(cublasSdot(hd.h, m, x, 2, x, 2, &dot));
    CHECK_BLAS(cublasSnrm2(hd.h, m, x, 2, &nrm));
    double sq = 0;
    for (int i = 0; i < m; ++i) sq += double(hx[2 * i]) * hx[2 * i];
    CHECK(dot == Approx(sq).margin(1e-6));
    CHECK(nrm == Approx(std::sqrt(sq)).margin(1e-6));
    cudaFree(a);
    cudaFree(x);
    cudaFree(y);
}

TEST_CASE("bad arguments give cuBLAS's documented statuses and leave C alone", "[emulator][cublas]") {
    Handle hd;
    cublasHandle_t h = hd.h;
    float *a, *c;
    REQUIRE(cudaMalloc(&a, 256 * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&c, 256 * 4) == cudaSuccess);
    std::vector<float> hc(256);
    for (int i = 0; i < 256; ++i) hc[i] = float(i) * 0.5f - 3.0f;
    REQUIRE(cudaMemcpy(c, hc.data(), hc.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemset(a, 0, 256 * 4) == cudaSuccess);
    float one = 1.0f;
    const auto N = CUBLAS_OP_N, T = CUBLAS_OP_T;
    // m = 7, n = 5, k = 3.
    CHECK(cublasSgemm(nullptr, N, N, 7, 5, 3, &one, a, 7, a, 3, &one, c, 7) == CUBLAS_STATUS_NOT_INITIALIZED);
    CHECK(cublasSgemm(h, N, N, -1, 5, 3, &one, a, 7, a, 3, &one, c, 7) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSgemm(h, N, N, 7, 5, -3, &one, a, 7, a, 3, &one, c, 7) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSgemm(h, cublasOperation_t(5), N, 7, 5, 3, &one, a, 7, a, 3, &one, c, 7) ==
          CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSgemm(h, N, N, 7, 5, 3, &one, a, 6, a, 3, &one, c, 7) == CUBLAS_STATUS_INVALID_VALUE);  // lda < m
    CHECK(cublasSgemm(h, T, N, 7, 5, 3, &one, a, 2, a, 3, &one, c, 7) == CUBLAS_STATUS_INVALID_VALUE);  // lda < k
    CHECK(cublasSgemm(h, N, N, 7, 5, 3, &one, a, 7, a, 2, &one, c, 7) == CUBLAS_STATUS_INVALID_VALUE);  // ldb < k
    CHECK(cublasSgemm(h, N, T, 7, 5, 3, &one, a, 7, a, 4, &one, c, 7) == CUBLAS_STATUS_INVALID_VALUE);  // ldb < n
    CHECK(cublasSgemm(h, N, N, 7, 5, 3, &one, a, 7, a, 3, &one, c, 6) == CUBLAS_STATUS_INVALID_VALUE);  // ldc < m
    CHECK(cublasSgemm(h, N, N, 7, 5, 3, nullptr, a, 7, a, 3, &one, c, 7) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSgemmStridedBatched(h, N, N, 7, 5, 3, &one, a, 7, 21, a, 3, 15, &one, c, 7, 35, -1) ==
          CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasGemmEx(h, N, N, 7, 5, 3, &one, a, CUDA_R_16BF, 7, a, CUDA_R_16F, 3, &one, c, CUDA_R_32F, 7,
                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK(cublasGemmEx(h, N, N, 7, 5, 3, &one, a, CUDA_R_32F, 7, a, CUDA_R_32F, 3, &one, c, CUDA_R_16BF, 7,
                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK(cublasGemmEx(h, N, N, 7, 5, 3, &one, a, CUDA_R_32F, 7, a, CUDA_R_32F, 3, &one, c, CUDA_R_32F, 7,
                       CUBLAS_COMPUTE_16F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK(cublasGemmEx(h, N, N, 7, 5, 3, &one, a, CUDA_R_32F, 7, a, CUDA_R_32F, 3, &one, c, CUDA_R_32F, 7,
                       CUBLAS_COMPUTE_32F, cublasGemmAlgo_t(42)) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSgemv(h, N, 7, 5, &one, a, 6, a, 1, &one, c, 1) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSgemv(h, N, 7, 5, &one, a, 7, a, 0, &one, c, 1) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSetMathMode(h, cublasMath_t(7)) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSetPointerMode(h, cublasPointerMode_t(3)) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSetMatrix(7, 5, 4, hc.data(), 6, c, 7) == CUBLAS_STATUS_INVALID_VALUE);
    // Valid edge cases: lda = k < m with transa = T, and an empty product.
    CHECK(cublasSgemm(h, T, N, 7, 5, 3, &one, a, 3, a, 3, &one, c, 7) == CUBLAS_STATUS_SUCCESS);
    CHECK(cublasSgemm(h, N, N, 0, 5, 3, &one, a, 1, a, 3, &one, c, 1) == CUBLAS_STATUS_SUCCESS);
    CHECK(cublasSetWorkspace(h, a, 256 * 4) == CUBLAS_STATUS_SUCCESS);
    // The refused calls wrote nothing; the valid one, with A = B = 0 and beta = 1, kept C.
    std::vector<float> r(256);
    REQUIRE(cudaMemcpy(r.data(), c, r.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(r == hc);
    CHECK(std::string(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE)) == "CUBLAS_STATUS_INVALID_VALUE");
    CHECK(std::string(cublasGetStatusString(CUBLAS_STATUS_NOT_SUPPORTED)) ==
          "the functionality requested is not supported");
    cudaFree(a);
    cudaFree(c);
}
