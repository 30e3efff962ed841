// train_llama: pretrain a Llama-style model. One flat loop, read top to bottom:
//   flags -> config -> model and optimizer state -> data -> resume -> loop {
//   forward, backward, gradient norm, clip, AdamW, log, validate, checkpoint }.
//
// One loop, four builds, which differ only in the model the loop drives:
//   train_llama      (nvcc)                    gpu/model.cuh: the CUDA kernels of kernels/
//   train_llama_emu  (the emulator, g++)       the same kernels, each CUDA thread a CPU fiber
//   train_llama_twin (g++, LLAMA_CPU_TWINS)    gpu/model.cuh with each launcher's CPU twin
//                                              (kernels/cpu_twins.h) on the emulator's runtime
//   train_llama_cpu  (g++, LLAMA_BACKEND_CPU)  the fp32 CPU reference ops of reference/, which
//                                              the tests prove against finite differences and PyTorch
// Tokens come from shards (--data, with --tokenizer for text) or from a text
// file read as bytes (--text).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "lifecycle/checkpoint.h"
#include "lifecycle/eval_mc.h"
#include "lifecycle/export.h"
#include "lifecycle/flag_checks.h"
#include "lifecycle/schedule.h"
#include "lifecycle/train_state.h"
#include "lifecycle/training_data.h"
#include "model/config.h"
#include "model/dry_run.h"
#include "model/memory_plan.h"
#include "model/params.h"
#include "model/rng.h"
#include "parallel/comm.h"
#include "parallel/zero1.h"
#include "reference/generate.h"

#ifdef LLAMA_BACKEND_CPU
#include "reference/model.h"
#else
#include "gpu/model.cuh"
#endif

using namespace llama;

namespace {

#ifdef LLAMA_BACKEND_CPU
// The CPU reference model, with the GPU model's interface. Its state lives on
// the host already, so there is nothing to upload or download.
class TrainModel : public ref::Model<float> {
public:
    TrainModel(const ModelConfig& config, int /*micro_batch*/, int /*seq_len*/, bool /*recompute*/,
               int attention_kernel)
        : ref::Model<float>(config) {
        if (attention_kernel != 0)
            throw std::invalid_argument(
                "--attention-kernel picks a GPU kernel; train_llama_cpu computes attention "
                "with the CPU reference");
    }
    // Data parallelism: the gradients are summed over the ranks (MPI or TCP).
    // With ZeRO-1, parallel/zero1.h's steps on host vectors (the CPU keeps whole
    // buffers: this build checks the sharded arithmetic, not the memory).
    void enable_data_parallel(const Comm& comm, bool zero) {
        comm_ = &comm;
        zero1_ = Zero1((long long)grads().size(), comm.rank, comm.world, zero);
    }
    float forward_backward(const int* tokens, const int* targets, int B, int T, float loss_scale, bool sync_gradients,
                           const int* doc_starts) {
        const float loss = forward(tokens, targets, B, T, doc_starts);
        backward(loss_scale);
        comm_wait_ms_ = 0;
        if (sync_gradients && comm_ && comm_->world > 1) {
            const auto t0 = std::chrono::steady_clock::now();
            if (zero1_.on()) zero1_.reduce_scatter(*comm_, grads());
            else comm_->allreduce_sum(grads().data(), (long long)grads().size());
            comm_wait_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        }
        return loss;
    }
    double comm_wait_ms() const { return comm_wait_ms_; }
    double grad_norm() {  // with ZeRO-1: this rank's shard, squared and summed over the ranks
        if (!zero1_.on()) return ref::Model<float>::grad_norm();
        const Shard& own = zero1_.shard();
        return zero1_.global_norm(ref::grad_norm_squared(grads().data() + own.begin, own.owned()),
                                  [this](double x) { return comm_->sum(x); });
    }
    void apply_update(const ref::AdamWHyper& hyper, int step, double grad_scale) {
        if (!zero1_.on()) return ref::Model<float>::apply_update(hyper, step, grad_scale);
        zero1_.for_each_owned_piece(layout(), [&](const ParamTensor& t, long long lo, long long hi, long long) {
            ref::adamw_update(params().data() + lo, grads().data() + lo, adam_m().data() + lo, adam_v().data() + lo,
                              hi - lo, hyper, step, grad_scale, t.decay);
        });
        zero1_.all_gather(*comm_, params());
    }
    void upload() {}
    // With ZeRO-1 the moments are whole only after a gather (whole_moments);
    // without it each rank's own shard is current.
    void download(bool whole_moments = true) {
        if (!zero1_.on() || !whole_moments) return;
        zero1_.all_gather(*comm_, adam_m());
        zero1_.all_gather(*comm_, adam_v());
    }
    std::vector<float> gradients() { return grads(); }
    void poison_gradient() { grads()[0] = NAN; }
    std::string describe() const { return "fp32 CPU reference ops"; }
    double peak_tflops() const { return 0; }  // unknown: give --peak-tflops for an MFU

private:
    const Comm* comm_ = nullptr;
    double comm_wait_ms_ = 0;
    Zero1 zero1_;
};
static_assert(TrainingData::kNotTrained == ref::kIgnoreIndex, "the data's untrained target is the loss's ignored one");
void select_device(const Comm&) {}
void list_attention_versions() { std::printf("none: train_llama_cpu computes attention with the CPU reference\n"); }
#else
static_assert(TrainingData::kNotTrained == gpu::kIgnoreIndex, "the data's untrained target is the loss's ignored one");
// --list-attention-versions: kernels/attention.cuh's table.
void list_attention_versions() { attention_print_versions(); }
// Each rank uses the GPU of its rank within the node.
void select_device(const Comm& comm) {
    int count = 0;
    CUDA_CHECK(cudaGetDeviceCount(&count));
    if (count == 0) {
        std::fflush(stdout);
        std::fprintf(stderr, "train_llama: no CUDA device (use train_llama_cpu or train_llama_emu)\n");
        comm.abort(1);
    }
    CUDA_CHECK(cudaSetDevice(comm.local_rank % count));
}

class TrainModel : public gpu::Model {
public:
    using gpu::Model::Model;
    // Data parallelism: one NCCL communicator over the ranks, its id sent from rank 0 through
    // the Comm (MPI, or the TCP rendezvous).
    void enable_data_parallel(const Comm& comm, bool zero) {
        if (comm.world == 1) return;
#ifdef LLAMA_NCCL
        ncclUniqueId id;
        if (comm.is_root()) NCCL_CHECK(ncclGetUniqueId(&id));
        comm.broadcast(&id, int(sizeof id));
        ncclComm_t nccl;
        NCCL_CHECK(ncclCommInitRank(&nccl, comm.world, id, comm.rank));
        enable_gradient_sync(nccl, comm.rank, comm.world, zero, [&comm](double x) { return comm.sum(x); });
#else
        (void)zero;
        std::fflush(stdout);
        std::fprintf(stderr, "train_llama: %d ranks, but this build has no NCCL\n", comm.world);
        comm.abort(1);
#endif
    }
    std::string describe() const {
        cudaDeviceProp prop;
        CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
        char gb[64];
        std::snprintf(gb, sizeof gb, "%.3g GB", 1e-9 * double(device_bytes()));
        return std::string("CUDA kernels on ") + prop.name + "; " + gb + " allocated up front";
    }
    double peak_tflops() const {  // the device's dense bf16 peak, looked up by name (0: unknown)
        cudaDeviceProp prop;
        CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
        return peak_tflops_for_device(prop.name);
    }
};
#endif

// Exit status after SIGTERM or SIGUSR1 (a checkpoint was written): EX_TEMPFAIL,
// "try again", so a job script can requeue.
constexpr int kExitPreempted = 75;

volatile std::sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int sig) { g_stop_signal = sig; }

