// AXE: the dynamic program against every monotone lattice path, the loss against it on random
// batches, ≤ XE when lengths match, non-decreasing in δ, gradients against central differences,
// the prediction sets (gold-length mask, predLengths, all positions), and refused input.
import fc from "fast-check";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { crossEntropy, setBackend, tensor, type Tensor } from "../../../core/index.ts";
import { axeLoss, axeLossAsync } from "../../../nn/index.ts";
import { axeAlign } from "../../../nn/losses/axe.ts";
import { axeBrute, close, logSoftmax64, maxAbsDiff, numericGrad, randomLogits, randomTarget } from "./ref.ts";

const t = suite("losses/axe");
const FC = { seed: 2020, numRuns: 60 };
const PAD = 0, BLANK = 0;

t.before(async () => {
  await setBackend("cpu");
});

const ids32 = (ids: number[], B: number, N: number): Tensor => tensor(Int32Array.from(ids), { shape: [B, N], dtype: "int32" });

// The float64 AXE of logits z [B, M, V] for each sentence's targets and prediction positions.
function axeRef(z: ArrayLike<number>, B: number, M: number, V: number, ys: number[][], preds: number[][], delta: number): number[] {
  const lp = logSoftmax64(z, B * M, V);
  return ys.map((y, b) => {
    const q = preds[b];
    const at = (j: number, tok: number): number => -lp[(b * M + q[j - 1]) * V + tok];
    return axeBrute(y.length, q.length, delta, (i, j) => at(j, y[i - 1]), (j) => at(j, BLANK));
  });
}

const sentencesOf = (ids: number[], B: number, N: number): number[][] => Array.from({ length: B }, (_, b) => ids.slice(b * N, (b + 1) * N).filter((v) => v !== PAD));

t("the DP equals brute force over every lattice path (n, m ≤ 4), and its path costs what it says", () => {
  const grid = fc.record({ n: fc.integer({ min: 0, max: 4 }), m: fc.integer({ min: 1, max: 4 }), delta: fc.double({ min: 0, max: 3, noNaN: true }), seed: fc.nat() });
  fc.assert(fc.property(grid, ({ n, m, delta, seed }) => {
    let s = seed;
    const rnd = (): number => ((s = (s * 16807) % 2147483647) / 2147483647) * 4;
    const a = Array.from({ length: n + 1 }, () => Array.from({ length: m + 1 }, rnd));
    const e = Array.from({ length: m + 1 }, rnd);
    const { cost, path } = axeAlign(n, m, delta, (i, j) => a[i][j], (j) => e[j]);
    const replay = path.reduce((acc, st) => acc + st.weight * (st.target === 0 ? e[st.pred] : a[st.target][st.pred]), 0);
    // every prediction consumed once by align or skip-prediction, every target once by align or skip-target, in order
    const preds = path.filter((st) => st.move !== "skipTarget").map((st) => st.pred);
    const targets = path.filter((st) => st.move !== "skipPrediction").map((st) => st.target);
    const inOrder = (xs: number[], len: number): boolean => xs.length === len && xs.every((x, k) => x === k + 1);
    const monotone = inOrder(preds, m) && inOrder(targets, n);
    return close(cost, axeBrute(n, m, delta, (i, j) => a[i][j], (j) => e[j]), 1e-12) && close(replay, cost, 1e-12) && monotone;
  }), FC);
});

t("axeLoss equals the float64 brute force on random batches (sum and per sentence)", () => {
  const batch = fc.record({ B: fc.integer({ min: 1, max: 3 }), N: fc.integer({ min: 1, max: 4 }), M: fc.integer({ min: 1, max: 4 }), V: fc.integer({ min: 2, max: 6 }), seed: fc.nat(), delta: fc.constantFrom(0, 0.5, 1, 2) });
  fc.assert(fc.property(batch, ({ B, N, M, V, seed, delta }) => {
    const z = randomLogits([B, M, V], seed);
    const { ids, t: y } = randomTarget(B, N, V, seed + 1, PAD, 1, 0);
    const ys = sentencesOf(ids, B, N);
    // same length: predictions are the non-padding positions; otherwise all M
    const preds = ys.map((_, b) => (M === N ? [...Array(N).keys()].filter((i) => ids[b * N + i] !== PAD) : [...Array(M).keys()]));
    if (ys.some((y, b) => y.length > 0 && preds[b].length === 0)) return true;
    const want = axeRef(z.dataSync(), B, M, V, ys, preds, delta);
    const none = Array.from(axeLoss(z, y, { delta, ignoreIndex: PAD, reduction: "none" }).dataSync());
    const sum = axeLoss(z, y, { delta, ignoreIndex: PAD, reduction: "sum" }).item();
    const tokens = ys.reduce((a, y) => a + y.length, 0);
    const mean = axeLoss(z, y, { delta, ignoreIndex: PAD }).item();
    const total = want.reduce((a, b) => a + b, 0);
    return none.every((v, b) => close(v, want[b], 1e-5)) && close(sum, total, 1e-5) && close(mean, total / Math.max(tokens, 1), 1e-5);
  }), FC);
});

t("with as many predictions as targets AXE ≤ XE; AXE is non-decreasing in δ", () => {
  const batch = fc.record({ B: fc.integer({ min: 1, max: 3 }), N: fc.integer({ min: 1, max: 6 }), V: fc.integer({ min: 2, max: 8 }), seed: fc.nat(), d1: fc.double({ min: 0, max: 3, noNaN: true }), d2: fc.double({ min: 0, max: 3, noNaN: true }) });
  fc.assert(fc.property(batch, ({ B, N, V, seed, d1, d2 }) => {
    const z = randomLogits([B, N, V], seed);
    const { t: y } = randomTarget(B, N, V, seed + 1, PAD, 1, 1);
    const [lo, hi] = d1 <= d2 ? [d1, d2] : [d2, d1];
    const a = axeLoss(z, y, { delta: lo, ignoreIndex: PAD }).item(), b = axeLoss(z, y, { delta: hi, ignoreIndex: PAD }).item();
    return a <= b + 1e-6 && b <= crossEntropy(z, y, { ignoreIndex: PAD }).item() + 1e-6;
  }), FC);
});

