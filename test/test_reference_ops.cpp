// Every CPU reference op: backward against central finite differences in double
// precision on random inputs at odd sizes, and forward properties that the math
// promises (GQA sharing, causality, RoPE relative positions, softmax limits).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "reference/ops.h"
#include "test/fd_check.h"

using namespace llama;
using namespace llama::ref;
using fdtest::check_gradient;
using fdtest::dot;
using fdtest::random_vector;
using Vec = std::vector<double>;

TEST_CASE("embedding backward matches finite differences, with repeated tokens", "[ops]") {
    const int V = 5, C = 3, N = 7;
    std::vector<int> tokens = {4, 0, 2, 4, 4, 1, 0};  // repeats accumulate
    Vec wte = random_vector(V * C, 1), G = random_vector(N * C, 2), out(N * C);
    auto loss = [&] {
        embedding_forward(out.data(), tokens.data(), wte.data(), N, C);
        return dot(G, out);
    };
    Vec dwte(V * C, 0.0);
    embedding_backward(dwte.data(), G.data(), tokens.data(), N, C);
    check_gradient("d wte", wte, dwte, loss);
}

TEST_CASE("RMSNorm backward matches finite differences", "[ops]") {
    const int N = 5, C = 7;
    Vec x = random_vector(N * C, 3), w = random_vector(C, 4), G = random_vector(N * C, 5);
    Vec out(N * C), rstd(N);
    auto loss = [&] {
        rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5);
        return dot(G, out);
    };
    loss();
    Vec dx(N * C, 0.0), dw(C, 0.0);
    rmsnorm_backward(dx.data(), dw.data(), G.data(), x.data(), w.data(), rstd.data(), N, C);
    check_gradient("d input", x, dx, loss);
    check_gradient("d weight", w, dw, loss);
    // Forward: unit weights give rows of mean square 1 (up to eps).
    Vec ones(C, 1.0);
    rmsnorm_forward(out.data(), rstd.data(), x.data(), ones.data(), N, C, 1e-12);
    for (int n = 0; n < N; ++n) {
        double ms = 0;
        for (int c = 0; c < C; ++c) ms += out[n * C + c] * out[n * C + c];
        CHECK(ms / C == Approx(1.0).epsilon(1e-9));
    }
}

TEST_CASE("QK-norm (RMSNorm per head) backward matches finite differences", "[ops]") {
    const int N = 7, heads = 3, D = 6;
    Vec x = random_vector(N * heads * D, 6), w = random_vector(D, 7), G = random_vector(N * heads * D, 8);
    Vec out(x.size()), rstd(N * heads);
    auto loss = [&] {
        qk_norm_forward(out.data(), rstd.data(), x.data(), w.data(), N, heads, D, 1e-6);
        return dot(G, out);
    };
    loss();
    Vec dx(x.size(), 0.0), dw(D, 0.0);
    qk_norm_backward(dx.data(), dw.data(), G.data(), x.data(), w.data(), rstd.data(), N, heads, D);
    check_gradient("d q", x, dx, loss);
    check_gradient("d q_norm weight", w, dw, loss);
    // Each head is normalised on its own: scaling one head leaves the others' outputs unchanged.
    Vec before = out;
    for (int d = 0; d < D; ++d) x[1 * D + d] *= 3.0;  // row 0, head 1
    loss();
    for (int d = 0; d < D; ++d) {
        CHECK(out[0 * D + d] == Approx(before[0 * D + d]));
        CHECK(out[2 * D + d] == Approx(before[2 * D + d]));
    }
}

TEST_CASE("linear backward matches finite differences, with and without bias", "[ops]") {
    const int N = 5, IC = 7, OC = 3;
    for (bool with_bias : {true, false}) {
        INFO("bias " << with_bias);
        Vec x = random_vector(N * IC, 9), W = random_vector(OC * IC, 10), b = random_vector(OC, 11);
        Vec G = random_vector(N * OC, 12), out(N * OC);
        auto loss = [&] {
            linear_forward(out.data(), x.data(), W.data(), with_bias ? b.data() : nullptr, N, IC, OC);
            return dot(G, out);
        };
        Vec dx(x.size(), 0.0), dW(W.size(), 0.0), db(OC, 0.0);
        linear_backward(dx.data(), dW.data(), with_bias ? db.data() : nullptr, G.data(), x.data(), W.data(), N, IC, OC);
        check_gradient("d input", x, dx, loss);
        check_gradient("d weight", W, dW, loss);
        if (with_bias) check_gradient("d bias", b, db, loss);
        // Forward against the definition, one element.
        loss();
        double expect = with_bias ? b[2] : 0.0;
        for (int i = 0; i < IC; ++i) expect += x[4 * IC + i] * W[2 * IC + i];
        CHECK(out[4 * OC + 2] == Approx(expect).epsilon(1e-12));
    }
}

