#include "model/dry_run.h"

#include <algorithm>
#include <cctype>
#include <cstdarg>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "model/memory_plan.h"
#include "model/params.h"

namespace llama {

const std::vector<DeviceSpec>& known_devices() {
    // NVIDIA datasheets: bandwidth, dense bf16 tensor-core peak (half the
    // "with sparsity" figure), capacity in GB.
    static const std::vector<DeviceSpec> devices = {
        {"A100-SXM4-40GB", 1.555e12, 312e12, 40e9}, {"A100-SXM4-80GB", 2.039e12, 312e12, 80e9},
        {"A100-PCIe-40GB", 1.555e12, 312e12, 40e9}, {"A100-PCIe-80GB", 1.935e12, 312e12, 80e9},
        {"H100-SXM", 3.35e12, 989.4e12, 80e9},      {"H100-PCIe", 2.0e12, 756e12, 80e9},
        {"H100-NVL", 3.9e12, 835e12, 94e9},         {"H200", 4.8e12, 989.4e12, 141e9},
        {"H200-NVL", 4.8e12, 835e12, 141e9},
    };
    return devices;
}

const DeviceSpec& device_spec(const std::string& name) {
    for (const DeviceSpec& d : known_devices())
        if (d.name == name) return d;
    std::string known;
    for (const DeviceSpec& d : known_devices()) known += (known.empty() ? "" : ", ") + d.name;
    throw std::invalid_argument("unknown device '" + name + "' (known: " + known + ")");
}

const DeviceSpec* device_for_name(const std::string& device_name) {
    std::string n = device_name;
    for (char& ch : n) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    auto has = [&](const char* s) { return n.find(s) != std::string::npos; };
    const char* entry = nullptr;
    // GH200 is a Grace-Hopper superchip with other memory; not H200, not listed.
    if (has("GH200")) return nullptr;
    if (has("H200")) entry = has("NVL") ? "H200-NVL" : "H200";
    else if (has("H100")) entry = has("PCIE") ? "H100-PCIe" : has("NVL") ? "H100-NVL" : "H100-SXM";
    else if (has("A100")) {
        const bool pcie = has("PCIE"), small = has("40GB");
        entry = pcie ? (small ? "A100-PCIe-40GB" : "A100-PCIe-80GB") : (small ? "A100-SXM4-40GB" : "A100-SXM4-80GB");
    }
    return entry ? &device_spec(entry) : nullptr;
}

double peak_tflops_for_device(const std::string& device_name) {
    const DeviceSpec* d = device_for_name(device_name);
    return d ? d->peak_flops / 1e12 : 0.0;
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// 437760960 -> "437,760,960".
std::string with_commas(int64_t n) {
    std::string digits = std::to_string(n < 0 ? -n : n), out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return (n < 0 ? "-" : "") + out;
}

std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* format, ...) {
    char buf[512];
    va_list args;
    va_start(args, format);
    std::vsnprintf(buf, sizeof buf, format, args);
    va_end(args);
    return buf;
}

double gb(int64_t bytes) { return double(bytes) / 1e9; }

}  // namespace

std::vector<ParamGroup> parameter_groups(const ModelConfig& c) {
    // Name suffixes (Hugging Face names, as in ParamLayout) of the matrix groups.
    static const std::pair<const char*, const char*> matrices[] = {
        {"attention.q", "self_attn.q_proj.weight"}, {"attention.k", "self_attn.k_proj.weight"},
        {"attention.v", "self_attn.v_proj.weight"}, {"attention.o", "self_attn.o_proj.weight"},
        {"mlp.gate", "mlp.gate_proj.weight"},       {"mlp.up", "mlp.up_proj.weight"},
        {"mlp.down", "mlp.down_proj.weight"},
    };
    std::vector<ParamGroup> groups = {{"embedding", 0}};
    for (const auto& m : matrices) groups.push_back({m.first, 0});
    groups.push_back({"norms", 0});
    groups.push_back({"biases", 0});
    groups.push_back({"lm_head", 0});
    auto add = [&](const std::string& group, int64_t n) {
        for (ParamGroup& g : groups)
            if (g.name == group) g.count += n;
    };
    const ParamLayout layout(c);
    for (const ParamTensor& t : layout.tensors()) {
        std::string group;
        if (t.name == "model.embed_tokens.weight") group = "embedding";
        else if (t.name == "lm_head.weight") group = "lm_head";
        else if (t.kind == ParamKind::Norm) group = "norms";
        else if (t.kind == ParamKind::Bias) group = "biases";
        else
            for (const auto& m : matrices)
                if (ends_with(t.name, m.second)) group = m.first;
        if (group.empty()) throw std::logic_error("dry run: parameter tensor '" + t.name + "' belongs to no group");
        add(group, t.numel);
    }
    return groups;
}

