// Finite-difference gradient checking for the CPU reference (double precision).
#ifndef TEST_FD_CHECK_H
#define TEST_FD_CHECK_H

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "model/rng.h"

namespace fdtest {

inline std::vector<double> random_vector(size_t n, uint64_t seed, double scale = 1.0) {
    llama::Rng rng(seed);
    std::vector<double> v(n);
    for (double& x : v) x = scale * rng.normal();
    return v;
}

// Compares `analytic` with central differences (L(x+h) - L(x-h)) / 2h of the
// scalar `loss` over every element of `x` (which `loss` reads). Requires every
// element to agree within atol + rtol * |analytic|; reports the worst one.
inline void check_gradient(const std::string& what, std::vector<double>& x, const std::vector<double>& analytic,
                           const std::function<double()>& loss, double h = 1e-6, double atol = 1e-7,
                           double rtol = 1e-6) {
    REQUIRE(x.size() == analytic.size());
    double worst = 0, worst_num = 0, worst_ana = 0;
    size_t worst_i = 0;
    double max_grad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        const double saved = x[i];
        x[i] = saved + h;
        const double plus = loss();
        x[i] = saved - h;
        const double minus = loss();
        x[i] = saved;
        const double numeric = (plus - minus) / (2 * h);
        const double excess = std::abs(numeric - analytic[i]) - (atol + rtol * std::abs(analytic[i]));
        if (i == 0 || excess > worst) {
            worst = excess;
            worst_i = i;
            worst_num = numeric;
            worst_ana = analytic[i];
        }
        max_grad = std::max(max_grad, std::abs(analytic[i]));
    }
    INFO(what << ": worst element " << worst_i << " of " << x.size() << ": analytic " << worst_ana << ", numeric "
              << worst_num);
    CHECK(worst <= 0);
    // A gradient of all zeros would pass vacuously; the inputs are random, so it must not be.
    CHECK(max_grad > 1e-6);
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

}  // namespace fdtest

#endif  // TEST_FD_CHECK_H
