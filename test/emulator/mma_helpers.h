// Host-side helpers of the emulator's mma and wgmma tests: float bits, bf16
// and f16 rounding, and where the PTX ISA's mma A fragment puts each element.
#ifndef TEST_EMULATOR_MMA_HELPERS_H
#define TEST_EMULATOR_MMA_HELPERS_H

#include <cmath>
#include <cstring>

namespace emu_test {

inline float as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline unsigned as_bits(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
// Round to nearest even, NaN aside (the inputs hold none).
inline unsigned short bf16_rn(float f) {
    const unsigned u = as_bits(f);
    return static_cast<unsigned short>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
// f32 -> f16 for normal halves (inputs away from 0 and below 65504), round to nearest even.
inline unsigned short f16_rn(float f) {
    const unsigned u = as_bits(f), sign = (u >> 16) & 0x8000u, e = ((u >> 23) & 0xffu) - 112u, m = u & 0x7fffffu;
    unsigned h = (e << 10) | (m >> 13);
    const unsigned rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
    return static_cast<unsigned short>(sign | h);
}
// f16 -> f32 for normal halves (a subnormal or zero reads as a tiny normal, within 2^-14).
inline float f16_to_float(unsigned short h) {
    const unsigned e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    const float v = std::ldexp(float(1024 + m), int(e) - 25);
    return (h & 0x8000u) ? -v : v;
}

// The PTX ISA's A fragment of mma.m16n8k{8,16,32} ("Matrix Fragments for
// mma.m16n8k8 / m16n8k16 / m16n8k32"), also wgmma's A from registers per warp:
// with g = lane / 4 and t = lane % 4, where element i of lane's A sits.
inline void a_pos(int k, int i, int lane, int& row, int& col) {
    const int g = lane / 4, t = lane % 4;
    if (k == 8) row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
    else if (k == 16) row = g + ((i & 2) ? 8 : 0), col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
    else row = g + ((i & 4) ? 8 : 0), col = 4 * t + (i & 3) + (i >= 8 ? 16 : 0);
}

}  // namespace emu_test

#endif  // TEST_EMULATOR_MMA_HELPERS_H
