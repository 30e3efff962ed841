// RMSNorm forward (with and without the fused residual add) and backward:
// the kernels of kernels/rmsnorm.cuh checked against the CPU reference
// (reference/ops.h) on random inputs at several shapes, odd ones included,
// with outputs poisoned before each launch; with --bench, timed.
//
//   rmsnorm [--version 1] [--bench] [N C]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "dev/cuda/dev_common.h"
#include "kernels/rmsnorm.cuh"
#include "reference/ops.h"

static bool check_shape(int N, int C, bool fused, bool bench) {
    const float eps = 1e-5f;
    DevRng rng(N * 131 + C + (fused ? 7 : 0));
    std::vector<float> x = rng.bf16_vector(size_t(N) * C), res = rng.bf16_vector(size_t(N) * C),
                       w = rng.bf16_vector(C, 1.0f, 0.3f), dy = rng.bf16_vector(size_t(N) * C),
                       dres = rng.bf16_vector(size_t(N) * C);
    // CPU reference in fp32 on the same bf16-rounded inputs.
    std::vector<float> h = x;
    if (fused)
        for (size_t i = 0; i < h.size(); ++i) h[i] = round_bf16(x[i] + res[i]);
    std::vector<float> out_ref(h.size()), rstd_ref(N), dx_ref = dres, dw_ref(C, 0.0f);
    llama::ref::rmsnorm_forward(out_ref.data(), rstd_ref.data(), h.data(), w.data(), N, C, eps);
    llama::ref::rmsnorm_backward(dx_ref.data(), dw_ref.data(), dy.data(), h.data(), w.data(), rstd_ref.data(), N, C);

    DeviceBuffer<bf16> d_x(x), d_res(res), d_w(w), d_dy(dy), d_dx(dres), d_out(h.size()), d_h(h.size());
    DeviceBuffer<float> d_rstd(N), d_dw(std::vector<float>(C, 0.0f)), d_scratch(rmsnorm_backward_scratch(C));
    d_out.poison();
    d_rstd.poison();
    d_h.poison();
    rmsnorm_forward(d_out.ptr, d_rstd.ptr, fused ? d_h.ptr : nullptr, d_x.ptr, fused ? d_res.ptr : nullptr, d_w.ptr, N,
                    C, eps);
    const bf16* saved = fused ? d_h.ptr : d_x.ptr;
    rmsnorm_backward(d_dx.ptr, d_dw.ptr, d_scratch.ptr, d_dx.ptr, d_dy.ptr, saved, d_w.ptr, d_rstd.ptr, N, C);
    CUDA_CHECK(cudaDeviceSynchronize());

    char label[96];
    std::snprintf(label, sizeof label, "N=%d C=%d%s", N, C, fused ? " fused residual" : "");
    bool ok = true;
    if (fused) ok &= compare(std::string(label) + " residual out", d_h.to_host(), h, 0.0, 0.0);
    ok &= compare(std::string(label) + " out", d_out.to_host(), out_ref, 1e-3, 8e-3);
    ok &= compare(std::string(label) + " rstd", d_rstd.to_host(), rstd_ref, 1e-6, 1e-5);
    ok &= compare(std::string(label) + " dinp", d_dx.to_host(), dx_ref, 1e-3, 8e-3);
    ok &= compare(std::string(label) + " dweight", d_dw.to_host(), dw_ref, 1e-3, 1e-4);
    if (bench) {
        float ms = time_ms([&] {
            rmsnorm_forward(d_out.ptr, d_rstd.ptr, fused ? d_h.ptr : nullptr, d_x.ptr, fused ? d_res.ptr : nullptr,
                            d_w.ptr, N, C, eps);
        });
        double bytes = double(N) * C * 2 * (fused ? 4 : 2);
        report_bandwidth("forward", ms, bytes);
        ms = time_ms([&] {
            rmsnorm_backward(d_dx.ptr, d_dw.ptr, d_scratch.ptr, d_dx.ptr, d_dy.ptr, saved, d_w.ptr, d_rstd.ptr, N, C);
        });
        bytes = double(N) * C * 2 * 6;  // dout and inp twice, dresidual, dinp
        report_bandwidth("backward", ms, bytes);
    }
    return ok;
}

