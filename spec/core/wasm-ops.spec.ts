// The wasm element-wise, row and optimizer kernels against float64 references written out in
// TypeScript: exp accuracy over the whole f32 range, binary ops with every broadcast, softmax,
// logSoftmax and layerNorm forward and backward, AdamW; the same bits on 1 and 2 threads
// (logSoftmaxArgmax is checked against its composition in spec/core/ops.spec.ts).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { WasmRuntime, type BinaryOp, type Broadcast } from "../../core/backends/wasm/index.ts";

const rt = new WasmRuntime({ threads: 1, heap: { initialBytes: 1 << 22 } });
const { heap, ops } = rt;

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const rand = (n: number, seed: number, scale = 1) => {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
};

/** Copies arrays into the heap, runs f on their pointers, returns copies of them, frees. */
function withHeap(arrays: Float32Array[], f: (ptrs: number[]) => void): Float32Array[] {
  const ptrs = arrays.map((a) => heap.alloc(Math.max(4, a.byteLength)));
  try {
    arrays.forEach((a, i) => heap.f32(ptrs[i], a.length).set(a));
    f(ptrs);
    return arrays.map((a, i) => Float32Array.from(heap.f32(ptrs[i], a.length)));
  } finally {
    ptrs.forEach((p) => heap.free(p));
  }
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string) {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const ok = Object.is(got[i], want[i]) || Math.abs(got[i] - want[i]) <= atol + rtol * Math.abs(want[i]);
    if (!ok) assert.unreachable(`${what}[${i}] = ${got[i]}, want ${want[i]}`);
  }
}

test("exp: max relative error over [-87, 88] and the special values", () => {
  const n = 1 << 18;
  const x = Float32Array.from({ length: n }, (_, i) => -87 + (175 * i) / (n - 1));
  const [, y] = withHeap([x, new Float32Array(n)], ([px, py]) => ops.exp(px, py, n));
  let worst = 0;
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(y[i] - Math.exp(x[i])) / Math.exp(x[i]));
  console.log(`    exp: max relative error ${worst.toExponential(2)} (${(worst / 2 ** -24).toFixed(2)} units of 2^-24) on ${n} points`);
  assert.ok(worst < 2.5e-7, `max relative error ${worst}`);
  const sx = Float32Array.from([0, -Infinity, Infinity, NaN, 89, -104, 88.7, -100, 1, -1, 1e-8]);
  const [, sy] = withHeap([sx, new Float32Array(sx.length)], ([px, py]) => ops.exp(px, py, sx.length));
  assert.is(sy[0], 1);
  assert.is(sy[1], 0);
  assert.is(sy[2], Infinity);
  assert.ok(Number.isNaN(sy[3]));
  assert.is(sy[4], Infinity, "overflow gives +inf");
  assert.is(sy[5], 0, "underflow gives 0");
  close([sy[6], sy[7], sy[8], sy[9], sy[10]], [Math.exp(Math.fround(88.7)), Math.exp(-100), Math.E, 1 / Math.E, 1], 3e-7, 2 ** -149, "exp");
});

test("binary ops with every broadcast, swap, odd widths and in place", () => {
  const ref: Record<BinaryOp, (x: number, y: number) => number> = {
    add: (x, y) => x + y, sub: (x, y) => x - y, mul: (x, y) => x * y, div: (x, y) => x / y, max: Math.max, min: Math.min,
  };
  let seed = 1;
  for (const [rows, cols] of [[1, 1], [3, 7], [5, 16], [2, 4099], [9000, 1]] as const) {
    for (const op of Object.keys(ref) as BinaryOp[]) {
      for (const bc of ["same", "row", "col", "scalar"] as Broadcast[]) {
        for (const swap of [false, true]) {
          const a = rand(rows * cols, seed++);
          const bn = bc === "same" ? rows * cols : bc === "row" ? cols : bc === "col" ? rows : 1;
          const b = Float32Array.from(rand(bn, seed++), (v) => v + (v >= 0 ? 0.5 : -0.5)); // no division by ~0
          const want = a.map((v, k) => {
            const i = Math.floor(k / cols), j = k % cols;
            const w = bc === "same" ? b[k] : bc === "row" ? b[j] : bc === "col" ? b[i] : b[0];
            return Math.fround(swap ? ref[op](w, v) : ref[op](v, w));
          });
          const [inPlace] = withHeap([a, b], ([pa, pb]) => ops.binary(op, pa, pb, pa, rows, cols, bc, swap));
          close(inPlace, want, 0, 0, `${op} ${bc}${swap ? " swapped" : ""} ${rows}x${cols}`);
        }
      }
    }
  }
});

