// Measures the npm tokenizers on the same documents as `tokenize bench`
// (every 100 lines of the input files make one document) and prints one JSON
// object per measurement. "All threads" runs one worker thread per core, each
// with its own tokenizer and an equal share of the documents; for
// @anush008/tokenizers it is encodeBatch, which runs Rust threads.
// Usage: node test/tokenizer/bench-npm.mjs TOKENIZERS_DIR THREADS FILE...
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const require = createRequire(path.resolve('package.json'));

function documents(files) {
  const lines = files.map((f) => fs.readFileSync(f, 'utf8')).join('').split(/(?<=\n)/);
  const docs = [];
  for (let i = 0; i < lines.length; i += 100) docs.push(lines.slice(i, i + 100).join(''));
  return docs;
}

// Returns a function doc -> number of tokens (sync) for one implementation.
async function load(impl, model, dir) {
  if (impl === 'tiktoken-wasm') {
    const { Tiktoken } = require('tiktoken');
    const ranks = fs.readFileSync(path.join(dir, model, 'tokenizer.tiktoken'), 'utf8');
    const pat = model === 'llama3'
      ? "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
      : "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    const n = ranks.trim().split('\n').length;
    const enc = new Tiktoken(ranks, model === 'llama3' ? { '<|begin_of_text|>': n } : { '<|endoftext|>': n }, pat);
    return (d) => enc.encode_ordinary(d).length;
  }
  if (impl === 'llama3-tokenizer-js') {
    const mod = await import(require.resolve('llama3-tokenizer-js'));
    return (d) => mod.default.encode(d, { bos: false, eos: false }).length;
  }
  if (impl === 'gpt-tokenizer') {
    const enc = require('gpt-tokenizer/encoding/r50k_base');
    return (d) => enc.encode(d).length;
  }
  throw new Error(`unknown implementation ${impl}`);
}

if (!isMainThread) {
  const { impl, model, dir, docs } = workerData;
  const encode = await load(impl, model, dir);
  encode(docs[0] ?? '');
  parentPort.on('message', () => {
    let tokens = 0;
    for (const d of docs) tokens += encode(d);
    parentPort.postMessage(tokens);
  });
  parentPort.postMessage('ready');
} else {
  const [dir, threadsArg, ...files] = process.argv.slice(2);
  const threads = Number(threadsArg) || os.availableParallelism();
  const docs = documents(files);
  const bytes = docs.reduce((s, d) => s + Buffer.byteLength(d), 0);
  const report = (impl, model, nthreads, sec, tokens) =>
    console.log(JSON.stringify({ impl, model, threads: nthreads, mb_per_s: bytes / sec / 1e6,
                                 tokens_per_s: tokens / sec, tokens }));
  const models = { llama3: ['@anush008/tokenizers', 'tiktoken-wasm', 'llama3-tokenizer-js'],
                   gpt2: ['@anush008/tokenizers', 'tiktoken-wasm', 'gpt-tokenizer'] };
  for (const [model, impls] of Object.entries(models)) {
    for (const impl of impls) {
      if (impl === '@anush008/tokenizers') {
        const { Tokenizer } = require('@anush008/tokenizers');
        const t = Tokenizer.fromFile(path.join(dir, model, 'tokenizer.json'));
        const opts = { addSpecialTokens: false };
        await t.encode(docs[0], null, opts);
        let t0 = process.hrtime.bigint(), tokens = 0;
        for (const d of docs) tokens += (await t.encode(d, null, opts)).getIds().length;
        report(impl, model, 1, Number(process.hrtime.bigint() - t0) / 1e9, tokens);
        t0 = process.hrtime.bigint();
        const encs = await t.encodeBatch(docs, opts);
        tokens = encs.reduce((s, e) => s + e.getIds().length, 0);
        report(impl, model, threads, Number(process.hrtime.bigint() - t0) / 1e9, tokens);
        continue;
      }
      const encode = await load(impl, model, dir);
      encode(docs[0]);
      let t0 = process.hrtime.bigint(), tokens = 0;
      for (const d of docs) tokens += encode(d);
      report(impl, model, 1, Number(process.hrtime.bigint() - t0) / 1e9, tokens);
      // All threads: one worker per thread, each with its own share.
      const workers = [];
      for (let w = 0; w < threads; w++) {
        const share = docs.filter((_, i) => i % threads === w);
        const worker = new Worker(new URL(import.meta.url), { workerData: { impl, model, dir, docs: share } });
        workers.push(new Promise((resolve) => worker.once('message', () => resolve(worker))));
      }
      const ready = await Promise.all(workers);
      t0 = process.hrtime.bigint();
      const counts = await Promise.all(ready.map((w) => new Promise((resolve) => {
        w.once('message', resolve);
        w.postMessage('go');
      })));
      report(impl, model, threads, Number(process.hrtime.bigint() - t0) / 1e9, counts.reduce((a, b) => a + b, 0));
      ready.forEach((w) => w.terminate());
    }
  }
}
