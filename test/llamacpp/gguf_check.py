"""Checks a GGUF file against what llama.cpp expects, with llama.cpp's own gguf package.

The GGUF writer of this library (lifecycle/gguf.cpp, lifecycle/export.cpp) and
the expectation below are both ours; the names they must agree on are not. The
metadata keys come from gguf.Keys, the tensor names from gguf.TENSOR_NAMES and
the list of tensors the llama architecture may have (gguf.MODEL_TENSORS), and
the file is parsed by gguf.GGUFReader. So a misspelled key, a tensor under a
wrong name, a shape in the wrong order or a value written with the wrong type
shows up here, with the offending entry named.

Usage: gguf_check.py MODEL.gguf EXPECT.json

EXPECT.json, written by the C++ test from the model's config and vocabulary:
  {"architecture": "llama", "name": str, "n_layers": int, "d_model": int,
   "n_heads": int, "n_kv_heads": int, "head_dim": int, "ffn_hidden": int,
   "context_length": int, "rope_theta": float, "rms_eps": float,
   "vocab_size": int, "tied_embeddings": bool, "bias": bool,
   "rope_scaling": null or {"factor", "low_freq_factor", "high_freq_factor",
                            "original_max_position"},
   "tokenizer": {"model": "gpt2", "pre": str, "n_tokens": int (before padding),
                 "n_merges": int or absent, "bos": int, "eos": int (-1: none)}}

What is checked, one printed line per check:
  - the header: GGUF version 3, the tensor count, the data section and each
    tensor in it aligned to general.alignment;
  - every metadata value (and its GGUF type), and that the file has exactly
    the expected keys, no others;
  - the tensor names are exactly the expected set: for each block the attention
    and feed-forward tensors of the llama architecture, the output head only
    when the embeddings are untied, biases only with bias, rope_freqs only with
    RoPE scaling;
  - each tensor is F32, finite, and has the shape llama.cpp asks for, in GGUF's
    order (fastest-varying dimension first: token_embd is [d_model, vocab]);
  - rope_freqs holds the Llama 3.1 scaling factors (llama.cpp divides each RoPE
    frequency by its factor), computed here from the scaling parameters;
  - the tokenizer metadata: its model and pre-tokenizer, one token (and token
    type) per vocabulary entry with the padding marked unused, the number of
    merges, BOS/EOS, and no BOS added.
It ends with "gguf: N checks passed", or the mismatches and a non-zero exit.
"""

import json
import math
import sys

import numpy as np

import gguf


class Checker:
    """Runs checks, printing one line each, and counts the failures."""

    def __init__(self):
        self.passed = 0
        self.failed = []

    def check(self, ok, what, detail=""):
        line = f"{what}: {detail}" if detail else what
        if ok:
            self.passed += 1
            print(f"ok       {line}")
        else:
            self.failed.append(line)
            print(f"MISMATCH {line}")
        return ok


def llama3_rope_factors(head_dim, theta, scaling):
    """The divisor of each RoPE frequency under Llama 3.1 scaling.

    Frequencies whose wavelength is short next to the original context keep
    their value (factor 1); long ones are divided by `factor`; in between the
    two, the divisor blends smoothly from one to the other.
    """
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    original = scaling["original_max_position"]
    out = []
    for i in range(0, head_dim, 2):
        freq = theta ** (-i / head_dim)
        wavelength = 2 * math.pi / freq
        if wavelength < original / high:
            out.append(1.0)
        elif wavelength > original / low:
            out.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return out


