// The two models: incremental decoding equals the full pass (properties over seeds and
// lengths), padding invariance, beam reorder, a tiny LM overfit, and a leak check over 20
// training steps.
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { crossEntropy, Generator, getBackend, noGrad, randint, tensor, tidy, type Tensor } from "../../core/index.ts";
import {
  AdamW, clipGradNorm, inverseSqrtLr, LM_BENCH_CONFIG, lmConfig, Transformer, transformerConfig, TransformerLM,
} from "../../nn/index.ts";

const FC = { seed: 77, numRuns: 12 };
const vals = (t: Tensor) => Array.from(t.dataSync());
function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) assert.unreachable(`${what}: index ${i}: ${got[i]} vs ${want[i]}`);
  }
}
// Row t of a [B, T, V] array for every b → [B, V].
const at = (x: number[], B: number, T: number, V: number, t: number) =>
  Array.from({ length: B }, (_, b) => x.slice((b * T + t) * V, (b * T + t + 1) * V)).flat();

const small = (seed: number, extra: Partial<Parameters<typeof transformerConfig>[0]> = {}) => new Transformer(transformerConfig({
  vocab: 13, dModel: 16, heads: 2, ffn: 32, encLayers: 2, decLayers: 2, maxLen: 16, seed, ...extra,
}));

test("Transformer: shapes, and decodeStep step by step equals the full decode", () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }),
    fc.boolean(), fc.constantFrom<"sinusoidal" | "learned">("sinusoidal", "learned"),
    (seed, S, T, tied, positions) => noGrad(() => {
      const model = small(seed, { positions, tieEmbeddings: tied, tieOutput: tied }).eval();
      const g = new Generator(seed);
      const src = randint(1, 13, [2, S], { generator: g }), tgt = randint(1, 13, [2, T], { generator: g });
      const full = model.forward(src, tgt);
      assert.equal(full.shape, [2, T, 13]);
      const memory = model.encode(src);
      const mask = src.eq(0);
      const cache = model.createCache();
      const F = vals(full);
      for (let t = 0; t < T; t++) {
        const step = model.decodeStep(tgt.narrow(1, t, 1).reshape(2), memory, mask, cache);
        assert.equal(step.shape, [2, 13]);
        assertClose(vals(step), at(F, 2, T, 13, t), 5e-5, `seed ${seed} step ${t}`);
      }
      assert.is(cache.length, T);
      cache.dispose();
      model.dispose();
    }),
  ), FC);
});

test("Transformer: extra source padding changes no logit", () => {
  noGrad(() => {
    const model = small(3).eval();
    const src = tensor([[5, 6, 7, 0], [8, 9, 10, 11]], { dtype: "int32" });
    const srcLong = tensor([[5, 6, 7, 0, 0, 0, 0], [8, 9, 10, 11, 0, 0, 0]], { dtype: "int32" });
    const tgt = tensor([[1, 2, 3], [4, 5, 6]], { dtype: "int32" });
    assertClose(vals(model.forward(srcLong, tgt)), vals(model.forward(src, tgt)), 1e-5, "logits");
    const m = vals(model.encode(src)), mLong = vals(model.encode(srcLong));
    // Real source positions of the memory are unchanged too.
    for (let b = 0; b < 2; b++) assertClose(mLong.slice(b * 7 * 16, (b * 7 + 3) * 16), m.slice(b * 4 * 16, (b * 4 + 3) * 16), 1e-5, `memory ${b}`);
  });
});

test("Transformer: reordering the cache (beam search) equals decoding the chosen prefixes", () => {
  noGrad(() => {
    const model = small(4).eval();
    const g = new Generator(4);
    const src = randint(1, 13, [1, 5], { generator: g }).expand(3, 5);
    const prefix = randint(1, 13, [3, 3], { generator: g });
    const memory = model.encode(src), mask = src.eq(0);
    const cache = model.createCache();
    for (let t = 0; t < 3; t++) model.decodeStep(prefix.narrow(1, t, 1).reshape(3), memory, mask, cache);
    const idx = tensor([2, 2, 0], { dtype: "int32" });
    cache.reorder(idx);
    const next = tensor([7, 8, 9], { dtype: "int32" });
    const got = vals(model.decodeStep(next, memory.indexSelect(0, idx), mask.indexSelect(0, idx), cache));
    const seqs = tensor([[...vals(prefix).slice(6, 9), 7], [...vals(prefix).slice(6, 9), 8], [...vals(prefix).slice(0, 3), 9]], { dtype: "int32" });
    const full = vals(model.decode(seqs, memory, mask));
    assertClose(got, at(full, 3, 4, 13, 3), 5e-5, "after reorder");
  });
});

test("Transformer: same seed, same dropout masks; clear errors for bad input", () => {
  const a = small(5, { dropout: 0.3 }), b = small(5, { dropout: 0.3 });
  const src = tensor([[3, 4, 5]], { dtype: "int32" }), tgt = tensor([[1, 2]], { dtype: "int32" });
  assert.equal(vals(a.forward(src, tgt)), vals(b.forward(src, tgt)));
  assert.not.equal(vals(a.forward(src, tgt)), vals(a.eval().forward(src, tgt)));
  assert.throws(() => a.encode(tensor([[1, 2]])), /expected \[B, T\] int32 token ids, got float32\[1,2\]/);
  // Learned positions end at maxLen; sinusoidal ones do not (nn/layers/positions.ts).
  assert.throws(() => small(5, { positions: "learned" }).encode(tensor([new Array(17).fill(1)], { dtype: "int32" })), /positions \[0, 17\) exceed maxLen 16/);
  assert.equal(a.encode(tensor([new Array(17).fill(1)], { dtype: "int32" })).shape, [1, 17, 16]);
  assert.throws(() => transformerConfig({ vocab: 10, dModel: 10, heads: 3 }), /dModel 10 must be divisible by heads 3/);
});

