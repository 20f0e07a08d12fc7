// The Markov Transformer (nn/models/markov.ts): the band mask; with k ≥ T the window variant is
// the Transformer, bit for bit; the ring-buffer decoder equals the masked parallel pass at every
// step across many wraps, in constant memory; the strict variant ignores every token older than
// k (bit-identical outputs) while the window variant's receptive field is L·(k − 1) + 1; the
// parallel loss equals the summed per-step losses; beams, rollback, positions past maxLen; the
// kind's parameter count and strict config check.
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { crossEntropy, Generator, getBackend, noGrad, randint, tensor, tidy, type Tensor } from "../../core/index.ts";
import {
  causalBias, markovConfig, markovKind, markovMask, MarkovTransformer, positionRange, Transformer, transformerConfig, transformerKind, type MarkovConfig,
} from "../../nn/index.ts";

const FC = { seed: 12, numRuns: 12 };
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

const V = 13;
const BASE = { vocab: V, dModel: 16, heads: 2, ffn: 32, encLayers: 1, decLayers: 2, maxLen: 16, dropout: 0 };
const mat = (seed: number, extra: Partial<MarkovConfig> = {}) => new MarkovTransformer(markovConfig({ ...BASE, seed, ...extra })).eval();

test("markovMask: query i sees key j iff 0 ≤ i − j ≤ k − 1; rows hold min(i + 1, k) keys; empty slots never", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 20 }), (k, T) => {
    const pos = positionRange(0, T);
    const m = markovMask(pos, pos, k);
    for (let i = 0; i < T; i++) {
      let row = 0;
      for (let j = 0; j < T; j++) {
        assert.is(m[i * T + j] === 1, i - j >= 0 && i - j <= k - 1, `k ${k} (${i}, ${j})`);
        row += m[i * T + j];
      }
      assert.is(row, Math.min(i + 1, k));
    }
    // The same band as attention.ts's windowed causal bias (the Transformer's `window`).
    const bias = Array.from(causalBias(T, T, 0, k).dataSync());
    assert.equal(bias.map((b) => (b === 0 ? 1 : 0)), Array.from(m));
  }), { seed: 1, numRuns: 40 });
  // A decoding step: query 9 over ring slots holding 7, 8, 6, −1 (empty) and itself.
  assert.equal(Array.from(markovMask([9], [7, 8, 6, -1, 9], 3)), [1, 1, 0, 0, 1]);
  assert.throws(() => markovMask([0], [0], 0), /order must be an integer >= 1, got 0/);
});

test("window variant with k ≥ T is the Transformer, bit for bit (same seed, same weights and names)", () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.boolean(),
    fc.constantFrom<"sinusoidal" | "learned">("sinusoidal", "learned"),
    (seed, T, extraK, L, tied, positions) => noGrad(() => tidy(() => {
      const cfg = { ...BASE, decLayers: L, tieEmbeddings: tied, tieOutput: tied, positions, seed };
      const tr = new Transformer(transformerConfig(cfg)).eval();
      const m = mat(seed, { ...cfg, order: T + extraK, variant: "window" });
      assert.equal(Object.keys(m.stateDict()), Object.keys(tr.stateDict()));
      const g = new Generator(seed);
      const src = randint(1, V, [2, 5], { generator: g }), tgt = randint(1, V, [2, T], { generator: g });
      assert.equal(vals(m.forward(src, tgt)), vals(tr.forward(src, tgt)), `seed ${seed} T ${T} L ${L}`);
      tr.dispose();
      m.dispose();
    })),
  ), FC);
});

test("one decoder layer: strict and window coincide (layer 0's keys are the embeddings either way)", () => {
  noGrad(() => {
    const g = new Generator(3);
    const src = randint(1, V, [2, 4], { generator: g }), tgt = randint(1, V, [2, 11], { generator: g });
    const a = mat(3, { decLayers: 1, order: 3, variant: "strict" }), b = mat(3, { decLayers: 1, order: 3, variant: "window" });
    assert.equal(vals(a.forward(src, tgt)), vals(b.forward(src, tgt)));
  });
});

