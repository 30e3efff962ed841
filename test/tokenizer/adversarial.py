"""Writes deterministic adversarial texts for the tokenizer comparisons.

  adversarial.py [SEED]      every Unicode general category, emoji with
      modifiers, CJK, combining marks, right-to-left text, long runs of spaces,
      tabs and newlines, \\r\\n, digit runs of every length up to 40,
      contractions in upper and mixed case, text that is all punctuation, and
      random mixtures of all of these
  adversarial.py --edge      text around the code points where notions of
      white space differ: U+FEFF, U+0085, U+180E (white space to PCRE2 but not
      to Unicode), U+200B, U+2060, U+00A0, U+3000

The text goes to standard output as UTF-8.
"""
import sys
import unicodedata

CATEGORIES = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe",
              "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Co"]


class XorShift32:
    """A small seeded generator, so that the text is the same on every run."""

    def __init__(self, seed):
        self.state = (seed * 2654435761) & 0xFFFFFFFF or 1

    def rand(self):
        s = self.state
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.state = s
        return s / 4294967296

    def pick(self, seq):
        return seq[int(self.rand() * len(seq))]

    def randint(self, lo, hi):
        return lo + int(self.rand() * (hi - lo + 1))


def by_category():
    # Code points of each general category from the first planes, as this
    # Python's Unicode database has them. Surrogates cannot appear in UTF-8 and
    # code points assigned only recently may be unknown to one of the
    # tokenizers, so both stay out (the older database decides).
    table = {gc: [] for gc in CATEGORIES}
    for cp in range(0x20000):
        if 0xD800 <= cp <= 0xDFFF or 0xFFFF < cp < 0x1F000:
            continue
        gc = unicodedata.category(chr(cp))
        if gc in table:
            table[gc].append(chr(cp))
    return table


def adversarial(seed):
    rng = XorShift32(seed)
    cats = by_category()
    parts = []
    # Every category: a spread of its code points, alone, in runs, next to
    # letters, digits and spaces.
    for gc in CATEGORIES:
        chars = cats[gc]
        sample = chars[::max(1, len(chars) // 60)]
        parts.append(f"{gc}: " + " ".join(sample))
        parts.append("".join(sample))
        parts.append("".join(f"a{c}b 1{c}2 {c}{c} " for c in sample))
    # Emoji with skin-tone modifiers, ZWJ sequences, flags, keycaps, variation selectors.
    parts.append("👍 👍🏻 👍🏽 👍🏿 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🇮🇹🇯🇵🇺🇸 1️⃣ #️⃣ ❤️ ❤︎ ☺️ 🙂🙃 😀😃😄😁 🧑🏾‍🚀 emoji👍🏽text 🤷‍♀️!")
    # CJK, Japanese, Korean, with full-width punctuation and digits.
    parts.append("中文文本，包括标点。日本語のテキスト、カタカナとひらがな。한국어 텍스트입니다. 漢字１２３４５６ （括弧） 「引用」")
    # Combining marks.
    parts.append("e\u0301 a\u0308\u0323 n\u0303o\u0302 Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o\u0358 "
                 "\u0301\u0302 x\u20dd 1\u20e3 q\u0300\u0301\u0302\u0303\u0304")
    # Right-to-left text, mixed with left-to-right, with direction marks.
    parts.append("مرحبا بالعالم! שלום עולם. \u200fنص\u200e mixed עברית and العربية ١٢٣ ۴۵۶ \u202bembedded\u202c")
    # White space runs of many lengths and kinds.
    for n in [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 300]:
        parts.append("a" + " " * n + "b" + "\t" * (n % 17) + "c" + "\n" * (n % 9) + "d" + "\r\n" * (n % 5) +
                     "e " + " " * n)
        parts.append(" " * n + "\n" + " " * n + "x")
    parts.append(" \t \n \r\n \u00a0 \u3000 \u2003\u2009\u200a \u2028 \u2029 \u0085 \u000b\u000c end \r\r\n\n\r")
    parts.append("trailing   \nspaces \t\n\t\tindent\n    code(x)\n\n\n\n  \r\n\r\n")
    # Digit runs of every length, in several scripts.
    for n in range(1, 41):
        d = "".join(str(rng.randint(0, 9)) for _ in range(n))
        line = f"{d} x{d}y {d}.{d} -{d},{d} ١٢٣٤٥٦٧٨٩٠"[:40 + 4 * n]
        parts.append(line + " ０１２３４５６７８９ ²³¹ ½¾ Ⅻ")
    # Contractions in every case, with straight and curly apostrophes.
    cased = []
    for c in ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]:
        letters = c[1:]
        for mask in range(1 << len(letters)):
            cased.append("'" + "".join(ch.upper() if mask & (1 << i) else ch for i, ch in enumerate(letters)))
    parts.append(" ".join(f"it{c} IT{c} {c} x{c}y 1{c} {c}{c}" for c in cased))
    parts.append("don't DON'T Don'T can\u2019t WON\u2019T I'M you'Re they'VE we'lL she'D 'ſ 'ſt it'ſ ''s '''t")
    # Text that is all punctuation and symbols.
    parts.append("!!!???...,,,;;;:::---___***&&&%%%$$$###@@@((([[[{{{}}}]]])))'''\"\"\"```~~~^^^|||\\\\///+++===<<<>>>")
    parts.append("!?.,;:-_*&%$#@()[]{}'\"`~^|\\/+=<>…—–«»“”‘’¡¿§¶•†‡′″※‼⁇")
    parts.append("...\n!!!\r\n???\n\n---\n   ...   \n")
    # Random mixtures of everything.
    pools = [cats[gc] for gc in CATEGORIES] + [[" ", " ", "  ", "\n", "\t", "\r\n", "   "],
                                               ["'s", "'T", "'Ll", "'ve"], ["0", "1", "23", "456", "7890"],
                                               ["hello", "World", "ÉCOLE", "naïve", "straße"]]
    for _ in range(400):
        parts.append("".join(rng.pick(rng.pick(pools)) for _ in range(rng.randint(1, 60))))
    return "\n".join(parts) + "\n"


def edge():
    parts = []
    for c in ["\ufeff", "\u0085", "\u180e", "\u200b", "\u2060", "\u00a0", "\u3000"]:
        for ctx in ["a{}b", "a {}b", "a{} b", "{}{}x", "x {}{} y", "1{}2", "!{}?", "{}\n", "\n{}", " {} ", "it{}'s"]:
            parts.append(ctx.replace("{}", c))
    return "|".join(parts) + "\n"


if __name__ == "__main__":
    text = edge() if sys.argv[1:2] == ["--edge"] else adversarial(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    sys.stdout.buffer.write(text.encode("utf-8"))
