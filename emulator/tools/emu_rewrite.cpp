// The rewrite step of the emulated build: reads a CUDA source and writes C++ that
// g++ or clang++ compiles against the emulation layer. It changes only what C++
// macros cannot express and keeps every line where it was:
//
//   k<<<grid, block, smem, stream>>>(a, b)  ->  ::emu::launch_kernel(::emu::LaunchConfig(grid, block, smem, stream),
//                                                   <k named>, <k called>, a, b)   (see rewrite_launch)
//   extern __shared__ T name[];             ->  T* name = reinterpret_cast<T*>(::emu::dynamic_shared());
//   [static] __shared__ T name[N][M];       ->  auto& name = ::emu::static_shared<T[N][M]>([] {});
//   #include "header"                       ->  #include "<its rewritten copy>"   (with --gen; see follow_includes)
//   asm volatile("ptx" : "=r"(x) : "l"(p));  ->  a call into the PTX interpreter (rewrite_asm, emu/ptx.h)
//   __cluster_dims__(X, Y, Z) on a kernel    ->  a check at the top of its body and a registration after it
//                                               (see read_cluster_dims)
//
// Comments, string and character literals pass through untouched.
// Usage: emu_rewrite [--gen DIR --root DIR [-I DIR]...] INPUT.cu OUTPUT.cpp
#include <cctype>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

// Rewrites `input` into `output`, then the headers it includes (with --gen).
int rewrite_file(const std::string& input, const std::string& output);

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

// ---- kernel launches ------------------------------------------------------------
// Index after the comment, string or character literal that starts at s[i], or i
// when none starts there.
std::size_t skip_literal(const std::string& s, std::size_t i) {
    if (s.compare(i, 2, "//") == 0) {
        std::size_t e = s.find('\n', i);
        return e == std::string::npos ? s.size() : e;
    }
    if (s.compare(i, 2, "/*") == 0) {
        std::size_t e = s.find("*/", i + 2);
        return e == std::string::npos ? s.size() : e + 2;
    }
    if (s[i] == '"' || s[i] == '\'') {
        std::size_t j = i + 1;
        while (j < s.size() && s[j] != s[i]) j += s[j] == '\\' ? 2 : 1;
        return j + 1;
    }
    return i;
}

// Depth change of one bracket character: ( [ { open, ) ] } close.
int bracket(char c) {
    if (c == '(' || c == '[' || c == '{') return 1;
    if (c == ')' || c == ']' || c == '}') return -1;
    return 0;
}