const Comm* g_comm = nullptr;  // set once the ranks have joined

// Every rank that dies takes the job with it: the others must not wait for it.
[[noreturn]] void die(const std::string& msg) {
    std::fflush(stdout);  // what was printed before comes first: the error is the last line
    if (g_comm && g_comm->world > 1) std::fprintf(stderr, "train_llama: rank %d: %s\n", g_comm->rank, msg.c_str());
    else std::fprintf(stderr, "train_llama: %s\n", msg.c_str());
    std::fflush(stderr);
    if (g_comm) g_comm->abort(1);
    std::exit(1);
}

// Every flag of the trainer, with its default.
struct Flags {
    std::string preset_name = "tiny", config_path, text_path, schedule_name = "cosine", decay_shape = "linear";
    std::string checkpoint_dir, log_jsonl, init_hf_dir, init_checkpoint, data_spec, val_data_spec, tokenizer_path;
    int vocab_override = 0;
    double init_std = 0;
    std::string export_hf_dir, export_gguf_path;
    int steps = 200, batch = 8, seq_len = 128, warmup = 20, log_every = 10, val_every = 50, val_batches = 8;
    double epochs = 0;  // instead of steps, when given
    int64_t batch_tokens = 0;
    int micro_batch = 0;
    int decay_start = -1, decay_steps = -1, checkpoint_every = 0, keep_checkpoints = 0, max_bad_steps = 5;
    uint64_t seed = 42;
    double lr = 3e-3, min_lr = -1, cooldown_fraction = -1, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95,
           grad_clip = 1.0, val_fraction = 0.05, peak_tflops = 0;
    bool dry_run = false, resume = false, recompute = false, zero = false;
    int attention_kernel = 0;  // 0: the default of kernels/attention.cuh's table
    bool list_versions = false;
    std::string doc_mask = "auto";  // attention inside documents: auto (packed conversations), on, off
    std::string debug_dump_grads, debug_dump_batches, debug_export_init, rendezvous;
    double rendezvous_timeout = 300;
    int debug_crash_step = 0;
    std::vector<int> debug_nan_steps;
    int sample_every = 0, sample_tokens = 64;
    std::string sample_prompt = "\n", eval_mc_path;
};