TEST_CASE("RoPE backward matches finite differences, with and without Llama-3.1 scaling", "[ops]") {
    const int B = 2, T = 7, H = 3, D = 6;
    for (bool scaled : {false, true}) {
        INFO("scaling " << scaled);
        RopeScaling s;
        s.enabled = scaled;
        s.factor = 8;
        s.original_max_position = 16;
        Vec cos_t, sin_t;
        rope_tables(cos_t, sin_t, T, D, 10000.0, s);
        Vec x = random_vector(B * T * H * D, 13), G = random_vector(x.size(), 14), out(x.size());
        auto loss = [&] {
            rope_forward(out.data(), x.data(), cos_t.data(), sin_t.data(), B, T, H, D);
            return dot(G, out);
        };
        Vec dx(x.size(), 0.0);
        rope_backward(dx.data(), G.data(), cos_t.data(), sin_t.data(), B, T, H, D);
        check_gradient("d input", x, dx, loss);
    }
}

TEST_CASE("RoPE rotates rotate-half pairs so that q.k depends only on the distance", "[ops]") {
    const int T = 9, D = 8;
    Vec cos_t, sin_t;
    rope_tables(cos_t, sin_t, T, D, 10000.0, RopeScaling{});
    Vec q = random_vector(D, 15), k = random_vector(D, 16);
    // Place the same q and k at every position (B=1, H=1) and rotate.
    Vec qs(T * D), ks(T * D), qr(T * D), kr(T * D);
    for (int t = 0; t < T; ++t)
        for (int d = 0; d < D; ++d) {
            qs[t * D + d] = q[d];
            ks[t * D + d] = k[d];
        }
    rope_forward(qr.data(), qs.data(), cos_t.data(), sin_t.data(), 1, T, 1, D);
    rope_forward(kr.data(), ks.data(), cos_t.data(), sin_t.data(), 1, T, 1, D);
    auto score = [&](int m, int n) {
        double s = 0;
        for (int d = 0; d < D; ++d) s += qr[m * D + d] * kr[n * D + d];
        return s;
    };
    CHECK(score(5, 2) == Approx(score(8, 5)).epsilon(1e-12));
    CHECK(score(3, 3) == Approx(score(0, 0)).epsilon(1e-12));
    CHECK(score(0, 0) == Approx(dot(q, k)).epsilon(1e-12));  // position 0 is the identity
    // Rotate-half pairing: element 0 pairs with D/2 (not with element 1).
    const int t = 4;
    const double angle = t * 1.0;  // inv_freq[0] = 1
    CHECK(qr[t * D + 0] == Approx(q[0] * std::cos(angle) - q[D / 2] * std::sin(angle)).epsilon(1e-12));
    CHECK(qr[t * D + D / 2] == Approx(q[D / 2] * std::cos(angle) + q[0] * std::sin(angle)).epsilon(1e-12));
}

TEST_CASE("Llama-3.1 RoPE scaling keeps high frequencies, divides low ones, blends between", "[ops]") {
    RopeScaling s;
    s.enabled = true;
    s.factor = 32;
    s.low_freq_factor = 1;
    s.high_freq_factor = 4;
    s.original_max_position = 8192;
    const int D = 64;
    std::vector<double> plain = rope_inv_freq(D, 500000.0, RopeScaling{});
    std::vector<double> scaled = rope_inv_freq(D, 500000.0, s);
    const double pi = 3.14159265358979323846;
    int high = 0, low = 0, mid = 0;
    for (int i = 0; i < D / 2; ++i) {
        double wavelen = 2 * pi / plain[i];
        if (wavelen < 8192.0 / 4) {
            CHECK(scaled[i] == plain[i]);
            ++high;
        } else if (wavelen > 8192.0) {
            CHECK(scaled[i] == Approx(plain[i] / 32).epsilon(1e-12));
            ++low;
        } else {
            CHECK(scaled[i] < plain[i]);
            CHECK(scaled[i] > plain[i] / 32);
            ++mid;
        }
    }
    // Llama-3.2's settings exercise all three regimes.
    CHECK(high > 0);
    CHECK(low > 0);
    CHECK(mid > 0);
}

