// Parallel corpus reading, length filtering, and the token-budget batcher.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { encodePairs, filterByLength, readLines, readParallel } from "../../nn/data/corpus.ts";
import { Batcher, type Batch, type Example } from "../../nn/data/batcher.ts";
import { defaultDataDir, findDataDir, multi30kFiles, projectRoot } from "../../nn/data/paths.ts";
import { skipTest } from "../helpers/skip.ts";

const FC = { seed: 31337, numRuns: 100 };
const PAD = 0, BOS = 1, EOS = 2;

const dir = mkdtempSync(join(tmpdir(), "hasten-data-"));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

test("readParallel: strips lines, accepts CRLF and a missing final newline", () => {
  const src = file("a.de", "Ein Hund.  \r\nZwei Männer \r\n\tDrei\n");
  const tgt = file("a.en", "A dog.\nTwo men\nThree");
  assert.equal(readParallel(src, tgt), [
    { src: "Ein Hund.", tgt: "A dog." },
    { src: "Zwei Männer", tgt: "Two men" },
    { src: "Drei", tgt: "Three" },
  ]);
  assert.equal(readLines(file("empty", "")), []);
  assert.equal(readLines(file("blank-line", "a\n\nb\n")), ["a", "", "b"]); // an empty line is a sentence
});

test("readParallel: misaligned or missing files are refused, naming them", () => {
  const src = file("b.de", "eins\nzwei\ndrei\n");
  const tgt = file("b.en", "one\ntwo\n");
  assert.throws(() => readParallel(src, tgt), (e: Error) => e.message.includes(`${src} has 3 lines but ${tgt} has 2`));
  assert.throws(() => readParallel(join(dir, "nope.de"), tgt), /readParallel: source file not found: .*nope\.de/);
  assert.throws(() => readParallel(src, join(dir, "nope.en")), /readParallel: target file not found: .*nope\.en/);
});

test("data dir: DATA_DIR wins, else ../shared/data beside the project root", () => {
  assert.is(defaultDataDir({ DATA_DIR: dir }), resolve(dir));
  assert.throws(() => defaultDataDir({ DATA_DIR: join(dir, "missing") }), /DATA_DIR=.*missing does not exist/);
  assert.is(findDataDir({ DATA_DIR: join(dir, "missing") }), undefined);
  const fallback = resolve(projectRoot, "..", "shared", "data");
  assert.is(findDataDir({}), existsSync(fallback) ? fallback : undefined);
  assert.equal(multi30kFiles("valid", "de", "en", "/d"), { src: "/d/multi30k/valid.de", tgt: "/d/multi30k/valid.en" });
});

test("encodePairs and filterByLength", () => {
  const enc = (s: string) => s.split(" ").filter(Boolean).map((w) => w.length);
  const pairs = encodePairs(
    [
      { src: "a b c", tgt: "x y" },
      { src: "", tgt: "x" },
      { src: "a b c d e f g h", tgt: "x" },
      { src: "a b", tgt: "x y z w v u t s r q p" },
    ],
    enc,
  );
  assert.ok(pairs[0].src instanceof Int32Array);
  assert.equal([...pairs[0].src], [1, 1, 1]);
  assert.equal(filterByLength(pairs, { maxLen: 10 }).map((p) => p.index), [0, 2]); // empty and too long dropped
  assert.equal(filterByLength(pairs, { maxLen: 10, ratio: 3 }).map((p) => p.index), [0]); // 8:1 dropped
  assert.equal(filterByLength(pairs, { maxLen: 20, minLen: 0 }).map((p) => p.index), [0, 1, 2, 3]);
  assert.throws(() => filterByLength(pairs, { maxLen: 5, ratio: 0.5 }), /ratio must be >= 1/);
});

const seq = (n: number, start: number) => Int32Array.from({ length: n }, (_, i) => start + i);
const examplesArb = fc.array(
  fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 30 })).map(([s, t]) => ({ src: seq(s, 10), tgt: seq(t, 100) })),
  { minLength: 1, maxLength: 120 },
);

function checkBatch(b: Batch, examples: Example[], maxTokens: number) {
  const [B, S] = b.srcShape, [B2, T] = b.tgtShape;
  assert.is(B, B2);
  assert.ok(B * S <= maxTokens && B * T <= maxTokens, `batch ${B}x${S} / ${B}x${T} over ${maxTokens}`);
  assert.is(b.src.length, B * S);
  assert.is(b.tgtIn.length, B * T);
  b.indices.forEach((ex, r) => {
    const { src, tgt } = examples[ex];
    const row = (a: Int32Array, w: number) => [...a.subarray(r * w, (r + 1) * w)];
    const pad = (xs: number[], w: number) => [...xs, ...new Array(w - xs.length).fill(PAD)];
    assert.equal(row(b.src, S), pad(Array.from(src), S));
    assert.equal(row(b.tgtIn, T), pad([BOS, ...Array.from(tgt)], T));
    assert.equal(row(b.tgtOut, T), pad([...Array.from(tgt), EOS], T));
  });
  assert.is(b.numTokens, b.indices.reduce((n, i) => n + examples[i].tgt.length + 1, 0));
}

