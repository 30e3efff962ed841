// cooperative_groups/reduce.h: cg::reduce over a warp-level group (a tile or a
// coalesced group) and the operators it takes. Every thread of the group gets
// the result. The values are combined as a pairwise tree in rank order (rank r
// with r + 1, then pairs of pairs, ...), the same on every thread, so a float
// sum is the same bits in every lane.
#ifndef EMU_COOPERATIVE_GROUPS_REDUCE_H
#define EMU_COOPERATIVE_GROUPS_REDUCE_H

#include <type_traits>
#include "cooperative_groups.h"

namespace cooperative_groups {

template <class T>
struct plus {
    T operator()(const T& a, const T& b) const { return a + b; }
};
template <class T>
struct less {  // as a reduction: the smaller value
    T operator()(const T& a, const T& b) const { return b < a ? b : a; }
};
template <class T>
struct greater {  // as a reduction: the larger value
    T operator()(const T& a, const T& b) const { return a < b ? b : a; }
};
template <class T>
struct bit_and {
    T operator()(const T& a, const T& b) const { return a & b; }
};
template <class T>
struct bit_or {
    T operator()(const T& a, const T& b) const { return a | b; }
};
template <class T>
struct bit_xor {
    T operator()(const T& a, const T& b) const { return a ^ b; }
};

namespace details {
template <class G>
inline unsigned warp_mask_of(const G& g) {
    static_assert(std::is_base_of<warp_group, G>::value,
                  "cg::reduce and the scans take a thread_block_tile or a coalesced_group");
    return g.emu_mask();
}
}  // namespace details

template <class G, class T, class Op>
inline std::decay_t<T> reduce(const G& g, T&& val, Op&& op) {
    using V = std::decay_t<T>;
    V v[32];
    details::gather(details::warp_mask_of(g), V(val), v);
    unsigned n = unsigned(__popc(g.emu_mask()));
    for (unsigned step = 1; step < n; step *= 2)
        for (unsigned i = 0; i + step < n; i += 2 * step) v[i] = op(v[i], v[i + step]);
    return v[0];
}

}  // namespace cooperative_groups

#endif  // EMU_COOPERATIVE_GROUPS_REDUCE_H