test("the ring-buffer decoder equals the masked parallel pass at every step, across many wraps, in constant memory", () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3 }), fc.constantFrom("strict", "window"), fc.integer({ min: 0, max: 5 }),
    (seed, k, L, variant, extra) => noGrad(() => {
      const T = 3 * k + 1 + extra; // the ring wraps at least three times
      const m = mat(seed, { order: k, decLayers: L, variant: variant as MarkovConfig["variant"], maxLen: 8 });
      const g = new Generator(seed);
      const src = randint(1, V, [2, 5], { generator: g }), tgt = randint(1, V, [2, T], { generator: g });
      const F = vals(m.forward(src, tgt)); // T may exceed maxLen: sinusoidal positions have no end
      const memory = m.encode(src), mask = src.eq(0);
      const cache = m.createCache();
      let bytes = -1, live = -1;
      for (let t = 0; t < T; t++) {
        const step = tidy(() => vals(m.decodeStep(tgt.narrow(1, t, 1).reshape(2), memory, mask, cache)));
        assertClose(step, at(F, 2, T, V, t), 5e-5, `seed ${seed} k ${k} L ${L} ${variant} step ${t}`);
        if (t === 0) [bytes, live] = [cache.selfBytes, getBackend().liveBuffers()];
        // The same bytes and the same live buffers after every step: nothing grows with the position.
        assert.is(cache.selfBytes, bytes);
        assert.is(getBackend().liveBuffers(), live, `live buffers at step ${t}`);
      }
      assert.is(bytes, 4 * 2 * L * 2 * k * 16, "2 (K, V) · L · B · k · D floats");
      assert.is(cache.length, T);
      cache.dispose();
      m.dispose();
    }),
  ), FC);
});

test("several positions at once through the ring (a prompt, speculative drafts) equal the parallel pass", () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 5 }), fc.constantFrom("strict", "window"), fc.integer({ min: 0, max: 3 }),
    fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 3, maxLength: 6 }),
    (seed, k, variant, rollback, chunks) => noGrad(() => tidy(() => {
      const T = chunks.reduce((s, n) => s + n, 0);
      const m = mat(seed, { order: k, variant: variant as MarkovConfig["variant"] });
      const g = new Generator(seed);
      const src = randint(1, V, [2, 4], { generator: g }), tgt = randint(1, V, [2, T], { generator: g });
      const F = vals(m.forward(src, tgt));
      const memory = m.encode(src), mask = src.eq(0), cache = m.createCache({ rollback });
      let t0 = 0;
      for (const n of chunks) {
        const got = vals(m.decode(tgt.narrow(1, t0, n), memory, mask, cache)); // [2, n, V]
        for (let i = 0; i < n; i++) assertClose(at(got, 2, n, V, i), at(F, 2, T, V, t0 + i), 5e-5, `seed ${seed} k ${k} ${variant} chunks ${chunks} position ${t0 + i}`);
        t0 += n;
      }
      assert.is(cache.length, T);
      cache.dispose();
      m.dispose();
    })),
  ), FC);
});

// Logits [B, T, V] of the parallel pass after replacing target input j with a different token.
function withToken(m: MarkovTransformer, src: Tensor, tgt: number[][], j: number): number[] {
  const t2 = tgt.map((row) => row.map((x, i) => (i === j ? 1 + (x % (V - 1)) : x)));
  return vals(m.forward(src, tensor(t2, { dtype: "int32" })));
}

