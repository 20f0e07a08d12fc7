// Optimizers against hand-computed and float64 reference updates; all-or-nothing steps; exact
// resume through state dicts saved as safetensors; gradient clipping; schedules.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { crossEntropy, Generator, loadSafetensors, randint, randn, saveSafetensors, tensor, tidy, type Tensor } from "../../core/index.ts";
import { Adam, AdamW, clipGradNorm, clipGradNormAsync, cosineLr, inverseSqrtLr, Linear, noamLr, SGD } from "../../nn/index.ts";

const vals = (t: Tensor) => Array.from(t.dataSync());
const param = (v: number[]) => tensor(v, { requiresGrad: true });
const setGrad = (p: Tensor, g: number[]) => {
  p.zeroGrad();
  p.grad = tensor(g, { shape: p.shape });
};
function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.is(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) assert.unreachable(`${what}: index ${i}: ${got[i]} vs ${want[i]}`);
  }
}

// Float64 Adam/AdamW straight from the papers' formulas.
function refAdam(p0: number[], grads: number[][], lrs: number[], o: { b1: number; b2: number; eps: number; wd: number; decoupled: boolean }): number[] {
  const p = p0.slice(), m = p.map(() => 0), v = p.map(() => 0);
  grads.forEach((g0, s) => {
    const t = s + 1, lr = lrs[s];
    for (let i = 0; i < p.length; i++) {
      const g = o.decoupled ? g0[i] : g0[i] + o.wd * p[i];
      m[i] = o.b1 * m[i] + (1 - o.b1) * g;
      v[i] = o.b2 * v[i] + (1 - o.b2) * g * g;
      const mh = m[i] / (1 - o.b1 ** t), vh = v[i] / (1 - o.b2 ** t);
      if (o.decoupled) p[i] -= lr * o.wd * p[i];
      p[i] -= (lr * mh) / (Math.sqrt(vh) + o.eps);
    }
  });
  return p;
}

for (const decoupled of [true, false]) {
  const name = decoupled ? "AdamW" : "Adam";
  test(`${name} matches a float64 reference over 6 steps with a changing lr`, () => {
    const g = new Generator(decoupled ? 1 : 2);
    const p0 = [0.5, -1.5, 2, 0.25, -0.75];
    const a = param(p0.slice(0, 2)), b = param(p0.slice(2));
    const opts = { lr: 0.05, betas: [0.8, 0.95] as [number, number], eps: 1e-6, weightDecay: 0.1 };
    const opt = decoupled ? new AdamW([a, b], opts) : new Adam([a, b], opts);
    const grads: number[][] = [], lrs: number[] = [];
    for (let s = 0; s < 6; s++) {
      const gs = p0.map(() => g.random() * 4 - 2);
      grads.push(gs);
      lrs.push((opt.lr = 0.05 / (s + 1)));
      setGrad(a, gs.slice(0, 2));
      setGrad(b, gs.slice(2));
      opt.step();
    }
    assert.is(opt.stepCount, 6);
    const want = refAdam(p0, grads, lrs, { b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0.1, decoupled });
    assertClose([...vals(a), ...vals(b)], want, 1e-5, name);
  });
}

test("SGD: plain, momentum, nesterov and weight decay against hand-computed steps", () => {
  const run = (opts: Partial<ConstructorParameters<typeof SGD>[1]>): number[] => {
    const p = param([1, 2]);
    const opt = new SGD([p], { lr: 0.1, ...opts });
    setGrad(p, [0.5, -1]);
    opt.step();
    setGrad(p, [1, 1]);
    opt.step();
    return vals(p);
  };
  // p ← p − 0.1·g twice
  assertClose(run({}), [1 - 0.05 - 0.1, 2 + 0.1 - 0.1], 1e-6, "plain");
  // b₁ = g₁ = [0.5, −1]; b₂ = 0.9·b₁ + g₂ = [1.45, 0.1]
  assertClose(run({ momentum: 0.9 }), [1 - 0.05 - 0.145, 2 + 0.1 - 0.01], 1e-6, "momentum");
  // d₁ = g₁ + 0.9·b₁ = 1.9·g₁ = [0.95, −1.9]; d₂ = g₂ + 0.9·b₂ = [2.305, 1.09]
  assertClose(run({ momentum: 0.9, nesterov: true }), [1 - 0.095 - 0.2305, 2 + 0.19 - 0.109], 1e-6, "nesterov");
  // g' = g + 0.5·p: step 1 g' = [1, 0] → p = [0.9, 2]; step 2 g' = [1.45, 2] → p = [0.755, 1.8]
  assertClose(run({ weightDecay: 0.5 }), [0.755, 1.8], 1e-6, "weight decay");
  assert.throws(() => new SGD([param([1])], { lr: 0.1, nesterov: true }), /nesterov needs momentum > 0/);
});

