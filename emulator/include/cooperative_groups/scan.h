// cooperative_groups/scan.h: inclusive and exclusive scans over a warp-level
// group, in rank order (left to right). Without an operator they add. In an
// exclusive scan rank 0 gets a value-initialised T (0 for numbers).
#ifndef EMU_COOPERATIVE_GROUPS_SCAN_H
#define EMU_COOPERATIVE_GROUPS_SCAN_H

#include "cooperative_groups/reduce.h"

namespace cooperative_groups {

template <class G, class T, class Op>
inline std::decay_t<T> inclusive_scan(const G& g, T&& val, Op&& op) {
    using V = std::decay_t<T>;
    V v[32];
    details::gather(details::warp_mask_of(g), V(val), v);
    unsigned r = unsigned(g.thread_rank());
    V acc = v[0];
    for (unsigned i = 1; i <= r; ++i) acc = op(acc, v[i]);
    return acc;
}
template <class G, class T>
inline std::decay_t<T> inclusive_scan(const G& g, T&& val) {
    return inclusive_scan(g, std::forward<T>(val), plus<std::decay_t<T>>());
}

template <class G, class T, class Op>
inline std::decay_t<T> exclusive_scan(const G& g, T&& val, Op&& op) {
    using V = std::decay_t<T>;
    V v[32];
    details::gather(details::warp_mask_of(g), V(val), v);
    unsigned r = unsigned(g.thread_rank());
    if (r == 0) return V();
    V acc = v[0];
    for (unsigned i = 1; i < r; ++i) acc = op(acc, v[i]);
    return acc;
}
template <class G, class T>
inline std::decay_t<T> exclusive_scan(const G& g, T&& val) {
    return exclusive_scan(g, std::forward<T>(val), plus<std::decay_t<T>>());
}

}  // namespace cooperative_groups

#endif  // EMU_COOPERATIVE_GROUPS_SCAN_H
