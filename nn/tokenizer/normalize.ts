// Text normalisation applied before BPE, and the word split that BPE works on.
//
// normalize(s), in this order:
//   1. ill-formed UTF-16 is made well-formed: every lone surrogate becomes U+FFFD
//      (a lone surrogate has no UTF-8 form, so it could never survive a byte round trip);
//   2. Unicode NFC, so "a" + U+0308 and "ä" are the same text and the same tokens;
//   3. every run of whitespace (JavaScript's `\s`: Unicode White_Space plus U+FEFF) becomes
//      one ASCII space, and leading/trailing whitespace is removed.
// The tokenizer guarantees decode(encode(s)) === normalize(s) for every JavaScript string.

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const WHITESPACE_RUN = /\s+/g;

export function normalize(s: string): string {
  return s.replace(LONE_SURROGATE, "\ufffd").normalize("NFC").replace(WHITESPACE_RUN, " ").trim();
}

// Letters with their combining marks, digit runs, and runs of everything else (punctuation,
// symbols): "Freien." → "Freien", "."; "(2016)" → "(", "2016", ")". Every character falls in
// exactly one class, so the pieces of a word concatenate back to the word.
const PIECE = /[\p{L}\p{M}]+|\p{N}+|[^\p{L}\p{M}\p{N}]+/gu;

/**
 * Split a word into the pieces BPE merges within: merges never cross a piece boundary, so
 * "Hund", "Hund." and "Hund," share the token "Hund" instead of learning three.
 */
export function splitPieces(word: string): string[] {
  return word.match(PIECE) ?? [];
}

/**
 * The words of a normalised string: split on the single spaces normalize() leaves.
 * "" has no words, so the empty string encodes to no tokens.
 */
export function splitWords(normalized: string): string[] {
  return normalized === "" ? [] : normalized.split(" ");
}
