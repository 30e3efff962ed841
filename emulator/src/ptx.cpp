// The PTX interpreter behind the rewritten asm statements (emu/ptx.h).
//
// A site's template is parsed once into instructions whose operands are
// register numbers, immediates and vectors of registers; run() copies the
// asm operands into a small register file on the stack (outputs too, so an
// output no instruction writes keeps its value), executes the instructions and
// copies the outputs back. Registers are 64-bit slots: %0..%N-1 are the asm
// operands, then the `.reg` locals of the template. Nothing is parsed or
// allocated per instruction at execution time, except for wgmma's queued
// products.
//
// The semantics follow the PTX ISA (fragment layouts: the comments of
// kernels/ptx.h). Warp-collective instructions exchange each lane's registers
// through emu::warp_collective, so every lane of the warp must execute them
// together, as on the GPU.
#include <array>
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cctype>
#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#include "cuda.h"
#include "cuda_runtime.h"
#include "emu/async_copies.h"
#include "emu/lowp.h"
#include "emu/ptx.h"

#if defined(EMU_TSAN)
// ThreadSanitizer's dynamic annotations (its runtime defines them).
extern "C" {
void AnnotateIgnoreReadsBegin(const char* file, int line);
void AnnotateIgnoreReadsEnd(const char* file, int line);
void AnnotateIgnoreWritesBegin(const char* file, int line);
void AnnotateIgnoreWritesEnd(const char* file, int line);
void AnnotateIgnoreSyncBegin(const char* file, int line);
void AnnotateIgnoreSyncEnd(const char* file, int line);
}
#endif

namespace emu {
namespace {

enum class Op : uint8_t {
    Nop,
    Mma,
    Ldmatrix,
    CpAsync,
    CpAsyncCommit,
    CpAsyncWaitGroup,
    CpAsyncWaitAll,
    WgmmaFence,
    WgmmaCommit,
    WgmmaWait,
    Wgmma,
    Setmaxnreg,
    MbarInit,
    MbarArrive,
    MbarTryWait,
    Setp,
    Selp,
    Mov,
    TmaLoad,
    Ld,          // ld: p[0] element bytes, p[1] vector length, p[2] state space, p[3] sign-extends, p[4] strong
    St,          // st: the same
    Atom,        // atom and red: p[0] an AtomOp, p[1] a type_code, p[2] the state space, p[3] 1 for atom (a result)
    Fence,       // fence.{sc,acq_rel}.scope, membar.level
    Alu,         // per-thread arithmetic and logic: p[0] an AluOp, p[1] a type_code, p[2] flush subnormals
    Cvt,         // cvt: p[0] a CvtKind, p[1] and p[2] the destination's and source's type, p[3] the rounding
    Shfl,        // shfl.sync: p[0] the mode
    BarSync,     // bar.sync 0 / barrier.sync 0
    Elect,       // elect.sync
    Activemask,  // activemask.b32
    Nanosleep,   // nanosleep.u32
    Bra,         // bra[.uni] label: p[0] the index of the instruction after the label
    MbarExpectTx,
    BulkCopy,  // cp.async.bulk (not tensor), completing on an mbarrier
    Stmatrix,
    ClusterArrive,  // barrier.cluster.arrive: p[0] 1 for .relaxed
    ClusterWait,    // barrier.cluster.wait
    Mapa,           // mapa: p[0] 1 for .shared::cluster (else generic addresses)
};

// The operations of Op::Alu.
enum AluOp : int {
    AAdd,
    ASub,
    AMulLo,
    AMulHi,
    AMulWide,
    AMadLo,
    AFma,
    AAnd,
    AOr,
    AXor,
    ANot,
    AShl,
    AShr,
    AMin,
    AMax,
    ANeg,
    AAbs,
    AEx2,
    ARcp,
    ASqrt,
    ARsqrt,
    ALg2,
    ATanh,
    ALop3,
    APrmt,
};

// The operations of Op::Atom.
enum AtomOp : int { XAdd, XAnd, XOr, XXor, XExch, XCas, XInc, XDec, XMin, XMax };

// Element types of the generic mma.
enum MmaType : int { MtBf16, MtF16, MtS8, MtU8, MtF32, MtS32 };

// The conversions of Op::Cvt.
enum CvtKind : int { CvtInt, CvtPack16, CvtFrom16, CvtTo16, CvtIntToF32, CvtF32ToInt };

// Address spaces of ld and st.
enum Space : int { SpaceGeneric, SpaceShared, SpaceGlobal, SpaceCluster };

// Special registers (%globaltimer, ...).
enum Special : int { SpGlobaltimer, SpLaneid, SpWarpid, SpSmid, SpClock, SpClock64, SpTidX, SpTidY, SpTidZ };

// The cluster's special registers, numbered from kClusterSpecial: %cluster_ctarank,
// %cluster_nctarank, %is_explicit_cluster, then x, y, z of %clusterid,
// %nclusterid, %cluster_ctaid and %cluster_nctaid.
constexpr int kClusterSpecial = 100;
const char* const cluster_specials[] = {
    "%cluster_ctarank", "%cluster_nctarank", "%is_explicit_cluster", "%clusterid.x",      "%clusterid.y",
    "%clusterid.z",     "%nclusterid.x",     "%nclusterid.y",        "%nclusterid.z",     "%cluster_ctaid.x",
    "%cluster_ctaid.y", "%cluster_ctaid.z",  "%cluster_nctaid.x",    "%cluster_nctaid.y", "%cluster_nctaid.z"};
int cluster_special(const std::string& name) {
    for (int i = 0; i < int(sizeof cluster_specials / sizeof cluster_specials[0]); ++i)
        if (name == cluster_specials[i]) return kClusterSpecial + i;
    return -1;
}
uint64_t cluster_special_value(int which) {
    const ClusterInfo c = cluster_info();
    const unsigned d[3] = {c.dims.x, c.dims.y, c.dims.z};
    const unsigned b[3] = {blockIdx.x, blockIdx.y, blockIdx.z}, g[3] = {gridDim.x, gridDim.y, gridDim.z};
    const int k = which - kClusterSpecial;
    if (k == 0) return c.rank;
    if (k == 1) return c.nblocks;
    if (k == 2) return c.is_explicit;
    const int axis = (k - 3) % 3;
    switch ((k - 3) / 3) {
        case 0:
            return b[axis] / d[axis];
        case 1:
            return g[axis] / d[axis];
        case 2:
            return b[axis] % d[axis];
        default:
            return d[axis];
    }
}

struct Operand {
    enum Kind : uint8_t { Reg, Imm, Vec, Mem, Sink, Spec, Tensor } kind = Imm;
    int reg = -1;           // Reg; Mem and Tensor: the base register (-1: none)
    int64_t imm = 0;        // Imm; Mem: the offset; Spec: which
    std::vector<int> regs;  // Vec and Tensor's coordinates (-1: the sink `_`)
};

struct Insn {
    Op op = Op::Nop;
    int guard = -1;  // predicate register, or -1
    bool guard_neg = false;
    int p[5] = {0, 0, 0, 0, 0};  // the form's parameters (shape, count, comparison, ...)
    std::vector<Operand> ops;
    std::string text;
};

constexpr int kMaxRegs = 320;

}  // namespace

struct PtxSite::Program {
    std::string file;
    int line = 0;
    int nargs = 0, nregs = 0;
    std::vector<char> cons;         // the constraint letter of each operand
    std::vector<uint8_t> out;       // 0 input, 1 output ("=" or "+")
    std::vector<uint8_t> deferred;  // outputs written later (wgmma's accumulators): not copied back
    std::vector<int64_t> imm;       // the operands' values at the first call (used for "n" only)
    std::vector<Insn> insns;

