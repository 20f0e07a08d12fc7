// MultiHeadAttention: against a float64 reference for every mask kind (padding, causal, window,
// cross), gradients against finite differences, and the KV cache (incremental = full pass,
// truncate, reorder) as fast-check properties.
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { cat, Generator, noGrad, randn, tensor, type Tensor } from "../../core/index.ts";
import { KVCache, MultiHeadAttention } from "../../nn/index.ts";

const FC = { seed: 2024, numRuns: 25 };
const vals = (t: Tensor) => Array.from(t.dataSync());

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) assert.unreachable(`${what}: index ${i}: ${got[i]} vs ${want[i]}`);
  }
}

// Float64 multi-head attention from the module's parameters. visible(b, i, j): may query i of
// batch row b attend to key j?
function refAttention(
  mha: MultiHeadAttention, x: Tensor, kv: Tensor, visible: (b: number, i: number, j: number) => boolean,
): Float64Array {
  const [B, Tq, D] = x.shape, Tk = kv.shape[1], H = mha.heads, Dh = D / H;
  const lin = (l: typeof mha.q, inp: number[], rows: number): Float64Array => {
    const W = vals(l.weight), bias = vals(l.bias!), out = new Float64Array(rows * D);
    for (let r = 0; r < rows; r++) for (let o = 0; o < D; o++) {
      let s = bias[o];
      for (let i = 0; i < D; i++) s += inp[r * D + i] * W[o * D + i];
      out[r * D + o] = s;
    }
    return out;
  };
  const X = vals(x), KV = vals(kv);
  const Q = lin(mha.q, X, B * Tq), K = lin(mha.k, KV, B * Tk), V = lin(mha.v, KV, B * Tk);
  const ctx = new Float64Array(B * Tq * D);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Tq; i++) {
    const s = new Float64Array(Tk);
    let m = -Infinity;
    for (let j = 0; j < Tk; j++) {
      if (!visible(b, i, j)) { s[j] = -Infinity; continue; }
      let dot = 0;
      for (let d = 0; d < Dh; d++) dot += Q[(b * Tq + i) * D + h * Dh + d] * K[(b * Tk + j) * D + h * Dh + d];
      s[j] = dot / Math.sqrt(Dh);
      m = Math.max(m, s[j]);
    }
    let z = 0;
    for (let j = 0; j < Tk; j++) z += (s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - m));
    for (let d = 0; d < Dh; d++) {
      let acc = 0;
      for (let j = 0; j < Tk; j++) acc += (s[j] / z) * V[(b * Tk + j) * D + h * Dh + d];
      ctx[(b * Tq + i) * D + h * Dh + d] = acc;
    }
  }
  return lin(mha.o, Array.from(ctx), B * Tq);
}

const make = (seed: number, d = 8, heads = 2) => new MultiHeadAttention(d, heads, { generator: new Generator(seed) });

test("self-attention with key padding matches the float64 reference", () => {
  const mha = make(1);
  const x = randn([2, 5, 8], { generator: new Generator(2) });
  const pad = [[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]];
  const got = vals(mha.forward(x, { keyPaddingMask: tensor(pad) }));
  assertClose(got, refAttention(mha, x, x, (b, _i, j) => pad[b][j] === 0), 1e-5, "padding");
});

test("causal and windowed self-attention match the reference with the band mask", () => {
  const mha = make(3);
  const x = randn([2, 6, 8], { generator: new Generator(4) });
  assertClose(vals(mha.forward(x, { causal: true })), refAttention(mha, x, x, (_b, i, j) => j <= i), 1e-5, "causal");
  for (const k of [1, 2, 3]) {
    const band = (_b: number, i: number, j: number) => j <= i && j > i - k;
    assertClose(vals(mha.forward(x, { window: k })), refAttention(mha, x, x, band), 1e-5, `window ${k}`);
  }
  // A window as long as the sequence is plain causal attention, bit for bit.
  assert.equal(vals(mha.forward(x, { window: 6 })), vals(mha.forward(x, { causal: true })));
  // Window 1: each position sees only itself, so the output is o(v(x)) position-wise.
  const self = refAttention(mha, x, x, (_b, i, j) => i === j);
  assertClose(vals(mha.forward(x, { window: 1 })), self, 1e-5, "window 1");
});

