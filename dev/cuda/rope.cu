// RoPE forward and backward on q and k inside a fused QKV buffer (GQA: more
// query heads than key heads), with and without Llama-3.1 scaling, with and
// without documents packed into the sequences (positions restart at each
// document: lengths 1, 4, 2, 7, ... in turn): the kernels of kernels/rope.cuh
// against the CPU reference (reference/ops.h).
//
//   rope [--version 1] [--bench] [B T H KV D]
#include <cstdio>
#include <string>
#include <vector>

#include "dev/cuda/dev_common.h"
#include "kernels/rope.cuh"
#include "reference/ops.h"

static bool check_shape(int B, int T, int H, int KV, int D, bool scaled, bool documents, bool bench) {
    const int N = B * T, width = (H + 2 * KV) * D;
    llama::RopeScaling s;
    s.enabled = scaled;
    s.factor = 32;
    s.original_max_position = 64;
    std::vector<float> cos_t, sin_t;
    llama::ref::rope_tables(cos_t, sin_t, T, D, scaled ? 500000.0 : 10000.0, s);
    DevRng rng(B * 1000 + T * 10 + H + D);
    std::vector<float> qkv = rng.bf16_vector(size_t(N) * width);
    // The reference on separate q and k tensors.
    std::vector<float> q(size_t(N) * H * D), k(size_t(N) * KV * D);
    for (int n = 0; n < N; ++n) {
        for (int j = 0; j < H * D; ++j) q[size_t(n) * H * D + j] = qkv[size_t(n) * width + j];
        for (int j = 0; j < KV * D; ++j) k[size_t(n) * KV * D + j] = qkv[size_t(n) * width + H * D + j];
    }
    // Each token's document start: documents of 1, 4, 2, 7 tokens in turn, running on across sequences.
    std::vector<int> starts(N, 0);
    const int lengths[] = {1, 4, 2, 7};
    for (int n = 0, next = 0, i = 0, start = 0; n < N; ++n) {
        const int t = n % T;
        if (t == 0 || t == next) {
            start = t;
            next = t + lengths[i++ % 4];
        }
        starts[n] = documents ? start : 0;
    }
    const int* doc_starts = documents ? starts.data() : nullptr;
    std::vector<float> q_ref(q.size()), k_ref(k.size()), dq_ref(q.size(), 0.0f);
    llama::ref::rope_forward(q_ref.data(), q.data(), cos_t.data(), sin_t.data(), B, T, H, D, doc_starts);
    llama::ref::rope_forward(k_ref.data(), k.data(), cos_t.data(), sin_t.data(), B, T, KV, D, doc_starts);
    llama::ref::rope_backward(dq_ref.data(), q.data(), cos_t.data(), sin_t.data(), B, T, H, D, doc_starts);
    std::vector<float> expect = qkv, expect_back = qkv;
    for (int n = 0; n < N; ++n) {
        for (int j = 0; j < H * D; ++j) {
            expect[size_t(n) * width + j] = q_ref[size_t(n) * H * D + j];
            expect_back[size_t(n) * width + j] = dq_ref[size_t(n) * H * D + j];
        }
        for (int j = 0; j < KV * D; ++j) expect[size_t(n) * width + H * D + j] = k_ref[size_t(n) * KV * D + j];
    }
    DeviceBuffer<bf16> d_qkv(qkv), d_back(qkv);
    DeviceBuffer<float> d_cos(cos_t), d_sin(sin_t);
    DeviceBuffer<int> d_starts(std::vector<float>(starts.begin(), starts.end()));
    const int* d_doc_starts = documents ? d_starts.ptr : nullptr;
    rope_forward(d_qkv.ptr, d_cos.ptr, d_sin.ptr, N, T, width, 0, H, D, 0, d_doc_starts);
    rope_forward(d_qkv.ptr, d_cos.ptr, d_sin.ptr, N, T, width, H * D, KV, D, 0, d_doc_starts);
    rope_backward(d_back.ptr, d_cos.ptr, d_sin.ptr, N, T, width, 0, H, D, 0, d_doc_starts);
    CUDA_CHECK(cudaDeviceSynchronize());
    char label[96];
    std::snprintf(label, sizeof label, "B=%d T=%d H=%d KV=%d D=%d%s%s", B, T, H, KV, D, scaled ? " scaled" : "",
                  documents ? " documents" : "");
    bool ok = compare(std::string(label) + " q,k (v untouched)", d_qkv.to_host(), expect, 1e-3, 8e-3);
    ok &= compare(std::string(label) + " backward", d_back.to_host(), expect_back, 1e-3, 8e-3);
    if (bench) {
        float ms = time_ms([&] { rope_forward(d_qkv.ptr, d_cos.ptr, d_sin.ptr, N, T, width, 0, H, D); });
        report_bandwidth("q forward", ms, double(N) * H * D * 2 * 2);
    }
    return ok;
}

int main(int argc, char** argv) {
    DevArgs args(argc, argv, 1);
    struct Shape {
        int B, T, H, KV, D;
    };
    std::vector<Shape> shapes = {
        {2, 7, 3, 1, 6}, {1, 33, 15, 5, 64}, {2, 16, 4, 2, 16}, {1, 9, 2, 2, 128}, {3, 5, 6, 3, 10}};
    if (args.shape.size() == 5) shapes = {{args.shape[0], args.shape[1], args.shape[2], args.shape[3], args.shape[4]}};
    bool ok = true;
    for (const Shape& s : shapes)
        for (bool scaled : {false, true})
            for (bool documents : {false, true})
                ok &= check_shape(s.B, s.T, s.H, s.KV, s.D, scaled, documents, args.bench && !documents);
    std::printf("rope: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
