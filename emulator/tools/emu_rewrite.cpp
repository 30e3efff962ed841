// The rewrite step of the emulated build: reads a CUDA source and writes C++ that
// g++ or clang++ compiles against the emulation layer. It changes only what C++
// macros cannot express and keeps every line where it was:
//
//   k<<<grid, block, smem, stream>>>(a, b)  ->  k < ::emu::LaunchConfig(grid, block, smem, stream) > ::emu::args(a, b)
//   extern __shared__ T name[];             ->  T* name = reinterpret_cast<T*>(::emu::dynamic_shared());
//   __shared__ T name[N][M];                ->  auto& name = ::emu::static_shared<T[N][M]>([] {});
//   asm volatile("ptx" : "=r"(x) : "l"(p));  ->  a call into the PTX interpreter (rewrite_asm, emu/ptx.h)
//
// Comments, string and character literals pass through untouched.
// Usage: emu_rewrite INPUT.cu OUTPUT.cpp
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

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

// ---- inline PTX ----------------------------------------------------------------
// asm [volatile] ("template" "more" : outputs : inputs : clobbers) becomes a
// block with a function-local static site (the template, parsed once, at its
// first execution) and a call that executes it with the operands: outputs by address
// (::emu::ptx_out<'f'>(x)), inputs and immediates by value (::emu::ptx_in<'r'>(e)).
// The replacement is on the asm's first line; the newlines it spanned follow it.

// Skips a string or character literal starting at `at`; returns the index after it.
std::size_t skip_literal(const std::string& s, std::size_t at) {
    const char q = s[at];
    std::size_t j = at + 1;
    while (j < s.size() && s[j] != q) {
        if (s[j] == '\\') ++j;
        ++j;
    }
    return j + 1;
}

struct AsmOperand {
    std::string constraint, expr;
};

// The asm statement's text between its parentheses, split at the top-level
// colons, with comments replaced by spaces.
std::vector<std::string> asm_sections(const std::string& body) {
    std::vector<std::string> sections(1);
    int depth = 0;
    for (std::size_t i = 0; i < body.size();) {
        const char c = body[i];
        if (c == '"' || c == '\'') {
            const std::size_t e = skip_literal(body, i);
            sections.back().append(body, i, e - i);
            i = e;
            continue;
        }
        if (body.compare(i, 2, "//") == 0) {
            while (i < body.size() && body[i] != '\n') ++i;
            sections.back() += ' ';
            continue;
        }
        if (body.compare(i, 2, "/*") == 0) {
            const std::size_t e = body.find("*/", i + 2);
            i = e == std::string::npos ? body.size() : e + 2;
            sections.back() += ' ';
            continue;
        }
        if (c == '(' || c == '[' || c == '{') ++depth;
        if (c == ')' || c == ']' || c == '}') --depth;
        if (c == ':' && depth == 0) sections.emplace_back();
        else sections.back() += (c == '\n' || c == '\r') ? ' ' : c;
        ++i;
    }
    return sections;
}

// "=r"(x), "l"(p) -> the operands.
std::vector<AsmOperand> asm_operands(const std::string& sec, std::size_t line) {
    std::vector<AsmOperand> ops;
    std::size_t i = 0;
    const std::size_t n = sec.size();
    auto skip_space = [&] {
        while (i < n && std::isspace(static_cast<unsigned char>(sec[i]))) ++i;
    };
    skip_space();
    while (i < n) {
        if (sec[i] == '[') die(line, "asm operands with symbolic names ([name]) are not supported by the emulator");
        if (sec[i] != '"') die(line, "cannot read this asm operand list: " + trim(sec));
        const std::size_t e = skip_literal(sec, i);
        AsmOperand op;
        op.constraint = sec.substr(i + 1, e - i - 2);
        i = e;
        skip_space();
        if (i >= n || sec[i] != '(') die(line, "asm operand \"" + op.constraint + "\" without (expression)");
        int depth = 0;
        const std::size_t start = i;
        for (; i < n; ++i) {
            if (sec[i] == '"' || sec[i] == '\'') {
                i = skip_literal(sec, i) - 1;
                continue;
            }
            if (sec[i] == '(') ++depth;
            if (sec[i] == ')' && --depth == 0) break;
        }
        if (i >= n) die(line, "unbalanced parentheses in an asm operand");
        op.expr = sec.substr(start + 1, i - start - 1);
        ++i;
        ops.push_back(op);
        skip_space();
        if (i < n) {
            if (sec[i] != ',') die(line, "cannot read this asm operand list: " + trim(sec));
            ++i;
            skip_space();
        }
    }
    return ops;
}

