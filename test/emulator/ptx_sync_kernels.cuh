// Kernels that synchronise through memory in raw inline PTX: strong loads and
// stores (volatile, relaxed, acquire, release), atom, red, fence and membar.
// test_ptx_sync.cu runs them in the emulator against CPU computations;
// nvcc_ptx.cu compiles the same kernels with nvcc for every GPU target, so
// ptxas accepts each asm string the emulator runs.
#ifndef TEST_EMULATOR_PTX_SYNC_KERNELS_CUH
#define TEST_EMULATOR_PTX_SYNC_KERNELS_CUH

// Lane 0 of warps 0, 1 and 2 take turns through a counter in global memory:
// step k is warp k % 3's, and it writes out[k] from out[k - 1], which the
// warp before wrote with a plain store. Each warp polls and hands over with
// other instructions:
//   warp 0: ld.acquire in a loop inside the asm (a label and a guarded bra
//           back to it), then st.release;
//   warp 1: ld.volatile and membar.gl after it, then membar.gl and st.volatile;
//   warp 2: ld.relaxed (generic address) and fence.acq_rel, then red.release.add.
// In the emulator each strong load lets the other threads run, so no poll
// spins forever; the race checker must see each hand-over as ordering the
// plain stores to out.
__global__ void strong_turns_kernel(unsigned* turn, unsigned* out, int steps) {
    if (threadIdx.x % 32) return;
    const unsigned me = threadIdx.x / 32;
    for (int k = int(me); k < steps; k += 3) {
        unsigned now = ~0u;
        if (me == 0) {  // the whole wait in the asm
            asm volatile(
                "{\n\t.reg .pred p;\n"
                "WAIT:\n\t"
                "ld.acquire.gpu.global.u32 %0, [%1];\n\t"
                "setp.ne.u32 p, %0, %2;\n\t"
                "@p bra WAIT;\n\t"
                "}"
                : "=r"(now)
                : "l"(turn), "r"(unsigned(k))
                : "memory");
        }
        while (me != 0 && now != unsigned(k)) {
            if (me == 1) {
                asm volatile("ld.volatile.global.u32 %0, [%1];" : "=r"(now) : "l"(turn) : "memory");
            } else {
                asm volatile("ld.relaxed.gpu.u32 %0, [%1];\n\tfence.acq_rel.gpu;" : "=r"(now) : "l"(turn) : "memory");
            }
        }
        if (me == 1) asm volatile("membar.gl;" ::: "memory");
        out[k] = (k ? out[k - 1] : 0u) * 3u + me + 1u;
        if (me == 0) {
            asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(turn), "r"(unsigned(k + 1)) : "memory");
        } else if (me == 1) {
            asm volatile("membar.gl;\n\tst.volatile.global.u32 [%0], %1;" ::"l"(turn), "r"(unsigned(k + 1)) : "memory");
        } else {
            asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(turn) : "memory");
        }
    }
}

// The same turns through a counter in shared memory, with the CTA scope,
// handed over with strong stores only (each must count as progress):
//   warp 0: ld.acquire.cta.shared in a loop inside the asm (a guarded bra
//           forward out of it, a bra.uni back), then st.release.cta.shared;
//   warp 1: atom.or with 0 (an atomic read, which leaves memory as it was),
//           then membar.cta and st.relaxed.cta.shared;
//   warp 2: ld.volatile.shared.v2 of the counter and its neighbour (which
//           stays 0), then fence.sc.cta and st.volatile.shared.
__global__ void strong_turns_shared_kernel(unsigned* out, int steps) {
    __shared__ __align__(8) unsigned turn[2];
    if (threadIdx.x < 2) turn[threadIdx.x] = 0;
    __syncthreads();
    if (threadIdx.x % 32) return;
    const unsigned me = threadIdx.x / 32;
    const unsigned at = unsigned(__cvta_generic_to_shared(turn));
    for (int k = int(me); k < steps; k += 3) {
        unsigned now = ~0u, next = 0;
        if (me == 0) {  // the whole wait in the asm
            asm volatile(
                "{\n\t.reg .pred done;\n"
                "POLL:\n\t"
                "ld.acquire.cta.shared::cta.u32 %0, [%1];\n\t"
                "setp.eq.u32 done, %0, %2;\n\t"
                "@done bra DONE;\n\t"
                "bra.uni POLL;\n"
                "DONE:\n\t"
                "}"
                : "=r"(now)
                : "r"(at), "r"(unsigned(k))
                : "memory");
        }
        while (me != 0 && now != unsigned(k)) {
            if (me == 1) {
                asm volatile("atom.relaxed.cta.shared.or.b32 %0, [%1], 0;" : "=r"(now) : "r"(at) : "memory");
            } else {
                asm volatile("ld.volatile.shared.v2.u32 {%0, %1}, [%2];" : "=r"(now), "=r"(next) : "r"(at) : "memory");
            }
        }
        if (me == 1) asm volatile("membar.cta;" ::: "memory");
        out[k] = (k ? out[k - 1] : 0u) * 5u + me + next + 1u;
        if (me == 0) {
            asm volatile("st.release.cta.shared::cta.u32 [%0], %1;" ::"r"(at), "r"(unsigned(k + 1)) : "memory");
        } else if (me == 1) {
            asm volatile("st.relaxed.cta.shared.u32 [%0], %1;" ::"r"(at), "r"(unsigned(k + 1)) : "memory");
        } else {
            asm volatile("fence.sc.cta;\n\tst.volatile.shared.u32 [%0], %1;" ::"r"(at), "r"(unsigned(k + 1))
                         : "memory");
        }
    }
}

