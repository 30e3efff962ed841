// train_llama: pretrain a Llama-style model. One flat loop, read top to bottom:
//   flags -> config -> model and optimizer state -> data -> loop { forward,
//   backward, clip, AdamW, log, validate }.
//
// This build (train_llama_cpu, compiled as C++ with LLAMA_BACKEND_CPU) runs the
// loop on the fp32 CPU reference ops of reference/, which the tests prove
// against finite differences and PyTorch. Until the token shards and the
// tokenizer are wired in, training text is read as bytes (vocabulary 256).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "model/config.h"
#include "model/params.h"
#include "model/rng.h"
#include "reference/model.h"

#ifndef LLAMA_BACKEND_CPU
#error "train_llama.cu is only built for the CPU reference so far (define LLAMA_BACKEND_CPU)"
#endif

using namespace llama;

namespace {

// Linear warmup from lr/warmup to lr, then cosine decay to min_lr_frac * lr.
double learning_rate(int step, int total_steps, int warmup, double lr, double min_lr_frac) {
    if (step <= warmup) return lr * step / std::max(warmup, 1);
    double progress = double(step - warmup) / std::max(total_steps - warmup, 1);
    double cosine = 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress));
    return lr * (min_lr_frac + (1.0 - min_lr_frac) * cosine);
}

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "train_llama: %s\n", msg.c_str());
    std::exit(1);
}

// A corpus read as bytes: token t is byte t. Samples are windows of seq_len + 1
// bytes at positions drawn from a seeded generator.
struct ByteCorpus {
    std::vector<int> tokens;

    void sample(Rng& rng, int B, int T, std::vector<int>& inputs, std::vector<int>& targets) const {
        inputs.resize(size_t(B) * T);
        targets.resize(size_t(B) * T);
        for (int b = 0; b < B; ++b) {
            size_t start = rng.below(tokens.size() - T);
            for (int t = 0; t < T; ++t) {
                inputs[size_t(b) * T + t] = tokens[start + t];
                targets[size_t(b) * T + t] = tokens[start + t + 1];
            }
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    // ---------------------------------------------------------------- flags
    CLI::App app{"train_llama: pretrain a Llama-style language model"};
    std::string preset_name = "tiny", config_path, text_path;
    int steps = 200, batch = 8, seq_len = 128, warmup = 20, log_every = 10, val_every = 50, val_batches = 8;
    uint64_t seed = 42;
    double lr = 3e-3, min_lr_frac = 0.1, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, grad_clip = 1.0,
           val_fraction = 0.05;
    bool dry_run = false;
    app.add_option("--preset", preset_name, "model preset: " + [] {
        std::string s;
        for (const auto& n : preset_names()) s += (s.empty() ? "" : ", ") + n;
        return s;
    }())->capture_default_str();
    app.add_option("--config", config_path, "Hugging Face config.json of a Llama model (overrides --preset)")
        ->check(CLI::ExistingFile);
    app.add_option("--text", text_path, "training text, read as bytes (vocabulary 256)")->check(CLI::ExistingFile);
    app.add_option("--steps", steps, "optimizer steps")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--batch", batch, "sequences per step")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--seq-len", seq_len, "tokens per sequence")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--lr", lr, "peak learning rate")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--min-lr-frac", min_lr_frac, "final learning rate as a fraction of the peak")
        ->capture_default_str()->check(CLI::Range(0.0, 1.0));
    app.add_option("--warmup", warmup, "linear warmup steps")->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_option("--weight-decay", weight_decay, "AdamW decoupled weight decay (not on norms and biases)")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_option("--beta1", beta1, "AdamW beta1")->capture_default_str()->check(CLI::Range(0.0, 0.999999));
    app.add_option("--beta2", beta2, "AdamW beta2")->capture_default_str()->check(CLI::Range(0.0, 0.999999));
    app.add_option("--grad-clip", grad_clip, "clip the global gradient norm to this (0: off)")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_option("--seed", seed, "seed of the weights and the data order")->capture_default_str();
    app.add_option("--log-every", log_every, "steps between log lines")->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--val-every", val_every, "steps between validation losses (0: only at the end)")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_option("--val-fraction", val_fraction, "share of the text held out for validation")
        ->capture_default_str()->check(CLI::Range(0.0, 0.5));
    app.add_option("--val-batches", val_batches, "batches per validation")->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_flag("--dry-run", dry_run, "print the model and memory plan, then exit");
    CLI11_PARSE(app, argc, argv);

