// Runs a GGUF model with llama.cpp (CPU, F32 KV cache, flash attention off)
// and writes the logits it computes at every position of a token sequence,
// then a greedy continuation by llama.cpp's sampler at temperature 0.
//
// Usage: node logits.mjs MODEL.gguf TOKENS.json OUT.json [N_GREEDY [TEXT_FILE]]
//   TOKENS.json: [id, id, ...]; OUT.json: {"logits": [[...], ...], "greedy": [...], "tokenized": [...]}
//   With TEXT_FILE, "tokenized" holds llama.cpp's own tokenization of that text
//   (no special tokens), from the tokenizer metadata of the GGUF file.
import fs from "node:fs";
import {getLlama} from "node-llama-cpp";

const [modelPath, tokensPath, outPath, nGreedyArg, textPath] = process.argv.slice(2);
if (!modelPath || !tokensPath || !outPath) {
    console.error("usage: node logits.mjs MODEL.gguf TOKENS.json OUT.json [N_GREEDY]");
    process.exit(2);
}
const nGreedy = Number(nGreedyArg ?? 0);
const tokens = JSON.parse(fs.readFileSync(tokensPath, "utf8"));

const llama = await getLlama({gpu: false, build: "never", logLevel: process.env.LLAMA_LOG ?? "error"});
const model = await llama.loadModel({modelPath});
const contextSize = Math.max(64, tokens.length + nGreedy + 8);
const context = await model.createContext({
    contextSize,
    sequences: 2,
    threads: 1,
    batchSize: contextSize,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
});
const sequence = context.getSequence();
const vocab = model.tokens.sizes?.vocabularySize ?? undefined;

function dense(map) {
    const n = vocab ?? map.size;
    const out = new Array(n).fill(null);
    for (const [id, value] of map) out[id] = value;
    return out;
}

const results = await sequence.controlledEvaluate(tokens.map((t) => [t, {generateNext: {logits: true}}]));
const logits = results.map((r) => dense(r.next.logits));

// Greedy continuation by llama.cpp's own sampler (temperature 0), in a fresh sequence.
const greedy = [];
if (nGreedy > 0) {
    const generator = context.getSequence().evaluate(tokens, {temperature: 0});
    for await (const token of generator) {
        greedy.push(token);
        if (greedy.length >= nGreedy) break;
    }
}
const tokenized = textPath ? Array.from(model.tokenize(fs.readFileSync(textPath, "utf8"), false)) : [];
fs.writeFileSync(outPath, JSON.stringify({logits, greedy, tokenized}));
await context.dispose();
await model.dispose();
await llama.dispose();
