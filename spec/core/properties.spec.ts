// Algebraic properties of ops, checked on random shapes with fast-check (fixed seed).
import fc from "fast-check";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Generator, manualSeed, rand, randn, tensor, logsumexp, crossEntropy } from "../../core/index.ts";

const t = suite("properties");
const FC = { seed: 42, numRuns: 60 };
const dims = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 });

function closeArr(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])))) return false;
  return true;
}

t("broadcasting: a+b = b+a, and (a+b) equals a+expand(b)", () => {
  fc.assert(fc.property(dims, fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), fc.integer(), (shape, ones, seed) => {
    const g = new Generator(seed);
    const bShape = shape.map((d, i) => (ones[i] ? 1 : d)).slice(Math.floor(shape.length / 2));
    const a = randn(shape, { generator: g }), b = randn(bShape, { generator: g });
    const ab = a.add(b), ba = b.add(a);
    assert.equal(ab.shape, shape);
    return closeArr(ab.dataSync(), ba.dataSync(), 0) && closeArr(ab.dataSync(), a.add(b.expand(shape)).dataSync(), 0);
  }), FC);
});

t("reshape and permute round trips are exact", () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }), fc.integer(), (shape, seed) => {
    const g = new Generator(seed);
    const x = randn(shape, { generator: g });
    const perm = g.permutation(shape.length);
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    const back = x.permute(Array.from(perm)).permute(inv);
    const flat = x.reshape(-1).reshape(shape);
    return closeArr(back.dataSync(), x.dataSync(), 0) && closeArr(flat.dataSync(), x.dataSync(), 0);
  }), FC);
});

t("softmax rows sum to 1 and are shift-invariant", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 9 }), fc.double({ min: -50, max: 50, noNaN: true }), fc.integer(), (r, c, shift, seed) => {
    const x = randn([r, c], { generator: new Generator(seed), std: 3 });
    const s = x.softmax(-1);
    const sums = s.sum(-1).dataSync();
    const shifted = x.add(shift).softmax(-1);
    return Array.from(sums).every((v) => Math.abs(v - 1) < 1e-5) && closeArr(shifted.dataSync(), s.dataSync(), 1e-4);
  }), FC);
});

t("logsumexp is stable at ±1e4", () => {
  const x = tensor([[1e4, 1e4, 1e4 - 1], [-1e4, -1e4, -1e4 - 1]]);
  const got = logsumexp(x, 1).dataSync();
  const want = Math.log(2 + Math.exp(-1));
  assert.ok(Math.abs(got[0] - (1e4 + want)) < 1e-2, `got ${got[0]}`);
  assert.ok(Math.abs(got[1] - (-1e4 + want)) < 1e-2, `got ${got[1]}`);
  const inf = logsumexp(tensor([[-Infinity, -Infinity]]), 1).dataSync();
  assert.is(inf[0], -Infinity);
});

t("crossEntropy with label smoothing equals its definition", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 2, max: 8 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer(), (n, v, eps, seed) => {
    const g = new Generator(seed);
    const z = randn([n, v], { generator: g, std: 2 });
    const y = tensor(Array.from({ length: n }, () => g.randint(0, v)), { dtype: "int32" });
    const got = crossEntropy(z, y, { labelSmoothing: eps }).item();
    // −Σ_j q_j log p_j with q = (1−ε)·onehot(y) + ε/V, averaged over rows
    const logp = z.logSoftmax(-1).dataSync(), ys = y.dataSync();
    let want = 0;
    for (let r = 0; r < n; r++) for (let j = 0; j < v; j++) want -= ((j === ys[r] ? 1 - eps : 0) + eps / v) * logp[r * v + j];
    want /= n;
    return Math.abs(got - want) < 1e-4 * (1 + Math.abs(want));
  }), FC);
});

t("matmul is associative within float rounding; (AB)ᵀ = BᵀAᵀ", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 7 }), fc.integer(), (m, k, n, p, seed) => {
    const g = new Generator(seed);
    const a = randn([m, k], { generator: g }), b = randn([k, n], { generator: g }), c = randn([n, p], { generator: g });
    return closeArr(a.matmul(b).matmul(c).dataSync(), a.matmul(b.matmul(c)).dataSync(), 1e-4) &&
      closeArr(a.matmul(b).mT.dataSync(), b.mT.matmul(a.mT).dataSync(), 1e-5);
  }), FC);
});

t("seeded RNG repeats: manualSeed makes randn/rand identical", () => {
  manualSeed(123);
  const a = [...randn([50]).dataSync(), ...rand([10]).dataSync()];
  manualSeed(123);
  const b = [...randn([50]).dataSync(), ...rand([10]).dataSync()];
  assert.equal(a, b);
  manualSeed(124);
  assert.not.equal([...randn([50]).dataSync()], a.slice(0, 50));
});

t("same seed, same numbers on every backend (values are drawn on the host)", async () => {
  const { setBackend } = await import("../../core/index.ts");
  const draws: number[][] = [];
  for (const [name, opts] of [["cpu", undefined], ["wasm", undefined], ["gpujs", { mode: "webasm" }]] as const) {
    const backend = await setBackend(name, opts);
    manualSeed(5);
    draws.push(Array.from(await randn([20], { backend }).data()));
  }
  setBackend("wasm");
  assert.equal(draws[1], draws[0]);
  assert.equal(draws[2], draws[0]);
});

t("sum over all dims in any order equals the total", () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }), fc.integer(), (shape, seed) => {
    const x = randn(shape, { generator: new Generator(seed) });
    const total = x.sum().item();
    let y = x;
    for (let d = shape.length - 1; d >= 0; d--) y = y.sum(d);
    return Math.abs(y.item() - total) < 1e-4 * (1 + Math.abs(total));
  }), FC);
});

t.run();