test("cross-attention with memory padding matches the reference", () => {
  const mha = make(5);
  const x = randn([2, 3, 8], { generator: new Generator(6) });
  const memory = randn([2, 4, 8], { generator: new Generator(7) });
  const pad = [[0, 0, 1, 1], [0, 0, 0, 1]];
  const got = vals(mha.forward(x, { memory, keyPaddingMask: tensor(pad) }));
  assertClose(got, refAttention(mha, x, memory, (b, _i, j) => pad[b][j] === 0), 1e-5, "cross");
});

test("padded keys get zero weight; extra padding leaves real positions unchanged", () => {
  const mha = make(8);
  const g = new Generator(9);
  const x = randn([2, 4, 8], { generator: g });
  const pad = tensor([[0, 0, 0, 1], [0, 0, 0, 0]]);
  const { output, weights } = mha.forwardWithWeights(x, { keyPaddingMask: pad });
  assert.equal(weights.shape, [2, 2, 4, 4]);
  const w = vals(weights);
  for (let h = 0; h < 2; h++) for (let i = 0; i < 4; i++) assert.is(w[(0 * 2 + h) * 16 + i * 4 + 3], 0);
  // Append 3 more padding positions full of noise: rows of real queries must not move.
  const xLong = cat([x, randn([2, 3, 8], { generator: g, std: 5 })], 1);
  const padLong = tensor([[0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1]]);
  const long = vals(mha.forward(xLong, { keyPaddingMask: padLong }));
  const short = vals(output);
  for (let b = 0; b < 2; b++) {
    const real = b === 0 ? 3 : 4;
    assertClose(long.slice(b * 7 * 8, (b * 7 + real) * 8), short.slice(b * 4 * 8, (b * 4 + real) * 8), 1e-6, `row ${b}`);
  }
});

test("gradients of causal, padded self-attention match finite differences", () => {
  const mha = make(10);
  const g = new Generator(11);
  const x = randn([2, 4, 8], { generator: g }).requiresGrad_();
  const pad = tensor([[0, 0, 0, 1], [0, 0, 0, 0]]);
  const wOut = randn([2, 4, 8], { generator: g });
  const loss = () => mha.forward(x, { causal: true, keyPaddingMask: pad }).mul(wOut).sum();
  loss().backward();
  const eps = 1e-2;
  for (const [name, t] of [["x", x], ["q", mha.q.weight], ["k", mha.k.weight], ["v", mha.v.weight], ["o", mha.o.weight], ["kb", mha.k.bias!]] as [string, Tensor][]) {
    const grad = vals(t.grad!), base = Float32Array.from(t.dataSync());
    for (let n = 0; n < 10; n++) {
      const i = g.randint(0, base.length);
      const at = (v: number) => {
        const d = base.slice();
        d[i] = v;
        t.assign_(tensor(d, { shape: t.shape }));
        return noGrad(() => loss().item());
      };
      const num = (at(base[i] + eps) - at(base[i] - eps)) / (2 * eps);
      t.assign_(tensor(base, { shape: t.shape }));
      if (!(Math.abs(grad[i] - num) <= 3e-3 + 3e-2 * Math.abs(num))) assert.unreachable(`${name}[${i}]: ${grad[i]} vs ${num}`);
    }
  }
});

// Split [0, T) into consecutive chunk lengths drawn from the property's sizes.
function chunksOf(T: number, sizes: number[]): number[] {
  const out: number[] = [];
  let at = 0, k = 0;
  while (at < T) {
    const n = Math.min(sizes[k++ % sizes.length], T - at);
    out.push(n);
    at += n;
  }
  return out;
}

