// Fused NN kernels: softmax/log-softmax, layer norm, cross-entropy — forward and backward.
import type { TypedArray } from "../../dtype.ts";
import type { KernelParams } from "../../kernels.ts";
import type { Alloc } from "./types.ts";

export function softmax(alloc: Alloc, [x]: TypedArray[], p: KernelParams["softmax"]): TypedArray[] {
  const { outer, n, inner, log } = p;
  const y = alloc("float32", outer * n * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      // Subtracting the max keeps exp from overflowing: softmax(x) = softmax(x − c).
      let mx = -Infinity;
      for (let j = 0; j < n; j++) mx = Math.max(mx, x[base + j * inner]);
      if (mx === -Infinity) mx = 0;
      let s = 0;
      for (let j = 0; j < n; j++) s += Math.exp(x[base + j * inner] - mx);
      if (log) {
        const lse = mx + Math.log(s);
        for (let j = 0; j < n; j++) y[base + j * inner] = x[base + j * inner] - lse;
      } else {
        const inv = 1 / s;
        for (let j = 0; j < n; j++) y[base + j * inner] = Math.exp(x[base + j * inner] - mx) * inv;
      }
    }
  }
  return [y];
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

// Per row: loss = (1−ε)·(lse − z_t) + ε·(lse − mean_j z_j), i.e. cross-entropy against the
// smoothed target (1−ε)·onehot(t) + ε/V (PyTorch's label_smoothing). Ignored rows give 0.
export function crossEntropy(alloc: Alloc, [z, t]: TypedArray[], p: KernelParams["crossEntropy"]): TypedArray[] {
  const { rows, v, ignoreIndex, labelSmoothing: eps } = p;
  const loss = alloc("float32", rows), lseOut = alloc("float32", rows);
  for (let r = 0; r < rows; r++) {
    const o = r * v, tr = t[r];
    if (tr === ignoreIndex) continue;
    if (tr < 0 || tr >= v) throw new Error(`crossEntropy: target ${tr} out of range [0, ${v}) at row ${r}`);
    let mx = -Infinity, sum = 0;
    for (let j = 0; j < v; j++) { mx = Math.max(mx, z[o + j]); sum += z[o + j]; }
    let s = 0;
    for (let j = 0; j < v; j++) s += Math.exp(z[o + j] - mx);
    const lse = mx + Math.log(s);
    lseOut[r] = lse;
    loss[r] = (1 - eps) * (lse - z[o + tr]) + eps * (lse - sum / v);
  }
  return [loss, lseOut];
}

// d loss_r / d z_j = softmax_j − (1−ε)·[j = t] − ε/V, scaled by the incoming g_r.
export function crossEntropyBackward(alloc: Alloc, [z, t, lse, g]: TypedArray[], p: KernelParams["crossEntropyBackward"]): TypedArray[] {
  const { rows, v, ignoreIndex, labelSmoothing: eps } = p;
  const dz = alloc("float32", rows * v);
  for (let r = 0; r < rows; r++) {
    const tr = t[r];
    if (tr === ignoreIndex) continue;
    const o = r * v, gr = g[r], l = lse[r], u = eps / v;
    for (let j = 0; j < v; j++) dz[o + j] = gr * (Math.exp(z[o + j] - l) - u);
    dz[o + tr] -= gr * (1 - eps);
  }
  return [dz];
}
