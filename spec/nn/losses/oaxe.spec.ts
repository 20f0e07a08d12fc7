// OAXE and ngram-OAXE against float64 references that try every alignment, their properties
// (invariant under permuting the target, ≤ XE, truncation only lowers it), gradients against
// central differences, the reductions, the async form, the wasm backend, and refused input.
import fc from "fast-check";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { crossEntropy, getBackend, registeredBackends, setBackend, tensor, type Tensor } from "../../../core/index.ts";
import { ngramOaxeLoss, ngramOaxeLossAsync, oaxeLoss, oaxeLossAsync, type OaxeOptions } from "../../../nn/index.ts";
import { close, maxAbsDiff, numericGrad, orderAgnosticRef, randomLogits, randomTarget } from "./ref.ts";

const t = suite("losses/oaxe");
const FC = { seed: 2021, numRuns: 40 };
const PAD = 0;

t.before(async () => {
  await setBackend("cpu");
});

const values = (x: Tensor): number[] => Array.from(x.dataSync());
const ids32 = (ids: number[], B: number, N: number): Tensor => tensor(Int32Array.from(ids), { shape: [B, N], dtype: "int32" });

// A batch: B ≤ 3 sentences of up to N ≤ 5 tokens over V ≤ 7 ids (so repeated tokens happen).
const batch = fc.record({
  B: fc.integer({ min: 1, max: 3 }),
  N: fc.integer({ min: 1, max: 5 }),
  V: fc.integer({ min: 2, max: 7 }),
  seed: fc.nat(),
  ls: fc.constantFrom(0, 0.1),
  truncate: fc.constantFrom(0, 0.05, 0.2),
});

t("OAXE equals the float64 reference over every permutation (label smoothing, truncation, mean and sum)", () => {
  fc.assert(fc.property(batch, fc.constantFrom("mean" as const, "sum" as const), ({ B, N, V, seed, ls, truncate }, reduction) => {
    const z = randomLogits([B, N, V], seed);
    const { ids, t: y } = randomTarget(B, N, V, seed + 1, PAD, 1, 1);
    const got = oaxeLoss(z, y, { ignoreIndex: PAD, labelSmoothing: ls, truncate, reduction }).item();
    const want = orderAgnosticRef(z.dataSync(), { B, N, V, target: ids, ignoreIndex: PAD, labelSmoothing: ls, truncate, n: 1, reduction });
    return close(got, want, 1e-5);
  }), FC);
});

t("OAXE is unchanged when the target tokens (or the prediction rows) are permuted", () => {
  fc.assert(fc.property(batch, fc.nat(), ({ B, N, V, seed, ls }, pseed) => {
    const z = randomLogits([B, N, V], seed);
    const { ids, lengths } = randomTarget(B, N, V, seed + 1, PAD, 1, 1);
    const base = oaxeLoss(z, ids32(ids, B, N), { ignoreIndex: PAD, labelSmoothing: ls }).item();
    // Shuffle each sentence's tokens among its own positions (padding stays on the right).
    const shuffled = ids.slice();
    const rows = Array.from(z.dataSync());
    let s = pseed;
    for (let b = 0; b < B; b++) {
      for (let i = lengths[b] - 1; i > 0; i--) {
        s = (s * 1103515245 + 12345) % 2147483648;
        const j = s % (i + 1);
        [shuffled[b * N + i], shuffled[b * N + j]] = [shuffled[b * N + j], shuffled[b * N + i]];
        // and independently swap two prediction rows
        const r1 = (b * N + i) * V, r2 = (b * N + ((s >> 8) % (i + 1))) * V;
        for (let v = 0; v < V; v++) [rows[r1 + v], rows[r2 + v]] = [rows[r2 + v], rows[r1 + v]];
      }
    }
    const targetPerm = oaxeLoss(z, ids32(shuffled, B, N), { ignoreIndex: PAD, labelSmoothing: ls }).item();
    const zRows = tensor(Float32Array.from(rows), { shape: [B, N, V] });
    const rowsPerm = oaxeLoss(zRows, ids32(ids, B, N), { ignoreIndex: PAD, labelSmoothing: ls }).item();
    return close(targetPerm, base, 1e-6) && close(rowsPerm, base, 1e-6);
  }), FC);
});

