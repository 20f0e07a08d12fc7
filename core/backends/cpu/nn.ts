// Fused NN kernels: softmax/log-softmax, layer norm, cross-entropy — forward and backward.
import type { TypedArray } from "../../dtype.ts";
import type { KernelParams } from "../../kernels.ts";
import type { Alloc } from "./types.ts";

// Per row: m = max x, s = Σ exp(x − m);  softmax = exp(x − m)/s,  logSoftmax = (x − m) − log s.
// logSoftmax never forms lse = m + log s: for x = 1e30 that sum rounds to m and x − lse gives 0
// instead of −log 2. A −∞ entry gives 0 / −∞ (exp(−∞) = 0); a row that is all −∞ or holds +∞
// or NaN gives NaN, as in PyTorch.
export function softmax(alloc: Alloc, [x]: TypedArray[], p: KernelParams["softmax"]): TypedArray[] {
  const { outer, n, inner, log } = p;
  const y = alloc("float32", outer * n * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      const [mx, s] = rowStats(x, base, n, inner);
      if (log) {
        const ls = Math.log(s);
        for (let j = 0; j < n; j++) y[base + j * inner] = x[base + j * inner] - mx - ls;
      } else {
        const inv = 1 / s;
        for (let j = 0; j < n; j++) y[base + j * inner] = Math.exp(x[base + j * inner] - mx) * inv;
      }
    }
  }
  return [y];
}

// The log-softmax row as softmax() stores it (float32), plus the bias as binary add stores it,
// scanned like reduce's argmax: the first maximum wins, and so does the first NaN.
export function logSoftmaxArgmax(alloc: Alloc, [x, bias]: TypedArray[], p: KernelParams["logSoftmaxArgmax"]): TypedArray[] {
  const { rows, n } = p;
  const index = alloc("int32", rows), value = alloc("float32", rows);
  const f = Math.fround;
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    const [mx, s] = rowStats(x, base, n, 1);
    const ls = Math.log(s);
    let best = f(f(x[base] - mx - ls) + bias[0]), bestJ = 0;
    for (let j = 1; j < n && !Number.isNaN(best); j++) {
      const v = f(f(x[base + j] - mx - ls) + bias[j]);
      if (Number.isNaN(v) || v > best) { best = v; bestJ = j; }
    }
    index[r] = bestJ;
    value[r] = best;
  }
  return [index, value];
}

// [m, s] of the n values x[base + j·stride]: m the maximum (NaN if any is NaN), s = Σ exp(x − m)
// in float64, so 1 ≤ s ≤ n whenever m is finite.
function rowStats(x: TypedArray, base: number, n: number, stride: number): [number, number] {
  let mx = -Infinity;
  for (let j = 0; j < n; j++) mx = Math.max(mx, x[base + j * stride]);
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(x[base + j * stride] - mx);
  return [mx, s];
}

// softmax: dx = y ⊙ (g − Σ g·y);  log-softmax: dx = g − eʸ · Σ g
export function softmaxBackward(alloc: Alloc, [y, g]: TypedArray[], p: KernelParams["softmaxBackward"]): TypedArray[] {
  const { outer, n, inner, log } = p;
  const dx = alloc("float32", outer * n * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let s = 0;
      if (log) {
        for (let j = 0; j < n; j++) s += g[base + j * inner];
        for (let j = 0; j < n; j++) { const t = base + j * inner; dx[t] = g[t] - Math.exp(y[t]) * s; }
      } else {
        for (let j = 0; j < n; j++) { const t = base + j * inner; s += g[t] * y[t]; }
        for (let j = 0; j < n; j++) { const t = base + j * inner; dx[t] = y[t] * (g[t] - s); }
      }
    }
  }
  return [dx];
}

export function layerNorm(alloc: Alloc, [x, w, b]: TypedArray[], p: KernelParams["layerNorm"]): TypedArray[] {
  const { rows, n, eps } = p;
  const y = alloc("float32", rows * n), mean = alloc("float32", rows), rstd = alloc("float32", rows);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let mu = 0;
    for (let j = 0; j < n; j++) mu += x[o + j];
    mu /= n;
    // Two-pass variance: no catastrophic cancellation for large means.
    let v = 0;
    for (let j = 0; j < n; j++) { const d = x[o + j] - mu; v += d * d; }
    const rs = 1 / Math.sqrt(v / n + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < n; j++) y[o + j] = (x[o + j] - mu) * rs * w[j] + b[j];
  }
  return [y, mean, rstd];
}

