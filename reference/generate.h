// Text generation on the CPU reference: one token at a time with a KV cache,
// and sampling with temperature, top-k and top-p.
#ifndef REFERENCE_GENERATE_H
#define REFERENCE_GENERATE_H

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "model/config.h"
#include "model/params.h"
#include "model/rng.h"

namespace llama::ref {

// Keys and values of every layer for the positions seen so far.
template <typename T>
class KvCache {
public:
    KvCache(const ModelConfig& config, int max_len);
    int length() const { return length_; }
    int capacity() const { return max_len_; }

    // Runs one token at position length() through the model, appends its keys and
    // values, and returns the logits for the next token. Throws
    // std::invalid_argument when the cache is full or the token is out of range.
    std::vector<T> step(const ModelWeights<T>& w, int token);

private:
    ModelConfig c_;
    int max_len_, length_ = 0;
    std::vector<std::vector<T>> k_, v_;  // per layer: [max_len, KV, D]
    std::vector<T> cos_, sin_;           // RoPE tables [max_len, D/2]
};

struct Sampling {
    double temperature = 1.0;  // 0: greedy (argmax)
    int top_k = 0;             // keep the k most likely tokens (0: all)
    double top_p = 1.0;        // keep the fewest most likely tokens whose probability reaches p
};

// Draws the next token from `logits` as `s` says.
template <typename T>
int sample_token(const std::vector<T>& logits, const Sampling& s, Rng& rng);

// Feeds `prompt` and generates `n` tokens (stopping early at `stop`, if >= 0).
template <typename T>
std::vector<int> generate(const ModelConfig& config, const ModelWeights<T>& w, const std::vector<int>& prompt, int n,
                          const Sampling& s, uint64_t seed, int stop = -1);

// Summed log-probability of `continuation` after `context`, from one forward
// pass of `model` (the context is cut from the left to fit max_seq_len): the
// mean loss over the continuation's targets, the others ignored, times their
// count. Any model with config() and forward(tokens, targets, B, T) -> mean
// loss (target -1 ignored) will do: the CPU reference or the GPU model.
template <typename M>
double continuation_loglik(M& model, const std::vector<int>& context, const std::vector<int>& continuation) {
    if (context.empty() || continuation.empty())
        throw std::invalid_argument("continuation_loglik: context and continuation must not be empty");
    std::vector<int> all = context;
    all.insert(all.end(), continuation.begin(), continuation.end());
    const size_t keep = std::min<size_t>(all.size(), size_t(model.config().max_seq_len) + 1);
    std::vector<int> x(all.end() - keep, all.end() - 1), y(all.end() - keep + 1, all.end());
    const size_t n = std::min(continuation.size(), y.size());
    for (size_t i = 0; i + n < y.size(); ++i) y[i] = -1;  // only the continuation counts
    return -double(model.forward(x.data(), y.data(), 1, int(x.size()))) * double(n);
}

}  // namespace llama::ref

#endif  // REFERENCE_GENERATE_H
