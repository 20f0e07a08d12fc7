// Layers: gradients against finite differences (inputs and parameters), forward values against
// hand-written references, init statistics, dropout behaviour.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Generator, noGrad, randint, randn, tensor, type Tensor } from "../../core/index.ts";
import {
  DecoderLayer, Dropout, Embedding, EncoderLayer, FeedForward, init, LayerNorm, LearnedPositions, Linear, SinusoidalPositions,
} from "../../nn/index.ts";

// Central differences in float32, perturbing each checked element of each tensor in place (so
// module parameters are checked through the module itself). The loss is Σ w ⊙ f with a fixed
// random w, so that every output element matters. Checks up to `maxPerTensor` elements each.
function checkModuleGrad(
  f: () => Tensor, tensors: Record<string, Tensor>, opts: { eps?: number; atol?: number; rtol?: number; maxPerTensor?: number; seed?: number } = {},
): void {
  const { eps = 1e-2, atol = 3e-3, rtol = 3e-2, maxPerTensor = 24, seed = 7 } = opts;
  const g = new Generator(seed);
  const shape = noGrad(() => f()).shape;
  const w = tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => g.random() * 2 - 1), { shape });
  const loss = () => f().mul(w).sum();
  for (const t of Object.values(tensors)) {
    t.zeroGrad();
    if (!t.requiresGrad) t.requiresGrad_(true);
  }
  loss().backward();
  for (const [name, t] of Object.entries(tensors)) {
    assert.ok(t.grad, `${name} got a gradient`);
    const got = t.grad!.dataSync();
    const base = Float32Array.from(t.dataSync());
    const idx = base.length <= maxPerTensor ? base.map((_, i) => i) : Array.from({ length: maxPerTensor }, () => g.randint(0, base.length));
    const at = (i: number, v: number) => {
      const d = base.slice();
      d[i] = v;
      t.assign_(tensor(d, { shape: t.shape }));
      return noGrad(() => loss().item());
    };
    for (const i of idx) {
      const num = (at(i, base[i] + eps) - at(i, base[i] - eps)) / (2 * eps);
      if (!(Math.abs(got[i] - num) <= atol + rtol * Math.abs(num))) {
        assert.unreachable(`${name}[${i}]: autodiff ${got[i]} vs finite difference ${num}`);
      }
    }
    t.assign_(tensor(base, { shape: t.shape }));
  }
}

const vals = (t: Tensor) => Array.from(t.dataSync());
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5) => {
  assert.is(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])))) assert.unreachable(`index ${i}: ${a[i]} vs ${b[i]}`);
};

test("Linear: y = x·Wᵀ + b, and gradients for x, W, b", () => {
  const g = new Generator(1);
  const lin = new Linear(4, 3, { generator: g });
  const x = randn([2, 5, 4], { generator: g });
  const y = lin.forward(x);
  assert.equal(y.shape, [2, 5, 3]);
  const X = vals(x), W = vals(lin.weight), B = vals(lin.bias!), Y = vals(y);
  for (let r = 0; r < 10; r++) {
    for (let o = 0; o < 3; o++) {
      let s = B[o];
      for (let i = 0; i < 4; i++) s += X[r * 4 + i] * W[o * 4 + i];
      assert.ok(Math.abs(Y[r * 3 + o] - s) < 1e-5);
    }
  }
  lin.bias!.assign_(randn([3], { generator: g }));
  checkModuleGrad(() => lin.forward(x), { x, weight: lin.weight, bias: lin.bias! });
  assert.throws(() => lin.forward(randn([2, 5])), /Linear: expected input \[\.\.\., 4\], got \[2,5\]/);
  assert.is(new Linear(4, 3, { bias: false }).bias, undefined);
});

