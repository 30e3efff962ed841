// The NCCL stand-in, carried over MPI (one process per rank). Reductions are done
// by every rank alike, in rank order and in float (double for 64-bit types), so all
// ranks get the same bits.
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "nccl.h"
#include "emulator/src/internal.h"

struct ncclComm {
    MPI_Comm mpi;
    int rank, size;
};

namespace {

std::size_t type_size(ncclDataType_t t) {
    switch (t) {
        case ncclInt8:
        case ncclUint8:
            return 1;
        case ncclFloat16:
        case ncclBfloat16:
            return 2;
        case ncclInt32:
        case ncclUint32:
        case ncclFloat32:
            return 4;
        default:
            return 8;
    }
}
bool valid_type(int t) { return t >= ncclInt8 && t <= ncclBfloat16; }
bool valid_op(int op) { return op >= ncclSum && op <= ncclAvg; }

double load(const unsigned char* p, ncclDataType_t t, std::size_t i) {
    switch (t) {
        case ncclInt8:
            return reinterpret_cast<const int8_t*>(p)[i];
        case ncclUint8:
            return p[i];
        case ncclInt32:
            return reinterpret_cast<const int32_t*>(p)[i];
        case ncclUint32:
            return reinterpret_cast<const uint32_t*>(p)[i];
        case ncclInt64:
            return double(reinterpret_cast<const int64_t*>(p)[i]);
        case ncclUint64:
            return double(reinterpret_cast<const uint64_t*>(p)[i]);
        case ncclFloat16:
            return __half2float(reinterpret_cast<const __half*>(p)[i]);
        case ncclFloat32:
            return reinterpret_cast<const float*>(p)[i];
        case ncclFloat64:
            return reinterpret_cast<const double*>(p)[i];
        default:
            return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(p)[i]);
    }
}
void store(unsigned char* p, ncclDataType_t t, std::size_t i, double v) {
    switch (t) {
        case ncclInt8:
            reinterpret_cast<int8_t*>(p)[i] = int8_t(v);
            break;
        case ncclUint8:
            p[i] = uint8_t(v);
            break;
        case ncclInt32:
            reinterpret_cast<int32_t*>(p)[i] = int32_t(v);
            break;
        case ncclUint32:
            reinterpret_cast<uint32_t*>(p)[i] = uint32_t(v);
            break;
        case ncclInt64:
            reinterpret_cast<int64_t*>(p)[i] = int64_t(v);
            break;
        case ncclUint64:
            reinterpret_cast<uint64_t*>(p)[i] = uint64_t(v);
            break;
        case ncclFloat16:
            reinterpret_cast<__half*>(p)[i] = __float2half(float(v));
            break;
        case ncclFloat32:
            reinterpret_cast<float*>(p)[i] = float(v);
            break;
        case ncclFloat64:
            reinterpret_cast<double*>(p)[i] = v;
            break;
        default:
            reinterpret_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(float(v));
            break;
    }
}
bool float_type(ncclDataType_t t) { return t == ncclFloat16 || t == ncclFloat32 || t == ncclBfloat16; }

// Reduces element i of every rank's block (all[r * n + i]) in rank order.
double reduce_element(const std::vector<unsigned char>& all, std::size_t n, int size, ncclDataType_t t, ncclRedOp_t op,
                      std::size_t i) {
    const unsigned char* base = all.data();
    std::size_t bytes = n * type_size(t);
    if (float_type(t)) {
        float acc = float(load(base, t, i));
        for (int r = 1; r < size; ++r) {
            float v = float(load(base + r * bytes, t, i));
            switch (op) {
                case ncclProd:
                    acc *= v;
                    break;
                case ncclMax:
                    acc = v > acc ? v : acc;
                    break;
                case ncclMin:
                    acc = v < acc ? v : acc;
                    break;
                default:
                    acc += v;
                    break;
            }
        }
        if (op == ncclAvg) acc /= float(size);
        return acc;
    }
    double acc = load(base, t, i);
    for (int r = 1; r < size; ++r) {
        double v = load(base + r * bytes, t, i);
        switch (op) {
            case ncclProd:
                acc *= v;
                break;
            case ncclMax:
                acc = v > acc ? v : acc;
                break;
            case ncclMin:
                acc = v < acc ? v : acc;
                break;
            default:
                acc += v;
                break;
        }
    }
    if (op == ncclAvg) acc /= size;
    return acc;
}

// Every rank's `bytes` from `send`, concatenated in rank order.
std::vector<unsigned char> gather_all(const void* send, std::size_t bytes, ncclComm* c) {
    std::vector<unsigned char> all(bytes * std::size_t(c->size));
    MPI_Allgather(send, int(bytes), MPI_BYTE, all.data(), int(bytes), MPI_BYTE, c->mpi);
    return all;
}

bool valid_comm(ncclComm_t c) { return c != nullptr; }

}  // namespace

