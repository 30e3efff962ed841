// The TCP group that joins ranks without MPI (parallel/tcp_group.h): each test
// forks the ranks as processes of this machine; every child checks its own
// results and exits 0 only if all held, or 10 + a code saying what failed.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel/comm.h"
#include "parallel/tcp_group.h"
#include "parallel/zero1.h"
#include "test/free_port.h"

using llama::RendezvousSpec;
using llama::TcpGroup;

namespace {

// Runs body(rank) in `world` forked processes; returns each one's exit status.
std::vector<int> run_ranks(int world, const std::function<int(int)>& body) {
    std::vector<pid_t> pids;
    for (int r = 0; r < world; ++r) {
        pid_t pid = fork();
        if (pid == 0) {
            int code = 99;
            try {
                code = body(r);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "rank %d: %s\n", r, e.what());
                code = 98;
            }
            std::fflush(stderr);
            _exit(code);
        }
        pids.push_back(pid);
    }
    std::vector<int> status;
    for (pid_t pid : pids) {
        int st = 0;
        waitpid(pid, &st, 0);
        status.push_back(WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    return status;
}

std::string temp_path(const std::string& name) {
    return "/tmp/llama_tcp_group_" + std::to_string(getpid()) + "_" + name;
}

// The value rank r contributes at index i: fractions whose float sum depends on the order.
float value(int r, std::size_t i) { return float(1.0 / (3.0 + r + 0.37 * double(i))); }

// Every collective on `world` ranks; 0 when every result is right.
int check_collectives(const RendezvousSpec& spec, int rank, int world) {
    TcpGroup g(spec, rank, world, "job-1", 20);
    if (g.rank() != rank || g.world() != world) return 10;
    // Broadcast.
    char word[8] = "-------";
    if (rank == 0) std::snprintf(word, sizeof word, "rank0!");
    g.broadcast(word, sizeof word);
    if (std::string(word) != "rank0!") return 11;
    // Float sums, larger than one chunk, added in rank order: the same bits as a serial sum.
    const std::size_t n = (std::size_t(1) << 20) + 37;
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = value(rank, i);
    g.allreduce_sum(x.data(), n);
    for (std::size_t i = 0; i < n; i += 4099) {
        float want = value(0, i);
        for (int r = 1; r < world; ++r) want += value(r, i);
        if (x[i] != want) return 12;
    }
    double d[2] = {double(rank), 0.5};
    g.allreduce_sum(d, 2);
    if (d[0] != world * (world - 1) / 2.0 || d[1] != 0.5 * world) return 13;
    int m = 100 + rank * 3;
    g.allreduce_max(&m, 1);
    if (m != 100 + (world - 1) * 3) return 14;
    // All-gather of blocks of 5.
    std::vector<float> padded(std::size_t(world) * 5, -1.0f);
    for (int i = 0; i < 5; ++i) padded[std::size_t(rank) * 5 + i] = float(rank * 10 + i);
    g.all_gather(padded.data(), 5);
    for (int r = 0; r < world; ++r)
        for (int i = 0; i < 5; ++i)
            if (padded[std::size_t(r) * 5 + i] != float(r * 10 + i)) return 15;
    g.barrier();
    return 0;
}

}  // namespace

TEST_CASE("TCP group: rendezvous specs parse, and bad ones are refused saying why", "[tcp-group]") {
    RendezvousSpec t = RendezvousSpec::parse("tcp:node-17.cluster:29500");
    CHECK(t.kind == RendezvousSpec::Kind::Tcp);
    CHECK(t.host == "node-17.cluster");
    CHECK(t.port == 29500);
    RendezvousSpec f = RendezvousSpec::parse("file:/shared/job/rendezvous");
    CHECK(f.kind == RendezvousSpec::Kind::File);
    CHECK(f.path == "/shared/job/rendezvous");
    for (const char* bad : {"tcp:host", "tcp::80", "tcp:host:0", "tcp:host:99999", "tcp:host:80x", "file:", "mpi:1"})
        CHECK_THROWS_WITH(RendezvousSpec::parse(bad),
                          Catch::Contains(bad) && (Catch::Contains("expected") || Catch::Contains("port") ||
                                                   Catch::Contains("needs a path")));
}

TEST_CASE("TCP group: broadcast, sums in rank order, max, all-gather and barrier on 1, 2 and 4 ranks", "[tcp-group]") {
    for (int world : {1, 2, 4}) {
        INFO(world << " ranks over tcp");
        RendezvousSpec tcp = RendezvousSpec::parse("tcp:127.0.0.1:" + std::to_string(testport::free_port()));
        for (int st : run_ranks(world, [&](int r) { return check_collectives(tcp, r, world); })) CHECK(st == 0);
        INFO(world << " ranks through a file");
        RendezvousSpec file = RendezvousSpec::parse("file:" + temp_path("addr" + std::to_string(world)));
        for (int st : run_ranks(world, [&](int r) { return check_collectives(file, r, world); })) CHECK(st == 0);
        CHECK(access(file.path.c_str(), F_OK) != 0);  // removed once every rank joined
    }
}

TEST_CASE("TCP group: a stale address file of another job is ignored", "[tcp-group]") {
    const std::string path = temp_path("stale");
    {
        std::FILE* f = std::fopen(path.c_str(), "w");
        REQUIRE(f);
        std::fprintf(f, "127.0.0.1 1 12345\n");  // another job's rank 0, long gone
        std::fclose(f);
    }
    RendezvousSpec file = RendezvousSpec::parse("file:" + path);
    auto st = run_ranks(2, [&](int r) {
        if (r == 0) usleep(500000);  // the other rank reads the stale file first
        return check_collectives(file, r, 2);
    });
    for (int s : st) CHECK(s == 0);
    std::remove(path.c_str());
}

TEST_CASE("TCP group: every wait is bounded and every failure says who and what", "[tcp-group]") {
    SECTION("rank 0 alone: the others never join") {
        RendezvousSpec tcp = RendezvousSpec::parse("tcp:127.0.0.1:" + std::to_string(testport::free_port()));
        CHECK_THROWS_WITH(TcpGroup(tcp, 0, 3, "", 1.0),
                          Catch::Contains("after 1 s only 1 of 3 ranks had joined (missing: 1, 2)"));
    }
    SECTION("a rank alone: rank 0 never listens") {
        RendezvousSpec tcp = RendezvousSpec::parse("tcp:127.0.0.1:" + std::to_string(testport::free_port()));
        CHECK_THROWS_WITH(TcpGroup(tcp, 1, 2, "", 1.0),
                          Catch::Contains("rank 1 gave up after 1 s: cannot connect to rank 0 at 127.0.0.1:"));
        RendezvousSpec file = RendezvousSpec::parse("file:" + temp_path("never"));
        CHECK_THROWS_WITH(TcpGroup(file, 1, 2, "", 1.0),
                          Catch::Contains("no address of this job's rank 0 in " + file.path));
    }
    SECTION("ranks that disagree on the world size") {
        RendezvousSpec tcp = RendezvousSpec::parse("tcp:127.0.0.1:" + std::to_string(testport::free_port()));
        auto st = run_ranks(2, [&](int r) {
            try {
                TcpGroup g(tcp, r, r == 0 ? 2 : 3, "", 10);
            } catch (const std::exception& e) {
                const std::string what = e.what();
                if (r == 0)
                    return what.find("rank 1 says the world has 3 ranks, rank 0 says 2") != std::string::npos ? 0 : 20;
                return what.find("rank 0 expects another number of ranks than 3") != std::string::npos ? 0 : 21;
            }
            return 22;
        });
        for (int s : st) CHECK(s == 0);
    }
    SECTION("a rank that exits: the collective fails at once on the others") {
        RendezvousSpec tcp = RendezvousSpec::parse("tcp:127.0.0.1:" + std::to_string(testport::free_port()));
        auto st = run_ranks(3, [&](int r) {
            TcpGroup g(tcp, r, 3, "", 10, /*op_timeout_s=*/60);
            if (r == 2) return 0;  // gone without a word
            try {
                float x = 1;
                g.allreduce_sum(&x, 1);
            } catch (const std::exception& e) {
                const std::string what = e.what();
                if (r == 0) return what.find("rank 2 closed its connection") != std::string::npos ? 0 : 30;
                return what.find("rank 0 closed its connection") != std::string::npos ? 0 : 31;
            }
            return 32;
        });
        for (int s : st) CHECK(s == 0);
    }
    SECTION("a rank that hangs: the collective times out") {
        RendezvousSpec tcp = RendezvousSpec::parse("tcp:127.0.0.1:" + std::to_string(testport::free_port()));
        auto st = run_ranks(2, [&](int r) {
            TcpGroup g(tcp, r, 2, "", 10, /*op_timeout_s=*/1);
            if (r == 1) {
                sleep(3);
                return 0;
            }
            try {
                g.barrier();
            } catch (const std::exception& e) {
                return std::string(e.what()).find("waited more than 1 s for rank 1") != std::string::npos ? 0 : 40;
            }
            return 41;
        });
        for (int s : st) CHECK(s == 0);
    }
}

// This suite is built without LLAMA_MPI: the Comm the trainers use in builds without MPI.
TEST_CASE("Comm without MPI: joined by --rendezvous from RANK and WORLD_SIZE; refused without one", "[tcp-group]") {
    const std::string spec = "tcp:127.0.0.1:" + std::to_string(testport::free_port());
    auto st = run_ranks(3, [&](int r) {
        setenv("RANK", std::to_string(r).c_str(), 1);
        setenv("WORLD_SIZE", "3", 1);
        setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
        const llama::Comm c = llama::Comm::init(nullptr, nullptr, spec, 20);
        if (c.rank != r || c.world != 3 || c.local_rank != r) return 50;
        if (c.sum(r + 0.25) != 3.75 || c.max(7 - r) != 7) return 51;
        // ZeRO-1's host path: shards of 64, every rank's sum in its own shard, then gathered.
        const llama::Shard shard = llama::Shard::of(150, r, 3);
        std::vector<float> padded(size_t(shard.padded), 0.0f);
        for (int i = 0; i < 150; ++i) padded[size_t(i)] = float(i * (r + 1));
        c.reduce_scatter_sum(padded.data(), shard.size);
        for (long long i = shard.begin; i < shard.end(); ++i)
            if (padded[size_t(i)] != float(i * 6)) return 52;
        for (long long i = shard.begin; i < shard.end(); ++i) padded[size_t(i)] = -float(i);
        c.all_gather(padded.data(), shard.size);
        for (int i = 0; i < 150; ++i)
            if (padded[size_t(i)] != -float(i)) return 53;
        c.barrier();
        return 0;
    });
    for (int s : st) CHECK(s == 0);
    // A launch of two ranks with no rendezvous: this build cannot join them.
    auto refused = run_ranks(1, [&](int) {
        setenv("SLURM_PROCID", "0", 1);
        setenv("SLURM_NTASKS", "2", 1);
        std::freopen("/dev/null", "w", stderr);
        llama::Comm::init(nullptr, nullptr);
        return 0;  // not reached
    });
    CHECK(refused[0] == 1);
}

// ZeRO-1's bookkeeping (parallel/zero1.h), which both builds follow: over any
// world size, the owners of every gradient range and the owned pieces of every
// tensor cover each element of the buffer exactly once, on the rank that owns it.
TEST_CASE("Zero1: the owners of gradient ranges and the owned tensor pieces partition the buffer", "[tcp-group]") {
    const llama::ModelConfig config = llama::preset("tiny");
    const llama::ParamLayout layout(config);
    const long long total = layout.total();
    for (int world : {1, 2, 3, 7, 64}) {
        std::vector<int> updated(size_t(total), 0), reduced(size_t(total), 0);
        for (int r = 0; r < world; ++r) {
            const llama::Zero1 z(total, r, world, true);
            CHECK(z.on() == (world > 1));
            z.for_each_owned_piece(layout, [&](const llama::ParamTensor& t, long long lo, long long hi, long long s) {
                CHECK(lo >= t.offset);
                CHECK(hi <= t.offset + t.numel);
                CHECK(s == lo - z.shard().begin);
                for (long long i = lo; i < hi; ++i) updated[size_t(i)] += 1;
            });
            // Every bucket of 1000 elements, reduced to its owners: rank r counts what it receives.
            for (long long b = 0; b < total; b += 1000)
                z.owners(b, std::min(1000LL, total - b), [&](int owner, long long lo, long long hi) {
                    CHECK(lo < hi);
                    if (owner != r) return;
                    for (long long i = lo; i < hi; ++i) reduced[size_t(i)] += 1;
                });
        }
        for (long long i = 0; i < total; ++i) {
            INFO("world " << world << ", element " << i);
            REQUIRE(updated[size_t(i)] == 1);
            REQUIRE(reduced[size_t(i)] == 1);
        }
        long long covered = 0;
        for (const auto& [r, s] : llama::Zero1::parts(total, world)) covered += s.owned();
        CHECK(covered == total);
    }
}
