// Shared by the tests that run the project's programs: real text (the King
// James Bible from Debian's bible-kjv, written once per test run to a temporary
// file) and running a command to collect its exit status and output.
#ifndef TEST_TEST_CORPUS_H
#define TEST_TEST_CORPUS_H

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace testcorpus {

// LLAMA_TEST_TEXT names a file with the text instead (the GPU bundle carries
// one, for machines without bible-kjv).
inline const std::string& kjv_path() {
    static std::string path;
    if (path.empty() && std::getenv("LLAMA_TEST_TEXT")) path = std::getenv("LLAMA_TEST_TEXT");
    if (path.empty()) {
        path = "/tmp/llama_test_kjv_" + std::to_string(getpid()) + ".txt";
        REQUIRE(std::system(("bible -f Gen1:1-Rev22:21 > " + path).c_str()) == 0);
    }
    return path;
}

struct CommandResult {
    int status = -1;     // exit status (-1 when killed by a signal)
    std::string output;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& cmd) {
    CommandResult r;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) r.output.append(buf, n);
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

}  // namespace testcorpus

#endif  // TEST_TEST_CORPUS_H
