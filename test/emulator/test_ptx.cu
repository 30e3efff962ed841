// kernels/ptx.h under the emulator: each wrapper against the PTX ISA's fragment
// layout tables and a plain matrix product on random values.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "ptx_kernels.cuh"

namespace {

template <class T>
T* to_device(const std::vector<T>& h) {
    T* d = nullptr;
    REQUIRE(cudaMalloc(&d, h.size() * sizeof(T)) == cudaSuccess);
    REQUIRE(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
    return d;
}
template <class T>
std::vector<T> to_host(const T* d, std::size_t n) {
    std::vector<T> h(n);
    REQUIRE(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
}

// The PTX ISA's tables for mma.m16n8k16 with .bf16 inputs, written per element
// as the ISA lists them (a0..a7, b0..b3, c0..c3), groupID = lane >> 2 and
// threadID_in_group = lane % 4.
struct Coord { int row, col; };
Coord a_element(int lane, int i) {
    int group = lane >> 2, tig = lane % 4;
    int row = (i < 2 || (i >= 4 && i < 6)) ? group : group + 8;
    int col = (i < 4) ? tig * 2 + (i & 1) : tig * 2 + (i & 1) + 8;
    return {row, col};
}
Coord b_element(int lane, int i) {
    int group = lane >> 2, tig = lane % 4;
    int row = (i < 2) ? tig * 2 + (i & 1) : tig * 2 + (i & 1) + 8;
    return {row, group};
}
Coord c_element(int lane, int i) {
    int group = lane >> 2, tig = lane % 4;
    int row = (i < 2) ? group : group + 8;
    return {row, tig * 2 + (i & 1)};
}

uint16_t bf16_bits(float f) { return __bfloat16_as_ushort(__float2bfloat16(f)); }
float bf16_value(uint16_t b) { return __bfloat162float(__ushort_as_bfloat16(b)); }

}  // namespace

TEST_CASE("mma.m16n8k16 bf16: fragments placed by the ISA tables give A*B+C", "[emulator][ptx]") {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    for (int trial = 0; trial < 5; ++trial) {
        uint16_t A[16][16], B[16][8];
        float C[16][8];
        for (auto& r : A) for (auto& v : r) v = bf16_bits(u(rng));
        for (auto& r : B) for (auto& v : r) v = bf16_bits(u(rng));
        for (auto& r : C) for (auto& v : r) v = u(rng);
        std::vector<uint32_t> a(32 * 4, 0), b(32 * 2, 0);
        std::vector<float> c(32 * 4);
        for (int lane = 0; lane < 32; ++lane) {
            for (int i = 0; i < 8; ++i) {
                Coord e = a_element(lane, i);
                a[4 * lane + i / 2] |= uint32_t(A[e.row][e.col]) << (16 * (i % 2));
            }
            for (int i = 0; i < 4; ++i) {
                Coord e = b_element(lane, i);
                b[2 * lane + i / 2] |= uint32_t(B[e.row][e.col]) << (16 * (i % 2));
            }
            for (int i = 0; i < 4; ++i) {
                Coord e = c_element(lane, i);
                c[4 * lane + i] = C[e.row][e.col];
            }
        }
        uint32_t *da = to_device(a), *db = to_device(b);
        float *dc = to_device(c), *dd = nullptr;
        REQUIRE(cudaMalloc(&dd, 128 * sizeof(float)) == cudaSuccess);
        mma_fragments_kernel<<<1, 32>>>(da, db, dc, dd);
        REQUIRE(cudaGetLastError() == cudaSuccess);
        auto d = to_host(dd, 128);
        for (int lane = 0; lane < 32; ++lane)
            for (int i = 0; i < 4; ++i) {
                Coord e = c_element(lane, i);
                double want = C[e.row][e.col];
                for (int k = 0; k < 16; ++k) want += double(bf16_value(A[e.row][k])) * bf16_value(B[k][e.col]);
                INFO("lane " << lane << " d" << i);
                REQUIRE(d[4 * lane + i] == Approx(want).margin(1e-5));
            }
        cudaFree(da); cudaFree(db); cudaFree(dc); cudaFree(dd);
    }
}

TEST_CASE("ldmatrix x1/x2/x4, with and without .trans, hand out rows as the ISA says", "[emulator][ptx]") {
    std::mt19937 rng(3);
    std::vector<unsigned short> m(32 * 8);
    for (auto& v : m) v = static_cast<unsigned short>(rng());
    unsigned short* dm = to_device(m);
    uint32_t* dout = nullptr;
    REQUIRE(cudaMalloc(&dout, 128 * sizeof(uint32_t)) == cudaSuccess);
    for (int count : {1, 2, 4})
        for (int trans : {0, 1}) {
            ldmatrix_kernel<<<1, 32>>>(dm, dout, count, trans);
            REQUIRE(cudaGetLastError() == cudaSuccess);
            auto out = to_host(dout, 128);
            for (int lane = 0; lane < 32; ++lane)
                for (int j = 0; j < count; ++j) {
                    // Matrix j is rows 8j..8j+7 of m; row r of it is m[(8j + r) * 8 ...].
                    auto at = [&](int r, int col) { return uint32_t(m[(8 * j + r) * 8 + col]); };
                    uint32_t want = trans ? (at(2 * (lane % 4), lane / 4) | at(2 * (lane % 4) + 1, lane / 4) << 16)
                                          : (at(lane / 4, 2 * (lane % 4)) | at(lane / 4, 2 * (lane % 4) + 1) << 16);
                    INFO("count " << count << " trans " << trans << " lane " << lane << " register " << j);
                    REQUIRE(out[4 * lane + j] == want);
                }
        }
    cudaFree(dm);
    cudaFree(dout);
}

TEST_CASE("cp.async copies land at cp.async.wait_group and not before", "[emulator][ptx]") {
    std::vector<float4> src(64);
    for (int i = 0; i < 64; ++i) src[i] = make_float4(float(i), 0.0f, 0.0f, 0.5f);
    float4* ds = to_device(src);
    float* dout = nullptr;
    REQUIRE(cudaMalloc(&dout, 96 * sizeof(float)) == cudaSuccess);
    cp_async_kernel<<<1, 32>>>(ds, dout);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    auto out = to_host(dout, 96);
    for (int l = 0; l < 32; ++l) {
        REQUIRE(out[l] == float(l) + 0.5f);
        REQUIRE(std::isnan(out[32 + l]));  // still in flight: shared memory holds its garbage
        REQUIRE(out[64 + l] == float(32 + l) + 0.5f);
    }
    cudaFree(ds);
    cudaFree(dout);
}

TEST_CASE("a cp.async + ldmatrix + mma tile matmul equals the plain product", "[emulator][ptx]") {
    const int K = 64;
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<__nv_bfloat16> A(16 * K), B(K * 8);
    for (auto& v : A) v = __float2bfloat16(u(rng));
    for (auto& v : B) v = __float2bfloat16(u(rng));
    __nv_bfloat16 *dA = to_device(A), *dB = to_device(B);
    float* dC = nullptr;
    REQUIRE(cudaMalloc(&dC, 16 * 8 * sizeof(float)) == cudaSuccess);
    tile_gemm_kernel<<<1, 32>>>(dA, dB, dC, K);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    auto C = to_host(dC, 128);
    for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 8; ++j) {
            double want = 0;
            for (int k = 0; k < K; ++k) want += double(__bfloat162float(A[i * K + k])) * __bfloat162float(B[k * 8 + j]);
            INFO("C[" << i << "][" << j << "]");
            REQUIRE(C[i * 8 + j] == Approx(want).margin(1e-4));
        }
    cudaFree(dA); cudaFree(dB); cudaFree(dC);
}

// wgmma.mma_async.m64nNk16 (PTX ISA, "Matrix Fragments for wgmma.mma_async.m64nNk16"
// and "Shared Memory Matrix Layout"): warp w's A registers hold rows 16w..16w+15
// in the mma.m16n8k16 A layout; d[4j + i] of warp w is D[16w + g + 8(i/2)][8j + 2t + i%2];
// B element (k, n) lies at (n/8) sbo + (k/8) lbo + (n%8) 16 + (k%8) 2 bytes.
template <int N>
void check_wgmma(unsigned lbo, unsigned sbo, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::vector<uint16_t> A(64 * 16), B(16 * N);
    for (auto& v : A) v = bf16_bits(u(rng));
    for (auto& v : B) v = bf16_bits(u(rng));
    std::vector<uint32_t> a(128 * 4, 0);
    for (int tid = 0; tid < 128; ++tid)
        for (int i = 0; i < 8; ++i) {
            Coord e = a_element(tid % 32, i);
            a[4 * tid + i / 2] |= uint32_t(A[(16 * (tid / 32) + e.row) * 16 + e.col]) << (16 * (i % 2));
        }
    const int bytes = int(std::max((N / 8 - 1) * sbo + lbo + 128, (N / 8) * sbo + 128u));
    std::vector<unsigned char> b(bytes, 0xff);
    for (int k = 0; k < 16; ++k)
        for (int n = 0; n < N; ++n) {
            const int at = (n / 8) * sbo + (k / 8) * lbo + (n % 8) * 16 + (k % 8) * 2;
            b[at] = B[k * N + n] & 0xff;
            b[at + 1] = B[k * N + n] >> 8;
        }
    uint32_t* da = to_device(a);
    unsigned char* db = to_device(b);
    float *dout = nullptr, *dearly = nullptr;
    REQUIRE(cudaMalloc(&dout, 128 * (N / 2) * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMalloc(&dearly, 128 * sizeof(float)) == cudaSuccess);
    wgmma_kernel<N><<<1, 128, bytes>>>(da, db, bytes, lbo, sbo, dout, dearly);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    auto out = to_host(dout, 128 * (N / 2));
    auto early = to_host(dearly, 128);
    for (int tid = 0; tid < 128; ++tid) {
        REQUIRE(early[tid] == 1.0f);  // the emulator runs the products at the wait
        const int w = tid / 32, g = tid % 32 / 4, t = tid % 4;
        for (int j = 0; j < N / 8; ++j)
            for (int i = 0; i < 4; ++i) {
                const int row = 16 * w + g + 8 * (i / 2), col = 8 * j + 2 * t + i % 2;
                double want = 0;
                for (int k = 0; k < 16; ++k) want += double(bf16_value(A[row * 16 + k])) * bf16_value(B[k * N + col]);
                INFO("thread " << tid << " d" << 4 * j + i << " = D[" << row << "][" << col << "]");
                REQUIRE(out[tid * (N / 2) + 4 * j + i] == Approx(2 * want).margin(1e-4));
            }
    }
    cudaFree(da); cudaFree(db); cudaFree(dout); cudaFree(dearly);
}

TEST_CASE("wgmma m64n64k16 and m64n128k16 bf16: fragments and core matrices placed by the ISA give A*B", "[emulator][ptx]") {
    // Core matrices adjacent in N packed first (sbo 128), or the two K halves side by side (lbo 128).
    check_wgmma<64>(128 * 8, 128, 1);
    check_wgmma<64>(128, 256, 2);
    check_wgmma<128>(128 * 16, 128, 3);
    check_wgmma<128>(128, 256, 4);
}
