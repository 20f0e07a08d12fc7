// Character-level BPE with byte fallback (the SentencePiece/Llama design), joint over both languages.
//
// Text is normalised (normalize.ts), split on spaces, and every word gets a leading "▁" (U+2581)
// marker, so "a cat" becomes the words "▁a", "▁cat" and a word looks the same at the start of a
// sentence as in the middle. Words are cut into pieces (letters, digits, other: "▁Hund" ".") and
// merges never cross a piece boundary. A piece starts as one symbol per character; characters seen in
// training (the alphabet) are symbols of their own, any other character — and the literal "▁",
// which is reserved for the marker — becomes the ids of its UTF-8 bytes. Learned merges then join
// adjacent symbols; byte ids never merge. Decoding joins the token strings, turns markers back into
// spaces, decodes byte runs as UTF-8 and drops the first space: decode(encode(s)) === normalize(s)
// for every string s, including characters never seen in training. `<unk>` keeps its fixed id for
// models that want one, but encode() never produces it.
//
// Ids: 0..4 the specials <pad> <bos> <eos> <unk> <mask>; 5..260 the bytes <0x00>..<0xFF>; then the
// alphabet (sorted by code point, "▁" included); then one id per distinct merge result, in rank order.
import { learnMerges, mergePair } from "./bpe-train.ts";
import { normalize, splitPieces, splitWords } from "./normalize.ts";
import { readTokenizerFile, validateBpeJSON, writeFileAtomic, type BpeJSON } from "./bpe-json.ts";

export type { BpeJSON } from "./bpe-json.ts";

export const SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>", "<mask>"] as const;
export const WORD_MARKER = "\u2581";
const FIRST_BYTE_ID = SPECIAL_TOKENS.length;
const FIRST_CHAR_ID = FIRST_BYTE_ID + 256;
const BYTE_NAMES = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
const RESERVED = new Set<string>([...SPECIAL_TOKENS, ...BYTE_NAMES]);
const CACHE_LIMIT = 1 << 17;
// Words longer than this are encoded every time: caching a 300,000-character word would keep it
// and its ids alive until the cache is next cleared. Real words are far shorter.
const CACHE_WORD_LIMIT = 256;

export interface BpeTrainOptions {
  /** Target vocabulary size, counting the 5 specials, the 256 byte tokens and the alphabet. */
  vocabSize: number;
  /** Stop merging when the best pair occurs fewer times than this (default 2). */
  minFrequency?: number;
  /** Characters seen fewer times than this are left to byte fallback (default 1: keep all). */
  minCharFrequency?: number;
}

export interface DecodeOptions {
  /** Drop special ids (pad, bos, eos, unk, mask) instead of writing their names (default true). */
  skipSpecial?: boolean;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: false });

export class BpeTokenizer {
  readonly padId = 0;
  readonly bosId = 1;
  readonly eosId = 2;
  readonly unkId = 3;
  readonly maskId = 4;

  private readonly tokens: string[];
  private readonly index = new Map<string, number>();
  private readonly charIds = new Map<string, number>();
  private readonly alphabet: string[];
  private readonly merges: [string, string][];
  private readonly stride: number;
  private readonly rank = new Map<number, number>(); // pair key a·stride+b → merge rank
  private readonly left: number[] = []; // merge rank → ids of its two parts and of the result
  private readonly right: number[] = [];
  private readonly result: number[] = [];
  private readonly cache = new Map<string, number[]>();

