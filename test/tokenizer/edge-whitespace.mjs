// Writes text around the code points where the JavaScript oracles' notion of
// white space (\s in a JavaScript regular expression includes U+FEFF and
// excludes U+0085) differs from the Unicode White_Space property that Hugging
// Face tokenizers and tiktoken use, plus U+180E (white space to PCRE2 but not
// to Unicode). Only Hugging Face tokenizers is the oracle for this text.
const cps = ['\ufeff', '\u0085', '\u180e', '\u200b', '\u2060', '\u00a0', '\u3000'];
const parts = [];
for (const c of cps) {
  for (const ctx of ['a{}b', 'a {}b', 'a{} b', '{}{}x', 'x {}{} y', '1{}2', '!{}?', '{}\n', '\n{}', ' {} ', "it{}'s"])
    parts.push(ctx.replaceAll('{}', c));
}
process.stdout.write(parts.join('|') + '\n');
