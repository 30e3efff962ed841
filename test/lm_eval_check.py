"""The Python side of test/test-lm-eval (run with .venv-hf's python).

  shorten IN OUT [--seed S]         the JSONL with every choice cut to 12 to 24
                                    characters, so that acc_norm can differ from acc,
                                    and a context's trailing spaces moved to the
                                    start of each choice
  tokenizer DIR JSONL               AutoTokenizer of an export encodes every context
                                    and context + choice as its UTF-8 bytes, with no
                                    token added (as the trainer's --text run reads them)
  compare OUTPUT_DIR TASK ACC ACC_NORM
                                    lm_eval's results for TASK (the newest results
                                    file under OUTPUT_DIR) equal the trainer's
"""
import argparse
import glob
import json
import os
import random
import sys


def shorten(args):
    rng = random.Random(args.seed)
    with open(args.src) as f, open(args.dst, "w") as out:
        for line in f:
            e = json.loads(line)
            e["choices"] = [c[:rng.randint(12, 24)] for c in e["choices"]]
            # lm_eval moves a context's trailing whitespace into every continuation
            # (api/model.py, _encode_pair): scored, but left out of acc_norm's length.
            # The trainer scores the choices as given; moved here, both score the same.
            context = e["context"].rstrip()
            spaces = e["context"][len(context):]
            e["context"] = context
            e["choices"] = [spaces + c for c in e["choices"]]
            out.write(json.dumps(e) + "\n")
    return 0


def tokenizer(args):
    from transformers import AutoTokenizer
    from transformers.utils import logging
    logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(args.dir)
    texts = []
    with open(args.jsonl) as f:
        for line in f:
            e = json.loads(line)
            texts.append(e["context"])
            texts += [e["context"] + c for c in e["choices"]]
    wrong = [t for t in texts if tok(t)["input_ids"] != list(t.encode("utf-8"))]
    print(f"tokenizer: {type(tok).__name__}, {len(tok)} tokens; {len(texts) - len(wrong)} of {len(texts)} texts "
          f"encoded as their bytes" + (f"; first not: {wrong[0]!r} -> {tok(wrong[0])['input_ids'][:8]}..." if wrong else ""))
    return 0 if not wrong else 1


def compare(args):
    files = sorted(glob.glob(os.path.join(args.output, "**", "results_*.json"), recursive=True), key=os.path.getmtime)
    if not files:
        print(f"compare: no results under {args.output}")
        return 1
    with open(files[-1]) as f:
        results = json.load(f)["results"][args.task]
    theirs = results["acc,none"], results["acc_norm,none"]
    # The trainer prints 4 decimals; n/40 needs 3.
    same = abs(theirs[0] - args.acc) < 5e-5 and abs(theirs[1] - args.acc_norm) < 5e-5
    print(f"compare: {args.task}: lm_eval acc {theirs[0]:.4f}, acc_norm {theirs[1]:.4f} "
          f"({results.get('sample_len', '?')} examples); trainer acc {args.acc:.4f}, acc_norm {args.acc_norm:.4f}")
    return 0 if same else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("shorten")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(run=shorten)
    p = sub.add_parser("tokenizer")
    p.add_argument("dir")
    p.add_argument("jsonl")
    p.set_defaults(run=tokenizer)
    p = sub.add_parser("compare")
    p.add_argument("output")
    p.add_argument("task")
    p.add_argument("acc", type=float)
    p.add_argument("acc_norm", type=float)
    p.set_defaults(run=compare)
    args = ap.parse_args()
    sys.exit(args.run(args))


if __name__ == "__main__":
    main()