    [[noreturn]] void fail(const Insn* in, const std::string& what) const {
        std::string msg = file + ":" + std::to_string(line) + ": PTX";
        if (in) msg += " `" + in->text + "`";
        msg += ": " + what;
        kernel_fail(msg.c_str());
    }
};

namespace {

using Program = PtxSite::Program;

// ---- parsing ------------------------------------------------------------------

std::string trim(const std::string& s) {
    const std::size_t a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) return "";
    return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

// Splits at the commas outside {} and [].
std::vector<std::string> split_operands(const std::string& s) {
    std::vector<std::string> out;
    int depth = 0;
    std::string cur;
    for (char c : s) {
        if (c == '{' || c == '[') ++depth;
        if (c == '}' || c == ']') --depth;
        if (c == ',' && depth == 0) {
            out.push_back(trim(cur));
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!trim(cur).empty() || !out.empty()) out.push_back(trim(cur));
    return out;
}

bool parse_int(const std::string& s, int64_t& v) {
    if (s.empty()) return false;
    const char* b = s.c_str();
    char* e = nullptr;
    if (s.size() > 2 && (s[0] == '0') && (s[1] == 'f' || s[1] == 'F')) {  // 0fXXXXXXXX: a float's bits
        v = int64_t(std::strtoull(b + 2, &e, 16));
        return *e == 0 && s.size() == 10;
    }
    v = std::strtoll(b, &e, 0);
    if (*e == 'U' || *e == 'u') ++e;
    return *e == 0;
}

struct Parser {
    Program& prog;
    std::vector<std::pair<std::string, int>> locals;
    std::vector<int> predicates;  // the locals declared .pred
    const Insn* cur = nullptr;
    std::vector<std::pair<std::string, std::size_t>> labels;    // name, the index of the next instruction
    std::vector<std::pair<std::string, std::size_t>> branches;  // target, the index of the bra

    [[noreturn]] void fail(const std::string& what) { prog.fail(cur, what); }

    int local(const std::string& name) {
        for (auto& l : locals)
            if (l.first == name) return l.second;
        return -1;
    }
    void declare(const std::string& name) {
        if (prog.nregs >= kMaxRegs) fail("too many registers");
        locals.emplace_back(name, prog.nregs++);
    }

    int reg(const std::string& s) {
        if (s.size() > 1 && s[0] == '%' && std::isdigit(static_cast<unsigned char>(s[1]))) {
            int64_t n;
            if (!parse_int(s.substr(1), n) || n >= prog.nargs) fail("no operand " + s);
            return int(n);
        }
        const int r = local(s);
        if (r < 0) fail("unknown register " + s);
        return r;
    }

    Operand operand(const std::string& s) {
        Operand o;
        if (s == "_") {
            o.kind = Operand::Sink;
        } else if (s.front() == '{') {
            if (s.back() != '}') fail("cannot read the vector " + s);
            o.kind = Operand::Vec;
            for (const std::string& e : split_operands(s.substr(1, s.size() - 2)))
                o.regs.push_back(e == "_" ? -1 : reg(e));
        } else if (s.front() == '[') {
            if (s.back() != ']') fail("cannot read the address " + s);
            const std::string in = trim(s.substr(1, s.size() - 2));
            const std::vector<std::string> parts = split_operands(in);
            if (parts.size() == 2) {  // [tensor map, {coordinates}]
                o = operand(parts[1]);
                if (o.kind != Operand::Vec) fail("cannot read the tensor address " + s);
                o.kind = Operand::Tensor;
                o.reg = reg(parts[0]);
                return o;
            }
            o.kind = Operand::Mem;
            const std::size_t plus = in.find_first_of("+-", 1);
            std::string base = trim(plus == std::string::npos ? in : in.substr(0, plus));
            if (plus != std::string::npos) {
                int64_t off;
                std::string t = trim(in.substr(plus + 1));
                if (!parse_int(t, off)) fail("cannot read the address " + s);
                o.imm = in[plus] == '-' ? -off : off;
            }
            int64_t v;
            if (parse_int(base, v)) o.imm += v;
            else o.reg = reg(base);
        } else if (s[0] == '%' && s.size() > 1 && !std::isdigit(static_cast<unsigned char>(s[1]))) {
            static const std::pair<const char*, int> names[] = {{"%globaltimer", SpGlobaltimer},
                                                                {"%laneid", SpLaneid},
                                                                {"%warpid", SpWarpid},
                                                                {"%smid", SpSmid},
                                                                {"%clock", SpClock},
                                                                {"%clock64", SpClock64},
                                                                {"%tid.x", SpTidX},
                                                                {"%tid.y", SpTidY},
                                                                {"%tid.z", SpTidZ}};
            o.kind = Operand::Spec;
            o.imm = -1;
            for (auto& n : names)
                if (s == n.first) o.imm = n.second;
            if (o.imm < 0) o.imm = cluster_special(s);
            if (o.imm < 0) fail("special register " + s + " is not emulated");
        } else {
            int64_t v;
            if (parse_int(s, v)) {
                o.kind = Operand::Imm;
                o.imm = v;
            } else {
                o.kind = Operand::Reg;
                o.reg = reg(s);
                if (o.reg < prog.nargs && prog.cons[std::size_t(o.reg)] == 'n') {
                    o.kind = Operand::Imm;  // an immediate operand: its value is part of the program
                    o.imm = prog.imm[std::size_t(o.reg)];
                    o.reg = -1;
                }
            }
        }
        return o;
    }

    // `.reg .b32 a, b<2>;`
    void declaration(const std::string& st) {
        std::string rest = trim(st.substr(4));
        bool pred = false;
        while (!rest.empty() && rest[0] == '.') {  // the type (and a vector width)
            const std::size_t sp = rest.find_first_of(" \t");
            if (sp == std::string::npos) fail("cannot read the declaration " + st);
            pred |= rest.compare(0, sp, ".pred") == 0;
            rest = trim(rest.substr(sp));
        }
        const int first = prog.nregs;
        for (const std::string& d : split_operands(rest)) {
            const std::size_t lt = d.find('<');
            if (lt == std::string::npos) {
                declare(d);
                continue;
            }
            int64_t n;
            if (!parse_int(d.substr(lt + 1, d.size() - lt - 2), n) || d.back() != '>') fail("cannot read " + d);
            for (int64_t i = 0; i < n; ++i) declare(d.substr(0, lt) + std::to_string(i));
        }
        if (pred)
            for (int r = first; r < prog.nregs; ++r) predicates.push_back(r);
    }
    bool is_predicate(const Operand& o) const {
        return o.kind == Operand::Reg && std::find(predicates.begin(), predicates.end(), o.reg) != predicates.end();
    }

    // The opcode without the tokens that change nothing here: memory-order
    // semantics and the CTA scope (one block, sequentially consistent memory)
    // and L2 prefetch sizes.
    static std::string plain(const std::string& opc) {
        std::string out;
        for (const std::string& t : tokens(opc)) {
            if (t == "relaxed" || t == "acquire" || t == "release" || t == "cta" || t == "L2::64B" || t == "L2::128B" ||
                t == "L2::256B")
                continue;
            out += (out.empty() ? "" : ".") + t;
        }
        return out;
    }

    void expect(const Insn& in, std::size_t n) {
        if (in.ops.size() != n) fail("expected " + std::to_string(n) + " operands");
    }
    void expect_vec(const Operand& o, std::size_t n) {
        if (o.kind != Operand::Vec || o.regs.size() != n)
            fail("expected a vector of " + std::to_string(n) + " registers");
    }
    void expect_kind(const Operand& o, Operand::Kind k, const char* what) {
        if (o.kind != k) fail(std::string("expected ") + what);
    }

    // Decodes the opcode and checks the operands of one instruction.
    void decode(Insn& in, const std::string& full) {
        const std::string opc =
            full.compare(0, 8, "mbarrier") == 0 || full.compare(0, 9, "cp.async.") == 0 ? plain(full) : full;
        auto is = [&](const char* s) { return opc == s; };
        auto starts = [&](const char* s) { return opc.compare(0, std::strlen(s), s) == 0; };
        if (is("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32")) {  // kernels/ptx.h's: its own fast path
            in.op = Op::Mma;
            expect(in, 4);
            expect_vec(in.ops[0], 4), expect_vec(in.ops[1], 4), expect_vec(in.ops[2], 2), expect_vec(in.ops[3], 4);
        } else if (starts("mma.sync.aligned.m16n8k")) {
            decode_mma(in, opc);
        } else if (starts("mma.sync.aligned.m8n8k4.")) {
            decode_mma_m8n8k4(in, opc);
        } else if (starts("ldmatrix.")) {
            in.op = Op::Ldmatrix;
            for (int x : {1, 2, 4})
                for (int t : {0, 1}) {
                    std::string form = "ldmatrix.sync.aligned.m8n8.x" + std::to_string(x) + (t ? ".trans" : "");
                    if (opc == form + ".shared.b16" || opc == form + ".shared::cta.b16") in.p[0] = x, in.p[1] = t;
                }
            if (!in.p[0]) fail("this ldmatrix form is not emulated");
            expect(in, 2);
            expect_vec(in.ops[0], std::size_t(in.p[0]));
            expect_kind(in.ops[1], Operand::Mem, "an address");
        } else if (starts("stmatrix.")) {
            in.op = Op::Stmatrix;
            for (int x : {1, 2, 4})
                for (int t : {0, 1}) {
                    std::string form = "stmatrix.sync.aligned.m8n8.x" + std::to_string(x) + (t ? ".trans" : "");
                    if (opc == form + ".shared.b16" || opc == form + ".shared::cta.b16") in.p[0] = x, in.p[1] = t;
                }
            if (!in.p[0]) fail("this stmatrix form is not emulated");
            expect(in, 2);
            expect_kind(in.ops[0], Operand::Mem, "an address");
            expect_vec(in.ops[1], std::size_t(in.p[0]));
            for (int x : in.ops[1].regs)
                if (x < 0) fail("a vector to store cannot hold _");
        } else if (is("cp.async.ca.shared.global") || is("cp.async.cg.shared.global") ||
                   is("cp.async.ca.shared::cta.global") || is("cp.async.cg.shared::cta.global")) {
            in.op = Op::CpAsync;
            in.p[1] = opc[9] == 'g';  // .cg: 16 bytes only
            // A fourth operand: src-size (bytes read, the rest zero-filled) or
            // the ignore-src predicate (true: all zeros).
            if (in.ops.size() == 4) {
                expect_value(in.ops[3]);
                in.p[2] = is_predicate(in.ops[3]) ? 2 : 1;
            } else {
                expect(in, 3);
            }
            expect_kind(in.ops[0], Operand::Mem, "a shared address");
            expect_kind(in.ops[1], Operand::Mem, "a global address");
            expect_kind(in.ops[2], Operand::Imm, "the copy size");
            in.p[0] = int(in.ops[2].imm);
            if (in.p[0] != 4 && in.p[0] != 8 && in.p[0] != 16) fail("cp.async copies 4, 8 or 16 bytes");
            if (in.p[1] && in.p[0] != 16) fail("cp.async.cg copies 16 bytes");
        } else if (is("cp.async.commit_group")) {
            in.op = Op::CpAsyncCommit;
            expect(in, 0);
        } else if (is("cp.async.wait_group")) {
            in.op = Op::CpAsyncWaitGroup;
            expect(in, 1);
            expect_kind(in.ops[0], Operand::Imm, "an immediate group count");
        } else if (is("cp.async.wait_all")) {
            in.op = Op::CpAsyncWaitAll;
            expect(in, 0);
        } else if (is("fence.proxy.async.shared::cta") || is("fence.proxy.async") ||
                   is("fence.mbarrier_init.release.cluster")) {
            in.op = Op::Nop;  // one memory proxy, one block: nothing to order
            expect(in, 0);
        } else if (is("wgmma.fence.sync.aligned")) {
            in.op = Op::WgmmaFence;
            expect(in, 0);
        } else if (is("wgmma.commit_group.sync.aligned")) {
            in.op = Op::WgmmaCommit;
            expect(in, 0);
        } else if (is("wgmma.wait_group.sync.aligned")) {
            in.op = Op::WgmmaWait;
            expect(in, 1);
            expect_kind(in.ops[0], Operand::Imm, "an immediate group count");
        } else if (starts("wgmma.mma_async.sync.aligned.m64n")) {
            decode_wgmma(in, opc);
        } else if (is("setmaxnreg.inc.sync.aligned.u32") || is("setmaxnreg.dec.sync.aligned.u32")) {
            in.op = Op::Setmaxnreg;
            expect(in, 1);
            expect_kind(in.ops[0], Operand::Imm, "an immediate register count");
            const int64_t n = in.ops[0].imm;
            if (n < 24 || n > 256 || n % 8) fail("setmaxnreg takes 24..256 in steps of 8");
        } else if (is("mbarrier.init.shared::cta.b64") || is("mbarrier.init.shared.b64")) {
            in.op = Op::MbarInit;
            expect(in, 2);
            expect_kind(in.ops[0], Operand::Mem, "the barrier's address");
        } else if (is("mbarrier.arrive.shared::cta.b64") || is("mbarrier.arrive.shared.b64") ||
                   is("mbarrier.arrive.expect_tx.shared::cta.b64") || is("mbarrier.arrive.expect_tx.shared.b64")) {
            in.op = Op::MbarArrive;
            in.p[0] = opc.find("expect_tx") != std::string::npos;
            // arrive: state, [bar]{, count}; arrive.expect_tx: state, [bar], tx{, count}.
            in.p[1] = in.ops.size() == std::size_t(in.p[0] ? 4 : 3);
            expect(in, std::size_t((in.p[0] ? 3 : 2) + in.p[1]));
            expect_kind(in.ops[1], Operand::Mem, "the barrier's address");
            for (std::size_t i = 2; i < in.ops.size(); ++i) expect_value(in.ops[i]);
        } else if (is("mbarrier.expect_tx.shared::cta.b64") || is("mbarrier.expect_tx.shared.b64")) {
            in.op = Op::MbarExpectTx;
            expect(in, 2);
            expect_kind(in.ops[0], Operand::Mem, "the barrier's address");
            expect_value(in.ops[1]);
        } else if (is("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes")) {
            in.op = Op::BulkCopy;
            expect(in, 4);
            expect_kind(in.ops[0], Operand::Mem, "a shared address");
            expect_kind(in.ops[1], Operand::Mem, "a global address");
            expect_value(in.ops[2]);
            expect_kind(in.ops[3], Operand::Mem, "the barrier's address");
        } else if (is("mbarrier.try_wait.parity.shared::cta.b64") || is("mbarrier.try_wait.parity.shared.b64") ||
                   is("mbarrier.test_wait.parity.shared::cta.b64") || is("mbarrier.test_wait.parity.shared.b64")) {
            // test_wait does not block on a GPU; here both let the other threads run once when the phase is
            // not complete, so a loop on either makes progress.
            in.op = Op::MbarTryWait;
            expect(in, 3);
            expect_kind(in.ops[0], Operand::Reg, "a predicate");
            expect_kind(in.ops[1], Operand::Mem, "the barrier's address");
        } else if (starts("setp.")) {
            in.op = Op::Setp;
            static const char* cmps[] = {"eq", "ne", "lt", "le", "gt", "ge"};
            const std::size_t dot = opc.find('.', 5);
            const std::string cmp = opc.substr(5, dot - 5), type = dot == std::string::npos ? "" : opc.substr(dot + 1);
            in.p[0] = -1;
            for (int i = 0; i < 6; ++i)
                if (cmp == cmps[i]) in.p[0] = i;
            in.p[1] = type_code(type);
            if (in.p[0] < 0 || in.p[1] < 0) fail("this setp form is not emulated");
            expect(in, 3);
            expect_kind(in.ops[0], Operand::Reg, "a predicate");
        } else if (starts("selp.")) {
            in.op = Op::Selp;
            in.p[1] = type_code(opc.substr(5));
            if (in.p[1] < 0) fail("this selp form is not emulated");
            expect(in, 4);
            expect_kind(in.ops[0], Operand::Reg, "a destination register");
        } else if (starts("mov.")) {
            in.op = Op::Mov;
            in.p[1] = type_code(opc.substr(4));
            if (in.p[1] < 0) fail("this mov form is not emulated");
            expect(in, 2);
            // mov.b32 d, {lo, hi} packs two 16-bit halves (.b64: two 32-bit), mov.b32 {lo, hi}, s unpacks.
            if (in.ops[0].kind == Operand::Vec || in.ops[1].kind == Operand::Vec) {
                if (opc != "mov.b32" && opc != "mov.b64") fail("vector movs are .b32 or .b64");
                const Operand& v = in.ops[0].kind == Operand::Vec ? in.ops[0] : in.ops[1];
                expect_vec(v, 2);
                in.p[2] = in.ops[0].kind == Operand::Vec ? 2 : 1;  // 1 pack, 2 unpack
                if (in.p[2] == 1) expect_kind(in.ops[0], Operand::Reg, "a destination register");
                for (int x : v.regs)
                    if (x < 0 && in.p[2] == 1) fail("a vector to pack cannot hold _");
            } else {
                expect_kind(in.ops[0], Operand::Reg, "a destination register");
            }
        } else if (starts("cp.async.bulk.tensor.")) {
            for (int r = 1; r <= 5; ++r)
                if (opc == "cp.async.bulk.tensor." + std::to_string(r) +
                               "d.shared::cluster.global.tile.mbarrier::complete_tx::bytes")
                    in.p[0] = r;
            if (!in.p[0]) fail("this cp.async.bulk.tensor form is not emulated");
            in.op = Op::TmaLoad;
            expect(in, 3);
            expect_kind(in.ops[0], Operand::Mem, "a shared address");
            expect_kind(in.ops[1], Operand::Tensor, "[tensor map, {coordinates}]");
            expect_kind(in.ops[2], Operand::Mem, "the barrier's address");
            if (in.ops[1].regs.size() != std::size_t(in.p[0])) fail("the coordinates are not the rank's");
        } else if (!decode_scalar(in, opc)) {
            fail("instruction not emulated");
        }
    }

    static std::vector<std::string> tokens(const std::string& opc) {
        std::vector<std::string> t;
        std::size_t at = 0;
        for (;;) {
            const std::size_t dot = opc.find('.', at);
            t.push_back(opc.substr(at, dot == std::string::npos ? std::string::npos : dot - at));
            if (dot == std::string::npos) return t;
            at = dot + 1;
        }
    }

    // Integer type: bytes * 2 + signed (b and u are unsigned), or -1.
    static int int_type(const std::string& t) {
        if (t.size() < 2 || (t[0] != 'b' && t[0] != 'u' && t[0] != 's')) return -1;
        const std::string w = t.substr(1);
        const int bytes = w == "8" ? 1 : w == "16" ? 2 : w == "32" ? 4 : w == "64" ? 8 : 0;
        return bytes ? bytes * 2 + (t[0] == 's') : -1;
    }

    void expect_value(const Operand& o) {
        if (o.kind != Operand::Reg && o.kind != Operand::Imm && o.kind != Operand::Spec)
            fail("expected a register or an immediate");
    }

    // The plain per-thread instructions (and shfl, bar, elect, activemask).
    // Returns false for an opcode it does not know.
    bool decode_scalar(Insn& in, const std::string& opc) {
        const std::vector<std::string> t = tokens(opc);
        const std::string& name = t[0];
        if (name == "ld" || name == "st") return decode_ld_st(in, t), true;
        if (name == "atom" || name == "red") return decode_atom(in, t), true;
        if (name == "fence" || name == "membar") {
            // fence.sc.scope, fence.acq_rel.scope, membar.{cta,gl,sys}: memory is
            // sequentially consistent here, but the compiler must not move
            // accesses across it either.
            if (name == "fence" ? !(t.size() == 3 && (t[1] == "sc" || t[1] == "acq_rel") && is_scope(t[2]))
                                : !(t.size() == 2 && (t[1] == "cta" || t[1] == "gl" || t[1] == "sys")))
                fail("this " + name + " form is not emulated");
            in.op = Op::Fence;
            expect(in, 0);
            return true;
        }
        if (name == "cvt") return decode_cvt(in, t), true;
        if (opc == "shfl.sync.up.b32" || opc == "shfl.sync.down.b32" || opc == "shfl.sync.bfly.b32" ||
            opc == "shfl.sync.idx.b32") {
            in.op = Op::Shfl;
            in.p[0] = t[2] == "up" ? 0 : t[2] == "down" ? 1 : t[2] == "bfly" ? 2 : 3;
            expect(in, 5);
            if (in.ops[0].kind == Operand::Vec) expect_vec(in.ops[0], 2);
            else expect_kind(in.ops[0], Operand::Reg, "a destination register");
            for (int i = 1; i < 5; ++i) expect_value(in.ops[std::size_t(i)]);
            return true;
        }
        if (opc == "bar.sync" || opc == "barrier.sync" || opc == "bar.sync.aligned" || opc == "barrier.sync.aligned" ||
            opc == "barrier.cta.sync" || opc == "barrier.cta.sync.aligned") {
            in.op = Op::BarSync;
            if (in.ops.size() != 1 && in.ops.size() != 2) fail("expected a barrier and a thread count");
            if (in.ops[0].kind != Operand::Imm || in.ops[0].imm != 0) fail("only barrier 0 is emulated");
            if (in.ops.size() == 2) expect_value(in.ops[1]);  // must be the block's size: checked when run
            return true;
        }
        if (opc == "elect.sync") {
            in.op = Op::Elect;
            expect(in, 2);
            expect_vec(in.ops[0], 2);
            expect_value(in.ops[1]);
            return true;
        }
        if (opc == "activemask.b32") {
            in.op = Op::Activemask;
            expect(in, 1);
            expect_kind(in.ops[0], Operand::Reg, "a destination register");
            return true;
        }
        if (opc == "nanosleep.u32") {
            in.op = Op::Nanosleep;
            expect(in, 1);
            expect_value(in.ops[0]);  // the time: a hint, not kept
            return true;
        }
        if (decode_cluster(in, t)) return true;
        return decode_alu(in, t);
    }

    // barrier.cluster.arrive[.release|.relaxed][.aligned], barrier.cluster.wait[.acquire][.aligned],
    // mapa[.shared::cluster].{u32,u64} d, a, rank. False for another opcode.
    bool decode_cluster(Insn& in, const std::vector<std::string>& t) {
        if (t.size() >= 3 && t[0] == "barrier" && t[1] == "cluster" && (t[2] == "arrive" || t[2] == "wait")) {
            const bool arrive = t[2] == "arrive";
            in.op = arrive ? Op::ClusterArrive : Op::ClusterWait;
            for (std::size_t i = 3; i < t.size(); ++i) {
                if (t[i] == "aligned" || (arrive && t[i] == "release") || (!arrive && t[i] == "acquire")) continue;
                if (arrive && t[i] == "relaxed") in.p[0] = 1;
                else fail("this barrier.cluster form is not emulated (." + t[i] + ")");
            }
            expect(in, 0);
            return true;
        }
        if (t[0] != "mapa") return false;
        in.op = Op::Mapa;
        if (t.size() == 3 && t[1] == "shared::cluster" && (t[2] == "u32" || t[2] == "u64")) in.p[0] = 1;
        else if (!(t.size() == 2 && (t[1] == "u32" || t[1] == "u64"))) fail("this mapa form is not emulated");
        if (in.p[0] == 0 && t[1] == "u32") fail("mapa.u32 on a generic address is not emulated (64-bit pointers)");
        expect(in, 3);
        expect_kind(in.ops[0], Operand::Reg, "a destination register");
        expect_value(in.ops[1]);
        expect_value(in.ops[2]);
        return true;
    }

    static bool is_scope(const std::string& x) { return x == "cta" || x == "cluster" || x == "gpu" || x == "sys"; }
    // The Space a state-space token names (ld, st, atom, red), or -1.
    static int space(const std::string& x) {
        if (x == "shared" || x == "shared::cta") return SpaceShared;
        if (x == "shared::cluster") return SpaceCluster;
        if (x == "global") return SpaceGlobal;
        return -1;
    }

    // ld/st[.weak|.volatile|.relaxed.scope|.acquire.scope (ld)|.release.scope (st)]
    // [.shared|.shared::cta|.shared::cluster|.global][.nc][cache hints][.v2|.v4].type
    // p[4] 1 for the strong forms (volatile, relaxed, acquire, release): each
    // element is an atomic access, and a strong load is a poll (see ld_st).
    void decode_ld_st(Insn& in, const std::vector<std::string>& t) {
        const bool load = t[0] == "ld";
        in.op = load ? Op::Ld : Op::St;
        in.p[1] = 1;
        int type = -1;
        bool order = false, scope = false, nc = false;
        for (std::size_t i = 1; i < t.size(); ++i) {
            const std::string& x = t[i];
            if (space(x) >= 0) in.p[2] = space(x);
            else if (x == "v2" || x == "v4") in.p[1] = x[1] - '0';
            else if (x == "f32") type = 4 * 2;
            else if (x == "f64") type = 8 * 2;
            else if (int_type(x) >= 0) type = int_type(x);
            else if (x == "volatile") in.p[4] = 1;
            else if (x == "relaxed" || x == (load ? "acquire" : "release")) in.p[4] = 1, order = true;
            else if (is_scope(x)) scope = true;
            else if (load && x == "nc") nc = true;
            else if (x == "weak" || x == "ca" || x == "cg" || x == "cs" || x == "lu" || x == "cv" || x == "wb" ||
                     x == "wt" || x == "L1::no_allocate" || x == "L1::evict_last" || x == "L1::evict_first" ||
                     x == "L1::evict_normal" || x == "L1::evict_unchanged" || x == "L2::64B" || x == "L2::128B" ||
                     x == "L2::256B")
                continue;  // cache hints: one memory, no caches
            else fail("this " + t[0] + " form is not emulated (." + x + ")");
            if (i + 1 != t.size() && type >= 0) fail("the type must come last");
        }
        if (type < 0) fail("a type is needed");
        if (order != scope) fail(order ? "a memory order needs a scope" : "a scope needs a memory order");
        if (nc && in.p[4]) fail("ld.global.nc is a weak load");
        in.p[0] = type / 2;
        in.p[3] = type & 1;
        expect(in, 2);
        const Operand& v = in.ops[load ? 0 : 1];
        expect_kind(in.ops[load ? 1 : 0], Operand::Mem, "an address");
        if (in.p[1] > 1) expect_vec(v, std::size_t(in.p[1]));
        else if (load) expect_kind(v, Operand::Reg, "a destination register");
        else expect_value(v);
        if (!load && v.kind == Operand::Vec)
            for (int x : v.regs)
                if (x < 0) fail("a vector to store cannot hold _");
    }

    // atom{.sem}{.scope}{.space}.op.type d, [a], b{, c} and red{.sem}{.scope}{.space}.op.type [a], b:
    // and/or/xor .b32/.b64, exch and cas .b32/.b64 (atom only), add .u32/.s32/.u64/.f32/.f64,
    // inc/dec .u32, min/max .u32/.s32/.u64/.s64.
    void decode_atom(Insn& in, const std::vector<std::string>& t) {
        static const char* const names[] = {"add", "and", "or", "xor", "exch", "cas", "inc", "dec", "min", "max"};
        const bool atom = t[0] == "atom";
        in.op = Op::Atom;
        in.p[0] = -1;
        in.p[3] = atom;
        for (std::size_t i = 1; i + 1 < t.size(); ++i) {
            const std::string& x = t[i];
            int op = -1;
            for (int k = 0; k < int(sizeof names / sizeof names[0]); ++k)
                if (x == names[k]) op = k;
            if (op >= 0 && in.p[0] < 0) in.p[0] = op;
            else if (in.p[0] >= 0) fail("this " + t[0] + " form is not emulated (." + x + " after the operation)");
            else if (space(x) >= 0) in.p[2] = space(x);
            else if (!(x == "relaxed" || x == "release" || (atom && (x == "acquire" || x == "acq_rel")) || is_scope(x)))
                fail("this " + t[0] + " form is not emulated (." + x + ")");
        }
        const std::string& type = t.back();
        in.p[1] = type == "f64" ? 6 : type_code(type);
        const bool bits = type == "b32" || type == "b64", unsig = type == "u32" || type == "u64";
        bool ok = false;
        switch (in.p[0]) {
            case XAnd:
            case XOr:
            case XXor:
                ok = bits;
                break;
            case XExch:
            case XCas:
                ok = atom && bits;
                break;
            case XAdd:
                ok = unsig || type == "s32" || type == "f32" || type == "f64";
                break;
            case XInc:
            case XDec:
                ok = type == "u32";
                break;
            case XMin:
            case XMax:
                ok = unsig || type == "s32" || type == "s64";
                break;
            default:
                fail("an operation is needed (add, and, or, xor, exch, cas, inc, dec, min, max)");
        }
        if (!ok) fail("this " + t[0] + " form is not emulated (." + names[in.p[0]] + "." + type + ")");
        const std::size_t first = atom ? 1 : 0;  // the address
        expect(in, first + (in.p[0] == XCas ? 3 : 2));
        if (atom) expect_kind(in.ops[0], Operand::Reg, "a destination register");
        expect_kind(in.ops[first], Operand::Mem, "an address");
        for (std::size_t i = first + 1; i < in.ops.size(); ++i) expect_value(in.ops[i]);
    }

    // cvt[.rounding][.ftz][.satfinite] dtype atype: between integers, f32 and
    // the 16-bit floats (and f32 pairs to bf16x2/f16x2).
    void decode_cvt(Insn& in, const std::vector<std::string>& t) {
        in.op = Op::Cvt;
        if (t.size() < 3) fail("cvt needs two types");
        const std::string &dt = t[t.size() - 2], &st = t.back();
        std::string round;
        for (std::size_t i = 1; i + 2 < t.size(); ++i) {
            if (t[i] == "ftz") continue;  // only f32 results flush, and none here is subnormal-sensitive
            if (!round.empty()) fail("this cvt form is not emulated (." + t[i] + ")");
            round = t[i];
        }
        const int di = int_type(dt), si = int_type(st);
        auto is16 = [](const std::string& x) { return x == "bf16" || x == "f16"; };
        if (di >= 0 && si >= 0) {
            if (!round.empty()) fail("an integer cvt takes no rounding");
            in.p[0] = CvtInt;
        } else if ((dt == "bf16x2" || dt == "f16x2") && st == "f32") {
            if (round != "rn") fail("only .rn is emulated for cvt to " + dt);
            in.p[0] = CvtPack16;
        } else if (dt == "f32" && is16(st)) {
            // Exact either way; ptxas takes a rounding modifier from bf16 but refuses one from f16.
            if (st == "f16" ? !round.empty()
                            : !(round.empty() || round == "rn" || round == "rz" || round == "rm" || round == "rp"))
                fail(st == "f16" ? "cvt.f32.f16 takes no rounding modifier" : "this cvt.f32.bf16 form is not emulated");
            in.p[0] = CvtFrom16;
        } else if (is16(dt) && st == "f32") {
            if (round != "rn") fail("only .rn is emulated for cvt to " + dt);
            in.p[0] = CvtTo16;
        } else if (dt == "f32" && si >= 0) {
            if (round != "rn") fail("only .rn is emulated for cvt from an integer to f32");
            in.p[0] = CvtIntToF32;
        } else if (di >= 0 && st == "f32") {
            static const char* modes[] = {"rni", "rzi", "rmi", "rpi"};
            in.p[3] = -1;
            for (int i = 0; i < 4; ++i)
                if (round == modes[i]) in.p[3] = i;
            if (in.p[3] < 0) fail("cvt from f32 to an integer needs .rni, .rzi, .rmi or .rpi");
            in.p[0] = CvtF32ToInt;
        } else {
            fail("this cvt form is not emulated");
        }
        in.p[1] = di >= 0 ? di : (dt[0] == 'b');  // 16-bit floats: 1 bf16, 0 f16
        in.p[2] = si >= 0 ? si : (st[0] == 'b');
        expect(in, in.p[0] == CvtPack16 ? 3 : 2);
        expect_kind(in.ops[0], Operand::Reg, "a destination register");
        for (std::size_t i = 1; i < in.ops.size(); ++i) expect_value(in.ops[i]);
    }

    bool decode_alu(Insn& in, const std::vector<std::string>& t) {
        static const std::pair<const char*, int> names[] = {
            {"add", AAdd},     {"sub", ASub}, {"mul", AMulLo}, {"mad", AMadLo}, {"fma", AFma},  {"and", AAnd},
            {"or", AOr},       {"xor", AXor}, {"not", ANot},   {"shl", AShl},   {"shr", AShr},  {"min", AMin},
            {"max", AMax},     {"neg", ANeg}, {"abs", AAbs},   {"ex2", AEx2},   {"rcp", ARcp},  {"sqrt", ASqrt},
            {"rsqrt", ARsqrt}, {"lg2", ALg2}, {"tanh", ATanh}, {"lop3", ALop3}, {"prmt", APrmt}};
        int op = -1;
        for (auto& n : names)
            if (t[0] == n.first) op = n.second;
        if (op < 0 || t.size() < 2) return false;
        const std::string& type = t.back();
        const int code = type_code(type);
        const bool flt = code == 2;
        if (code < 0 || (type == "pred" && op != AAnd && op != AOr && op != AXor && op != ANot))
            fail("this type is not emulated here");
        bool lo = false, hi = false, wide = false, rn = false, approx = false;
        for (std::size_t i = 1; i + 1 < t.size(); ++i) {
            const std::string& m = t[i];
            if (m == "lo") lo = true;
            else if (m == "hi") hi = true;
            else if (m == "wide") wide = true;
            else if (m == "rn") rn = true;
            else if (m == "approx") approx = true;
            else if (m == "ftz" && flt) in.p[2] = 1;
            else fail("the modifier ." + m + " is not emulated");
        }
        const bool logic = op == AAnd || op == AOr || op == AXor || op == ANot || op == ALop3 || op == APrmt;
        const bool transcendental =
            op == AEx2 || op == ARcp || op == ASqrt || op == ARsqrt || op == ALg2 || op == ATanh;
        if (logic && (type[0] != 'b' && type != "pred")) fail("bit operations take .b32, .b64 or .pred");
        if ((op == ALop3 || op == APrmt) && type != "b32") fail("lop3 and prmt take .b32");
        if ((op == AShl) && type[0] != 'b') fail("shl takes .b32 or .b64");
        if (transcendental) {
            if (!flt) fail("only .f32 is emulated");
            const bool exact_ok = op == ARcp || op == ASqrt;
            if (!(approx && !rn) && !(exact_ok && rn && !approx)) fail("expected .approx (or .rn for rcp and sqrt)");
        } else if (approx) {
            fail(".approx is not emulated here");
        }
        if (flt && (lo || hi || wide)) fail(".lo, .hi and .wide are integer modifiers");
        if (op == AMulLo || op == AMadLo) {
            if (!flt && lo + hi + wide != 1) fail("integer mul and mad need .lo, .hi or .wide");
            if (!flt && (op == AMadLo) && !lo) fail("only mad.lo is emulated");
            if (hi) op = AMulHi;
            if (wide) {
                if (code & 4) fail(".wide takes 32-bit types");
                op = AMulWide;
            }
            if (flt && op == AMadLo) {
                if (!rn) fail("mad.f32 needs .rn");
                op = AFma;
            }
        } else if (lo || hi || wide) {
            fail(".lo, .hi and .wide belong to mul and mad");
        }
        if (op == AFma && (!flt || !rn)) fail("only fma.rn.f32 is emulated");
        if (rn && flt && !(op == AAdd || op == ASub || op == AMulLo || op == AFma || op == ARcp || op == ASqrt))
            fail(".rn is not emulated here");
        if ((op == ANeg || op == AAbs) && !(code & 1) && !flt) fail("neg and abs take signed or float types");
        in.op = Op::Alu;
        in.p[0] = op;
        in.p[1] = code;
        const bool unary = op == ANot || op == ANeg || op == AAbs || transcendental;
        const bool ternary = op == AMadLo || op == AFma || op == APrmt;
        expect(in, op == ALop3 ? 5 : unary ? 2 : ternary ? 4 : 3);
        expect_kind(in.ops[0], Operand::Reg, "a destination register");
        for (std::size_t i = 1; i < in.ops.size(); ++i) expect_value(in.ops[i]);
        if (op == ALop3) expect_kind(in.ops[4], Operand::Imm, "an immediate lookup table");
        return true;
    }

    // mma.sync.aligned.m16n8k{8,16}.row.col.{f32,f16}.{bf16,f16}.{bf16,f16}.{f32,f16} and
    // mma.sync.aligned.m16n8k32.row.col[.satfinite].s32.{s8,u8}.{s8,u8}.s32: p[0] 1,
    // p[1] K, p[2] A's type | B's << 4, p[3] D's | C's << 4 | satfinite << 8 (MmaType).
    void decode_mma(Insn& in, const std::string& opc) {
        const std::vector<std::string> t = tokens(opc);
        auto type = [](const std::string& x) {
            static const char* names[] = {"bf16", "f16", "s8", "u8", "f32", "s32"};
            for (int i = 0; i < 6; ++i)
                if (x == names[i]) return i;
            return -1;
        };
        const bool sat = t.size() == 11 && t[6] == "satfinite";
        if (t.size() != 10u + sat || t[4] != "row" || t[5] != "col") fail("this mma form is not emulated");
        const int k = t[3] == "m16n8k8" ? 8 : t[3] == "m16n8k16" ? 16 : t[3] == "m16n8k32" ? 32 : 0;
        const int d = type(t[6 + sat]), a = type(t[7 + sat]), b = type(t[8 + sat]), c = type(t[9 + sat]);
        const bool ints = a == MtS8 || a == MtU8;
        bool ok;
        if (ints) {
            ok = k == 32 && (b == MtS8 || b == MtU8) && d == MtS32 && c == MtS32;
        } else {
            const bool f16 = a == MtF16;
            ok = !sat && (k == 8 || k == 16) && (a == MtBf16 || a == MtF16) && b == a &&
                 (d == MtF32 || (f16 && d == MtF16)) && (c == MtF32 || (f16 && c == MtF16));
        }
        if (!ok) fail("this mma shape or type is not emulated");
        in.op = Op::Mma;
        in.p[0] = 1;
        in.p[1] = k;
        in.p[2] = a | b << 4;
        in.p[3] = d | c << 4 | sat << 8;
        const std::size_t per = ints ? 4 : 2;  // elements in a 32-bit register
        expect(in, 4);
        expect_vec(in.ops[0], d == MtF16 ? 2 : 4);
        expect_vec(in.ops[1], std::size_t(k) / (2 * per));
        expect_vec(in.ops[2], std::size_t(k) / (4 * per));
        expect_vec(in.ops[3], c == MtF16 ? 2 : 4);
        for (int i = 1; i < 4; ++i)
            for (int x : in.ops[std::size_t(i)].regs)
                if (x < 0) fail("mma's A, B and C cannot hold _");
    }

    // mma.sync.aligned.m8n8k4.{row,col}.{row,col}.{f32,f16}.f16.f16.{f32,f16}: p[0] 2,
    // p[1] A column-major, p[2] B row-major, p[3] D's type | C's << 4 (MmaType).
    void decode_mma_m8n8k4(Insn& in, const std::string& opc) {
        const std::vector<std::string> t = tokens(opc);
        auto layout = [](const std::string& x) { return x == "row" ? 0 : x == "col" ? 1 : -1; };
        auto acc = [](const std::string& x) { return x == "f32" ? int(MtF32) : x == "f16" ? int(MtF16) : -1; };
        if (t.size() != 10 || layout(t[4]) < 0 || layout(t[5]) < 0 || acc(t[6]) < 0 || t[7] != "f16" || t[8] != "f16" ||
            acc(t[9]) < 0)
            fail("this mma shape or type is not emulated");
        in.op = Op::Mma;
        in.p[0] = 2;
        in.p[1] = layout(t[4]);
        in.p[2] = !layout(t[5]);
        in.p[3] = acc(t[6]) | acc(t[9]) << 4;
        expect(in, 4);
        expect_vec(in.ops[0], (in.p[3] & 15) == MtF16 ? 4 : 8);  // four f16x2 registers, or eight f32
        expect_vec(in.ops[1], 2);
        expect_vec(in.ops[2], 2);
        expect_vec(in.ops[3], (in.p[3] >> 4) == MtF16 ? 4 : 8);
        for (int i = 1; i < 4; ++i)
            for (int x : in.ops[std::size_t(i)].regs)
                if (x < 0) fail("mma's A, B and C cannot hold _");
    }

    // Types of the scalar instructions: 32-bit (0 unsigned, 1 signed, 2 float) or 64-bit (+4).
    static int type_code(const std::string& t) {
        if (t == "b32" || t == "u32" || t == "pred") return 0;
        if (t == "s32") return 1;
        if (t == "f32") return 2;
        if (t == "b64" || t == "u64") return 4;
        if (t == "s64") return 5;
        return -1;
    }

    // wgmma.mma_async.sync.aligned.m64nNk16.{f32.bf16.bf16, f32.f16.f16, f16.f16.f16} d, a, b-desc, scale-d,
    // imm-scale-a, imm-scale-b[, imm-trans-a], imm-trans-b (imm-trans-a only with A from shared memory).
    // p[0] N, p[1] A from shared memory, p[2] f16 inputs (else bf16), p[3] f16 accumulators (else f32).
    void decode_wgmma(Insn& in, const std::string& opc) {
        static const std::string head = "wgmma.mma_async.sync.aligned.m64n";
        std::size_t at = head.size(), digits = 0;
        int n = 0;
        while (at + digits < opc.size() && std::isdigit(static_cast<unsigned char>(opc[at + digits])) && digits < 3)
            n = 10 * n + (opc[at + digits] - '0'), ++digits;
        const std::string types = digits ? opc.substr(at + digits) : std::string();
        const bool f32_bf16 = types == "k16.f32.bf16.bf16", f32_f16 = types == "k16.f32.f16.f16",
                   f16_f16 = types == "k16.f16.f16.f16";
        if (n < 8 || n > 256 || n % 8 || !(f32_bf16 || f32_f16 || f16_f16))
            fail(
                "this wgmma shape or type is not emulated (m64nNk16 with N = 8..256 in steps of 8, and "
                ".f32.bf16.bf16, .f32.f16.f16 or .f16.f16.f16)");
        in.op = Op::Wgmma;
        in.p[0] = n;
        in.p[2] = !f32_bf16;
        in.p[3] = f16_f16;
        if (in.ops.size() < 2) fail("expected wgmma's operands");
        const bool a_shared = in.ops[1].kind != Operand::Vec;
        in.p[1] = a_shared;
        expect(in, a_shared ? 8 : 7);
        expect_vec(in.ops[0], std::size_t(f16_f16 ? n / 4 : n / 2));
        if (!a_shared) expect_vec(in.ops[1], 4);
        else expect_kind(in.ops[1], Operand::Reg, "A's descriptor");
        expect_kind(in.ops[2], Operand::Reg, "B's descriptor");
        for (std::size_t i = 4; i < in.ops.size(); ++i) expect_kind(in.ops[i], Operand::Imm, "an immediate");
        for (std::size_t i = 4; i < 6; ++i)
            if (in.ops[i].imm != 1 && in.ops[i].imm != -1) fail("imm-scale-a and imm-scale-b must be 1 or -1");
        for (std::size_t i = 6; i < in.ops.size(); ++i)
            if (in.ops[i].imm != 0 && in.ops[i].imm != 1) fail("imm-trans-a and imm-trans-b must be 0 or 1");
        const char want = f16_f16 ? 'r' : 'f';
        for (int r : in.ops[0].regs)
            if (r < 0 || r >= prog.nargs || !prog.out[std::size_t(r)] || prog.cons[std::size_t(r)] != want)
                fail(f16_f16 ? "the accumulators must be \"+r\" operands (two f16 each)"
                             : "the accumulators must be \"+f\" operands");
        for (int r : in.ops[0].regs) prog.deferred[std::size_t(r)] = 1;
    }

    void statement(const std::string& raw) {
        const std::string st = trim(raw);
        if (st.empty()) return;
        if (st.compare(0, 4, ".reg") == 0) return declaration(st);
        Insn in;
        in.text = st;
        prog.insns.push_back(in);
        Insn& ins = prog.insns.back();
        cur = &ins;
        std::string rest = st;
        if (rest[0] == '@') {
            const std::size_t sp = rest.find_first_of(" \t");
            if (sp == std::string::npos) fail("a guard without an instruction");
            std::string g = rest.substr(1, sp - 1);
            if (!g.empty() && g[0] == '!') ins.guard_neg = true, g = g.substr(1);
            ins.guard = reg(g);
            rest = trim(rest.substr(sp));
        }
        if (rest[0] == '.') fail("directive not emulated");
        const std::size_t sp = rest.find_first_of(" \t");
        const std::string opc = rest.substr(0, sp);
        if (opc == "bra" || opc == "bra.uni") {  // its operand is a label, resolved at the end
            ins.op = Op::Bra;
            const std::string target = sp == std::string::npos ? "" : trim(rest.substr(sp));
            if (!is_label(target)) fail("bra needs a label");
            branches.emplace_back(target, prog.insns.size() - 1);
            cur = nullptr;
            return;
        }
        if (sp != std::string::npos)
            for (const std::string& o : split_operands(rest.substr(sp))) {
                if (o.empty()) fail("an empty operand");
                const std::size_t bar = o.find('|');
                if (bar != std::string::npos && o[0] != '[' && o[0] != '{') {  // d|p: a value and a predicate
                    Operand v;
                    v.kind = Operand::Vec;
                    for (const std::string& e : {trim(o.substr(0, bar)), trim(o.substr(bar + 1))})
                        v.regs.push_back(e == "_" ? -1 : reg(e));
                    ins.ops.push_back(v);
                    continue;
                }
                ins.ops.push_back(operand(o));
            }
        decode(ins, opc);
        cur = nullptr;
    }

    static bool is_label(const std::string& s) {
        if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
        for (char c : s)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$')) return false;
        return true;
    }

    // `NAME:` before an instruction (or before the end): branches to it go to
    // the instruction that follows. Names are unique in the template: the
    // scopes of {} do not shadow labels here.
    void label(const std::string& name) {
        for (auto& l : labels)
            if (l.first == name) fail("label " + name + " defined twice");
        labels.emplace_back(name, prog.insns.size());
    }
    void resolve_branches() {
        for (auto& b : branches) {
            Insn& in = prog.insns[b.second];
            cur = &in;
            in.p[0] = -1;
            for (auto& l : labels)
                if (l.first == b.first) in.p[0] = int(l.second);
            if (in.p[0] < 0) fail("no label " + b.first);
        }
        cur = nullptr;
    }

    // The template after the compiler's escapes: `%%` is a literal %, `%N` an operand.
    void parse(const char* text) {
        std::string t;
        for (const char* c = text; *c; ++c) {
            if (c[0] == '%' && c[1] == '%') ++c;
            t += *c;
        }
        std::string st;
        int depth = 0;  // of {} inside an instruction (vectors)
        for (std::size_t i = 0; i < t.size(); ++i) {
            const char c = t[i];
            if (c == '/' && i + 1 < t.size() && t[i + 1] == '/') {
                while (i < t.size() && t[i] != '\n') ++i;
                continue;
            }
            if (c == '/' && i + 1 < t.size() && t[i + 1] == '*') {
                const std::size_t e = t.find("*/", i + 2);
                i = e == std::string::npos ? t.size() : e + 1;
                continue;
            }
            if ((c == '{' || c == '}') && depth == 0 && trim(st).empty()) {
                st.clear();  // a scope: its .reg names stay declared (the emulator does not shadow)
                continue;
            }
            if (c == '{') ++depth;
            if (c == '}') --depth;
            if (c == ';' && depth == 0) {
                statement(st);
                st.clear();
                continue;
            }
            if (c == ':' && depth == 0 && (i + 1 >= t.size() || t[i + 1] != ':') && is_label(trim(st))) {
                label(trim(st));
                st.clear();
                continue;
            }
            st += c;
        }
        if (!trim(st).empty()) statement(st);
        resolve_branches();
    }
};

// ---- helpers of the semantics --------------------------------------------------

inline float f32(uint64_t r) {
    float f;
    const uint32_t b = uint32_t(r);
    std::memcpy(&f, &b, 4);
    return f;
}
inline uint64_t bits(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
}
inline float bf16(uint32_t h) { return f32(uint64_t(h & 0xffffu) << 16); }
inline float bf16_low(uint32_t r) { return bf16(r); }
inline float bf16_high(uint32_t r) { return bf16(r >> 16); }

// Gathers one 64-bit value from every lane of the (full) warp.
inline void gather(uint64_t mine, uint64_t all[32]) { warp_collective(0xffffffffu, mine, all); }

// The interpreter of one run. The instructions kernels/ptx.h uses in its
// inner loops (mma, ldmatrix, cp.async) inline into step() and step() into
// run(); the others stay out of line ([[gnu::noinline]]) so that adding
// them costs those loops nothing.
struct Exec {
    const Program& prog;
    uint64_t* r;
    const PtxArg* args;
    const Insn* in = nullptr;

    [[noreturn]] void fail(const std::string& what) const { prog.fail(in, what); }

    uint64_t val(const Operand& o) const {
        switch (o.kind) {
            case Operand::Reg:
                return r[o.reg];
            case Operand::Imm:
                return uint64_t(o.imm);
            case Operand::Spec:
                return special(int(o.imm));
            default:
                fail("expected a register or an immediate");
        }
    }
    uint64_t address(const Operand& o) const { return (o.reg >= 0 ? r[o.reg] : 0) + uint64_t(o.imm); }
    void* shared(const Operand& o, std::size_t bytes) const {
        return shared_window_pointer(uint32_t(address(o)), bytes);
    }

    static uint64_t special(int which) {
        if (which >= kClusterSpecial) return cluster_special_value(which);
        const ThreadCoords& c = *tls_coords;  // lane
        switch (which) {
            case SpGlobaltimer:
            case SpClock64:
            case SpClock:
                return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now().time_since_epoch())
                                    .count());
            case SpLaneid:
                return c.lane;
            case SpWarpid:
                return (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) / 32;
            case SpSmid:
                return 0;
            case SpTidX:
                return threadIdx.x;
            case SpTidY:
                return threadIdx.y;
            default:
                return threadIdx.z;
        }
    }

    // mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32. Lane (g, t) computes
    // D[g][2t, 2t+1] and D[g+8][2t, 2t+1]: rows g and g+8 of A, held by lanes
    // 4g..4g+3, and columns 2t and 2t+1 of B, held by lanes 4(2t)..4(2t)+3 and
    // 4(2t+1)..4(2t+1)+3 (the layouts of kernels/ptx.h).
    void mma() {
        const Operand &D = in->ops[0], &A = in->ops[1], &B = in->ops[2], &C = in->ops[3];
        uint64_t a01[32], a23[32], b01[32];
        gather(uint32_t(r[A.regs[0]]) | (r[A.regs[1]] << 32), a01);
        gather(uint32_t(r[A.regs[2]]) | (r[A.regs[3]] << 32), a23);
        gather(uint32_t(r[B.regs[0]]) | (r[B.regs[1]] << 32), b01);
        const unsigned lane = lane_id(), g = lane / 4, t = lane % 4;
        float a[2][16], b[2][16];  // rows g, g+8 of A; columns 2t, 2t+1 of B
        for (unsigned u = 0; u < 4; ++u) {
            const uint64_t x01 = a01[4 * g + u], x23 = a23[4 * g + u];
            const uint32_t q[4] = {uint32_t(x01), uint32_t(x01 >> 32), uint32_t(x23), uint32_t(x23 >> 32)};
            for (unsigned k = 0; k < 4; ++k) {
                const unsigned row = k & 1, col = 2 * u + 8 * (k >> 1);
                a[row][col] = bf16_low(q[k]);
                a[row][col + 1] = bf16_high(q[k]);
            }
            for (unsigned c = 0; c < 2; ++c) {
                const uint64_t y = b01[4 * (2 * t + c) + u];
                b[c][2 * u] = bf16_low(uint32_t(y)), b[c][2 * u + 1] = bf16_high(uint32_t(y));
                b[c][2 * u + 8] = bf16_low(uint32_t(y >> 32)), b[c][2 * u + 9] = bf16_high(uint32_t(y >> 32));
            }
        }
        float d[4];
        for (unsigned i = 0; i < 4; ++i) {
            float acc = f32(r[C.regs[i]]);
            // A bf16 product is exact in fp32, so this rounds once per step, as fmaf would.
            for (unsigned k = 0; k < 16; ++k) acc += a[i / 2][k] * b[i % 2][k];
            d[i] = acc;
        }
        for (unsigned i = 0; i < 4; ++i)
            if (D.regs[i] >= 0) r[D.regs[i]] = bits(d[i]);
    }

