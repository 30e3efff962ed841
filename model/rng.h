// A small, portable random number generator: the same seed gives the same
// numbers with every compiler and standard library (std::normal_distribution
// does not promise that).
#ifndef MODEL_RNG_H
#define MODEL_RNG_H

#include <cmath>
#include <cstdint>

namespace llama {

class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    // splitmix64
    uint64_t next_u64() {
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
    // Uniform integer in [0, n).
    uint64_t below(uint64_t n) { return next_u64() % n; }
    // Standard normal by Box-Muller (one value per call; keeps it simple).
    double normal() {
        double u1 = uniform(), u2 = uniform();
        if (u1 < 1e-300) u1 = 1e-300;
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
    uint64_t state() const { return state_; }
    void set_state(uint64_t s) { state_ = s; }

private:
    uint64_t state_;
};

}  // namespace llama

#endif  // MODEL_RNG_H
