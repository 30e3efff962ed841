"""The Python half of scripts/bench-tokenizer: times the reference tokenizers
and prints the comparison tables.

  measure MODEL IMPL THREADS TOKENIZERS_DIR TEXT
      Times one reference on the text file TEXT and prints one JSON line.
      MODEL is llama3 or gpt2. IMPL is
        tiktoken  Meta's Llama 3 tokenizer (llama_models; its `.model` is a
                  tiktoken Encoding) or tiktoken's r50k_base for GPT-2
        hf        Hugging Face tokenizers on TOKENIZERS_DIR/MODEL/tokenizer.json
      THREADS 1 encodes one document after the other on this thread
      (tiktoken encode_ordinary, tokenizers encode); more uses the library's
      batch call on that many threads (encode_ordinary_batch, encode_batch).
      Run one measurement per process: the thread pool of Hugging Face
      tokenizers is sized once per process, from RAYON_NUM_THREADS.

  report RESULTS.jsonl [--markdown] [--source TEXT --source-bytes N --repeats R]
      Reads the JSON lines of every measurement (the references' and this
      project's `tokenize bench --json` lines, each with a "model" key) and
      prints one table per model, the ratios and the machine. Exits with
      status 1 when the implementations disagree on the number of tokens.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time

from oracle import reference  # test/tokenizer/oracle.py, beside this file

MODELS = {"llama3": "Llama 3", "gpt2": "GPT-2"}
OURS = "this project (tokenize bench)"


def documents(data, lines_per_doc=100):
    """Cuts the text into documents of 100 lines, exactly as `tokenize bench`
    does (tokenizer/tokenize_commands.cpp): a line ends after "\\n" (only
    "\\n": a lone "\\r" stays inside its line), and the last document holds
    what is left. The cuts fall after a "\\n", never inside a UTF-8 sequence,
    so each document decodes on its own."""
    docs, pos = [], 0
    while pos < len(data):
        end = pos
        for _ in range(lines_per_doc):
            nl = data.find(b"\n", end)
            end = len(data) if nl < 0 else nl + 1
            if end == len(data):
                break
        docs.append(data[pos:end].decode("utf-8"))
        pos = end
    return docs


def load(model, impl, tokenizers_dir):
    """Returns (name, encode_one, encode_batch, version) for one reference
    (test/tokenizer/oracle.py loads it): encode_one(doc) gives the number of
    tokens of one document, and encode_batch(docs, threads) the total over a
    list of documents. No BOS or EOS, and special-token text is encoded as
    ordinary text."""
    enc = reference(model, impl, tokenizers_dir)
    if impl == "tiktoken":
        import tiktoken

        return ("tiktoken", lambda doc: len(enc.encode_ordinary(doc)),
                # A thread pool of `threads` Python threads; tiktoken's Rust
                # code lets go of the GIL while it encodes.
                lambda docs, threads: sum(map(len, enc.encode_ordinary_batch(docs, num_threads=threads))),
                tiktoken.__version__)
    import tokenizers

    return ("HF tokenizers", lambda doc: len(enc.encode(doc, add_special_tokens=False)),
            # Rust threads of the rayon pool (RAYON_NUM_THREADS of them).
            lambda docs, threads: sum(map(len, enc.encode_batch(docs, add_special_tokens=False))),
            tokenizers.__version__)


def timed(work):
    """Runs work() once; returns its result, the wall-clock seconds and the
    CPU seconds of the whole process (all threads). CPU / wall is how many
    cores were busy on average: about 1 for a single thread."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def measure(args):
    # Hugging Face tokenizers runs encode_batch on a rayon thread pool that is
    # made once per process, at its first use, with RAYON_NUM_THREADS threads
    # (default: all cores), and only when TOKENIZERS_PARALLELISM is not false.
    # Set both before the library is loaded. On one thread both say "one":
    # encode() of a single document does not use the pool anyway, and the
    # CPU / wall ratio printed in the table shows that it stayed on one core.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if args.threads > 1 else "false"
    name, encode_one, encode_batch, version = load(args.model, args.impl, args.tokenizers_dir)
    with open(args.text, "rb") as f:
        data = f.read()
    docs = documents(data)
    if args.threads == 1:
        def work(docs):
            return sum(encode_one(d) for d in docs)
        call = "encode_ordinary" if args.impl == "tiktoken" else "encode"
    else:
        def work(docs):
            return encode_batch(docs, args.threads)
        call = "encode_ordinary_batch" if args.impl == "tiktoken" else "encode_batch"
    # Warm up once on the first 1% of the documents (loads lazily built
    # tables, starts the thread pools), then time the whole text once.
    work(docs[: max(1, len(docs) // 100)])
    tokens, seconds, cpu_seconds = timed(lambda: work(docs))
    print(json.dumps({"model": args.model, "lib": name, "impl": f"{name} {call}", "version": version, "threads": args.threads,
                      "bytes": len(data), "documents": len(docs), "tokens": tokens, "seconds": seconds,
                      "cpu_per_wall": cpu_seconds / seconds}))


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
def rows_of(line):
    """One measurement line as table rows: {lib, impl, threads, mb_per_s,
    tokens_per_s, tokens, cpu_per_wall}. A `tokenize bench --json` line holds
    both of this project's runs, on one thread and on N."""
    r = json.loads(line)
    if "impl" in r:
        mb = r["bytes"] / 1e6
        return r["model"], r["bytes"], [dict(r, mb_per_s=mb / r["seconds"], tokens_per_s=r["tokens"] / r["seconds"])]
    # `tokenize bench` prints the token count of its one-thread run; the count
    # of the N-thread run follows from its rates (tokens/s divided by MB/s,
    # times MB), exact after rounding.
    mb = r["bytes"] / 1e6
    tokens_n = round(r["tokens_per_s_n"] / r["mb_per_s_n"] * mb)
    rows = [{"lib": "this project", "impl": OURS, "threads": 1, "mb_per_s": r["mb_per_s_1"],
             "tokens_per_s": r["tokens_per_s_1"], "tokens": r["tokens"], "cpu_per_wall": None}]
    if r["threads"] > 1:
        rows.append({"lib": "this project", "impl": OURS, "threads": r["threads"], "mb_per_s": r["mb_per_s_n"],
                     "tokens_per_s": r["tokens_per_s_n"], "tokens": tokens_n, "cpu_per_wall": None})
    return r["model"], r["bytes"], rows


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def human(x):
    """17100000 -> 17.1M"""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.1f}{unit}"
    return f"{x:.0f}"


def report(args):
    by_model, sizes = {}, set()
    with open(args.results) as f:
        for line in f:
            if line.strip():
                model, size, rows = rows_of(line)
                by_model.setdefault(model, []).extend(rows)
                sizes.add(size)
    if len(sizes) != 1:
        raise SystemExit(f"bench_references: the measurements saw texts of different sizes: {sorted(sizes)}")
    size = sizes.pop()
    versions = {}
    for rows in by_model.values():
        for r in rows:
            if "version" in r:
                versions[r["lib"]] = r["version"]
    docs = next((r["documents"] for rows in by_model.values() for r in rows if "documents" in r), None)

    md = args.markdown
    out = []
    # The machine, the date and the text.
    text = f"{size / 1e6:.2f} MB"
    if args.source:
        text = f"{args.source}, {args.source_bytes / 1e6:.2f} MB"
        if args.repeats > 1:
            text += f", repeated {args.repeats} times to reach at least {args.min_mb:g} MB: {size / 1e6:.2f} MB"
        else:
            text += f" (at least {args.min_mb:g} MB: not repeated)"
    if docs:
        text += f" in {docs:,} documents of 100 lines"
    nproc = len(os.sched_getaffinity(0))  # what `nproc` prints
    facts = [("machine", f"{nproc} cores (nproc), {cpu_model()}"),
             ("date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
             ("text", text),
             ("references", f"Python {platform.python_version()}, "
                            + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))),
             ("CPU/wall", "CPU time of the process over the wall time of the timed run, i.e. the cores "
                          "kept busy (measured for the references; 1.00 = one core)")]
    for key, value in facts:
        out.append(f"- {key}: {value}" if md else f"{key + ':':12}{value}")

    mismatches = []
    for model, rows in by_model.items():
        title = MODELS.get(model, model)
        ref_note = ("tiktoken with Meta's Encoding from llama-models, HF tokenizers with llama3/tokenizer.json"
                    if model == "llama3" else "tiktoken r50k_base, HF tokenizers with gpt2/tokenizer.json")
        out.append("")
        out.append(f"**{title}**: {ref_note}" if md else f"{title}: {ref_note}")
        if md:
            out.append("")
            out.append("| implementation | threads | MB/s | tokens/s | tokens | CPU/wall |")
            out.append("|---|--:|--:|--:|--:|--:|")
        else:
            out.append(f"  {'implementation':38} {'threads':>7} {'MB/s':>9} {'tokens/s':>10} {'tokens':>12} {'CPU/wall':>9}")
        for r in rows:
            cpu = "-" if r["cpu_per_wall"] is None else f"{r['cpu_per_wall']:.2f}"
            cells = (r["impl"], r["threads"], f"{r['mb_per_s']:.2f}", human(r["tokens_per_s"]), f"{r['tokens']:,}", cpu)
            if md:
                out.append("| " + " | ".join(map(str, cells)) + " |")
            else:
                out.append(f"  {cells[0]:38} {cells[1]:>7} {cells[2]:>9} {cells[3]:>10} {cells[4]:>12} {cells[5]:>9}")
        if md:
            out.append("")

        # Ratios: this project over the fastest reference, on one thread and
        # on all threads; then how each implementation scales.
        notes = []
        for nt in sorted({r["threads"] for r in rows}):
            ours = [r for r in rows if r["impl"] == OURS and r["threads"] == nt]
            refs = [r for r in rows if r["impl"] != OURS and r["threads"] == nt]
            if ours and refs:
                best = max(refs, key=lambda r: r["mb_per_s"])
                notes.append(f"this project / fastest reference on {nt} thread{'s' if nt > 1 else ''}: "
                             f"{ours[0]['mb_per_s'] / best['mb_per_s']:.1f}x "
                             f"({best['impl']}, {best['mb_per_s']:.2f} MB/s)")
        n = max(r["threads"] for r in rows)
        if n > 1:
            scaling = []
            for lib in dict.fromkeys(r["lib"] for r in rows):
                one = [r for r in rows if r["lib"] == lib and r["threads"] == 1]
                many = [r for r in rows if r["lib"] == lib and r["threads"] == n]
                if one and many:
                    scaling.append(f"{lib} {many[0]['mb_per_s'] / one[0]['mb_per_s']:.2f}x")
            notes.append(f"scaling from 1 to {n} threads: " + ", ".join(scaling))
        for r in rows:
            if r["threads"] == 1 and r["cpu_per_wall"] is not None and r["cpu_per_wall"] > 1.2:
                notes.append(f"warning: {r['impl']} kept {r['cpu_per_wall']:.2f} cores busy on its one-thread run")
        for note in notes:
            out.append(f"- {note}" if md else f"  {note}")

        counts = {r["tokens"] for r in rows}
        if len(counts) > 1:
            mismatches.append(f"{title}: " + "; ".join(f"{r['impl']}, {r['threads']} thread(s): {r['tokens']:,}" for r in rows))
    print("\n".join(out))
    if mismatches:
        print("\nbench-tokenizer: ERROR: the implementations disagree on the number of tokens "
              "(a tokenizer mismatch; the speeds above do not compare the same work):", file=sys.stderr)
        for m in mismatches:
            print(f"  {m}", file=sys.stderr)
        sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("model", choices=sorted(MODELS))
    m.add_argument("impl", choices=["tiktoken", "hf"])
    m.add_argument("threads", type=int)
    m.add_argument("tokenizers_dir")
    m.add_argument("text")
    r = sub.add_parser("report")
    r.add_argument("results")
    r.add_argument("--markdown", action="store_true")
    r.add_argument("--source", help="what the text is made of")
    r.add_argument("--source-bytes", type=int, default=0)
    r.add_argument("--repeats", type=int, default=1)
    r.add_argument("--min-mb", type=float, default=0)
    args = p.parse_args()
    if args.command == "measure":
        measure(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