function softmaxRef(x: Float32Array, rows: number, n: number, log: boolean) {
  const y = new Float64Array(rows * n);
  for (let i = 0; i < rows; i++) {
    let m = -Infinity, s = 0;
    for (let j = 0; j < n; j++) m = Math.max(m, x[i * n + j]);
    for (let j = 0; j < n; j++) s += Math.exp(x[i * n + j] - m);
    for (let j = 0; j < n; j++) y[i * n + j] = log ? x[i * n + j] - m - Math.log(s) : Math.exp(x[i * n + j] - m) / s;
  }
  return y;
}

test("softmax and logSoftmax, forward and backward, with masked (-inf) entries", () => {
  for (const [rows, n] of [[1, 1], [3, 5], [4, 64], [2, 1001]] as const) {
    const x = rand(rows * n, rows * 100 + n, 8);
    if (n > 2) x[1] = -Infinity; // a masked position
    const dy = rand(rows * n, 7);
    for (const log of [false, true]) {
      const want = softmaxRef(x, rows, n, log);
      const [, y] = withHeap([x, new Float32Array(rows * n)], ([px, py]) => (log ? ops.logSoftmax(px, py, rows, n) : ops.softmax(px, py, rows, n)));
      close(y, want, 2e-6, log ? 2e-6 : 1e-7, `${log ? "logSoftmax" : "softmax"} ${rows}x${n}`);
      // backward from the float32 forward output, against float64 formulas on the same y
      const wantDx = new Float64Array(rows * n);
      for (let i = 0; i < rows; i++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += log ? dy[i * n + j] : dy[i * n + j] * y[i * n + j];
        for (let j = 0; j < n; j++) {
          const k = i * n + j;
          wantDx[k] = log ? dy[k] - Math.exp(y[k]) * s : y[k] * (dy[k] - s);
        }
      }
      const [, , dx] = withHeap([y, dy, new Float32Array(rows * n)], ([py, pdy, pdx]) =>
        log ? ops.logSoftmaxBackward(py, pdy, pdx, rows, n) : ops.softmaxBackward(py, pdy, pdx, rows, n));
      close(dx, wantDx, 1e-5, 1e-6, `${log ? "logSoftmax" : "softmax"} backward ${rows}x${n}`);
    }
  }
});

test("softmax and logSoftmax: a NaN makes its whole row NaN, +inf too (as in PyTorch)", () => {
  const x = Float32Array.from([1, NaN, 2, 3, 0.5, 4, 1, 2, 3, 4, 5, Infinity]);
  for (const log of [false, true]) {
    const [, y] = withHeap([x, new Float32Array(12)], ([px, py]) => (log ? ops.logSoftmax(px, py, 3, 4) : ops.softmax(px, py, 3, 4)));
    assert.ok(y.slice(0, 4).every(Number.isNaN), "row with NaN");
    close(y.slice(4, 8), softmaxRef(x.slice(4, 8), 1, 4, log), 2e-6, 1e-7, "clean row");
    assert.ok(y.slice(8).every(Number.isNaN), "row with +inf");
  }
});

