// libFuzzer target for the shard readers. The first input byte picks the
// format (own shard, datatrove, Megatron); the rest is split into the files
// that format needs (for two files, the second byte says where to split).
// Opening may fail only with data::Error; what opens must read back whole.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "data/shard.h"

namespace data = llama::data;

static void put(const std::string& path, const uint8_t* p, size_t n) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return;
    std::fwrite(p, 1, n, f);
    std::fclose(f);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    static const std::string dir = "/tmp/fuzz_shard_" + std::to_string(getpid());
    static bool made = [] { return std::system(("mkdir -p " + dir).c_str()) == 0; }();
    if (!made) return 0;
    int kind = data[0] % 3;
    size_t split = 2 + (size - 2) * data[1] / 255;
    std::string path;
    if (kind == 0) {
        path = dir + "/s.tok";
        put(path, data + 1, size - 1);
    } else if (kind == 1) {
        path = dir + "/d.ds";
        put(path, data + 2, split - 2);
        put(path + ".index", data + split, size - split);
    } else {
        path = dir + "/m";
        put(path + ".idx", data + 2, split - 2);
        put(path + ".bin", data + split, size - split);
    }
    try {
        auto s = data::open_tokens(path, 1000);
        std::vector<uint32_t> buf;
        for (uint64_t d = 0; d < s->num_docs(); d++) {
            uint64_t b = s->doc_start(d), e = s->doc_start(d + 1);
            buf.resize(e - b);
            s->read(b, e - b, buf.data());
        }
    } catch (const data::Error&) {
    }
    return 0;
}
