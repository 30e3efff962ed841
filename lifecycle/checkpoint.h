// Checkpoints: a directory per step, DIR/step_00000100/, holding
//   model.safetensors      parameters (fp32 master weights; Hugging Face names)
//   optimizer.safetensors  AdamW moments ("exp_avg/NAME", "exp_avg_sq/NAME")
//   state.json             step, model config, data loader and RNG states, counters
//   manifest.json          size and XXH3-64 checksum of each file above; written last
// With ZeRO-1 on several ranks the moments are sharded, and each rank writes
// its own part, optimizer.rankRRRRR.safetensors ("exp_avg", "exp_avg_sq": the
// elements [begin, end) of the flat parameter buffer, listed in state.json),
// into the staging directory before rank 0 completes the checkpoint.
// A checkpoint is written under a temporary name, every file fsynced, the
// manifest last, then renamed into place, so a crash or a full disk never leaves
// a directory that looks complete. Reading verifies the manifest first.
#ifndef LIFECYCLE_CHECKPOINT_H
#define LIFECYCLE_CHECKPOINT_H

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lifecycle/safetensors.h"

namespace llama::checkpoint {

constexpr int kFormatVersion = 1;

// "DIR/step_00000100"
std::string path_for_step(const std::string& dir, int step);

// Writes the checkpoint of `step` atomically and returns its path. On failure
// (for example a full disk) removes what it wrote and throws std::runtime_error
// naming the file and the reason; earlier checkpoints are untouched.
// `parts`: files that begin_staging() and write_part() already put in the
// staging directory (with parts, an empty `optimizer` writes no optimizer.safetensors).
std::string write(const std::string& dir, int step, const std::vector<safetensors::TensorRef>& model,
                  const std::vector<safetensors::TensorRef>& optimizer, const nlohmann::json& state,
                  const std::vector<std::string>& parts = {});

// A checkpoint written by several ranks: rank 0 calls begin_staging(), then
// (after a barrier) every rank write_part(), then (after all succeeded) rank 0
// write(..., parts), or abandon() if any failed. Each throws std::runtime_error
// naming the file and the reason.
void begin_staging(const std::string& dir, int step);
void write_part(const std::string& dir, int step, const std::string& name,
                const std::vector<safetensors::TensorRef>& tensors);
void abandon(const std::string& dir, int step);
// "optimizer.rank00003.safetensors"
std::string optimizer_part_name(int rank);

// Throws std::runtime_error naming the checkpoint and what is wrong: missing
// manifest, missing file, wrong size (truncated), checksum mismatch (corrupt),
// wrong format version.
void verify(const std::string& path);

// The newest checkpoint in `dir` that verifies, or "" if none. Each one skipped
// adds a line to `skipped` naming it and the reason.
std::string find_latest(const std::string& dir, std::vector<std::string>& skipped);

// Complete checkpoints in `dir`, oldest first.
std::vector<std::string> list(const std::string& dir);

// Removes all but the newest `keep` complete checkpoints (keep <= 0: keep all),
// and leftovers of interrupted writes.
void prune(const std::string& dir, int keep);

nlohmann::json read_state(const std::string& path);

}  // namespace llama::checkpoint

#endif  // LIFECYCLE_CHECKPOINT_H