test("a step with a missing or non-finite gradient throws and changes nothing", () => {
  const a = param([1, 2]), b = param([3]);
  const opt = new AdamW([["a", a], ["b", b]], { lr: 0.1 });
  setGrad(a, [1, 1]);
  setGrad(b, [1]);
  opt.step();
  const before = { a: vals(a), b: vals(b), state: Object.fromEntries(Object.entries(opt.stateDict().buffers).map(([k, t]) => [k, vals(t)])) };
  const same = () => {
    assert.equal(vals(a), before.a);
    assert.equal(vals(b), before.b);
    assert.equal(Object.fromEntries(Object.entries(opt.stateDict().buffers).map(([k, t]) => [k, vals(t)])), before.state);
    assert.is(opt.stepCount, 1);
  };
  b.zeroGrad();
  assert.throws(() => opt.step(), /parameter b has no gradient/);
  same();
  setGrad(b, [NaN]);
  assert.throws(() => opt.step(), /non-finite gradient in b; parameters left unchanged/);
  same();
  setGrad(b, [Infinity]);
  assert.throws(() => opt.step(), /non-finite gradient in b/);
  same();
  setGrad(a, [1, 2]);
  b.zeroGrad();
  b.grad = tensor([1, 1]);
  assert.throws(() => opt.step(), /gradient of b is \[2\], parameter is \[1\]/);
  same();
  // skipMissing: parameters without a gradient are left alone.
  const lazy = new SGD([a, b], { lr: 1, skipMissing: true });
  b.zeroGrad();
  setGrad(a, [1, 1]);
  lazy.step();
  assert.equal(vals(a), [before.a[0] - 1, before.a[1] - 1]);
  assert.equal(vals(b), before.b);
});

test("clipGradNorm returns the global norm and rescales only above maxNorm", () => {
  const a = param([0, 0]), b = param([0]);
  setGrad(a, [3, 4]);
  setGrad(b, [12]);
  assert.is(clipGradNorm([a, b], 20), 13);
  assert.equal(vals(a.grad!), [3, 4]);
  const norm = clipGradNorm([a, b], 6.5);
  assert.ok(Math.abs(norm - 13) < 1e-5);
  assertClose([...vals(a.grad!), ...vals(b.grad!)], [1.5, 2, 6], 1e-6, "scaled by 1/2");
  setGrad(b, [NaN]);
  const clipped = vals(a.grad!);
  assert.ok(Number.isNaN(clipGradNorm([a, b], 1)));
  assert.equal(vals(a.grad!), clipped, "a non-finite norm scales nothing");
  assert.throws(() => clipGradNorm([a], 0), /maxNorm must be > 0, got 0/);
});

test("clipGradNormAsync agrees with clipGradNorm", async () => {
  const a = param([0, 0]), b = param([0]);
  setGrad(a, [3, 4]);
  setGrad(b, [12]);
  const norm = await clipGradNormAsync([a, b], 6.5);
  assert.ok(Math.abs(norm - 13) < 1e-5);
  assertClose([...vals(a.grad!), ...vals(b.grad!)], [1.5, 2, 6], 1e-6, "scaled by 1/2");
});