def expected_tensors(e):
    """Tensor name -> shape in GGUF order, for the expectation `e`."""
    arch = gguf.MODEL_ARCH.LLAMA
    allowed = set(gguf.MODEL_TENSORS[arch])
    T = gguf.MODEL_TENSOR
    d, v, f = e["d_model"], e["vocab_size"], e["ffn_hidden"]
    q, kv = e["n_heads"] * e["head_dim"], e["n_kv_heads"] * e["head_dim"]

    def name(kind, suffix, bid=None):
        # The package says which tensors the llama architecture has, and their names.
        if kind not in allowed:
            raise SystemExit(f"gguf_check.py: {kind} is not a tensor of the llama architecture")
        base = gguf.TENSOR_NAMES[kind]
        return (base.format(bid=bid) if bid is not None else base) + "." + suffix

    shapes = {name(T.TOKEN_EMBD, "weight"): [d, v], name(T.OUTPUT_NORM, "weight"): [d]}
    if not e["tied_embeddings"]:
        shapes[name(T.OUTPUT, "weight")] = [d, v]
    if e["rope_scaling"] is not None:
        shapes[name(T.ROPE_FREQS, "weight")] = [e["head_dim"] // 2]
    # A linear layer y = W x with W of PyTorch shape [out, in] is [in, out] in GGUF.
    linear = {T.ATTN_Q: (d, q), T.ATTN_K: (d, kv), T.ATTN_V: (d, kv), T.ATTN_OUT: (q, d),
              T.FFN_GATE: (d, f), T.FFN_UP: (d, f), T.FFN_DOWN: (f, d)}
    for b in range(e["n_layers"]):
        shapes[name(T.ATTN_NORM, "weight", b)] = [d]
        shapes[name(T.FFN_NORM, "weight", b)] = [d]
        for kind, (n_in, n_out) in linear.items():
            shapes[name(kind, "weight", b)] = [n_in, n_out]
            if e["bias"]:
                shapes[name(kind, "bias", b)] = [n_out]
    return shapes


def field_value(field):
    """(value, GGUF type) of a metadata field; an array gives its length and its element type."""
    kind = field.types[0]
    if kind == gguf.GGUFValueType.ARRAY:
        # A key-value field's parts: key length, key, value type, then for an
        # array its element type and length (present even when it is empty).
        element = gguf.GGUFValueType(int(field.parts[3][0]))
        return len(field.data), f"ARRAY of {element.name}"
    return field.contents(), kind.name


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gguf_check.py MODEL.gguf EXPECT.json")
    path, expect_path = sys.argv[1], sys.argv[2]
    with open(expect_path) as fp:
        e = json.load(fp)
    # The tensor list below is the llama architecture's; nothing else is exported.
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA]
    if e["architecture"] != arch:
        sys.exit(f"gguf_check.py: only the {arch} architecture is checked, not {e['architecture']}")
    reader = gguf.GGUFReader(path)
    c = Checker()
    K = gguf.Keys

    # --- header -------------------------------------------------------------------
    version = reader.get_field("GGUF.version").contents()
    c.check(version == gguf.GGUF_VERSION, "GGUF version", f"{version} (expected {gguf.GGUF_VERSION})")
    count = reader.get_field("GGUF.tensor_count").contents()
    c.check(count == len(reader.tensors), "tensor count in the header", f"{count}, {len(reader.tensors)} read")
    # The reader takes the alignment from general.alignment (checked below).
    misaligned = [t.name for t in reader.tensors if (t.data_offset - reader.data_offset) % reader.alignment]
    if reader.data_offset % reader.alignment:
        misaligned.insert(0, "the data section")
    c.check(not misaligned, f"tensor data aligned to {reader.alignment} bytes",
            "all" if not misaligned else "not: " + ", ".join(misaligned))

    # --- metadata -----------------------------------------------------------------
    U32, F32, STR, BOOL = "UINT32", "FLOAT32", "STRING", "BOOL"
    expected = {
        K.General.ARCHITECTURE: (arch, STR),
        K.General.NAME: (e["name"], STR),
        K.General.FILE_TYPE: (int(gguf.LlamaFileType.ALL_F32), U32),
        K.General.ALIGNMENT: (gguf.GGUF_DEFAULT_ALIGNMENT, U32),
        K.LLM.CONTEXT_LENGTH.format(arch=arch): (e["context_length"], U32),
        K.LLM.EMBEDDING_LENGTH.format(arch=arch): (e["d_model"], U32),
        K.LLM.BLOCK_COUNT.format(arch=arch): (e["n_layers"], U32),
        K.LLM.FEED_FORWARD_LENGTH.format(arch=arch): (e["ffn_hidden"], U32),
        K.LLM.VOCAB_SIZE.format(arch=arch): (e["vocab_size"], U32),
        K.Attention.HEAD_COUNT.format(arch=arch): (e["n_heads"], U32),
        K.Attention.HEAD_COUNT_KV.format(arch=arch): (e["n_kv_heads"], U32),
        K.Attention.KEY_LENGTH.format(arch=arch): (e["head_dim"], U32),
        K.Attention.VALUE_LENGTH.format(arch=arch): (e["head_dim"], U32),
        K.Rope.DIMENSION_COUNT.format(arch=arch): (e["head_dim"], U32),
        # Stored as float32: compare with the expected value rounded the same way.
        K.Rope.FREQ_BASE.format(arch=arch): (float(np.float32(e["rope_theta"])), F32),
        K.Attention.LAYERNORM_RMS_EPS.format(arch=arch): (float(np.float32(e["rms_eps"])), F32),
    }
    tok = e["tokenizer"]
    expected[K.Tokenizer.MODEL] = (tok["model"], STR)
    expected[K.Tokenizer.PRE] = (tok["pre"], STR)
    # One token and one token type per row of the embedding, padding included.
    expected[K.Tokenizer.LIST] = (e["vocab_size"], "ARRAY of STRING")
    expected[K.Tokenizer.TOKEN_TYPE] = (e["vocab_size"], "ARRAY of INT32")
    if tok.get("n_merges") is not None:
        expected[K.Tokenizer.MERGES] = (tok["n_merges"], "ARRAY of STRING")
    if tok["bos"] >= 0:
        expected[K.Tokenizer.BOS_ID] = (tok["bos"], U32)
    if tok["eos"] >= 0:
        expected[K.Tokenizer.EOS_ID] = (tok["eos"], U32)
    expected[K.Tokenizer.ADD_BOS] = (False, BOOL)

    for key, (value, kind) in expected.items():
        field = reader.get_field(key)
        if field is None:
            c.check(False, key, "missing")
            continue
        got, got_kind = field_value(field)
        ok = got == value and got_kind == kind
        shown = f"{got} entries, {got_kind}" if kind.startswith("ARRAY") else f"{got!r}, {got_kind}"
        c.check(ok, key, shown + ("" if ok else f" (expected {value!r}, {kind})"))
    # No key beyond those: a stray one (say, a RoPE scaling type that would make
    # llama.cpp scale twice) fails. Merges are allowed without a count to check.
    keys = {k for k in reader.fields if not k.startswith("GGUF.")}
    optional = {K.Tokenizer.MERGES} if tok.get("n_merges") is None else set()
    extra = sorted(keys - set(expected) - optional)
    c.check(not extra, f"no other metadata keys ({len(keys)} in the file)", "none" if not extra else ", ".join(extra))

    # --- tokenizer contents ---------------------------------------------------------
    types = reader.get_field(K.Tokenizer.TOKEN_TYPE)
    if types is not None and len(types.data) == e["vocab_size"]:
        padding = types.contents()[tok["n_tokens"]:]
        unused = int(gguf.TokenType.UNUSED)
        c.check(all(t == unused for t in padding), "padding tokens marked unused",
                f"ids {tok['n_tokens']}..{e['vocab_size'] - 1}" if padding else "none to pad")

    # --- tensors ------------------------------------------------------------------
    want = expected_tensors(e)
    have = {t.name: t for t in reader.tensors}
    missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    c.check(not missing and not unexpected, f"tensor names: the {len(want)} expected",
            "exactly" if not missing and not unexpected else
            f"missing {missing or 'none'}, unexpected {unexpected or 'none'}")
    for name, shape in want.items():
        t = have.get(name)
        if t is None:
            continue
        got_shape = [int(s) for s in t.shape]
        ok = t.tensor_type == gguf.GGMLQuantizationType.F32 and got_shape == shape
        c.check(ok, name, f"{t.tensor_type.name} {got_shape}" + ("" if ok else f" (expected F32 {shape})"))
        if t.tensor_type == gguf.GGMLQuantizationType.F32 and not np.isfinite(t.data).all():
            c.check(False, name, "holds non-finite values")

    # --- RoPE scaling ---------------------------------------------------------------
    freqs_name = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"
    if e["rope_scaling"] is not None and freqs_name in have:
        want_f = np.array(llama3_rope_factors(e["head_dim"], e["rope_theta"], e["rope_scaling"]))
        got_f = np.asarray(have[freqs_name].data, dtype=np.float64).reshape(-1)
        if got_f.shape == want_f.shape:
            worst = float(np.max(np.abs(got_f - want_f) / want_f))
            c.check(worst < 1e-5, f"{freqs_name} holds the Llama 3.1 factors",
                    f"{want_f.min():g}..{want_f.max():g}, max relative difference {worst:.1e}")

    if c.failed:
        print(f"gguf: {len(c.failed)} of {c.passed + len(c.failed)} checks failed in {path}:")
        for line in c.failed:
            print(f"  {line}")
        sys.exit(1)
    print(f"gguf: {c.passed} checks passed")


if __name__ == "__main__":
    main()
