// Data movement: strided copies (permute/expand/slice), pad, concat, gather/scatter.
import type { TypedArray } from "../../dtype.ts";
import type { KernelParams } from "../../kernels.ts";
import type { Alloc } from "./types.ts";

export function strided(alloc: Alloc, [x]: TypedArray[], p: KernelParams["strided"]): TypedArray[] {
  const shape = p.outShape, st = p.strides, nd = shape.length;
  let n = 1;
  for (const d of shape) n *= d;
  const y = alloc(p.dtype, n);
  if (n === 0) return [y];
  if (nd === 0) { y[0] = x[p.offset]; return [y]; }
  const last = shape[nd - 1], ls = st[nd - 1];
  const idx = new Array<number>(nd).fill(0);
  let off = p.offset;
  for (let o = 0; o < n; o += last) {
    if (ls === 1) for (let i = 0; i < last; i++) y[o + i] = x[off + i];
    else for (let i = 0; i < last; i++) y[o + i] = x[off + i * ls];
    for (let d = nd - 2; d >= 0; d--) {
      idx[d]++;
      off += st[d];
      if (idx[d] < shape[d]) break;
      off -= st[d] * shape[d];
      idx[d] = 0;
    }
  }
  return [y];
}

export function pad(alloc: Alloc, [x]: TypedArray[], p: KernelParams["pad"]): TypedArray[] {
  const { inShape, outShape, before } = p;
  let n = 1, m = 1;
  for (const d of outShape) n *= d;
  for (const d of inShape) m *= d;
  const y = alloc(p.dtype, n);
  if (p.value !== 0) y.fill(p.value);
  if (m === 0) return [y];
  const nd = inShape.length;
  const ostr = new Array<number>(nd);
  let acc = 1;
  for (let d = nd - 1; d >= 0; d--) { ostr[d] = acc; acc *= outShape[d]; }
  const idx = new Array<number>(nd).fill(0);
  for (let i = 0; i < m; i++) {
    let o = 0;
    for (let d = 0; d < nd; d++) o += (idx[d] + before[d]) * ostr[d];
    y[o] = x[i];
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d] < inShape[d]) break;
      idx[d] = 0;
    }
  }
  return [y];
}

export function concat(alloc: Alloc, xs: TypedArray[], p: KernelParams["concat"]): TypedArray[] {
  const total = p.sizes.reduce((s, v) => s + v, 0) * p.inner;
  const y = alloc(p.dtype, p.outer * total);
  let col = 0;
  xs.forEach((x, k) => {
    const w = p.sizes[k] * p.inner, s = p.rowStrides?.[k] ?? w;
    for (let o = 0; o < p.outer; o++) y.set(x.subarray(o * s, o * s + w), o * total + col);
    col += w;
  });
  return [y];
}

function checkIndex(op: string, v: number, n: number): void {
  if (v < 0 || v >= n || !Number.isInteger(v)) throw new Error(`${op}: index ${v} out of range [0, ${n})`);
}

export function gather(alloc: Alloc, [x, idx]: TypedArray[], p: KernelParams["gather"]): TypedArray[] {
  const { outer, n, k, inner } = p;
  const y = alloc(p.dtype, outer * k * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      for (let i = 0; i < inner; i++) {
        const t = (o * k + j) * inner + i;
        const v = idx[t];
        checkIndex("gather", v, n);
        y[t] = x[(o * n + v) * inner + i];
      }
    }
  }
  return [y];
}

export function scatterAdd(alloc: Alloc, [idx, src]: TypedArray[], p: KernelParams["scatterAdd"]): TypedArray[] {
  const { outer, n, k, inner } = p;
  const y = alloc("float32", outer * n * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      for (let i = 0; i < inner; i++) {
        const t = (o * k + j) * inner + i;
        const v = idx[t];
        checkIndex("scatterAdd", v, n);
        y[(o * n + v) * inner + i] += src[t];
      }
    }
  }
  return [y];
}

export function indexSelect(alloc: Alloc, [x, ids]: TypedArray[], p: KernelParams["indexSelect"]): TypedArray[] {
  const { outer, n, m, inner } = p;
  const y = alloc(p.dtype, outer * m * inner);
  for (let j = 0; j < m; j++) checkIndex("indexSelect", ids[j], n);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const src = (o * n + ids[j]) * inner;
      y.set(x.subarray(src, src + inner), (o * m + j) * inner);
    }
  }
  return [y];
}

export function indexAdd(alloc: Alloc, [ids, g]: TypedArray[], p: KernelParams["indexAdd"]): TypedArray[] {
  const { outer, n, m, inner } = p;
  const y = alloc("float32", outer * n * inner);
  for (let j = 0; j < m; j++) checkIndex("indexAdd", ids[j], n);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const dst = (o * n + ids[j]) * inner, src = (o * m + j) * inner;
      for (let i = 0; i < inner; i++) y[dst + i] += g[src + i];
    }
  }
  return [y];
}