test("KV cache: incremental decoding (any chunking, any window) equals the full causal pass", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 7 }), fc.integer({ min: 0, max: 1e6 }), fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 4 }),
    fc.option(fc.integer({ min: 1, max: 4 })),
    (T, seed, sizes, win) => noGrad(() => {
      const window = win ?? undefined;
      const mha = make(seed);
      const x = randn([2, T, 8], { generator: new Generator(seed + 1) });
      const full = vals(mha.forward(x, { causal: true, window }));
      const cache = new KVCache();
      const parts: number[][] = [];
      let at = 0;
      for (const n of chunksOf(T, sizes)) {
        parts.push(vals(mha.forward(x.narrow(1, at, n), { causal: true, window, cache })));
        at += n;
      }
      assert.is(cache.length, T);
      // Reassemble [B, T, D] from chunks of [B, n, D].
      const inc = new Array<number>(2 * T * 8);
      at = 0;
      chunksOf(T, sizes).forEach((n, c) => {
        for (let b = 0; b < 2; b++) for (let t = 0; t < n; t++) for (let d = 0; d < 8; d++) inc[(b * T + at + t) * 8 + d] = parts[c][(b * n + t) * 8 + d];
        at += n;
      });
      assertClose(inc, full, 2e-5, `T=${T} sizes=${sizes} window=${window}`);
      cache.dispose();
    }),
  ), FC);
});

test("KV cache: truncate rolls back, and decoding on equals the full pass of the new sequence", () => {
  noGrad(() => {
    const mha = make(12);
    const g = new Generator(13);
    const x = randn([1, 5, 8], { generator: g }), alt = randn([1, 2, 8], { generator: g });
    const cache = new KVCache();
    mha.forward(x, { causal: true, cache });
    cache.truncate(3);
    assert.is(cache.length, 3);
    const tail = vals(mha.forward(alt, { causal: true, cache }));
    const full = vals(mha.forward(cat([x.narrow(1, 0, 3), alt], 1), { causal: true }));
    assertClose(tail, full.slice(3 * 8), 2e-5, "after truncate");
    assert.throws(() => cache.truncate(6), /length must be an integer in \[0, 5\], got 6/);
    cache.truncate(0);
    assert.is(cache.length, 0);
  });
});

// Truncation moves a length; the next append writes after the kept positions, and readers see
// exactly the kept ones, whatever mix of rollbacks, appends and selections came before.
test("KV cache: any sequence of append / truncate / select keeps exactly the positions a plain list would", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), fc.array(fc.tuple(fc.constantFrom("append", "truncate", "select", "read"), fc.integer({ min: 0, max: 5 })), { minLength: 1, maxLength: 12 }), (seed, ops) => noGrad(() => {
    const g = new Generator(seed);
    const cache = new KVCache();
    let want: number[][] = []; // position → its 2 × 3 key values (B 1, H 2, Dh 3), as a list
    for (const [op, n] of ops) {
      if (op === "append" && n > 0) {
        const k = randn([1, 2, n, 3], { generator: g });
        cache.append(k.mul(1), k.mul(2)); // the cache keeps what it is given: not k, disposed below
        const kv = vals(k); // [h][t][d]
        for (let t = 0; t < n; t++) want.push([0, 1].flatMap((h) => kv.slice((h * n + t) * 3, (h * n + t) * 3 + 3)));
        k.dispose();
      } else if (op === "truncate") {
        const len = Math.min(n, want.length);
        cache.truncate(len);
        want = want.slice(0, len);
      } else if (op === "select" && want.length > 0) {
        const keep = Array.from({ length: Math.min(n, want.length) }, (_, i) => (i * 7 + seed) % want.length);
        cache.select(keep);
        want = keep.map((p) => want[p]);
      }
      assert.is(cache.length, want.length);
      if (op === "read" && want.length > 0) {
        const [k, v] = [vals(cache.keys!), vals(cache.values!)];
        const got = want.map((_, t) => [0, 1].flatMap((h) => k.slice((h * want.length + t) * 3, (h * want.length + t) * 3 + 3)));
        assert.equal(got, want);
        assert.equal(v, k.map((x) => 2 * x));
      }
    }
    cache.dispose();
  })), FC);
});