// Start of the expression that names the kernel and ends at out[end]: a name with
// its scopes and template arguments (ns::k<float, 4>), a member (obj.k, p->k), a
// subscript (table[i]), or anything in parentheses ((*fp)).
std::size_t callee_start(const std::string& out, std::size_t end) {
    std::size_t p = end;
    // Spaces and line breaks between the pieces of the name (a formatter may put
    // the kernel on the line above its <<<), and the `//` comment of a line above.
    auto skip_space = [&] {
        while (p > 0 && std::isspace(static_cast<unsigned char>(out[p - 1]))) {
            if (out[--p] != '\n') continue;
            std::size_t line_start = p == 0 ? 0 : out.rfind('\n', p - 1);
            line_start = line_start == std::string::npos ? 0 : line_start + 1;
            std::size_t comment = out.find("//", line_start);
            if (comment < p) p = comment;
        }
    };
    auto match_back = [&](char open, char close) {
        int depth = 0;
        while (p > 0) {
            char c = out[--p];
            if (c == close) ++depth;
            if (c == open && --depth == 0) return;
        }
    };
    skip_space();
    for (;;) {
        if (p == 0) return p;
        char c = out[p - 1];
        if (c == '>') match_back('<', '>');
        else if (c == ')') match_back('(', ')');
        else if (c == ']') match_back('[', ']');
        else if (ident_char(c)) {
            while (p > 0 && ident_char(out[p - 1])) --p;
        } else {
            return p;
        }
        // What joins this piece to an earlier one: a template argument list or
        // subscript follows a name; `::`, `.`, `->` and `template` join a scope.
        std::size_t piece = p;
        skip_space();
        if (p > 0 && (c == '>' || c == ']' || c == ')') &&
            (ident_char(out[p - 1]) || out[p - 1] == '>' || out[p - 1] == ')' || out[p - 1] == ']')) {
            if (c != ')') continue;
            // (...) after a name is a call that returns the kernel, unless the
            // name is a keyword: `return (*fp)<<<...`.
            std::size_t w = p;
            while (w > 0 && ident_char(out[w - 1])) --w;
            std::string word = out.substr(w, p - w);
            bool keyword = false;
            for (const char* k : {"return", "else", "do", "case", "throw", "co_await"}) keyword |= word == k;
            if (!word.empty() && !keyword) continue;
        }
        if (p >= 2 && (out.compare(p - 2, 2, "::") == 0 || out.compare(p - 2, 2, "->") == 0)) {
            p -= 2;
            skip_space();
            if (p >= 8 && out.compare(p - 8, 8, "template") == 0) p -= 8, skip_space();
            continue;
        }
        if (p >= 1 && out[p - 1] == '.') {
            --p;
            skip_space();
            continue;
        }
        if (p >= 8 && out.compare(p - 8, 8, "template") == 0 && (p == 8 || !ident_char(out[p - 9]))) {
            std::size_t q = p - 8;
            p = q;
            skip_space();
            if (p >= 2 && (out.compare(p - 2, 2, "::") == 0 || out.compare(p - 2, 2, "->") == 0 || out[p - 1] == '.')) {
                p -= out[p - 1] == '.' ? 1 : 2;
                skip_space();
                continue;
            }
        }
        return piece;
    }
}

// A literal NULL or 0 argument is passed as ::emu::NullArg(), which converts to
// any pointer as the literal would (forwarded as an int, it would not).
std::string mark_null_arguments(const std::string& args) {
    std::string res;
    std::size_t piece = 0;
    int depth = 0;
    for (std::size_t i = 0; i <= args.size(); ++i) {
        if (i < args.size()) {
            std::size_t e = skip_literal(args, i);
            if (e != i) {
                i = e - 1;
                continue;
            }
            depth += bracket(args[i]);
        }
        if (i == args.size() || (args[i] == ',' && depth == 0)) {
            std::string a = args.substr(piece, i - piece);
            std::string t = trim(a);
            if (t == "NULL" || t == "0") a.replace(a.find(t), t.size(), "::emu::NullArg()");
            res += a;
            if (i < args.size()) res += ',';
            piece = i + 1;
        }
    }
    return res;
}