    // Registers i and i+1 of a vector operand in one 64-bit value (the high half 0
    // past its end), the unit the warp gathers exchange.
    uint64_t pair(const Operand& o, std::size_t i) const {
        return uint32_t(r[o.regs[i]]) | (i + 1 < o.regs.size() ? r[o.regs[i + 1]] << 32 : 0);
    }

    // mma.m8n8k4 (PTX ISA, "Matrix Fragments for mma.m8n8k4 with .f16 floating
    // point type"): the warp computes four independent 8x8x4 products, one per
    // quad-pair q, lanes 4q..4q+3 and 4q+16..4q+19. Within a quad-pair, thread
    // u = lane % 4 + 4 (lane >= 16) holds, for its four A elements i (two f16x2
    // registers): with .row, row u, column i; with .col, row i + 4 (u / 4),
    // column u % 4. B's four: with .col, row i, column u; with .row, row u % 4,
    // column i + 4 (u / 4). f16 C and D: row u, columns 2j and 2j+1 in register
    // j. f32 C and D element i: row u % 2 + (i & 2) + 4 (u / 4), column (i & 4)
    // + (u & 2) + (i & 1). C is gathered from the quad-pair too, because its
    // layout is not D's when their types differ.
    [[gnu::noinline]] void mma_m8n8k4() {
        const bool a_col = in->p[1], b_row = in->p[2];
        const int dt = in->p[3] & 15, ct = in->p[3] >> 4;
        const Operand &D = in->ops[0], &A = in->ops[1], &B = in->ops[2], &C = in->ops[3];
        uint64_t a[32], b[32], c[4][32];
        gather(pair(A, 0), a);
        gather(pair(B, 0), b);
        for (std::size_t j = 0; 2 * j < C.regs.size(); ++j) gather(pair(C, 2 * j), c[j]);
        auto half = [](uint64_t x, unsigned i) { return half_to_float(uint16_t(x >> (16 * i))); };
        const unsigned lane = lane_id(), q = (lane / 4) % 4;
        float am[8][4], bm[4][8], cm[8][8];
        for (unsigned u = 0; u < 8; ++u) {
            const unsigned l = 4 * q + u % 4 + 16 * (u / 4);
            for (unsigned i = 0; i < 4; ++i) {
                (a_col ? am[i + 4 * (u / 4)][u % 4] : am[u][i]) = half(a[l], i);
                (b_row ? bm[u % 4][i + 4 * (u / 4)] : bm[i][u]) = half(b[l], i);
            }
            for (unsigned i = 0; i < C.regs.size(); ++i) {
                const uint64_t x = c[i / 2][l] >> (32 * (i % 2));  // the 32-bit register i
                if (ct == MtF16) {
                    cm[u][2 * i] = half(x, 0), cm[u][2 * i + 1] = half(x, 1);
                } else {
                    cm[u % 2 + (i & 2) + 4 * (u / 4)][(i & 4) + (u & 2) + (i & 1)] = f32(uint32_t(x));
                }
            }
        }
        const unsigned u = lane % 4 + 4 * (lane / 16);
        auto dot = [&](unsigned row, unsigned col) {
            float acc = cm[row][col];
            // f16 products are exact in fp32: one rounding per step, as fmaf.
            for (unsigned k = 0; k < 4; ++k) acc += am[row][k] * bm[k][col];
            return acc;
        };
        if (dt == MtF16) {
            for (unsigned j = 0; j < 4; ++j)
                if (D.regs[j] >= 0)
                    r[D.regs[j]] =
                        uint32_t(float_to_half_rn(dot(u, 2 * j))) | uint32_t(float_to_half_rn(dot(u, 2 * j + 1))) << 16;
        } else {
            for (unsigned i = 0; i < 8; ++i)
                if (D.regs[i] >= 0)
                    r[D.regs[i]] = bits(dot(u % 2 + (i & 2) + 4 * (u / 4), (i & 4) + (u & 2) + (i & 1)));
        }
    }

