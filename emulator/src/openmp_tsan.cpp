// Linked by scripts/emu-run --tsan into a program built with -fopenmp, beside
// LLVM's Archer (libarcher), which tells ThreadSanitizer of the order the
// OpenMP runtime makes. The runtime's own code is not instrumented, and its
// calls into intercepted functions (its mutexes) would still be seen without
// that order: Archer asks for them to be left unchecked. The executable carries
// that option, so it runs the same however it is started (TSAN_OPTIONS can
// still change it).
#include <cstdlib>
#include <cstring>
#include <string>

namespace {
const char kOption[] = "ignore_noninstrumented_modules=1";
}

// ThreadSanitizer reads these before TSAN_OPTIONS.
extern "C" const char* __tsan_default_options() { return kOption; }

// Archer looks for the option in the environment when the OpenMP runtime
// starts (at the first parallel region, after this), not at the runtime's flags,
// and warns when it is missing: put it there too unless the user named it.
__attribute__((constructor)) static void tell_archer() {
    const char* env = std::getenv("TSAN_OPTIONS");
    if (env && std::strstr(env, "ignore_noninstrumented_modules")) return;
    std::string options = env && *env ? std::string(env) + ":" + kOption : std::string(kOption);
    setenv("TSAN_OPTIONS", options.c_str(), 1);
}