test("layerNorm forward, backward (dx) and parameter gradients, with and without affine", () => {
  for (const [rows, n] of [[1, 1], [3, 5], [6, 64], [2, 771]] as const) {
    const x = Float32Array.from(rand(rows * n, n, 3), (v, k) => v + (k % 7)); // non-zero means
    const gamma = rand(n, 11, 2), beta = rand(n, 12), dy = rand(rows * n, 13);
    const eps = 1e-5;
    for (const affine of [true, false]) {
      // float64 reference
      const mu = new Float64Array(rows), rs = new Float64Array(rows), y = new Float64Array(rows * n), dx = new Float64Array(rows * n);
      const dg = new Float64Array(n), db = new Float64Array(n);
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < n; j++) mu[i] += x[i * n + j] / n;
        let v = 0;
        for (let j = 0; j < n; j++) v += (x[i * n + j] - mu[i]) ** 2 / n;
        rs[i] = 1 / Math.sqrt(v + eps);
        let a = 0, b = 0;
        for (let j = 0; j < n; j++) {
          const xh = (x[i * n + j] - mu[i]) * rs[i];
          const g = dy[i * n + j] * (affine ? gamma[j] : 1);
          y[i * n + j] = affine ? xh * gamma[j] + beta[j] : xh;
          a += g / n;
          b += (g * xh) / n;
          dg[j] += dy[i * n + j] * xh;
          db[j] += dy[i * n + j];
        }
        for (let j = 0; j < n; j++) {
          const xh = (x[i * n + j] - mu[i]) * rs[i];
          dx[i * n + j] = rs[i] * (dy[i * n + j] * (affine ? gamma[j] : 1) - a - xh * b);
        }
      }
      const bufs = [x, gamma, beta, new Float32Array(rows * n), new Float32Array(rows), new Float32Array(rows), dy, new Float32Array(rows * n), new Float32Array(n).fill(1), new Float32Array(n).fill(2)];
      const out = withHeap(bufs, ([px, pg, pb, py, pmu, prs, pdy, pdx, pdg, pdb]) => {
        ops.layerNorm({ x: px, y: py, rows, n, eps, mean: pmu, rstd: prs, ...(affine ? { gamma: pg, beta: pb } : {}) });
        ops.layerNormBackward({ x: px, mean: pmu, rstd: prs, dy: pdy, dx: pdx, rows, n, ...(affine ? { gamma: pg } : {}) });
        ops.layerNormParamsBackward({ x: px, mean: pmu, rstd: prs, dy: pdy, dgamma: pdg, dbeta: pdb, rows, n, accumulate: !affine });
      });
      const what = `layerNorm ${rows}x${n}${affine ? "" : " (no affine)"}`;
      close(out[3], y, 1e-5, 1e-5, `${what} y`);
      close(out[4], mu, 1e-6, 1e-6, `${what} mean`);
      close(out[5], rs, 1e-5, 1e-5, `${what} rstd`);
      close(out[7], dx, 1e-4, 1e-4, `${what} dx`);
      // accumulate (the no-affine pass) adds to the 1s and 2s already there
      close(out[8], dg.map((v) => v + (affine ? 0 : 1)), 1e-5, 1e-5, `${what} dgamma`);
      close(out[9], db.map((v) => v + (affine ? 0 : 2)), 1e-5, 1e-5, `${what} dbeta`);
    }
  }
});

test("AdamW matches PyTorch's update rule over several steps", () => {
  const n = 1031;
  const p0 = rand(n, 21), hp = { lr: 1e-2, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.1 };
  const p = Float64Array.from(p0), m = new Float64Array(n), v = new Float64Array(n);
  const bufs = [p0, new Float32Array(n), new Float32Array(n), new Float32Array(n)];
  const ptrs = bufs.map((b) => heap.alloc(b.byteLength));
  bufs.forEach((b, i) => heap.f32(ptrs[i], n).set(b));
  for (let step = 1; step <= 5; step++) {
    const g = rand(n, 100 + step);
    heap.f32(ptrs[1], n).set(g);
    ops.adamw({ p: ptrs[0], g: ptrs[1], m: ptrs[2], v: ptrs[3], n, step, ...hp });
    const bc1 = 1 - hp.beta1 ** step, bc2 = 1 - hp.beta2 ** step;
    for (let i = 0; i < n; i++) {
      p[i] *= 1 - hp.lr * hp.weightDecay;
      m[i] = hp.beta1 * m[i] + (1 - hp.beta1) * g[i];
      v[i] = hp.beta2 * v[i] + (1 - hp.beta2) * g[i] * g[i];
      p[i] -= (hp.lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + hp.eps);
    }
  }
  close(heap.f32(ptrs[0], n), p, 1e-5, 1e-6, "adamw p");
  close(heap.f32(ptrs[2], n), m, 1e-5, 1e-7, "adamw m");
  close(heap.f32(ptrs[3], n), v, 1e-5, 1e-9, "adamw v");
  ptrs.forEach((q) => heap.free(q));
});