t("OAXE ≤ XE, and 0 ≤ truncated ≤ untruncated (truncate = 0 is untruncated)", () => {
  fc.assert(fc.property(batch, ({ B, N, V, seed, ls, truncate }) => {
    const z = randomLogits([B, N, V], seed);
    const { t: y } = randomTarget(B, N, V, seed + 1, PAD, 1, 1);
    const o: OaxeOptions = { ignoreIndex: PAD, labelSmoothing: ls };
    const oaxe = oaxeLoss(z, y, o).item(), xe = crossEntropy(z, y, o).item();
    const trunc = oaxeLoss(z, y, { ...o, truncate }).item(), zero = oaxeLoss(z, y, { ...o, truncate: 0 }).item();
    return oaxe <= xe + 1e-6 && trunc <= oaxe + 1e-6 && trunc >= 0 && zero === oaxe;
  }), FC);
});

t("when each row's cheapest token differs, OAXE is the sum of the row minima", () => {
  // Position i strongly prefers token (i + 2) mod 4 + 1, a permutation of the target 1..4.
  const V = 6, N = 4;
  const z = new Float32Array(N * V);
  for (let i = 0; i < N; i++) z[i * V + ((i + 2) % 4) + 1] = 5;
  const logits = tensor(z, { shape: [1, N, V] });
  const got = oaxeLoss(logits, ids32([1, 2, 3, 4], 1, N), { reduction: "sum" }).item();
  const want = N * -Math.log(Math.exp(5) / (Math.exp(5) + V - 1));
  assert.ok(close(got, want, 1e-6), `${got} vs ${want}`);
});

t("truncation: the paper's rule drops exactly the chosen pairs with p < truncate; truncate = 1 keeps only smoothing", () => {
  const V = 4;
  // Row 0 gives token 1 p = 0.7; row 1 gives token 2 p = 0.1 (and token 1 less): identity is optimal.
  const p = [[0.7, 0.05, 0.2, 0.05], [0.3, 0.05, 0.1, 0.55]];
  const logits = tensor(Float32Array.from(p.flat().map(Math.log)), { shape: [1, 2, V] });
  const y = ids32([0, 2], 1, 2);
  const nll = (x: number): number => -Math.log(x);
  assert.ok(close(oaxeLoss(logits, y, { reduction: "sum" }).item(), nll(0.7) + nll(0.1), 1e-6));
  assert.ok(close(oaxeLoss(logits, y, { reduction: "sum", truncate: 0.2 }).item(), nll(0.7), 1e-6));
  assert.ok(close(oaxeLoss(logits, y, { reduction: "sum", truncate: 0.09 }).item(), nll(0.7) + nll(0.1), 1e-6));
  assert.is(oaxeLoss(logits, y, { reduction: "sum", truncate: 1 }).item(), 0);
  const smooth = (row: number[]): number => row.reduce((s, x) => s - Math.log(x), 0) / V;
  const ls = oaxeLoss(logits, y, { reduction: "sum", truncate: 1, labelSmoothing: 0.1 }).item();
  assert.ok(close(ls, 0.1 * (smooth(p[0]) + smooth(p[1])), 1e-6), `${ls}`);
});

t("gradients equal central differences of the float64 reference", () => {
  fc.assert(fc.property(batch, fc.constantFrom(1, 2), ({ B, N, V, seed, ls, truncate }, n) => {
    const z = randomLogits([B, N, V], seed);
    const { ids, t: y } = randomTarget(B, N, V, seed + 1, PAD, 1, 1);
    const o = { ignoreIndex: PAD, labelSmoothing: ls, truncate };
    const loss = n === 1 ? oaxeLoss(z, y, o) : ngramOaxeLoss(z, y, { ...o, n });
    loss.backward();
    const ref = (x: Float64Array): number => orderAgnosticRef(x, { B, N, V, target: ids, ...o, n, reduction: "mean" });
    const fd = numericGrad(ref, z.dataSync(), 1e-4);
    return maxAbsDiff(z.grad!.dataSync(), fd) < 2e-3;
  }), { ...FC, numRuns: 25 });
});

