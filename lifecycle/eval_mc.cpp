#include "lifecycle/eval_mc.h"

#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace llama::eval {

std::vector<McExample> read_mc_jsonl(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path + ": cannot open");
    std::vector<McExample> out;
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = path + ":" + std::to_string(n) + ": ";
        try {
            auto j = nlohmann::json::parse(line);
            McExample e;
            e.context = j.at("context").get<std::string>();
            e.choices = j.at("choices").get<std::vector<std::string>>();
            e.label = j.at("label").get<int>();
            if (e.choices.size() < 2) throw std::runtime_error("needs at least two choices");
            if (e.label < 0 || e.label >= int(e.choices.size()))
                throw std::runtime_error("label " + std::to_string(e.label) + " is not the index of a choice");
            for (const auto& c : e.choices)
                if (c.empty()) throw std::runtime_error("a choice is empty");
            out.push_back(std::move(e));
        } catch (const nlohmann::json::exception& e) {
            throw std::runtime_error(where + e.what());
        } catch (const std::runtime_error& e) {
            throw std::runtime_error(where + e.what());
        }
    }
    if (out.empty()) throw std::runtime_error(path + ": no examples");
    return out;
}

size_t utf8_length(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count every byte that starts a character
    return n;
}

McResult score_mc(const std::vector<McExample>& examples,
                  const std::function<std::vector<int>(const std::string&)>& tokenize,
                  const std::function<double(const std::vector<int>&, const std::vector<int>&)>& loglik) {
    McResult r;
    int correct = 0, correct_norm = 0;
    for (const McExample& e : examples) {
        const std::vector<int> ctx = tokenize(e.context);
        int best = 0, best_norm = 0;
        double best_ll = 0, best_ll_norm = 0;
        for (size_t i = 0; i < e.choices.size(); ++i) {
            double ll = loglik(ctx, tokenize(e.choices[i]));
            double ll_norm = ll / double(utf8_length(e.choices[i]));
            if (i == 0 || ll > best_ll) best = int(i), best_ll = ll;
            if (i == 0 || ll_norm > best_ll_norm) best_norm = int(i), best_ll_norm = ll_norm;
        }
        correct += best == e.label;
        correct_norm += best_norm == e.label;
        ++r.n;
    }
    r.acc = r.n ? double(correct) / r.n : 0;
    r.acc_norm = r.n ? double(correct_norm) / r.n : 0;
    return r;
}

}  // namespace llama::eval