// The command line, checked flag by flag (CLI11); --help and --list-attention-versions print and exit.
Flags parse_flags(int argc, char** argv) {
    Flags f;
    CLI::App app{"train_llama: pretrain a Llama-style language model"};
    // A flag given twice takes its last value, so scripts can append overrides.
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.add_option(
           "--preset", f.preset_name,
           "model preset: " +
               [] {
                   std::string s;
                   for (const auto& n : preset_names()) s += (s.empty() ? "" : ", ") + n;
                   return s;
               }())
        ->capture_default_str();
    auto* config_opt =
        app.add_option("--config", f.config_path, "Hugging Face config.json of a Llama model (overrides --preset)")
            ->check(CLI::ExistingFile);
    auto* init_hf_opt = app.add_option("--init-hf", f.init_hf_dir,
                                       "start from the weights of a Hugging Face folder (config.json and "
                                       "model.safetensors; its config overrides --preset)")
                            ->check(CLI::ExistingDirectory)
                            ->excludes(config_opt);
    app.add_option("--init-checkpoint", f.init_checkpoint,
                   "start from the weights of a checkpoint (DIR/step_NNNNNNNN; its model overrides --preset) with a "
                   "new optimizer, schedule and data order, as fine-tuning does (--resume continues a run instead)")
        ->check(CLI::ExistingDirectory)
        ->excludes(config_opt)
        ->excludes(init_hf_opt);
    auto* text_opt = app.add_option("--text", f.text_path, "training text, read as bytes (vocabulary 256)")
                         ->check(CLI::ExistingFile);
    app.add_option("--data", f.data_spec, "token shards: files, folders, globs, or a mixture W:PATHS,W:PATHS")
        ->excludes(text_opt);
    app.add_option("--val-data", f.val_data_spec, "validation shards (same forms as --data)");
    app.add_option("--tokenizer", f.tokenizer_path,
                   "tokenizer.json (or tiktoken ranks) of the shards: prompts, "
                   "samples, evaluation and export")
        ->check(CLI::ExistingFile);
    app.add_option("--vocab-size", f.vocab_override, "override the preset's vocabulary size (e.g. 50304 for GPT-2)")
        ->check(llama::kPositive);
    app.add_option("--init-std", f.init_std,
                   "std of the normal init of the weight matrices and the embedding "
                   "(default: the config's, 0.02; the Zagreus recipe uses 0.03227); o_proj and down_proj get it "
                   "divided by sqrt(2 x layers)")
        ->check(llama::kPositive);
    auto* steps_opt =
        app.add_option("--steps", f.steps, "optimizer steps")->capture_default_str()->check(llama::kPositive);
    app.add_option("--epochs", f.epochs,
                   "instead of --steps: passes over the training set (one --data dataset), "
                   "rounded up to whole steps")
        ->check(llama::kPositive)
        ->excludes(steps_opt);
    app.add_option("--batch", f.batch, "sequences per optimizer step (or give --batch-tokens)")
        ->capture_default_str()
        ->check(llama::kPositive);
    app.add_option("--batch-tokens", f.batch_tokens, "tokens per optimizer step (overrides --batch)")
        ->check(llama::kPositive);
    app.add_option("--micro-batch", f.micro_batch,
                   "sequences per forward/backward; gradients accumulate over "
                   "batch / micro-batch micro-steps (default: the whole batch)")
        ->check(llama::kPositive);
    app.add_option("--seq-len", f.seq_len, "tokens per sequence")->capture_default_str()->check(llama::kPositive);
    // Schedule.
    app.add_option("--lr", f.lr, "peak learning rate")->capture_default_str()->check(llama::kPositive);
    app.add_option("--schedule", f.schedule_name, "constant, cosine or wsd (warmup-stable-decay)")
        ->capture_default_str()
        ->check(CLI::IsMember({"constant", "cosine", "wsd"}));
    app.add_option("--min-lr", f.min_lr, "floor of cosine / end of the WSD cooldown (default lr/10)")
        ->check(llama::kNonNegative);
    app.add_option("--warmup", f.warmup, "linear warmup steps")->capture_default_str()->check(llama::kNonNegative);
    app.add_option("--decay-start", f.decay_start, "wsd: last step at the peak learning rate")
        ->check(llama::kNonNegative);
    app.add_option("--decay-steps", f.decay_steps, "wsd: length of the cooldown")->check(llama::kPositive);
    app.add_option("--cooldown-fraction", f.cooldown_fraction, "wsd: cooldown over this last fraction of --steps")
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--decay-shape", f.decay_shape, "wsd cooldown: linear or cosine")
        ->capture_default_str()
        ->check(CLI::IsMember({"linear", "cosine"}));
    // Optimizer.
    app.add_option("--weight-decay", f.weight_decay, "AdamW decoupled weight decay (not on norms and biases)")
        ->capture_default_str()
        ->check(llama::kNonNegative);
    app.add_option("--beta1", f.beta1, "AdamW beta1")->capture_default_str()->check(CLI::Range(0.0, 0.999999));
    app.add_option("--beta2", f.beta2, "AdamW beta2")->capture_default_str()->check(CLI::Range(0.0, 0.999999));
    app.add_option("--grad-clip", f.grad_clip, "clip the global gradient norm to this (0: off)")
        ->capture_default_str()
        ->check(llama::kNonNegative);
    app.add_option("--max-bad-steps", f.max_bad_steps, "abort after this many non-finite steps in a row")
        ->capture_default_str()
        ->check(llama::kPositive);
    app.add_option("--seed", f.seed, "seed of the weights and the data order")->capture_default_str();
    // Evaluation and logs.
    app.add_option("--log-every", f.log_every, "steps between log lines")
        ->capture_default_str()
        ->check(llama::kPositive);
    app.add_option("--log-jsonl", f.log_jsonl, "append every step's metrics to this JSONL file");
    app.add_option("--peak-tflops", f.peak_tflops, "the device's peak TFLOP/s, to report MFU")
        ->check(llama::kNonNegative);
    app.add_option("--val-every", f.val_every, "steps between validation losses (0: only at the end)")
        ->capture_default_str()
        ->check(llama::kNonNegative);
    app.add_option("--val-fraction", f.val_fraction, "share of the text held out for validation")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 0.5));
    app.add_option("--val-batches", f.val_batches, "batches per validation")
        ->capture_default_str()
        ->check(llama::kPositive);
    app.add_option("--eval-mc", f.eval_mc_path,
                   "multiple-choice JSONL {context, choices, label}, scored with "
                   "the validation loss")
        ->check(CLI::ExistingFile);
    app.add_option("--sample-every", f.sample_every, "steps between text samples (0: none)")
        ->capture_default_str()
        ->check(llama::kNonNegative);
    app.add_option("--sample-tokens", f.sample_tokens, "tokens per sample")
        ->capture_default_str()
        ->check(llama::kPositive);
    app.add_option("--prompt", f.sample_prompt, "prompt of the samples")->capture_default_str();
    // Checkpoints.
    app.add_option("--checkpoint-dir", f.checkpoint_dir, "directory of checkpoints");
    app.add_option("--checkpoint-every", f.checkpoint_every, "steps between checkpoints (0: only at the end)")
        ->capture_default_str()
        ->check(llama::kNonNegative);
    app.add_option("--keep-checkpoints", f.keep_checkpoints, "keep only the newest K checkpoints (0: all)")
        ->capture_default_str()
        ->check(llama::kNonNegative);
    app.add_option("--export-hf", f.export_hf_dir, "at the end, write a Hugging Face folder here");
    app.add_option("--export-gguf", f.export_gguf_path, "at the end, write a GGUF file (F32) for llama.cpp here");
    app.add_flag("--resume", f.resume, "continue from the newest complete checkpoint in --checkpoint-dir");
    app.add_flag("--dry-run", f.dry_run, "print the model and memory plan, then exit");
    app.add_flag("--zero", f.zero,
                 "ZeRO-1 (with several ranks): each rank keeps and updates only its shard of the "
                 "fp32 master weights and AdamW moments; gradients reduce-scattered, weights all-gathered");
    app.add_option("--rendezvous", f.rendezvous,
                   "join the ranks without MPI: tcp:HOST:PORT (rank 0 listens there) or "
                   "file:PATH (rank 0 writes its address to PATH on a shared file system); the rank and world size "
                   "come from srun (SLURM_PROCID, SLURM_NTASKS) or RANK and WORLD_SIZE");
    app.add_option("--rendezvous-timeout", f.rendezvous_timeout, "seconds to wait for every rank to join")
        ->capture_default_str()
        ->check(llama::kPositive);
    app.add_option("--doc-mask", f.doc_mask,
                   "attention stays inside each document of a sequence and RoPE positions restart at each: on "
                   "(documents from the shards' index), off, or auto (on for packed conversations, tokenize sft)")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "on", "off"}));
    app.add_option("--attention-kernel", f.attention_kernel,
                   "GPU builds: the version of the attention kernels "
                   "(--list-attention-versions lists them and the GPU each needs; default: the one it marks)");
    app.add_flag("--list-attention-versions", f.list_versions, "print the attention kernels' versions, then exit");
    app.add_flag("--recompute", f.recompute,
                 "keep less for the backward (the RMSNorm outputs and the SwiGLU "
                 "product are recomputed): less activation memory for one more pass of those kernels");
    app.add_option("--debug-nan-steps", f.debug_nan_steps, "fault injection for tests: make these steps' gradients NaN")
        ->group("Testing")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    app.add_option("--debug-dump-grads", f.debug_dump_grads,
                   "for tests: write the first step's gradients (before "
                   "clipping) to this safetensors file")
        ->group("Testing");
    app.add_option("--debug-dump-batches", f.debug_dump_batches,
                   "for comparisons: append every micro-batch this "
                   "rank trains on (int32 tokens, then int32 targets, then with document masking the int32 document "
                   "starts, each micro-batch x seq-len) to this file (rank R > 0: to FILE.rankR)")
        ->group("Testing");
    app.add_option("--debug-export-init", f.debug_export_init,
                   "for comparisons: write the initial weights as a "
                   "Hugging Face folder here before step 1")
        ->group("Testing");
    app.add_option("--debug-crash-step", f.debug_crash_step,
                   "for tests: the last rank kills itself (SIGKILL) at "
                   "the start of this step")
        ->group("Testing");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        std::exit(app.exit(e));
    }
    if (f.list_versions) {
        list_attention_versions();
        std::exit(0);
    }
    return f;
}

