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

#include "device_buffers.h"
#include "ptx_kernels.cuh"

namespace {

using emu_test::to_device;
using emu_test::to_host;

// The PTX ISA's tables for mma.m16n8k16 with .bf16 inputs, written per element
// as the ISA lists them (a0..a7, b0..b3, c0..c3), groupID = lane >> 2 and
// threadID_in_group = lane % 4.
struct Coord {
    int row, col;
};
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
        for (auto& r : A)
            for (auto& v : r) v = bf16_bits(u(rng));
        for (auto& r : B)
            for (auto& v : r) v = bf16_bits(u(rng));
        for (auto& r : C)
            for (auto& v : r) v = u(rng);
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
        cudaFree(da);
        cudaFree(db);
        cudaFree(dc);
        cudaFree(dd);
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

// [emulator-only]: on a GPU a copy may land before the wait (dev/gpu-run leaves it out).
TEST_CASE("cp.async copies land at cp.async.wait_group and not before", "[emulator][ptx][emulator-only]") {
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
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dC);
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
    cudaFree(da);
    cudaFree(db);
    cudaFree(dout);
    cudaFree(dearly);
}

TEST_CASE("wgmma m64n64k16 and m64n128k16 bf16: fragments and core matrices placed by the ISA give A*B",
          "[emulator][ptx]") {
    // Core matrices adjacent in N packed first (sbo 128), or the two K halves side by side (lbo 128).
    check_wgmma<64>(128 * 8, 128, 1);
    check_wgmma<64>(128, 256, 2);
    check_wgmma<128>(128 * 16, 128, 3);
    check_wgmma<128>(128, 256, 4);
}

// ---- Hopper mbarrier and TMA (PTX ISA: "Parallel Synchronization and
// Communication Instructions: mbarrier", "cp.async.bulk.tensor"; CUDA driver
// API: cuTensorMapEncodeTiled) ----------------------------------------------------

namespace {

// bf16 bits of a random value that is never zero: random sign, magnitude in [0.5, 4).
uint16_t random_nonzero_bf16(std::mt19937& rng) {
    std::uniform_real_distribution<float> mag(0.5f, 4.0f);
    const float v = (rng() & 1) ? mag(rng) : -mag(rng);
    return bf16_bits(v);
}

// A bf16 tensor of dims[0] x dims[1] x dims[2] elements in a buffer whose rows
// are `pitch` bytes apart (the bytes past dims[0] elements are random padding
// no box may read) and whose batches are dims[1] rows apart.
struct Tensor3 {
    uint64_t dims[3];
    uint64_t pitch;
    std::vector<unsigned char> bytes;
    unsigned char* device = nullptr;

    Tensor3(uint64_t d0, uint64_t d1, uint64_t d2, uint64_t pitch_bytes, uint32_t seed)
        : dims{d0, d1, d2}, pitch(pitch_bytes), bytes(pitch_bytes * d1 * d2) {
        std::mt19937 rng(seed);
        for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) {
            const uint16_t v = random_nonzero_bf16(rng);
            bytes[i] = v & 0xff;
            bytes[i + 1] = v >> 8;
        }
        device = to_device(bytes);
    }
    ~Tensor3() { cudaFree(device); }
    Tensor3(const Tensor3&) = delete;
    Tensor3& operator=(const Tensor3&) = delete;

    uint64_t strides[2] = {0, 0};
    const uint64_t* byte_strides() {
        strides[0] = pitch;
        strides[1] = pitch * dims[1];
        return strides;
    }
    // Element (x, y, z) as bf16 bits, 0 outside the tensor (what TMA fills in).
    uint16_t at(long long x, long long y, long long z) const {
        if (x < 0 || y < 0 || z < 0 || x >= (long long)dims[0] || y >= (long long)dims[1] || z >= (long long)dims[2])
            return 0;
        const std::size_t o = std::size_t(z) * pitch * dims[1] + std::size_t(y) * pitch + std::size_t(x) * 2;
        return uint16_t(bytes[o] | (bytes[o + 1] << 8));
    }
};

