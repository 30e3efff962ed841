// libcu++'s cuda::thread_scope, shared by <cuda/barrier>, <cuda/pipeline> and
// <cuda/atomic>.
#ifndef EMU_THREAD_SCOPE_H
#define EMU_THREAD_SCOPE_H

namespace cuda {

enum thread_scope {
    thread_scope_system = 0,
    thread_scope_device = 1,
    thread_scope_block = 2,
    thread_scope_thread = 3,
};

}  // namespace cuda

#endif  // EMU_THREAD_SCOPE_H
