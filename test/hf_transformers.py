"""The transformers side of test/test-hf-transformers: loads Hugging Face
folders with AutoModelForCausalLM (float32, CPU, trust_remote_code=True: the
open-sci-ref exports are OpenSciForCausalLM, their code in the folder), compares
their logits and greedy generations with this library's (build/generate
--logits), writes randomly initialised LlamaForCausalLM and OpenSciForCausalLM
(lifecycle/hf/modeling_opensci.py) folders with save_pretrained, and plants
mistakes in exported folders.

Runs with .venv-hf's python (transformers 4.49 on Debian's torch 1.13; see
requirements-hf.txt). The models are byte-level: the prompt's token ids are
its UTF-8 bytes, as build/generate reads a prompt without a tokenizer.

  compare DIR PROMPT LOGITS [--tolerance T]   logits at every prompt position
  greedy DIR PROMPT TOKENS OUTPUT             greedy generate() against generate's output
  random DIR --kv-heads K [--untied] [--bias] [--rope-scaling] [--opensci] [--seed S]
  same DIR_A DIR_B                            the two folders' tensors are equal
  plant-qk SRC DST                            q and k rows in llama.cpp's interleaved order
  plant-rope SRC DST (rename|drop)            rope_scaling with a key renamed, or dropped
  plant-opensci SRC DST                       OpenSciForCausalLM folders DST-after-rope (QK-norm
                                              after RoPE in the modeling file), DST-no-key (no
                                              qk_layernorm in config.json), DST-swap-norms (q_norm
                                              and k_norm weights swapped)
"""
import argparse
import importlib
import json
import os
import shutil
import sys
import types

import numpy as np
from safetensors.numpy import load_file, save_file

# OpenSciForCausalLM's configuration and modeling files, as the export writes them.
OPENSCI_CODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lifecycle", "hf")


def import_torch():
    """torch and transformers, imported only by the commands that run a model
    (about 1.5 s of every call; the others need numpy alone)."""
    global torch, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.set_num_threads(1)


def load(folder):
    """The folder as transformers loads it: float32, CPU, inference mode."""
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, trust_remote_code=True)
    model.eval()
    return model


def prompt_ids(prompt):
    return list(prompt.encode("utf-8"))


def compare(args):
    model = load(args.dir)
    ids = prompt_ids(args.prompt)
    with torch.no_grad():
        theirs = model(torch.tensor([ids])).logits[0].numpy()
    ours = np.fromfile(args.logits, dtype="<f4")
    if ours.size != theirs.size:
        print(f"compare: {args.logits} holds {ours.size} floats, transformers gives {theirs.shape}")
        return 1
    ours = ours.reshape(theirs.shape)
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    worst = float(diff.max())
    position = int(diff.max(axis=1).argmax())
    print(f"compare: {args.dir} ({type(model).__name__}): largest logit difference {worst:.2e} (position {position}) over "
          f"{theirs.shape[0]} positions x {theirs.shape[1]} logits, largest |logit| {np.abs(theirs).max():.2f}, "
          f"limit {args.tolerance:g}")
    return 0 if worst <= args.tolerance else 1


def greedy(args):
    model = load(args.dir)
    # No end-of-sequence token: build/generate stops only after --tokens.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    ids = prompt_ids(args.prompt)
    with torch.no_grad():
        # synced_gpus=False: otherwise generate() imports torch.distributed.fsdp,
        # which torch 1.13 cannot import on Python 3.11.
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=args.tokens, do_sample=False, synced_gpus=False)
    theirs = bytes(out[0].tolist()) + b"\n"  # generate prints the prompt, the new bytes, a newline
    with open(args.output, "rb") as f:
        ours = f.read()
    print(f"greedy: transformers {theirs[len(ids):-1]!r}")
    print(f"greedy: generate     {ours[len(ids):-1]!r}")
    return 0 if ours == theirs else 1


def opensci_classes():
    """OpenSciConfig and OpenSciForCausalLM from lifecycle/hf/, imported as the
    package opensci_code (the modeling file imports its configuration as
    `.configuration_opensci`, as in the exported folders), and registered for
    the Auto classes: save_pretrained then copies both files into the folder
    and writes their auto_map into config.json."""
    if "opensci_code" not in sys.modules:
        package = types.ModuleType("opensci_code")
        package.__path__ = [OPENSCI_CODE]
        sys.modules["opensci_code"] = package
    config_class = importlib.import_module("opensci_code.configuration_opensci").OpenSciConfig
    model_class = importlib.import_module("opensci_code.modeling_opensci").OpenSciForCausalLM
    config_class.register_for_auto_class()
    model_class.register_for_auto_class("AutoModelForCausalLM")
    return config_class, model_class


