// CTC: the forward recursion against the sum over every path (T ≤ 5), probabilities of all
// targets summing to 1, the single-path case, impossible targets, gradients against central
// differences, PyTorch's ctc_loss on fixed cases (a counted skip without torch), and bad input.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Generator, randn, registeredBackends, setBackend, tensor, type Tensor } from "../../../core/index.ts";
import { findTorchPython } from "../../../interop/pytorch/python.ts";
import { ctcLoss, ctcLossAsync, type CtcOptions } from "../../../nn/index.ts";
import { skipTest } from "../../helpers/skip.ts";
import { close, ctcBrute, maxAbsDiff, numericGrad } from "./ref.ts";

const t = suite("losses/ctc");
const FC = { seed: 2006, numRuns: 60 };

t.before(async () => {
  await setBackend("cpu");
});

const ids32 = (ids: number[], B: number, L: number): Tensor => tensor(Int32Array.from(ids), { shape: [B, L], dtype: "int32" });

// A random case: B sentences, T ≤ 5 steps, V ≤ 3 symbols (one is the blank), targets ≤ 3 long.
const small = fc.record({
  B: fc.integer({ min: 1, max: 3 }),
  T: fc.integer({ min: 1, max: 5 }),
  V: fc.integer({ min: 2, max: 3 }),
  L: fc.integer({ min: 0, max: 3 }),
  blank: fc.nat(),
  seed: fc.nat(),
});

interface Case {
  z: Tensor; // logits [B, T, V]
  lp: Tensor; // logSoftmax(z)
  targets: Tensor;
  ys: number[][];
  opts: CtcOptions;
}

function makeCase({ B, T, V, L, blank, seed }: { B: number; T: number; V: number; L: number; blank: number; seed: number }): Case {
  const g = new Generator(seed);
  const bl = blank % V;
  const z = randn([B, T, V], { generator: g, std: 1.5, requiresGrad: true });
  const ys: number[][] = [], flat: number[] = [], inputLengths: number[] = [];
  for (let b = 0; b < B; b++) {
    const len = Math.floor(g.random() * (L + 1));
    const y = Array.from({ length: len }, () => {
      const k = Math.floor(g.random() * (V - 1));
      return k >= bl ? k + 1 : k; // any symbol but the blank
    });
    ys.push(y);
    flat.push(...y, ...Array<number>(L - len).fill(bl));
    inputLengths.push(1 + Math.floor(g.random() * T));
  }
  return { z, lp: z.logSoftmax(-1), targets: ids32(flat, B, L), ys, opts: { inputLengths, targetLengths: ys.map((y) => y.length), blank: bl } };
}

t("the forward recursion equals the sum over every path that collapses to the target", () => {
  fc.assert(fc.property(small, (p) => {
    const c = makeCase(p);
    const got = Array.from(ctcLoss(c.lp, c.targets, { ...c.opts, reduction: "none" }).dataSync());
    const lpv = c.lp.dataSync();
    return c.ys.every((y, b) => {
      const want = ctcBrute((tt, v) => lpv[(b * p.T + tt) * p.V + v], (c.opts.inputLengths as number[])[b], p.V, y, c.opts.blank!);
      return want === Infinity ? got[b] === Infinity : close(got[b], want, 1e-5);
    });
  }), FC);
});

t("p(y|x) summed over every target y reachable in T steps is 1", () => {
  const T = 4, V = 3, blank = 1, labels = [0, 2];
  const all: number[][] = [[]];
  for (let len = 1; len <= T; len++) for (const y of all.filter((s) => s.length === len - 1)) for (const l of labels) all.push([...y, l]);
  const B = all.length;
  const lp = randn([1, T, V], { generator: new Generator(3), std: 2 }).logSoftmax(-1).expand([B, T, V]).contiguous();
  const targets = ids32(all.flatMap((y) => [...y, ...Array<number>(T - y.length).fill(blank)]), B, T);
  const loss = ctcLoss(lp, targets, { inputLengths: Array(B).fill(T), targetLengths: all.map((y) => y.length), blank, reduction: "none" });
  const total = Array.from(loss.dataSync()).reduce((s, l) => s + Math.exp(-l), 0);
  assert.ok(Math.abs(total - 1) < 1e-5, `Σ p(y|x) = ${total}`);
});