TEST_CASE("causal GQA attention backward matches finite differences (3 heads over 1 KV head)", "[ops]") {
    const int B = 2, T = 7, D = 6;
    for (auto [H, KV] : {std::pair{3, 1}, std::pair{4, 2}}) {
        INFO("heads " << H << " over " << KV);
        Vec q = random_vector(B * T * H * D, 17), k = random_vector(B * T * KV * D, 18),
            v = random_vector(B * T * KV * D, 19), G = random_vector(B * T * H * D, 20);
        Vec out(q.size()), probs(B * H * T * T);
        auto loss = [&] {
            attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), B, T, H, KV, D);
            return dot(G, out);
        };
        loss();
        Vec dq(q.size(), 0.0), dk(k.size(), 0.0), dv(v.size(), 0.0);
        attention_backward(dq.data(), dk.data(), dv.data(), G.data(), q.data(), k.data(), v.data(), probs.data(), B, T,
                           H, KV, D);
        check_gradient("d q", q, dq, loss);
        check_gradient("d k", k, dk, loss);
        check_gradient("d v", v, dv, loss);
    }
}

TEST_CASE("GQA attention equals full attention over copied KV heads, and is causal", "[ops]") {
    const int B = 1, T = 5, H = 4, KV = 2, D = 4, group = H / KV;
    Vec q = random_vector(B * T * H * D, 21), k = random_vector(B * T * KV * D, 22),
        v = random_vector(B * T * KV * D, 23);
    Vec k_full(B * T * H * D), v_full(B * T * H * D);
    for (int t = 0; t < T; ++t)
        for (int h = 0; h < H; ++h)
            for (int d = 0; d < D; ++d) {
                k_full[(t * H + h) * D + d] = k[(t * KV + h / group) * D + d];
                v_full[(t * H + h) * D + d] = v[(t * KV + h / group) * D + d];
            }
    Vec out(q.size()), out_full(q.size()), probs(B * H * T * T);
    attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), B, T, H, KV, D);
    attention_forward(out_full.data(), probs.data(), q.data(), k_full.data(), v_full.data(), B, T, H, H, D);
    for (size_t i = 0; i < out.size(); ++i) CHECK(out[i] == Approx(out_full[i]).epsilon(1e-12));
    // Changing the last position's k and v leaves every earlier output unchanged.
    Vec k2 = k, v2 = v, out2(q.size());
    for (int i = (T - 1) * KV * D; i < T * KV * D; ++i) {
        k2[i] += 1.0;
        v2[i] -= 2.0;
    }
    attention_forward(out2.data(), probs.data(), q.data(), k2.data(), v2.data(), B, T, H, KV, D);
    for (int i = 0; i < (T - 1) * H * D; ++i) CHECK(out2[i] == out[i]);
    bool last_changed = false;
    for (int i = (T - 1) * H * D; i < T * H * D; ++i) last_changed |= out2[i] != out[i];
    CHECK(last_changed);
    // The first position attends only to itself: its output is its own v.
    for (int h = 0; h < H; ++h)
        for (int d = 0; d < D; ++d) CHECK(out[h * D + d] == Approx(v[(h / group) * D + d]).epsilon(1e-12));
}

TEST_CASE("attention's log-sum-exp gives back every probability: p_j = exp(s_j - lse)", "[ops]") {
    const int B = 2, T = 7, H = 3, KV = 1, D = 6;
    Vec q = random_vector(B * T * H * D, 31), k = random_vector(B * T * KV * D, 32),
        v = random_vector(B * T * KV * D, 33);
    for (double& x : q) x *= 4.0;  // scores far from zero, so a wrong maximum would show
    Vec out(q.size()), probs(B * H * T * T), lse(B * H * T, NAN);
    attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), B, T, H, KV, D, lse.data());
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h)
            for (int i = 0; i < T; ++i)
                for (int j = 0; j <= i; ++j) {
                    double s = 0;
                    for (int d = 0; d < D; ++d) s += q[((b * T + i) * H + h) * D + d] * k[((b * T + j) * KV) * D + d];
                    s /= std::sqrt(double(D));
                    const double p = probs[((b * H + h) * T + i) * T + j];
                    CHECK(std::exp(s - lse[(b * H + h) * T + i]) == Approx(p).epsilon(1e-12));
                }
}