// The wait loop of CUTLASS-style code, whole in one asm statement: the
// threads of warp 0 wait on an mbarrier with try_wait.parity until lane 0 of
// warp 1, which first sleeps a while and fills a buffer, arrives; warp 0 then
// doubles the buffer into out. The loop branches forward out of it and back to
// its label. (In the emulator each sleep and each try_wait that finds the
// phase incomplete lets the other warp run once, so a loop that did not loop
// would read the buffer before it is filled.)
__global__ void labelled_wait_kernel(const float* in, float* out) {
    __shared__ float buffer[32];
    __shared__ __align__(8) unsigned long long bar;
    const unsigned lane = threadIdx.x % 32;
    const unsigned at = unsigned(__cvta_generic_to_shared(&bar));
    if (threadIdx.x == 0) asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(at) : "memory");
    __syncthreads();
    if (threadIdx.x >= 32) {
        for (int k = 0; k < 4; ++k) __nanosleep(1000);
        buffer[lane] = in[lane];
        __syncwarp();
        if (lane == 0) asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];" ::"r"(at) : "memory");
        return;
    }
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900  // try_wait is sm_90's (the emulator's __CUDA_ARCH__ is 900)
    asm volatile(
        "{\n\t"
        ".reg .pred P1;\n"
        "LAB_WAIT:\n\t"
        "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n\t"
        "@P1 bra DONE;\n\t"
        "bra LAB_WAIT;\n"
        "DONE:\n\t"
        "}" ::"r"(at),
        "r"(0u)
        : "memory");
#endif
    out[lane] = 2.0f * buffer[lane];
}

