// Float64 references for the loss specs, written from the definitions by enumeration (every
// permutation, every lattice path, every CTC path), and a central-difference gradient.
import { Generator, randn, tensor, type Tensor } from "../../../core/index.ts";

export type F64 = Float64Array;

// [B, N, V] float64 logits → log-softmax over the last dim.
export function logSoftmax64(z: ArrayLike<number>, rows: number, v: number): F64 {
  const out = new Float64Array(rows * v);
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let j = 0; j < v; j++) mx = Math.max(mx, z[r * v + j]);
    let s = 0;
    for (let j = 0; j < v; j++) s += Math.exp(z[r * v + j] - mx);
    const lse = mx + Math.log(s);
    for (let j = 0; j < v; j++) out[r * v + j] = z[r * v + j] - lse;
  }
  return out;
}

export function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  const out: number[][] = [];
  for (const p of permutations(n - 1)) for (let k = 0; k <= p.length; k++) out.push([...p.slice(0, k), n - 1, ...p.slice(k)]);
  return out;
}

export interface OrderAgnosticRef {
  B: number;
  N: number;
  V: number;
  target: number[]; // [B·N]
  ignoreIndex: number;
  labelSmoothing: number;
  truncate: number;
  n: number; // 1: OAXE
  reduction: "mean" | "sum";
}

// ngram-OAXE (n = 1: OAXE) by trying every matching of windows to n-grams.
export function orderAgnosticRef(z: ArrayLike<number>, o: OrderAgnosticRef): number {
  const { B, N, V, target, ignoreIndex, labelSmoothing: eps, truncate, n } = o;
  const lp = logSoftmax64(z, B * N, V);
  const tau = truncate > 0 ? -Math.log(truncate) : Infinity;
  let total = 0, pairs = 0;
  for (let b = 0; b < B; b++) {
    const pos: number[] = [];
    for (let i = 0; i < N; i++) if (target[b * N + i] !== ignoreIndex) pos.push(i);
    const L = pos.length;
    if (L === 0) continue;
    const y = pos.map((i) => target[b * N + i]);
    const g = Math.min(n, L), W = L - g + 1;
    const nll = (i: number, tok: number): number => -lp[(b * N + pos[i]) * V + tok];
    const smooth = (i: number): number => {
      let s = 0;
      for (let v = 0; v < V; v++) s -= lp[(b * N + pos[i]) * V + v];
      return s / V;
    };
    let best = Infinity, bestPerm: number[] = [];
    for (const perm of permutations(W)) {
      let c = 0;
      for (let w = 0; w < W; w++) for (let t = 0; t < g; t++) c += nll(w + t, y[perm[w] + t]);
      if (c < best) [best, bestPerm] = [c, perm];
    }
    for (let w = 0; w < W; w++) {
      let c = 0;
      for (let t = 0; t < g; t++) c += nll(w + t, y[bestPerm[w] + t]);
      const drop = c / g > tau;
      for (let t = 0; t < g; t++) total += (drop ? 0 : (1 - eps) * nll(w + t, y[bestPerm[w] + t])) + eps * smooth(w + t);
    }
    pairs += W * g;
  }
  return o.reduction === "sum" ? total : total / pairs;
}

// AXE by enumerating every monotone lattice path (align, skip target, skip prediction).
export function axeBrute(n: number, m: number, delta: number, a: (i: number, j: number) => number, e: (j: number) => number): number {
  let best = Infinity;
  const go = (i: number, j: number, acc: number): void => {
    if (i === n && j === m) {
      best = Math.min(best, acc);
      return;
    }
    if (i < n && j < m) go(i + 1, j + 1, acc + a(i + 1, j + 1));
    if (i < n && m > 0) go(i + 1, j, acc + delta * a(i + 1, Math.max(j, 1)));
    if (j < m) go(i, j + 1, acc + e(j + 1));
  };
  go(0, 0, 0);
  return best;
}

// CTC's −log p(y|x) by summing every path of length T over V symbols that collapses to y.
export function ctcBrute(lp: (t: number, v: number) => number, T: number, V: number, y: number[], blank: number): number {
  let total = 0;
  const path = new Array<number>(T);
  const go = (t: number, logp: number): void => {
    if (t === T) {
      const out: number[] = [];
      for (let k = 0; k < T; k++) if (path[k] !== blank && (k === 0 || path[k] !== path[k - 1])) out.push(path[k]);
      if (out.length === y.length && out.every((s, k) => s === y[k])) total += Math.exp(logp);
      return;
    }
    for (let v = 0; v < V; v++) {
      path[t] = v;
      go(t + 1, logp + lp(t, v));
    }
  };
  go(0, 0);
  return -Math.log(total);
}

// Central differences of f at x (float64), step h.
export function numericGrad(f: (x: F64) => number, x: ArrayLike<number>, h = 1e-5): F64 {
  const p = Float64Array.from(x), g = new Float64Array(p.length);
  for (let k = 0; k < p.length; k++) {
    const x0 = p[k];
    p[k] = x0 + h;
    const up = f(p);
    p[k] = x0 - h;
    const down = f(p);
    p[k] = x0;
    g[k] = (up - down) / (2 * h);
  }
  return g;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  for (let k = 0; k < a.length; k++) d = Math.max(d, Math.abs(a[k] - b[k]));
  return d;
}

export function close(a: number, b: number, tol: number): boolean {
  return a === b || Math.abs(a - b) <= tol * (1 + Math.abs(b));
}

// Random logits [B, N, V] (std 2) that require grad, from a seed.
export function randomLogits(shape: [number, number, number], seed: number, std = 2): Tensor {
  return randn(shape, { generator: new Generator(seed), std, requiresGrad: true });
}

// Target ids [B, N] from a seed: lengths in [minLen, N], ids in [lo, V), padding `pad` on the right.
export function randomTarget(B: number, N: number, V: number, seed: number, pad: number, lo = 1, minLen = 0): { ids: number[]; t: Tensor; lengths: number[] } {
  const g = new Generator(seed);
  const ids: number[] = [], lengths: number[] = [];
  for (let b = 0; b < B; b++) {
    const L = minLen + Math.floor(g.random() * (N - minLen + 1));
    lengths.push(L);
    for (let i = 0; i < N; i++) ids.push(i < L ? lo + Math.floor(g.random() * (V - lo)) : pad);
  }
  return { ids, t: tensor(Int32Array.from(ids), { shape: [B, N], dtype: "int32" }), lengths };
}