    // The other mma.sync forms (PTX ISA, "Matrix Fragments for mma.m16n8k8",
    // "mma.m16n8k16", "mma.m16n8k32"): with g = lane / 4, t = lane % 4 and e
    // elements per 32-bit register (2 of 16 bits, 4 of 8), register j of A holds
    // row g + 8 (j % 2), columns e t + K/2 (j / 2) onwards; register j of B holds
    // column g, rows e t + K/2 j onwards; f32 and s32 C and D register i is
    // (g + 8 (i / 2), 2t + i % 2), f16 register j the pair (g + 8 j, 2t..2t+1).
    // The whole A and B are gathered from the warp, then each lane computes its
    // four elements of D.
    [[gnu::noinline]] void mma_generic() {
        const int K = in->p[1], at = in->p[2] & 15, bt = in->p[2] >> 4, dt = in->p[3] & 15, ct = (in->p[3] >> 4) & 15;
        const bool sat = in->p[3] >> 8;
        const Operand &D = in->ops[0], &A = in->ops[1], &B = in->ops[2], &C = in->ops[3];
        const unsigned per = at >= MtS8 ? 4 : 2, bits_each = 32 / per;
        uint64_t a01[32], a23[32], b01[32];
        gather(pair(A, 0), a01);
        if (A.regs.size() > 2) gather(pair(A, 2), a23);
        gather(pair(B, 0), b01);
        auto elem = [&](uint32_t reg, unsigned e, int type) -> float {
            const uint32_t x = (reg >> (bits_each * e)) & ((1u << bits_each) - 1);
            switch (type) {
                case MtBf16:
                    return bf16(x);
                case MtF16:
                    return half_to_float(uint16_t(x));
                case MtS8:
                    return float(int8_t(uint8_t(x)));
                default:
                    return float(x);
            }
        };
        float a[16][32], b[32][8];
        for (unsigned l = 0; l < 32; ++l) {
            const unsigned g = l / 4, t = l % 4;
            for (unsigned j = 0; j < A.regs.size(); ++j) {
                const uint32_t reg = uint32_t((j < 2 ? a01[l] : a23[l]) >> (32 * (j % 2)));
                for (unsigned e = 0; e < per; ++e)
                    a[g + 8 * (j % 2)][per * t + e + unsigned(K) / 2 * (j / 2)] = elem(reg, e, at);
            }
            for (unsigned j = 0; j < B.regs.size(); ++j) {
                const uint32_t reg = uint32_t(b01[l] >> (32 * j));
                for (unsigned e = 0; e < per; ++e) b[per * t + e + unsigned(K) / 2 * j][g] = elem(reg, e, bt);
            }
        }
        const unsigned lane = lane_id(), g = lane / 4, t = lane % 4;
        uint64_t out[4];
        for (unsigned i = 0; i < 4; ++i) {
            const unsigned row = g + 8 * (i / 2), col = 2 * t + i % 2;
            if (at >= MtS8) {  // integers: exact, then wrapped or (satfinite) clamped to s32
                int64_t acc = int32_t(r[C.regs[i]]);
                for (int k = 0; k < K; ++k) acc += int64_t(a[row][k]) * int64_t(b[k][col]);
                if (sat) acc = std::min<int64_t>(std::max<int64_t>(acc, INT32_MIN), INT32_MAX);
                out[i] = uint32_t(acc);
                continue;
            }
            const uint32_t creg = uint32_t(r[C.regs[ct == MtF16 ? i / 2 : i]]);
            float acc = ct == MtF16 ? half_to_float(uint16_t(creg >> (16 * (i % 2)))) : f32(creg);
            // 16-bit float products are exact in fp32: one rounding per step, as fmaf.
            for (int k = 0; k < K; ++k) acc += a[row][k] * b[k][col];
            out[i] = dt == MtF16 ? float_to_half_rn(acc) : bits(acc);
        }
        if (dt == MtF16) {
            for (unsigned j = 0; j < 2; ++j)
                if (D.regs[j] >= 0) r[D.regs[j]] = out[2 * j] | (out[2 * j + 1] << 16);
        } else {
            for (unsigned i = 0; i < 4; ++i)
                if (D.regs[i] >= 0) r[D.regs[i]] = out[i];
        }
    }

    // ldmatrix: lanes 8j..8j+7 give the row addresses of matrix j.
    void ldmatrix() {
        const int n = in->p[0];
        const bool trans = in->p[1];
        const uint32_t mine = uint32_t(address(in->ops[1]));
        uint64_t rows[32];
        gather(reinterpret_cast<uintptr_t>(shared_window_pointer(mine, 16)), rows);
        if (mine % 16) fail("ldmatrix: a row address is not 16-byte aligned");
        const unsigned lane = lane_id();
        for (int j = 0; j < n; ++j) {
            unsigned short lo, hi;
            if (!trans) {
                const unsigned short* p = reinterpret_cast<const unsigned short*>(rows[8 * j + lane / 4]);
                lo = p[2 * (lane % 4)];
                hi = p[2 * (lane % 4) + 1];
            } else {
                const unsigned short* p0 = reinterpret_cast<const unsigned short*>(rows[8 * j + 2 * (lane % 4)]);
                const unsigned short* p1 = reinterpret_cast<const unsigned short*>(rows[8 * j + 2 * (lane % 4) + 1]);
                lo = p0[lane / 4];
                hi = p1[lane / 4];
            }
            const int d = in->ops[0].regs[std::size_t(j)];
            if (d >= 0) r[d] = uint32_t(lo) | (uint32_t(hi) << 16);
        }
    }

    // stmatrix, ldmatrix's mirror: lanes 8j..8j+7 give the row addresses of
    // matrix j, and each lane stores its own register j where ldmatrix would
    // have read it from.
    [[gnu::noinline]] void stmatrix() {
        const int n = in->p[0];
        const bool trans = in->p[1];
        const uint32_t mine = uint32_t(address(in->ops[0]));
        uint64_t rows[32];
        gather(reinterpret_cast<uintptr_t>(shared_window_pointer(mine, 16)), rows);
        if (mine % 16) fail("stmatrix: a row address is not 16-byte aligned");
        const unsigned lane = lane_id();
        for (int j = 0; j < n; ++j) {
            const uint32_t v = uint32_t(r[in->ops[1].regs[std::size_t(j)]]);
            const unsigned short lo = uint16_t(v), hi = uint16_t(v >> 16);
            if (!trans) {
                unsigned short* p = reinterpret_cast<unsigned short*>(rows[8 * j + lane / 4]);
                p[2 * (lane % 4)] = lo;
                p[2 * (lane % 4) + 1] = hi;
            } else {
                reinterpret_cast<unsigned short*>(rows[8 * j + 2 * (lane % 4)])[lane / 4] = lo;
                reinterpret_cast<unsigned short*>(rows[8 * j + 2 * (lane % 4) + 1])[lane / 4] = hi;
            }
        }
    }

