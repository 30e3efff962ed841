// Encodes stdin with one of the npm tokenizers used as oracles and prints the
// token ids, space-separated, on one line (no BOS/EOS).
//   node test/tokenizer/oracle.mjs llama3-js            llama3-tokenizer-js
//   node test/tokenizer/oracle.mjs hf TOKENIZER_JSON    @anush008/tokenizers
//   node test/tokenizer/oracle.mjs gpt2                 gpt-tokenizer (r50k_base)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.resolve('package.json'));
const [which, file] = process.argv.slice(2);
const text = fs.readFileSync(0, 'utf8');
let ids;
if (which === 'llama3-js') {
  const mod = await import(require.resolve('llama3-tokenizer-js'));
  ids = mod.default.encode(text, { bos: false, eos: false });
} else if (which === 'hf') {
  const { Tokenizer } = require('@anush008/tokenizers');
  const t = Tokenizer.fromFile(file);
  ids = (await t.encode(text, null, { addSpecialTokens: false })).getIds();
} else if (which === 'gpt2') {
  const enc = require('gpt-tokenizer/encoding/r50k_base');
  ids = enc.encode(text);
} else {
  console.error(`unknown oracle ${which}`);
  process.exit(2);
}
process.stdout.write(ids.join(' ') + '\n');
