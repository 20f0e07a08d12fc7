// Fused NN kernels. A gpu.js kernel has one output, so each is a short chain: a per-row
// statistics kernel (one thread per row, looping over it), then a per-element kernel that
// reads the statistics. Per-element kernels never loop over a row, so the work stays O(size).
// Two loops in one kernel need different counter names: gpu.js declares both at function scope.
import type { KernelParams } from "../../kernels.ts";
import { floorDiv } from "./gpu-math.ts";
import { checkIndexed } from "./layout.ts";
import type { GpujsBuffer, KernelSpec, Runtime } from "./runtime.ts";

type K = { thread: { x: number } };
type Arr = Float32Array;
const ints = (k: number) => Array.from({ length: k }, () => "Integer" as const);

// ---- softmax over the middle axis of [outer, n, inner] ----
// Per row: m = max x and ls = log Σ exp(x − m), kept apart. softmax = exp((x − m) − ls) and
// logSoftmax = (x − m) − ls. Never x − lse with lse = m + ls stored as one float32: for
// x = 1e30 that sum rounds to m (softmax [1e30, 1e30, 0] came out [1, 1, 0]), and from |x| ≈ 3e7
// its rounding error is a whole unit. A −∞ entry gives exp(−∞) = 0; an all −∞ row gives NaN, as
// the cpu backend and PyTorch.

// m per (o, i): one thread per row, looping over it.
const ROW_MAX: KernelSpec = {
  key: "rows:max",
  source: function (this: K, x: Arr, n: number, inner: number) {
    const o = floorDiv(this.thread.x, inner);
    const base = o * n * inner + (this.thread.x - o * inner);
    let mx = x[base];
    for (let j = 1; j < n; j++) {
      mx = Math.max(mx, x[base + j * inner]);
    }
    return mx;
  },
  args: ["Array", ...ints(2)],
  functions: [floorDiv],
};
// ls = log Σ exp(x − m) per (o, i), reading m from ROW_MAX.
const ROW_LOGSUM: KernelSpec = {
  key: "rows:logsum",
  source: function (this: K, x: Arr, mx: Arr, n: number, inner: number) {
    const o = floorDiv(this.thread.x, inner);
    const base = o * n * inner + (this.thread.x - o * inner);
    const m = mx[this.thread.x];
    let s = 0;
    for (let j = 0; j < n; j++) {
      s += Math.exp(x[base + j * inner] - m);
    }
    return Math.log(s);
  },
  args: ["Array", "Array", ...ints(2)],
  functions: [floorDiv],
};

/** [m, ls] buffers of the rows of [outer, n, inner]; the caller frees both. */
function rowStats(rt: Runtime, x: GpujsBuffer, outer: number, n: number, inner: number): [GpujsBuffer, GpujsBuffer] {
  const mx = rt.launch(ROW_MAX, outer * inner, "float32", [x, n, inner]);
  const ls = rt.launch(ROW_LOGSUM, outer * inner, "float32", [x, mx, n, inner]);
  return [mx, ls];
}

// The row (o, i) of flat element t of [outer, n, inner].
function rowOf(t: number, n: number, inner: number): number {
  const o = floorDiv(t, n * inner);
  return o * inner + t - floorDiv(t, inner) * inner;
}

function softmaxApply(log: boolean): KernelSpec {
  return {
    key: `softmax:${log ? "log" : "exp"}`,
    source: `function (x, mx, ls, n, inner) {
  const t = this.thread.x;
  const r = rowOf(t, n, inner);
  return ${log ? "x[t] - mx[r] - ls[r]" : "Math.exp(x[t] - mx[r] - ls[r])"};
}`,
    args: ["Array", "Array", "Array", ...ints(2)],
    functions: [floorDiv, rowOf],
  };
}
const SOFTMAX_EXP = softmaxApply(false), SOFTMAX_LOG = softmaxApply(true);

