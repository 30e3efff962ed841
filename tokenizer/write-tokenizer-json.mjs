// Writes standard Hugging Face tokenizer.json files (and tiktoken rank files)
// for Llama 3 and GPT-2 from the npm packages llama3-tokenizer-js and
// gpt-tokenizer. Usage: node tokenizer/write-tokenizer-json.mjs OUTDIR
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.resolve('package.json'));
const out = process.argv[2];
if (!out) { console.error('usage: write-tokenizer-json.mjs OUTDIR'); process.exit(2); }

// GPT-2's table from bytes to printable characters.
function bytesToUnicode() {
  const table = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return table;
}
const B2U = bytesToUnicode();
const U2B = new Map(B2U.map((c, b) => [c, b]));
const toByteLevel = (buf) => Array.from(buf, (b) => B2U[b]).join('');
const fromByteLevel = (s) => Buffer.from(Array.from(s, (c) => {
  if (!U2B.has(c)) throw new Error(`not a byte-level character: ${c}`);
  return U2B.get(c);
}));

function writeJson(file, obj) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(obj));
  console.log(`wrote ${file}`);
}

function tokenizerJson({ vocab, merges, added, pattern, ignoreMerges, bos }) {
  const preTokenizer = pattern
    ? { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] }
    : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const byteLevelPost = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };
  let postProcessor = byteLevelPost;
  if (bos) {
    postProcessor = { type: 'Sequence', processors: [byteLevelPost, {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
             { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [bos]: { id: bos, ids: [added.find((a) => a.content === bos).id], tokens: [bos] } },
    }] };
  }
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: added.map((a) => ({ id: a.id, content: a.content, single_word: false, lstrip: false,
                                      rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: ignoreMerges,
             vocab, merges },
  };
}

function writeTiktoken(file, tokens /* array of Buffer, index = rank */) {
  fs.writeFileSync(file, tokens.map((b, r) => `${b.toString('base64')} ${r}`).join('\n') + '\n');
  console.log(`wrote ${file}`);
}

// ---- Llama 3: vocabulary and merges exactly as llama3-tokenizer-js holds them.
{
  const mod = await import(require.resolve('llama3-tokenizer-js'));
  const t = mod.default;
  const nBase = t.vocabById.length - 256;
  const vocab = {};
  for (let i = 0; i < nBase; i++) vocab[t.vocabById[i]] = i;
  const merges = Array.from(t.merges.entries()).sort((a, b) => a[1] - b[1]).map((e) => e[0]);
  const added = [];
  for (let i = nBase; i < t.vocabById.length; i++) added.push({ id: i, content: t.vocabById[i] });
  const pattern = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  if (merges.length !== 280147) throw new Error(`expected 280147 Llama 3 merges, found ${merges.length}`);
  writeJson(path.join(out, 'llama3', 'tokenizer.json'),
            tokenizerJson({ vocab, merges, added, pattern, ignoreMerges: true, bos: '<|begin_of_text|>' }));
  const tokens = [];
  for (let i = 0; i < nBase; i++) tokens.push(fromByteLevel(t.vocabById[i]));
  writeTiktoken(path.join(out, 'llama3', 'tokenizer.tiktoken'), tokens);
}

// ---- GPT-2: the r50k_base ranks that gpt-tokenizer is generated from; the
// merge of each token is found by running BPE on its bytes with lower ranks.
{
  const file = path.join(path.dirname(require.resolve('gpt-tokenizer/package.json')), 'data', 'r50k_base.tiktoken');
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
  const tokens = [];
  const rankOf = new Map();  // latin1 string of the bytes -> rank
  for (const line of lines) {
    const [b64, r] = line.split(' ');
    const buf = Buffer.from(b64, 'base64');
    tokens[Number(r)] = buf;
    rankOf.set(buf.toString('latin1'), Number(r));
  }
  const vocab = {};
  tokens.forEach((buf, r) => { vocab[toByteLevel(buf)] = r; });
  const merges = [];
  tokens.forEach((buf, r) => {
    if (buf.length < 2) return;
    let parts = Array.from(buf, (b) => String.fromCharCode(b));
    while (parts.length > 2) {
      let best = Infinity, at = -1;
      for (let i = 0; i + 1 < parts.length; i++) {
        const k = rankOf.get(parts[i] + parts[i + 1]);
        if (k !== undefined && k < r && k < best) { best = k; at = i; }
      }
      if (at < 0) break;
      parts.splice(at, 2, parts[at] + parts[at + 1]);
    }
    if (parts.length === 2)
      merges.push(parts.map((p) => toByteLevel(Buffer.from(p, 'latin1'))).join(' '));
  });
  const added = [{ id: tokens.length, content: '<|endoftext|>' }];
  writeJson(path.join(out, 'gpt2', 'tokenizer.json'),
            tokenizerJson({ vocab, merges, added, pattern: null, ignoreMerges: false, bos: null }));
  writeTiktoken(path.join(out, 'gpt2', 'tokenizer.tiktoken'), tokens);
}