  /** Build from an alphabet and ranked merges; use train() or fromJSON() rather than this. */
  constructor(alphabet: string[], merges: [string, string][]) {
    if (!alphabet.includes(WORD_MARKER)) throw new Error(`BpeTokenizer: the alphabet must contain the word marker "${WORD_MARKER}"`);
    this.alphabet = alphabet;
    this.merges = merges;
    this.tokens = [...SPECIAL_TOKENS, ...BYTE_NAMES];
    for (const ch of alphabet) this.charIds.set(ch, this.tokens.push(ch) - 1);
    this.tokens.forEach((t, i) => this.index.set(t, i));
    const pairs: [number, number, number][] = [];
    for (const [left, right] of merges) {
      const a = this.index.get(left), b = this.index.get(right);
      if (a === undefined || b === undefined || a < FIRST_CHAR_ID || b < FIRST_CHAR_ID) {
        throw new Error(`BpeTokenizer: merge ${JSON.stringify([left, right])} uses a token that is not in the vocabulary`);
      }
      const merged = left + right;
      if (RESERVED.has(merged)) throw new Error(`BpeTokenizer: merge result ${JSON.stringify(merged)} is a reserved name`);
      let c = this.index.get(merged);
      if (c === undefined) {
        c = this.tokens.push(merged) - 1;
        this.index.set(merged, c);
      }
      pairs.push([a, b, c]);
    }
    this.stride = this.tokens.length + 1;
    pairs.forEach(([a, b, c], r) => {
      const k = a * this.stride + b;
      if (this.rank.has(k)) throw new Error(`BpeTokenizer: merge ${JSON.stringify(merges[r])} is listed twice`);
      this.rank.set(k, r);
      this.left.push(a);
      this.right.push(b);
      this.result.push(c);
    });
  }

  /** Learn a joint vocabulary from training lines (pass source and target lines together). */
  static train(lines: Iterable<string>, opts: BpeTrainOptions): BpeTokenizer {
    const { vocabSize, minFrequency = 2, minCharFrequency = 1 } = opts;
    if (!Number.isInteger(vocabSize) || vocabSize <= 0) {
      throw new Error(`BpeTokenizer.train: vocabSize must be a positive integer, got ${vocabSize}`);
    }
    // Piece frequencies; the key's first character says whether the piece starts a word (gets "▁").
    const pieceFreq = new Map<string, number>();
    for (const line of lines) {
      for (const w of splitWords(normalize(line))) {
        splitPieces(w).forEach((p, i) => {
          const key = (i === 0 ? "M" : "U") + p;
          pieceFreq.set(key, (pieceFreq.get(key) ?? 0) + 1);
        });
      }
    }
    const charFreq = new Map<string, number>();
    for (const [key, f] of pieceFreq) {
      for (const ch of key.slice(1)) if (ch !== WORD_MARKER) charFreq.set(ch, (charFreq.get(ch) ?? 0) + f);
    }
    const alphabet = [WORD_MARKER];
    for (const [ch, f] of charFreq) if (f >= minCharFrequency) alphabet.push(ch);
    alphabet.sort((x, y) => x.codePointAt(0)! - y.codePointAt(0)!);
    const base = FIRST_CHAR_ID + alphabet.length;
    if (vocabSize < base) {
      throw new Error(
        `BpeTokenizer.train: vocabSize ${vocabSize} is smaller than the base vocabulary ${base} ` +
          `(${SPECIAL_TOKENS.length} specials + 256 bytes + ${alphabet.length} characters); raise vocabSize or minCharFrequency`,
      );
    }
    const seed = new BpeTokenizer(alphabet, []);
    const words: number[][] = [], freqs: number[] = [];
    for (const [key, f] of pieceFreq) {
      words.push(seed.symbols(key.slice(1), key[0] === "M"));
      freqs.push(f);
    }
    const { merges } = learnMerges(words, freqs, [...seed.tokens], (s) => RESERVED.has(s), {
      vocabSize,
      minFrequency,
      firstMergeable: FIRST_CHAR_ID,
    });
    return new BpeTokenizer(alphabet, merges);
  }

  /** Number of ids: specials + bytes + alphabet + distinct merge results (may be below the requested size). */
  get vocabSize(): number {
    return this.tokens.length;
  }

  /** Token ids of a string, without bos/eos. */
  encode(s: string): number[] {
    const out: number[] = [];
    for (const w of splitWords(normalize(s))) {
      let ids = this.cache.get(w);
      if (ids === undefined) {
        // Append piece by piece with a loop: push(...piece) passes every id as an argument, and
        // one long unbroken word (300,000 digits) exceeds V8's argument limit.
        ids = [];
        const pieces = splitPieces(w);
        for (let i = 0; i < pieces.length; i++) for (const id of this.encodePiece(pieces[i], i === 0)) ids.push(id);
        if (w.length <= CACHE_WORD_LIMIT) {
          if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
          this.cache.set(w, ids);
        }
      }
      for (const id of ids) out.push(id);
    }
    return out;
  }

