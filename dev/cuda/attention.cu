// Causal grouped-query attention forward (out, log-sum-exp) and backward (dq,
// dk, dv): the kernels of kernels/attention.cuh against the CPU reference
// (reference/ops.h) on random bf16 inputs in the fused QKV layout, at several
// shapes (lengths that are not a multiple of any tile, one and several query
// heads per KV head, D = 64 and 128), outputs poisoned before each launch.
// With --bench, timed, with FLOPs counted as FlashAttention counts them
// (forward 4*B*H*T^2*D, halved for causal; backward 2.5 times the forward).
// Documents packed into the sequences (--docs L1,L2,...: documents of these
// lengths from position 0, the rest of the sequence one more document; the
// list rotated by one for each further sequence of the batch) are checked
// against the reference's block-diagonal causal mask, and the kernels count
// the tiles they compute: the line "tiles computed" gives, per kernel, the
// tiles with the documents over the tiles of plain causal attention.
//
//   attention [--version N] [--bench] [B T H KV D]
//   attention [--version N] [--bench] --batch B --seq T --heads H --kv-heads KV --head-dim D
//             [--docs L1,L2,...] [--no-reference] [--dump DIR]
//   attention --launch-info    (no GPU needed) each kernel's threads per block and
//                              dynamic shared memory, for dev/perf-report
// Without --version every version is checked. --no-reference skips the CPU
// reference (long sequences, for the benchmark); --dump writes the inputs and
// outputs of one shape as raw float32 files (qkv, dout, out, lse, dqkv) for
// dev/attention-vs-sdpa.
//   attention --list-versions  the versions (kernels/attention.cuh's table), one per line
// Versions that need another GPU than this one (3 and 4: sm_90) are skipped.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "dev/cuda/dev_common.h"
#include "kernels/attention.cuh"
#include "reference/ops.h"

struct Shape {
    int B, T, H, KV, D;
    std::vector<int> docs = {};  // document lengths (--docs); empty: one document per sequence
};

// Each token's document start ([B*T], as reference/ops.h: rope_position reads
// them) for the lengths of --docs, the list rotated by b for sequence b.
static std::vector<int> doc_starts_of(const Shape& sh) {
    std::vector<int> starts(size_t(sh.B) * sh.T, 0);
    if (sh.docs.empty()) return starts;
    for (int b = 0; b < sh.B; ++b) {
        int start = 0, next = 0;  // the current document's start, and where the next begins
        for (int t = 0, i = 0; t < sh.T; ++t) {
            if (t == next) {
                start = t;
                const bool listed = i < int(sh.docs.size());
                next = listed ? t + sh.docs[(b + i++) % sh.docs.size()] : sh.T;
            }
            starts[size_t(b) * sh.T + t] = start;
        }
    }
    return starts;
}

