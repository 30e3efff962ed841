// Checkpoints: a directory per step, DIR/step_00000100/, holding
//   model.safetensors      parameters (fp32 master weights; Hugging Face names)
//   optimizer.safetensors  AdamW moments ("exp_avg/NAME", "exp_avg_sq/NAME")
//   state.json             step, model config, data loader and RNG states, counters
//   manifest.json          size and XXH3-64 checksum of each file above; written last
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
std::string write(const std::string& dir, int step, const std::vector<safetensors::TensorRef>& model,
                  const std::vector<safetensors::TensorRef>& optimizer, const nlohmann::json& state);

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