t("a prediction shifted by one position is forgiven: AXE pays a blank and one skip, XE pays for every token", () => {
  // Predictions say "ε 1 2 3" sharply; the target is "1 2 3 4" → align three, skip target "4".
  const V = 6, N = 4, sharp = 9;
  const z = new Float32Array(N * V);
  [BLANK, 1, 2, 3].forEach((tok, j) => (z[j * V + tok] = sharp));
  const logits = tensor(z, { shape: [1, N, V] });
  const y = ids32([1, 2, 3, 4], 1, N);
  const good = -Math.log(Math.exp(sharp) / (Math.exp(sharp) + V - 1)), bad = -Math.log(1 / (Math.exp(sharp) + V - 1));
  const got = axeLoss(logits, y, { delta: 1, ignoreIndex: PAD, reduction: "sum" }).item();
  assert.ok(close(got, 4 * good + bad, 1e-5), `${got} vs ${4 * good + bad}`);
  assert.ok(crossEntropy(logits, y, { reduction: "sum" }).item() > 3 * bad);
});

t("gradients equal central differences of the float64 reference", () => {
  const batch = fc.record({ B: fc.integer({ min: 1, max: 2 }), N: fc.integer({ min: 1, max: 4 }), M: fc.integer({ min: 1, max: 4 }), V: fc.integer({ min: 2, max: 5 }), seed: fc.nat(), delta: fc.constantFrom(0.5, 1, 1.5) });
  fc.assert(fc.property(batch, ({ B, N, M, V, seed, delta }) => {
    const z = randomLogits([B, M, V], seed);
    const { ids, t: y } = randomTarget(B, N, V, seed + 1, PAD, 1, 1);
    const ys = sentencesOf(ids, B, N);
    const preds = ys.map((_, b) => (M === N ? [...Array(N).keys()].filter((i) => ids[b * N + i] !== PAD) : [...Array(M).keys()]));
    axeLoss(z, y, { delta, ignoreIndex: PAD }).backward();
    const tokens = ys.reduce((a, s) => a + s.length, 0);
    const ref = (x: Float64Array): number => axeRef(x, B, M, V, ys, preds, delta).reduce((a, b) => a + b, 0) / tokens;
    return maxAbsDiff(z.grad!.dataSync(), numericGrad(ref, z.dataSync(), 1e-4)) < 2e-3;
  }), { ...FC, numRuns: 30 });
});

t("predLengths chooses the first positions; an all-blank sentence costs its blanks; async equals sync", async () => {
  const z = randomLogits([2, 5, 6], 4);
  const y = ids32([3, 1, 4, PAD, PAD, PAD, PAD, PAD, PAD, PAD], 2, 5);
  const lp = logSoftmax64(z.dataSync(), 10, 6);
  const got = Array.from(axeLoss(z, y, { delta: 1, ignoreIndex: PAD, predLengths: [4, 2], reduction: "none" }).dataSync());
  const a = (j: number, tok: number): number => -lp[(j - 1) * 6 + tok];
  assert.ok(close(got[0], axeBrute(3, 4, 1, (i, j) => a(j, [3, 1, 4][i - 1]), (j) => a(j, BLANK)), 1e-5));
  assert.ok(close(got[1], -lp[5 * 6 + BLANK] - lp[6 * 6 + BLANK], 1e-5), `${got[1]}`);
  const o = { delta: 0.7, ignoreIndex: PAD, predLengths: [5, 3] };
  assert.is((await axeLossAsync(z, y, o)).item(), axeLoss(z, y, o).item());
});

t("bad input is refused with a clear message", () => {
  const z = randomLogits([2, 3, 4], 1);
  const y = ids32([1, 2, 3, 1, 2, 0], 2, 3);
  assert.throws(() => axeLoss(z, y, undefined as unknown as { delta: number }), /pass options with delta/);
  assert.throws(() => axeLoss(z, y, {} as { delta: number }), /delta must be a finite number ≥ 0/);
  assert.throws(() => axeLoss(z, y, { delta: -1 }), /delta must be/);
  assert.throws(() => axeLoss(z, y, { delta: 1, blank: 4 }), /blank must be a token id in \[0, 4\)/);
  assert.throws(() => axeLoss(z, y, { delta: 1, blank: 2, ignoreIndex: 0 }), /target\[0\]\[1\] is the blank id 2/);
  assert.throws(() => axeLoss(z, y, { delta: 1, ignoreIndex: 0, predLengths: [1] }), /one length per sentence \(2\)/);
  assert.throws(() => axeLoss(z, y, { delta: 1, ignoreIndex: 0, predLengths: [1, 4] }), /predLengths\[1\] = 4/);
  assert.throws(() => axeLoss(z, y, { delta: 1, ignoreIndex: 0, predLengths: [0, 3] }), /sentence 0 has 3 target tokens but no predictions/);
  assert.throws(() => axeLoss(z, ids32([1, 2, 3, 1], 1, 4), { delta: 1 }), /target must be \[2,M\]/);
  assert.throws(() => axeLoss(z, ids32([1, 2, 7, 1, 2, 0], 2, 3), { delta: 1, ignoreIndex: 0 }), /target\[0\]\[2\] = 7 is outside/);
  assert.throws(() => axeLoss(z, tensor([[1, 2, 3]]), { delta: 1 }), /target must be int32/);
});

t.run();