// QK-norm on the q and k heads inside a fused QKV buffer [N, (H + 2 KV) * D].
static bool check_qk_norm(int N, int H, int KV, int D) {
    const int width = (H + 2 * KV) * D;
    DevRng rng(N * 3 + H * 5 + D);
    std::vector<float> qkv = rng.bf16_vector(size_t(N) * width), dqkv = rng.bf16_vector(size_t(N) * width),
                       wq = rng.bf16_vector(D, 1.0f, 0.3f), wk = rng.bf16_vector(D, 1.0f, 0.3f);
    bool ok = true;
    DeviceBuffer<bf16> d_qkv(qkv), d_dout(dqkv), d_out(qkv.size()), d_din(qkv.size()), d_wq(wq), d_wk(wk);
    DeviceBuffer<float> d_rq(size_t(N) * H), d_rk(size_t(N) * KV), d_dwq(std::vector<float>(D, 0.0f)),
        d_dwk(std::vector<float>(D, 0.0f)), d_scratch(rmsnorm_backward_scratch(D));
    d_out.poison();
    d_din.poison();
    qk_norm_forward(d_out.ptr, d_rq.ptr, d_qkv.ptr, d_wq.ptr, N, H, D, width, 0, 1e-6f);
    qk_norm_forward(d_out.ptr, d_rk.ptr, d_qkv.ptr, d_wk.ptr, N, KV, D, width, H * D, 1e-6f);
    qk_norm_backward(d_din.ptr, d_dwq.ptr, d_scratch.ptr, d_dout.ptr, d_qkv.ptr, d_wq.ptr, d_rq.ptr, N, H, D, width, 0);
    qk_norm_backward(d_din.ptr, d_dwk.ptr, d_scratch.ptr, d_dout.ptr, d_qkv.ptr, d_wk.ptr, d_rk.ptr, N, KV, D, width,
                     H * D);
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> out = d_out.to_host(), din = d_din.to_host();
    for (int part = 0; part < 2; ++part) {
        const int heads = part == 0 ? H : KV, col0 = part == 0 ? 0 : H * D;
        const std::vector<float>& w = part == 0 ? wq : wk;
        std::vector<float> x(size_t(N) * heads * D), dy(x.size()), got(x.size()), got_d(x.size());
        for (int n = 0; n < N; ++n)
            for (int j = 0; j < heads * D; ++j) {
                x[size_t(n) * heads * D + j] = qkv[size_t(n) * width + col0 + j];
                dy[size_t(n) * heads * D + j] = dqkv[size_t(n) * width + col0 + j];
                got[size_t(n) * heads * D + j] = out[size_t(n) * width + col0 + j];
                got_d[size_t(n) * heads * D + j] = din[size_t(n) * width + col0 + j];
            }
        std::vector<float> y(x.size()), r(size_t(N) * heads), dx(x.size(), 0.0f), dw(D, 0.0f);
        llama::ref::qk_norm_forward(y.data(), r.data(), x.data(), w.data(), N, heads, D, 1e-6f);
        llama::ref::qk_norm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), r.data(), N, heads, D);
        char label[80];
        std::snprintf(label, sizeof label, "qk-norm %s N=%d heads=%d D=%d", part == 0 ? "q" : "k", N, heads, D);
        ok &= compare(std::string(label) + " out", got, y, 1e-3, 8e-3);
        ok &= compare(std::string(label) + " rstd", (part == 0 ? d_rq : d_rk).to_host(), r, 1e-6, 1e-5);
        ok &= compare(std::string(label) + " dinp", got_d, dx, 1e-3, 8e-3);
        ok &= compare(std::string(label) + " dweight", (part == 0 ? d_dwq : d_dwk).to_host(), dw, 1e-3, 1e-4);
    }
    return ok;
}

int main(int argc, char** argv) {
    DevArgs args(argc, argv, 1);
    std::vector<std::pair<int, int>> shapes = {{1, 8}, {7, 64}, {33, 960}, {5, 37}, {9, 100}, {130, 2048}, {257, 24}};
    if (args.shape.size() == 2) shapes = {{args.shape[0], args.shape[1]}};
    bool ok = true;
    for (auto [N, C] : shapes)
        for (bool fused : {false, true}) ok &= check_shape(N, C, fused, args.bench);
    if (args.shape.empty()) {
        ok &= check_qk_norm(7, 3, 1, 6);
        ok &= check_qk_norm(9, 8, 8, 64);
        ok &= check_qk_norm(33, 15, 5, 64);
    }
    std::printf("rmsnorm: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