// The global batch in sequences (--batch, or --batch-tokens / --seq-len) and
// the micro-batches of --micro-batch it takes, over all ranks; sets flags.batch
// and flags.micro_batch.
int batch_split(Flags& flags, const Comm& comm) {
    if (flags.batch_tokens > 0) {
        if (flags.batch_tokens % flags.seq_len != 0)
            die("--batch-tokens " + std::to_string(flags.batch_tokens) + " is not a multiple of --seq-len " +
                std::to_string(flags.seq_len));
        flags.batch = int(flags.batch_tokens / flags.seq_len);
    }
    if (flags.micro_batch == 0) flags.micro_batch = flags.batch;
    if (flags.batch % flags.micro_batch != 0)
        die("the batch of " + std::to_string(flags.batch) + " sequences is not a multiple of --micro-batch " +
            std::to_string(flags.micro_batch) + "; the accumulation steps must divide it exactly");
    const int accumulation = flags.batch / flags.micro_batch;
    // The data splits the micro-batches of the global batch over the ranks
    // (lifecycle/training_data.h): the global batch, and so the run, is the same
    // for any number of ranks.
    if (accumulation % comm.world != 0)
        die("the global batch is " + std::to_string(accumulation) + " micro-batches of " +
            std::to_string(flags.micro_batch) + " sequences, which " + std::to_string(comm.world) +
            " ranks cannot share equally (make it a multiple of the rank count)");
    if (comm.world > 1)
        std::printf("data parallel: %d ranks, %d micro-batches of %d sequences each per step\n", comm.world,
                    accumulation / comm.world, flags.micro_batch);
    return accumulation;
}

// The model: --init-hf's (its weights into init_params), --config's or the
// preset's, with the flags' overrides.
ModelConfig make_config(const Flags& flags, std::vector<float>& init_params) {
    ModelConfig config;
    try {
        if (!flags.init_hf_dir.empty()) exporter::read_hf(flags.init_hf_dir, config, init_params);
        else if (!flags.init_checkpoint.empty())
            exporter::read_checkpoint_model(flags.init_checkpoint, config, init_params);
        else config = flags.config_path.empty() ? preset(flags.preset_name) : config_from_hf_json(flags.config_path);
    } catch (const std::exception& e) {
        die(std::string(!flags.init_hf_dir.empty()       ? "--init-hf: "
                        : !flags.init_checkpoint.empty() ? "--init-checkpoint: "
                        : flags.config_path.empty()      ? "--preset: "
                                                         : "--config: ") +
            e.what());
    }
    if (flags.init_std > 0) config.init_std = float(flags.init_std);
    if (flags.vocab_override > 0) {
        if (!init_params.empty())
            die("--vocab-size cannot change the vocabulary of --init-hf or --init-checkpoint weights");
        config.vocab_size = flags.vocab_override;
    }
    if (flags.seq_len > config.max_seq_len)
        die("--seq-len " + std::to_string(flags.seq_len) + " exceeds the model's max_seq_len " +
            std::to_string(config.max_seq_len));
    return config;
}