t("reductions: none is [B, N] with 0 at padding, sum its total, mean per non-padding token", () => {
  const z = randomLogits([2, 4, 5], 7);
  const { ids, t: y } = randomTarget(2, 4, 5, 8, PAD, 1, 1);
  const o = { ignoreIndex: PAD, labelSmoothing: 0.1, truncate: 0.1 };
  const none = oaxeLoss(z, y, { ...o, reduction: "none" });
  assert.equal(none.shape, [2, 4]);
  values(none).forEach((v, k) => ids[k] === PAD && assert.is(v, 0));
  const total = values(none).reduce((a, b) => a + b, 0);
  assert.ok(close(oaxeLoss(z, y, { ...o, reduction: "sum" }).item(), total, 1e-6));
  assert.ok(close(oaxeLoss(z, y, o).item(), total / ids.filter((v) => v !== PAD).length, 1e-6));
});

t("padding anywhere: ignored positions drop out (same loss as the compacted sentence)", () => {
  const z = randomLogits([1, 5, 6], 3);
  const zc = tensor(Float32Array.from([0, 2, 3].flatMap((i) => Array.from(z.dataSync().subarray(i * 6, i * 6 + 6)))), { shape: [1, 3, 6] });
  const a = oaxeLoss(z, ids32([4, PAD, 1, 4, PAD], 1, 5), { ignoreIndex: PAD }).item();
  const b = oaxeLoss(zc, ids32([4, 1, 4], 1, 3), { ignoreIndex: PAD }).item();
  assert.ok(close(a, b, 1e-6), `${a} vs ${b}`);
});

t("all targets ignored: sum 0 with a zero gradient, mean NaN (as crossEntropy)", () => {
  const z = randomLogits([2, 3, 4], 1);
  const y = ids32([PAD, PAD, PAD, PAD, PAD, PAD], 2, 3);
  const s = oaxeLoss(z, y, { ignoreIndex: PAD, reduction: "sum" });
  s.backward();
  assert.is(s.item(), 0);
  assert.ok(values(z.grad!).every((g) => g === 0));
  assert.ok(Number.isNaN(oaxeLoss(z, y, { ignoreIndex: PAD }).item()));
  assert.ok(Number.isNaN(crossEntropy(z, y, { ignoreIndex: PAD }).item()));
});

t("ngram-OAXE: n = 1 is OAXE, n ≥ length is XE, and it equals the reference over every window matching", () => {
  fc.assert(fc.property(batch, fc.integer({ min: 1, max: 4 }), ({ B, N, V, seed, ls, truncate }, n) => {
    const z = randomLogits([B, N, V], seed);
    const { ids, t: y } = randomTarget(B, N, V, seed + 1, PAD, 1, 1);
    const o = { ignoreIndex: PAD, labelSmoothing: ls, truncate };
    const got = ngramOaxeLoss(z, y, { ...o, n }).item();
    const ok = close(got, orderAgnosticRef(z.dataSync(), { B, N, V, target: ids, ...o, n, reduction: "mean" }), 1e-5);
    const one = close(ngramOaxeLoss(z, y, { ...o, n: 1 }).item(), oaxeLoss(z, y, o).item(), 0);
    const xe = close(ngramOaxeLoss(z, y, { ignoreIndex: PAD, labelSmoothing: ls, n: N }).item(), crossEntropy(z, y, { ignoreIndex: PAD, labelSmoothing: ls }).item(), 1e-6);
    return ok && one && xe;
  }), FC);
});

t("ngram-OAXE: between OAXE and XE when one n-gram order is already right; block reordering of the target is free", () => {
  // Position pairs (0,1), (2,3) predict the bigrams "5 6" and "7 8" sharply. The target "7 8 5 6"
  // reorders whole bigrams: bigram-OAXE pairs windows 0 and 2 with them and pays only for the
  // middle window ("8 5" against positions 1, 2).
  const V = 9, N = 4;
  const z = new Float32Array(N * V);
  [5, 6, 7, 8].forEach((tok, i) => (z[i * V + tok] = 8));
  const logits = tensor(z, { shape: [1, N, V] });
  const y = ids32([7, 8, 5, 6], 1, N);
  const xe = crossEntropy(logits, y).item(), oaxe = oaxeLoss(logits, y).item(), bi = ngramOaxeLoss(logits, y, { n: 2 }).item();
  assert.ok(oaxe < bi && bi < xe, `${oaxe} < ${bi} < ${xe}`);
  const inOrder = ngramOaxeLoss(logits, ids32([5, 6, 7, 8], 1, N), { n: 2 }).item();
  assert.ok(close(inOrder, oaxe, 1e-6), `${inOrder} vs ${oaxe}`);
});