test("strict: a target token older than the window leaves every later output bit-identical; one inside changes it", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 4 }), (seed, k, L) => noGrad(() => {
    const T = 3 * k + 4;
    const m = mat(seed, { order: k, decLayers: L, variant: "strict" });
    const g = new Generator(seed);
    const src = randint(1, V, [1, 5], { generator: g });
    const tgt = randint(1, V, [1, T], { generator: g }).toArray() as number[][];
    const F = vals(m.forward(src, tensor(tgt, { dtype: "int32" })));
    for (let j = 0; j < T; j++) {
      const G = withToken(m, src, tgt, j);
      for (let t = 0; t < T; t++) {
        const same = at(G, 1, T, V, t).every((x, i) => x === at(F, 1, T, V, t)[i]);
        if (t - j >= k || t < j) assert.ok(same, `seed ${seed} k ${k} L ${L}: input ${j} reached output ${t}`);
        else assert.not.ok(same, `seed ${seed} k ${k}: input ${j} should reach output ${t}`);
      }
    }
    // The ring decoder too: after the change leaves the window, the steps agree bit for bit.
    const run = (rows: number[][]) => {
      const memory = m.encode(src), mask = src.eq(0), cache = m.createCache();
      const out = rows[0].map((x) => vals(m.decodeStep(tensor([x], { dtype: "int32" }), memory, mask, cache)));
      cache.dispose();
      return out;
    };
    const a = run(tgt), b = run(tgt.map((r) => r.map((x, i) => (i === 1 ? 1 + (x % (V - 1)) : x))));
    for (let t = 1 + k; t < T; t++) assert.equal(b[t], a[t], `ring step ${t}`);
  })), { seed: 5, numRuns: 6 });
});

test("window: the receptive field is L·(k − 1) + 1 inputs, not k (the leakage the strict variant stops)", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 2, max: 3 }), fc.integer({ min: 2, max: 3 }), (seed, k, L) => noGrad(() => {
    const reach = L * (k - 1);
    const T = reach + k + 3;
    const m = mat(seed, { order: k, decLayers: L, variant: "window" });
    const g = new Generator(seed);
    const src = randint(1, V, [1, 5], { generator: g });
    const tgt = randint(1, V, [1, T], { generator: g }).toArray() as number[][];
    const F = vals(m.forward(src, tensor(tgt, { dtype: "int32" })));
    for (const j of [0, 1]) {
      const G = withToken(m, src, tgt, j);
      for (let t = j; t < T; t++) {
        const same = at(G, 1, T, V, t).every((x, i) => x === at(F, 1, T, V, t)[i]);
        // Inside k − 1 … L·(k − 1) back, a strict model would not move; this one does.
        assert.is(same, t - j > reach, `seed ${seed} k ${k} L ${L}: input ${j}, output ${t}`);
      }
    }
  })), { seed: 6, numRuns: 6 });
});

test("the parallel training loss equals the summed per-step losses of incremental decoding", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 4 }), fc.constantFrom("strict", "window"), (seed, k, variant) => noGrad(() => {
    const T = 2 * k + 5;
    const m = mat(seed, { order: k, variant: variant as MarkovConfig["variant"] });
    const g = new Generator(seed);
    const src = randint(3, V, [3, 4], { generator: g }), y = randint(3, V, [3, T], { generator: g });
    const tgtIn = tensor(vals(y).map((x, i) => (i % T === 0 ? 1 : vals(y)[i - 1])), { dtype: "int32", shape: [3, T] }); // bos · y
    const parallel = crossEntropy(m.forward(src, tgtIn), y, { reduction: "sum" }).item();
    const memory = m.encode(src), mask = src.eq(0), cache = m.createCache();
    let steps = 0;
    for (let t = 0; t < T; t++) {
      const lp = m.decodeStep(tgtIn.narrow(1, t, 1).reshape(3), memory, mask, cache).logSoftmax(-1);
      steps -= vals(lp.gather(1, y.narrow(1, t, 1))).reduce((s, x) => s + x, 0);
    }
    cache.dispose();
    assert.ok(Math.abs(parallel - steps) <= 1e-4 * Math.abs(parallel), `seed ${seed} k ${k} ${variant}: ${parallel} vs ${steps}`);
  })), { seed: 8, numRuns: 8 });
});

