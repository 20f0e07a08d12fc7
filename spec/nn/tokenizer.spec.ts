// BPE tokenizer: lossless round trip for any string, fixed special ids, training = a naive
// full-recount BPE, save/load, clear errors.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { BpeTokenizer, SPECIAL_TOKENS, WORD_MARKER } from "../../nn/tokenizer/bpe.ts";
import { normalize, splitPieces, splitWords } from "../../nn/tokenizer/normalize.ts";
import { readLines } from "../../nn/data/corpus.ts";
import { findDataDir } from "../../nn/data/paths.ts";
import { skipTest } from "../helpers/skip.ts";

const FC = { seed: 7061, numRuns: 300 };

// A small deterministic corpus of caption-like sentences in two languages (a toy Multi30k).
const EN = ["a", "man", "woman", "dog", "is", "running", "on", "the", "beach", "two", "young", "people", "street", "red", "shirt", "with"];
const DE = ["ein", "Mann", "Frau", "Hund", "läuft", "am", "Strand", "zwei", "junge", "Leute", "Straße", "rotes", "Hemd", "mit", "weiße", "Männer"];
function toyCorpus(n: number): string[] {
  const lines: string[] = [];
  let s = 12345;
  const pick = (words: string[]) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return words[s % words.length];
  };
  for (let i = 0; i < n; i++) {
    const words = i % 2 === 0 ? EN : DE;
    const len = 3 + (i % 9);
    const w = Array.from({ length: len }, () => pick(words));
    lines.push(w.join(" ") + (i % 3 === 0 ? "." : i % 3 === 1 ? "!" : ""));
  }
  return lines;
}
const corpus = toyCorpus(400);
const tok = BpeTokenizer.train(corpus, { vocabSize: 380 });

test("special tokens have fixed ids", () => {
  assert.equal([tok.padId, tok.bosId, tok.eosId, tok.unkId, tok.maskId], [0, 1, 2, 3, 4]);
  assert.equal(SPECIAL_TOKENS.map((t) => tok.tokenToId(t)), [0, 1, 2, 3, 4]);
  assert.is(tok.idToToken(1), "<bos>");
  assert.is(tok.idToToken(5), "<0x00>");
  assert.is(tok.idToToken(5 + 0xc3), "<0xC3>");
  assert.is(tok.tokenToId("no such token"), undefined);
  assert.throws(() => tok.idToToken(tok.vocabSize), /outside the vocabulary/);
});

test("training learns frequent words as single tokens and respects vocabSize", () => {
  assert.is(tok.vocabSize, 380);
  // when pairs run out (every word whole) the vocabulary stays below the requested size
  const all = BpeTokenizer.train(corpus, { vocabSize: 5000 });
  assert.ok(all.vocabSize < 5000 && all.vocabSize > 380, `vocab ${all.vocabSize}`);
  for (const line of corpus) for (const w of line.split(" ")) assert.ok(all.encode(w).length <= 2, w); // word (+ punctuation)
  for (const w of ["▁Hund", "▁Männer", "▁young", "▁street"]) assert.ok(tok.tokenToId(w) !== undefined, `${w} in vocab`);
  assert.equal(tok.encode("Hund Männer").map((i) => tok.idToToken(i)), ["▁Hund", "▁Männer"]);
  // punctuation is its own piece: "beach." is "▁beach" + "."
  assert.equal(tok.encode("beach.").map((i) => tok.idToToken(i)), ["▁beach", "."]);
  assert.ok(!tok.encode(corpus.join(" ")).includes(tok.unkId), "byte fallback: never <unk>");
});

test("training is deterministic", () => {
  const again = BpeTokenizer.train(corpus, { vocabSize: 380 });
  assert.equal(again.toJSON(), tok.toJSON());
});

test("unseen characters fall back to bytes and come back intact", () => {
  const s = "Ein Hund 🐕 läuft — naïve Zoë, ▁marker <pad> <0x41> 中文";
  const ids = tok.encode(s);
  assert.ok(ids.some((i) => i >= 5 && i < 261), "some byte tokens");
  assert.is(tok.decode(ids), s);
  // "🐕" is 4 UTF-8 bytes, so 4 byte tokens
  assert.equal(tok.encode("🐕").map((i) => tok.idToToken(i)), ["▁", "<0xF0>", "<0x9F>", "<0x90>", "<0x95>"]);
});

test("normalisation: NFC, whitespace collapsed and trimmed, lone surrogates replaced", () => {
  assert.is(normalize("  a\u0308  \t b\n"), "ä b");
  assert.is(normalize("x\u00a0\u3000y\ufeff"), "x y");
  assert.is(normalize("a\ud800b"), "a\ufffdb");
  assert.is(normalize("\ud83d\ude00"), "😀"); // a valid pair stays
  assert.equal(splitWords(""), []);
  assert.equal(splitPieces("(2016)Hund."), ["(", "2016", ")", "Hund", "."]);
  assert.equal(splitPieces("naïve-ish"), ["naïve", "-", "ish"]);
});