export function softmax(rt: Runtime, [x]: GpujsBuffer[], p: KernelParams["softmax"]): GpujsBuffer[] {
  const size = p.outer * p.n * p.inner;
  checkIndexed("softmax", size, [x]);
  if (size === 0) return [rt.launch(SOFTMAX_EXP, 0, "float32", [])];
  const [mx, ls] = rowStats(rt, x, p.outer, p.n, p.inner);
  const y = rt.launch(p.log ? SOFTMAX_LOG : SOFTMAX_EXP, size, "float32", [x, mx, ls, p.n, p.inner]);
  rt.free(mx);
  rt.free(ls);
  return [y];
}

// softmax: dx = y ⊙ (g − Σ g·y);  log-softmax: dx = g − eʸ · Σ g
function softmaxBackSum(log: boolean): KernelSpec {
  return {
    key: `softmaxBackward:sum:${log ? "log" : "exp"}`,
    source: `function (y, g, n, inner) {
  const o = floorDiv(this.thread.x, inner);
  const base = o * n * inner + (this.thread.x - o * inner);
  let s = 0;
  for (let j = 0; j < n; j++) {
    s += ${log ? "g[base + j * inner]" : "g[base + j * inner] * y[base + j * inner]"};
  }
  return s;
}`,
    args: ["Array", "Array", ...ints(2)],
    functions: [floorDiv],
  };
}
function softmaxBackApply(log: boolean): KernelSpec {
  return {
    key: `softmaxBackward:${log ? "log" : "exp"}`,
    source: `function (y, g, s, n, inner) {
  const t = this.thread.x;
  const r = rowOf(t, n, inner);
  return ${log ? "g[t] - Math.exp(y[t]) * s[r]" : "y[t] * (g[t] - s[r])"};
}`,
    args: ["Array", "Array", "Array", ...ints(2)],
    functions: [floorDiv, rowOf],
  };
}
const BACK = {
  exp: [softmaxBackSum(false), softmaxBackApply(false)],
  log: [softmaxBackSum(true), softmaxBackApply(true)],
};

export function softmaxBackward(rt: Runtime, [y, g]: GpujsBuffer[], p: KernelParams["softmaxBackward"]): GpujsBuffer[] {
  const size = p.outer * p.n * p.inner;
  checkIndexed("softmaxBackward", size, [y, g]);
  const [sumK, applyK] = BACK[p.log ? "log" : "exp"];
  if (size === 0) return [rt.launch(applyK, 0, "float32", [])];
  const s = rt.launch(sumK, p.outer * p.inner, "float32", [y, g, p.n, p.inner]);
  const dx = rt.launch(applyK, size, "float32", [y, g, s, p.n, p.inner]);
  rt.free(s);
  return [dx];
}

// ---- layer norm over rows of n ----

const LN_MEAN: KernelSpec = {
  key: "layerNorm:mean",
  source: function (this: K, x: Arr, n: number) {
    let s = 0;
    for (let j = 0; j < n; j++) {
      s += x[this.thread.x * n + j];
    }
    return s / n;
  },
  args: ["Array", "Integer"],
};
// Two-pass variance (no cancellation for large means); recomputes the mean in-thread.
const LN_RSTD: KernelSpec = {
  key: "layerNorm:rstd",
  source: function (this: K, x: Arr, n: number, eps: number) {
    let mu = 0;
    for (let j = 0; j < n; j++) {
      mu += x[this.thread.x * n + j];
    }
    mu = mu / n;
    let v = 0;
    for (let j2 = 0; j2 < n; j2++) {
      const d = x[this.thread.x * n + j2] - mu;
      v += d * d;
    }
    return 1 / Math.sqrt(v / n + eps);
  },
  args: ["Array", "Integer", "Float"],
};
const LN_Y: KernelSpec = {
  key: "layerNorm:y",
  source: function (this: K, x: Arr, w: Arr, b: Arr, mean: Arr, rstd: Arr, n: number) {
    const t = this.thread.x;
    const r = floorDiv(t, n);
    const j = t - r * n;
    return (x[t] - mean[r]) * rstd[r] * w[j] + b[j];
  },
  args: ["Array", "Array", "Array", "Array", "Array", "Integer"],
  functions: [floorDiv],
};