test("reorder (beams, dropped rows) equals decoding the chosen prefixes; rollback truncates; wrong caches are refused", () => {
  noGrad(() => {
    const m = mat(4, { order: 2, decLayers: 2 });
    const g = new Generator(4);
    const src = randint(1, V, [1, 5], { generator: g }).expand(3, 5);
    const prefix = randint(1, V, [3, 5], { generator: g });
    const memory = m.encode(src), mask = src.eq(0);
    const cache = m.createCache();
    for (let t = 0; t < 5; t++) m.decodeStep(prefix.narrow(1, t, 1).reshape(3), memory, mask, cache);
    const idx = tensor([2, 2, 0], { dtype: "int32" });
    cache.reorder(idx);
    const got = vals(m.decodeStep(tensor([7, 8, 9], { dtype: "int32" }), memory.indexSelect(0, idx), mask.indexSelect(0, idx), cache));
    const P = vals(prefix);
    const seqs = tensor([[...P.slice(10, 15), 7], [...P.slice(10, 15), 8], [...P.slice(0, 5), 9]], { dtype: "int32" });
    assertClose(got, at(vals(m.decode(seqs, memory, mask)), 3, 6, V, 5), 5e-5, "after reorder");
    cache.reorder(tensor([1], { dtype: "int32" })); // down to one row
    assert.is(cache.batchSize, 1);
    cache.dispose();

    // Speculative decoding's rollback: a ring with r spare slots takes back up to r positions.
    const row = memory.narrow(0, 0, 1), mrow = mask.narrow(0, 0, 1);
    const a = m.createCache({ rollback: 3 });
    const seq = [1, 5, 6, 7, 8, 9, 10, 11];
    for (const x of seq) m.decodeStep(tensor([x], { dtype: "int32" }), row, mrow, a);
    a.truncate(5);
    const alt = [3, 4];
    const afterRollback = alt.map((x) => vals(m.decodeStep(tensor([x], { dtype: "int32" }), row, mrow, a)));
    const full = vals(m.decode(tensor([[...seq.slice(0, 5), ...alt]], { dtype: "int32" }), row, mrow));
    alt.forEach((_, i) => assertClose(afterRollback[i], full.slice((5 + i) * V, (6 + i) * V), 5e-5, `rollback step ${i}`));
    // Held now: positions 3 … 6 (5 and 6 rewritten), so the next step may start at 5 at the earliest.
    assert.throws(() => a.truncate(4), /length must be 0 or an integer in \[5, 7\]/);
    a.truncate(6);
    assertClose(vals(m.decodeStep(tensor([2], { dtype: "int32" }), row, mrow, a)), vals(m.decode(tensor([[...seq.slice(0, 5), 3, 2]], { dtype: "int32" }), row, mrow)).slice(6 * V), 5e-5, "second rollback");
    a.truncate(0);
    assert.is(a.length, 0);
    a.dispose();
    const other = mat(4, { order: 3 }).createCache();
    assert.throws(() => m.decodeStep(tensor([1], { dtype: "int32" }), row, mrow, other), /a cache made by this model's createCache\(\) \(a ring of order 2 over 2 layers\)/);
    assert.throws(() => m.decode(tensor([[1]], { dtype: "int32" }), row, mrow, m.createCache(), tensor([[0]])), /target padding mask is for the parallel pass/);
  });
});

test("positions past maxLen: sinusoidal models decode on (maxDecodeLen ∞), learned ones stop at maxLen", () => {
  assert.is(mat(1).maxDecodeLen, Infinity);
  assert.is(mat(1, { positions: "learned" }).maxDecodeLen, 16);
  noGrad(() => {
    const m = mat(2, { order: 3, maxLen: 4 });
    const src = tensor([[3, 4, 5]], { dtype: "int32" }), tgt = randint(1, V, [1, 30], { generator: new Generator(2) });
    const F = vals(m.forward(src, tgt));
    const memory = m.encode(src), mask = src.eq(0), cache = m.createCache();
    for (let t = 0; t < 30; t++) assertClose(vals(m.decodeStep(tgt.narrow(1, t, 1).reshape(1), memory, mask, cache)), F.slice(t * V, (t + 1) * V), 5e-5, `step ${t}`);
    assert.throws(() => mat(2, { positions: "learned", maxLen: 4 }).forward(src, tgt), /exceed maxLen 4/);
  });
});

test("markov kind: numParameters(config) = the built model's count; strict config check with bounds", () => {
  fc.assert(fc.property(
    fc.record({ heads: fc.integer({ min: 1, max: 3 }), perHead: fc.constantFrom(2, 4), ffn: fc.integer({ min: 1, max: 24 }), enc: fc.integer({ min: 0, max: 2 }),
      dec: fc.integer({ min: 0, max: 2 }), vocab: fc.integer({ min: 5, max: 40 }), tie: fc.boolean(), tieOut: fc.boolean(), learned: fc.boolean(),
      maxLen: fc.integer({ min: 2, max: 20 }), order: fc.integer({ min: 1, max: 9 }), strict: fc.boolean() }),
    (r) => {
      const c = markovKind.check({
        srcVocab: r.vocab, tgtVocab: r.tie ? r.vocab : r.vocab + 3, dModel: r.heads * r.perHead, heads: r.heads, ffn: r.ffn, encLayers: r.enc, decLayers: r.dec,
        dropout: 0, attnDropout: 0, activation: "relu", maxLen: r.maxLen, positions: r.learned ? "learned" : "sinusoidal",
        tieEmbeddings: r.tie, tieOutput: r.tieOut, padId: 0, seed: 1, order: r.order, variant: r.strict ? "strict" : "window",
      });
      const m = markovKind.build(c);
      try {
        assert.is(markovKind.numParameters(c), m.numParameters(), JSON.stringify(r));
      } finally {
        m.dispose();
      }
    }), { seed: 17, numRuns: 20 });
  const ok = { ...transformerKind.check({ srcVocab: 10, tgtVocab: 10, dModel: 8, heads: 2, ffn: 16, encLayers: 1, decLayers: 1, dropout: 0, attnDropout: 0, activation: "relu", maxLen: 16, positions: "sinusoidal", tieEmbeddings: true, tieOutput: true, padId: 0, seed: 1 }), order: 4, variant: "strict" };
  assert.equal(markovKind.check(ok), ok);
  assert.throws(() => markovKind.check({ ...ok, extra: 1 }), /markov config: unknown extra/);
  assert.throws(() => markovKind.check({ ...ok, order: undefined }), /order must be an integer in \[1, 1048576\]/);
  assert.throws(() => markovKind.check({ ...ok, order: 0 }), /order must be an integer in \[1, 1048576\], got 0/);
  assert.throws(() => markovKind.check({ ...ok, order: 2.5 }), /order must be an integer/);
  assert.throws(() => markovKind.check({ ...ok, variant: "leaky" }), /variant must be strict or window, got leaky/);
  assert.throws(() => markovKind.check({ ...ok, decLayers: 100000 }), /decLayers must be an integer in \[0, 1024\]/);
  const { variant: _v, ...noVariant } = ok;
  assert.throws(() => markovKind.check(noVariant), /missing variant/);
  // The Transformer's settings plus order and variant; fromOptions takes them all.
  assert.equal(Object.keys(markovKind.options), [...Object.keys(transformerKind.options), "order", "variant"]);
  const o = { dModel: 8, heads: 2, ffn: 16, encLayers: 1, decLayers: 2, dropout: 0.1, attnDropout: 0, activation: "gelu", positions: "sinusoidal", tieEmbeddings: true, maxLen: 32, order: 3, variant: "window" };
  const c = markovKind.fromOptions(o, { size: 300, padId: 0, seed: 5 });
  assert.equal([c.srcVocab, c.decLayers, c.order, c.variant, c.seed], [300, 2, 3, "window", 5]);
});

test.run();
