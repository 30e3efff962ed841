// cooperative_groups/memcpy_async.h: cg::memcpy_async(group, dst, src, bytes)
// with cg::wait(group) and cg::wait_prior<N>(group).
#ifndef EMU_COOPERATIVE_GROUPS_MEMCPY_ASYNC_H
#define EMU_COOPERATIVE_GROUPS_MEMCPY_ASYNC_H

#include "cooperative_groups.h"
#include "emu/async_copies.h"

namespace cooperative_groups {

// memcpy_async(group, dst, src, bytes) and wait(group) / wait_prior<N>(group):
// each thread of the group takes its share of the bytes (4-byte words, or
// bytes where the pointers or the size are not 4-aligned) and the copies land
// when the thread waits, as cp.async's do: reading the destination before
// wait() sees the old contents, and the race checker sees the copy's stores
// made at the wait, ordered for the other threads by the wait's group sync.
template <class G>
inline void memcpy_async(const G& g, void* dst, const void* src, std::size_t bytes) {
    ::emu::AsyncCopyState& st = ::emu::async_copy_state();
    bool words = (reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) | bytes) % 4 == 0;
    std::size_t unit = words ? 4 : 1, n = bytes / unit, stride = std::size_t(g.size());
    for (std::size_t i = std::size_t(g.thread_rank()); i < n; i += stride)
        st.pending.push_back(::emu::AsyncCopy{static_cast<char*>(dst) + i * unit,
                                              static_cast<const char*>(src) + i * unit, unsigned(unit), st.committed});
    ++st.committed;  // each call is its own batch for wait_prior
}
template <unsigned N, class G>
inline void wait_prior(const G& g) {
    ::emu::land_async_copies_but(N);
    g.sync();
}
template <class G>
inline void wait(const G& g) {
    wait_prior<0>(g);
}

}  // namespace cooperative_groups

#endif  // EMU_COOPERATIVE_GROUPS_MEMCPY_ASYNC_H
