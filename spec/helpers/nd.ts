// A tiny float64 n-d array library for reference implementations in tests. Deliberately naive
// (index arithmetic per element, no sharing with core) so that it is an independent check.
export interface Nd {
  shape: number[];
  data: Float64Array;
}

export const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
export const nd = (shape: number[], data?: ArrayLike<number>): Nd => ({ shape, data: data ? Float64Array.from(data) : new Float64Array(size(shape)) });

export function strides(shape: readonly number[]): number[] {
  const s: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
  return s;
}

export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) { idx[d] = i % shape[d]; i = Math.floor(i / shape[d]); }
  return idx;
}

export function ravel(idx: readonly number[], shape: readonly number[]): number {
  let o = 0;
  for (let d = 0; d < shape.length; d++) o = o * shape[d] + idx[d];
  return o;
}

export function map(x: Nd, f: (v: number, i: number) => number): Nd {
  return { shape: x.shape.slice(), data: x.data.map(f) };
}

export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const da = a[a.length - n + i] ?? 1, db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`ref broadcast ${a} ${b}`);
    return da === 1 ? db : da;
  });
}

// Read x at an index of a broadcast output shape.
export function at(x: Nd, idx: readonly number[]): number {
  const off = idx.length - x.shape.length;
  let o = 0;
  for (let d = 0; d < x.shape.length; d++) o = o * x.shape[d] + (x.shape[d] === 1 ? 0 : idx[d + off]);
  return x.data[o];
}

export function zip(xs: Nd[], f: (...v: number[]) => number): Nd {
  const shape = xs.reduce((s, x) => broadcastShape(s, x.shape), [] as number[]);
  const out = nd(shape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, shape);
    out.data[i] = f(...xs.map((x) => at(x, idx)));
  }
  return out;
}

// Reduce over dims with f(values) → number.
export function reduceDims(x: Nd, dims: number[], keepdim: boolean, f: (vals: number[]) => number): Nd {
  const nd0 = x.shape.length;
  const ds = dims.map((d) => (d < 0 ? d + nd0 : d));
  const keptShape = x.shape.map((n, i) => (ds.includes(i) ? 1 : n));
  const groups = new Map<number, number[]>();
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape).map((v, d) => (ds.includes(d) ? 0 : v));
    const k = ravel(idx, keptShape);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(x.data[i]);
  }
  const out = nd(keptShape);
  for (let k = 0; k < out.data.length; k++) out.data[k] = f(groups.get(k) ?? []);
  return keepdim ? out : { shape: x.shape.filter((_, i) => !ds.includes(i)), data: out.data };
}

export function permuteNd(x: Nd, perm: number[]): Nd {
  const shape = perm.map((p) => x.shape[p]);
  const out = nd(shape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, shape);
    const src = new Array<number>(perm.length);
    perm.forEach((p, k) => (src[p] = idx[k]));
    out.data[i] = x.data[ravel(src, x.shape)];
  }
  return out;
}

export function matmulNd(a: Nd, b: Nd): Nd {
  const [M, K] = a.shape.slice(-2), [K2, N] = b.shape.slice(-2);
  if (K !== K2) throw new Error("ref matmul");
  const batch = broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const shape = [...batch, M, N];
  const out = nd(shape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, shape);
    const bi = idx.slice(0, -2), r = idx[idx.length - 2], c = idx[idx.length - 1];
    let s = 0;
    for (let k = 0; k < K; k++) s += at(a, [...bi, r, k]) * at(b, [...bi, k, c]);
    out.data[i] = s;
  }
  return out;
}

// Apply f to every 1-D fibre along dim (softmax-like ops).
export function alongDim(x: Nd, dim: number, f: (v: number[]) => number[]): Nd {
  const d = dim < 0 ? dim + x.shape.length : dim;
  const out = nd(x.shape.slice());
  const st = strides(x.shape);
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape);
    if (idx[d] !== 0) continue;
    const vals = Array.from({ length: x.shape[d] }, (_, j) => x.data[i + j * st[d]]);
    f(vals).forEach((v, j) => (out.data[i + j * st[d]] = v));
  }
  return out;
}

// alongDim over two arrays of the same shape: f sees matching slices of x and y.
export function alongDimPair(x: Nd, y: Nd, dim: number, f: (v: number[], w: number[]) => number[]): Nd {
  const d = dim < 0 ? dim + x.shape.length : dim;
  const out = nd(x.shape.slice());
  const st = strides(x.shape);
  for (let i = 0; i < x.data.length; i++) {
    if (unravel(i, x.shape)[d] !== 0) continue;
    const at = (a: Nd) => Array.from({ length: x.shape[d] }, (_, j) => a.data[i + j * st[d]]);
    f(at(x), at(y)).forEach((v, j) => (out.data[i + j * st[d]] = v));
  }
  return out;
}