test("Embedding: lookup and gradient to the rows used", () => {
  const g = new Generator(2);
  const emb = new Embedding(6, 4, { generator: g });
  const ids = tensor([[1, 5, 1], [0, 2, 2]], { dtype: "int32" });
  const y = emb.forward(ids);
  assert.equal(y.shape, [2, 3, 4]);
  assert.equal(vals(y).slice(4, 8), vals(emb.weight).slice(20, 24));
  checkModuleGrad(() => emb.forward(ids), { weight: emb.weight });
  assert.throws(() => emb.forward(tensor([1, 2])), /ids must be int32, got float32\[2\]/);
});

test("LayerNorm: normalised rows, and gradients for x, weight, bias", () => {
  const g = new Generator(3);
  const ln = new LayerNorm(5);
  const x = randn([3, 5], { generator: g, std: 2, mean: 1 });
  const y = vals(ln.forward(x));
  for (let r = 0; r < 3; r++) {
    const row = y.slice(r * 5, r * 5 + 5);
    const mean = row.reduce((a, b) => a + b) / 5;
    const v = row.reduce((a, b) => a + (b - mean) ** 2, 0) / 5;
    assert.ok(Math.abs(mean) < 1e-5 && Math.abs(v - 1) < 1e-3, `row ${r}: mean ${mean}, var ${v}`);
  }
  ln.weight.assign_(randn([5], { generator: g }));
  ln.bias.assign_(randn([5], { generator: g }));
  checkModuleGrad(() => ln.forward(x), { x, weight: ln.weight, bias: ln.bias });
});

test("Dropout: zeroes ≈ p of the units, scales the rest by 1/(1−p), same seed same mask, eval is identity", () => {
  const x = randn([4000], { generator: new Generator(4) });
  const d1 = new Dropout(0.25, new Generator(10)), d2 = new Dropout(0.25, new Generator(10));
  const y = vals(d1.forward(x)), X = vals(x);
  let zeros = 0;
  for (let i = 0; i < y.length; i++) {
    if (y[i] === 0) zeros++;
    else assert.ok(Math.abs(y[i] - X[i] / 0.75) < 1e-5);
  }
  assert.ok(Math.abs(zeros / y.length - 0.25) < 0.03, `dropped fraction ${zeros / y.length}`);
  assert.equal(vals(d2.forward(x)), y);
  d1.eval();
  assert.equal(Array.from(d1.forward(x).dataSync()), Array.from(x.dataSync())); // identity in eval mode (a new tensor sharing the buffer)
  assert.throws(() => new Dropout(1), /p must be in \[0, 1\), got 1/);
});

test("Sinusoidal positions follow Vaswani et al. §3.5; learned positions get gradients", () => {
  const pe = new SinusoidalPositions(50, 8);
  const t = vals(pe.forward(50));
  for (const p of [0, 1, 7, 49]) {
    for (let i = 0; i < 8; i += 2) {
      const a = p / 10000 ** (i / 8);
      assert.ok(Math.abs(t[p * 8 + i] - Math.sin(a)) < 1e-6 && Math.abs(t[p * 8 + i + 1] - Math.cos(a)) < 1e-6);
    }
  }
  assert.equal(vals(pe.forward(3, 7)), t.slice(56, 80));
  assert.equal(pe.parameters().length, 0, "not a parameter");
  // Past the table, rows come from the same formula (decoding may run past the training maxLen):
  // the rows a bigger table holds, bit for bit.
  assert.is(pe.bounded, false);
  const big = vals(new SinusoidalPositions(1200, 8).forward(1200));
  assert.equal(vals(pe.forward(4, 48)), big.slice(48 * 8, 52 * 8));
  assert.equal(vals(pe.forward(3, 1197)), big.slice(1197 * 8));
  assert.throws(() => pe.forward(2, -1), /integers >= 0, got 2 and -1/);
  const lp = new LearnedPositions(10, 4, { generator: new Generator(5) });
  assert.is(lp.bounded, true);
  assert.throws(() => lp.forward(4, 8), /positions \[8, 12\) exceed maxLen 10/);
  checkModuleGrad(() => lp.forward(3, 2), { weight: lp.weight });
});

