// Checks of numeric flags (CLI11 validators) whose messages say in plain words
// what the flag takes: "--steps: -5 is not positive: give a number greater than
// 0" (CLI11's own PositiveNumber answers with a range up to the largest double).
#ifndef LIFECYCLE_FLAG_CHECKS_H
#define LIFECYCLE_FLAG_CHECKS_H

#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>

namespace llama {

inline CLI::Validator number_check(bool zero_allowed) {
    return CLI::Validator(
        [zero_allowed](std::string& text) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(text.c_str(), &end);
            if (text.empty() || *end != '\0') return "'" + text + "' is not a number";
            if (zero_allowed && !(v >= 0)) return text + " is negative: give 0 or more";
            if (!zero_allowed && !(v > 0)) return text + " is not positive: give a number greater than 0";
            return "";
        },
        zero_allowed ? "NUMBER >= 0" : "NUMBER > 0");
}
inline const CLI::Validator kPositive = number_check(false);
inline const CLI::Validator kNonNegative = number_check(true);

}  // namespace llama

#endif  // LIFECYCLE_FLAG_CHECKS_H