// Every thread of every block applies each atomic operation once to shared
// counters in global memory, with operands from a, b (32 and 64 bits) and f
// (small integers, so float sums are exact in any order):
//   u32[0] atom.add 1 (olds[t] its result)  u32[1] atom.and ~(1 << a % 32)
//   u32[2] red.or 1 << a % 32               u32[3] atom.xor a
//   u32[4] atom.inc, limit 6                u32[5] red.dec, limit 10
//   u32[6] atom.min.u32 a                   u32[7] red.max.u32 a
//   u32[8] atom.exch a (xolds[t] its result)
//   u32[9] add a % 7 + 1 through an atom.cas loop
//   s32[0] red.add.s32 (int)a >> 20   s32[1] atom.min.s32 a   s32[2] red.max.s32 a
//   u64[0] atom.add.u64 b   u64[1] red.xor.b64 b   u64[2] atom.and.b64 ~(1 << b % 64)
//   u64[3] atom.min.u64 b   u64[4] red.max.u64 b
//   s64[0] red.min.s64 b    s64[1] atom.max.s64 b
//   f32[0] atom.add.f32 f   f64[0] red.add.f64 f
// (olds64[t] and folds[t] the results of the u64 and f32 adds), and per block
// in shared memory red.add.u32 a % 1000 and atom.add.u64 b % 1000, whose
// totals thread 0 writes to block_u32 and block_u64.
__global__ void atom_ops_kernel(const unsigned* a, const unsigned long long* b, const float* f, unsigned* u32, int* s32,
                                unsigned long long* u64, long long* s64, float* f32, double* f64, unsigned* olds,
                                unsigned* xolds, unsigned long long* olds64, float* folds, unsigned* block_u32,
                                unsigned long long* block_u64) {
    __shared__ unsigned sum32;
    __shared__ unsigned long long sum64;
    if (threadIdx.x == 0) sum32 = 0, sum64 = 0;
    __syncthreads();
    const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned x = a[t];
    const unsigned long long y = b[t];
    const double fd = f[t];
    unsigned r = 0;
    unsigned long long q = 0;
    asm volatile("atom.global.add.u32 %0, [%1], 1;" : "=r"(r) : "l"(u32 + 0) : "memory");
    olds[t] = r;
    asm volatile("atom.relaxed.gpu.global.and.b32 %0, [%1], %2;"
                 : "=r"(r)
                 : "l"(u32 + 1), "r"(~(1u << x % 32))
                 : "memory");
    asm volatile("red.global.or.b32 [%0], %1;" ::"l"(u32 + 2), "r"(1u << x % 32) : "memory");
    asm volatile("atom.xor.b32 %0, [%1], %2;" : "=r"(r) : "l"(u32 + 3), "r"(x) : "memory");
    asm volatile("atom.global.inc.u32 %0, [%1], 6;" : "=r"(r) : "l"(u32 + 4) : "memory");
    asm volatile("red.relaxed.gpu.global.dec.u32 [%0], 10;" ::"l"(u32 + 5) : "memory");
    asm volatile("atom.global.min.u32 %0, [%1], %2;" : "=r"(r) : "l"(u32 + 6), "r"(x) : "memory");
    asm volatile("red.global.max.u32 [%0], %1;" ::"l"(u32 + 7), "r"(x) : "memory");
    asm volatile("atom.global.exch.b32 %0, [%1], %2;" : "=r"(r) : "l"(u32 + 8), "r"(x) : "memory");
    xolds[t] = r;
    unsigned seen = 0, got = 0;
    do {
        seen = got;
        asm volatile("atom.acquire.gpu.global.cas.b32 %0, [%1], %2, %3;"
                     : "=r"(got)
                     : "l"(u32 + 9), "r"(seen), "r"(seen + x % 7 + 1)
                     : "memory");
    } while (got != seen);
    asm volatile("red.global.add.s32 [%0], %1;" ::"l"(s32 + 0), "r"(int(x) >> 20) : "memory");
    asm volatile("atom.global.min.s32 %0, [%1], %2;" : "=r"(r) : "l"(s32 + 1), "r"(x) : "memory");
    asm volatile("red.release.gpu.global.max.s32 [%0], %1;" ::"l"(s32 + 2), "r"(x) : "memory");
    asm volatile("atom.global.add.u64 %0, [%1], %2;" : "=l"(q) : "l"(u64 + 0), "l"(y) : "memory");
    olds64[t] = q;
    asm volatile("red.global.xor.b64 [%0], %1;" ::"l"(u64 + 1), "l"(y) : "memory");
    asm volatile("atom.global.and.b64 %0, [%1], %2;" : "=l"(q) : "l"(u64 + 2), "l"(~(1ull << y % 64)) : "memory");
    asm volatile("atom.global.min.u64 %0, [%1], %2;" : "=l"(q) : "l"(u64 + 3), "l"(y) : "memory");
    asm volatile("red.global.max.u64 [%0], %1;" ::"l"(u64 + 4), "l"(y) : "memory");
    asm volatile("red.global.min.s64 [%0], %1;" ::"l"(s64 + 0), "l"(y) : "memory");
    asm volatile("atom.global.max.s64 %0, [%1], %2;" : "=l"(q) : "l"(s64 + 1), "l"(y) : "memory");
    float of = 0;
    asm volatile("atom.global.add.f32 %0, [%1], %2;" : "=f"(of) : "l"(f32), "f"(f[t]) : "memory");
    folds[t] = of;
    asm volatile("red.global.add.f64 [%0], %1;" ::"l"(f64), "d"(fd) : "memory");
    const unsigned s32at = unsigned(__cvta_generic_to_shared(&sum32)),
                   s64at = unsigned(__cvta_generic_to_shared(&sum64));
    asm volatile("red.shared.add.u32 [%0], %1;" ::"r"(s32at), "r"(x % 1000) : "memory");
    asm volatile("atom.shared::cta.add.u64 %0, [%1], %2;" : "=l"(q) : "r"(s64at), "l"(y % 1000) : "memory");
    __syncthreads();
    if (threadIdx.x == 0) block_u32[blockIdx.x] = sum32, block_u64[blockIdx.x] = sum64;
}

#endif  // TEST_EMULATOR_PTX_SYNC_KERNELS_CUH