test("property: each epoch yields every example exactly once, in batches within maxTokens", () => {
  fc.assert(
    fc.property(examplesArb, fc.integer({ min: 32, max: 300 }), fc.integer({ min: 0, max: 1000 }), (examples, maxTokens, seed) => {
      const batcher = new Batcher(examples, { maxTokens, padId: PAD, bosId: BOS, eosId: EOS, seed });
      for (let epoch = 0; epoch < 2; epoch++) {
        const seen = new Array(examples.length).fill(0);
        for (const b of batcher.epochBatches()) {
          assert.is(b.epoch, epoch);
          checkBatch(b, examples, maxTokens);
          for (const i of b.indices) seen[i]++;
        }
        assert.ok(seen.every((c) => c === 1), `epoch ${epoch}: counts ${seen}`);
      }
    }),
    FC,
  );
});

test("property: restoring a saved state reproduces the same batch sequence", () => {
  fc.assert(
    fc.property(examplesArb, fc.integer({ min: 32, max: 200 }), fc.integer({ min: 0, max: 60 }), (examples, maxTokens, skip) => {
      const opts = { maxTokens, padId: PAD, bosId: BOS, eosId: EOS, seed: 5 };
      const a = new Batcher(examples, opts);
      for (let i = 0; i < skip; i++) a.next();
      const state = a.getState();
      const expected = Array.from({ length: 25 }, () => a.next()); // crosses epoch boundaries too
      const b = new Batcher(examples, opts);
      b.setState(JSON.parse(JSON.stringify(state)));
      const got = Array.from({ length: 25 }, () => b.next());
      assert.equal(got.map((x) => [x.epoch, x.position, x.indices]), expected.map((x) => [x.epoch, x.position, x.indices]));
      assert.equal([...got[24].tgtIn], [...expected[24].tgtIn]);
    }),
    FC,
  );
});

test("seeds and epochs change the order; shuffle=false is sorted by length and fixed", () => {
  const examples = Array.from({ length: 200 }, (_, i) => ({ src: seq(1 + (i % 17), 10), tgt: seq(1 + ((i * 7) % 13), 100) }));
  const order = (b: Batcher, n: number) => Array.from({ length: n }, () => b.next().indices).flat();
  const opts = { maxTokens: 64, padId: PAD, bosId: BOS, eosId: EOS };
  const n = new Batcher(examples, opts).batchesInEpoch;
  const e0 = order(new Batcher(examples, { ...opts, seed: 1 }), n);
  const e0again = order(new Batcher(examples, { ...opts, seed: 1 }), n);
  const other = order(new Batcher(examples, { ...opts, seed: 2 }), n);
  assert.equal(e0, e0again);
  assert.not.equal(e0, other);
  const twoEpochs = new Batcher(examples, { ...opts, seed: 1 });
  const first = order(twoEpochs, n), second = order(twoEpochs, twoEpochs.batchesInEpoch);
  assert.equal(first, e0);
  assert.not.equal(second, first);

  const sorted = new Batcher(examples, { ...opts, shuffle: false });
  const batches = Array.from({ length: sorted.batchesInEpoch }, () => sorted.next());
  const widths = batches.map((b) => Math.max(b.srcShape[1], b.tgtShape[1]));
  assert.equal(widths, [...widths].sort((x, y) => x - y));
  assert.equal(sorted.next().indices, batches[0].indices); // the next epoch repeats it
});

test("Batcher: clear errors for impossible budgets and bad states", () => {
  const examples = [{ src: seq(10, 3), tgt: seq(4, 3) }];
  const opts = { maxTokens: 8, padId: PAD, bosId: BOS, eosId: EOS };
  assert.throws(() => new Batcher(examples, opts), /example 0 alone needs 10 padded tokens .* maxTokens is 8/);
  assert.throws(() => new Batcher([], opts), /no examples/);
  const b = new Batcher(examples, { ...opts, maxTokens: 64 });
  assert.throws(() => b.setState({ seed: 0, epoch: 0, position: 5 }), /position must be an integer in \[0, 1\]/);
  assert.throws(() => b.setState({ seed: -1, epoch: 0, position: 0 }), /seed must be an integer/);
  assert.throws(() => b.setState({ seed: 0, epoch: 1.5, position: 0 }), /epoch must be an integer/);
  assert.equal(b.getState(), { seed: 0, epoch: 0, position: 0 });
  const one = new Batcher([{ src: new Int32Array(0), tgt: new Int32Array(0) }], { ...opts, maxTokens: 4 });
  const batch = one.next();
  assert.equal(batch.srcShape, [1, 1]); // an empty source still gets one (pad) column
  assert.equal([...batch.tgtIn, ...batch.tgtOut], [BOS, EOS]);
});

const dataDir = findDataDir();
if (!dataDir || !existsSync(join(dataDir, "multi30k", "train.de"))) skipTest(test, 'Multi30k: train, valid and test2016 read aligned', "Multi30k not found; set DATA_DIR");
else test("Multi30k: train, valid and test2016 read aligned, trailing spaces stripped", () => {
  const sizes: Record<string, number> = { train: 29000, valid: 1014, test2016: 1000 };
  for (const split of ["train", "valid", "test2016"] as const) {
    const { src, tgt } = multi30kFiles(split, "de", "en", dataDir);
    const pairs = readParallel(src, tgt);
    assert.is(pairs.length, sizes[split]);
    assert.ok(pairs.every((p) => p.src === p.src.trim() && p.tgt === p.tgt.trim() && p.src !== "" && p.tgt !== ""));
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