t("T = L with no adjacent repeats: one path, so CTC is the sum of the target's log-probabilities", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 8 }), fc.nat(), (T, seed) => {
    const V = 6, g = new Generator(seed);
    const y: number[] = [];
    while (y.length < T) {
      const s = 1 + Math.floor(g.random() * (V - 1));
      if (y.length === 0 || s !== y[y.length - 1]) y.push(s);
    }
    const lp = randn([1, T, V], { generator: g }).logSoftmax(-1);
    const got = ctcLoss(lp, ids32(y, 1, T), { inputLengths: [T], targetLengths: [T], reduction: "sum" }).item();
    const lpv = lp.dataSync();
    return close(got, -y.reduce((s, v, k) => s + lpv[k * V + v], 0), 1e-5);
  }), FC);
});

t("an impossible target (T < L + repeats) is +∞ with no gradient, or 0 with zeroInfinity", () => {
  const z = randn([2, 3, 4], { generator: new Generator(1), requiresGrad: true });
  const lp = z.logSoftmax(-1);
  const targets = ids32([1, 1, 2, 1, 1, 0], 2, 3); // "1 1 2" needs 4 steps; "1 1" needs 3
  const o = { inputLengths: [3, 3], targetLengths: [3, 2] };
  const none = Array.from(ctcLoss(lp, targets, { ...o, reduction: "none" }).dataSync());
  assert.is(none[0], Infinity);
  assert.ok(Number.isFinite(none[1]));
  assert.is(ctcLoss(lp, targets, { ...o, reduction: "sum" }).item(), Infinity);
  const zi = ctcLoss(lp, targets, { ...o, reduction: "none", zeroInfinity: true });
  assert.equal(Array.from(zi.dataSync()), [0, none[1]].map(Math.fround));
  zi.sum().backward();
  const grad = z.grad!.dataSync();
  assert.ok(grad.subarray(0, 12).every((x) => x === 0), "no gradient from the impossible sentence");
  assert.ok(grad.subarray(12).some((x) => x !== 0));
  // no input at all: the empty target has probability 1, any other 0
  const empty = ctcLoss(lp, targets, { inputLengths: [0, 0], targetLengths: [0, 1], reduction: "none" });
  assert.equal(Array.from(empty.dataSync()), [0, Infinity]);
});

t("gradients on free log-probabilities are −γ: equal central differences of the path sum", () => {
  fc.assert(fc.property(small, (p) => {
    const c = makeCase(p);
    // Free inputs (not normalised): the gradient must still be exact.
    const x = randn([p.B, p.T, p.V], { generator: new Generator(p.seed + 7), requiresGrad: true });
    const loss = ctcLoss(x, c.targets, { ...c.opts, reduction: "mean", zeroInfinity: true });
    loss.backward();
    const inLen = c.opts.inputLengths as number[];
    const ref = (v: Float64Array): number => c.ys.reduce((s, y, b) => {
      const l = ctcBrute((tt, k) => v[(b * p.T + tt) * p.V + k], inLen[b], p.V, y, c.opts.blank!);
      return s + (l === Infinity ? 0 : l / Math.max(y.length, 1) / p.B);
    }, 0);
    return maxAbsDiff(x.grad!.dataSync(), numericGrad(ref, x.dataSync(), 1e-4)) < 1e-3;
  }), { ...FC, numRuns: 30 });
});