test("KV cache: reorder by index (beam search) equals decoding the reordered histories", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 5 }), (seed, index) => noGrad(() => {
    const mha = make(seed);
    const g = new Generator(seed + 7);
    const hist = randn([3, 3, 8], { generator: g }); // 3 hypotheses, 3 steps each
    const next = randn([index.length, 1, 8], { generator: g });
    const cache = new KVCache();
    mha.forward(hist, { causal: true, cache });
    const idx = tensor(index, { dtype: "int32" });
    cache.reorder(idx);
    assert.is(cache.batchSize, index.length);
    const got = vals(mha.forward(next, { causal: true, cache }));
    const full = vals(mha.forward(cat([hist.indexSelect(0, idx), next], 1), { causal: true }));
    const want: number[] = [];
    for (let b = 0; b < index.length; b++) want.push(...full.slice((b * 4 + 3) * 8, (b * 4 + 4) * 8));
    assertClose(got, want, 2e-5, `index ${index}`);
    cache.dispose();
  })), FC);
});

test("cross-attention cache is filled once from memory and reused", () => {
  noGrad(() => {
    const mha = make(14);
    const g = new Generator(15);
    const memory = randn([2, 4, 8], { generator: g }), y1 = randn([2, 1, 8], { generator: g }), y2 = randn([2, 1, 8], { generator: g });
    const cache = new KVCache();
    const a1 = vals(mha.forward(y1, { memory, cache }));
    const k = cache.keys;
    const a2 = vals(mha.forward(y2, { memory, cache }));
    assert.is(cache.keys, k, "second call reuses the cached projections");
    assert.is(cache.length, 4);
    assertClose(a1, vals(mha.forward(y1, { memory })), 1e-6, "step 1");
    assertClose(a2, vals(mha.forward(y2, { memory })), 1e-6, "step 2");
  });
});

test("cross-attention cache with memory padding: its key bias is made once, follows reorder, and equals the uncached pass", () => {
  noGrad(() => {
    const mha = make(16);
    const g = new Generator(17);
    const memory = randn([3, 5, 8], { generator: g }), y = [1, 2, 3].map(() => randn([3, 1, 8], { generator: g }));
    const pad = tensor([0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1], { shape: [3, 5] });
    const cache = new KVCache();
    const a0 = vals(mha.forward(y[0], { memory, keyPaddingMask: pad, cache }));
    const bias = cache.keyBias!;
    assert.equal(bias.shape, [3, 2, 1, 5]);
    assert.equal(vals(bias).slice(0, 5), [0, 0, 0, -1e9, -1e9].map(Math.fround));
    const a1 = vals(mha.forward(y[1], { memory, keyPaddingMask: pad, cache }));
    assert.is(cache.keyBias, bias, "made once");
    assert.equal(a0, vals(mha.forward(y[0], { memory, keyPaddingMask: pad })), "step 1: the same bits as without a cache");
    assert.equal(a1, vals(mha.forward(y[1], { memory, keyPaddingMask: pad })), "step 2: the same bits with the cached bias");
    const idx = tensor([2, 0, 2], { dtype: "int32" });
    cache.reorder(idx);
    const memR = memory.indexSelect(0, idx), padR = pad.indexSelect(0, idx);
    assert.equal(cache.keyBias!.shape, [3, 2, 1, 5]);
    assert.equal(vals(mha.forward(y[2], { memory: memR, keyPaddingMask: padR, cache })), vals(mha.forward(y[2], { memory: memR, keyPaddingMask: padR })), "after reorder");
    cache.dispose();
    assert.is(cache.keyBias, undefined);
  });
});

test("attention rejects inconsistent arguments with clear errors", () => {
  const mha = make(16);
  const x = randn([2, 3, 8]);
  assert.throws(() => new MultiHeadAttention(10, 3), /dModel 10 must be divisible by heads 3/);
  assert.throws(() => mha.forward(randn([2, 3, 6])), /expected x \[B, T, 8\], got \[2,3,6\]/);
  assert.throws(() => mha.forward(x, { window: 2, causal: false }), /window implies causal/);
  assert.throws(() => mha.forward(x, { window: 0 }), /window must be a positive integer, got 0/);
  assert.throws(() => mha.forward(x, { memory: x, causal: true }), /apply to self-attention/);
  assert.throws(() => mha.forward(x, { keyPaddingMask: tensor([[0, 0], [0, 0]]) }), /keyPaddingMask must be \[B, Tk\] = \[2, 3\], got \[2,2\]/);
  assert.throws(() => mha.forward(x, { causal: true, cache: new KVCache() }), /run incremental decoding under noGrad/);
});

test.run();
