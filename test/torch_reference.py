#!/usr/bin/env python3
"""An independent Llama implementation in PyTorch (float64, autograd), used to
check the C++ reference: it reads a case directory written by the C++ test
(config, named parameters, token batches, optimizer settings), then writes the
loss and every gradient at the initial weights, and the weights after a few
AdamW steps with global-norm clipping.

Usage: torch_reference.py CASE_DIR

Reads  CASE_DIR/case.json, params.f64 (float64, layout order), tokens.i32 and
       targets.i32 (int32, [steps, B, T]; target -1 is ignored), and, when
       case.json has "doc_starts": true, doc_starts.i32 (int32, [steps, B, T]:
       the position where each token's document begins, for documents packed
       into a sequence; each document attends only to itself and its RoPE
       positions count from 0).
Writes CASE_DIR/result.json (losses, gradient norms), grads.f64 (gradient at
       the initial weights on batch 0), params_after.f64 (after `steps` steps),
       rope_q.f64 and rope_k.f64 (batch 0's queries and keys after RoPE, every
       layer: [layers, B, T, heads, head_dim]; the loss alone does not show
       RoPE positions that are all shifted by the same amount within a document,
       since attention scores depend only on the difference of positions).
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rope_inv_freq(cfg):
    dim, theta = cfg["head_dim"], cfg["rope_theta"]
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    rs = cfg["rope_scaling"]
    if not rs["enabled"]:
        return inv
    # Llama 3.1: keep short wavelengths, divide long ones by `factor`, blend between.
    old_len = rs["original_max_position"]
    low_wavelen = old_len / rs["low_freq_factor"]
    high_wavelen = old_len / rs["high_freq_factor"]
    out = []
    for f in inv.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / rs["factor"])
        else:
            smooth = (old_len / wavelen - rs["low_freq_factor"]) / (rs["high_freq_factor"] - rs["low_freq_factor"])
            out.append((1 - smooth) * f / rs["factor"] + smooth * f)
    return torch.tensor(out)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def document_lengths(starts):
    """The lengths of the documents one sequence packs, from its doc starts
    (a document begins wherever a token's start is its own position)."""
    T = len(starts)
    assert starts[0] == 0, "a sequence must begin a document"
    begins = [t for t in range(T) if starts[t] == t]
    for t in range(T):
        assert t == 0 or starts[t] in (t, starts[t - 1]), f"bad document start {starts[t]} at position {t}"
    return [end - begin for begin, end in zip(begins, begins[1:] + [T])]


def packing(doc_starts, B, T):
    """[B, T, T] boolean attention mask (block diagonal: one causal block per
    document) and [B, T] RoPE position ids (0, 1, ... within each document).
    doc_starts None: each sequence is one document."""
    masks, positions = [], []
    for b in range(B):
        lengths = [T] if doc_starts is None else document_lengths(doc_starts[b].tolist())
        masks.append(torch.block_diag(*[torch.ones(n, n).tril() for n in lengths]).bool())
        positions.append(torch.cat([torch.arange(n) for n in lengths]))
    return torch.stack(masks), torch.stack(positions)


def forward(P, cfg, tokens, targets, doc_starts=None, rotated=None):
    B, T = tokens.shape
    H, KV, D, eps = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"], cfg["norm_eps"]
    mask, pos = packing(doc_starts, B, T)
    angles = pos.to(torch.float64)[..., None] * rope_inv_freq(cfg)  # [B, T, D/2]
    cos = torch.cat((angles, angles), dim=-1).cos()[:, None]  # [B, 1, T, D], broadcast over heads
    sin = torch.cat((angles, angles), dim=-1).sin()[:, None]
    mask = mask[:, None]  # [B, 1, T, T]

    x = P["model.embed_tokens.weight"][tokens]
    for layer in range(cfg["n_layers"]):
        pre = f"model.layers.{layer}."

        def linear(name, inp):
            return F.linear(inp, P[pre + name + ".weight"], P.get(pre + name + ".bias"))

        h = rms_norm(x, P[pre + "input_layernorm.weight"], eps)
        q = linear("self_attn.q_proj", h).view(B, T, H, D)
        k = linear("self_attn.k_proj", h).view(B, T, KV, D)
        v = linear("self_attn.v_proj", h).view(B, T, KV, D)
        if cfg["qk_norm"]:
            q = rms_norm(q, P[pre + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, P[pre + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, T, D]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if rotated is not None:
            rotated.append((q.detach().transpose(1, 2), k.detach().transpose(1, 2)))
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        scores = scores.masked_fill(~mask, float("-inf"))
        y = scores.softmax(dim=-1) @ v
        x = x + linear("self_attn.o_proj", y.transpose(1, 2).reshape(B, T, H * D))
        h = rms_norm(x, P[pre + "post_attention_layernorm.weight"], eps)
        x = x + linear("mlp.down_proj", F.silu(linear("mlp.gate_proj", h)) * linear("mlp.up_proj", h))
    x = rms_norm(x, P["model.norm.weight"], eps)
    head = P["lm_head.weight"] if "lm_head.weight" in P else P["model.embed_tokens.weight"]
    logits = x @ head.T
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)


def main():
    case_dir = sys.argv[1]
    with open(f"{case_dir}/case.json") as f:
        case = json.load(f)
    cfg, hyper = case["config"], case["hyper"]
    steps, B, T = case["steps"], case["B"], case["T"]
    flat = np.fromfile(f"{case_dir}/params.f64", dtype=np.float64)
    assert flat.size == case["total"], "params.f64 has the wrong size"
    tokens = torch.from_numpy(np.fromfile(f"{case_dir}/tokens.i32", dtype=np.int32).astype(np.int64)).view(steps, B, T)
    targets = torch.from_numpy(np.fromfile(f"{case_dir}/targets.i32", dtype=np.int32).astype(np.int64)).view(steps, B, T)
    doc_starts = [None] * steps
    if case.get("doc_starts"):
        doc_starts = torch.from_numpy(np.fromfile(f"{case_dir}/doc_starts.i32", dtype=np.int32).astype(np.int64))
        doc_starts = doc_starts.view(steps, B, T)

    P = {}
    for t in case["tensors"]:
        data = flat[t["offset"]:t["offset"] + t["numel"]].reshape(t["shape"])
        P[t["name"]] = torch.tensor(data, requires_grad=True)
    decay = [P[t["name"]] for t in case["tensors"] if t["decay"]]
    no_decay = [P[t["name"]] for t in case["tensors"] if not t["decay"]]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hyper["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"])

    losses, norms = [], []
    for step in range(steps):
        opt.zero_grad()
        rotated = []
        loss = forward(P, cfg, tokens[step], targets[step], doc_starts[step], rotated)
        loss.backward()
        if step == 0:
            grads = np.zeros(case["total"])
            for t in case["tensors"]:
                grads[t["offset"]:t["offset"] + t["numel"]] = P[t["name"]].grad.numpy().reshape(-1)
            grads.tofile(f"{case_dir}/grads.f64")
            torch.stack([q for q, _ in rotated]).numpy().tofile(f"{case_dir}/rope_q.f64")
            torch.stack([k for _, k in rotated]).numpy().tofile(f"{case_dir}/rope_k.f64")
        norm = torch.nn.utils.clip_grad_norm_(list(P.values()), hyper["max_norm"])
        losses.append(loss.item())
        norms.append(norm.item())
        opt.step()

    after = np.zeros(case["total"])
    for t in case["tensors"]:
        after[t["offset"]:t["offset"] + t["numel"]] = P[t["name"]].detach().numpy().reshape(-1)
    after.tofile(f"{case_dir}/params_after.f64")
    with open(f"{case_dir}/result.json", "w") as f:
        json.dump({"losses": losses, "grad_norms": norms, "torch": torch.__version__}, f)


if __name__ == "__main__":
    main()
