// Knobs of the emulator that tests and tools may turn (the environment
// variables EMU_SEED, EMU_THREADS and EMU_DEVICE set the same things).
#ifndef EMU_CONTROL_H
#define EMU_CONTROL_H

#include <cstdint>

namespace emu {
// Seed of the order in which ready work of different streams runs.
void set_stream_seed(uint64_t seed);
// OS threads that run the blocks of a grid (1: all blocks on the calling thread).
void set_block_threads(int n);
int block_threads();
}  // namespace emu

#endif  // EMU_CONTROL_H
