// NVTX (profiler annotations) stand-in: ranges and names mark nothing here, as
// with no profiler attached. Enough for programs that annotate their code.
#ifndef EMU_NVTOOLSEXT_H
#define EMU_NVTOOLSEXT_H

inline int nvtxRangePushA(const char*) { return 0; }
inline int nvtxRangePush(const char* s) { return nvtxRangePushA(s); }
inline int nvtxRangePop() { return 0; }
inline void nvtxMarkA(const char*) {}
inline void nvtxMark(const char* s) { nvtxMarkA(s); }

#endif  // EMU_NVTOOLSEXT_H