// Rewrites the asm statement whose keyword starts at `at`; returns the index
// after its closing parenthesis (the `;` stays in the source).
std::size_t rewrite_asm(const std::string& src, std::size_t at, std::size_t line, std::string& out) {
    std::size_t i = at;
    while (i < src.size() && ident_char(src[i])) ++i;  // asm, __asm__, __asm
    auto skip_space = [&] {
        while (i < src.size() && std::isspace(static_cast<unsigned char>(src[i]))) ++i;
    };
    skip_space();
    for (const char* q : {"volatile", "__volatile__", "__volatile", "inline"}) {
        const std::size_t len = std::char_traits<char>::length(q);
        if (src.compare(i, len, q) == 0 && !ident_char(src[i + len])) {
            i += len;
            skip_space();
        }
    }
    if (src.compare(i, 4, "goto") == 0) die(line, "asm goto is not supported by the emulator");
    if (i >= src.size() || src[i] != '(') die(line, "cannot read this asm statement");
    const std::size_t open = i;
    int depth = 0;
    for (; i < src.size(); ++i) {
        if (src[i] == '"' || src[i] == '\'') {
            i = skip_literal(src, i) - 1;
            continue;
        }
        if (src.compare(i, 2, "//") == 0) {
            while (i < src.size() && src[i] != '\n') ++i;
            continue;
        }
        if (src[i] == '(') ++depth;
        if (src[i] == ')' && --depth == 0) break;
    }
    if (i >= src.size()) die(line, "asm statement without its closing parenthesis");
    const std::size_t close = i;
    const std::vector<std::string> sec = asm_sections(src.substr(open + 1, close - open - 1));
    if (sec.size() > 4) die(line, "asm statement with more than three colons");
    // The template: string literals only (adjacent ones are joined by the compiler).
    const std::string tmpl = trim(sec[0]);
    for (std::size_t j = 0; j < tmpl.size();) {
        if (tmpl[j] == '"') j = skip_literal(tmpl, j);
        else if (std::isspace(static_cast<unsigned char>(tmpl[j]))) ++j;
        else die(line, "the emulator needs an asm template made of string literals only");
    }
    if (tmpl.empty()) die(line, "asm statement without a template");
    std::vector<AsmOperand> ops;
    for (std::size_t s = 1; s < sec.size() && s < 3; ++s)
        for (AsmOperand& op : asm_operands(sec[s], line)) {
            const bool output = s == 1;
            std::string c;
            for (char ch : op.constraint)
                if (ch != '&') c += ch;  // early clobber: no meaning here
            const bool modified = !c.empty() && (c[0] == '=' || c[0] == '+');
            if (output != modified)
                die(line, "asm operand \"" + op.constraint + "\": outputs need = or +, inputs neither");
            if (c.size() != std::size_t(1 + modified) || std::string("rlfdhcn").find(c.back()) == std::string::npos)
                die(line,
                    "asm constraint \"" + op.constraint + "\" is not supported by the emulator (r, l, f, d, h, c, n)");
            op.constraint = c;
            ops.push_back(op);
        }
    std::string cons, list;
    for (std::size_t k = 0; k < ops.size(); ++k) {
        const AsmOperand& op = ops[k];
        cons += (k ? "," : "") + op.constraint;
        const bool output = op.constraint[0] == '=' || op.constraint[0] == '+';
        list += std::string(k ? ", " : "") + (output ? "::emu::ptx_out<'" : "::emu::ptx_in<'") + op.constraint.back() +
                "'>(" + trim(op.expr) + ")";
    }
    out += "do { static const ::emu::PtxSite emu_ptx_site_(" + tmpl + ", \"" + cons + "\", __FILE__, __LINE__); ";
    if (ops.empty()) {
        out += "emu_ptx_site_.run(nullptr, 0); } while (0)";
    } else {
        out += "::emu::PtxArg emu_ptx_args_[] = {" + list + "}; emu_ptx_site_.run(emu_ptx_args_, " +
               std::to_string(ops.size()) + "); } while (0)";
    }
    out += std::string(count_newlines(src.substr(at, close + 1 - at)), '\n');
    return close + 1;
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
        if (word_at(i, "asm") || word_at(i, "__asm__") || word_at(i, "__asm")) {
            const std::size_t end = rewrite_asm(src, i, line, out);
            line += count_newlines(src.substr(i, end - i));
            i = end;
            continue;
        }
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
