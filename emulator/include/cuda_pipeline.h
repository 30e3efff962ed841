// The pipeline primitives of cuda_pipeline.h (cp.async under another name):
// __pipeline_memcpy_async records a copy of 4, 8 or 16 bytes (the last
// `zfill` of them written as zeros), __pipeline_commit closes a batch, and
// __pipeline_wait_prior(n) makes the copies of every batch but the newest n.
// Copies land at the wait, so a read before it sees the old contents.
#ifndef EMU_CUDA_PIPELINE_H
#define EMU_CUDA_PIPELINE_H

#include "cuda_runtime.h"
#include "emu/async_copies.h"

inline void __pipeline_memcpy_async(void* dst, const void* src, std::size_t size, std::size_t zfill = 0) {
    if (size != 4 && size != 8 && size != 16)
        ::emu::kernel_fail("__pipeline_memcpy_async: the size must be 4, 8 or 16 bytes");
    if (zfill > size) ::emu::kernel_fail("__pipeline_memcpy_async: zfill is larger than the size");
    if (reinterpret_cast<uintptr_t>(dst) % size || reinterpret_cast<uintptr_t>(src) % size)
        ::emu::kernel_fail("__pipeline_memcpy_async: the pointers must be aligned to the size");
    ::emu::AsyncCopyState& st = ::emu::async_copy_state();
    unsigned copied = unsigned(size - zfill);
    if (copied) st.pending.push_back(::emu::AsyncCopy{dst, src, copied, st.committed});
    if (zfill)
        st.pending.push_back(
            ::emu::AsyncCopy{static_cast<char*>(dst) + copied, ::emu::async_zeros, unsigned(zfill), st.committed});
}
inline void __pipeline_commit() { ++::emu::async_copy_state().committed; }
inline void __pipeline_wait_prior(std::size_t prior) { ::emu::land_async_copies_but(unsigned(prior)); }

#endif  // EMU_CUDA_PIPELINE_H