// Where TMA puts element (i0, i1, i2) of a box of box0 x box1 x ... bf16 elements,
// in bytes from the box's start: row r = i1 + box1 i2 of box0 * 2 bytes; with the
// 128-byte swizzle (rows of exactly 128 bytes) the 16-byte chunk c of row r is
// stored at chunk c ^ (r % 8).
std::size_t box_position(int i0, int i1, int i2, int box0, int box1, bool swizzle128) {
    const std::size_t row = std::size_t(i1) + std::size_t(box1) * i2, byte = std::size_t(i0) * 2;
    if (!swizzle128) return row * box0 * 2 + byte;
    return row * 128 + ((byte / 16) ^ (row % 8)) * 16 + byte % 16;
}

uint16_t bytes_at(const std::vector<unsigned char>& v, std::size_t o) { return uint16_t(v[o] | (v[o + 1] << 8)); }

}  // namespace

TEST_CASE("mbarrier: a fresh barrier is in phase 0; parity waits and try_wait follow the phases",
          "[emulator][ptx][tma]") {
    int* dout = nullptr;
    REQUIRE(cudaMalloc(&dout, 32 * 8 * sizeof(int)) == cudaSuccess);
    mbarrier_phase_kernel<<<1, 64>>>(dout);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    auto out = to_host(dout, 32 * 8);
    const int want[8] = {1, 0, 32, 1, 0, 32, 0, 1};
    for (int t = 0; t < 32; ++t)
        for (int i = 0; i < 8; ++i) {
            INFO("thread " << t << " record " << i);
            REQUIRE(out[8 * t + i] == want[i]);
        }
    cudaFree(dout);
}

TEST_CASE("mbarrier: a phase with expected TMA bytes completes only when the arrivals and the bytes are all in",
          "[emulator][ptx][tma]") {
    Tensor3 x(64, 8, 2, 64 * 2, 21);
    CUtensorMap map;
    const uint32_t box[3] = {64, 4, 1};
    REQUIRE(tma_encode_bf16_3d(&map, x.device, x.dims, x.byte_strides(), box, CU_TENSOR_MAP_SWIZZLE_NONE) ==
            CUDA_SUCCESS);
    const int box_bytes = 64 * 4 * 2, threads = 64;
    int* dout = nullptr;
    unsigned char *dbox0 = nullptr, *dbox1 = nullptr;
    REQUIRE(cudaMalloc(&dout, 3 * threads * sizeof(int)) == cudaSuccess);
    REQUIRE(cudaMalloc(&dbox0, box_bytes) == cudaSuccess);
    REQUIRE(cudaMalloc(&dbox1, box_bytes) == cudaSuccess);
    mbarrier_tx_kernel<<<1, threads, 2 * box_bytes>>>(map, box_bytes, 0, 4, 1, dout, dbox0, dbox1);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    auto out = to_host(dout, 3 * threads);
    auto b0 = to_host(dbox0, box_bytes), b1 = to_host(dbox1, box_bytes);
    for (int i = 0; i < 3 * threads; ++i) {
        INFO("thread " << i / 3 << " check " << i % 3);
        REQUIRE(out[i] == 0);
    }
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 64; ++c) {
            INFO("row " << r << " column " << c);
            REQUIRE(bytes_at(b0, box_position(c, r, 0, 64, 4, false)) == x.at(c, r, 0));
            REQUIRE(bytes_at(b1, box_position(c, r, 0, 64, 4, false)) == x.at(c, 4 + r, 1));
        }
    cudaFree(dout);
    cudaFree(dbox0);
    cudaFree(dbox1);
}

