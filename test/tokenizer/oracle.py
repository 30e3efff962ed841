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


def references(tokenizers_dir):
    os.environ["TIKTOKEN_CACHE_DIR"] = os.path.abspath(os.path.join(tokenizers_dir, "tiktoken-cache"))
    import tiktoken
    from llama_models.llama3.tokenizer import Tokenizer as MetaTokenizer
    from tokenizers import Tokenizer

    meta = MetaTokenizer.get_instance()
    r50k = tiktoken.get_encoding("r50k_base")
    hf_l3 = Tokenizer.from_file(os.path.join(tokenizers_dir, "llama3", "tokenizer.json"))
    hf_g2 = Tokenizer.from_file(os.path.join(tokenizers_dir, "gpt2", "tokenizer.json"))
    # The whole text in one call: Meta's Tokenizer.encode cuts long texts into
    # 400,000-character pieces (a tiktoken limit of old), which would split words.
    return {
        "llama3-tiktoken": lambda text: meta.model.encode_ordinary(text),
        "llama3-hf": lambda text: hf_l3.encode(text, add_special_tokens=False).ids,
        "gpt2-tiktoken": lambda text: r50k.encode_ordinary(text),
        "gpt2-hf": lambda text: hf_g2.encode(text, add_special_tokens=False).ids,
    }


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
