// The tokenizer file: its JSON shape, its validation, and atomic reading/writing.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";

export interface BpeJSON {
  format: "hasten-bpe";
  version: 1;
  /** Human-readable statement of the normalisation applied before encoding. */
  normalization: string;
  specials: string[];
  /** Total number of ids the file describes; checked when loading. */
  vocabSize: number;
  /** Characters with ids of their own, in id order. */
  alphabet: string[];
  /** Merges in rank order, as pairs of token strings. */
  merges: [string, string][];
}

const describe = (v: unknown) => (Array.isArray(v) ? "an array" : v === null ? "null" : typeof v);

/** Check the shape of a parsed tokenizer file; each error says which field was wrong and what it held. */
export function validateBpeJSON(obj: unknown, specials: string[]): BpeJSON {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new Error(`expected a tokenizer object, got ${describe(obj)}`);
  }
  const o = obj as Record<string, unknown>;
  if (o.format !== "hasten-bpe") throw new Error(`expected format "hasten-bpe", got ${JSON.stringify(o.format)}`);
  if (o.version !== 1) throw new Error(`expected version 1, got ${JSON.stringify(o.version)}`);
  if (JSON.stringify(o.specials) !== JSON.stringify(specials)) {
    throw new Error(`expected specials ${JSON.stringify(specials)}, got ${JSON.stringify(o.specials)}`);
  }
  if (!Number.isInteger(o.vocabSize)) throw new Error(`expected an integer vocabSize, got ${JSON.stringify(o.vocabSize)}`);
  if (!Array.isArray(o.alphabet)) throw new Error(`expected alphabet to be an array, got ${describe(o.alphabet)}`);
  const seen = new Set<string>();
  o.alphabet.forEach((ch, i) => {
    if (typeof ch !== "string" || [...ch].length !== 1) {
      throw new Error(`alphabet[${i}] must be one character, got ${JSON.stringify(ch)}`);
    }
    if (seen.has(ch)) throw new Error(`alphabet[${i}] ${JSON.stringify(ch)} appears twice`);
    seen.add(ch);
  });
  if (!Array.isArray(o.merges)) throw new Error(`expected merges to be an array, got ${describe(o.merges)}`);
  o.merges.forEach((m, i) => {
    if (!Array.isArray(m) || m.length !== 2 || typeof m[0] !== "string" || typeof m[1] !== "string") {
      throw new Error(`merges[${i}] must be a pair of strings, got ${JSON.stringify(m)}`);
    }
  });
  return {
    format: "hasten-bpe",
    version: 1,
    normalization: String(o.normalization ?? ""),
    specials,
    vocabSize: o.vocabSize as number,
    alphabet: o.alphabet as string[],
    merges: o.merges as [string, string][],
  };
}

/** Read and parse a tokenizer file, naming the path in every error. */
export function readTokenizerFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`BpeTokenizer.load: no tokenizer file at ${path}`);
    throw new Error(`BpeTokenizer.load: cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`BpeTokenizer.load: ${path} is not valid JSON (${text.length} bytes): ${(e as Error).message}`);
  }
}

/** Write to a temp file beside `path`, then rename over it: readers see the old file or the new one, never half. */
export function writeFileAtomic(path: string, data: string): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } finally {
    if (existsSync(tmp)) rmSync(tmp, { force: true });
  }
}
