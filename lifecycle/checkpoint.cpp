#include "lifecycle/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "lifecycle/file_io.h"

namespace fs = std::filesystem;

namespace llama::checkpoint {

namespace {

const char* kRequired[] = {"model.safetensors", "state.json"};  // and the moments, whole or in parts
const char* kPrefix = "step_";

// The step of a directory named step_NNNNNNNN, or -1.
int step_of(const fs::path& p) {
    const std::string name = p.filename().string();
    if (name.rfind(kPrefix, 0) != 0 || name.size() <= 5) return -1;
    const std::string digits = name.substr(5);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) return -1;
    return std::stoi(digits);
}

std::string staging(const std::string& dir, int step) {
    return (fs::path(dir) / (".tmp_" + fs::path(path_for_step(dir, step)).filename().string())).string();
}

}  // namespace

std::string optimizer_part_name(int rank) {
    char name[48];
    std::snprintf(name, sizeof name, "optimizer.rank%05d.safetensors", rank);
    return name;
}

void begin_staging(const std::string& dir, int step) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error(dir + ": cannot create checkpoint directory: " + ec.message());
    const std::string tmp = staging(dir, step);
    fs::remove_all(tmp, ec);
    if (!fs::create_directory(tmp, ec))
        throw std::runtime_error(tmp + ": cannot create: " + (ec ? ec.message() : "exists"));
}

void write_part(const std::string& dir, int step, const std::string& name,
                const std::vector<safetensors::TensorRef>& tensors) {
    safetensors::write_file(staging(dir, step) + "/" + name, tensors);
}

void abandon(const std::string& dir, int step) {
    std::error_code ec;
    fs::remove_all(staging(dir, step), ec);
}

std::string path_for_step(const std::string& dir, int step) {
    char name[32];
    std::snprintf(name, sizeof name, "step_%08d", step);
    return (fs::path(dir) / name).string();
}

std::string write(const std::string& dir, int step, const std::vector<safetensors::TensorRef>& model,
                  const std::vector<safetensors::TensorRef>& optimizer, const nlohmann::json& state,
                  const std::vector<std::string>& parts) {
    std::error_code ec;
    const std::string final_path = path_for_step(dir, step);
    const std::string tmp = staging(dir, step);
    if (parts.empty()) begin_staging(dir, step);
    try {
        nlohmann::json manifest = {{"format", "llama-train checkpoint"}, {"version", kFormatVersion}, {"step", step}};
        auto record = [&](const std::string& name, uint64_t checksum) {
            uint64_t size = fs::file_size(fs::path(tmp) / name);
            manifest["files"][name] = {{"bytes", size}, {"xxh3", fileio::hex64(checksum)}};
        };
        for (const std::string& part : parts) {
            if (!fs::exists(fs::path(tmp) / part)) throw std::runtime_error(tmp + "/" + part + ": missing");
            record(part, fileio::checksum_file(tmp + "/" + part));
        }
        record("model.safetensors", safetensors::write_file(tmp + "/model.safetensors", model,
                                                            {{"format", "pt"}, {"step", std::to_string(step)}}));
        if (parts.empty() || !optimizer.empty())
            record("optimizer.safetensors", safetensors::write_file(tmp + "/optimizer.safetensors", optimizer));
        record("state.json", fileio::write_file(tmp + "/state.json", state.dump(2) + "\n"));
        fileio::write_file(tmp + "/manifest.json", manifest.dump(2) + "\n");
        fileio::fsync_dir(tmp);
        // Replace an older copy of the same step (a resumed run passing it again).
        const std::string old = tmp + ".old";
        fs::remove_all(old, ec);
        if (fs::exists(final_path)) fs::rename(final_path, old);
        fs::rename(tmp, final_path);
        fileio::fsync_dir(dir);
        fs::remove_all(old, ec);
    } catch (const std::exception& e) {
        fs::remove_all(tmp, ec);
        throw std::runtime_error(e.what());
    }
    return final_path;
}

void verify(const std::string& path) {
    const std::string manifest_path = path + "/manifest.json";
    if (!fs::exists(manifest_path)) throw std::runtime_error(path + ": no manifest.json (incomplete checkpoint)");
    nlohmann::json m;
    try {
        m = nlohmann::json::parse(fileio::read_file(manifest_path));
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(manifest_path + ": not valid JSON: " + e.what());
    }
    try {
        if (m.at("format").get<std::string>() != "llama-train checkpoint")
            throw std::runtime_error(manifest_path + ": not a llama-train checkpoint manifest");
        int version = m.at("version").get<int>();
        if (version != kFormatVersion)
            throw std::runtime_error(manifest_path + ": format version " + std::to_string(version) +
                                     " is not the supported version " + std::to_string(kFormatVersion));
        for (const char* name : kRequired)
            if (!m.at("files").contains(name)) throw std::runtime_error(manifest_path + ": does not list " + name);
        bool moments = false;
        for (const auto& [name, entry] : m.at("files").items()) {
            if (name.find('/') != std::string::npos || name.rfind("..", 0) == 0)
                throw std::runtime_error(manifest_path + ": lists a file outside the checkpoint: " + name);
            moments |= name.rfind("optimizer.", 0) == 0;
            const std::string file = path + "/" + name;
            if (!fs::exists(file)) throw std::runtime_error(file + ": missing");
            uint64_t size = 0;
            uint64_t sum = fileio::checksum_file(file, &size);
            uint64_t expect_size = entry.at("bytes").get<uint64_t>();
            if (size != expect_size)
                throw std::runtime_error(file + ": " + std::to_string(size) + " bytes, the manifest says " +
                                         std::to_string(expect_size) + " (truncated or overwritten)");
            if (fileio::hex64(sum) != entry.at("xxh3").get<std::string>())
                throw std::runtime_error(file + ": checksum mismatch (corrupt file)");
        }
        if (!moments) throw std::runtime_error(manifest_path + ": lists no optimizer state");
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(manifest_path + ": bad manifest: " + e.what());
    }
}

std::vector<std::string> list(const std::string& dir) {
    std::vector<std::pair<int, std::string>> found;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return {};
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        int step = step_of(e.path());
        if (step >= 0 && e.is_directory()) found.emplace_back(step, e.path().string());
    }
    std::sort(found.begin(), found.end());
    std::vector<std::string> out;
    for (auto& f : found) out.push_back(f.second);
    return out;
}

std::string find_latest(const std::string& dir, std::vector<std::string>& skipped) {
    std::vector<std::string> all = list(dir);
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
        try {
            verify(*it);
            read_state(*it);
            return *it;
        } catch (const std::exception& e) {
            skipped.push_back(std::string("skipping checkpoint ") + *it + ": " + e.what());
        }
    }
    return "";
}

void prune(const std::string& dir, int keep) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().filename().string().rfind(".tmp_", 0) == 0) fs::remove_all(e.path(), ec);
    if (keep <= 0) return;
    std::vector<std::string> all = list(dir);
    for (size_t i = 0; i + keep < all.size(); ++i) fs::remove_all(all[i], ec);
}

nlohmann::json read_state(const std::string& path) {
    const std::string file = path + "/state.json";
    try {
        return nlohmann::json::parse(fileio::read_file(file));
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(file + ": not valid JSON: " + e.what());
    }
}

}  // namespace llama::checkpoint
