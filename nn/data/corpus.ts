// Parallel corpora: two line-aligned text files, sentence i of one translating sentence i of the other.
import { readFileSync } from "node:fs";

export interface TextPair {
  src: string;
  tgt: string;
}

/** A sentence pair as token ids (no bos/eos), with its line number in the corpus. */
export interface TokenPair {
  src: Int32Array;
  tgt: Int32Array;
  index: number;
}

/**
 * The lines of a UTF-8 text file, each stripped of surrounding whitespace (Multi30k's train.de has
 * trailing spaces). A final newline ends the last line rather than starting an empty one; "\r\n" is
 * accepted. `role` names the file in errors ("source file").
 */
export function readLines(path: string, role = "file"): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`${role} not found: ${path}`);
    throw new Error(`cannot read ${role} ${path}: ${(e as Error).message}`);
  }
  if (text.startsWith("\ufeff")) text = text.slice(1); // a byte-order mark is not part of line 1
  if (text === "") return [];
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => l.trim());
}

/** Read two line-aligned files; refuses files with different line counts, naming both. */
export function readParallel(srcPath: string, tgtPath: string): TextPair[] {
  const where = (e: unknown) => new Error(`readParallel: ${(e as Error).message}`);
  let src: string[], tgt: string[];
  try {
    src = readLines(srcPath, "source file");
    tgt = readLines(tgtPath, "target file");
  } catch (e) {
    throw where(e);
  }
  if (src.length !== tgt.length) {
    throw new Error(
      `readParallel: files are not aligned: ${srcPath} has ${src.length} lines but ${tgtPath} has ${tgt.length}`,
    );
  }
  return src.map((s, i) => ({ src: s, tgt: tgt[i] }));
}

/** Encode both sides of every pair with `encode` (e.g. tokenizer.encode), keeping line numbers. */
export function encodePairs(pairs: TextPair[], encode: (s: string) => ArrayLike<number>): TokenPair[] {
  return pairs.map((p, index) => ({ src: Int32Array.from(encode(p.src)), tgt: Int32Array.from(encode(p.tgt)), index }));
}

export interface LengthFilter {
  /** Longest allowed side, in tokens (without bos/eos). */
  maxLen: number;
  /** Shortest allowed side (default 1: drop empty sentences, which carry no training signal). */
  minLen?: number;
  /** Drop pairs whose longer side is more than `ratio` times the shorter (default: no limit). */
  ratio?: number;
}

/** Keep the pairs whose token counts pass the filter (the usual cleaning before batching). */
export function filterByLength<T extends { src: ArrayLike<number>; tgt: ArrayLike<number> }>(
  pairs: T[],
  { maxLen, minLen = 1, ratio = Infinity }: LengthFilter,
): T[] {
  if (!(maxLen >= minLen)) throw new Error(`filterByLength: maxLen ${maxLen} is below minLen ${minLen}`);
  if (!(ratio >= 1)) throw new Error(`filterByLength: ratio must be >= 1, got ${ratio}`);
  return pairs.filter(({ src, tgt }) => {
    const s = src.length, t = tgt.length;
    if (s < minLen || t < minLen || s > maxLen || t > maxLen) return false;
    return Math.max(s, t) <= ratio * Math.max(1, Math.min(s, t));
  });
}
