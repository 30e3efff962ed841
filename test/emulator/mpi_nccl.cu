// The NCCL stand-in under mpirun: every collective against values each rank can
// compute for all ranks. Run with -np 1, 2 and 4 (test/emulator/run-nccl). Only
// rank 0 prints Catch2's report; the exit status says whether any rank failed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <mpi.h>
#include <nccl.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

namespace {

ncclComm_t comm = nullptr;
int world_rank = 0, world_size = 1;

float value(int rank, std::size_t i) { return float(rank + 1) * 0.5f + float(i % 7); }

template <class T>
T* device_copy(const std::vector<T>& h) {
    T* d = nullptr;
    REQUIRE(cudaMalloc(&d, h.size() * sizeof(T) + 1) == cudaSuccess);
    REQUIRE(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
    return d;
}
template <class T>
std::vector<T> host_copy(const T* d, std::size_t n) {
    std::vector<T> h(n);
    REQUIRE(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
}

__global__ void fill_rank(float* p, int n, int rank) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = float(rank * 1000 + i);
}

}  // namespace

TEST_CASE("the communicator from a unique id has every rank", "[nccl]") {
    int n = 0, r = -1;
    REQUIRE(ncclCommCount(comm, &n) == ncclSuccess);
    REQUIRE(ncclCommUserRank(comm, &r) == ncclSuccess);
    REQUIRE(n == world_size);
    REQUIRE(r == world_rank);
}

TEST_CASE("all-reduce: sum, average, max, min and product of fp32", "[nccl]") {
    const std::size_t n = 37;
    std::vector<float> mine(n);
    for (std::size_t i = 0; i < n; ++i) mine[i] = value(world_rank, i);
    float* send = device_copy(mine);
    float* recv = nullptr;
    REQUIRE(cudaMalloc(&recv, n * sizeof(float)) == cudaSuccess);
    for (ncclRedOp_t op : {ncclSum, ncclAvg, ncclMax, ncclMin, ncclProd}) {
        REQUIRE(ncclAllReduce(send, recv, n, ncclFloat32, op, comm, 0) == ncclSuccess);
        auto got = host_copy(recv, n);
        for (std::size_t i = 0; i < n; ++i) {
            double want = value(0, i);
            for (int r = 1; r < world_size; ++r) {
                double v = value(r, i);
                if (op == ncclSum || op == ncclAvg) want += v;
                if (op == ncclMax) want = std::max(want, v);
                if (op == ncclMin) want = std::min(want, v);
                if (op == ncclProd) want *= v;
            }
            if (op == ncclAvg) want /= world_size;
            INFO("op " << op << " element " << i);
            REQUIRE(got[i] == Approx(want).epsilon(1e-6));
        }
    }
    cudaFree(send);
    cudaFree(recv);
}

TEST_CASE("all-reduce of bf16 in place, and of int32", "[nccl]") {
    const std::size_t n = 16;
    std::vector<__nv_bfloat16> b(n);
    std::vector<int> k(n);
    for (std::size_t i = 0; i < n; ++i) {
        b[i] = __float2bfloat16(float(world_rank + i));
        k[i] = int(world_rank * 10 + i);
    }
    __nv_bfloat16* db = device_copy(b);
    int* dk = device_copy(k);
    REQUIRE(ncclAllReduce(db, db, n, ncclBfloat16, ncclSum, comm, 0) == ncclSuccess);
    REQUIRE(ncclAllReduce(dk, dk, n, ncclInt32, ncclMax, comm, 0) == ncclSuccess);
    auto gb = host_copy(db, n);
    auto gk = host_copy(dk, n);
    for (std::size_t i = 0; i < n; ++i) {
        float want = 0;
        for (int r = 0; r < world_size; ++r) want += float(r + i);
        REQUIRE(__bfloat162float(gb[i]) == __bfloat162float(__float2bfloat16(want)));
        REQUIRE(gk[i] == int((world_size - 1) * 10 + i));
    }
    cudaFree(db);
    cudaFree(dk);
}

TEST_CASE("reduce-scatter gives each rank its reduced slice", "[nccl]") {
    const std::size_t per = 5, n = per * world_size;
    std::vector<float> mine(n);
    for (std::size_t i = 0; i < n; ++i) mine[i] = value(world_rank, i);
    float* send = device_copy(mine);
    float* recv = nullptr;
    REQUIRE(cudaMalloc(&recv, per * sizeof(float)) == cudaSuccess);
    REQUIRE(ncclReduceScatter(send, recv, per, ncclFloat32, ncclSum, comm, 0) == ncclSuccess);
    auto got = host_copy(recv, per);
    for (std::size_t i = 0; i < per; ++i) {
        double want = 0;
        for (int r = 0; r < world_size; ++r) want += value(r, world_rank * per + i);
        REQUIRE(got[i] == Approx(want));
    }
    cudaFree(send);
    cudaFree(recv);
}

TEST_CASE("reduce writes the sum on the root only, in place", "[nccl]") {
    const std::size_t n = 7;
    std::vector<float> mine(n);
    for (std::size_t i = 0; i < n; ++i) mine[i] = value(world_rank, i);
    float* buf = device_copy(mine);
    const int root = world_size - 1;
    REQUIRE(ncclReduce(buf, buf, n, ncclFloat32, ncclSum, root, comm, 0) == ncclSuccess);
    auto got = host_copy(buf, n);
    for (std::size_t i = 0; i < n; ++i) {
        double want = 0;
        for (int r = 0; r < world_size; ++r) want += value(r, i);
        if (world_rank == root) REQUIRE(got[i] == Approx(want));
        else REQUIRE(got[i] == mine[i]);
    }
    REQUIRE(ncclReduce(buf, buf, n, ncclFloat32, ncclSum, world_size, comm, 0) == ncclInvalidArgument);
    cudaFree(buf);
}

TEST_CASE("all-gather concatenates in rank order; broadcast copies the root", "[nccl]") {
    const std::size_t per = 6;
    std::vector<float> mine(per);
    for (std::size_t i = 0; i < per; ++i) mine[i] = value(world_rank, i) * 3.0f;
    float* send = device_copy(mine);
    float* recv = nullptr;
    REQUIRE(cudaMalloc(&recv, per * world_size * sizeof(float)) == cudaSuccess);
    REQUIRE(ncclAllGather(send, recv, per, ncclFloat32, comm, 0) == ncclSuccess);
    auto got = host_copy(recv, per * world_size);
    for (int r = 0; r < world_size; ++r)
        for (std::size_t i = 0; i < per; ++i) REQUIRE(got[r * per + i] == value(r, i) * 3.0f);
    int root = world_size - 1;
    REQUIRE(ncclBroadcast(send, recv, per, ncclFloat32, root, comm, 0) == ncclSuccess);
    got = host_copy(recv, per);
    for (std::size_t i = 0; i < per; ++i) REQUIRE(got[i] == value(root, i) * 3.0f);
    cudaFree(send);
    cudaFree(recv);
}

TEST_CASE("grouped collectives on a stream follow the kernel that wrote their input", "[nccl]") {
    const int n = 64;
    float *x = nullptr, *y = nullptr;
    REQUIRE(cudaMalloc(&x, n * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMalloc(&y, n * sizeof(float)) == cudaSuccess);
    cudaStream_t s;
    REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
    fill_rank<<<1, n, 0, s>>>(x, n, world_rank);
    REQUIRE(ncclGroupStart() == ncclSuccess);
    REQUIRE(ncclAllReduce(x, y, n / 2, ncclFloat32, ncclSum, comm, s) == ncclSuccess);
    REQUIRE(ncclAllReduce(x + n / 2, y + n / 2, n / 2, ncclFloat32, ncclMax, comm, s) == ncclSuccess);
    REQUIRE(ncclGroupEnd() == ncclSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    auto got = host_copy(y, n);
    for (int i = 0; i < n; ++i) {
        double want = 0;
        if (i < n / 2)
            for (int r = 0; r < world_size; ++r) want += r * 1000 + i;
        else want = (world_size - 1) * 1000 + i;
        REQUIRE(got[i] == Approx(want));
    }
    REQUIRE(ncclGroupEnd() == ncclInvalidUsage);  // not inside a group
    cudaStreamDestroy(s);
    cudaFree(x);
    cudaFree(y);
}

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    if (world_rank != 0 && !std::freopen("/dev/null", "w", stdout)) return 1;
    ncclUniqueId id;
    if (world_rank == 0) ncclGetUniqueId(&id);
    MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
    if (ncclCommInitRank(&comm, world_size, id, world_rank) != ncclSuccess) {
        std::fprintf(stderr, "rank %d: ncclCommInitRank failed\n", world_rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int failed = Catch::Session().run(argc, argv);
    ncclCommDestroy(comm);
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (world_rank == 0 && any && !failed) std::printf("another rank failed (run it alone to see its report)\n");
    MPI_Finalize();
    return any ? 1 : 0;
}