t("reductions as PyTorch: none [B], sum, mean of loss_b / max(L_b, 1); async equals sync", async () => {
  const c = makeCase({ B: 3, T: 5, V: 3, L: 3, blank: 0, seed: 9 });
  const none = Array.from(ctcLoss(c.lp, c.targets, { ...c.opts, reduction: "none", zeroInfinity: true }).dataSync());
  assert.is(none.length, 3);
  const sum = ctcLoss(c.lp, c.targets, { ...c.opts, reduction: "sum", zeroInfinity: true }).item();
  const mean = ctcLoss(c.lp, c.targets, { ...c.opts, zeroInfinity: true }).item();
  assert.ok(close(sum, none[0] + none[1] + none[2], 1e-6));
  assert.ok(close(mean, none.reduce((s, l, b) => s + l / Math.max(c.ys[b].length, 1), 0) / 3, 1e-6));
  assert.is((await ctcLossAsync(c.lp, c.targets, { ...c.opts, zeroInfinity: true })).item(), mean);
});

t("log-probabilities of −∞ (zero probability) and garbage past T_b do not poison the loss or gradient", () => {
  const V = 3;
  // step 1 forbids symbol 2; step 3 (past T_b = 3) holds NaN
  const raw = [Math.log(0.5), Math.log(0.3), Math.log(0.2), Math.log(0.5), Math.log(0.5), -Infinity, Math.log(0.2), Math.log(0.4), Math.log(0.4), NaN, NaN, NaN];
  const x = tensor(Float32Array.from(raw), { shape: [1, 4, V], requiresGrad: true });
  const loss = ctcLoss(x, ids32([1, 2], 1, 2), { inputLengths: [3], targetLengths: [2], reduction: "sum" });
  loss.backward();
  const want = ctcBrute((tt, v) => Math.fround(raw[tt * V + v]), 3, V, [1, 2], 0);
  assert.ok(close(loss.item(), want, 1e-5), `${loss.item()} vs ${want}`);
  assert.ok(Array.from(x.grad!.dataSync()).every(Number.isFinite));
});

t("wasm backend: same loss and gradient as cpu", async () => {
  if (!registeredBackends().includes("wasm")) return;
  const c = makeCase({ B: 3, T: 5, V: 3, L: 3, blank: 2, seed: 21 });
  const o = { ...c.opts, zeroInfinity: true };
  const cpu = ctcLoss(c.lp, c.targets, o);
  cpu.backward();
  const be = await setBackend("wasm");
  try {
    const z = tensor(Float32Array.from(c.z.dataSync()), { shape: c.z.shape, requiresGrad: true, backend: be });
    const l = ctcLoss(z.logSoftmax(-1), tensor(Int32Array.from(c.targets.dataSync()), { shape: c.targets.shape, dtype: "int32", backend: be }), o);
    l.backward();
    assert.ok(close(l.item(), cpu.item(), 1e-5));
    assert.ok(maxAbsDiff(z.grad!.dataSync(), c.z.grad!.dataSync()) < 1e-5);
  } finally {
    await setBackend("cpu");
  }
});