test("optimizer state through safetensors resumes training exactly", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hasten-optim-"));
  const g = new Generator(5);
  const x = randn([6, 4], { generator: g }), y = randint(0, 3, [6], { generator: g });
  const trainSteps = (lin: Linear, opt: AdamW, n: number) => {
    for (let s = 0; s < n; s++) {
      tidy(() => crossEntropy(lin.forward(x), y).backward());
      clipGradNorm(lin.parameters(), 1);
      opt.step();
      opt.zeroGrad();
    }
  };
  const a = new Linear(4, 3, { generator: new Generator(1) });
  const optA = new AdamW(a.namedParameters(), { lr: 0.05, weightDecay: 0.01 });
  trainSteps(a, optA, 3);
  await a.save(join(dir, "model.safetensors"));
  const st = optA.stateDict();
  assert.equal(Object.keys(st.buffers).sort(), ["bias.exp_avg", "bias.exp_avg_sq", "weight.exp_avg", "weight.exp_avg_sq"]);
  await saveSafetensors(join(dir, "optim.safetensors"), st.buffers, { metadata: { step: String(st.step), lr: String(st.lr) } });
  trainSteps(a, optA, 3);

  const b = new Linear(4, 3, { generator: new Generator(99) });
  b.load(join(dir, "model.safetensors"));
  const optB = new AdamW(b.namedParameters(), { lr: 0.05, weightDecay: 0.01 });
  optB.loadStateDict({ step: 3, lr: 0.05, hyper: {}, buffers: loadSafetensors(join(dir, "optim.safetensors")) });
  assert.is(optB.stepCount, 3);
  trainSteps(b, optB, 3);
  assert.equal(vals(b.weight), vals(a.weight), "bit-identical after resume");
  assert.equal(vals(b.bias!), vals(a.bias!));

  assert.throws(() => optB.loadStateDict({ step: 1, lr: 0.1, hyper: {}, buffers: { "weight.exp_avg": randn([2, 2]) } }),
    /weight\.exp_avg: expected float32\[3,4\], got float32\[2,2\]; missing buffers: weight\.exp_avg_sq, bias\.exp_avg, bias\.exp_avg_sq/);
  assert.throws(() => optB.loadStateDict({ step: -1, lr: 0.1, hyper: {}, buffers: {} }), /step must be a non-negative integer, got -1/);
  assert.is(optB.stepCount, 6, "failed loads change nothing");
});

test("lr setter and constructor validate their input", () => {
  const opt = new AdamW([param([1])]);
  assert.is(opt.lr, 1e-3);
  opt.lr = 0.5;
  assert.is(opt.lr, 0.5);
  assert.throws(() => (opt.lr = NaN), /lr must be a finite number ≥ 0, got NaN/);
  assert.throws(() => new AdamW([]), /got no parameters/);
  assert.throws(() => new AdamW([tensor([1])]), /parameter 0 must be a float32 tensor with requiresGrad/);
  assert.throws(() => new AdamW([param([1])], { betas: [0.9, 1] }), /betas must be in \[0, 1\)/);
});

test("schedules: inverse-sqrt and Noam, cosine with warm-up", () => {
  const inv = (s: number) => inverseSqrtLr(s, { peakLr: 1, warmup: 4 });
  assert.equal([1, 2, 3, 4].map(inv), [0.25, 0.5, 0.75, 1]);
  assert.is(inv(16), 0.5);
  assert.is(inverseSqrtLr(9, { peakLr: 1, warmup: 0 }), 1 / 3);
  for (const s of [1, 100, 4000, 4001, 50000]) {
    const a = noamLr(s, { dModel: 512, warmup: 4000 }), b = inverseSqrtLr(s, { peakLr: 1 / Math.sqrt(512 * 4000), warmup: 4000 });
    assert.ok(Math.abs(a - b) < 1e-12 * Math.max(a, b), `step ${s}: ${a} vs ${b}`);
  }
  const cos = (s: number) => cosineLr(s, { peakLr: 1, warmup: 2, totalSteps: 12, minLr: 0.1 });
  assert.equal([1, 2].map(cos), [0.5, 1]);
  assert.ok(Math.abs(cos(7) - 0.55) < 1e-12);
  assert.ok(Math.abs(cos(12) - 0.1) < 1e-12 && Math.abs(cos(50) - 0.1) < 1e-12);
  for (let s = 3; s < 12; s++) assert.ok(cos(s + 1) < cos(s), "decreasing after warm-up");
  assert.throws(() => inv(0), /step must be an integer ≥ 1 \(the update number\), got 0/);
  assert.throws(() => cosineLr(1, { peakLr: 1, warmup: 5, totalSteps: 3 }), /totalSteps must be an integer ≥ warmup 5, got 3/);
});

test.run();