// Rewrites the launch whose `<<<` is at src[at]; `out` ends with the kernel
// expression, which is taken back from it. Returns the index in src after the
// launch's closing ')'. The output is
//
//   ::emu::launch_kernel(::emu::LaunchConfig(CFG),
//       [&](auto t) -> decltype(::emu::kernel_pointer<decltype(t)>(K)) {
//           return ::emu::kernel_pointer<decltype(t)>(K); },
//       [=](auto&... a) { K(a...); }, ARGS)
//
// on one line, with the source's newlines kept: the first lambda names the kernel
// when K is one function, the second calls it as an ordinary call (overloads,
// deduced template arguments). cuda_runtime.h explains which is used.
std::size_t rewrite_launch(const std::string& src, std::size_t at, std::string& out, std::size_t line) {
    std::size_t start = callee_start(out, out.size());
    std::string callee_raw = out.substr(start);
    std::string callee = trim(callee_raw);
    if (callee.empty()) die(line, "a kernel launch <<<...>>> with no kernel before it");
    // The kernel expression on one line, without comments.
    std::string flat;
    for (std::size_t k = 0; k < callee.size(); ++k) {
        std::size_t e = callee[k] == '/' ? skip_literal(callee, k) : k;
        if (e != k) {
            flat += ' ';
            k = e - 1;
        } else {
            flat += (callee[k] == '\n' || callee[k] == '\r' || callee[k] == '\\') ? ' ' : callee[k];
        }
    }
    // The configuration: up to `>>>` outside brackets.
    std::size_t i = at + 3;
    int depth = 0;
    while (i < src.size() && !(depth == 0 && src.compare(i, 3, ">>>") == 0)) {
        std::size_t e = skip_literal(src, i);
        if (e != i) {
            i = e;
            continue;
        }
        depth += bracket(src[i]);
        ++i;
    }
    if (i >= src.size()) die(line, "<<< without a closing >>>");
    std::string cfg = src.substr(at + 3, i - at - 3);
    std::size_t open = i + 3;
    while (open < src.size() && std::isspace(static_cast<unsigned char>(src[open]))) ++open;
    if (open >= src.size() || src[open] != '(')
        die(line, "a kernel launch <<<...>>> must be followed by its (arguments)");
    std::string gap = src.substr(i + 3, open - i - 3);
    std::size_t close = open + 1;
    depth = 1;
    while (close < src.size()) {
        std::size_t e = skip_literal(src, close);
        if (e != close) {
            close = e;
            continue;
        }
        depth += bracket(src[close]);
        if (depth == 0) break;
        ++close;
    }
    if (close >= src.size()) die(line, "the arguments of this kernel launch have no closing ')'");
    std::string args = src.substr(open + 1, close - open - 1);
    out.erase(start);
    out += callee_raw.substr(0, callee_raw.find(callee));  // whitespace before the kernel
    out += "::emu::launch_kernel(::emu::LaunchConfig(" + cfg + ")," + gap;
    out += " [&](auto emu_t) -> decltype(::emu::kernel_pointer<decltype(emu_t)>(" + flat +
           ")) { return ::emu::kernel_pointer<decltype(emu_t)>(" + flat + "); },";
    out += " [=](auto&... emu_a) { " + flat + "(emu_a...); }";
    if (!trim(args).empty()) out += "," + mark_null_arguments(args);
    out += ")" + std::string(count_newlines(callee), '\n');
    return close + 1;
}

// `static __shared__ T x[N];` is the same as `__shared__ T x[N];` (shared
// variables live as long as the block): the `static` just written to `out` goes.
void drop_static_before_shared(std::string& out) {
    std::size_t p = out.size();
    while (p > 0 && std::isspace(static_cast<unsigned char>(out[p - 1]))) --p;
    if (p >= 6 && out.compare(p - 6, 6, "static") == 0 && (p == 6 || !ident_char(out[p - 7]))) out.erase(p - 6, 6);
}

// ---- __cluster_dims__ ----------------------------------------------------------------
// `__cluster_dims__(X, Y, Z)` on a kernel is dropped where it stands; the body
// of the kernel it marks starts with `::emu::declared_cluster_dims(X, Y, Z);`
// (each thread checks that the launch gave it those clusters), and after the
// body (or after a declaration's `;`) comes
//
//   static const bool emu_cluster_dims_LINE_ = ::emu::register_cluster_dims_of(<K named>, X, Y, Z);
//
// which tells the runtime, before main, the clusters the kernel's launches get
// (<K named> is the launch rewrite's first lambda: a template kernel is not
// registered, and its <<<>>> launch fails the check with a message).
struct ClusterDims {
    std::string dims;    // "X, Y, Z" (missing ones are 1)
    std::string name;    // the kernel's (qualified) name
    std::size_t at = 0;  // the index in src of the body's `{` or the declaration's `;`
    std::size_t line = 0;
};