    // ---------------------------------------------------------------- config
    ModelConfig config;
    try {
        config = config_path.empty() ? preset(preset_name) : config_from_hf_json(config_path);
    } catch (const std::exception& e) {
        die(std::string(config_path.empty() ? "--preset: " : "--config: ") + e.what());
    }
    if (seq_len > config.max_seq_len)
        die("--seq-len " + std::to_string(seq_len) + " exceeds the model's max_seq_len " +
            std::to_string(config.max_seq_len));
    std::printf("%s\n", config.describe().c_str());

    // ---------------------------------------------------------------- model and optimizer state
    const int64_t n_params = ParamLayout(config).total();
    std::printf("parameters: %s (%lld; formula %lld)\n", format_count(n_params).c_str(), (long long)n_params,
                (long long)parameter_count_formula(config));
    const double gb = 1e-9 * sizeof(float) * n_params;
    std::printf("memory: weights %.4g GB, gradients %.4g GB, AdamW moments %.4g GB (fp32)\n", gb, gb, 2 * gb);
    if (dry_run) return 0;
    ref::Model<float> model(config);
    model.init(seed);

    // ---------------------------------------------------------------- data
    if (text_path.empty()) die("no training data: pass --text FILE");
    if (config.vocab_size < 256)
        die("--text reads bytes (256 token ids) but the model's vocabulary has only " +
            std::to_string(config.vocab_size));
    ByteCorpus train, val;
    {
        std::ifstream in(text_path, std::ios::binary);
        if (!in) die("--text " + text_path + ": cannot open");
        std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const size_t n_val = size_t(bytes.size() * val_fraction);
        const size_t n_train = bytes.size() - n_val;
        if (n_train < size_t(seq_len) + 2)
            die("--text " + text_path + ": " + std::to_string(bytes.size()) +
                " bytes is too short for sequences of " + std::to_string(seq_len));
        if (n_val > 0 && n_val < size_t(seq_len) + 2)
            die("--text " + text_path + ": the validation part (" + std::to_string(n_val) +
                " bytes) is shorter than a sequence; lower --seq-len or raise --val-fraction");
        train.tokens.assign(bytes.begin(), bytes.begin() + n_train);
        val.tokens.assign(bytes.begin() + n_train, bytes.end());
        std::printf("data: %s: %zu training tokens, %zu validation tokens (bytes)\n", text_path.c_str(),
                    train.tokens.size(), val.tokens.size());
    }
    auto validation_loss = [&]() {
        Rng val_rng(seed ^ 0x5eedull);  // the same validation batches every time
        std::vector<int> x, y;
        double sum = 0;
        for (int i = 0; i < val_batches; ++i) {
            val.sample(val_rng, batch, seq_len, x, y);
            sum += model.forward(x.data(), y.data(), batch, seq_len);
        }
        return sum / val_batches;
    };

    // ---------------------------------------------------------------- training loop
    ref::AdamWHyper hyper;
    hyper.beta1 = beta1;
    hyper.beta2 = beta2;
    hyper.weight_decay = weight_decay;
    Rng data_rng(seed);
    std::vector<int> inputs, targets;
    const int64_t tokens_per_step = int64_t(batch) * seq_len;
    std::printf("training: %d steps of %d x %d tokens, lr %.2e (warmup %d, cosine to %.2e)\n", steps, batch, seq_len,
                lr, warmup, lr * min_lr_frac);
    auto run_start = std::chrono::steady_clock::now();
    for (int step = 1; step <= steps; ++step) {
        auto t0 = std::chrono::steady_clock::now();
        hyper.lr = learning_rate(step, steps, warmup, lr, min_lr_frac);
        train.sample(data_rng, batch, seq_len, inputs, targets);
        model.zero_grad();
        const float loss = model.forward(inputs.data(), targets.data(), batch, seq_len);
        model.backward();
        const double norm = model.update(hyper, step, grad_clip);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (!std::isfinite(loss)) die("loss is not finite at step " + std::to_string(step));
        if (step % log_every == 0 || step == 1 || step == steps)
            std::printf("step %5d/%d | loss %.4f | lr %.3e | grad norm %.4f | %.0f tok/s | %.1f ms\n", step, steps,
                        loss, hyper.lr, norm, tokens_per_step / seconds, 1e3 * seconds);
        if (!val.tokens.empty() && ((val_every > 0 && step % val_every == 0) || step == steps))
            std::printf("step %5d/%d | val loss %.4f\n", step, steps, validation_loss());
        std::fflush(stdout);
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    std::printf("done: %d steps in %.1f s (%.0f tok/s)\n", steps, total, steps * tokens_per_step / total);
    return 0;
}