TEST_CASE("TMA tensor load 3-D: boxes in place, zeros outside the tensor, with and without the 128-byte swizzle",
          "[emulator][ptx][tma]") {
    // 128 columns x 20 rows x 3 batches, rows dense or padded to 288 bytes.
    for (uint64_t pitch : {uint64_t(128 * 2), uint64_t(288)})
        for (bool sw : {false, true}) {
            Tensor3 x(128, 20, 3, pitch, uint32_t(pitch) + sw);
            CUtensorMap map;
            const uint32_t box[3] = {64, 16, 2};
            REQUIRE(tma_encode_bf16_3d(&map, x.device, x.dims, x.byte_strides(), box,
                                       sw ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE) == CUDA_SUCCESS);
            const int bytes = 64 * 16 * 2 * 2;
            unsigned char* dout = nullptr;
            REQUIRE(cudaMalloc(&dout, bytes) == cudaSuccess);
            const int at[][3] = {{0, 0, 0},   {64, 8, 1},   {-32, -4, 2}, {100, 18, -1},
                                 {-64, 0, 0}, {128, 20, 3}, {37, 3, 0},   {-5, 19, 1}};
            for (const auto& c : at) {
                tma_box_kernel<<<1, 128, bytes>>>(map, c[0], c[1], c[2], bytes, dout);
                REQUIRE(cudaGetLastError() == cudaSuccess);
                auto out = to_host(dout, bytes);
                int inside = 0;
                for (int i2 = 0; i2 < 2; ++i2)
                    for (int i1 = 0; i1 < 16; ++i1)
                        for (int i0 = 0; i0 < 64; ++i0) {
                            const uint16_t want = x.at(c[0] + i0, c[1] + i1, c[2] + i2);
                            inside += want != 0;
                            INFO("pitch " << pitch << " swizzle " << sw << " box at (" << c[0] << ", " << c[1] << ", "
                                          << c[2] << ") element (" << i0 << ", " << i1 << ", " << i2 << ")");
                            REQUIRE(bytes_at(out, box_position(i0, i1, i2, 64, 16, sw)) == want);
                        }
                if (c[0] == 0 && c[1] == 0 && c[2] == 0) REQUIRE(inside == 64 * 16 * 2);
            }
            cudaFree(dout);
        }
}

TEST_CASE("cuTensorMapEncodeTiled: the driver's parameter checks", "[emulator][ptx][tma]") {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSuccess;
    REQUIRE(cudaGetDriverEntryPointByVersion("cuNoSuchFunction", &fn, 12000, cudaEnableDefault, &found) == cudaSuccess);
    REQUIRE(found == cudaDriverEntryPointSymbolNotFound);
    REQUIRE(fn == nullptr);
    REQUIRE(tma_encode_tiled_fn() != nullptr);

    std::vector<unsigned char> host(256 * 64, 1);
    unsigned char* buf = to_device(host);  // cudaMalloc: 256-byte aligned
    CUtensorMap map;
    const uint64_t dims[3] = {64, 32, 2}, strides[2] = {128, 128 * 32};
    const uint32_t box[3] = {64, 8, 1};
    REQUIRE(tma_encode_bf16_3d(&map, buf, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B) == CUDA_SUCCESS);
    REQUIRE(tma_encode_bf16_3d(&map, buf, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_NONE) == CUDA_SUCCESS);
    // The global address must be 16-byte aligned.
    REQUIRE(tma_encode_bf16_3d(&map, buf + 8, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_NONE) ==
            CUDA_ERROR_INVALID_VALUE);
    // Strides must be multiples of 16 bytes.
    const uint64_t odd_strides[2] = {136, 136 * 32};
    REQUIRE(tma_encode_bf16_3d(&map, buf, dims, odd_strides, box, CU_TENSOR_MAP_SWIZZLE_NONE) ==
            CUDA_ERROR_INVALID_VALUE);
    // Every box dimension is at most 256 elements.
    const uint64_t tall[3] = {64, 512, 1}, tall_strides[2] = {128, 128 * 512};
    const uint32_t tall_box[3] = {64, 257, 1};
    std::vector<unsigned char> big(128 * 512, 1);
    unsigned char* bigbuf = to_device(big);
    REQUIRE(tma_encode_bf16_3d(&map, bigbuf, tall, tall_strides, tall_box, CU_TENSOR_MAP_SWIZZLE_NONE) ==
            CUDA_ERROR_INVALID_VALUE);
    // The box's inner dimension is a multiple of 16 bytes ...
    const uint32_t narrow_box[3] = {4, 8, 1};
    REQUIRE(tma_encode_bf16_3d(&map, buf, dims, strides, narrow_box, CU_TENSOR_MAP_SWIZZLE_NONE) ==
            CUDA_ERROR_INVALID_VALUE);
    // ... and at most 128 bytes with the 128-byte swizzle.
    const uint64_t wide[3] = {128, 32, 2}, wide_strides[2] = {256, 256 * 32};
    const uint32_t wide_box[3] = {128, 8, 1};
    REQUIRE(tma_encode_bf16_3d(&map, buf, wide, wide_strides, wide_box, CU_TENSOR_MAP_SWIZZLE_NONE) == CUDA_SUCCESS);
    REQUIRE(tma_encode_bf16_3d(&map, buf, wide, wide_strides, wide_box, CU_TENSOR_MAP_SWIZZLE_128B) ==
            CUDA_ERROR_INVALID_VALUE);
    cudaFree(buf);
    cudaFree(bigbuf);
}