// Any UTF-16 string: arbitrary code points, lone surrogates, whitespace, and characters the toy alphabet has.
const unit = fc.oneof(
  fc.integer({ min: 0, max: 0x10ffff }).filter((c) => c < 0xd800 || c > 0xdfff).map((c) => String.fromCodePoint(c)),
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  fc.constantFrom(" ", "  ", "\t", "\n", WORD_MARKER, "a\u0308", "ä", ".", "Hund", "the ", "<pad>", "\u00a0", "😀"),
);
const anyString = fc.string({ unit, maxLength: 40 });

test("property: decode(encode(s)) === normalize(s) for any string", () => {
  fc.assert(
    fc.property(anyString, (s) => {
      assert.is(tok.decode(tok.encode(s)), normalize(s));
    }),
    FC,
  );
});

test("property: normalize is idempotent, and encoding a normalised string changes nothing", () => {
  fc.assert(
    fc.property(anyString, (s) => {
      const n = normalize(s);
      assert.is(normalize(n), n);
      assert.equal(tok.encode(n), tok.encode(s));
    }),
    FC,
  );
});

// Input length is the other axis: `translate` died on one whitespace-free word of 300,000 digits
// (ids were appended with push(...ids), one call argument per id, past V8's argument limit).
test("property: decode(encode(s)) === normalize(s) for words of any length, up to 400,000 characters", () => {
  const repeated = fc.constantFrom("7", "1234567890", "a", "Hund", "ä", "a\u0308", "😀", "\u4e2d", ".", "-", "<pad>", WORD_MARKER);
  const length = fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 300 }), weight: 2 },
    { arbitrary: fc.integer({ min: 100_000, max: 400_000 }), weight: 1 },
    { arbitrary: fc.constant(300_000), weight: 1 },
  );
  fc.assert(
    fc.property(repeated, length, anyString, anyString, (unit, n, before, after) => {
      const s = before + " " + unit.repeat(Math.ceil(n / unit.length)) + " " + after;
      assert.is(tok.decode(tok.encode(s)), normalize(s));
    }),
    { seed: 7062, numRuns: 16 },
  );
  const digits = "1234567890".repeat(30_000);
  const ids = tok.encode(`Zahl: ${digits}!`);
  assert.ok(ids.length > 300_000, `${ids.length} ids`);
  assert.is(tok.decode(ids), `Zahl: ${digits}!`);
});

test("decode: skipSpecial, Int32Array input, bad ids", () => {
  const ids = [tok.bosId, ...tok.encode("a dog"), tok.eosId, tok.padId];
  assert.is(tok.decode(ids), "a dog");
  assert.is(tok.decode(Int32Array.from(ids)), "a dog");
  assert.is(tok.decode(ids, { skipSpecial: false }), "<bos> a dog<eos><pad>");
  assert.throws(() => tok.decode([1e9]), /id 1000000000 at position 0 is outside the vocabulary/);
  assert.throws(() => tok.decode([1.5]), /outside the vocabulary/);
  assert.is(tok.decode([5 + 0xc3]), "\ufffd"); // a lone lead byte is ill-formed UTF-8
});