ncclResult_t ncclGetVersion(int* version) {
    if (!version) return ncclInvalidArgument;
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
    if (!id) return ncclInvalidArgument;
    std::random_device rd;
    std::mt19937_64 g((uint64_t(rd()) << 32) ^ rd());
    for (char& ch : id->internal) ch = char(g());
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
    if (!comm || nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {  // the program must call MPI_Init
        std::fprintf(stderr,
                     "emulated NCCL: ncclCommInitRank carries its collectives over MPI, but MPI is not "
                     "initialised (start the ranks with mpirun)\n");
        return ncclInvalidUsage;
    }
    // Processes that pass the same id form one communicator (collective over MPI_COMM_WORLD).
    uint32_t hash = 2166136261u;
    for (char ch : id.internal) hash = (hash ^ uint8_t(ch)) * 16777619u;
    MPI_Comm mpi;
    if (MPI_Comm_split(MPI_COMM_WORLD, int(hash & 0x7fffffff), rank, &mpi) != MPI_SUCCESS) return ncclSystemError;
    int size = 0, me = 0;
    MPI_Comm_size(mpi, &size);
    MPI_Comm_rank(mpi, &me);
    if (size != nranks || me != rank) {
        MPI_Comm_free(&mpi);
        return ncclInvalidUsage;
    }
    *comm = new ncclComm{mpi, rank, size};
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (!valid_comm(comm)) return ncclInvalidArgument;
    cudaDeviceSynchronize();
    MPI_Comm_free(&comm->mpi);
    delete comm;
    return ncclSuccess;
}
ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
    if (!valid_comm(comm) || !count) return ncclInvalidArgument;
    *count = comm->size;
    return ncclSuccess;
}
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
    if (!valid_comm(comm) || !rank) return ncclInvalidArgument;
    *rank = comm->rank;
    return ncclSuccess;
}
ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int* device) {
    if (!valid_comm(comm) || !device) return ncclInvalidArgument;
    *device = 0;
    return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t r) {
    switch (r) {
        case ncclSuccess:
            return "no error";
        case ncclUnhandledCudaError:
            return "unhandled cuda error";
        case ncclSystemError:
            return "unhandled system error";
        case ncclInternalError:
            return "internal error";
        case ncclInvalidArgument:
            return "invalid argument";
        case ncclInvalidUsage:
            return "invalid usage";
        case ncclRemoteError:
            return "remote process exited or there was a network error";
        case ncclInProgress:
            return "NCCL operation in progress";
        default:
            return "unknown result code";
    }
}

// Collectives are queued on their streams in call order, so a group needs no
// more than to be well nested.
namespace {
int group_depth = 0;
}
ncclResult_t ncclGroupStart() {
    ++group_depth;
    return ncclSuccess;
}
ncclResult_t ncclGroupEnd() {
    if (group_depth == 0) return ncclInvalidUsage;
    --group_depth;
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* send, void* recv, std::size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
    if (!valid_comm(comm) || !valid_type(type) || !valid_op(op) || (count && (!send || !recv)))
        return ncclInvalidArgument;
    emu::enqueue_host_work(stream, [=] {
        std::vector<unsigned char> all = gather_all(send, count * type_size(type), comm);
        for (std::size_t i = 0; i < count; ++i)
            store(static_cast<unsigned char*>(recv), type, i, reduce_element(all, count, comm->size, type, op, i));
    });
    return ncclSuccess;
}

// Only the root's `recv` is written (in place on the others leaves their input as it was).
ncclResult_t ncclReduce(const void* send, void* recv, std::size_t count, ncclDataType_t type, ncclRedOp_t op, int root,
                        ncclComm_t comm, cudaStream_t stream) {
    if (!valid_comm(comm) || !valid_type(type) || !valid_op(op) || root < 0 || root >= comm->size ||
        (count && (!send || (comm->rank == root && !recv))))
        return ncclInvalidArgument;
    emu::enqueue_host_work(stream, [=] {
        std::vector<unsigned char> all = gather_all(send, count * type_size(type), comm);
        if (comm->rank != root) return;
        for (std::size_t i = 0; i < count; ++i)
            store(static_cast<unsigned char*>(recv), type, i, reduce_element(all, count, comm->size, type, op, i));
    });
    return ncclSuccess;
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, std::size_t recvcount, ncclDataType_t type, ncclRedOp_t op,
                               ncclComm_t comm, cudaStream_t stream) {
    if (!valid_comm(comm) || !valid_type(type) || !valid_op(op) || (recvcount && (!send || !recv)))
        return ncclInvalidArgument;
    emu::enqueue_host_work(stream, [=] {
        std::size_t n = recvcount * std::size_t(comm->size);
        std::vector<unsigned char> all = gather_all(send, n * type_size(type), comm);
        for (std::size_t i = 0; i < recvcount; ++i)
            store(static_cast<unsigned char*>(recv), type, i,
                  reduce_element(all, n, comm->size, type, op, std::size_t(comm->rank) * recvcount + i));
    });
    return ncclSuccess;
}

ncclResult_t ncclAllGather(const void* send, void* recv, std::size_t sendcount, ncclDataType_t type, ncclComm_t comm,
                           cudaStream_t stream) {
    if (!valid_comm(comm) || !valid_type(type) || (sendcount && (!send || !recv))) return ncclInvalidArgument;
    emu::enqueue_host_work(stream, [=] {
        std::size_t bytes = sendcount * type_size(type);
        std::vector<unsigned char> all = gather_all(send, bytes, comm);
        std::memcpy(recv, all.data(), all.size());
    });
    return ncclSuccess;
}

ncclResult_t ncclBroadcast(const void* send, void* recv, std::size_t count, ncclDataType_t type, int root,
                           ncclComm_t comm, cudaStream_t stream) {
    if (!valid_comm(comm) || !valid_type(type) || root < 0 || root >= comm->size || (count && !recv))
        return ncclInvalidArgument;
    emu::enqueue_host_work(stream, [=] {
        std::size_t bytes = count * type_size(type);
        std::vector<unsigned char> buf(bytes);
        if (comm->rank == root) std::memcpy(buf.data(), send, bytes);
        MPI_Bcast(buf.data(), int(bytes), MPI_BYTE, root, comm->mpi);
        std::memcpy(recv, buf.data(), bytes);
    });
    return ncclSuccess;
}