TEST_CASE("a TMA ring of 3 stages with full and empty barriers hands every tile to the consumer warps",
          "[emulator][ptx][tma]") {
    // 64 columns x 30 rows x 3 batches: 4 tiles of 8 rows per batch (the last
    // one 2 rows past the end, read as zeros), 12 tiles: 4 rounds of the ring.
    Tensor3 x(64, 30, 3, 64 * 2, 33);
    CUtensorMap map;
    const uint32_t box[3] = {kRingCols, kRingRows, 1};
    REQUIRE(tma_encode_bf16_3d(&map, x.device, x.dims, x.byte_strides(), box, CU_TENSOR_MAP_SWIZZLE_NONE) ==
            CUDA_SUCCESS);
    const int tiles_t = 4, tiles = tiles_t * 3;
    float* dout = nullptr;
    REQUIRE(cudaMalloc(&dout, tiles * kRingCols * sizeof(float)) == cudaSuccess);
    const int smem = kRingStages * kRingRows * kRingCols * 2;
    tma_ring_kernel<<<1, 32 * (1 + kRingConsumerWarps), smem>>>(map, tiles_t, tiles, dout);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    auto out = to_host(dout, tiles * kRingCols);
    for (int j = 0; j < tiles; ++j)
        for (int c = 0; c < kRingCols; ++c) {
            float want = 0.0f;
            for (int r = 0; r < kRingRows; ++r) want += bf16_value(x.at(c, kRingRows * (j % tiles_t) + r, j / tiles_t));
            INFO("tile " << j << " column " << c);
            REQUIRE(out[kRingCols * j + c] == want);
        }
    cudaFree(dout);
}