export function layerNorm(rt: Runtime, [x, w, b]: GpujsBuffer[], p: KernelParams["layerNorm"]): GpujsBuffer[] {
  checkIndexed("layerNorm", p.rows * p.n, [x]);
  const mean = rt.launch(LN_MEAN, p.rows, "float32", [x, p.n]);
  const rstd = rt.launch(LN_RSTD, p.rows, "float32", [x, p.n, p.eps]);
  const y = rt.launch(LN_Y, p.rows * p.n, "float32", [x, w, b, mean, rstd, p.n]);
  return [y, mean, rstd];
}

// With x̂ = (x−μ)·rstd and ĝ = g⊙w:  dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ⊙x̂)),
// dw = Σ_rows g⊙x̂, db = Σ_rows g. The two row means are one kernel over [rows, 2].
const LNB_STATS: KernelSpec = {
  key: "layerNormBackward:stats",
  source: function (this: K, x: Arr, w: Arr, mean: Arr, rstd: Arr, g: Arr, n: number) {
    const r = floorDiv(this.thread.x, 2);
    const second = this.thread.x - r * 2;
    const mu = mean[r];
    const rs = rstd[r];
    let s = 0;
    for (let j = 0; j < n; j++) {
      const gh = g[r * n + j] * w[j];
      if (second > 0) {
        s += gh * (x[r * n + j] - mu) * rs;
      } else {
        s += gh;
      }
    }
    return s / n;
  },
  args: ["Array", "Array", "Array", "Array", "Array", "Integer"],
  functions: [floorDiv],
};
const LNB_DX: KernelSpec = {
  key: "layerNormBackward:dx",
  source: function (this: K, x: Arr, w: Arr, mean: Arr, rstd: Arr, g: Arr, stats: Arr, n: number) {
    const t = this.thread.x;
    const r = floorDiv(t, n);
    const j = t - r * n;
    const rs = rstd[r];
    const xh = (x[t] - mean[r]) * rs;
    return rs * (g[t] * w[j] - stats[2 * r] - xh * stats[2 * r + 1]);
  },
  args: ["Array", "Array", "Array", "Array", "Array", "Array", "Integer"],
  functions: [floorDiv],
};
const LNB_DW: KernelSpec = {
  key: "layerNormBackward:dw",
  source: function (this: K, x: Arr, mean: Arr, rstd: Arr, g: Arr, rows: number, n: number) {
    let s = 0;
    for (let r = 0; r < rows; r++) {
      s += g[r * n + this.thread.x] * (x[r * n + this.thread.x] - mean[r]) * rstd[r];
    }
    return s;
  },
  args: ["Array", "Array", "Array", "Array", ...ints(2)],
};
const LNB_DB: KernelSpec = {
  key: "layerNormBackward:db",
  source: function (this: K, g: Arr, rows: number, n: number) {
    let s = 0;
    for (let r = 0; r < rows; r++) {
      s += g[r * n + this.thread.x];
    }
    return s;
  },
  args: ["Array", ...ints(2)],
};

export function layerNormBackward(rt: Runtime, [x, w, mean, rstd, g]: GpujsBuffer[], p: KernelParams["layerNormBackward"]): GpujsBuffer[] {
  const { rows, n } = p;
  checkIndexed("layerNormBackward", rows * n, [x, g]);
  const stats = rt.launch(LNB_STATS, 2 * rows, "float32", [x, w, mean, rstd, g, n]);
  const dx = rt.launch(LNB_DX, rows * n, "float32", [x, w, mean, rstd, g, stats, n]);
  rt.free(stats);
  const dw = rt.launch(LNB_DW, n, "float32", [x, mean, rstd, g, rows, n]);
  const db = rt.launch(LNB_DB, n, "float32", [g, rows, n]);
  return [dx, dw, db];
}