// Reads `__cluster_dims__(...)` at src[at] and the declaration it belongs to;
// `end` is set to the index after its `)`.
ClusterDims read_cluster_dims(const std::string& src, std::size_t at, std::size_t line, std::size_t& end) {
    ClusterDims cd;
    cd.line = line;
    std::size_t i = at + std::char_traits<char>::length("__cluster_dims__");
    while (i < src.size() && std::isspace(static_cast<unsigned char>(src[i]))) ++i;
    if (i >= src.size() || src[i] != '(') die(line, "__cluster_dims__ needs its dimensions in parentheses");
    std::size_t close = i + 1;
    for (int depth = 1; close < src.size(); ++close) {
        depth += bracket(src[close]);
        if (depth == 0) break;
    }
    if (close >= src.size()) die(line, "__cluster_dims__( without its ')'");
    std::vector<std::string> dims;
    std::string cur;
    for (std::size_t k = i + 1, depth = 0; k < close; ++k) {
        const char c = src[k];
        if (bracket(c) > 0) ++depth;
        if (bracket(c) < 0) --depth;
        if (c == ',' && depth == 0) {
            dims.push_back(trim(cur));
            cur.clear();
        } else {
            cur += c;
        }
    }
    dims.push_back(trim(cur));
    if (dims.empty() || dims.size() > 3 || dims[0].empty()) die(line, "__cluster_dims__ takes one to three dimensions");
    while (dims.size() < 3) dims.push_back("1");
    cd.dims = "(" + dims[0] + "), (" + dims[1] + "), (" + dims[2] + ")";
    end = close + 1;
    // The kernel's name: the (qualified) identifier before the first '(' that is
    // not the argument list of another __attribute__-like word (__launch_bounds__(...)).
    std::string last;
    std::size_t k = end;
    bool qualified = false;
    while (k < src.size()) {
        const std::size_t lit = skip_literal(src, k);
        if (lit != k) {
            k = lit;
            continue;
        }
        const char c = src[k];
        if (ident_char(c)) {
            std::size_t e = k;
            while (e < src.size() && ident_char(src[e])) ++e;
            const std::string word = src.substr(k, e - k);
            std::size_t after = e;
            while (after < src.size() && std::isspace(static_cast<unsigned char>(src[after]))) ++after;
            if (word.size() > 4 && word.compare(0, 2, "__") == 0 && word.compare(word.size() - 2, 2, "__") == 0 &&
                after < src.size() && src[after] == '(') {
                int depth = 0;  // an attribute word with arguments: skip them
                for (k = after; k < src.size(); ++k) {
                    depth += bracket(src[k]);
                    if (depth == 0) break;
                }
                ++k;
                continue;
            }
            last = qualified ? last + "::" + word : word;
            qualified = false;
            k = e;
            continue;
        }
        if (src.compare(k, 2, "::") == 0) {
            qualified = !last.empty();
            k += 2;
            continue;
        }
        if (c == '(') break;
        if (c == ';' || c == '{') die(line, "__cluster_dims__ must mark a kernel's declaration");
        if (!std::isspace(static_cast<unsigned char>(c))) last.clear(), qualified = false;
        ++k;
    }
    if (k >= src.size() || last.empty()) die(line, "cannot find the kernel that __cluster_dims__ marks");
    cd.name = last;
    for (int depth = 0; k < src.size(); ++k) {  // the parameter list, then its body or ';'
        const std::size_t lit = skip_literal(src, k);
        if (lit != k) {
            k = lit - 1;
            continue;
        }
        if (depth == 0 && (src[k] == '{' || src[k] == ';')) break;
        depth += src[k] == '(' || src[k] == '[' ? 1 : src[k] == ')' || src[k] == ']' ? -1 : 0;
    }
    if (k >= src.size()) die(line, "cannot find the body of the kernel that __cluster_dims__ marks");
    cd.at = k;
    return cd;
}

std::string cluster_registration(const ClusterDims& cd) {
    const std::string named = "::emu::kernel_pointer<decltype(t)>(" + cd.name + ")";
    return " static const bool emu_cluster_dims_" + std::to_string(cd.line) +
           "_ [[maybe_unused]] = ::emu::register_cluster_dims_of([](auto t) -> decltype(" + named + ") { return " +
           named + "; }, " + cd.dims + ");";
}