test("FeedForward: GELU gradients; ReLU forward", () => {
  const g = new Generator(6);
  const ff = new FeedForward(4, 8, { activation: "gelu", generator: g });
  const x = randn([2, 3, 4], { generator: g });
  checkModuleGrad(() => ff.forward(x), { x, fc1: ff.fc1.weight, fc1b: ff.fc1.bias!, fc2: ff.fc2.weight });
  const fr = new FeedForward(4, 8, { activation: "relu", generator: new Generator(6) });
  const h = vals(fr.fc1.forward(x)).map((v) => Math.max(0, v));
  const W2 = vals(fr.fc2.weight), Y = vals(fr.forward(x));
  for (let r = 0; r < 6; r++) {
    for (let o = 0; o < 4; o++) {
      let s = 0;
      for (let j = 0; j < 8; j++) s += h[r * 8 + j] * W2[o * 8 + j];
      assert.ok(Math.abs(Y[r * 4 + o] - s) < 1e-5);
    }
  }
  assert.throws(() => new FeedForward(4, 8, { activation: "tanh" as "relu" }), /activation must be "relu" or "gelu"/);
});

test("EncoderLayer (pre-LN, padding mask): gradients for input and parameters", () => {
  const g = new Generator(8);
  const layer = new EncoderLayer({ dModel: 8, heads: 2, ffn: 16, activation: "gelu", generator: g });
  const x = randn([2, 4, 8], { generator: g });
  const pad = tensor([[0, 0, 0, 1], [0, 0, 0, 0]]);
  checkModuleGrad(() => layer.forward(x, pad), {
    x, q: layer.attn.q.weight, k: layer.attn.k.weight, v: layer.attn.v.weight, o: layer.attn.o.weight,
    ln: layer.attnNorm.weight, fc1: layer.ffn.fc1.weight,
  }, { maxPerTensor: 12 });
});

test("DecoderLayer (causal self + cross-attention): gradients for input, memory and parameters", () => {
  const g = new Generator(9);
  const layer = new DecoderLayer({ dModel: 8, heads: 2, ffn: 16, activation: "gelu", generator: g });
  const x = randn([2, 3, 8], { generator: g }), memory = randn([2, 5, 8], { generator: g });
  const memPad = tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]);
  checkModuleGrad(() => layer.forward(x, { memory, memoryPadMask: memPad }), {
    x, memory, sq: layer.selfAttn.q.weight, ck: layer.crossAttn!.k.weight, cv: layer.crossAttn!.v.weight, fc2: layer.ffn.fc2.weight,
  }, { maxPerTensor: 12 });
  assert.throws(() => layer.forward(x), /needs the encoder memory/);
  const lmLayer = new DecoderLayer({ dModel: 8, heads: 2, ffn: 16, cross: false });
  assert.is(lmLayer.crossAttn, undefined);
  assert.throws(() => lmLayer.forward(x, { memory }), /built without cross-attention/);
});

test("init: xavier uniform bound and variance, embedding std d^-½", () => {
  const g = new Generator(11);
  const w = vals(init.xavierUniform([300, 200], g));
  const a = Math.sqrt(6 / 500);
  assert.ok(w.every((v) => Math.abs(v) <= a));
  const varW = w.reduce((s, v) => s + v * v, 0) / w.length;
  assert.ok(Math.abs(varW - (a * a) / 3) < 0.03 * (a * a) / 3, `var ${varW} vs ${(a * a) / 3}`);
  const e = vals(new Embedding(500, 64, { generator: g }).weight);
  const std = Math.sqrt(e.reduce((s, v) => s + v * v, 0) / e.length);
  assert.ok(Math.abs(std - 1 / 8) < 0.005, `std ${std}`);
  // Same seed, same parameters.
  close(vals(new Linear(5, 7, { generator: new Generator(3) }).weight), vals(new Linear(5, 7, { generator: new Generator(3) }).weight), 0);
  assert.throws(() => init.xavierUniform([5], g), /at least 2 dims/);
  void randint;
});

test.run();
