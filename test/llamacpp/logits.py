"""Runs a GGUF model with llama.cpp and writes what it computes, as an oracle.

llama.cpp is an implementation of Llama written by other people: if it reads a
GGUF file exported by this library and computes the same logits as this
library's own forward pass, then the export (tensor names, shapes, the q/k row
permutation, RoPE frequencies, metadata) is right. This script drives llama.cpp
through llama-cpp-python on the CPU and writes:

  logits     the logits at every position of a token sequence (one row per
             token, the whole vocabulary), from one batch of all the tokens;
  greedy     N_GREEDY tokens continuing the sequence, chosen by llama.cpp's own
             greedy sampler (temperature 0), starting from an empty KV cache;
  tokenized  llama.cpp's tokenization of TEXT_FILE (no BOS, special tokens read
             as plain text), using the tokenizer metadata in the GGUF file.

The settings are the ones that make the comparison exact enough for 1e-4: the
CPU backend, one thread, the KV cache in F32 (the default F16 cache would round
keys and values), and flash attention off (it accumulates in another order).

Usage: logits.py [--plant-qk] MODEL.gguf TOKENS.json OUT.json [N_GREEDY [TEXT_FILE]]
  TOKENS.json: [id, id, ...]
  OUT.json:    {"logits": [[...], ...], "greedy": [...], "tokenized": [...]}

--plant-qk first rewrites MODEL.gguf in place with the rows of
blk.0.attn_q.weight put back in Hugging Face's rotate-half order, undoing the
export's permutation to llama.cpp's interleaved RoPE pairs. It is a planted
mistake: the tests use it to show that the logit comparison notices a wrong
permutation.

llama.cpp's log stays quiet (errors only) unless the environment sets LLAMA_LOG.
"""

import argparse
import json
import os
import sys

import numpy as np


def plant_qk(model_path):
    """Undoes the q row permutation of layer 0, in place."""
    import gguf

    reader = gguf.GGUFReader(model_path, "r+")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    n_head = reader.get_field(gguf.Keys.Attention.HEAD_COUNT.format(arch=arch)).contents()
    name = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ATTN_Q].format(bid=0) + ".weight"
    tensor = next(t for t in reader.tensors if t.name == name)
    # The reader shows the data row-major, as PyTorch would: [n_head * head_dim, d_model].
    w = tensor.data
    rows, width = w.shape
    head_dim = rows // n_head
    # Within each head the export wrote row 2i = original row i and row 2i + 1 =
    # original row i + head_dim/2. Viewing a head as [head_dim/2, 2] and
    # transposing to [2, head_dim/2] gives back the original order.
    original = w.reshape(n_head, head_dim // 2, 2, width).transpose(0, 2, 1, 3).reshape(rows, width).copy()
    w[...] = original  # writes through the memory map into the file
    reader.data.flush()
    print(f"planted: {name} rows back in rotate-half order ({n_head} heads of {head_dim})")


def main():
    parser = argparse.ArgumentParser(
        description="llama.cpp's logits, greedy continuation and tokenization for a GGUF model")
    parser.add_argument("--plant-qk", action="store_true", help="first undo the q row permutation of layer 0 in MODEL")
    parser.add_argument("model")
    parser.add_argument("tokens")
    parser.add_argument("out")
    parser.add_argument("n_greedy", nargs="?", type=int, default=0)
    parser.add_argument("text_file", nargs="?")
    args = parser.parse_args()

    with open(args.tokens) as f:
        tokens = [int(t) for t in json.load(f)]
    if not tokens:
        sys.exit("logits.py: TOKENS.json holds no tokens")
    if args.plant_qk:
        plant_qk(args.model)

    import llama_cpp

    verbose = bool(os.environ.get("LLAMA_LOG"))
    # Room for the sequence and the continuation; one batch (and one micro-batch)
    # holds all the tokens, so llama.cpp evaluates them in a single pass.
    n_ctx = max(64, len(tokens) + args.n_greedy + 8)
    llm = llama_cpp.Llama(
        model_path=args.model,
        n_gpu_layers=0,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=n_ctx,
        n_threads=1,
        n_threads_batch=1,
        logits_all=True,  # a row of logits for every token of a batch, not only the last
        flash_attn=False,
        type_k=llama_cpp.GGML_TYPE_F32,
        type_v=llama_cpp.GGML_TYPE_F32,
        verbose=verbose,
    )
    n_vocab = llm.n_vocab()

    # Logits at every position: evaluate the whole sequence; llm.scores holds one
    # row per evaluated token (position t predicts token t + 1).
    llm.reset()
    llm.eval(tokens)
    if llm.n_tokens != len(tokens):
        sys.exit(f"logits.py: llama.cpp evaluated {llm.n_tokens} tokens, not {len(tokens)}")
    logits = np.array(llm.scores[: len(tokens), :n_vocab], dtype=np.float32)
    # A row never written would still hold whatever the buffer held: each row
    # of a real forward pass is finite and differs from its neighbour.
    if not np.isfinite(logits).all():
        sys.exit("logits.py: llama.cpp returned non-finite logits")
    if len(tokens) > 1 and any(np.array_equal(logits[t], logits[t + 1]) for t in range(len(tokens) - 1)):
        sys.exit("logits.py: two positions have identical logits; not one row per position")

    # Greedy continuation by llama.cpp's sampler chain with temperature 0 (its
    # greedy sampler: the most probable token), from an empty KV cache. The
    # repeat penalty of 1 is no penalty. It does not stop at an end-of-sequence
    # token: the test compares exactly N_GREEDY tokens.
    greedy = []
    if args.n_greedy > 0:
        llm.reset()
        for token in llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
            greedy.append(int(token))
            if len(greedy) >= args.n_greedy:
                break

    # llama.cpp's tokenizer, from the GGUF metadata: no BOS, no special tokens.
    tokenized = []
    if args.text_file:
        with open(args.text_file, "rb") as f:
            tokenized = [int(t) for t in llm.tokenize(f.read(), add_bos=False, special=False)]

    with open(args.out, "w") as f:
        json.dump({"logits": logits.tolist(), "greedy": greedy, "tokenized": tokenized}, f)
    llm.close()


if __name__ == "__main__":
    main()