    void cp_async() {
        const unsigned bytes = unsigned(in->p[0]);
        void* dst = shared(in->ops[0], bytes);
        const void* src = reinterpret_cast<const void*>(address(in->ops[1]));
        if (reinterpret_cast<uintptr_t>(dst) % bytes || reinterpret_cast<uintptr_t>(src) % bytes)
            fail("cp.async address not aligned to the copy size");
        AsyncCopyState& st = async_copy_state();
        if (!in->p[2]) return st.pending.push_back(AsyncCopy{dst, src, bytes, st.committed});
        // src-size bytes from the source (none when ignore-src is true), zeros after them.
        const uint64_t v = val(in->ops[3]);
        const unsigned from_src = in->p[2] == 2 ? (v ? 0u : bytes) : unsigned(v);
        if (from_src > bytes) fail("cp.async: src-size larger than the copy size");
        if (from_src) st.pending.push_back(AsyncCopy{dst, src, from_src, st.committed});
        if (from_src < bytes)
            st.pending.push_back(
                AsyncCopy{static_cast<char*>(dst) + from_src, async_zeros, bytes - from_src, st.committed});
    }

    // cp.async.bulk: the issuing thread copies at once with its own loads and
    // stores (as the tensor form), then counts the bytes on the barrier.
    [[gnu::noinline]] void bulk_copy() {
        const unsigned bytes = unsigned(val(in->ops[2]));
        unsigned char* dst = static_cast<unsigned char*>(shared(in->ops[0], bytes));
        const unsigned char* src = reinterpret_cast<const unsigned char*>(address(in->ops[1]));
        void* bar = shared(in->ops[3], 8);
        touch(bar);
        if (bytes % 16 || reinterpret_cast<uintptr_t>(dst) % 16 || reinterpret_cast<uintptr_t>(src) % 16)
            fail("cp.async.bulk: the size and both addresses must be multiples of 16");
        for (unsigned b = 0; b < bytes; ++b) dst[b] = src[b];
        mbarrier_complete_tx(bar, bytes);
    }

    // Completes the copies of every committed group but the newest `keep`.
    static void cp_async_wait(unsigned keep, bool all) {
        AsyncCopyState& st = async_copy_state();
        std::size_t out = 0;
        for (std::size_t i = 0; i < st.pending.size(); ++i) {
            const AsyncCopy& c = st.pending[i];
            if (all || (c.group < st.committed && st.committed - c.group > keep)) {
                // Byte by byte through this thread's loads and stores, so the checkers see them.
                const unsigned char* s = static_cast<const unsigned char*>(c.src);
                unsigned char* d = static_cast<unsigned char*>(c.dst);
                for (unsigned b = 0; b < c.bytes; ++b) d[b] = s[b];
            } else {
                st.pending[out++] = c;
            }
        }
        st.pending.resize(out);
    }

    void wgmma();

    // The barrier word itself is written at init and read by every use, so that
    // the race checker sees a use not ordered after the init (a missing __syncthreads).
    static void touch(const void* bar) { (void)*static_cast<const volatile uint64_t*>(bar); }

    void tma_load();

    void step() {
        switch (in->op) {
            case Op::Nop:
            case Op::Setmaxnreg:  // register counts are the compiler's business
                return;
            case Op::Mma:
                return in->p[0] == 2 ? mma_m8n8k4() : in->p[0] ? mma_generic() : mma();
            case Op::Ldmatrix:
                return ldmatrix();
            case Op::CpAsync:
                return cp_async();
            case Op::CpAsyncCommit:
                ++async_copy_state().committed;
                return;
            case Op::CpAsyncWaitGroup:
                return cp_async_wait(unsigned(in->ops[0].imm), false);
            case Op::CpAsyncWaitAll:
                return cp_async_wait(0, true);
            case Op::WgmmaFence:
                wgmma_state().fenced = true;
                return;
            case Op::WgmmaCommit:
                ++wgmma_state().committed;
                return;
            case Op::WgmmaWait:
                return wgmma_retire(unsigned(in->ops[0].imm));
            case Op::Wgmma:
                return wgmma();
            case Op::MbarInit: {
                uint64_t* bar = static_cast<uint64_t*>(shared(in->ops[0], 8));
                const unsigned count = unsigned(val(in->ops[1]));
                *bar = count;
                mbarrier_init(bar, count);
                return;
            }
            case Op::MbarArrive: {
                void* bar = shared(in->ops[1], 8);
                touch(bar);
                mbarrier_arrive(bar, in->p[0] ? unsigned(val(in->ops[2])) : 0u,
                                in->p[1] ? unsigned(val(in->ops.back())) : 1u);
                if (in->ops[0].kind == Operand::Reg) r[in->ops[0].reg] = 0;  // the state token: opaque
                return;
            }
            case Op::MbarTryWait: {
                void* bar = shared(in->ops[1], 8);
                touch(bar);
                r[in->ops[0].reg] = mbarrier_try_wait(bar, unsigned(val(in->ops[2])) & 1u);
                return;
            }
            case Op::Setp: {
                const int t = in->p[1];
                const uint64_t a = val(in->ops[1]), b = val(in->ops[2]);
                bool lt, eq;
                if (t == 2) {
                    lt = f32(a) < f32(b), eq = f32(a) == f32(b);
                } else if (t & 4) {
                    lt = (t & 1) ? int64_t(a) < int64_t(b) : a < b, eq = a == b;
                } else {
                    lt = (t & 1) ? int32_t(a) < int32_t(b) : uint32_t(a) < uint32_t(b), eq = uint32_t(a) == uint32_t(b);
                }
                static const bool table[6][3] = {{false, true, false}, {true, false, true},
                                                 {true, false, false}, {true, true, false},
                                                 {false, false, true}, {false, true, true}};  // [cmp][lt, eq, gt]
                const int k = lt ? 0 : eq ? 1 : 2;
                r[in->ops[0].reg] = table[in->p[0]][k];
                return;
            }
            case Op::Selp:
                r[in->ops[0].reg] = mask(val(in->ops[3]) ? val(in->ops[1]) : val(in->ops[2]), in->p[1]);
                return;
            case Op::Mov: {
                const unsigned half = (in->p[1] & 4) ? 32 : 16;
                const uint64_t low = (uint64_t(1) << half) - 1;
                if (in->p[2] == 1) {
                    const Operand& v = in->ops[1];
                    r[in->ops[0].reg] = (r[v.regs[0]] & low) | ((r[v.regs[1]] & low) << half);
                } else if (in->p[2] == 2) {
                    const uint64_t x = val(in->ops[1]);
                    const Operand& v = in->ops[0];
                    if (v.regs[0] >= 0) r[v.regs[0]] = x & low;
                    if (v.regs[1] >= 0) r[v.regs[1]] = (x >> half) & low;
                } else {
                    r[in->ops[0].reg] = mask(val(in->ops[1]), in->p[1]);
                }
                return;
            }
            case Op::TmaLoad:
                return tma_load();
            case Op::Ld:
            case Op::St:
                return ld_st();
            case Op::Atom:
                return atom();
            case Op::Fence:
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
                return;
            case Op::Alu:
                return alu();
            case Op::Cvt:
                return cvt();
            case Op::Shfl:
                return shfl();
            case Op::BarSync:
                if (in->ops.size() == 2 && val(in->ops[1]) != uint64_t(blockDim.x) * blockDim.y * blockDim.z)
                    fail("a thread count other than the block's is not emulated");
                block_sync(0, 0);
                return;
            case Op::Elect: {
                uint64_t all[32];
                const unsigned eff = warp_collective(uint32_t(val(in->ops[1])), 0, all);
                const unsigned leader = unsigned(__builtin_ctz(eff));  // the lowest lane of the mask
                const Operand& v = in->ops[0];
                if (v.regs[0] >= 0) r[v.regs[0]] = leader;
                if (v.regs[1] >= 0) r[v.regs[1]] = lane_id() == leader;
                return;
            }
            case Op::Activemask:
                r[in->ops[0].reg] = active_lanes();
                return;
            case Op::Nanosleep:
                poll_pause();
                return;
            case Op::Bra:  // taken by run()
                return;
            case Op::MbarExpectTx: {
                void* bar = shared(in->ops[0], 8);
                touch(bar);
                mbarrier_expect_tx(bar, unsigned(val(in->ops[1])));
                return;
            }
            case Op::BulkCopy:
                return bulk_copy();
            case Op::Stmatrix:
                return stmatrix();
            case Op::ClusterArrive:
            case Op::ClusterWait:
            case Op::Mapa:
                return cluster_op();
        }
    }

    // The cluster barrier and mapa (the address maps are the scheduler's).
    [[gnu::noinline]] void cluster_op() {
        if (in->op == Op::ClusterArrive) return cluster_arrive(in->p[0] == 0);
        if (in->op == Op::ClusterWait) return cluster_wait();
        const uint64_t a = val(in->ops[1]);
        const unsigned rank = unsigned(val(in->ops[2]));
        r[in->ops[0].reg] = in->p[0]
                                ? uint64_t(cluster_window_map(uint32_t(a), rank))
                                : reinterpret_cast<uintptr_t>(cluster_map_shared(reinterpret_cast<void*>(a), rank));
    }

    // The memory an ld, st, atom or red of `bytes` addresses in its state space
    // (p[2]); a misaligned access stops the kernel, as it faults on the GPU.
    unsigned char* memory(const Operand& a, unsigned bytes) const {
        unsigned char* p = in->p[2] == SpaceShared ? static_cast<unsigned char*>(shared(a, bytes))
                           : in->p[2] == SpaceCluster
                               ? static_cast<unsigned char*>(cluster_window_pointer(uint32_t(address(a)), bytes))
                               : reinterpret_cast<unsigned char*>(address(a));
        if (reinterpret_cast<uintptr_t>(p) % bytes) fail("misaligned address");
        return p;
    }