// ---- headers ----------------------------------------------------------------------
// With --gen DIR, every `#include "header"` that names a file (found next to the
// including file, then in the -I folders, as the compiler looks) is rewritten too,
// into DIR: a header inside --root keeps its path below DIR (and the directive names
// it by that path, which the build finds through -I DIR), one outside gets
// DIR/abs/<its absolute path> (named by that path). So headers reached by relative
// paths (#include "../../llmc/cuda_common.h") are rewritten wherever they are.
// Headers not found this way (cuda_runtime.h, the emulator's own) are left alone.
std::string gen_dir, root_dir;
std::vector<std::string> include_dirs;

std::string real_path(const std::string& p) {
    char buf[PATH_MAX];
    return realpath(p.c_str(), buf) ? std::string(buf) : std::string();
}

bool is_file(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

struct Header {
    std::string source, copy;
};

// Rewrites the #include "..." directives of `text` (the rewritten `from`) to name
// the rewritten copies; returns the headers to rewrite.
std::vector<Header> follow_includes(std::string& text, const std::string& from) {
    std::vector<Header> headers;
    if (gen_dir.empty()) return headers;
    std::string from_dir = from.substr(0, from.find_last_of('/') + 1);
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) eol = text.size();
        std::size_t p = pos;
        while (p < eol && (text[p] == ' ' || text[p] == '\t')) ++p;
        if (p < eol && text[p] == '#') {
            ++p;
            while (p < eol && (text[p] == ' ' || text[p] == '\t')) ++p;
            std::size_t q = p + 7;
            while (q < eol && (text[q] == ' ' || text[q] == '\t')) ++q;
            std::size_t name_end = q < eol ? text.find('"', q + 1) : std::string::npos;
            if (text.compare(p, 7, "include") == 0 && q < eol && text[q] == '"' && name_end < eol) {
                std::string name = text.substr(q + 1, name_end - q - 1);
                std::string found;
                if (is_file(from_dir + name)) found = from_dir + name;
                for (std::size_t d = 0; found.empty() && d < include_dirs.size(); ++d)
                    if (is_file(include_dirs[d] + "/" + name)) found = include_dirs[d] + "/" + name;
                std::string real = found.empty() ? "" : real_path(found);
                if (!real.empty()) {
                    std::string named;
                    if (real.compare(0, root_dir.size() + 1, root_dir + "/") == 0)
                        named = real.substr(root_dir.size() + 1);
                    else named = gen_dir + "/abs" + real;
                    std::string copy = named[0] == '/' ? named : gen_dir + "/" + named;
                    headers.push_back({real, copy});
                    text.replace(q + 1, name_end - q - 1, named);
                    eol = text.find('\n', pos);
                    if (eol == std::string::npos) eol = text.size();
                }
            }
        }
        pos = eol + 1;
    }
    return headers;
}

// Rewrites each header, which follows the header's own includes. Every run
// rewrites them all (a copy whose text is unchanged keeps its time), so a header
// changed deep down an include chain is never missed; each is done once per run,
// so shared headers cost once and cycles end.
std::set<std::string> headers_done;
bool rewrite_headers(const std::vector<Header>& headers) {
    for (const Header& h : headers) {
        if (!headers_done.insert(h.source).second) continue;
        const std::string including = input_name;
        const int rc = rewrite_file(h.source, h.copy);
        input_name = including;
        if (rc != 0) return false;
    }
    return true;
}

