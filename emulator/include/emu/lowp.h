// The 16-bit float types of cuda_fp16.h and cuda_bf16.h (__half, __nv_bfloat16
// and their pairs) with their conversions, arithmetic and atomics. Arithmetic
// is done in float and rounded to nearest even, as the hardware does.
#ifndef EMU_LOWP_H
#define EMU_LOWP_H

#include <cmath>
#include <cstdint>
#include <cstring>
#include "emu/device.h"

namespace emu {
inline uint32_t f2u(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float u2f(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t float_to_bf16_rn(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
}
inline float bf16_to_float(uint16_t b) { return u2f(uint32_t(b) << 16); }

inline uint16_t float_to_half_rn(float f) {
    uint32_t u = f2u(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);   // NaN
    if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to infinity
    if (a < 0x38800000u) {                                  // subnormal half or zero
        // value = a as float; half subnormal unit is 2^-24.
        float v = u2f(a) * 16777216.0f;        // exact scaling by 2^24
        uint32_t q = uint32_t(nearbyintf(v));  // round to nearest even
        return uint16_t(sign | q);
    }
    uint32_t e = (a >> 23) - 112;  // rebias 127 -> 15
    uint32_t m = a & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
    return uint16_t(sign | h);
}
inline float half_to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float v = float(m) / 16777216.0f;
        return sign ? -v : v;
    }
    if (e == 31) return u2f(sign | 0x7f800000u | (m << 13));
    return u2f(sign | ((e + 112) << 23) | (m << 13));
}
}  // namespace emu

