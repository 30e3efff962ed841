// Real text for the tests: the King James Bible from Debian's bible-kjv,
// written once per test run to a temporary file.
#ifndef TEST_TEST_CORPUS_H
#define TEST_TEST_CORPUS_H

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include <unistd.h>

namespace testcorpus {

inline const std::string& kjv_path() {
    static std::string path;
    if (path.empty()) {
        path = "/tmp/llama_test_kjv_" + std::to_string(getpid()) + ".txt";
        REQUIRE(std::system(("bible -f Gen1:1-Rev22:21 > " + path).c_str()) == 0);
    }
    return path;
}

}  // namespace testcorpus

#endif  // TEST_TEST_CORPUS_H
