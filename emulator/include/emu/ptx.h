// Inline PTX in the emulator. The rewriter (emulator/tools/emu_rewrite.cpp)
// turns every asm statement of a CUDA source into
//
//   do {
//       static const ::emu::PtxSite site("TEMPLATE", "=f,r,l,n", __FILE__, __LINE__);
//       ::emu::PtxArg args[] = {::emu::ptx_out<'f'>(d), ::emu::ptx_in<'r'>(a), ...};
//       site.run(args, N);
//   } while (0)
//
// so the emulator executes the same PTX text as the GPU. The site's first run
// parses its template once (under a lock) into decoded instructions, with the
// immediates ("n" operands, compile-time constants, so the same at every call
// of the site) taken from that call; run() executes them for the calling CUDA thread, the warp
// collectives (mma.sync, ldmatrix, wgmma) together with the other lanes.
// Outputs are passed by address, inputs and immediates by value; the
// constraint letter gives the width: r 32-bit integer, l 64-bit, f float,
// d double, h 16-bit, c 8-bit, n immediate.
#ifndef EMU_PTX_H
#define EMU_PTX_H

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace emu {

// The .shared state space's addresses (32-bit, as __cvta_generic_to_shared
// gives them): dynamic shared memory starts at 0, the static __shared__
// variable of slot k at (k + 1) * 2^18. Both directions check the address.
uint32_t shared_window_address(const void* p);
void* shared_window_pointer(uint32_t address, std::size_t bytes);
std::size_t dynamic_shared_bytes();
// The .shared::cluster state space's addresses: bits 27..31 hold the rank + 1
// of the block (0: the running block's own, so a .shared::cta address is also
// a .shared::cluster one), bits 0..26 the address in that block's window.
// mapa.shared::cluster makes one from an address and a rank.
uint32_t cluster_window_map(uint32_t address, unsigned rank);
void* cluster_window_pointer(uint32_t address, std::size_t bytes);

// One operand of an asm statement: `out` the address of an output ("=" or
// "+"), else `in` the input's bits.
struct PtxArg {
    void* out;
    uint64_t in;
};

class PtxSite {
public:
    // Constant-initialised (no guard variable): the first run() parses the
    // template, so that no synchronisation between the CUDA threads that run a
    // site is added (the race checker would take it for an ordering).
    constexpr PtxSite(const char* text, const char* constraints, const char* file, int line)
        : text_(text), constraints_(constraints), file_(file), line_(line) {}
    void run(PtxArg* args, int n) const;
    struct Program;

private:
    const Program& program(const PtxArg* args, int n) const;
    const char* text_;
    const char* constraints_;
    const char* file_;
    int line_;
    mutable Program* prog_ = nullptr;  // parsed once, kept for the program's life
};

constexpr std::size_t ptx_width(char c) { return c == 'l' || c == 'd' ? 8 : c == 'h' ? 2 : c == 'c' ? 1 : 4; }

template <char C, class T>
inline PtxArg ptx_out(T& x) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) == ptx_width(C),
                  "asm output operand: the variable's size does not match its constraint");
    return PtxArg{static_cast<void*>(&x), 0};
}

template <char C, class T>
inline PtxArg ptx_in(const T& x) {
    uint64_t bits = 0;
    if constexpr (C == 'f') {
        const float f = static_cast<float>(x);
        std::memcpy(&bits, &f, 4);
    } else if constexpr (C == 'd') {
        const double f = static_cast<double>(x);
        std::memcpy(&bits, &f, 8);
    } else if constexpr (std::is_pointer<T>::value) {
        static_assert(C == 'l', "asm input operand: a pointer needs the \"l\" constraint");
        bits = reinterpret_cast<uintptr_t>(x);
    } else if constexpr (std::is_integral<T>::value || std::is_enum<T>::value) {
        bits = static_cast<uint64_t>(static_cast<long long>(x));
        if (ptx_width(C) < 8 && C != 'n') bits &= (uint64_t(1) << (8 * ptx_width(C))) - 1;
    } else {
        static_assert(std::is_trivially_copyable<T>::value && sizeof(T) == ptx_width(C),
                      "asm input operand: the value's size does not match its constraint");
        std::memcpy(&bits, &x, sizeof(T));
    }
    return PtxArg{nullptr, bits};
}

}  // namespace emu

// The generic -> .shared conversion of nvcc's device runtime.
inline std::size_t __cvta_generic_to_shared(const void* p) { return ::emu::shared_window_address(p); }
inline void* __cvta_shared_to_generic(std::size_t a) { return ::emu::shared_window_pointer(uint32_t(a), 0); }

#endif  // EMU_PTX_H