TEST_CASE("SwiGLU backward matches finite differences", "[ops]") {
    const int n = 11;
    Vec gate = random_vector(n, 24, 2.0), up = random_vector(n, 25), G = random_vector(n, 26), out(n);
    auto loss = [&] {
        swiglu_forward(out.data(), gate.data(), up.data(), n);
        return dot(G, out);
    };
    Vec dgate(n, 0.0), dup(n, 0.0);
    swiglu_backward(dgate.data(), dup.data(), G.data(), gate.data(), up.data(), n);
    check_gradient("d gate", gate, dgate, loss);
    check_gradient("d up", up, dup, loss);
    loss();
    CHECK(out[3] == Approx(gate[3] / (1 + std::exp(-gate[3])) * up[3]).epsilon(1e-12));
}

TEST_CASE("cross-entropy backward matches finite differences, ignoring ignored targets", "[ops]") {
    const int N = 7, V = 11, ignore = -1;
    std::vector<int> targets = {3, ignore, 10, 0, ignore, 5, 5};
    Vec logits = random_vector(N * V, 27, 3.0), probs(N * V);
    int64_t counted = 0;
    auto loss = [&] {
        return cross_entropy_forward(probs.data(), logits.data(), targets.data(), N, V, ignore, &counted);
    };
    loss();
    CHECK(counted == 5);
    Vec dlogits(N * V);
    cross_entropy_backward(dlogits.data(), probs.data(), targets.data(), N, V, ignore, counted);
    check_gradient("d logits", logits, dlogits, loss);
    // Ignored rows get exactly zero gradient.
    for (int i = 0; i < V; ++i) CHECK(dlogits[1 * V + i] == 0.0);
    // Equal logits give log(V); huge logits stay finite (computed stably).
    Vec flat(N * V, 0.5);
    CHECK(cross_entropy_forward(probs.data(), flat.data(), targets.data(), N, V, ignore) == Approx(std::log(V)));
    Vec big(N * V, 1000.0);
    big[0 * V + 3] = 1010.0;
    double l = cross_entropy_forward(probs.data(), big.data(), targets.data(), N, V, ignore);
    CHECK(std::isfinite(l));
    std::vector<int> none(N, ignore);
    CHECK(cross_entropy_forward(probs.data(), logits.data(), none.data(), N, V, ignore) == 0.0);
}

TEST_CASE("AdamW follows the decoupled-decay, bias-corrected update", "[ops]") {
    AdamWHyper h;
    h.lr = 0.1;
    h.beta1 = 0.9;
    h.beta2 = 0.99;
    h.eps = 1e-8;
    h.weight_decay = 0.5;
    double p = 2.0, m = 0, v = 0;
    const double g1 = 0.3, g2 = -0.7;
    adamw_update(&p, &g1, &m, &v, 1, h, 1, 1.0, true);
    // Step 1: m_hat = g, v_hat = g^2, so the Adam part is lr * sign(g).
    double expect = 2.0 * (1 - 0.1 * 0.5) - 0.1 * 0.3 / (0.3 + 1e-8);
    CHECK(p == Approx(expect).epsilon(1e-12));
    double m1 = 0.1 * g1, v1 = 0.01 * g1 * g1;
    adamw_update(&p, &g2, &m, &v, 1, h, 2, 1.0, true);
    double m2 = 0.9 * m1 + 0.1 * g2, v2 = 0.99 * v1 + 0.01 * g2 * g2;
    expect = expect * (1 - 0.05) - 0.1 * (m2 / (1 - 0.81)) / (std::sqrt(v2 / (1 - 0.99 * 0.99)) + 1e-8);
    CHECK(p == Approx(expect).epsilon(1e-12));
    CHECK(m == Approx(m2));
    CHECK(v == Approx(v2));
    // No decay for tensors that opt out; the gradient scale (clipping) applies first.
    double q = 2.0, mq = 0, vq = 0, g = 4.0;
    adamw_update(&q, &g, &mq, &vq, 1, h, 1, 0.25, false);
    CHECK(q == Approx(2.0 - 0.1).epsilon(1e-9));
    CHECK(mq == Approx(0.1 * 1.0));
}

TEST_CASE("gradient clipping scales to the max norm only when above it", "[ops]") {
    Vec g = {3.0, 4.0};
    double norm = std::sqrt(grad_norm_squared(g.data(), 2));
    CHECK(norm == Approx(5.0));
    CHECK(clip_scale(norm, 1.0) == Approx(0.2).epsilon(1e-6));
    CHECK(clip_scale(norm, 10.0) == 1.0);
    CHECK(clip_scale(norm, 0.0) == 1.0);  // clipping off
}