const lmSmall = (seed: number, extra: Partial<Parameters<typeof lmConfig>[0]> = {}) =>
  new TransformerLM(lmConfig({ vocab: 17, dModel: 16, heads: 2, ffn: 32, layers: 2, maxLen: 32, dropout: 0, seed, ...extra }));

test("LM: step-by-step and chunked (speculative) scoring with truncate equal the full causal pass", () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 2, max: 9 }), fc.integer({ min: 1, max: 4 }), fc.option(fc.integer({ min: 1, max: 3 })),
    (seed, T, k, window) => noGrad(() => {
      const lm = lmSmall(seed, { window: window ?? undefined }).eval();
      const ids = randint(0, 17, [2, T], { generator: new Generator(seed) });
      const F = vals(lm.forward(ids));
      const cache = lm.createCache();
      for (let t = 0; t < T; t++) assertClose(vals(lm.decodeStep(ids.narrow(1, t, 1).reshape(2), cache)), at(F, 2, T, 17, t), 5e-5, `step ${t}`);
      // Speculative pattern: roll back k positions, score them again in one call.
      const back = Math.min(k, T);
      cache.truncate(T - back);
      const chunk = vals(lm.forward(ids.narrow(1, T - back, back), { cache }));
      assert.is(cache.length, T);
      assertClose(chunk, Array.from({ length: 2 }, (_, b) => F.slice((b * T + T - back) * 17, (b * T + T) * 17)).flat(), 5e-5, "chunk");
      cache.dispose();
      lm.dispose();
    }),
  ), FC);
});

test("LM: the benchmark config has the expected parameter count", () => {
  const lm = new TransformerLM(lmConfig({ ...LM_BENCH_CONFIG }));
  const [V, D, F, L, P] = [1000, 256, 1024, 2, 512];
  const perLayer = 4 * (D * D + D) + 2 * 2 * D + (D * F + F) + (F * D + D);
  assert.is(lm.numParameters(), V * D + P * D + L * perLayer + 2 * D);
  lm.dispose();
});

test("LM memorises a short sequence (tiny overfit)", () => {
  const lm = lmSmall(6, { vocab: 12, dModel: 32, heads: 4, ffn: 64 });
  const seq = [1, 5, 3, 9, 2, 2, 7, 4, 11, 6, 8, 3, 10, 0, 5, 9];
  const ids = tensor([seq], { dtype: "int32" });
  const inp = ids.narrow(1, 0, 15), tgt = ids.narrow(1, 1, 15);
  const opt = new AdamW(lm.parameters(), { lr: 1e-2, weightDecay: 0 });
  let loss = Infinity;
  for (let s = 1; s <= 300 && loss > 0.02; s++) {
    opt.lr = inverseSqrtLr(s, { peakLr: 1e-2, warmup: 10 });
    loss = tidy(() => {
      const l = crossEntropy(lm.forward(inp), tgt);
      l.backward();
      return l.item();
    });
    opt.step();
    opt.zeroGrad();
  }
  assert.ok(loss < 0.02, `final loss ${loss}`);
  // Greedy continuation from the first token reproduces the sequence.
  const out = noGrad(() => {
    lm.eval();
    const cache = lm.createCache();
    const toks = [seq[0]];
    for (let t = 0; t < 15; t++) toks.push(tidy(() => lm.decodeStep(tensor([toks[t]], { dtype: "int32" }), cache).argmax(-1).item()));
    cache.dispose();
    return toks;
  });
  assert.equal(out, seq);
});

test("20 training steps inside tidy() and a cached decode leave no live buffers behind", () => {
  const backend = getBackend();
  const lm = lmSmall(7, { dropout: 0.1 });
  const opt = new AdamW(lm.parameters(), { lr: 1e-3 });
  const ids = randint(0, 17, [2, 9], { generator: new Generator(7) });
  const inp = ids.narrow(1, 0, 8), tgt = ids.narrow(1, 1, 8);
  const trainStep = () => {
    tidy(() => crossEntropy(lm.forward(inp), tgt).backward());
    clipGradNorm(lm.parameters(), 1);
    opt.step();
    opt.zeroGrad();
  };
  trainStep(); // creates the optimizer's moment buffers
  const live = backend.liveBuffers();
  for (let s = 0; s < 20; s++) trainStep();
  assert.is(backend.liveBuffers(), live, "training");
  noGrad(() => {
    lm.eval();
    const cache = lm.createCache();
    for (let t = 0; t < 6; t++) tidy(() => void lm.decodeStep(tensor([t, t + 1], { dtype: "int32" }), cache));
    cache.truncate(2);
    tidy(() => cache.reorder(tensor([1, 1, 0], { dtype: "int32" })));
    assert.ok(backend.liveBuffers() > live, "the cache holds buffers");
    cache.dispose();
  });
  assert.is(backend.liveBuffers(), live, "decoding");
});

test.run();