// PyTorch's ctc_loss on fixed cases (float64 there, float32 here): losses and logit gradients.
const py = findTorchPython();
const TORCH_CASES = [
  { B: 3, T: 6, V: 5, L: 3, blank: 0, seed: 1, reduction: "mean" as const, zeroInfinity: false },
  { B: 4, T: 8, V: 7, L: 4, blank: 3, seed: 2, reduction: "sum" as const, zeroInfinity: false },
  { B: 2, T: 5, V: 3, L: 3, blank: 2, seed: 3, reduction: "none" as const, zeroInfinity: true },
  { B: 5, T: 12, V: 11, L: 6, blank: 0, seed: 4, reduction: "mean" as const, zeroInfinity: true },
  { B: 2, T: 40, V: 50, L: 15, blank: 4, seed: 5, reduction: "mean" as const, zeroInfinity: true },
];
if ("skip" in py) skipTest(t, "ctc against PyTorch's ctc_loss", py.skip);
else {
  t(`equals PyTorch ${py.torch}'s ctc_loss (losses and logit gradients) on fixed cases`, () => {
    const cases = TORCH_CASES.map((p) => ({ p, c: makeCase(p) }));
    const input = cases.map(({ p, c }) => ({
      shape: [p.B, p.T, p.V], logits: Array.from(c.z.dataSync()), targets: Array.from(c.targets.dataSync()),
      inputLengths: c.opts.inputLengths, targetLengths: c.opts.targetLengths, blank: c.opts.blank, reduction: p.reduction, zeroInfinity: p.zeroInfinity,
    }));
    const script = fileURLToPath(new URL("./torch_ctc.py", import.meta.url));
    const run = spawnSync(py.python, [script], { input: JSON.stringify(input), encoding: "utf8", timeout: 120_000 });
    assert.is(run.status, 0, run.stderr);
    const num = (x: number | string): number => (typeof x === "string" ? Number(x.replace("inf", "Infinity")) : x);
    const want = (JSON.parse(run.stdout) as { loss: (number | string)[]; grad: (number | string)[] }[]).map((w) => ({ loss: w.loss.map(num), grad: w.grad.map(num) }));
    cases.forEach(({ p, c }, k) => {
      const loss = ctcLoss(c.lp, c.targets, { ...c.opts, reduction: p.reduction, zeroInfinity: p.zeroInfinity });
      loss.sum().backward();
      const got = Array.from(loss.dataSync());
      got.forEach((l, b) => assert.ok(l === want[k].loss[b] || close(l, want[k].loss[b], 1e-5), `case ${k} loss ${b}: ${l} vs ${want[k].loss[b]}`));
      // An impossible sentence without zeroInfinity: torch's gradient is not meaningful (NaN); only the loss is compared.
      if (!want[k].loss.every(Number.isFinite)) return;
      const d = maxAbsDiff(c.z.grad!.dataSync(), want[k].grad);
      assert.ok(d < 1e-5, `case ${k}: logit gradients differ by ${d}`);
    });
  });
}

t("bad input is refused with a clear message", () => {
  const lp = randn([2, 4, 5]).logSoftmax(-1);
  const y = ids32([1, 2, 3, 4, 0, 0], 2, 3);
  const o = { inputLengths: [4, 4], targetLengths: [3, 1] };
  assert.throws(() => ctcLoss(lp, y, undefined as unknown as CtcOptions), /pass options with inputLengths/);
  assert.throws(() => ctcLoss(lp, y, { targetLengths: [3, 1] } as unknown as CtcOptions), /inputLengths must be an array of 2 lengths/);
  assert.throws(() => ctcLoss(lp, y, { ...o, inputLengths: [4] }), /inputLengths needs one length per sentence \(2\), got 1/);
  assert.throws(() => ctcLoss(lp, y, { ...o, inputLengths: [5, 4] }), /inputLengths\[0\] = 5 is not an integer in \[0, 4\]/);
  assert.throws(() => ctcLoss(lp, y, { ...o, targetLengths: [3, 1.5] }), /targetLengths\[1\] = 1.5/);
  assert.throws(() => ctcLoss(lp, y, { ...o, targetLengths: [4, 1] }), /targetLengths\[0\] = 4 is not an integer in \[0, 3\]/);
  assert.throws(() => ctcLoss(lp, ids32([1, 0, 3, 4, 0, 0], 2, 3), o), /targets\[0\]\[1\] is the blank id 0/);
  assert.throws(() => ctcLoss(lp, ids32([1, 2, 5, 4, 0, 0], 2, 3), o), /targets\[0\]\[2\] = 5 is outside the vocabulary \[0, 5\)/);
  assert.throws(() => ctcLoss(lp, y, { ...o, blank: 5 }), /blank must be a token id in \[0, 5\)/);
  assert.throws(() => ctcLoss(lp.reshape([8, 5]), y, o), /logProbs must be \[B, T, V\] \(batch first\)/);
  assert.throws(() => ctcLoss(lp, ids32([1, 2, 3], 1, 3), o), /targets must be \[2,L\]/);
  assert.throws(() => ctcLoss(lp, tensor([[1, 2, 3], [4, 0, 0]]), o), /targets must be int32/);
  assert.throws(() => ctcLoss(lp, y, { ...o, reduction: "batchmean" as "mean" }), /unknown reduction "batchmean"/);
});

t.run();