// The documents of a shape in device memory, with the kernels' tile counters.
struct DeviceDocs {
    int* start = nullptr;
    int* end = nullptr;
    unsigned long long* tiles = nullptr;
    explicit DeviceDocs(const Shape& sh) {
        const size_t n = size_t(sh.B) * sh.T;
        const std::vector<int> s = doc_starts_of(sh);
        std::vector<int> e(n);
        attention_doc_ends(e.data(), s.data(), sh.B, sh.T);
        CUDA_CHECK(cudaMalloc(&start, n * sizeof(int)));
        CUDA_CHECK(cudaMalloc(&end, n * sizeof(int)));
        CUDA_CHECK(cudaMalloc(&tiles, 3 * sizeof(unsigned long long)));
        CUDA_CHECK(cudaMemcpy(start, s.data(), n * sizeof(int), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(end, e.data(), n * sizeof(int), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemset(tiles, 0, 3 * sizeof(unsigned long long)));
    }
    ~DeviceDocs() {
        cudaFree(start);
        cudaFree(end);
        cudaFree(tiles);
    }
    DeviceDocs(const DeviceDocs&) = delete;
    DeviceDocs& operator=(const DeviceDocs&) = delete;
    AttnDocs with_documents() const { return {start, end, tiles}; }
    AttnDocs counting_only() const { return {nullptr, nullptr, tiles}; }  // plain causal, counted
    std::vector<unsigned long long> take_counts() {                       // and reset them
        std::vector<unsigned long long> c(3);
        CUDA_CHECK(cudaMemcpy(c.data(), tiles, 3 * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemset(tiles, 0, 3 * sizeof(unsigned long long)));
        return c;
    }
};

struct Options {
    bool bench = false, reference = true;
    bool causal_tiles = false;  // with --docs: also count plain causal attention's tiles (a second launch)
    std::string dump;           // directory, or empty
};

static void dump_floats(const Options& opt, const char* name, const std::vector<float>& v) {
    if (opt.dump.empty()) return;
    const std::string path = opt.dump + "/" + name + ".f32";
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(v.data(), sizeof(float), v.size(), f) != v.size() || std::fclose(f) != 0) {
        std::fprintf(stderr, "attention: cannot write %s\n", path.c_str());
        std::exit(1);
    }
}

static bool check_shape(const Shape& sh, int version, const Options& opt) {
    const bool bench = opt.bench;
    int arch = 0;
    const AttentionVersion& kernels = attention_version(version);
    if (!attention_version_runs_here(kernels, arch)) {
        std::printf("  v%d skipped: %s needs an sm_%d GPU, this one is sm_%d\n", version, kernels.name,
                    kernels.min_arch, arch);
        return true;
    }
    const int B = sh.B, T = sh.T, H = sh.H, KV = sh.KV, D = sh.D, N = B * T, width = (H + 2 * KV) * D;
    DevRng rng(uint64_t(B) * 100003 + T * 1009 + H * 101 + KV * 11 + D);
    const std::vector<float> qkv = rng.bf16_vector(size_t(N) * width), dout = rng.bf16_vector(size_t(N) * H * D);

    // The reference takes separate q [B,T,H,D], k and v [B,T,KV,D].
    std::vector<float> q(size_t(N) * H * D), k(size_t(N) * KV * D), v(size_t(N) * KV * D);
    for (int n = 0; n < N; ++n) {
        const float* row = qkv.data() + size_t(n) * width;
        for (int c = 0; c < H * D; ++c) q[size_t(n) * H * D + c] = row[c];
        for (int c = 0; c < KV * D; ++c) {
            k[size_t(n) * KV * D + c] = row[H * D + c];
            v[size_t(n) * KV * D + c] = row[(H + KV) * D + c];
        }
    }
    std::vector<float> out_ref(q.size()), lse_ref(size_t(B) * H * T);
    const std::vector<int> doc_starts = doc_starts_of(sh);
    std::vector<float> dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
    if (opt.reference) {
        std::vector<float> probs(size_t(B) * H * T * T);
        llama::ref::attention_forward(out_ref.data(), probs.data(), q.data(), k.data(), v.data(), B, T, H, KV, D,
                                      lse_ref.data(), sh.docs.empty() ? nullptr : doc_starts.data());
        llama::ref::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                       probs.data(), B, T, H, KV, D);
    }
    // The expected dQKV in the fused layout.
    std::vector<float> dqkv_ref(qkv.size());
    for (int n = 0; n < N; ++n) {
        float* row = dqkv_ref.data() + size_t(n) * width;
        for (int c = 0; c < H * D; ++c) row[c] = dq[size_t(n) * H * D + c];
        for (int c = 0; c < KV * D; ++c) {
            row[H * D + c] = dk[size_t(n) * KV * D + c];
            row[(H + KV) * D + c] = dv[size_t(n) * KV * D + c];
        }
    }

    DeviceBuffer<bf16> d_qkv(qkv), d_dout(dout), d_out(out_ref.size()), d_dqkv(qkv.size());
    DeviceBuffer<float> d_lse(lse_ref.size()), d_scratch(attention_backward_scratch(B, T, H));
    d_out.poison();
    d_lse.poison();
    d_dqkv.poison();
    d_scratch.poison();
    DeviceDocs d_docs(sh);
    const AttnDocs docs = sh.docs.empty() ? AttnDocs{} : d_docs.with_documents();
    auto forward = [&] { kernels.forward(d_out.ptr, d_lse.ptr, d_qkv.ptr, B, T, H, KV, D, docs, 0); };
    auto backward = [&] {
        kernels.backward(d_dqkv.ptr, d_scratch.ptr, d_dout.ptr, d_qkv.ptr, d_out.ptr, d_lse.ptr, B, T, H, KV, D, docs,
                         0);
    };
    forward();
    CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<float> out = d_out.to_host(), lse = d_lse.to_host();
    dump_floats(opt, "qkv", qkv);
    dump_floats(opt, "dout", dout);
    dump_floats(opt, "out", out);
    dump_floats(opt, "lse", lse);
    char label[96];
    std::snprintf(label, sizeof label, "v%d B=%d T=%d H=%d KV=%d D=%d%s", version, B, T, H, KV, D,
                  sh.docs.empty() ? "" : " documents");
    const std::string l(label);
    const double flops = 4.0 * B * H * double(T) * T * D / 2;
    if (!opt.reference) std::printf("  %s: no CPU reference (--no-reference)\n", l.c_str());
    backward();
    CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<float> dqkv = d_dqkv.to_host();
    dump_floats(opt, "dqkv", dqkv);
    if (!sh.docs.empty() && opt.causal_tiles) {  // the tiles computed, then plain causal attention's (no documents)
        const std::vector<unsigned long long> with = d_docs.take_counts();
        kernels.forward(d_out.ptr, d_lse.ptr, d_qkv.ptr, B, T, H, KV, D, d_docs.counting_only(), 0);
        kernels.backward(d_dqkv.ptr, d_scratch.ptr, d_dout.ptr, d_qkv.ptr, d_out.ptr, d_lse.ptr, B, T, H, KV, D,
                         d_docs.counting_only(), 0);
        CUDA_CHECK(cudaDeviceSynchronize());
        const std::vector<unsigned long long> causal = d_docs.take_counts();
        std::printf("  %s tiles computed (documents/causal): forward %llu/%llu, dq %llu/%llu, dk dv %llu/%llu (%.3f)\n",
                    l.c_str(), with[0], causal[0], with[1], causal[1], with[2], causal[2],
                    double(with[0] + with[1] + with[2]) / double(causal[0] + causal[1] + causal[2]));
    }

    // Split the fused gradient back into dq, dk, dv for separate reports.
    std::vector<float> got_dq(dq.size()), got_dk(dk.size()), got_dv(dv.size());
    for (int n = 0; n < N; ++n) {
        const float* row = dqkv.data() + size_t(n) * width;
        for (int c = 0; c < H * D; ++c) got_dq[size_t(n) * H * D + c] = row[c];
        for (int c = 0; c < KV * D; ++c) {
            got_dk[size_t(n) * KV * D + c] = row[H * D + c];
            got_dv[size_t(n) * KV * D + c] = row[(H + KV) * D + c];
        }
    }
    // Tolerances. out, dq, dk and dv are stored in bf16: rounding alone is up to
    // 2^-9 (2e-3) relative, 8e-3 absolute at the |values| of 2 to 4 seen here.
    // Versions 2 and 3 also round P and dS to bf16 for the tensor-core products, and
    // Delta is taken from the bf16 out, which adds a few 1e-3 where gradients
    // cancel. Observed: at most 8e-3 absolute on out, 2.2e-2 on dv (|dv| up to
    // about 6, a sum over the group's rows); atol 1e-2 + rtol 2e-2 leaves a
    // margin of 3 or more, while a wrong mask, head mapping or scale gives
    // errors of 1 or more. lse is fp32 throughout (seen: 5e-7), hence 1e-4.
    bool ok = true;
    if (opt.reference) {
        ok &= compare(l + " out", out, out_ref, 1e-2, 2e-2);
        ok &= compare(l + " lse", lse, lse_ref, 1e-4, 1e-4);
        ok &= compare(l + " dq", got_dq, dq, 1e-2, 2e-2);
        ok &= compare(l + " dk", got_dk, dk, 1e-2, 2e-2);
        ok &= compare(l + " dv", got_dv, dv, 1e-2, 2e-2);
    }
    if (bench) {
        float ms = time_ms(forward);
        std::printf("  forward: %.3f ms, %.2f TFLOP/s\n", ms, flops / ms / 1e9);
        const float backward_ms = time_ms(backward);
        std::printf("  backward: %.3f ms, %.2f TFLOP/s\n", backward_ms, 2.5 * flops / backward_ms / 1e9);
        if (!sh.docs.empty()) {  // the same kernels without the documents (plain causal), timed in the same run
            const float causal_fwd =
                time_ms([&] { kernels.forward(d_out.ptr, d_lse.ptr, d_qkv.ptr, B, T, H, KV, D, {}, 0); });
            const float causal_bwd = time_ms([&] {
                kernels.backward(d_dqkv.ptr, d_scratch.ptr, d_dout.ptr, d_qkv.ptr, d_out.ptr, d_lse.ptr, B, T, H, KV, D,
                                 {}, 0);
            });
            std::printf(
                "  documents against plain causal: forward %.3f ms / %.3f ms = %.3f, backward %.3f ms / %.3f ms "
                "= %.3f (TFLOP/s above count causal work)\n",
                ms, causal_fwd, ms / causal_fwd, backward_ms, causal_bwd, backward_ms / causal_bwd);
        }
    }
    return ok;
}

// One line per kernel: its name as ptxas reports it (demangled), threads per
// block, dynamic shared memory bytes, the oldest architecture it runs on;
// version by version (the table's), then the Delta kernel. No CUDA call is made.
static void print_launch_info() {
    for (const AttentionVersion& v : kAttentionVersionTable) v.launch_info();
    std::printf("attention_backward_delta_kernel 128 0 80\n");
}

int main(int argc, char** argv) {
    if (argc == 2 && std::string(argv[1]) == "--launch-info") {
        print_launch_info();
        return 0;
    }
    if (argc == 2 && std::string(argv[1]) == "--list-versions") {
        attention_print_versions();
        return 0;
    }
    // Named shape options are taken out here; the rest goes to DevArgs.
    Shape named = {0, 0, 0, 0, 0};
    bool have_named = false, have_version = false;
    Options opt;
    std::vector<char*> rest = {argv[0]};
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        int* field = a == "--batch"      ? &named.B
                     : a == "--seq"      ? &named.T
                     : a == "--heads"    ? &named.H
                     : a == "--kv-heads" ? &named.KV
                     : a == "--head-dim" ? &named.D
                                         : nullptr;
        if (field && i + 1 < argc) {
            *field = std::atoi(argv[++i]);
            have_named = true;
            continue;
        }
        if (a == "--no-reference") {
            opt.reference = false;
            continue;
        }
        if (a == "--dump" && i + 1 < argc) {
            opt.dump = argv[++i];
            continue;
        }
        if (a == "--docs" && i + 1 < argc) {  // comma-separated positive lengths
            opt.causal_tiles = true;
            const std::string list = argv[++i];
            for (size_t at = 0; at < list.size();) {
                const size_t comma = std::min(list.find(',', at), list.size());
                const int len = std::atoi(list.substr(at, comma - at).c_str());
                if (len <= 0) {
                    std::fprintf(stderr, "%s: --docs %s: the lengths must be positive integers\n", argv[0],
                                 list.c_str());
                    return 2;
                }
                named.docs.push_back(len);
                at = comma + 1;
            }
            continue;
        }
        if (a == "--version") have_version = true;
        rest.push_back(argv[i]);
    }
    DevArgs args(int(rest.size()), rest.data(), kAttentionVersions);
    // Small enough for the emulator's race checker (about 20 s): lengths of 1 and
    // below, at and above the 64-row tiles of version 2 (130: three key tiles, so
    // a double buffer is refilled), 1 to 3 query heads per KV head, D = 64 and 128.
    // Then documents with boundaries in awkward places: documents of length 1, a
    // boundary on a tile edge (64) and one just past it, many documents in one
    // tile (two sequences, the list rotated), one document filling the sequence.
    std::vector<Shape> shapes = {{1, 1, 3, 1, 64},
                                 {2, 7, 4, 2, 64},
                                 {1, 7, 15, 5, 64},
                                 {1, 33, 4, 2, 128},
                                 {1, 64, 2, 2, 128},
                                 {1, 130, 1, 1, 64},
                                 {1, 65, 2, 1, 128},
                                 {1, 130, 2, 1, 64, {1, 63, 1, 64}},
                                 {2, 77, 2, 1, 128, {5, 3, 2, 7, 1, 1, 4}},
                                 {1, 70, 1, 1, 64, {70}}};
    if (args.shape.size() == 5)
        shapes = {{args.shape[0], args.shape[1], args.shape[2], args.shape[3], args.shape[4], named.docs}};
    if (have_named) {
        if (named.B <= 0 || named.T <= 0 || named.H <= 0 || named.KV <= 0 || named.D <= 0) {
            std::fprintf(stderr, "%s: give all of --batch --seq --heads --kv-heads --head-dim\n", argv[0]);
            return 2;
        }
        shapes = {named};
    }
    if (!named.docs.empty() && !have_named && args.shape.size() != 5) {
        std::fprintf(stderr, "%s: --docs needs a shape (B T H KV D, or --batch ... --head-dim)\n", argv[0]);
        return 2;
    }
    for (const Shape& s : shapes)
        if ((s.D != 64 && s.D != 128) || s.H % s.KV != 0) {
            std::fprintf(stderr, "%s: D must be 64 or 128 and KV must divide H\n", argv[0]);
            return 2;
        }
    opt.bench = args.bench;
    if (!opt.dump.empty() && (shapes.size() != 1 || !have_version)) {
        std::fprintf(stderr, "%s: --dump needs one shape and one --version\n", argv[0]);
        return 2;
    }
    bool ok = true;
    for (int version = 1; version <= kAttentionVersions; ++version) {
        if (have_version && version != args.version) continue;
        for (const Shape& s : shapes) ok &= check_shape(s, version, opt);
    }
    std::printf("attention: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