// D = A (64 x 64) B (64 x N) through four wgmma k-steps with B swizzled by TMA.
// Values are multiples of 1/8 up to 2 in magnitude, never 0, so every product
// and sum is exact in fp32 and the result must equal the product exactly.
template <int N, bool MN_MAJOR>
void check_wgmma_sw128(unsigned lbo, uint32_t seed) {
    std::mt19937 rng(seed);
    auto value = [&rng] { return float(int(rng() % 16) + 1) / 8.0f * ((rng() & 1) ? 1.0f : -1.0f); };
    std::vector<uint16_t> A(64 * 64), B(64 * N);  // row-major: A[m][k], B[k][n]
    for (auto& v : A) v = bf16_bits(value());
    for (auto& v : B) v = bf16_bits(value());
    std::vector<uint32_t> a(4 * 128 * 4, 0);
    for (int kk = 0; kk < 4; ++kk)
        for (int tid = 0; tid < 128; ++tid)
            for (int i = 0; i < 8; ++i) {
                Coord e = a_element(tid % 32, i);
                a[(128 * kk + tid) * 4 + i / 2] |= uint32_t(A[(16 * (tid / 32) + e.row) * 64 + 16 * kk + e.col])
                                                   << (16 * (i % 2));
            }
    // K-major: B's transpose, N rows of 64 k. MN-major: B itself, 64 rows of N.
    std::vector<uint16_t> g(64 * N);
    for (int k = 0; k < 64; ++k)
        for (int n = 0; n < N; ++n) (MN_MAJOR ? g[k * N + n] : g[n * 64 + k]) = B[k * N + n];
    uint16_t* dg = to_device(g);
    CUtensorMap map;
    const uint64_t dims[3] = {MN_MAJOR ? uint64_t(N) : 64u, MN_MAJOR ? 64u : uint64_t(N), 1};
    const uint64_t strides[2] = {dims[0] * 2, dims[0] * dims[1] * 2};
    const uint32_t box[3] = {64, MN_MAJOR ? 64u : uint32_t(N), 1};
    REQUIRE(tma_encode_bf16_3d(&map, dg, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B) == CUDA_SUCCESS);
    uint32_t* da = to_device(a);
    float* dout = nullptr;
    REQUIRE(cudaMalloc(&dout, 128 * (N / 2) * sizeof(float)) == cudaSuccess);
    const int smem = MN_MAJOR ? int((N / 64 - 1) * lbo + 64 * 128) : N * 128;
    wgmma_sw128_kernel<N, MN_MAJOR><<<1, 128, smem>>>(map, da, lbo, dout);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    auto out = to_host(dout, 128 * (N / 2));
    for (int tid = 0; tid < 128; ++tid) {
        const int w = tid / 32, gq = tid % 32 / 4, t = tid % 4;
        for (int j = 0; j < N / 8; ++j)
            for (int i = 0; i < 4; ++i) {
                const int row = 16 * w + gq + 8 * (i / 2), col = 8 * j + 2 * t + i % 2;
                double want = 0;
                for (int k = 0; k < 64; ++k) want += double(bf16_value(A[row * 64 + k])) * bf16_value(B[k * N + col]);
                INFO((MN_MAJOR ? "MN-major" : "K-major") << " N " << N << " lbo " << lbo << ": thread " << tid << " d"
                                                         << 4 * j + i << " = D[" << row << "][" << col << "]");
                REQUIRE(double(out[tid * (N / 2) + 4 * j + i]) == want);
            }
    }
    cudaFree(dg);
    cudaFree(da);
    cudaFree(dout);
}

TEST_CASE("wgmma with a 128-byte swizzled B written by TMA: K-major and MN-major, n64 and n128, equal A*B",
          "[emulator][ptx][tma]") {
    check_wgmma_sw128<64, false>(0, 5);
    check_wgmma_sw128<128, false>(0, 6);
    check_wgmma_sw128<64, true>(8192, 7);
    check_wgmma_sw128<128, true>(8192, 8);
    check_wgmma_sw128<128, true>(9216, 9);  // a gap between the two boxes of 64 columns
}

