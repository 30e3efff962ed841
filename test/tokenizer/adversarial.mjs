// Writes a deterministic adversarial text for the tokenizer comparisons on
// stdout: every Unicode general category, emoji with modifiers, CJK,
// combining marks, right-to-left text, long runs of spaces, tabs and
// newlines, \r\n, digit runs of every length up to 40, contractions in upper
// and mixed case, text that is all punctuation, and random mixtures of all of
// these. Usage: node test/tokenizer/adversarial.mjs [SEED]
const seed = Number(process.argv[2] ?? 1);

// A small seeded generator (xorshift32), so the text is the same every run.
let state = (seed * 2654435761) >>> 0 || 1;
function rand() {
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const randInt = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

// Code points of each general category, from the first planes. Surrogates
// cannot appear in UTF-8 and unassigned code points depend on the Unicode
// version of each engine, so both are left out.
const categories = ['Lu', 'Ll', 'Lt', 'Lm', 'Lo', 'Mn', 'Mc', 'Me', 'Nd', 'Nl', 'No', 'Pc', 'Pd', 'Ps', 'Pe',
                    'Pi', 'Pf', 'Po', 'Sm', 'Sc', 'Sk', 'So', 'Zs', 'Zl', 'Zp', 'Cc', 'Cf', 'Co'];
const byCategory = {};
for (const gc of categories) {
  const re = new RegExp(`^\\p{gc=${gc}}$`, 'u');
  const all = [];
  for (let cp = 0; cp < 0x20000; cp++) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    if (cp > 0xFFFF && cp < 0x1F000) continue;  // keep to long-assigned blocks
    if (re.test(String.fromCodePoint(cp))) all.push(cp);
  }
  byCategory[gc] = all;
}

const parts = [];
// Every category: a spread of its code points, alone, in runs, next to letters,
// digits and spaces.
for (const gc of categories) {
  const cps = byCategory[gc];
  const sample = [];
  const step = Math.max(1, Math.floor(cps.length / 60));
  for (let i = 0; i < cps.length; i += step) sample.push(String.fromCodePoint(cps[i]));
  parts.push(`${gc}: ` + sample.join(' '));
  parts.push(sample.join(''));
  parts.push(sample.map((c) => `a${c}b 1${c}2 ${c}${c} `).join(''));
}
// Emoji with skin-tone modifiers, ZWJ sequences, flags, keycaps, variation selectors.
parts.push('👍 👍🏻 👍🏽 👍🏿 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🇮🇹🇯🇵🇺🇸 1️⃣ #️⃣ ❤️ ❤︎ ☺️ 🙂🙃 😀😃😄😁 🧑🏾‍🚀 emoji👍🏽text 🤷‍♀️!');
// CJK, Japanese, Korean, with full-width punctuation and digits.
parts.push('中文文本，包括标点。日本語のテキスト、カタカナとひらがな。한국어 텍스트입니다. 漢字１２３４５６ （括弧） 「引用」');
// Combining marks.
parts.push('e\u0301 a\u0308\u0323 n\u0303o\u0302 Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o\u0358 \u0301\u0302 x\u20dd 1\u20e3 q\u0300\u0301\u0302\u0303\u0304');
// Right-to-left text, mixed with left-to-right, with direction marks.
parts.push('مرحبا بالعالم! שלום עולם. \u200fنص\u200e mixed עברית and العربية ١٢٣ ۴۵۶ \u202bembedded\u202c');
// Whitespace runs of many lengths and kinds.
for (const n of [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 300]) {
  parts.push(`a${' '.repeat(n)}b${'\t'.repeat(n % 17)}c${'\n'.repeat(n % 9)}d${'\r\n'.repeat(n % 5)}e ${' '.repeat(n)}`);
  parts.push(`${' '.repeat(n)}\n${' '.repeat(n)}x`);
}
parts.push(' \t \n \r\n \u00a0 \u3000 \u2003\u2009\u200a \u2028 \u2029 \u0085 \u000b\u000c end \r\r\n\n\r');
parts.push('trailing   \nspaces \t\n\t\tindent\n    code(x)\n\n\n\n  \r\n\r\n');
// Digit runs of every length, in several scripts.
for (let n = 1; n <= 40; n++) {
  let d = '';
  for (let i = 0; i < n; i++) d += String(randInt(0, 9));
  parts.push(`${d} x${d}y ${d}.${d} -${d},${d} ١٢٣٤٥٦٧٨٩٠`.slice(0, 40 + 4 * n) + ' ０１２３４５６７８９ ²³¹ ½¾ Ⅻ');
}
// Contractions in every case, with straight and curly apostrophes.
const contr = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];
const cased = [];
for (const c of contr) {
  const letters = c.slice(1);
  for (let mask = 0; mask < 1 << letters.length; mask++) {
    let s = "'";
    for (let i = 0; i < letters.length; i++) s += mask & (1 << i) ? letters[i].toUpperCase() : letters[i];
    cased.push(s);
  }
}
parts.push(cased.map((c) => `it${c} IT${c} ${c} x${c}y 1${c} ${c}${c}`).join(' '));
parts.push("don't DON'T Don'T can\u2019t WON\u2019T I'M you'Re they'VE we'lL she'D 'ſ 'ſt it'ſ ''s '''t");
// Text that is all punctuation and symbols.
parts.push('!!!???...,,,;;;:::---___***&&&%%%$$$###@@@((([[[{{{}}}]]])))\'\'\'"""```~~~^^^|||\\\\///+++===<<<>>>');
parts.push('!?.,;:-_*&%$#@()[]{}\'"`~^|\\/+=<>…—–«»“”‘’¡¿§¶•†‡′″※‼⁇');
parts.push('...\n!!!\r\n???\n\n---\n   ...   \n');
// Random mixtures of everything.
const pools = [...categories.map((gc) => byCategory[gc].map((cp) => String.fromCodePoint(cp))),
               [' ', ' ', '  ', '\n', '\t', '\r\n', '   '], ["'s", "'T", "'Ll", "'ve"],
               ['0', '1', '23', '456', '7890'], ['hello', 'World', 'ÉCOLE', 'naïve', 'straße']];
for (let line = 0; line < 400; line++) {
  let s = '';
  const len = randInt(1, 60);
  for (let i = 0; i < len; i++) {
    const pool = pick(pools);
    s += pick(pool);
  }
  parts.push(s);
}
process.stdout.write(parts.join('\n') + '\n');