// The learning-rate schedule of the flags.
LrSchedule make_schedule(const Flags& flags) {
    LrSchedule schedule;
    schedule.kind = LrSchedule::parse_kind(flags.schedule_name);
    schedule.cooldown = LrSchedule::parse_shape(flags.decay_shape);
    schedule.lr = flags.lr;
    schedule.min_lr = flags.min_lr >= 0 ? flags.min_lr : flags.lr / 10;
    schedule.warmup = flags.warmup;
    schedule.total_steps = flags.steps;
    if (schedule.kind == LrSchedule::Kind::Wsd) {
        if (flags.cooldown_fraction >= 0 && (flags.decay_start >= 0 || flags.decay_steps >= 0))
            die("--cooldown-fraction and --decay-start/--decay-steps are alternatives; give one");
        schedule.decay_steps = flags.cooldown_fraction >= 0
                                   ? int(std::lround(flags.cooldown_fraction * flags.steps))
                                   : (flags.decay_steps >= 0 ? flags.decay_steps : int(std::lround(0.2 * flags.steps)));
        schedule.decay_start = flags.decay_start >= 0 ? flags.decay_start : flags.steps - schedule.decay_steps;
    } else if (flags.decay_start >= 0 || flags.decay_steps >= 0 || flags.cooldown_fraction >= 0) {
        die("--decay-start, --decay-steps and --cooldown-fraction apply to --schedule wsd only");
    }
    return schedule;
}

// Prints the parameter count, the FLOPs per token and the GPU builds' memory
// plan (which they allocate exactly), and returns the plan.
MemoryPlan report_plan(const ModelConfig& config, const ParamLayout& layout, const Flags& flags) {
    const int64_t n_params = layout.total();
    std::printf("parameters: %s (%lld; formula %lld)\n", format_count(n_params).c_str(), (long long)n_params,
                (long long)parameter_count_formula(config));
    std::printf("FLOPs per token: %.4g = %s\n", flops_per_token(config, flags.seq_len),
                flops_per_token_formula().c_str());
    // The GPU builds allocate exactly this plan; the CPU build keeps fp32 copies of its own.
    const MemoryPlan plan = plan_memory(config, flags.micro_batch, flags.seq_len, flags.recompute);
    std::printf(
        "memory plan of the GPU builds: weights %.3g GB (bf16) + %.3g GB (fp32 master), gradients %.3g GB, AdamW %.3g "
        "GB, "
        "activations %.3g GB, workspace %.3g GB: %.3g GB\n",
        1e-9 * plan.param_bf16_bytes, 1e-9 * plan.master_bytes, 1e-9 * plan.grad_bytes, 1e-9 * plan.adam_bytes,
        1e-9 * plan.activation_bytes(), 1e-9 * plan.workspace_bytes(), 1e-9 * plan.total_bytes());
    if (flags.recompute)
        std::printf("memory plan of the GPU builds: recomputation saves %.3g GB of activations\n",
                    1e-9 * (plan_memory(config, flags.micro_batch, flags.seq_len, false).activation_bytes() -
                            plan.activation_bytes()));
    return plan;
}

// The tokenizer of --tokenizer (bytes without it), which must fit the model's vocabulary.
std::unique_ptr<TextCodec> make_codec(const Flags& flags, const ModelConfig& config) {
    std::unique_ptr<TextCodec> codec;
    try {
        codec = std::make_unique<TextCodec>(flags.tokenizer_path);
    } catch (const std::exception& e) {
        die(std::string("--tokenizer: ") + e.what());
    }
    if (codec->vocab_size() > size_t(config.vocab_size))
        die((codec->is_bytes() ? std::string("bytes need") : "--tokenizer " + flags.tokenizer_path + " needs") + " " +
            std::to_string(codec->vocab_size()) + " token ids but the model's vocabulary has " +
            std::to_string(config.vocab_size) + " (give --vocab-size)");
    return codec;
}

// The training (and validation) data: --data shards or --text bytes.
std::unique_ptr<TrainingData> make_data(const Flags& flags, const ModelConfig& config, const TextCodec& codec,
                                        const Comm& comm) {
    std::unique_ptr<TrainingData> data;
    try {
        if (!flags.data_spec.empty())
            data = shard_data(flags.data_spec, flags.val_data_spec, flags.micro_batch, flags.seq_len,
                              uint64_t(config.vocab_size), flags.seed, comm.rank, comm.world);
        else if (!flags.text_path.empty())
            data =
                byte_text_data(flags.text_path, flags.val_fraction, flags.seq_len, flags.seed, comm.rank, comm.world);
        else die("no training data: pass --data SHARDS (with --tokenizer) or --text FILE");
    } catch (const std::exception& e) {
        die(std::string(flags.data_spec.empty() ? "--text " : "--data or --val-data: ") + e.what());
    }
    if (!flags.data_spec.empty() && codec.is_bytes())
        std::printf("data: no --tokenizer: prompts and evaluation text are read as bytes\n");
    std::printf("data: %s\n", data->describe().c_str());
    return data;
}

// Each micro-batch's weight in a step's loss: its share of the trained targets
// (those not TrainingData::kNotTrained) of all micro-batches of all ranks, so
// the weighted means add up to the mean over every trained target. With every
// target trained, each weighs 1 / micro-batches per step.
std::vector<float> micro_weights(const std::vector<std::vector<int>>& targets, const Comm& comm) {
    std::vector<double> counted;
    double mine = 0;
    for (const std::vector<int>& y : targets) {
        counted.push_back(
            double(std::count_if(y.begin(), y.end(), [](int t) { return t != TrainingData::kNotTrained; })));
        mine += counted.back();
    }
    const double total = comm.sum(mine);
    std::vector<float> weights;
    for (double c : counted) weights.push_back(total > 0 ? float(c / total) : 0.0f);
    return weights;
}

// --eval-mc's examples (none without it).
std::vector<eval::McExample> read_mc_examples(const Flags& flags) {
    std::vector<eval::McExample> mc_examples;
    if (!flags.eval_mc_path.empty()) {
        try {
            mc_examples = eval::read_mc_jsonl(flags.eval_mc_path);
        } catch (const std::exception& e) {
            die(std::string("--eval-mc: ") + e.what());
        }
        std::printf("eval: %zu multiple-choice examples from %s\n", mc_examples.size(), flags.eval_mc_path.c_str());
    }
    return mc_examples;
}

}  // namespace

