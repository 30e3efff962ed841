// Landing the asynchronous copies a thread has issued (cooperative_groups'
// memcpy_async, cuda::pipeline, cuda_pipeline.h). The copies wait in the
// thread's cp.async record (emu::async_copy_state(), tagged with the batch
// they belong to) and are made when the thread waits for them, byte by byte
// with the kernel's own loads and stores, so the race and memory checkers see
// them where a GPU would guarantee them done.
#ifndef EMU_ASYNC_COPIES_H
#define EMU_ASYNC_COPIES_H

#include "emu/device.h"

namespace emu {

// Makes the pending copies for which `done(batch)` is true.
template <class Done>
inline void land_async_copies(Done done) {
    AsyncCopyState& st = async_copy_state();
    std::size_t out = 0;
    for (std::size_t i = 0; i < st.pending.size(); ++i) {
        const AsyncCopy c = st.pending[i];
        if (done(c.group)) {
            const unsigned char* s = static_cast<const unsigned char*>(c.src);
            unsigned char* d = static_cast<unsigned char*>(c.dst);
            for (unsigned b = 0; b < c.bytes; ++b) d[b] = s[b];
        } else {
            st.pending[out++] = c;
        }
    }
    st.pending.resize(out);
}

// Every committed batch but the newest `keep`.
inline void land_async_copies_but(unsigned keep) {
    const unsigned committed = async_copy_state().committed;
    land_async_copies([=](unsigned g) { return g < committed && committed - g > keep; });
}

// Source of the zeros that a copy with a zero fill writes.
alignas(16) inline const unsigned char async_zeros[16] = {};

}  // namespace emu

#endif  // EMU_ASYNC_COPIES_H