// With x̂ = (x−μ)·rstd and ĝ = g⊙w:  dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ⊙x̂)),
// dw = Σ_rows g⊙x̂, db = Σ_rows g.
export function layerNormBackward(alloc: Alloc, [x, w, mean, rstd, g]: TypedArray[], p: KernelParams["layerNormBackward"]): TypedArray[] {
  const { rows, n } = p;
  const dx = alloc("float32", rows * n), dw = alloc("float32", n), db = alloc("float32", n);
  for (let r = 0; r < rows; r++) {
    const o = r * n, mu = mean[r], rs = rstd[r];
    let sg = 0, sgx = 0;
    for (let j = 0; j < n; j++) {
      const xh = (x[o + j] - mu) * rs;
      const gh = g[o + j] * w[j];
      sg += gh;
      sgx += gh * xh;
      dw[j] += g[o + j] * xh;
      db[j] += g[o + j];
    }
    sg /= n;
    sgx /= n;
    for (let j = 0; j < n; j++) {
      const xh = (x[o + j] - mu) * rs;
      dx[o + j] = rs * (g[o + j] * w[j] - sg - xh * sgx);
    }
  }
  return [dx, dw, db];
}

// Per row, with m = max z and ls = log Σ exp(z − m) (so lse = m + ls, never formed: it would
// round away ls once |z| is large):
//   loss = (1−ε)·(lse − z_t) + ε·(lse − mean_j z_j)
//        = (1−ε)·((m − z_t) + ls) + ε·(ls + mean_j (m − z_j)),
// cross-entropy against the smoothed target (1−ε)·onehot(t) + ε/V (PyTorch's label_smoothing).
// Every difference m − z is ≥ 0 and exact for nearby values. A −∞ logit (a masked class) adds
// nothing to ls; with ε = 0 it takes no part at all (PyTorch gives the same). With ε > 0 the
// smoothed target puts mass ε/V on that impossible class, so the loss is +∞, as in PyTorch.
// Terms with weight 0 are skipped rather than multiplied: 0·∞ would be NaN. Ignored rows give 0.
export function crossEntropy(alloc: Alloc, [z, t]: TypedArray[], p: KernelParams["crossEntropy"]): TypedArray[] {
  const { rows, v, ignoreIndex, labelSmoothing: eps } = p;
  const loss = alloc("float32", rows);
  for (let r = 0; r < rows; r++) {
    const o = r * v, tr = t[r];
    if (tr === ignoreIndex) continue;
    if (tr < 0 || tr >= v) throw new Error(`crossEntropy: target ${tr} out of range [0, ${v}) at row ${r}`);
    const [mx, s] = rowStats(z, o, v, 1);
    const ls = Math.log(s);
    let l = 0;
    if (eps < 1) l += (1 - eps) * (mx - z[o + tr] + ls);
    if (eps > 0) {
      let gap = 0;
      for (let j = 0; j < v; j++) gap += mx - z[o + j];
      l += eps * (ls + gap / v);
    }
    loss[r] = l;
  }
  return [loss];
}

// d loss_r / d z_j = softmax_j − (1−ε)·[j = t] − ε/V, scaled by the incoming g_r. softmax_j =
// exp((z_j − m) − ls) with the row statistics recomputed from z: a saved float32 lse would be
// off by whole units once |z| passes ~1e7, and exp(z − lse) with it.
export function crossEntropyBackward(alloc: Alloc, [z, t, g]: TypedArray[], p: KernelParams["crossEntropyBackward"]): TypedArray[] {
  const { rows, v, ignoreIndex, labelSmoothing: eps } = p;
  const dz = alloc("float32", rows * v);
  for (let r = 0; r < rows; r++) {
    const tr = t[r];
    if (tr === ignoreIndex) continue;
    const o = r * v, gr = g[r], u = eps / v;
    const [mx, s] = rowStats(z, o, v, 1);
    const ls = Math.log(s);
    for (let j = 0; j < v; j++) dz[o + j] = gr * (Math.exp(z[o + j] - mx - ls) - u);
    dz[o + tr] -= gr * (1 - eps);
  }
  return [dz];
}
