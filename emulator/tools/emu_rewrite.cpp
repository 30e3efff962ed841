// The rewrite step of the emulated build: reads a CUDA source and writes C++ that
// g++ or clang++ compiles against the emulation layer. It changes only what C++
// macros cannot express and keeps every line where it was:
//
//   k<<<grid, block, smem, stream>>>(a, b)  ->  k < ::emu::LaunchConfig(grid, block, smem, stream) > ::emu::args(a, b)
//   extern __shared__ T name[];             ->  T* name = reinterpret_cast<T*>(::emu::dynamic_shared());
//   __shared__ T name[N][M];                ->  auto& name = ::emu::static_shared<T[N][M]>([] {});
//
// Comments, string and character literals pass through untouched.
// Usage: emu_rewrite INPUT.cu OUTPUT.cpp
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace {

std::string input_name;

[[noreturn]] void die(std::size_t line, const std::string& msg) {
    std::cerr << input_name << ":" << line << ": error: " << msg << "\n";
    std::exit(1);
}

bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

std::string trim(const std::string& s) {
    std::size_t a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) return "";
    std::size_t b = s.find_last_not_of(" \t\r\n");
    return s.substr(a, b - a + 1);
}

// Removes __align__(n) and alignas(n): heap-placed shared arrays are aligned anyway.
std::string strip_alignment(std::string s) {
    for (const char* kw : {"__align__", "alignas"}) {
        std::size_t p;
        while ((p = s.find(kw)) != std::string::npos) {
            std::size_t q = s.find('(', p);
            int depth = 0;
            std::size_t r = q;
            for (; r < s.size(); ++r) {
                if (s[r] == '(') ++depth;
                if (s[r] == ')' && --depth == 0) break;
            }
            s.erase(p, r + 1 - p);
        }
    }
    return s;
}

std::size_t count_newlines(const std::string& s) {
    std::size_t n = 0;
    for (char c : s) n += c == '\n';
    return n;
}

// decl: the text between `__shared__` and `;`.
std::string rewrite_shared(const std::string& decl_raw, bool dynamic, std::size_t line) {
    std::string decl = strip_alignment(decl_raw);
    int depth = 0;
    for (char c : decl) {
        if (c == '(' || c == '[' || c == '<') ++depth;
        if (c == ')' || c == ']' || c == '>') --depth;
        if (c == ',' && depth == 0) die(line, "declare one __shared__ variable per statement");
        if (c == '=' && depth == 0) die(line, "__shared__ variables cannot have initializers");
    }
    std::string flat;
    for (char c : decl) flat += (c == '\n' || c == '\r') ? ' ' : c;
    std::size_t bracket = flat.find('[');
    std::string head = trim(bracket == std::string::npos ? flat : flat.substr(0, bracket));
    std::string dims = bracket == std::string::npos ? "" : trim(flat.substr(bracket));
    std::size_t name_start = head.size();
    while (name_start > 0 && ident_char(head[name_start - 1])) --name_start;
    std::string name = head.substr(name_start);
    std::string type = trim(head.substr(0, name_start));
    if (name.empty() || type.empty()) die(line, "cannot read this __shared__ declaration");
    std::string out;
    if (dynamic) {
        if (dims != "[]") die(line, "extern __shared__ arrays must be declared as `extern __shared__ T name[];`");
        out = type + "* " + name + " = reinterpret_cast<" + type + "*>(::emu::dynamic_shared());";
    } else {
        out = "auto& " + name + " = ::emu::static_shared<" + type + dims + ">([] {});";
    }
    out += std::string(count_newlines(decl_raw), '\n');
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: emu_rewrite INPUT.cu OUTPUT.cpp\n";
        return 2;
    }
    input_name = argv[1];
    std::ifstream in(argv[1], std::ios::binary);
    if (!in) {
        std::cerr << "emu_rewrite: cannot read " << argv[1] << "\n";
        return 1;
    }
    std::stringstream buf;
    buf << in.rdbuf();
    const std::string src = buf.str();
    std::string out = "#line 1 \"" + input_name + "\"\n";
    std::size_t line = 1;
    bool in_launch = false;
    std::size_t launch_line = 0;
    std::size_t i = 0;
    const std::size_t n = src.size();
    auto starts = [&](std::size_t at, const char* s) {
        return src.compare(at, std::char_traits<char>::length(s), s) == 0;
    };
    auto word_at = [&](std::size_t at, const char* w) {
        std::size_t len = std::char_traits<char>::length(w);
        return starts(at, w) && (at == 0 || !ident_char(src[at - 1])) && (at + len >= n || !ident_char(src[at + len]));
    };
    while (i < n) {
        char c = src[i];
        if (starts(i, "//")) {
            std::size_t e = src.find('\n', i);
            if (e == std::string::npos) e = n;
            out.append(src, i, e - i);
            i = e;
            continue;
        }
        if (starts(i, "/*")) {
            std::size_t e = src.find("*/", i + 2);
            e = e == std::string::npos ? n : e + 2;
            std::string chunk = src.substr(i, e - i);
            line += count_newlines(chunk);
            out += chunk;
            i = e;
            continue;
        }
        if (c == '"' || c == '\'') {
            // A raw string R"(...)" is rare in kernels and not handled specially.
            std::size_t j = i + 1;
            while (j < n && src[j] != c) {
                if (src[j] == '\\') ++j;
                ++j;
            }
            out.append(src, i, j + 1 - i);
            i = j + 1;
            continue;
        }
        if (c == '\n') ++line;
        if (starts(i, "<<<")) {
            if (in_launch) die(line, "nested <<< in a kernel launch");
            in_launch = true;
            launch_line = line;
            out += " < ::emu::LaunchConfig(";
            i += 3;
            continue;
        }
        if (in_launch && starts(i, ">>>")) {
            in_launch = false;
            out += ") > ::emu::args";
            i += 3;
            continue;
        }
        bool is_extern = word_at(i, "extern");
        std::size_t shared_at = i;
        if (is_extern) {
            std::size_t j = i + 6;
            while (j < n && std::isspace(static_cast<unsigned char>(src[j]))) ++j;
            if (word_at(j, "__shared__")) shared_at = j;
            else is_extern = false;
        }
        if (is_extern || word_at(i, "__shared__")) {
            std::size_t start = shared_at + 10;
            std::size_t semi = src.find(';', start);
            if (semi == std::string::npos) die(line, "__shared__ declaration without ';'");
            std::string decl = src.substr(start, semi - start);
            if (decl.find('{') != std::string::npos) die(line, "cannot read this __shared__ declaration");
            std::string skipped = src.substr(i, start - i);
            out += std::string(count_newlines(skipped), '\n');
            out += rewrite_shared(decl, is_extern, line);
            line += count_newlines(skipped) + count_newlines(decl);
            i = semi + 1;
            continue;
        }
        out += c;
        ++i;
    }
    if (in_launch) die(launch_line, "<<< without a closing >>>");
    std::ofstream o(argv[2], std::ios::binary);
    o << out;
    if (!o) {
        std::cerr << "emu_rewrite: cannot write " << argv[2] << "\n";
        return 1;
    }
    return 0;
}
