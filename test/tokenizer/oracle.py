"""Encodes text files with the reference tokenizers and writes their ids.

For each TEXT file it writes, in OUT_DIR, one file per reference with the ids
space-separated on one line (no BOS/EOS, special-token text encoded as text):
  NAME.llama3-tiktoken  Meta's Llama 3 tokenizer (llama_models.llama3.tokenizer:
                        tiktoken, the Llama 3 pattern, 256 special tokens), on the
                        package's own tokenizer.model
  NAME.llama3-hf        Hugging Face tokenizers on TOKENIZERS_DIR/llama3/tokenizer.json
  NAME.gpt2-tiktoken    tiktoken's r50k_base (ranks checked by SHA-256, from the cache
                        that scripts/get-tokenizers fills)
  NAME.gpt2-hf          Hugging Face tokenizers on TOKENIZERS_DIR/gpt2/tokenizer.json
NAME is the file name without its extension.

Usage: python test/tokenizer/oracle.py TOKENIZERS_DIR OUT_DIR TEXT...
"""
import os
import sys


def reference(model, impl, tokenizers_dir):
    """One reference tokenizer: for impl "tiktoken" a tiktoken Encoding (Meta's
    for llama3, r50k_base for gpt2), for impl "hf" a tokenizers.Tokenizer on
    TOKENIZERS_DIR/MODEL/tokenizer.json. Libraries are imported here, so a
    caller can set their environment (thread counts) first."""
    if impl == "tiktoken":
        # r50k_base reads its ranks, offline, from the cache that
        # scripts/get-tokenizers filled (tiktoken checks their SHA-256).
        os.environ["TIKTOKEN_CACHE_DIR"] = os.path.abspath(os.path.join(tokenizers_dir, "tiktoken-cache"))
        import tiktoken
        if model == "llama3":
            from llama_models.llama3.tokenizer import Tokenizer as MetaTokenizer

            # Meta's class wraps a tiktoken Encoding (its tokenizer.model, the
            # Llama 3 pattern, 256 special tokens). Its encode() cuts long texts
            # into 400,000-character pieces (a tiktoken limit of old), which
            # would split words, so callers use the Encoding on the whole text.
            return MetaTokenizer.get_instance().model
        return tiktoken.get_encoding("r50k_base")
    if impl == "hf":
        from tokenizers import Tokenizer

        return Tokenizer.from_file(os.path.join(tokenizers_dir, model, "tokenizer.json"))
    raise SystemExit(f"oracle.py: unknown reference {impl}")


def references(tokenizers_dir):
    """Every reference as name -> function from text to ids."""
    out = {}
    for model in ["llama3", "gpt2"]:
        enc = reference(model, "tiktoken", tokenizers_dir)
        hf = reference(model, "hf", tokenizers_dir)
        out[f"{model}-tiktoken"] = enc.encode_ordinary
        out[f"{model}-hf"] = lambda text, hf=hf: hf.encode(text, add_special_tokens=False).ids
    return out


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    tokenizers_dir, out_dir, texts = sys.argv[1], sys.argv[2], sys.argv[3:]
    refs = references(tokenizers_dir)
    for path in texts:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        name = os.path.splitext(os.path.basename(path))[0]
        for ref, encode in refs.items():
            with open(os.path.join(out_dir, f"{name}.{ref}"), "w") as f:
                f.write(" ".join(map(str, encode(text))) + "\n")


if __name__ == "__main__":
    main()