    // An atomic load or store of 1, 2, 4 or 8 bytes at p. The race checker
    // sees acquire loads and release stores whatever the instruction's order:
    // it does not model fences, so a relaxed access ordered by a fence would
    // be reported as a race.
    static uint64_t load_atomic(const unsigned char* p, unsigned bytes) {
        switch (bytes) {
            case 1:
                return __atomic_load_n(p, __ATOMIC_ACQUIRE);
            case 2:
                return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_ACQUIRE);
            case 4:
                return __atomic_load_n(reinterpret_cast<const uint32_t*>(p), __ATOMIC_ACQUIRE);
            default:
                return __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_ACQUIRE);
        }
    }
    static void store_atomic(unsigned char* p, unsigned bytes, uint64_t x) {
        switch (bytes) {
            case 1:
                return __atomic_store_n(p, uint8_t(x), __ATOMIC_RELEASE);
            case 2:
                return __atomic_store_n(reinterpret_cast<uint16_t*>(p), uint16_t(x), __ATOMIC_RELEASE);
            case 4:
                return __atomic_store_n(reinterpret_cast<uint32_t*>(p), uint32_t(x), __ATOMIC_RELEASE);
            default:
                return __atomic_store_n(reinterpret_cast<uint64_t*>(p), x, __ATOMIC_RELEASE);
        }
    }

    // ld and st: the address's space decides how it maps to memory. A strong
    // form (volatile, relaxed, acquire, release) is atomic per element, as
    // the PTX memory model makes it: strong accesses never race each other. A
    // strong load is a poll (a thread that spins on a flag lets the thread
    // that sets it run: poll_pause); a strong store that changes memory is
    // progress.
    [[gnu::noinline]] void ld_st() {
        const unsigned bytes = unsigned(in->p[0]), n = unsigned(in->p[1]);
        const bool load = in->op == Op::Ld, strong = in->p[4];
        const Operand& a = in->ops[load ? 1 : 0];
        const Operand& v = in->ops[load ? 0 : 1];
        unsigned char* p = memory(a, bytes * n);
        bool changed = false;
        for (unsigned i = 0; i < n; ++i) {
            const int reg = n > 1 ? v.regs[i] : v.reg;
            if (load) {
                uint64_t x = 0;
                if (strong) x = load_atomic(p + i * bytes, bytes);
                else std::memcpy(&x, p + i * bytes, bytes);
                if (in->p[3] && bytes < 8) x = uint64_t(int64_t(x << (64 - 8 * bytes)) >> (64 - 8 * bytes));
                if (reg >= 0) r[reg] = x;
            } else if (strong) {
                const uint64_t x = n > 1 ? r[reg] : val(v),
                               width = bytes < 8 ? (uint64_t(1) << (8 * bytes)) - 1 : ~0ull;
                changed |= ((load_atomic(p + i * bytes, bytes) ^ x) & width) != 0;
                store_atomic(p + i * bytes, bytes, x);
            } else {
                const uint64_t x = n > 1 ? r[reg] : val(v);
                std::memcpy(p + i * bytes, &x, bytes);
            }
        }
        if (strong && load) poll_pause();
        count_change(changed);
    }

    // atom and red: a compare-and-swap loop with the new value computed from
    // the old, so every form is one function. As the C++ atomics (emu/device.h),
    // an integer add, and, or, xor, exch or cas that leaves memory as it was is
    // a poll; inc, dec, min, max and the float adds only count their changes.
    template <class U>
    U rmw(U* q, U b, U c, bool& changed) const {
        const int op = in->p[0], type = in->p[1];
        U old = __atomic_load_n(q, __ATOMIC_RELAXED), nu;
        do {
            const bool sgn = type & 1;
            const bool less = sgn ? std::make_signed_t<U>(old) < std::make_signed_t<U>(b) : old < b;
            switch (op) {
                case XAdd:
                    if (type == 2) nu = U(bits(f32(old) + f32(b)));
                    else if (type == 6) nu = U(pack_bits(unpack_bits<double>(old) + unpack_bits<double>(b)));
                    else nu = U(old + b);
                    break;
                case XAnd:
                    nu = old & b;
                    break;
                case XOr:
                    nu = old | b;
                    break;
                case XXor:
                    nu = old ^ b;
                    break;
                case XExch:
                    nu = b;
                    break;
                case XCas:
                    nu = old == b ? c : old;
                    break;
                case XInc:
                    nu = old >= b ? U(0) : U(old + 1);
                    break;
                case XDec:
                    nu = old == 0 || old > b ? b : U(old - 1);
                    break;
                case XMin:
                    nu = less ? old : b;
                    break;
                default:
                    nu = less ? b : old;
                    break;
            }
        } while (!__atomic_compare_exchange_n(q, &old, nu, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
        changed = nu != old;
        return old;
    }
    [[gnu::noinline]] void atom() {
        const bool wide = in->p[1] & 4, result = in->p[3];
        const std::size_t first = result ? 1 : 0;
        unsigned char* p = memory(in->ops[first], wide ? 8 : 4);
        const uint64_t b = val(in->ops[first + 1]), c = in->p[0] == XCas ? val(in->ops[first + 2]) : 0;
        bool changed = false;
        const uint64_t old = wide ? rmw(reinterpret_cast<uint64_t*>(p), b, c, changed)
                                  : rmw(reinterpret_cast<uint32_t*>(p), uint32_t(b), uint32_t(c), changed);
        if (result) r[in->ops[0].reg] = old;
        const bool integer = in->p[1] != 2 && in->p[1] != 6;
        if (integer && in->p[0] <= XCas) atomic_done(changed);
        else count_change(changed);
    }

    static float ftz(float x, bool on) { return on && std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }

    [[gnu::noinline]] void alu() {
        const int type = in->p[1];
        const bool flush = in->p[2];
        const uint64_t a = val(in->ops[1]);
        const uint64_t b = in->ops.size() > 2 ? val(in->ops[2]) : 0, c = in->ops.size() > 3 ? val(in->ops[3]) : 0;
        uint64_t d = 0;
        if (type == 2) {
            const float x = ftz(f32(a), flush), y = ftz(f32(b), flush), z = ftz(f32(c), flush);
            float f = 0;
            switch (in->p[0]) {
                case AAdd:
                    f = x + y;
                    break;
                case ASub:
                    f = x - y;
                    break;
                case AMulLo:
                    f = x * y;
                    break;
                case AFma:
                    f = std::fma(x, y, z);
                    break;
                case AMin:
                    f = std::fmin(x, y);
                    break;  // a NaN loses to a number, as in PTX
                case AMax:
                    f = std::fmax(x, y);
                    break;
                case ANeg:
                    f = -x;
                    break;
                case AAbs:
                    f = std::fabs(x);
                    break;
                case AEx2:
                    f = std::exp2(x);
                    break;
                case ARcp:
                    f = 1.0f / x;
                    break;
                case ASqrt:
                    f = std::sqrt(x);
                    break;
                case ARsqrt:
                    f = 1.0f / std::sqrt(x);
                    break;
                case ALg2:
                    f = std::log2(x);
                    break;
                case ATanh:
                    f = std::tanh(x);
                    break;
                default:
                    fail("not a float operation");
            }
            d = bits(ftz(f, flush));
        } else {
            const bool wide64 = type & 4, sgn = type & 1;
            const unsigned w = wide64 ? 64 : 32;
            // Signed values sign-extended to 64 bits, unsigned ones zero-extended.
            auto ext = [&](uint64_t x) {
                return wide64 ? x : sgn ? uint64_t(int64_t(int32_t(x))) : uint64_t(uint32_t(x));
            };
            const uint64_t x = ext(a), y = ext(b), z = ext(c);
            switch (in->p[0]) {
                case AAdd:
                    d = x + y;
                    break;
                case ASub:
                    d = x - y;
                    break;
                case AMulLo:
                    d = x * y;
                    break;
                case AMadLo:
                    d = x * y + z;
                    break;
                case AMulHi:
                    if (wide64) {
                        d = sgn ? uint64_t((__int128(int64_t(x)) * int64_t(y)) >> 64)
                                : uint64_t((unsigned __int128)x * y >> 64);
                    } else {
                        d = (sgn ? uint64_t(int64_t(x) * int64_t(y)) : x * y) >> 32;  // exact in 64 bits
                    }
                    break;
                case AMulWide:
                    r[in->ops[0].reg] = sgn ? uint64_t(int64_t(x) * int64_t(y)) : x * y;
                    return;
                case AAnd:
                    d = x & y;
                    break;
                case AOr:
                    d = x | y;
                    break;
                case AXor:
                    d = x ^ y;
                    break;
                case ANot:
                    d = ~x;
                    break;
                case AShl:
                    d = uint32_t(b) >= w ? 0 : x << uint32_t(b);
                    break;
                case AShr: {
                    const unsigned s = uint32_t(b) >= w ? w - 1 + !sgn : uint32_t(b);
                    d = s >= 64 ? 0 : sgn ? uint64_t(int64_t(x) >> s) : x >> s;  // .s fills with the sign
                    if (!sgn && uint32_t(b) >= w) d = 0;
                    break;
                }
                case AMin:
                    d = sgn ? uint64_t(std::min(int64_t(x), int64_t(y))) : std::min(x, y);
                    break;
                case AMax:
                    d = sgn ? uint64_t(std::max(int64_t(x), int64_t(y))) : std::max(x, y);
                    break;
                case ANeg:
                    d = uint64_t(0) - x;
                    break;
                case AAbs:
                    d = int64_t(x) < 0 ? uint64_t(0) - x : x;
                    break;
                case ALop3: {
                    // Bit i of the table is the result for (a, b, c) = (i & 4, i & 2, i & 1).
                    const unsigned lut = unsigned(in->ops[4].imm);
                    for (unsigned i = 0; i < 8; ++i)
                        if (lut >> i & 1u) d |= ((i & 4) ? x : ~x) & ((i & 2) ? y : ~y) & ((i & 1) ? z : ~z);
                    break;
                }
                case APrmt: {
                    // Bytes 0-3 of a then 4-7 of b; selector nibble k picks byte k of d
                    // (its bit 3: replicate the picked byte's sign bit).
                    const uint64_t src = uint64_t(uint32_t(x)) | (uint64_t(uint32_t(y)) << 32);
                    for (unsigned k = 0; k < 4; ++k) {
                        const unsigned sel = unsigned(z >> (4 * k)) & 15u;
                        uint64_t byte = (src >> (8 * (sel & 7u))) & 0xffu;
                        if (sel & 8u) byte = (byte & 0x80u) ? 0xffu : 0;
                        d |= byte << (8 * k);
                    }
                    break;
                }
                default:
                    fail("not an integer operation");
            }
        }
        r[in->ops[0].reg] = mask(d, type);
    }

    [[gnu::noinline]] void cvt() {
        const Operand& dst = in->ops[0];
        const uint64_t a = val(in->ops[1]);
        switch (in->p[0]) {
            case CvtInt: {  // sign- or zero-extend the source's width, keep the destination's
                const unsigned sb = unsigned(in->p[2] / 2) * 8, db = unsigned(in->p[1] / 2) * 8;
                uint64_t x = sb == 64 ? a : a & ((uint64_t(1) << sb) - 1);
                if ((in->p[2] & 1) && sb < 64) x = uint64_t(int64_t(x << (64 - sb)) >> (64 - sb));
                if (db < 64) {
                    x &= (uint64_t(1) << db) - 1;
                    if ((in->p[1] & 1) && db < 32)
                        x = uint64_t(uint32_t(int32_t(int64_t(x << (64 - db)) >> (64 - db))));
                }
                r[dst.reg] = x;
                return;
            }
            case CvtPack16: {  // d = {hi: a, lo: b}
                auto to16 = [&](uint64_t v) { return in->p[1] ? float_to_bf16_rn(f32(v)) : float_to_half_rn(f32(v)); };
                r[dst.reg] = uint64_t(to16(val(in->ops[2]))) | (uint64_t(to16(a)) << 16);
                return;
            }
            case CvtFrom16:
                r[dst.reg] = bits(in->p[2] ? bf16_to_float(uint16_t(a)) : half_to_float(uint16_t(a)));
                return;
            case CvtTo16:
                r[dst.reg] = in->p[1] ? float_to_bf16_rn(f32(a)) : float_to_half_rn(f32(a));
                return;
            case CvtIntToF32: {
                const unsigned sb = unsigned(in->p[2] / 2) * 8;
                uint64_t x = sb == 64 ? a : a & ((uint64_t(1) << sb) - 1);
                const bool sgn = in->p[2] & 1;
                if (sgn && sb < 64) x = uint64_t(int64_t(x << (64 - sb)) >> (64 - sb));
                r[dst.reg] = bits(sgn ? float(int64_t(x)) : float(x));
                return;
            }
            case CvtF32ToInt: {  // rounds as asked, saturates to the type's range; NaN gives 0
                const float f = f32(a);
                const double v = in->p[3] == 0   ? std::nearbyint(double(f))
                                 : in->p[3] == 1 ? std::trunc(double(f))
                                 : in->p[3] == 2 ? std::floor(double(f))
                                                 : std::ceil(double(f));
                const unsigned db = unsigned(in->p[1] / 2) * 8;
                const bool sgn = in->p[1] & 1;
                const double lo = sgn ? -std::ldexp(1.0, int(db) - 1) : 0.0;
                const double hi = sgn ? std::ldexp(1.0, int(db) - 1) - 1 : std::ldexp(1.0, int(db)) - 1;
                uint64_t x;
                if (std::isnan(f)) x = 0;
                else if (v <= lo) x = sgn ? uint64_t(int64_t(lo)) : 0;
                else if (v >= hi) x = sgn ? uint64_t(int64_t(hi)) : (db == 64 ? ~uint64_t(0) : uint64_t(hi));
                else x = sgn ? uint64_t(int64_t(v)) : uint64_t(v);
                r[dst.reg] = db == 64 ? x : x & ((uint64_t(1) << db) - 1);
                return;
            }
        }
    }

    // shfl.sync as the PTX ISA defines it: c holds the clamp (bits 0-4) and the
    // segment mask (bits 8-12); a source lane out of range gives the lane its own a.
    [[gnu::noinline]] void shfl() {
        const unsigned lane = lane_id(), b = unsigned(val(in->ops[2])) & 31u, c = unsigned(val(in->ops[3]));
        uint64_t all[32];
        warp_collective(uint32_t(val(in->ops[4])), uint32_t(val(in->ops[1])), all);
        const unsigned seg = (c >> 8) & 31u, clamp = c & 31u;
        const unsigned min_lane = lane & seg, max_lane = min_lane | (clamp & ~seg);
        int j = 0;
        bool ok = false;
        switch (in->p[0]) {
            case 0:
                j = int(lane) - int(b), ok = j >= int(max_lane);
                break;
            case 1:
                j = int(lane + b), ok = j <= int(max_lane);
                break;
            case 2:
                j = int(lane ^ b), ok = j <= int(max_lane);
                break;
            default:
                j = int(min_lane | (b & ~seg)), ok = j <= int(max_lane);
                break;
        }
        if (!ok) j = int(lane);
        const Operand& d = in->ops[0];
        const int dreg = d.kind == Operand::Vec ? d.regs[0] : d.reg;
        if (dreg >= 0) r[dreg] = uint32_t(all[j]);
        if (d.kind == Operand::Vec && d.regs[1] >= 0) r[d.regs[1]] = ok;
    }
    static uint64_t mask(uint64_t v, int type) { return (type & 4) ? v : uint64_t(uint32_t(v)); }

    static void wgmma_retire(unsigned keep);
};

// ---- wgmma -----------------------------------------------------------------------
// Warp w of the warpgroup owns rows 16w..16w+15 of D and gives those rows of A
// in the mma.m16n8k16 A layout, so each warp's part of the product needs only
// its own lanes. The product is queued when issued and done when
// wgmma.wait_group retires its group, reading the shared operands then.

// The shared-memory operands follow the PTX ISA's canonical layouts ("Shared
// Memory Matrix Layout"; 16-bit elements, 8 to a 16-byte unit). The
// descriptor's bits 62-63 give the swizzle: 0 none, 1 128 bytes, 2 64 bytes,
// 3 32 bytes; a swizzled operand is made of rows of that many bytes. With
// mn the M (A) or N (B) index:
//   K-major, no swizzle: 8 x 16-byte core matrices; (mn % 8) 16 + (k % 8) 2,
//     (mn / 8) SBO, (k / 8) LBO.
//   K-major, swizzled: row mn % 8 of an 8-row atom, k contiguous in the row;
//     (mn % 8) span + 2k, (mn / 8) SBO (LBO unused).
//   MN-major, no swizzle: (mn % 8) 2 + (k % 8) 16, (mn / 8) SBO, (k / 8) LBO.
//   MN-major, swizzled: row k % 8 of an atom holds span / 2 consecutive mn;
//     (mn % (span / 2)) 2 + (k % 8) span, (mn / (span / 2)) LBO, (k / 8) SBO.
// The swizzle then acts on the shared address itself (so a start inside a
// row, as a k-step's +32 bytes, reads what TMA wrote at the aligned block):
// 128 bytes: bits 4-6 ^= bits 7-9; 64: bits 4-5 ^= bits 7-8; 32: bit 4 ^= bit 7.
struct WgmmaLayout {
    std::size_t start, lbo, sbo, span;  // span: bytes of a swizzled row (0: no swizzle)
    unsigned bits;                      // how many address bits the swizzle flips
    bool mn_major;

    WgmmaLayout(uint64_t desc, bool mn) : mn_major(mn) {
        start = (desc & 0x3FFFu) << 4, lbo = ((desc >> 16) & 0x3FFFu) << 4, sbo = ((desc >> 32) & 0x3FFFu) << 4;
        static const std::size_t spans[4] = {0, 128, 64, 32};
        static const unsigned flips[4] = {0, 3, 2, 1};
        span = spans[desc >> 62], bits = flips[desc >> 62];
    }
    // The parts of an element's unswizzled address from its mn and from its k.
    std::size_t mn_part(unsigned mn) const {
        if (!span) return mn_major ? (mn % 8) * 2 + (mn / 8) * sbo : (mn % 8) * 16 + (mn / 8) * sbo;
        return mn_major ? (mn % (span / 2)) * 2 + (mn / (span / 2)) * lbo : (mn % 8) * span + (mn / 8) * sbo;
    }
    std::size_t k_part(unsigned k) const {
        if (!span) return mn_major ? (k % 8) * 16 + (k / 8) * lbo : (k % 8) * 2 + (k / 8) * lbo;
        return mn_major ? (k % 8) * span + (k / 8) * sbo : std::size_t(k) * 2;
    }
    std::size_t swizzle(std::size_t a) const { return a ^ (((a >> 7) & ((1u << bits) - 1)) << 4); }
    // Shared address of element (mn, k).
    std::size_t at(unsigned mn, unsigned k) const { return swizzle(start + mn_part(mn) + k_part(k)); }
};

inline float smem_16(const unsigned char* e, bool f16) {
    const uint16_t h = uint16_t(e[0] | (e[1] << 8));
    return f16 ? half_to_float(h) : bf16(h);
}

// The descriptor of a K16 x `mn` operand, checked at the issue: no base
// offset, and every element inside dynamic shared memory.
void check_descriptor(const Exec& x, uint64_t desc, bool mn_major, unsigned mn, const char* which) {
    const WgmmaLayout l(desc, mn_major);
    const std::string w = std::string("wgmma descriptor of ") + which + ": ";
    if ((desc >> 49) & 7u)
        x.fail(w + "a non-zero matrix base offset (bits 49-51) is not emulated; start the swizzle pattern at a " +
               std::to_string(8 * l.span) + "-byte boundary");
    std::size_t hi_mn = 0, hi_k = 0;
    for (unsigned i = 0; i < mn; ++i) hi_mn = std::max(hi_mn, l.mn_part(i));
    for (unsigned k = 0; k < 16; ++k) hi_k = std::max(hi_k, l.k_part(k));
    // The swizzle only flips bits 4.. of the address, so it stays below this.
    const std::size_t last = ((l.start + hi_mn + hi_k) | (((std::size_t(1) << l.bits) - 1) << 4)) + 2;
    if (last > dynamic_shared_bytes())
        x.fail(w + "the operand must lie in dynamic shared memory (it reaches byte " + std::to_string(last) +
               ", past the " + std::to_string(dynamic_shared_bytes()) + " bytes of dynamic shared memory)");
}

void Exec::wgmma() {
    WgmmaState& st = wgmma_state();
    if (!st.fenced) fail("wgmma.mma_async without a wgmma.fence since the last wgmma.wait_group");
    const int n = in->p[0];
    const bool a_shared = in->p[1], f16_in = in->p[2], f16_acc = in->p[3];
    const uint64_t desc_b = r[in->ops[2].reg];
    const bool b_mn_major = in->ops.back().imm != 0, a_mn_major = a_shared && in->ops[6].imm != 0;
    const float sign = float(in->ops[4].imm * in->ops[5].imm);  // imm-scale-a, imm-scale-b: 1 or -1
    check_descriptor(*this, desc_b, b_mn_major, unsigned(n), "B");
    const bool accumulate = val(in->ops[3]) != 0;
    const unsigned char* smem = static_cast<const unsigned char*>(dynamic_shared());
    const unsigned lane = lane_id(), g = lane / 4, t = lane % 4;
    std::vector<void*> d(in->ops[0].regs.size());
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = args[in->ops[0].regs[i]].out;
    // This lane's rows g and g+8 of the warp's 16 rows of A: from registers,
    // held by lanes 4g..4g+3 (the mma A layout), gathered now.
    std::array<float, 32> a{};
    if (!a_shared) {
        const Operand& A = in->ops[1];
        uint64_t a01[32], a23[32];
        gather(uint32_t(r[A.regs[0]]) | (r[A.regs[1]] << 32), a01);
        gather(uint32_t(r[A.regs[2]]) | (r[A.regs[3]] << 32), a23);
        auto elem = [&](uint32_t h) { return f16_in ? half_to_float(uint16_t(h)) : bf16(h); };
        for (unsigned u = 0; u < 4; ++u) {
            const uint64_t x01 = a01[4 * g + u], x23 = a23[4 * g + u];
            const uint32_t q[4] = {uint32_t(x01), uint32_t(x01 >> 32), uint32_t(x23), uint32_t(x23 >> 32)};
            for (unsigned k = 0; k < 4; ++k) {
                const unsigned row = k & 1, col = 2 * u + 8 * (k >> 1);
                a[row * 16 + col] = elem(q[k] & 0xffffu);
                a[row * 16 + col + 1] = elem(q[k] >> 16);
            }
        }
    }
    const uint64_t desc_a = a_shared ? r[in->ops[1].reg] : 0;
    if (a_shared) check_descriptor(*this, desc_a, a_mn_major, 64, "A");
    const unsigned linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z), w = (linear / 32) % 4;
    st.pending.push_back(
        {st.committed, [=, d = std::move(d)] {
             const WgmmaLayout la(desc_a, a_mn_major), lb(desc_b, b_mn_major);
             float arow[2][16];  // A from shared memory is read when the product runs
             for (unsigned row = 0; row < 2; ++row)
                 for (unsigned k = 0; k < 16; ++k)
                     arow[row][k] =
                         sign * (a_shared ? smem_16(smem + la.at(16 * w + g + 8 * row, k), f16_in) : a[row * 16 + k]);
             for (int j = 0; j < n / 8; ++j) {
                 float out[2][2];  // [h][c]: rows g, g+8; columns 8j + 2t + c
                 for (int c = 0; c < 2; ++c) {
                     const unsigned col = 8 * j + 2 * t + c;
                     float b[16];
                     for (unsigned k = 0; k < 16; ++k) b[k] = smem_16(smem + lb.at(col, k), f16_in);
                     for (int h = 0; h < 2; ++h) {
                         float acc = 0.0f;
                         if (accumulate && f16_acc)
                             acc = half_to_float(
                                 uint16_t(*static_cast<uint32_t*>(d[std::size_t(2 * j + h)]) >> (16 * c)));
                         else if (accumulate) acc = *static_cast<float*>(d[std::size_t(4 * j + 2 * h + c)]);
                         // 16-bit float products are exact in fp32: one rounding per step, as fmaf.
                         for (unsigned k = 0; k < 16; ++k) acc += arow[h][k] * b[k];
                         out[h][c] = acc;
                     }
                 }
                 for (int h = 0; h < 2; ++h) {
                     if (f16_acc)  // two f16 to a register, rounded once at the end
                         *static_cast<uint32_t*>(d[std::size_t(2 * j + h)]) =
                             uint32_t(float_to_half_rn(out[h][0])) | (uint32_t(float_to_half_rn(out[h][1])) << 16);
                     else
                         for (int c = 0; c < 2; ++c)
                             *static_cast<float*>(d[std::size_t(4 * j + 2 * h + c)]) = out[h][c];
                 }
             }
         }});
}

