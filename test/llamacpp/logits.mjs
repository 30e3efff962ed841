// Runs a GGUF model with llama.cpp (CPU, F32 KV cache, flash attention off)
// and writes the logits it computes at every position of a token sequence,
// then a greedy continuation by llama.cpp's sampler at temperature 0.
//
// Usage: node logits.mjs MODEL.gguf TOKENS.json OUT.json [N_GREEDY]
//   TOKENS.json: [id, id, ...]; OUT.json: {"logits": [[...], ...], "greedy": [...]}
import fs from "node:fs";
import {getLlama} from "node-llama-cpp";

const [modelPath, tokensPath, outPath, nGreedyArg] = process.argv.slice(2);
if (!modelPath || !tokensPath || !outPath) {
    console.error("usage: node logits.mjs MODEL.gguf TOKENS.json OUT.json [N_GREEDY]");
    process.exit(2);
}
const nGreedy = Number(nGreedyArg ?? 0);
const tokens = JSON.parse(fs.readFileSync(tokensPath, "utf8"));

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
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
fs.writeFileSync(outPath, JSON.stringify({logits, greedy}));
await context.dispose();
await model.dispose();
await llama.dispose();