// D = A (64 x 64) B (64 x 64) through four wgmma k-steps with A from shared
// memory too: B swizzled by TMA, K-major or MN-major; A K-major, swizzled by
// TMA (A_SW128) or placed by the test in core matrices without swizzle (lbo,
// sbo, k-step kk at a_step * kk), the bytes between them random values that
// must not be read. Values as in check_wgmma_sw128: the product is exact.
template <bool A_SW128, bool B_MN_MAJOR>
void check_wgmma_ss(unsigned lbo, unsigned sbo, unsigned a_step, uint32_t seed) {
    std::mt19937 rng(seed);
    auto value = [&rng] { return float(int(rng() % 16) + 1) / 8.0f * ((rng() & 1) ? 1.0f : -1.0f); };
    std::vector<uint16_t> A(64 * 64), B(64 * 64);  // row-major: A[m][k], B[k][n]
    for (auto& v : A) v = bf16_bits(value());
    for (auto& v : B) v = bf16_bits(value());
    // B for map_b: K-major, B's transpose (64 rows of 64 k); MN-major, B itself.
    std::vector<uint16_t> g(64 * 64);
    for (int k = 0; k < 64; ++k)
        for (int n = 0; n < 64; ++n) (B_MN_MAJOR ? g[k * 64 + n] : g[n * 64 + k]) = B[k * 64 + n];
    uint16_t* dg = to_device(g);
    uint16_t* dA = to_device(A);
    const uint64_t dims[3] = {64, 64, 1}, strides[2] = {128, 128 * 64};
    const uint32_t box[3] = {64, 64, 1};
    CUtensorMap map_a, map_b;
    REQUIRE(tma_encode_bf16_3d(&map_b, dg, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B) == CUDA_SUCCESS);
    REQUIRE(tma_encode_bf16_3d(&map_a, dA, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B) == CUDA_SUCCESS);
    // Without swizzle: element (m, k) of k-step kk = k / 16 at
    // kk a_step + (m/8) sbo + (k%16 / 8) lbo + (m%8) 16 + (k%8) 2.
    std::vector<unsigned char> a_bytes(A_SW128 ? 16 : 4 * a_step);
    for (std::size_t i = 0; i + 1 < a_bytes.size(); i += 2) {
        const uint16_t v = random_nonzero_bf16(rng);
        a_bytes[i] = v & 0xff;
        a_bytes[i + 1] = v >> 8;
    }
    std::vector<bool> placed(a_bytes.size() / 2, false);
    if (!A_SW128)
        for (int m = 0; m < 64; ++m)
            for (int k = 0; k < 64; ++k) {
                const std::size_t o =
                    (k / 16) * a_step + (m / 8) * sbo + (k % 16 / 8) * lbo + (m % 8) * 16 + (k % 8) * 2;
                REQUIRE(o + 1 < a_bytes.size());
                REQUIRE(!placed[o / 2]);  // the layout under test has no overlaps
                placed[o / 2] = true;
                a_bytes[o] = A[m * 64 + k] & 0xff;
                a_bytes[o + 1] = A[m * 64 + k] >> 8;
            }
    unsigned char* da = to_device(a_bytes);
    float* dout = nullptr;
    REQUIRE(cudaMalloc(&dout, 128 * 32 * sizeof(float)) == cudaSuccess);
    const int smem = 8192 + int(A_SW128 ? 8192 : a_bytes.size());
    wgmma_ss_kernel<A_SW128, B_MN_MAJOR>
        <<<1, 128, smem>>>(map_a, map_b, da, int(a_bytes.size()), lbo, sbo, a_step, dout);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    auto out = to_host(dout, 128 * 32);
    for (int tid = 0; tid < 128; ++tid) {
        const int w = tid / 32, gq = tid % 32 / 4, t = tid % 4;
        for (int j = 0; j < 8; ++j)
            for (int i = 0; i < 4; ++i) {
                const int row = 16 * w + gq + 8 * (i / 2), col = 8 * j + 2 * t + i % 2;
                double want = 0;
                for (int k = 0; k < 64; ++k) want += double(bf16_value(A[row * 64 + k])) * bf16_value(B[k * 64 + col]);
                INFO("A " << (A_SW128 ? "swizzled" : "without swizzle") << " lbo " << lbo << " sbo " << sbo << ", B "
                          << (B_MN_MAJOR ? "MN-major" : "K-major") << ": thread " << tid << " d" << 4 * j + i << " = D["
                          << row << "][" << col << "]");
                REQUIRE(double(out[tid * 32 + 4 * j + i]) == want);
            }
    }
    cudaFree(dg);
    cudaFree(dA);
    cudaFree(da);
    cudaFree(dout);
}

TEST_CASE(
    "wgmma m64n64k16 with A from shared memory: A swizzled by TMA or in core matrices, B K-major or "
    "MN-major, equal A*B",
    "[emulator][ptx][tma]") {
    check_wgmma_ss<true, false>(0, 1024, 0, 10);
    check_wgmma_ss<true, true>(0, 1024, 0, 11);
    // Core matrices adjacent in M packed first (sbo 128), or the two K halves
    // side by side (lbo 128), or both with gaps (padding read as garbage if misplaced).
    check_wgmma_ss<false, false>(1024, 128, 2048, 12);
    check_wgmma_ss<false, true>(128, 256, 2048, 13);
    check_wgmma_ss<false, false>(1152, 144, 2560, 14);
}

TEST_CASE("setmaxnreg: accepted by both warpgroups, no effect on the results", "[emulator][ptx]") {
    int* dout = nullptr;
    REQUIRE(cudaMalloc(&dout, 256 * sizeof(int)) == cudaSuccess);
    setmaxnreg_kernel<<<1, 256>>>(dout);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    auto out = to_host(dout, 256);
    for (int tid = 0; tid < 256; ++tid) REQUIRE(out[tid] == tid + 1);
    cudaFree(dout);
}
