// SacreBLEU's default "13a" tokenizer: the tokenisation of the NIST mteval-v13a.pl script that WMT
// scores with, as SacreBLEU defines it (sacrebleu/tokenizers/tokenizer_13a.py + tokenizer_re.py).
//
// The rules, in order:
//   1. language-independent: remove "<skipped>", join lines hyphenated across "-\n", turn other
//      newlines into spaces, unescape &quot; &amp; &lt; &gt; (in that order, once each);
//   2. pad the line with a space on each side;
//   3. split off every ASCII symbol except  ' , - .  i.e. the code points
//      0x20-0x26 (space ! " # $ % &), 0x28-0x2B ( ( ) * + ), 0x2F (/), 0x3A-0x40 (: ; < = > ? @),
//      0x5B-0x60 ([ \ ] ^ _ `), 0x7B-0x7E ({ | } ~);
//   4. split a period or comma off unless it sits between digits ("3.5" and "1,000" stay whole):
//      first when preceded by a non-digit, then when followed by a non-digit;
//   5. split a dash that follows a digit ("1990-1995" → "1990 - 1995", "a-b" stays);
//   6. collapse whitespace to single spaces and trim.
// Steps 4 and 5 are global left-to-right substitutions whose matches may not overlap, exactly like
// Python's re.sub: in "a.." only the first period is split by the first rule.
// "Whitespace" in step 6 is Python's str.split() set, which differs from JavaScript's \s
// (it adds U+001C–U+001F and U+0085, and lacks U+FEFF).

const SYMBOL = /([\x20-\x26\x28-\x2b\x2f\x3a-\x40\x5b-\x60\x7b-\x7e])/gu;
const PERIOD_COMMA_AFTER_NON_DIGIT = /([^0-9])([.,])/gu;
const PERIOD_COMMA_BEFORE_NON_DIGIT = /([.,])([^0-9])/gu;
const DASH_AFTER_DIGIT = /([0-9])(-)/gu;

/** Python's str.isspace() characters: what str.split() and str.strip() treat as whitespace. */
const PY_WHITESPACE_CLASS = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_WHITESPACE_RUN = new RegExp(`[${PY_WHITESPACE_CLASS}]+`, "g");
const PY_TRAILING_WHITESPACE = new RegExp(`[${PY_WHITESPACE_CLASS}]+$`);

/** Python's `s.split()`: the non-empty runs between whitespace. */
export function pySplit(s: string): string[] {
  return s.split(PY_WHITESPACE_RUN).filter((t) => t !== "");
}

/** Python's `s.rstrip()`. */
export function pyRstrip(s: string): string {
  return s.replace(PY_TRAILING_WHITESPACE, "");
}

/** Tokenize one line with the 13a rules; the tokens are joined by single spaces. */
export function tokenize13a(line: string): string {
  let s = line.replaceAll("<skipped>", "").replaceAll("-\n", "").replaceAll("\n", " ");
  if (s.includes("&")) {
    s = s.replaceAll("&quot;", '"').replaceAll("&amp;", "&").replaceAll("&lt;", "<").replaceAll("&gt;", ">");
  }
  s = ` ${s} `
    .replace(SYMBOL, " $1 ")
    .replace(PERIOD_COMMA_AFTER_NON_DIGIT, "$1 $2 ")
    .replace(PERIOD_COMMA_BEFORE_NON_DIGIT, " $1 $2")
    .replace(DASH_AFTER_DIGIT, "$1 $2 ");
  return pySplit(s).join(" ");
}