// ---- cross-entropy with label smoothing ε and an ignored target ----
// With the row statistics m and ls above (lse = m + ls, never formed):
//   loss_r = (1−ε)·((m − z_t) + ls) + ε·(ls + mean_j (m − z_j)); ignored rows give 0.
// A term whose weight is 0 is skipped (0·∞ = NaN for a masked −∞ logit); with ε > 0 a −∞ logit
// makes the loss +∞, as PyTorch. An out-of-range target cannot throw on the GPU; it gives `bad`
// (NaN) for that row.

const CE_LOSS: KernelSpec = {
  key: "crossEntropy:loss",
  source: function (this: K, z: Arr, target: Arr, mx: Arr, ls: Arr, v: number, ignore: number, eps: number, bad: number) {
    const r = this.thread.x;
    const tr = target[r];
    if (tr == ignore) {
      return 0;
    }
    if (tr < 0 || tr >= v) {
      return bad;
    }
    const m = mx[r];
    const l = ls[r];
    let loss = 0;
    if (eps < 1) {
      loss = (1 - eps) * (m - z[r * v + tr] + l);
    }
    if (eps > 0) {
      let gap = 0;
      for (let j = 0; j < v; j++) {
        gap += m - z[r * v + j];
      }
      loss += eps * (l + gap / v);
    }
    return loss;
  },
  args: ["Array", "Array", "Array", "Array", "Integer", "Float", "Float", "Float"],
};

export function crossEntropy(rt: Runtime, [z, t]: GpujsBuffer[], p: KernelParams["crossEntropy"]): GpujsBuffer[] {
  checkIndexed("crossEntropy", p.rows * p.v, [z]);
  if (p.rows === 0) return [rt.launch(CE_LOSS, 0, "float32", [])];
  const [mx, ls] = rowStats(rt, z, p.rows, p.v, 1);
  const loss = rt.launch(CE_LOSS, p.rows, "float32", [z, t, mx, ls, p.v, p.ignoreIndex, p.labelSmoothing, NaN]);
  rt.free(mx);
  rt.free(ls);
  return [loss];
}

// d loss_r / d z_j = g_r · (softmax_j − ε/V − (1−ε)·[j = t]), softmax_j = exp((z_j − m) − ls)
// from row statistics recomputed here (two O(size) passes), not from a saved float32 lse.
const CE_BACK: KernelSpec = {
  key: "crossEntropyBackward",
  source: function (this: K, z: Arr, target: Arr, mx: Arr, ls: Arr, g: Arr, v: number, ignore: number, eps: number) {
    const t = this.thread.x;
    const r = floorDiv(t, v);
    const tr = target[r];
    if (tr == ignore) {
      return 0;
    }
    const gr = g[r];
    let d = gr * (Math.exp(z[t] - mx[r] - ls[r]) - eps / v);
    if (t - r * v == tr) {
      d -= gr * (1 - eps);
    }
    return d;
  },
  args: ["Array", "Array", "Array", "Array", "Array", "Integer", "Float", "Float"],
  functions: [floorDiv],
};

export function crossEntropyBackward(rt: Runtime, [z, t, g]: GpujsBuffer[], p: KernelParams["crossEntropyBackward"]): GpujsBuffer[] {
  checkIndexed("crossEntropyBackward", p.rows * p.v, [z]);
  if (p.rows * p.v === 0) return [rt.launch(CE_BACK, 0, "float32", [])];
  const [mx, ls] = rowStats(rt, z, p.rows, p.v, 1);
  const dz = rt.launch(CE_BACK, p.rows * p.v, "float32", [z, t, mx, ls, g, p.v, p.ignoreIndex, p.labelSmoothing]);
  rt.free(mx);
  rt.free(ls);
  return [dz];
}