#define EMU_LOWP_TYPE(T, TO, FROM)                                                                              \
    struct T {                                                                                                  \
        unsigned short __x;                                                                                     \
        T() = default;                                                                                          \
        T(float f) : __x(::emu::TO(f)) {}                                                                       \
        T(double d) : __x(::emu::TO(float(d))) {}                                                               \
        T(int i) : __x(::emu::TO(float(i))) {}                                                                  \
        T(unsigned int i) : __x(::emu::TO(float(i))) {}                                                         \
        T(long long i) : __x(::emu::TO(float(i))) {}                                                            \
        T(unsigned long long i) : __x(::emu::TO(float(i))) {}                                                   \
        operator float() const { return ::emu::FROM(__x); }                                                     \
        T& operator+=(const T& o) {                                                                             \
            *this = T(float(*this) + float(o));                                                                 \
            return *this;                                                                                       \
        }                                                                                                       \
        T& operator-=(const T& o) {                                                                             \
            *this = T(float(*this) - float(o));                                                                 \
            return *this;                                                                                       \
        }                                                                                                       \
        T& operator*=(const T& o) {                                                                             \
            *this = T(float(*this) * float(o));                                                                 \
            return *this;                                                                                       \
        }                                                                                                       \
        T& operator/=(const T& o) {                                                                             \
            *this = T(float(*this) / float(o));                                                                 \
            return *this;                                                                                       \
        }                                                                                                       \
    };                                                                                                          \
    inline T operator+(T a, T b) { return T(float(a) + float(b)); }                                             \
    inline T operator-(T a, T b) { return T(float(a) - float(b)); }                                             \
    inline T operator*(T a, T b) { return T(float(a) * float(b)); }                                             \
    inline T operator/(T a, T b) { return T(float(a) / float(b)); }                                             \
    inline T operator-(T a) {                                                                                   \
        T r;                                                                                                    \
        r.__x = (unsigned short)(a.__x ^ 0x8000u);                                                              \
        return r;                                                                                               \
    }                                                                                                           \
    inline bool operator==(T a, T b) { return float(a) == float(b); }                                           \
    inline bool operator!=(T a, T b) { return float(a) != float(b); }                                           \
    inline bool operator<(T a, T b) { return float(a) < float(b); }                                             \
    inline bool operator<=(T a, T b) { return float(a) <= float(b); }                                           \
    inline bool operator>(T a, T b) { return float(a) > float(b); }                                             \
    inline bool operator>=(T a, T b) { return float(a) >= float(b); }                                           \
    struct T##2 {                                                                                               \
        T x, y;                                                                                                 \
    };                                                                                                          \
    inline T##2 operator+(T##2 a, T##2 b) { return T##2 {a.x + b.x, a.y + b.y}; }                               \
    inline T##2 operator-(T##2 a, T##2 b) { return T##2 {a.x - b.x, a.y - b.y}; }                               \
    inline T##2 operator*(T##2 a, T##2 b) { return T##2 {a.x * b.x, a.y * b.y}; }                               \
    inline T __hadd(T a, T b) { return a + b; }                                                                 \
    inline T __hsub(T a, T b) { return a - b; }                                                                 \
    inline T __hmul(T a, T b) { return a * b; }                                                                 \
    inline T __hdiv(T a, T b) { return a / b; }                                                                 \
    inline T __hneg(T a) { return -a; }                                                                         \
    inline T __habs(T a) {                                                                                      \
        T r;                                                                                                    \
        r.__x = (unsigned short)(a.__x & 0x7fffu);                                                              \
        return r;                                                                                               \
    }                                                                                                           \
    inline T __hfma(T a, T b, T c) { return T(fmaf(float(a), float(b), float(c))); }                            \
    inline T __hmax(T a, T b) { return T(fmaxf(float(a), float(b))); }                                          \
    inline T __hmin(T a, T b) { return T(fminf(float(a), float(b))); }                                          \
    inline bool __heq(T a, T b) { return a == b; }                                                              \
    inline bool __hne(T a, T b) { return a != b; }                                                              \
    inline bool __hlt(T a, T b) { return a < b; }                                                               \
    inline bool __hle(T a, T b) { return a <= b; }                                                              \
    inline bool __hgt(T a, T b) { return a > b; }                                                               \
    inline bool __hge(T a, T b) { return a >= b; }                                                              \
    inline bool __hisnan(T a) { return std::isnan(float(a)); }                                                  \
    inline bool __hisinf(T a) { return std::isinf(float(a)); }                                                  \
    inline T hexp(T a) { return T(expf(float(a))); }                                                            \
    inline T hexp2(T a) { return T(exp2f(float(a))); }                                                          \
    inline T hlog(T a) { return T(logf(float(a))); }                                                            \
    inline T hsqrt(T a) { return T(sqrtf(float(a))); }                                                          \
    inline T hrsqrt(T a) { return T(1.0f / sqrtf(float(a))); }                                                  \
    inline T hrcp(T a) { return T(1.0f / float(a)); }                                                           \
    inline T htanh(T a) { return T(tanhf(float(a))); }                                                          \
    inline T##2 __hadd2(T##2 a, T##2 b) { return a + b; }                                                       \
    inline T##2 __hsub2(T##2 a, T##2 b) { return a - b; }                                                       \
    inline T##2 __hmul2(T##2 a, T##2 b) { return a * b; }                                                       \
    inline T##2 __hfma2(T##2 a, T##2 b, T##2 c) { return T##2 {__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y)}; } \
    inline T##2 __hmax2(T##2 a, T##2 b) { return T##2 {__hmax(a.x, b.x), __hmax(a.y, b.y)}; }                   \
    inline T##2 __hmin2(T##2 a, T##2 b) { return T##2 {__hmin(a.x, b.x), __hmin(a.y, b.y)}; }                   \
    inline T __low2##T(T##2 a) { return a.x; }                                                                  \
    inline T atomicAdd(T* p, T v) {                                                                             \
        return ::emu::atomic_update(p, [v](T o) { return o + v; });                                             \
    }                                                                                                           \
    inline T##2 atomicAdd(T##2 * p, T##2 v) {                                                                   \
        return ::emu::atomic_update(p, [v](T##2 o) { return o + v; });                                          \
    }                                                                                                           \
    inline T##2 make_##T##2(T a, T b) { return T##2 {a, b}; }

EMU_LOWP_TYPE(__half, float_to_half_rn, half_to_float)
EMU_LOWP_TYPE(__nv_bfloat16, float_to_bf16_rn, bf16_to_float)
#undef EMU_LOWP_TYPE

typedef __half half;
typedef __half2 half2;
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

// Conversions named as in cuda_fp16.h.
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return float(h); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
inline __half2 __float2half2_rn(float a) { return __half2{__half(a), __half(a)}; }
inline __half2 __float22half2_rn(float2 f) { return __half2{__half(f.x), __half(f.y)}; }
inline float2 __half22float2(__half2 h) { return float2{float(h.x), float(h.y)}; }
inline __half2 __halves2half2(__half a, __half b) { return __half2{a, b}; }
inline __half2 __half2half2(__half a) { return __half2{a, a}; }
inline float __low2float(__half2 h) { return float(h.x); }
inline float __high2float(__half2 h) { return float(h.y); }
inline __half __high2half(__half2 h) { return h.y; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) {
    __half h;
    h.__x = u;
    return h;
}

// Conversions named as in cuda_bf16.h.
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return float(b); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    return __nv_bfloat162{__nv_bfloat16(a), __nv_bfloat16(b)};
}
inline __nv_bfloat162 __float2bfloat162_rn(float a) { return __nv_bfloat162{__nv_bfloat16(a), __nv_bfloat16(a)}; }
inline __nv_bfloat162 __float22bfloat162_rn(float2 f) { return __nv_bfloat162{__nv_bfloat16(f.x), __nv_bfloat16(f.y)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 b) { return float2{float(b.x), float(b.y)}; }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162{a, b}; }
inline __nv_bfloat162 __bfloat162bfloat162(__nv_bfloat16 a) { return __nv_bfloat162{a, a}; }
inline float __low2float(__nv_bfloat162 b) { return float(b.x); }
inline float __high2float(__nv_bfloat162 b) { return float(b.y); }
inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 b) { return b.y; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    __nv_bfloat16 b;
    b.__x = u;
    return b;
}
inline __nv_bfloat16 __float2bfloat16_rz(float f) {
    return __ushort_as_bfloat16((unsigned short)(::emu::f2u(f) >> 16));
}

#endif  // EMU_LOWP_H