t("async forms equal the sync ones", async () => {
  const z = randomLogits([2, 4, 6], 11);
  const { t: y } = randomTarget(2, 4, 6, 12, PAD, 1, 1);
  const o = { ignoreIndex: PAD, labelSmoothing: 0.1, truncate: 0.05 };
  assert.is((await oaxeLossAsync(z, y, o)).item(), oaxeLoss(z, y, o).item());
  assert.is((await ngramOaxeLossAsync(z, y, { ...o, n: 2 })).item(), ngramOaxeLoss(z, y, { ...o, n: 2 }).item());
  // bad input rejects the promise (it never throws synchronously)
  const rejected = await ngramOaxeLossAsync(z, y, { ...o, n: 0 }).then(() => "", (e: Error) => e.message);
  assert.match(rejected, /n must be an integer ≥ 1/);
  assert.match(await oaxeLossAsync(z, y, { truncate: 2 }).then(() => "", (e: Error) => e.message), /truncate is a probability/);
});

t("wasm backend: same loss and gradient as cpu", async () => {
  if (!registeredBackends().includes("wasm")) return;
  const z = randomLogits([3, 6, 50], 5), { ids } = randomTarget(3, 6, 50, 6, PAD, 1, 2);
  const o = { ignoreIndex: PAD, labelSmoothing: 0.1, truncate: 0.02 };
  const cpuLoss = oaxeLoss(z, ids32(ids, 3, 6), o);
  cpuLoss.backward();
  const cpuGrad = values(z.grad!);
  const be = await setBackend("wasm");
  try {
    const zw = tensor(Float32Array.from(z.dataSync()), { shape: [3, 6, 50], requiresGrad: true, backend: be });
    const lw = oaxeLoss(zw, tensor(Int32Array.from(ids), { shape: [3, 6], dtype: "int32", backend: be }), o);
    lw.backward();
    assert.ok(close(lw.item(), cpuLoss.item(), 1e-5));
    assert.ok(maxAbsDiff(values(zw.grad!), cpuGrad) < 1e-5);
  } finally {
    await setBackend("cpu");
  }
});

t("bad input is refused with a clear message", () => {
  const z = randomLogits([2, 3, 4], 1);
  const y = ids32([1, 2, 3, 1, 2, 0], 2, 3);
  assert.throws(() => oaxeLoss(z, tensor([[1, 2, 3], [1, 2, 0]])), /target must be int32/);
  assert.throws(() => oaxeLoss(z.reshape([6, 4]), y), /logits must be \[B, N, V\]/);
  assert.throws(() => oaxeLoss(z, ids32([1, 2, 1, 2], 2, 2)), /target must be \[2,3\]/);
  assert.throws(() => oaxeLoss(z, ids32([1, 2, 9, 1, 2, 0], 2, 3)), /target\[0\]\[2\] = 9 is outside the vocabulary \[0, 4\)/);
  assert.throws(() => oaxeLoss(z, ids32([1, 2, -1, 1, 2, 0], 2, 3), { ignoreIndex: 0 }), /= -1 is outside/);
  assert.throws(() => oaxeLoss(z, y, { truncate: 1.5 }), /truncate is a probability in \[0, 1\]/);
  assert.throws(() => oaxeLoss(z, y, { labelSmoothing: -0.1 }), /labelSmoothing must be in \[0, 1\]/);
  assert.throws(() => oaxeLoss(z, y, { reduction: "avg" as "mean" }), /unknown reduction "avg"/);
  assert.throws(() => oaxeLoss(z.detach().int(), y), /logits must be float32/);
  assert.throws(() => ngramOaxeLoss(z, y, { n: 0 }), /n must be an integer ≥ 1/);
  assert.throws(() => ngramOaxeLoss(z, y, {} as { n: number }), /n must be an integer ≥ 1/);
  assert.is(getBackend().name, "cpu");
});

t.run();