// Runs the products of every committed group but the newest `keep`, in issue order.
void Exec::wgmma_retire(unsigned keep) {
    WgmmaState& st = wgmma_state();
    std::vector<WgmmaOp> left;
    for (WgmmaOp& op : st.pending) {
        if (op.group < st.committed && st.committed - op.group > keep) op.run();
        else left.push_back(std::move(op));
    }
    st.pending = std::move(left);
    st.fenced = false;
}

// ---- TMA -------------------------------------------------------------------------
// The issuing thread copies the box at once, through its own loads and stores
// (so the checkers see them: a reader that did not wait on the barrier races
// with these stores), then counts the bytes against the barrier.
void Exec::tma_load() {
    const int rank = in->p[0];
    TensorMapFields m;
    const void* map = reinterpret_cast<const void*>(address(Operand{Operand::Mem, in->ops[1].reg, 0, {}}));
    std::memcpy(&m, map, sizeof(m));
    if (m.magic != kTensorMapMagic) fail("cp.async.bulk.tensor: not a tensor map from cuTensorMapEncodeTiled");
    if (int(m.rank) != rank) fail("cp.async.bulk.tensor: the instruction's rank is not the tensor map's");
    uint32_t box[5] = {1, 1, 1, 1, 1};
    std::size_t total = m.elem_bytes;
    for (int i = 0; i < rank; ++i) box[i] = m.box[i], total *= m.box[i];
    unsigned char* dst = static_cast<unsigned char*>(shared(in->ops[0], total));
    void* bar = shared(in->ops[2], 8);
    touch(bar);
    // The emulator's shared memory (dynamic, and static arrays with their
    // __align__) is as aligned in the host address space as on the GPU.
    // A swizzled box must start where the pattern starts (it repeats every 8 rows of the span).
    const std::size_t align = m.swizzle ? 8 * std::size_t(m.swizzle) : 128;
    if (reinterpret_cast<uintptr_t>(dst) % align)
        fail(m.swizzle ? "cp.async.bulk.tensor: a " + std::to_string(m.swizzle) + "-byte swizzled box needs " +
                             std::to_string(align) + "-byte aligned shared memory"
                       : std::string("cp.async.bulk.tensor: the shared-memory destination must be 128-byte aligned"));
    // Swizzles of the box's byte offset (= the address bits, the box being aligned): 128 bytes: bits 4-6 ^= bits
    // 7-9; 64: bits 4-5 ^= bits 7-8; 32: bit 4 ^= bit 7.
    const std::size_t flip = m.swizzle == 128 ? 7 : m.swizzle == 64 ? 3 : m.swizzle == 32 ? 1 : 0;
    int c[5] = {0, 0, 0, 0, 0};
    for (int i = 0; i < rank; ++i) c[i] = int32_t(r[in->ops[1].regs[std::size_t(i)]]);
    const std::size_t e = m.elem_bytes;
    std::size_t lin = 0;
    for (uint32_t i4 = 0; i4 < box[4]; ++i4)
        for (uint32_t i3 = 0; i3 < box[3]; ++i3)
            for (uint32_t i2 = 0; i2 < box[2]; ++i2)
                for (uint32_t i1 = 0; i1 < box[1]; ++i1)
                    for (uint32_t i0 = 0; i0 < box[0]; ++i0, lin += e) {
                        const uint32_t idx[5] = {i0, i1, i2, i3, i4};
                        const unsigned char* src = m.base;
                        for (int d = 0; d < rank && src; ++d) {
                            const long long x = (long long)c[d] + idx[d];
                            if (x < 0 || x >= (long long)m.dim[d]) src = nullptr;  // outside: zeros
                            else src += std::size_t(x) * (d == 0 ? e : m.stride[d - 1]);
                        }
                        const std::size_t o = lin ^ (((lin >> 7) & flip) << 4);
                        for (std::size_t b = 0; b < e; ++b) dst[o + b] = src ? src[b] : 0;
                    }
    mbarrier_complete_tx(bar, unsigned(lin));
}

}  // namespace

// ---- the site ----------------------------------------------------------------------

namespace {
PtxSite::Program* parse(const char* text, const char* constraints, const char* file, int line, const PtxArg* args,
                        int n) {
    PtxSite::Program* prog = new PtxSite::Program;
    PtxSite::Program& p = *prog;
    p.file = file;
    p.line = line;
    // "=f,+r,l,n": one entry per operand, outputs first.
    std::string c = constraints;
    std::size_t at = 0;
    while (!c.empty() && at <= c.size()) {
        const std::size_t comma = c.find(',', at);
        const std::string one = c.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        const bool out = !one.empty() && (one[0] == '=' || one[0] == '+');
        const char letter = one.empty() ? '?' : one.back();
        if (std::string("rlfdhcn").find(letter) == std::string::npos || one.size() != std::size_t(1 + out))
            p.fail(nullptr, "asm constraint \"" + one + "\" is not emulated (r, l, f, d, h, c, n with = or +)");
        p.cons.push_back(letter);
        p.out.push_back(out);
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    p.nargs = p.nregs = int(p.cons.size());
    p.deferred.assign(p.cons.size(), 0);
    if (p.nargs > kMaxRegs) p.fail(nullptr, "too many asm operands");
    if (n != p.nargs) p.fail(nullptr, "the number of operands is not the constraints'");
    p.imm.resize(std::size_t(n));
    for (int i = 0; i < n; ++i) p.imm[std::size_t(i)] = int64_t(args[i].in);
    Parser{p, {}, {}, nullptr, {}, {}}.parse(text);
    return prog;
}

}  // namespace

// The first run parses. For the race checker the parse, its lock and its
// publication are invisible (no accesses, no synchronisation recorded): the
// program is constant once published, and the CUDA threads that run the site
// later must not be ordered after the first one by it.
const PtxSite::Program& PtxSite::program(const PtxArg* args, int n) const {
    if (Program* p = __atomic_load_n(&prog_, __ATOMIC_ACQUIRE)) return *p;
#if defined(EMU_TSAN)
    AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
    {
        static std::mutex lock;
        std::lock_guard<std::mutex> hold(lock);
        if (!prog_) __atomic_store_n(&prog_, parse(text_, constraints_, file_, line_, args, n), __ATOMIC_RELEASE);
    }
#if defined(EMU_TSAN)
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
    AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
#endif
    return *__atomic_load_n(&prog_, __ATOMIC_ACQUIRE);
}

void PtxSite::run(PtxArg* args, int n) const {
    const Program& p = program(args, n);
    if (n != p.nargs) p.fail(nullptr, "the number of operands is not the constraints'");
    uint64_t regs[kMaxRegs];
    for (int i = 0; i < n; ++i) {
        if (p.out[std::size_t(i)]) {
            regs[i] = 0;
            std::memcpy(&regs[i], args[i].out, ptx_width(p.cons[std::size_t(i)]));
        } else {
            regs[i] = args[i].in;
        }
    }
    for (int i = n; i < p.nregs; ++i) regs[i] = 0;
    Exec x{p, regs, args};
    for (std::size_t pc = 0; pc < p.insns.size();) {
        const Insn& in = p.insns[pc++];
        if (in.guard >= 0 && (regs[in.guard] != 0) == in.guard_neg) continue;
        if (in.op == Op::Bra) {
            pc = std::size_t(in.p[0]);
            continue;
        }
        x.in = &in;
        x.step();
    }
    for (int i = 0; i < n; ++i)
        if (p.out[std::size_t(i)] && !p.deferred[std::size_t(i)])
            std::memcpy(args[i].out, &regs[i], ptx_width(p.cons[std::size_t(i)]));
}

}  // namespace emu