// Writes `text` to `path` through a temporary file, so a compiler reading the
// header while another build rewrites it never sees half of it; the folders are
// made as needed. A file that already holds `text` is left as it is (its time
// too: scripts/emu-run compiles a program again only when a file is newer).
bool write_file(const std::string& path, const std::string& text) {
    {
        std::ifstream old(path, std::ios::binary);
        std::ostringstream held;
        held << old.rdbuf();
        if (old && held.str() == text) return true;
    }
    for (std::size_t s = path.find('/', 1); s != std::string::npos; s = path.find('/', s + 1))
        mkdir(path.substr(0, s).c_str(), 0777);
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    {
        std::ofstream o(tmp, std::ios::binary);
        o << text;
        if (!o) return false;
    }
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// ---- inline PTX ----------------------------------------------------------------
// asm [volatile] ("template" "more" : outputs : inputs : clobbers) becomes a
// block with a function-local static site (the template, parsed once, at its
// first execution) and a call that executes it with the operands: outputs by address
// (::emu::ptx_out<'f'>(x)), inputs and immediates by value (::emu::ptx_in<'r'>(e)).
// The replacement is on the asm's first line; the newlines it spanned follow it.

// (String and character literals are skipped with skip_literal above.)

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
    int a = 1;
    for (; a + 1 < argc && argv[a][0] == '-'; a += 2) {
        std::string opt = argv[a];
        if (opt == "--gen") gen_dir = argv[a + 1];
        else if (opt == "--root") root_dir = real_path(argv[a + 1]);
        else if (opt == "-I") include_dirs.push_back(argv[a + 1]);
        else break;
    }
    if (argc - a != 2 || (!gen_dir.empty() && root_dir.empty())) {
        std::cerr << "usage: emu_rewrite [--gen DIR --root DIR [-I DIR]...] INPUT.cu OUTPUT.cpp\n";
        return 2;
    }
    return rewrite_file(argv[a], argv[a + 1]);
}

int rewrite_file(const std::string& input, const std::string& output) {
    input_name = input;
    std::ifstream in(input, std::ios::binary);
    if (!in) {
        std::cerr << "emu_rewrite: cannot read " << input << "\n";
        return 1;
    }
    std::stringstream buf;
    buf << in.rdbuf();
    const std::string src = buf.str();
    std::string out = "#line 1 \"" + input_name + "\"\n";
    std::size_t line = 1;
    std::size_t i = 0;
    const std::size_t n = src.size();
    auto starts = [&](std::size_t at, const char* s) {
        return src.compare(at, std::char_traits<char>::length(s), s) == 0;
    };
    auto word_at = [&](std::size_t at, const char* w) {
        std::size_t len = std::char_traits<char>::length(w);
        return starts(at, w) && (at == 0 || !ident_char(src[at - 1])) && (at + len >= n || !ident_char(src[at + len]));
    };
    std::vector<ClusterDims> cluster_kernels;                 // __cluster_dims__ read, body or ';' not reached yet
    std::vector<std::pair<ClusterDims, int>> cluster_bodies;  // inside such a body: its brace depth
    while (i < n) {
        char c = src[i];
        if (!cluster_kernels.empty() && i == cluster_kernels.front().at) {
            const ClusterDims cd = cluster_kernels.front();
            cluster_kernels.erase(cluster_kernels.begin());
            if (c == '{') {
                out += "{ ::emu::declared_cluster_dims(" + cd.dims + ");";
                cluster_bodies.emplace_back(cd, 1);
            } else {
                out += ";" + cluster_registration(cd);
            }
            ++i;
            continue;
        }
        if (!cluster_bodies.empty() && (c == '{' || c == '}')) {
            int& depth = cluster_bodies.back().second;
            depth += c == '{' ? 1 : -1;
            if (depth == 0) {
                out += "}" + cluster_registration(cluster_bodies.back().first);
                cluster_bodies.pop_back();
                ++i;
                continue;
            }
        }
        if (word_at(i, "__cluster_dims__")) {
            std::size_t end = i;
            cluster_kernels.push_back(read_cluster_dims(src, i, line, end));
            const std::size_t nl = count_newlines(src.substr(i, end - i));
            out += std::string(nl, '\n');
            line += nl;
            i = end;
            continue;
        }
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
            std::size_t end = rewrite_launch(src, i, out, line);
            line += count_newlines(src.substr(i, end - i));
            i = end;
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
            if (!is_extern) drop_static_before_shared(out);
            out += std::string(count_newlines(skipped), '\n');
            out += rewrite_shared(decl, is_extern, line);
            line += count_newlines(skipped) + count_newlines(decl);
            i = semi + 1;
            continue;
        }
        out += c;
        ++i;
    }
    std::vector<Header> headers = follow_includes(out, input);
    if (!write_file(output, out)) {
        std::cerr << "emu_rewrite: cannot write " << output << "\n";
        return 1;
    }
    return rewrite_headers(headers) ? 0 : 1;
}