int main(int argc, char** argv) {
    // ---------------------------------------------------------------- flags
    Flags flags = parse_flags(argc, argv);
    // The ranks of a data-parallel run: through MPI under mpirun or srun, over TCP with
    // --rendezvous; a process started alone is rank 0 of 1.
    const Comm comm = Comm::init(&argc, &argv, flags.rendezvous, flags.rendezvous_timeout);
    g_comm = &comm;
    if (!comm.is_root() && !std::freopen("/dev/null", "w", stdout)) die("cannot silence stdout");  // rank 0 reports
    if (flags.resume && flags.checkpoint_dir.empty()) die("--resume needs --checkpoint-dir");
    if (flags.zero && !flags.debug_dump_grads.empty()) die("--debug-dump-grads needs whole gradients: not with --zero");
    const int accumulation = batch_split(flags, comm);  // micro-batches per optimizer step, over all ranks
    const int micro_steps = accumulation / comm.world;  // this rank's share of them

    // ---------------------------------------------------------------- config
    std::vector<float> init_params;  // from --init-hf
    const ModelConfig config = make_config(flags, init_params);
    std::printf("%s\n", config.describe().c_str());

    LrSchedule schedule = make_schedule(flags);  // with --epochs, again once the data is known

    // ---------------------------------------------------------------- model and optimizer state
    const ParamLayout layout(config);
    const MemoryPlan plan = report_plan(config, layout, flags);
    const double token_flops = flops_per_token(config, flags.seq_len);
    if (flags.dry_run) {
        std::printf("%s", dry_run_report(config, flags.micro_batch, flags.seq_len, accumulation).c_str());
        return 0;
    }
    select_device(comm);
    std::unique_ptr<TrainModel> model_storage;
    try {
        model_storage = std::make_unique<TrainModel>(config, flags.micro_batch, flags.seq_len, flags.recompute,
                                                     flags.attention_kernel);
    } catch (const std::invalid_argument& e) {  // a model or flag these kernels cannot run
        die(e.what());
    }
    TrainModel& model = *model_storage;
    model.enable_data_parallel(comm, flags.zero);
    if (flags.zero && comm.world > 1) {
        const double full = 1e-9 * double(plan.master_bytes + plan.adam_bytes),
                     saving = 1e-9 * plan.zero1_saving(comm.world);
        std::printf(
            "ZeRO-1: fp32 master weights and AdamW moments sharded over %d ranks: %.3g GB per rank "
            "instead of %.3g GB (saves %.3g GB)\n",
            comm.world, full - saving, full, saving);
    }
    model.init(flags.seed);
    if (!init_params.empty()) {
        std::copy(init_params.begin(), init_params.end(), model.params().begin());
        model.upload();
        std::printf("weights: %s\n", (flags.init_hf_dir.empty() ? flags.init_checkpoint : flags.init_hf_dir).c_str());
    }
    std::printf("model: %s\n", model.describe().c_str());
    if (flags.peak_tflops == 0) flags.peak_tflops = model.peak_tflops();
    if (!flags.debug_export_init.empty() && comm.is_root()) {
        try {
            exporter::write_hf(config, layout, model.params().data(), flags.debug_export_init, flags.tokenizer_path);
        } catch (const std::exception& e) {
            die("--debug-export-init: " + std::string(e.what()));
        }
    }

    // ---------------------------------------------------------------- data
    const std::unique_ptr<TextCodec> codec = make_codec(flags, config);
    const std::unique_ptr<TrainingData> data = make_data(flags, config, *codec, comm);
    if (flags.epochs > 0) {
        const uint64_t sequences = data->epoch_sequences();
        if (sequences == 0)
            die("--epochs needs one --data dataset of shards (a mixture, or --text, has no single epoch): give "
                "--steps");
        flags.steps = int(std::ceil(flags.epochs * double(sequences) / double(flags.batch)));
        schedule = make_schedule(flags);
        std::printf("epochs: %g over %llu sequences of %d tokens = %d steps of %d sequences\n", flags.epochs,
                    (unsigned long long)sequences, flags.seq_len, flags.steps, flags.batch);
    }
    // Document masking: each token's document start goes with its batch.
    const bool doc_mask = flags.doc_mask == "on" || (flags.doc_mask == "auto" && data->packed());
    if (doc_mask && !data->has_documents())
        die("--doc-mask on: --text has no document boundaries (give token shards with --data)");
    if (doc_mask)
        std::printf("documents: attention stays inside each document of a sequence, RoPE positions restart at each%s\n",
                    flags.doc_mask == "auto" ? " (packed conversations; --doc-mask off to attend across them)" : "");
    std::vector<int>* no_docs = nullptr;
    auto doc_starts = [&](std::vector<int>& v) { return doc_mask ? &v : no_docs; };
    auto doc_data = [&](const std::vector<int>& v) { return doc_mask ? v.data() : nullptr; };
    auto validation_loss = [&]() {  // the mean over every trained target of --val-batches steps
        std::vector<std::vector<int>> x(size_t(micro_steps * flags.val_batches)), y(x.size()), d(x.size());
        data->validate_begin();  // the same validation batches every time
        for (size_t m = 0; m < x.size(); ++m)
            data->validate_batch(flags.micro_batch, flags.seq_len, x[m], y[m], doc_starts(d[m]));
        const std::vector<float> weights = micro_weights(y, comm);
        double sum = 0;
        for (size_t m = 0; m < x.size(); ++m)
            sum += double(model.forward(x[m].data(), y[m].data(), flags.micro_batch, flags.seq_len, doc_data(d[m]))) *
                   weights[m];
        return comm.sum(sum);
    };

    const std::vector<eval::McExample> mc_examples = read_mc_examples(flags);
    auto loglik = [&](const std::vector<int>& ctx, const std::vector<int>& cont) {
        return ref::continuation_loglik(model, ctx, cont);
    };
    auto text_tokens = [&](const std::string& text) { return codec->encode(text); };

    // ---------------------------------------------------------------- checkpoints and resume
    // What a checkpoint holds and how it is written and read: lifecycle/train_state.h.
    const train_state::Run run{
        config,    layout, comm, *data, flags.checkpoint_dir, flags.keep_checkpoints, flags.seed, flags.tokenizer_path,
        flags.zero};
    train_state::Progress resumed;
    if (flags.resume) {
        try {
            train_state::resume(run, model, resumed);
        } catch (const std::exception& e) {
            die(e.what());
        }
    }
    const int first_step = resumed.step + 1;  // the next optimizer step to run
    int adam_step = resumed.adam_step;        // updates applied (AdamW's bias correction counts these)
    int bad_steps_total = resumed.bad_steps_total;
    auto save_checkpoint = [&](int step) { return train_state::save(run, model, {step, adam_step, bad_steps_total}); };
    FILE* jsonl = nullptr;
    if (!flags.log_jsonl.empty() && comm.is_root()) {
        jsonl = std::fopen(flags.log_jsonl.c_str(), "a");
        if (!jsonl) die("--log-jsonl " + flags.log_jsonl + ": cannot open for appending");
    }
    std::signal(SIGTERM, on_stop_signal);
    std::signal(SIGUSR1, on_stop_signal);
    std::signal(SIGXFSZ, SIG_IGN);  // a file-size limit shows as a write error, handled like a full disk

    // ---------------------------------------------------------------- training loop
    ref::AdamWHyper hyper;
    hyper.beta1 = flags.beta1;
    hyper.beta2 = flags.beta2;
    hyper.weight_decay = flags.weight_decay;
    std::vector<std::vector<int>> inputs(static_cast<size_t>(micro_steps)), targets(inputs.size()), docs(inputs.size());
    const std::set<int> nan_steps(flags.debug_nan_steps.begin(), flags.debug_nan_steps.end());
    const int64_t tokens_per_step = int64_t(flags.batch) * flags.seq_len;
    std::printf("training: steps %d to %d of %d x %d tokens (%d micro-steps of %d), lr %.2e, %s schedule, warmup %d\n",
                first_step, flags.steps, flags.batch, flags.seq_len, accumulation, flags.micro_batch, flags.lr,
                flags.schedule_name.c_str(), flags.warmup);
    auto run_start = std::chrono::steady_clock::now();
    bool last_checkpoint_ok = true;
    int bad_in_row = 0;
    FILE* batch_dump = nullptr;  // each rank its own micro-batches (rank R > 0 into PATH.rankR)
    const std::string batch_dump_path =
        flags.debug_dump_batches + (comm.rank > 0 ? ".rank" + std::to_string(comm.rank) : "");
    if (!flags.debug_dump_batches.empty() && !(batch_dump = std::fopen(batch_dump_path.c_str(), "ab")))
        die("--debug-dump-batches " + batch_dump_path + ": cannot open for appending");
    for (int step = first_step; step <= flags.steps; ++step) {
        if (step == flags.debug_crash_step && comm.rank == comm.world - 1) std::raise(SIGKILL);
        auto t0 = std::chrono::steady_clock::now();
        hyper.lr = schedule.at(step);
        // Gradient accumulation: each micro-step's loss is scaled by 1/accumulation,
        // so the summed gradient is that of the mean loss over the whole batch.
        model.zero_grad();
        // This rank's micro-batches, read first: the step's loss is the mean over
        // its trained targets (every target in pretraining, the answers in
        // fine-tuning) on all micro-batches of all ranks, so each micro-batch's
        // mean, and its gradient, weighs by its share of them.
        for (int micro = 0; micro < micro_steps; ++micro) {
            data->next_batch(flags.micro_batch, flags.seq_len, inputs[micro], targets[micro], doc_starts(docs[micro]));
            if (batch_dump) {
                std::fwrite(inputs[micro].data(), sizeof(int), inputs[micro].size(), batch_dump);
                std::fwrite(targets[micro].data(), sizeof(int), targets[micro].size(), batch_dump);
                if (doc_mask) std::fwrite(docs[micro].data(), sizeof(int), docs[micro].size(), batch_dump);
                if (std::ferror(batch_dump)) die("--debug-dump-batches " + batch_dump_path + ": write failed");
            }
        }
        const std::vector<float> weights = micro_weights(targets, comm);
        float loss = 0.0f;
        for (int micro = 0; micro < micro_steps; ++micro) {
            // The gradients are summed over the ranks after this rank's last micro-batch.
            const bool last = micro + 1 == micro_steps;
            loss += model.forward_backward(inputs[micro].data(), targets[micro].data(), flags.micro_batch,
                                           flags.seq_len, weights[micro], last, doc_data(docs[micro])) *
                    weights[micro];
        }
        loss = float(comm.sum(loss));
        if (nan_steps.count(step)) model.poison_gradient();
        if (!flags.debug_dump_grads.empty() && step == first_step && comm.is_root()) {
            std::vector<float> grads = model.gradients();
            try {
                safetensors::write_file(flags.debug_dump_grads, train_state::tensor_refs(layout, "", grads));
            } catch (const std::exception& e) {
                die("--debug-dump-grads: " + std::string(e.what()));
            }
        }
        const double norm = model.grad_norm();
        const bool finite = std::isfinite(loss) && std::isfinite(norm);
        if (finite) {
            bad_in_row = 0;
            model.apply_update(hyper, ++adam_step, ref::clip_scale(norm, flags.grad_clip));
        } else {
            ++bad_in_row;
            ++bad_steps_total;
            std::printf("step %5d/%d | non-finite %s: update skipped (%d in a row, %d in all)\n", step, flags.steps,
                        std::isfinite(loss) ? "gradient norm" : "loss", bad_in_row, bad_steps_total);
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
        const double tflops = token_flops * tokens_per_step / seconds / 1e12;
        if (finite && (step % flags.log_every == 0 || step == first_step || step == flags.steps)) {
            const double eta = elapsed / (step - first_step + 1) * (flags.steps - step);
            std::printf("step %5d/%d | loss %.4f | lr %.3e | grad norm %.4f | %.0f tok/s | %.3g TFLOP/s", step,
                        flags.steps, loss, hyper.lr, norm, tokens_per_step / seconds, tflops);
            if (flags.peak_tflops > 0) std::printf(" | MFU %.1f%%", 100 * tflops / flags.peak_tflops);
            if (comm.world > 1) std::printf(" | comm wait %.1f ms", model.comm_wait_ms());
            std::printf(" | %.1f ms | ETA %.0f s\n", 1e3 * seconds, eta);
        }
        double val_loss = NAN;
        eval::McResult mc;
        if (data->has_validation() && ((flags.val_every > 0 && step % flags.val_every == 0) || step == flags.steps)) {
            val_loss = validation_loss();
            std::printf("step %5d/%d | val loss %.4f\n", step, flags.steps, val_loss);
            if (!mc_examples.empty() && comm.is_root()) {
                mc = eval::score_mc(mc_examples, text_tokens, loglik);
                std::printf("step %5d/%d | multiple choice: acc %.4f, acc_norm %.4f (%d examples)\n", step, flags.steps,
                            mc.acc, mc.acc_norm, mc.n);
            }
        }
        if (flags.sample_every > 0 && step % flags.sample_every == 0) model.download();  // a collective with --zero
        if (flags.sample_every > 0 && step % flags.sample_every == 0 && comm.is_root()) {
            // Top-k 40 at temperature 0.8 from a fixed seed, so samples compare across steps.
            ref::Sampling sampling;
            sampling.temperature = 0.8;
            sampling.top_k = 40;
            std::vector<int> prompt = text_tokens(flags.sample_prompt);
            std::vector<int> ids = ref::generate(config, bind_weights(config, layout, model.params().data()), prompt,
                                                 flags.sample_tokens, sampling, flags.seed);
            std::vector<int> all = prompt;
            all.insert(all.end(), ids.begin(), ids.end());
            std::string text = codec->decode(all);  // control bytes escaped below: the log stays one line
            std::string shown;
            for (unsigned char ch : text) {
                char esc[8];
                std::snprintf(esc, sizeof esc, ch == '\n' ? "\\n" : "\\x%02x", ch);
                shown += (ch < 0x20 || ch == 0x7f) ? std::string(esc) : std::string(1, char(ch));
            }
            text = shown;
            std::printf("step %5d/%d | sample: %s\n", step, flags.steps, text.c_str());
        }
        if (jsonl) {
            nlohmann::json rec = {
                {"step", step},        {"lr", hyper.lr},   {"tokens_per_s", tokens_per_step / seconds},
                {"ms", 1e3 * seconds}, {"tflops", tflops}, {"skipped", !finite}};
            // Losses printed in full precision (round-trip) so runs compare bit for bit.
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.9g", double(loss));
            rec["loss"] = std::isfinite(loss) ? nlohmann::json::parse(buf) : nlohmann::json(nullptr);
            rec["grad_norm"] = std::isfinite(norm) ? nlohmann::json(norm) : nlohmann::json(nullptr);
            if (std::isfinite(val_loss)) rec["val_loss"] = val_loss;
            if (mc.n > 0) rec["mc_acc"] = mc.acc, rec["mc_acc_norm"] = mc.acc_norm;
            std::fprintf(jsonl, "%s\n", rec.dump().c_str());
            std::fflush(jsonl);
        }
        std::fflush(stdout);
        if (bad_in_row >= flags.max_bad_steps) {
            // The weights are still those of the last good step: keep them.
            if (!flags.checkpoint_dir.empty()) save_checkpoint(step);
            comm.barrier();  // every rank is here (the loss and norm are the same on all): let rank 0 finish writing
            die(std::to_string(bad_in_row) + " non-finite steps in a row (--max-bad-steps " +
                std::to_string(flags.max_bad_steps) + "); stopping" +
                (flags.checkpoint_dir.empty() ? std::string("") : " after saving the last good state"));
        }
        // A signal to any rank (Slurm signals them all) stops every rank after this step.
        const bool stop = comm.max(g_stop_signal != 0 ? 1 : 0) != 0;
        if (!flags.checkpoint_dir.empty() &&
            (step == flags.steps || stop || (flags.checkpoint_every > 0 && step % flags.checkpoint_every == 0))) {
            last_checkpoint_ok = comm.max(save_checkpoint(step) ? 0 : 1) == 0;
            comm.barrier();  // nobody runs ahead of a checkpoint that is being written
        }
        if (stop) {
            std::printf("received %s: %s; exiting with status %d\n",
                        g_stop_signal == SIGTERM   ? "SIGTERM"
                        : g_stop_signal == SIGUSR1 ? "SIGUSR1"
                                                   : "a stop signal on another rank",
                        flags.checkpoint_dir.empty()
                            ? "no --checkpoint-dir, nothing saved"
                            : (last_checkpoint_ok ? "checkpoint written" : "checkpoint FAILED"),
                        kExitPreempted);
            std::fflush(stdout);
            comm.finalize();
            return kExitPreempted;
        }
    }
    if (jsonl) std::fclose(jsonl);
    if (batch_dump) std::fclose(batch_dump);
    // ---------------------------------------------------------------- export
    model.download();
    try {
        if (!flags.export_hf_dir.empty() && comm.is_root()) {
            exporter::write_hf(config, layout, model.params().data(), flags.export_hf_dir, flags.tokenizer_path);
            std::printf("export: Hugging Face folder %s\n", flags.export_hf_dir.c_str());
        }
        if (!flags.export_gguf_path.empty() && comm.is_root()) {
            exporter::write_gguf(config, layout, model.params().data(), exporter::vocab_for(flags.tokenizer_path),
                                 flags.export_gguf_path);
            std::printf("export: GGUF %s\n", flags.export_gguf_path.c_str());
        }
    } catch (const std::exception& e) {
        die(std::string("export: ") + e.what());
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    const int ran = flags.steps - first_step + 1;
    std::printf("done: %d steps in %.1f s (%.0f tok/s), %d non-finite steps skipped\n", ran, total,
                ran * tokens_per_step / std::max(total, 1e-9), bad_steps_total);
    if (!last_checkpoint_ok) die("the final checkpoint was not written (see above)");
    comm.finalize();
    return 0;
}
