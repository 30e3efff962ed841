// The whole training state in a checkpoint, and back (as llm.c's save_state
// and load_state): the fp32 master weights, the AdamW moments (whole, or with
// ZeRO-1 on several ranks one part per rank), and state.json (the counters, the
// seed, the data loader's position, the tokenizer and the model config, which a
// resumed run must match). lifecycle/checkpoint.h writes and verifies the files.
//
// Templates over the trainer's model (train_llama.cu's TrainModel, one per
// build): it gives params(), adam_m(), adam_v() (host copies, fp32, flat in
// ParamLayout order), download(whole_moments) and upload().
#ifndef LIFECYCLE_TRAIN_STATE_H
#define LIFECYCLE_TRAIN_STATE_H

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lifecycle/checkpoint.h"
#include "lifecycle/safetensors.h"
#include "lifecycle/training_data.h"
#include "model/config.h"
#include "model/params.h"
#include "parallel/comm.h"
#include "parallel/zero1.h"

namespace llama::train_state {

// The counters a checkpoint carries besides the tensors.
struct Progress {
    int step = 0;             // the last optimizer step done
    int adam_step = 0;        // updates applied (AdamW's bias correction counts these)
    int bad_steps_total = 0;  // non-finite steps skipped
};

// The run whose state is saved or restored.
struct Run {
    const ModelConfig& config;
    const ParamLayout& layout;
    const Comm& comm;
    TrainingData& data;
    std::string dir;  // --checkpoint-dir
    int keep = 0;     // --keep-checkpoints (0: all)
    uint64_t seed = 0;
    std::string tokenizer;  // --tokenizer, recorded for the exports of a resumed run
    bool zero = false;      // --zero
    // With ZeRO-1 on several ranks the moments stay sharded: each rank writes
    // its own part into the staging directory, then rank 0 completes the checkpoint.
    bool sharded() const { return zero && comm.world > 1; }
};

// Every parameter tensor of `buffer` (flat, ParamLayout order), named prefix + NAME.
inline std::vector<safetensors::TensorRef> tensor_refs(const ParamLayout& layout, const std::string& prefix,
                                                       std::vector<float>& buffer) {
    std::vector<safetensors::TensorRef> refs;
    for (const ParamTensor& t : layout.tensors())
        refs.push_back({prefix + t.name, safetensors::DType::F32, t.shape, buffer.data() + t.offset});
    return refs;
}

// Writes the checkpoint of step p.step (every rank calls it). False, with the
// reason on stderr, when it could not be written; the previous one is intact.
template <class Model>
bool save(const Run& run, Model& model, const Progress& p) {
    const Comm& comm = run.comm;
    const int64_t n_params = run.layout.total();
    model.download(/*whole_moments=*/!run.sharded());
    nlohmann::json state = {{"step", p.step},
                            {"adam_step", p.adam_step},
                            {"bad_steps_total", p.bad_steps_total},
                            {"seed", run.seed},
                            {"world_size", comm.world},
                            {"data", run.data.state()},
                            {"tokenizer", run.tokenizer},
                            {"model", nlohmann::json::parse(config_to_json(run.config))}};
    std::vector<safetensors::TensorRef> optimizer;
    std::vector<std::string> parts;
    std::string problem;
    int failed_rank = 0;  // 1 + the highest rank that could not write its part
    if (run.sharded()) {
        state["optimizer_shards"] = nlohmann::json::array();
        for (const auto& [r, s] : Zero1::parts(n_params, comm.world)) {
            parts.push_back(checkpoint::optimizer_part_name(r));
            state["optimizer_shards"].push_back({{"file", parts.back()}, {"begin", s.begin}, {"end", s.end()}});
        }
        try {
            if (comm.is_root()) checkpoint::begin_staging(run.dir, p.step);
        } catch (const std::exception& e) {
            problem = e.what();
        }
        if (comm.max(problem.empty() ? 0 : 1) == 0) {  // the staging directory exists: write this rank's part
            const Shard own = Zero1(n_params, comm.rank, comm.world, true).shard();
            const std::vector<int64_t> shape = {own.owned()};
            try {
                if (own.owned() > 0)
                    checkpoint::write_part(
                        run.dir, p.step, checkpoint::optimizer_part_name(comm.rank),
                        {{"exp_avg", safetensors::DType::F32, shape, model.adam_m().data() + own.begin},
                         {"exp_avg_sq", safetensors::DType::F32, shape, model.adam_v().data() + own.begin}});
            } catch (const std::exception& e) {
                std::fprintf(stderr, "train_llama: rank %d: its part of the checkpoint of step %d: %s\n", comm.rank,
                             p.step, e.what());
                failed_rank = comm.rank + 1;
            }
            failed_rank = comm.max(failed_rank);
            if (failed_rank > 0)
                problem =
                    "rank " + std::to_string(failed_rank - 1) + " could not write its part of the optimizer state";
        }
    } else {
        optimizer = tensor_refs(run.layout, "exp_avg/", model.adam_m());
        for (auto& r : tensor_refs(run.layout, "exp_avg_sq/", model.adam_v())) optimizer.push_back(r);
    }
    if (!comm.is_root()) return true;  // rank 0 writes the (replicated) rest
    try {
        if (!problem.empty()) throw std::runtime_error(problem);
        std::string path =
            checkpoint::write(run.dir, p.step, tensor_refs(run.layout, "", model.params()), optimizer, state, parts);
        checkpoint::prune(run.dir, run.keep);
        std::printf("checkpoint: %s\n", path.c_str());
        return true;
    } catch (const std::exception& e) {
        checkpoint::abandon(run.dir, p.step);
        std::vector<std::string> ignored;
        std::string previous = checkpoint::find_latest(run.dir, ignored);
        std::fflush(stdout);
        std::fprintf(stderr, "train_llama: checkpoint of step %d not written: %s; %s\n", p.step, e.what(),
                     previous.empty() ? "there is no earlier checkpoint"
                                      : ("the previous checkpoint " + previous + " is intact").c_str());
        return false;
    }
}

// Restores the newest complete checkpoint of run.dir into the model, the data
// loader and p; false when there is none (the run starts at step 1). Throws
// std::runtime_error naming the file and what is wrong.
template <class Model>
bool resume(const Run& run, Model& model, Progress& p) {
    const Comm& comm = run.comm;
    const int64_t n_params = run.layout.total();
    std::vector<std::string> skipped;
    const std::string path = checkpoint::find_latest(run.dir, skipped);
    for (const auto& line : skipped) std::fprintf(stderr, "train_llama: %s\n", line.c_str());
    if (path.empty()) {
        std::printf("resume: no complete checkpoint in %s; starting from step 1\n", run.dir.c_str());
        return false;
    }
    try {
        nlohmann::json state = checkpoint::read_state(path);
        ModelConfig saved = config_from_json(state.at("model").dump(), path + "/state.json");
        std::string diff = run.config.first_difference(saved);
        if (!diff.empty()) throw std::runtime_error("cannot resume from " + path + " with another model: " + diff);
        // Every rank holds the whole state and the global batch does not
        // depend on the rank count, so any world size continues the run.
        if (state.at("world_size").get<int>() != comm.world)
            std::printf("resume: written by %d ranks, continuing with %d\n", state["world_size"].get<int>(),
                        comm.world);
        safetensors::Reader weights(path + "/model.safetensors");
        for (const ParamTensor& t : run.layout.tensors())
            weights.read(t.name, safetensors::DType::F32, t.shape, model.params().data() + t.offset);
        if (state.contains("optimizer_shards")) {  // one part per rank of a ZeRO-1 run
            int64_t covered = 0;
            for (const auto& part : state["optimizer_shards"]) {
                const std::string file = part.at("file").get<std::string>();
                const int64_t begin = part.at("begin").get<int64_t>(), end = part.at("end").get<int64_t>();
                if (begin != covered || end <= begin || end > n_params)
                    throw std::runtime_error(
                        path + "/state.json: optimizer part " + file + " holds [" + std::to_string(begin) + ", " +
                        std::to_string(end) + "), which does not continue the parts before it at " +
                        std::to_string(covered) + " within the " + std::to_string(n_params) + " parameters");
                safetensors::Reader moments(path + "/" + file);
                moments.read("exp_avg", safetensors::DType::F32, {end - begin}, model.adam_m().data() + begin);
                moments.read("exp_avg_sq", safetensors::DType::F32, {end - begin}, model.adam_v().data() + begin);
                covered = end;
            }
            if (covered != n_params)
                throw std::runtime_error(path + "/state.json: the optimizer parts cover " + std::to_string(covered) +
                                         " of the " + std::to_string(n_params) + " parameters");
        } else {
            safetensors::Reader moments(path + "/optimizer.safetensors");
            for (const ParamTensor& t : run.layout.tensors()) {
                moments.read("exp_avg/" + t.name, safetensors::DType::F32, t.shape, model.adam_m().data() + t.offset);
                moments.read("exp_avg_sq/" + t.name, safetensors::DType::F32, t.shape,
                             model.adam_v().data() + t.offset);
            }
        }
        p.step = state.at("step").get<int>();
        p.adam_step = state.at("adam_step").get<int>();
        p.bad_steps_total = state.at("bad_steps_total").get<int>();
        run.data.restore(state.at("data"));
        model.upload();
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(path + "/state.json: " + e.what());
    }
    std::printf("resume: %s (continuing at step %d)\n", path.c_str(), p.step + 1);
    return true;
}

}  // namespace llama::train_state

#endif  // LIFECYCLE_TRAIN_STATE_H