  /** The text of a sequence of ids; byte runs are decoded as UTF-8 (ill-formed runs give U+FFFD). */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const skipSpecial = opts.skipSpecial ?? true;
    let out = "";
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length > 0) out += utf8Decoder.decode(Uint8Array.from(bytes));
      bytes = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.tokens.length) {
        throw new Error(`BpeTokenizer.decode: id ${id} at position ${i} is outside the vocabulary [0, ${this.tokens.length})`);
      }
      if (id >= FIRST_BYTE_ID && id < FIRST_CHAR_ID) {
        bytes.push(id - FIRST_BYTE_ID);
        continue;
      }
      flush();
      if (id < FIRST_BYTE_ID) {
        if (!skipSpecial) out += this.tokens[id];
      } else out += this.tokens[id].replaceAll(WORD_MARKER, " ");
    }
    flush();
    return out.startsWith(" ") ? out.slice(1) : out;
  }

  /** The name of an id: "<bos>", "<0xC3>", "▁Hund", ... */
  idToToken(id: number): string {
    const t = this.tokens[id];
    if (t === undefined) throw new Error(`BpeTokenizer.idToToken: id ${id} is outside the vocabulary [0, ${this.tokens.length})`);
    return t;
  }

  /** The id of a token name, or undefined when the vocabulary has no such token. */
  tokenToId(token: string): number | undefined {
    return this.index.get(token);
  }

  toJSON(): BpeJSON {
    return {
      format: "hasten-bpe",
      version: 1,
      normalization: "well-formed, NFC, whitespace collapsed and trimmed",
      specials: [...SPECIAL_TOKENS],
      vocabSize: this.vocabSize,
      alphabet: [...this.alphabet],
      merges: this.merges.map(([a, b]) => [a, b]),
    };
  }

  static fromJSON(obj: unknown): BpeTokenizer {
    const json = validateBpeJSON(obj, [...SPECIAL_TOKENS]);
    const tok = new BpeTokenizer(json.alphabet, json.merges);
    if (tok.vocabSize !== json.vocabSize) {
      throw new Error(`BpeTokenizer.fromJSON: vocabSize is ${json.vocabSize} but the merges build ${tok.vocabSize} tokens`);
    }
    return tok;
  }

  /** Write the tokenizer as JSON, atomically (temp file + rename). */
  save(path: string): void {
    writeFileAtomic(path, JSON.stringify(this.toJSON()));
  }

  static load(path: string): BpeTokenizer {
    const obj = readTokenizerFile(path);
    try {
      return BpeTokenizer.fromJSON(obj);
    } catch (e) {
      throw new Error(`BpeTokenizer.load: ${path}: ${(e as Error).message}`);
    }
  }

  /** Initial symbols of a piece: "▁" if it starts a word, then one id per character (bytes when unknown). */
  private symbols(piece: string, startsWord: boolean): number[] {
    const out = startsWord ? [this.charIds.get(WORD_MARKER)!] : [];
    for (const ch of piece) {
      const id = ch === WORD_MARKER ? undefined : this.charIds.get(ch);
      if (id !== undefined) out.push(id);
      else for (const b of utf8.encode(ch)) out.push(FIRST_BYTE_ID + b);
    }
    return out;
  }

  /** Apply merges lowest rank first, each to all its occurrences: the order training applied them. */
  private encodePiece(piece: string, startsWord: boolean): number[] {
    let seq = this.symbols(piece, startsWord);
    for (;;) {
      let bestRank = Infinity;
      for (let i = 0; i + 1 < seq.length; i++) {
        const r = this.rank.get(seq[i] * this.stride + seq[i + 1]);
        if (r !== undefined && r < bestRank) bestRank = r;
      }
      if (bestRank === Infinity) return seq;
      seq = mergePair(seq, this.left[bestRank], this.right[bestRank], this.result[bestRank]);
    }
  }
}
