// Multiple-choice evaluation (HellaSwag / ARC style), scored as
// lm-evaluation-harness scores it: for each choice, the log-likelihood of the
// choice's tokens after the context; `acc` takes the choice with the largest
// sum, `acc_norm` the largest sum divided by the choice's length in characters
// (Unicode code points, as Python's len() counts them).
#ifndef LIFECYCLE_EVAL_MC_H
#define LIFECYCLE_EVAL_MC_H

#include <functional>
#include <string>
#include <vector>

namespace llama::eval {

struct McExample {
    std::string context;
    std::vector<std::string> choices;
    int label = 0;
};

struct McResult {
    int n = 0;
    double acc = 0, acc_norm = 0;
};

// Reads JSONL lines {"context": str, "choices": [str, ...], "label": int}.
// Throws std::runtime_error naming the file, the line and what is wrong.
std::vector<McExample> read_mc_jsonl(const std::string& path);

// Characters of a UTF-8 string as Python's len() counts them.
size_t utf8_length(const std::string& s);

// `tokenize` turns text into token ids; `loglik(context_ids, continuation_ids)`
// returns the summed log-probability of the continuation after the context.
McResult score_mc(const std::vector<McExample>& examples,
                  const std::function<std::vector<int>(const std::string&)>& tokenize,
                  const std::function<double(const std::vector<int>&, const std::vector<int>&)>& loglik);

}  // namespace llama::eval

#endif  // LIFECYCLE_EVAL_MC_H
