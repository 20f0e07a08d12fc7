// Glancing sampling (GLAT, nn/tasks/glancing.ts): per sentence exactly ⌊λ·d⌋ target tokens are
// revealed (d = positions the first pass got wrong), they sit where the target has them, every
// other position is [MASK] and is exactly what is scored; λ = 0 or a perfect first pass reveal
// nothing (the one-pass condition); the revealed positions are spread uniformly.
import * as fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { glanceInputs } from "../../nn/tasks/glancing.ts";
import { Generator } from "../../core/index.ts";

const MASK = 3, PAD = 0;
const ids = { maskId: MASK, padId: PAD };
const seededRandom = (seed: number) => {
  const g = new Generator(seed);
  return () => g.random();
};
// Rows of random lengths ≤ T over tokens 4…9, with predictions that are sometimes right.
const caseArb = fc.integer({ min: 1, max: 8 }).chain((T) => fc.record({
  T: fc.constant(T),
  rows: fc.array(fc.integer({ min: 0, max: T }).chain((n) => fc.tuple(
    fc.array(fc.integer({ min: 4, max: 9 }), { minLength: n, maxLength: n }),
    fc.array(fc.integer({ min: 4, max: 9 }), { minLength: T, maxLength: T }),
    fc.array(fc.boolean(), { minLength: T, maxLength: T }),
  )), { minLength: 1, maxLength: 4 }),
  ratio: fc.oneof(fc.constant(0), fc.constant(1), fc.double({ min: 0, max: 1, noNaN: true })),
  seed: fc.nat(),
}));

test("property: ⌊λ·wrong⌋ revealed per sentence, in place; the rest masked and scored; padding untouched", () => {
  fc.assert(fc.property(caseArb, ({ T, rows, ratio, seed }) => {
    const B = rows.length, y = new Int32Array(B * T).fill(PAD), pred = new Int32Array(B * T), n = rows.map((r) => r[0].length);
    rows.forEach(([tgt, guess, right], b) => {
      y.set(tgt, b * T);
      for (let j = 0; j < T; j++) pred[b * T + j] = j < tgt.length && right[j] ? tgt[j] : guess[j];
    });
    const { dec, target, revealed } = glanceInputs({ y, n, T }, pred, ratio, ids, seededRandom(seed));
    for (let b = 0; b < B; b++) {
      let wrong = 0, shown = 0;
      for (let j = 0; j < n[b]; j++) if (pred[b * T + j] !== y[b * T + j]) wrong++;
      assert.is(revealed[b], Math.floor(ratio * wrong));
      for (let j = 0; j < T; j++) {
        const k = b * T + j;
        if (j >= n[b]) {
          assert.is(dec[k], PAD);
          assert.is(target[k], PAD);
        } else if (dec[k] === MASK) assert.is(target[k], y[k], "a masked position is scored against its target");
        else {
          shown++;
          assert.is(dec[k], y[k], "a revealed position holds its target token");
          assert.is(target[k], PAD, "a revealed position is not scored");
        }
      }
      assert.is(shown, revealed[b]);
    }
  }), { numRuns: 300 });
});

test("λ = 0, or a first pass with nothing wrong: every position masked, every one scored", () => {
  const y = Int32Array.from([5, 6, 7, 0, 8, 9, 4, 5]), n = [3, 4], T = 4;
  const wrong = Int32Array.from([9, 9, 9, 9, 4, 4, 5, 4]); // differs from y at every position
  for (const [pred, ratio] of [[wrong, 0], [y, 0.5], [y, 1]] as [Int32Array, number][]) {
    const { dec, target, revealed } = glanceInputs({ y, n, T }, pred, ratio, ids, seededRandom(1));
    assert.equal(Array.from(dec), [MASK, MASK, MASK, PAD, MASK, MASK, MASK, MASK]);
    assert.equal(Array.from(target), Array.from(y));
    assert.equal(revealed, [0, 0]);
  }
  const all = glanceInputs({ y, n, T }, wrong, 1, ids, seededRandom(1)); // everything wrong, λ = 1: the whole target
  assert.equal(Array.from(all.dec), [5, 6, 7, PAD, 8, 9, 4, 5]);
  assert.equal(Array.from(all.target), [PAD, PAD, PAD, PAD, PAD, PAD, PAD, PAD]);
});

test("the revealed positions are uniform: each of 6 positions shown ≈ 2/6 of the time", () => {
  const T = 6, y = Int32Array.from([4, 5, 6, 7, 8, 9]), pred = new Int32Array(6).fill(3 + 100);
  const counts = new Array(T).fill(0), rnd = seededRandom(7), N = 6000;
  for (let i = 0; i < N; i++) {
    const { dec } = glanceInputs({ y, n: [6], T }, pred, 1 / 3, ids, rnd); // ⌊6/3⌋ = 2 revealed
    for (let j = 0; j < T; j++) if (dec[j] !== MASK) counts[j]++;
  }
  const p = 2 / 6, se = Math.sqrt((p * (1 - p)) / N);
  for (const c of counts) assert.ok(Math.abs(c / N - p) < 5 * se, `${counts.map((x) => (x / N).toFixed(3))}`);
});

test("errors: a ratio outside [0, 1], or predictions of the wrong size", () => {
  const y = Int32Array.from([4, 5]);
  assert.throws(() => glanceInputs({ y, n: [2], T: 2 }, y, 1.5, ids, Math.random), /glancing ratio must be in \[0, 1\], got 1.5/);
  assert.throws(() => glanceInputs({ y, n: [2], T: 2 }, [4], 0.5, ids, Math.random), /expected targets and predictions of 1×2 ids, got 2 and 1/);
});

test.run();