// A naive BPE that recounts every pair before every merge: the definition the incremental trainer must match.
function naiveMerges(lines: string[], alphabet: string[], vocabSize: number, minFrequency: number): [string, string][] {
  const vocab = [...SPECIAL_TOKENS, ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`), ...alphabet];
  const id = new Map(vocab.map((t, i) => [t, i] as [string, number]));
  const freq = new Map<string, number>();
  for (const line of lines) {
    splitWords(normalize(line)).forEach((w) =>
      splitPieces(w).forEach((p, i) => {
        const key = (i === 0 ? WORD_MARKER : "U") + p;
        freq.set(key, (freq.get(key) ?? 0) + 1);
      }),
    );
  }
  const words = [...freq.entries()].map(([k, f]) => ({ f, s: k[0] === WORD_MARKER ? [...k] : [...k.slice(1)] }));
  const merges: [string, string][] = [];
  const seen = new Set<string>();
  while (vocab.length < vocabSize) {
    const counts = new Map<string, number>();
    for (const { f, s } of words) for (let i = 0; i + 1 < s.length; i++) counts.set(s[i] + "\u0000" + s[i + 1], (counts.get(s[i] + "\u0000" + s[i + 1]) ?? 0) + f);
    let best: [string, string] | undefined, bestCount = 0;
    for (const [k, c] of counts) {
      const [a, b] = k.split("\u0000");
      const better = !best || c > bestCount || (c === bestCount && (id.get(a)! < id.get(best[0])! || (a === best[0] && id.get(b)! < id.get(best[1])!)));
      if (better) [best, bestCount] = [[a, b], c];
    }
    if (!best || bestCount < minFrequency) break;
    const merged = best[0] + best[1];
    if (!id.has(merged)) id.set(merged, vocab.push(merged) - 1);
    const k = best.join("\u0000");
    if (!seen.has(k)) merges.push(best), seen.add(k);
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.s.length; i++) {
        if (i + 1 < w.s.length && w.s[i] === best[0] && w.s[i + 1] === best[1]) out.push(merged), i++;
        else out.push(w.s[i]);
      }
      w.s = out;
    }
  }
  return merges;
}

test("property: incremental training learns the same merges as a full recount", () => {
  const word = fc.constantFrom("aa", "aaa", "ab", "ba", "abab", "b", "ä", "aä", "cab", "a.", ".", "ab,ab");
  const lines = fc.array(fc.array(word, { minLength: 1, maxLength: 6 }).map((w) => w.join(" ")), { minLength: 1, maxLength: 30 });
  fc.assert(
    fc.property(lines, fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 3 }), (ls, extra, minFrequency) => {
      const base = BpeTokenizer.train(ls, { vocabSize: 100000, minFrequency: Infinity });
      const size = base.vocabSize + extra;
      const trained = BpeTokenizer.train(ls, { vocabSize: size, minFrequency });
      assert.equal(trained.toJSON().merges, naiveMerges(ls, trained.toJSON().alphabet, size, minFrequency));
    }),
    { seed: 99, numRuns: 150 },
  );
});

test("save/load round trip, atomic write, clear errors", () => {
  const dir = mkdtempSync(join(tmpdir(), "hasten-bpe-"));
  try {
    const path = join(dir, "bpe.json");
    tok.save(path);
    assert.equal(readdirSync(dir), ["bpe.json"], "no temp file left behind");
    const loaded = BpeTokenizer.load(path);
    assert.equal(loaded.toJSON(), tok.toJSON());
    for (const line of corpus.slice(0, 50)) assert.equal(loaded.encode(line), tok.encode(line));
    tok.save(path); // overwriting works
    assert.equal(BpeTokenizer.load(path).toJSON(), tok.toJSON());

    assert.throws(() => BpeTokenizer.load(join(dir, "missing.json")), /no tokenizer file at .*missing\.json/);
    writeFileSync(join(dir, "bad.json"), "{ not json");
    assert.throws(() => BpeTokenizer.load(join(dir, "bad.json")), /bad\.json is not valid JSON/);
    const json = JSON.parse(readFileSync(path, "utf8"));
    writeFileSync(join(dir, "wrong.json"), JSON.stringify({ ...json, format: "sentencepiece" }));
    assert.throws(() => BpeTokenizer.load(join(dir, "wrong.json")), /wrong\.json: expected format "hasten-bpe", got "sentencepiece"/);
    writeFileSync(join(dir, "size.json"), JSON.stringify({ ...json, vocabSize: 7 }));
    assert.throws(() => BpeTokenizer.load(join(dir, "size.json")), /vocabSize is 7 but the merges build 380 tokens/);
    assert.throws(() => BpeTokenizer.fromJSON({ ...json, merges: [["zz", "q"]] }), /uses a token that is not in the vocabulary/);
    assert.throws(() => BpeTokenizer.fromJSON([]), /expected a tokenizer object, got an array/);
    assert.throws(() => BpeTokenizer.fromJSON({ ...json, alphabet: ["a"], merges: [] }), /must contain the word marker/);
    assert.throws(() => BpeTokenizer.fromJSON({ ...json, alphabet: ["ab"] }), /alphabet\[0\] must be one character, got "ab"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("train: a vocabSize below the base vocabulary is refused", () => {
  assert.throws(() => BpeTokenizer.train(corpus, { vocabSize: 100 }), /vocabSize 100 is smaller than the base vocabulary/);
  assert.throws(() => BpeTokenizer.train(corpus, { vocabSize: 0 }), /positive integer/);
});

const dataDir = findDataDir();
const trainDe = dataDir && join(dataDir, "multi30k", "train.de");
if (!trainDe || !existsSync(trainDe)) skipTest(test, 'Multi30k: small joint vocabulary round-trips every valid line', "Multi30k not found; set DATA_DIR");
else test("Multi30k: small joint vocabulary round-trips every valid line", () => {
  const m = join(dataDir!, "multi30k");
  const train = [...readLines(join(m, "train.de")).slice(0, 300), ...readLines(join(m, "train.en")).slice(0, 300)];
  const t = BpeTokenizer.train(train, { vocabSize: 1000 });
  assert.is(t.vocabSize, 1000);
  for (const line of [...readLines(join(m, "valid.de")), ...readLines(join(m, "valid.en"))]) {
    assert.is(t.decode(t.encode(line)), normalize(line));
  }
});

test.run();