test("the same bits on 1 and 2 threads (row jobs split across workers)", async () => {
  const rt2 = new WasmRuntime({ threads: 2, parallelMinElements: 0, adaptive: false, heap: { initialBytes: 1 << 22 } });
  await rt2.ready();
  const rows = 64, n = 301;
  const x = rand(rows * n, 5, 4), dy = rand(rows * n, 6), gamma = rand(n, 7), beta = rand(n, 8);
  const runAll = (r: WasmRuntime) => {
    const h = r.heap;
    const arrays = [x, dy, gamma, beta, ...Array.from({ length: 5 }, () => new Float32Array(rows * n)), new Float32Array(rows), new Float32Array(rows), new Float32Array(n), new Float32Array(n), new Float32Array(rows), new Float32Array(rows)];
    const ptrs = arrays.map((a) => h.alloc(a.byteLength));
    arrays.forEach((a, i) => h.f32(ptrs[i], a.length).set(a));
    const [px, pdy, pg, pb, p1, p2, p3, p4, p5, pmu, prs, pdg, pdb, pidx, pval] = ptrs;
    r.ops.softmax(px, p1, rows, n);
    r.ops.logSoftmaxBackward(p1, pdy, p2, rows, n);
    r.ops.layerNorm({ x: px, gamma: pg, beta: pb, y: p3, mean: pmu, rstd: prs, rows, n, eps: 1e-5 });
    r.ops.layerNormBackward({ x: px, gamma: pg, mean: pmu, rstd: prs, dy: pdy, dx: p4, rows, n });
    r.ops.layerNormParamsBackward({ x: px, mean: pmu, rstd: prs, dy: pdy, dgamma: pdg, dbeta: pdb, rows, n });
    r.ops.binary("mul", px, pg, p5, rows, n, "row");
    r.ops.exp(p5, p5, rows * n);
    r.ops.logSoftmaxArgmax(px, pg, pidx, pval, rows, n);
    const out = ptrs.slice(4).map((p, i) => Array.from(h.f32(p, arrays[4 + i].length)));
    ptrs.forEach((p) => h.free(p));
    return out;
  };
  const one = runAll(rt), two = runAll(rt2);
  for (let k = 0; k < one.length; k++) {
    for (let i = 0; i < one[k].length; i++) if (!Object.is(one[k][i], two[k][i])) assert.unreachable(`output ${k}[${i}]: ${one[k][i]} vs ${two[k][i]}`);
  }
  await rt2.shutdown();
});

test("the runtime's own blocks are the only live ones after the kernels ran", () => {
  assert.is(heap.liveBlocks(), rt.ownBlocks());
});

test("bad arguments get errors naming what was expected", () => {
  const p = heap.alloc(64);
  try {
    assert.throws(() => ops.softmax(p + 2, p, 1, 4), /wasm softmax: x must be a 4-byte aligned heap address, got/);
    assert.throws(() => ops.softmax(p, p, 1, 1 << 30), /x spans bytes .* but the memory has/);
    assert.throws(() => ops.binary("add", p, p, p, 2, 2, "diagonal" as Broadcast), /broadcast must be same, row, col or scalar, got diagonal/);
    assert.throws(() => ops.layerNorm({ x: p, y: p, rows: 1, n: 4, eps: 1e-5, gamma: p }), /gamma and beta must both be given/);
    assert.throws(() => ops.adamw({ p, g: p, m: p, v: p, n: 4, lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 0 }), /step must be an integer >= 1, got 0/);
    assert.throws(() => ops.exp(p, p, -1), /n must be an integer/);
    assert.throws(() => ops.logSoftmaxArgmax(p, p, p, p, 2, 0), /wasm logSoftmaxArgmax: rows of 0 values have no maximum/);
  } finally {
    heap.free(p);
  }
});

test.after(() => rt.shutdown());
test.run();