int64_t matmul_weight_count(const ModelConfig& c) {
    int64_t n = 0;
    const ParamLayout layout(c);
    for (const ParamTensor& t : layout.tensors())
        if (t.kind == ParamKind::Matrix) n += t.numel;             // every linear layer, and lm_head when untied
    if (c.tied_embeddings) n += int64_t(c.vocab_size) * c.hidden;  // the LM head is the embedding
    return n;
}

double flops_per_token(const ModelConfig& c, int seq_len) {
    return 6.0 * double(matmul_weight_count(c)) + 6.0 * double(c.n_layers) * c.n_heads * c.head_dim * double(seq_len);
}

std::string flops_per_token_formula() {
    return "6 * matmul weights (linear layers + LM head) + 6 * n_layers * n_heads * head_dim * seq_len";
}

StepPrediction predict_step(const ModelConfig& c, int micro_batch, int seq_len, int accumulation, bool recompute,
                            const DeviceSpec& device, double matmul_efficiency, double attention_efficiency) {
    if (micro_batch <= 0 || seq_len <= 0 || accumulation <= 0)
        throw std::invalid_argument("predict_step: micro_batch, seq_len and accumulation must be positive");
    if (!(matmul_efficiency > 0 && matmul_efficiency <= 1) || !(attention_efficiency > 0 && attention_efficiency <= 1))
        throw std::invalid_argument("predict_step: efficiencies must be in (0, 1]");
    const double B = micro_batch, T = seq_len, N = B * T, C = c.hidden, D = c.head_dim, H = c.n_heads,
                 KV = c.n_kv_heads, F = c.ffn_hidden, V = c.vocab_size, L = c.n_layers;
    const double W = (H + 2 * KV) * D;  // fused q, k, v columns
    const double bw = device.mem_bw, matmul_peak = matmul_efficiency * device.peak_flops;
    const double bf = 2, f4 = 4;

    // One linear layer [out, in] on N rows, forward and backward (dX and dW):
    // each product takes max(FLOPs at the assumed efficiency, bytes at full
    // bandwidth). The weight gradient accumulates in fp32 (read and write).
    // `activation_io` is false for the LM head, whose logits traffic is counted
    // with the cross-entropy below.
    auto linear = [&](double in, double out, bool activation_io) {
        const double flops = 2 * N * in * out, act_out = activation_io ? N * out * bf : 0;
        const double fwd = (N * in + in * out) * bf + act_out;
        const double dx = act_out + in * out * bf + N * in * bf;
        const double dw = act_out + N * in * bf + in * out * f4 * 2;
        return std::max(flops / matmul_peak, fwd / bw) + std::max(flops / matmul_peak, dx / bw) +
               std::max(flops / matmul_peak, dw / bw);
    };
    double matmul = L * (linear(C, W, true) + linear(H * D, C, true) + linear(C, 2 * F, true) + linear(F, C, true));
    matmul += linear(C, V, false);
    // Biases are added in the matmul epilogues; their gradients are column sums of the output gradients.
    double bytes = c.bias ? L * N * (W + C + 2 * F + C) * bf : 0;

    // Attention per layer: forward 4*B*H*T^2*D/2 FLOPs, backward 2.5x; or its
    // input and output traffic, whichever is slower.
    const double attn_fwd_flops = 4 * B * H * T * T * D / 2;
    const double attn_fwd_bytes = N * (W + H * D) * bf + N * H * f4;
    const double attn_bwd_bytes = N * (W + 2 * H * D + W) * bf + N * H * f4;
    const double attention_peak = attention_efficiency * device.peak_flops;
    const double attention = L * (std::max(attn_fwd_flops / attention_peak, attn_fwd_bytes / bw) +
                                  std::max(2.5 * attn_fwd_flops / attention_peak, attn_bwd_bytes / bw));

    // Memory-bound kernels, bytes per micro-step.
    const double norm_fwd = N * C * bf * 4 + N * f4;  // RMSNorm with the residual add fused in
    const double norm_bwd = N * C * bf * 6 + N * f4;
    const double norm_recompute = N * C * bf * 2 + N * f4;  // rebuild the output from the saved residual and rstd
    const double qk = (H + KV) * D;
    bytes += N * C * bf * 2 + N * f4;                   // embedding forward
    bytes += N * C * bf + std::min(N, V) * C * f4 * 2;  // embedding backward into fp32 rows
    bytes += (2 * L + 1) * (norm_fwd + norm_bwd);       // two norms per layer, one final
    bytes += L * 2 * N * qk * bf * 2;                   // RoPE forward and backward (q and k)
    if (c.qk_norm) bytes += L * (N * W * bf * 2 + N * (H + KV) * f4 + N * (W * bf * 3 + (H + KV) * f4));
    bytes += L * (N * F * bf * 3 + N * F * bf * 5);                     // SwiGLU forward and backward
    if (recompute) bytes += L * (2 * norm_recompute + N * F * bf * 3);  // recomputed norms and SwiGLU
    bytes += N * V * 6 * 2;  // classifier: fp32 logits and bf16 logit gradients, each written and read
    const double memory_bound = bytes / bw;

    // Once per step: AdamW reads master, gradient and both moments, writes master,
    // moments and the bf16 copy (30 bytes per parameter); the gradient norm reads
    // the gradients (4).
    const double n_params = double(ParamLayout(c).total());
    const double optimizer = n_params * (4 * 4 + 3 * 4 + bf + 4) / bw;

    StepPrediction p;
    p.device = device.name;
    p.matmul_seconds = accumulation * matmul;
    p.attention_seconds = accumulation * attention;
    p.memory_bound_seconds = accumulation * memory_bound;
    p.optimizer_seconds = optimizer;
    p.step_seconds = p.matmul_seconds + p.attention_seconds + p.memory_bound_seconds + p.optimizer_seconds;
    p.tokens_per_second = accumulation * N / p.step_seconds;
    p.mfu = flops_per_token(c, seq_len) * p.tokens_per_second / device.peak_flops;
    return p;
}