def random_model(args):
    """A small LlamaForCausalLM (or OpenSciForCausalLM, with QK-norm) with
    every parameter random at a scale where mistakes show in the logits
    (transformers' own initialisation, std 0.02, gives logits near zero; the
    norms' weights start at 1, where QK-norm before and after RoPE agree)."""
    torch.manual_seed(args.seed)
    rope_scaling = None
    if args.rope_scaling:
        # Llama 3.1's scaling, its original context short enough that every
        # frequency band (kept, smoothed, divided) occurs at head_dim 16.
        rope_scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 64}
    config_class, model_class, extra = LlamaConfig, LlamaForCausalLM, {}
    if args.opensci:
        (config_class, model_class), extra = opensci_classes(), {"qk_layernorm": True}
    config = config_class(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=args.kv_heads, head_dim=16,
                         max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=500000.0,
                         rope_scaling=rope_scaling, tie_word_embeddings=not args.untied,
                         attention_bias=args.bias, mlp_bias=args.bias, **extra)
    model = model_class(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
    model.save_pretrained(args.dir, safe_serialization=True)
    print(f"random: {args.dir}: {type(model).__name__}, {sum(p.numel() for p in model.parameters())} parameters")
    return 0


def same(args):
    a = load_file(os.path.join(args.a, "model.safetensors"))
    b = load_file(os.path.join(args.b, "model.safetensors"))
    # A tied head may be stored or left out; every tensor both hold must match.
    names = sorted(set(a) & set(b))
    missing = sorted((set(a) ^ set(b)) - {"lm_head.weight"})
    if missing:
        print(f"same: only one folder holds {missing}")
        return 1
    worst = max(float(np.abs(a[n].astype(np.float64) - b[n]).max()) for n in names)
    print(f"same: {len(names)} tensors, largest difference {worst:g}")
    return 0 if worst == 0 else 1


def plant_qk(args):
    """Puts the rows of every q and k projection (and bias) in llama.cpp's
    interleaved RoPE order, as a Hugging Face export that forgot which layout it
    writes would: without RoPE the attention scores would not change."""
    shutil.copytree(args.src, args.dst)
    with open(os.path.join(args.src, "config.json")) as f:
        config = json.load(f)
    d = config["head_dim"]
    tensors = load_file(os.path.join(args.src, "model.safetensors"))
    for name in tensors:
        if ".q_proj." in name or ".k_proj." in name:
            heads = tensors[name].shape[0] // d
            half = np.arange(d // 2)
            within = np.stack([half, half + d // 2], axis=1).reshape(-1)  # new row 2i: old i; 2i+1: old i + d/2
            rows = (np.arange(heads)[:, None] * d + within[None, :]).reshape(-1)
            tensors[name] = np.ascontiguousarray(tensors[name][rows])
    save_file(tensors, os.path.join(args.dst, "model.safetensors"), metadata={"format": "pt"})
    return 0


def plant_rope(args):
    """rope_scaling with original_max_position_embeddings written under this
    library's own name for it (rename), or left out of config.json (drop)."""
    shutil.copytree(args.src, args.dst)
    path = os.path.join(args.dst, "config.json")
    with open(path) as f:
        config = json.load(f)
    if args.how == "rename":
        rs = config["rope_scaling"]
        rs["original_max_position"] = rs.pop("original_max_position_embeddings")
    else:
        config["rope_scaling"] = None
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return 0


# The QK-norm lines of OpenSciAttention.forward, and RoPE's (lifecycle/hf/modeling_opensci.py).
QK_NORM_BEFORE_ROPE = """        if self.qk_layernorm:
            # The last dimension is one head's vector: each is normalised alone.
            q = self.q_norm(q)
            k = self.k_norm(k)
"""
ROPE = """        q, k = apply_rotary_pos_emb(q, k, cos, sin)
"""


def plant_opensci(args):
    """Three copies of an OpenSciForCausalLM folder, each with a mistake:
    DST-after-rope: the modeling file's QK-norm moved after RoPE (RoPE keeps each
      head's RMS: only the norm weights, no longer 1 after training, tell the two apart);
    DST-no-key: qk_layernorm left out of config.json (the model loads without the
      norms, their weights unused);
    DST-swap-norms: the q and k norm weights swapped in the safetensors."""
    dst = {how: f"{args.dst}-{how}" for how in ("after-rope", "no-key", "swap-norms")}
    for folder in dst.values():
        shutil.copytree(args.src, folder)
    path = os.path.join(dst["after-rope"], "modeling_opensci.py")
    with open(path) as f:
        code = f.read()
    if code.count(QK_NORM_BEFORE_ROPE) != 1 or code.count(ROPE) != 1:
        print(f"plant-opensci: {path} does not hold the expected QK-norm and RoPE lines")
        return 1
    code = code.replace(QK_NORM_BEFORE_ROPE, "").replace(
        ROPE, ROPE + "        if self.qk_layernorm:\n            q, k = self.q_norm(q), self.k_norm(k)\n")
    with open(path, "w") as f:
        f.write(code)
    path = os.path.join(dst["no-key"], "config.json")
    with open(path) as f:
        config = json.load(f)
    del config["qk_layernorm"]
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    path = os.path.join(dst["swap-norms"], "model.safetensors")
    tensors = load_file(path)
    for name in [n for n in tensors if n.endswith("self_attn.q_norm.weight")]:
        k_name = name.replace("q_norm", "k_norm")
        tensors[name], tensors[k_name] = tensors[k_name], tensors[name]
    save_file(tensors, path, metadata={"format": "pt"})
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare")
    p.add_argument("dir")
    p.add_argument("prompt")
    p.add_argument("logits")
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.set_defaults(run=compare)
    p = sub.add_parser("greedy")
    p.add_argument("dir")
    p.add_argument("prompt")
    p.add_argument("tokens", type=int)
    p.add_argument("output")
    p.set_defaults(run=greedy)
    p = sub.add_parser("random")
    p.add_argument("dir")
    p.add_argument("--kv-heads", type=int, required=True)
    p.add_argument("--untied", action="store_true")
    p.add_argument("--bias", action="store_true")
    p.add_argument("--rope-scaling", action="store_true")
    p.add_argument("--opensci", action="store_true", help="OpenSciForCausalLM with qk_layernorm")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=random_model)
    p = sub.add_parser("same")
    p.add_argument("a")
    p.add_argument("b")
    p.set_defaults(run=same)
    p = sub.add_parser("plant-qk")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(run=plant_qk)
    p = sub.add_parser("plant-rope")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("how", choices=["rename", "drop"])
    p.set_defaults(run=plant_rope)
    p = sub.add_parser("plant-opensci")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(run=plant_opensci)
    args = ap.parse_args()
    if args.run in (compare, greedy, random_model):
        import_torch()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