int largest_micro_batch(const ModelConfig& c, int seq_len, bool recompute, double bytes) {
    auto fits = [&](int b) { return double(plan_memory(c, b, seq_len, recompute).total_bytes()) <= bytes; };
    if (!fits(1)) return 0;
    // The plan grows with the batch, so double until it no longer fits, then bisect.
    const int cap = 1 << 24;
    int lo = 1, hi = 2;
    while (hi < cap && fits(hi)) {
        lo = hi;
        hi *= 2;
    }
    if (hi >= cap && fits(cap)) return cap;
    while (hi - lo > 1) {  // fits(lo), !fits(hi)
        const int mid = lo + (hi - lo) / 2;
        (fits(mid) ? lo : hi) = mid;
    }
    return lo;
}

std::string dry_run_report(const ModelConfig& c, int micro_batch, int seq_len, int accumulation) {
    std::ostringstream s;
    const int64_t tokens = int64_t(micro_batch) * seq_len;
    s << fmt("== dry run: %s: vocab %d, hidden %d, %d layers, %d heads (%d kv) x %d, ffn %d, %s embeddings%s%s\n",
             c.name.c_str(), c.vocab_size, c.hidden, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_hidden,
             c.tied_embeddings ? "tied" : "untied", c.qk_norm ? ", qk-norm" : "", c.bias ? ", biases" : "");
    s << fmt("micro-batch %d x seq %d = %lld tokens, accumulation %d: %lld tokens per optimizer step%s\n", micro_batch,
             seq_len, (long long)tokens, accumulation, (long long)(tokens * accumulation),
             seq_len > c.max_seq_len ? " (seq exceeds the model's max_seq_len)" : "");

    // 1. Parameters by group.
    std::vector<ParamGroup> g = parameter_groups(c);
    auto count = [&](const std::string& name) {
        for (const ParamGroup& x : g)
            if (x.name == name) return x.count;
        return int64_t(0);
    };
    int64_t sum = 0;
    for (const ParamGroup& x : g) sum += x.count;
    const int64_t formula = parameter_count_formula(c);
    s << "-- parameters\n";
    s << fmt("  %-20s %15s%s\n", "embedding", with_commas(count("embedding")).c_str(),
             c.tied_embeddings ? "  (also the LM head: tied)" : "");
    s << fmt(
        "  %-20s %15s  (q %s, k %s, v %s, o %s)\n", "attention q/k/v/o",
        with_commas(count("attention.q") + count("attention.k") + count("attention.v") + count("attention.o")).c_str(),
        format_count(count("attention.q")).c_str(), format_count(count("attention.k")).c_str(),
        format_count(count("attention.v")).c_str(), format_count(count("attention.o")).c_str());
    s << fmt("  %-20s %15s  (gate %s, up %s, down %s)\n", "mlp gate/up/down",
             with_commas(count("mlp.gate") + count("mlp.up") + count("mlp.down")).c_str(),
             format_count(count("mlp.gate")).c_str(), format_count(count("mlp.up")).c_str(),
             format_count(count("mlp.down")).c_str());
    s << fmt("  %-20s %15s\n", c.qk_norm ? "norms (incl. qk-norm)" : "norms", with_commas(count("norms")).c_str());
    s << fmt("  %-20s %15s\n", "biases", with_commas(count("biases")).c_str());
    if (!c.tied_embeddings) s << fmt("  %-20s %15s\n", "lm head", with_commas(count("lm_head")).c_str());
    s << fmt("  %-20s %15s  (%s); closed formula %s: %s\n", "total", with_commas(sum).c_str(),
             format_count(sum).c_str(), with_commas(formula).c_str(), sum == formula ? "equal" : "MISMATCH");

    // 2. Memory, with and without recomputation.
    const MemoryPlan full = plan_memory(c, micro_batch, seq_len, false);
    const MemoryPlan rec = plan_memory(c, micro_batch, seq_len, true);
    s << "-- memory (GB = 1e9 bytes)           no recompute   recompute   saving\n";
    s << fmt("  %-32s %9.2f\n", "bf16 parameters", gb(full.param_bf16_bytes));
    s << fmt("  %-32s %9.2f\n", "fp32 master weights", gb(full.master_bytes));
    s << fmt("  %-32s %9.2f\n", "fp32 gradients", gb(full.grad_bytes));
    s << fmt("  %-32s %9.2f\n", "AdamW moments (fp32 m and v)", gb(full.adam_bytes));
    auto row = [&](const char* label, int64_t a, int64_t b) {
        s << fmt("  %-32s %9.2f %11.2f %8.2f\n", label, gb(a), gb(b), gb(a - b));
    };
    row("activations", full.activation_bytes(), rec.activation_bytes());
    row("workspace", full.workspace_bytes(), rec.workspace_bytes());
    row("total", full.total_bytes(), rec.total_bytes());

    s << "-- ZeRO-1 (--zero): fp32 master weights and AdamW moments sharded over the ranks\n";
    s << "  ranks   their share per rank   saving   total per rank: no recompute   recompute\n";
    for (int ranks : {8, 64}) {
        const int64_t saving = full.zero1_saving(ranks);
        s << fmt("  %5d %22.2f %8.2f %30.2f %11.2f\n", ranks, gb(full.master_bytes + full.adam_bytes - saving),
                 gb(saving), gb(full.total_bytes() - saving), gb(rec.total_bytes() - saving));
    }

    // 3. Largest micro-batch that fits.
    s << fmt("-- largest micro-batch at seq %d      no recompute   recompute   (plan total <= %.0f%% of capacity)\n",
             seq_len, kMemoryBudgetFraction * 100);
    for (double cap : {40e9, 80e9}) {
        const double budget = kMemoryBudgetFraction * cap;
        s << fmt("  %2.0f GB (budget %4.1f GB) %19d %11d\n", cap / 1e9, budget / 1e9,
                 largest_micro_batch(c, seq_len, false, budget), largest_micro_batch(c, seq_len, true, budget));
    }

    // 4. FLOPs per token.
    const double fpt = flops_per_token(c, seq_len);
    s << fmt("-- FLOPs per token at seq %d: %.4g GFLOP; per optimizer step (%lld tokens): %.4g TFLOP\n", seq_len,
             fpt / 1e9, (long long)(tokens * accumulation), fpt * double(tokens * accumulation) / 1e12);
    s << fmt("  = %s\n", flops_per_token_formula().c_str());
    s << fmt("  matmul weights %s (the embedding lookup, norms and biases excluded)\n",
             with_commas(matmul_weight_count(c)).c_str());

    // 5. Predicted step time.
    const double matmul_eff = 0.7, attention_eff = 0.5;
    s << fmt(
        "-- predicted step (matmuls at %.0f%% of dense bf16 peak, attention at %.0f%%, other kernels at memory "
        "bandwidth)\n",
        matmul_eff * 100, attention_eff * 100);
    s << "  device            recompute  step ms    tokens/s    MFU   matmul  attention  memory  optimizer (ms)\n";
    for (const char* name : {"A100-SXM4-80GB", "H100-SXM"}) {
        const DeviceSpec& d = device_spec(name);
        for (bool r : {false, true}) {
            const StepPrediction p =
                predict_step(c, micro_batch, seq_len, accumulation, r, d, matmul_eff, attention_eff);
            const bool fits = double((r ? rec : full).total_bytes()) <= kMemoryBudgetFraction * d.mem_bytes;
            s << fmt("  %-17s %-9s %9.4g %11.0f %5.1f%% %8.4g %10.4g %7.4g %10.4g%s\n", name, r ? "yes" : "no",
                     p.step_seconds * 1e3, p.tokens_per_second, p.mfu * 100, p.matmul_seconds * 1e3,
                     p.attention_seconds * 1e3, p.memory_bound_seconds * 1e3, p.optimizer_seconds * 1e3,
                     fits ? "" : "  (does not fit)");
        }
    }
    s << "  These are predictions from roofline bounds and the efficiencies above (kernel launches and\n"
         "  overlap ignored), not measurements.\n";
    return s.str();
}

}  // namespace llama
