// Shape ops. reshape shares the buffer; permute/expand/slice are one strided-copy kernel.
import { isGradEnabled } from "../autograd.ts";
import { recordPrim } from "../grad.ts";
import { fmt, normDim, numel, stridesOf } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { mul } from "./elementwise.ts";
import { fromArray, run1, shareAs } from "./run.ts";

export function flatArgs(args: (number | number[])[]): number[] {
  return args.length === 1 && Array.isArray(args[0]) ? args[0].slice() : (args as number[]);
}

export function reshape(x: Tensor, shape: number[]): Tensor {
  const n = x.size;
  const infer = shape.indexOf(-1);
  if (shape.some((d, i) => !Number.isInteger(d) || d < -1 || (d === -1 && i !== infer))) {
    throw new Error(`reshape: invalid target shape ${fmt(shape)} for ${fmt(x.shape)}`);
  }
  let out = shape.slice();
  if (infer >= 0) {
    const rest = numel(shape.filter((_, i) => i !== infer));
    if (rest === 0 || n % rest !== 0) throw new Error(`reshape: cannot infer -1 in ${fmt(shape)} for ${x.size} elements ${fmt(x.shape)}`);
    out[infer] = n / rest;
  }
  if (numel(out) !== n) throw new Error(`reshape: ${fmt(x.shape)} (${n} elements) cannot become ${fmt(shape)} (${numel(out)} elements)`);
  return recordPrim(shareAs(x, out), "reshape", [x], {});
}

// Ops that change nothing still return a new Tensor object (sharing the buffer), so that
// disposing a result never disposes the caller's input.
export function alias(x: Tensor): Tensor {
  return recordPrim(shareAs(x, x.shape), "reshape", [x], {});
}

export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normDim("flatten", start, x.ndim), e = normDim("flatten", end, x.ndim);
  if (s > e) throw new Error(`flatten: startDim ${start} is after endDim ${end}`);
  return reshape(x, [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normDim("unsqueeze", dim, x.ndim + 1);
  return reshape(x, [...x.shape.slice(0, d), 1, ...x.shape.slice(d)]);
}

export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const d = normDim("squeeze", dim, x.ndim);
  if (x.shape[d] !== 1) return alias(x);
  return reshape(x, x.shape.filter((_, i) => i !== d));
}

function stridedCopy(x: Tensor, outShape: number[], strides: number[], offset: number, op: string): Tensor {
  return run1("strided", [x], { outShape, strides, offset, dtype: x.dtype }, outShape, x.dtype, op);
}

export function permute(x: Tensor, perm: number[]): Tensor {
  if (perm.length !== x.ndim) throw new Error(`permute: expected ${x.ndim} dims, got [${perm}] for ${fmt(x.shape)}`);
  const p = perm.map((d) => normDim("permute", d, x.ndim));
  if (new Set(p).size !== p.length) throw new Error(`permute: [${perm}] is not a permutation`);
  if (p.every((d, i) => d === i)) return alias(x);
  // Moving only size-1 dims leaves every element where it was ([B, 1, H, Dh] → [B, H, 1, Dh] in
  // incremental decoding): a reshape, no copy.
  const big = p.filter((d) => x.shape[d] !== 1);
  if (big.every((d, i) => i === 0 || d > big[i - 1])) return reshape(x, p.map((d) => x.shape[d]));
  const st = stridesOf(x.shape);
  const out = stridedCopy(x, p.map((d) => x.shape[d]), p.map((d) => st[d]), 0, "permute");
  return recordPrim(out, "permute", [x], { perm: p });
}

export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  if (x.ndim < 2 && (d0 === -2 || d1 === -2)) throw new Error(`transpose: needs at least 2 dims, got ${fmt(x.shape)}`);
  const a = normDim("transpose", d0, x.ndim), b = normDim("transpose", d1, x.ndim);
  const perm = x.shape.map((_, i) => i);
  [perm[a], perm[b]] = [perm[b], perm[a]];
  return permute(x, perm);
}

export function expand(x: Tensor, shape: number[]): Tensor {
  if (shape.length < x.ndim) throw new Error(`expand: target ${fmt(shape)} has fewer dims than ${fmt(x.shape)}`);
  const off = shape.length - x.ndim;
  const st = stridesOf(x.shape);
  const out = shape.slice();
  const strides = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < shape.length; i++) {
    const src = i - off;
    if (src < 0) {
      if (shape[i] < 0) throw new Error(`expand: -1 not allowed for new leading dim in ${fmt(shape)}`);
      continue;
    }
    if (shape[i] === -1) out[i] = x.shape[src];
    else if (x.shape[src] !== shape[i] && x.shape[src] !== 1) {
      throw new Error(`expand: cannot expand ${fmt(x.shape)} to ${fmt(shape)} (dim ${i}: ${x.shape[src]} → ${shape[i]})`);
    }
    strides[i] = x.shape[src] === 1 && out[i] !== 1 ? 0 : st[src];
  }
  if (out.length === x.ndim && out.every((d, i) => d === x.shape[i])) return alias(x);
  return recordPrim(stridedCopy(x, out, strides, 0, "expand"), "expand", [x], {});
}

// Per-dim [start, start+size) box.
export function sliceBox(x: Tensor, starts: number[], sizes: number[]): Tensor {
  if (starts.every((s, i) => s === 0 && sizes[i] === x.shape[i])) return alias(x);
  const st = stridesOf(x.shape);
  let offset = 0;
  starts.forEach((s, i) => (offset += s * st[i]));
  const out = stridedCopy(x, sizes.slice(), st, offset, "slice");
  return recordPrim(out, "slice", [x], { starts, sizes });
}

export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normDim("narrow", dim, x.ndim);
  if (start < 0) start += x.shape[d];
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > x.shape[d]) {
    throw new Error(`narrow: range [${start}, ${start + length}) out of bounds for dim ${dim} of size ${x.shape[d]} in ${fmt(x.shape)}`);
  }
  const starts = x.shape.map(() => 0), sizes = x.shape.slice();
  starts[d] = start;
  sizes[d] = length;
  return sliceBox(x, starts, sizes);
}

// Python-style x[..., start:end, ...] on one dim; negative indices count from the end.
export function sliceDim(x: Tensor, dim: number, start: number, end?: number): Tensor {
  const d = normDim("slice", dim, x.ndim);
  const n = x.shape[d];
  const clampIdx = (i: number) => Math.min(n, Math.max(0, i < 0 ? i + n : i));
  const s = clampIdx(start), e = end === undefined ? n : clampIdx(end);
  return narrow(x, d, s, Math.max(0, e - s));
}

export function split(x: Tensor, sizeOrSizes: number | number[], dim = 0): Tensor[] {
  const d = normDim("split", dim, x.ndim);
  const n = x.shape[d];
  let sizes: number[];
  if (typeof sizeOrSizes === "number") {
    if (!Number.isInteger(sizeOrSizes) || sizeOrSizes <= 0) throw new Error(`split: size must be a positive integer, got ${sizeOrSizes}`);
    sizes = [];
    for (let i = 0; i < n; i += sizeOrSizes) sizes.push(Math.min(sizeOrSizes, n - i));
  } else {
    sizes = sizeOrSizes;
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== n) throw new Error(`split: sizes [${sizes}] sum to ${total}, dim ${dim} has ${n}`);
  }
  let at = 0;
  return sizes.map((s) => {
    const t = narrow(x, d, at, s);
    at += s;
    return t;
  });
}

export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  if (!Number.isInteger(chunks) || chunks <= 0) throw new Error(`chunk: chunks must be a positive integer, got ${chunks}`);
  const n = x.shape[normDim("chunk", dim, x.ndim)];
  return split(x, Math.max(1, Math.ceil(n / chunks)), dim);
}

// PyTorch F.pad order: [left_last, right_last, left_prev, right_prev, ...].
export function pad(x: Tensor, pads: number[], value = 0): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.ndim || pads.some((p) => !Number.isInteger(p) || p < 0)) {
    throw new Error(`pad: expected an even number (≤ ${2 * x.ndim}) of non-negative integers, got [${pads}] for ${fmt(x.shape)}`);
  }
  const before = x.shape.map(() => 0), after = x.shape.map(() => 0);
  for (let i = 0; i < pads.length / 2; i++) {
    before[x.ndim - 1 - i] = pads[2 * i];
    after[x.ndim - 1 - i] = pads[2 * i + 1];
  }
  return padBox(x, before, after, value);
}

export function padBox(x: Tensor, before: number[], after: number[], value = 0): Tensor {
  const outShape = x.shape.map((d, i) => d + before[i] + after[i]);
  if (before.every((b, i) => b === 0 && after[i] === 0)) return alias(x);
  const out = run1("pad", [x], { inShape: x.shape.slice(), outShape, before, value, dtype: x.dtype }, outShape, x.dtype, "pad");
  return recordPrim(out, "pad", [x], { before, after });
}

export function cat(xs: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0) throw new Error("cat: expected a non-empty array of tensors");
  const ref = xs[0];
  const d = normDim("cat", dim, ref.ndim);
  for (const t of xs) {
    if (t.ndim !== ref.ndim || t.shape.some((s, i) => i !== d && s !== ref.shape[i])) {
      throw new Error(`cat: shapes must match except in dim ${dim}: ${xs.map((u) => fmt(u.shape)).join(", ")}`);
    }
    if (t.dtype !== ref.dtype) throw new Error(`cat: dtypes differ: ${xs.map((u) => u.dtype).join(", ")}`);
  }
  if (xs.length === 1) return alias(ref);
  const sizes = xs.map((t) => t.shape[d]);
  const outShape = ref.shape.slice();
  outShape[d] = sizes.reduce((a, b) => a + b, 0);
  const outer = numel(ref.shape.slice(0, d)), inner = numel(ref.shape.slice(d + 1));
  const out = run1("concat", xs, { outer, sizes, inner, dtype: ref.dtype }, outShape, ref.dtype, "cat");
  return recordPrim(out, "cat", xs, { dim: d, sizes });
}

// cat([a.narrow(dim, 0, keep), b], dim) in one copy: a's positions from `keep` on are skipped, not
// copied out first. A KV cache that rolled back rejected positions by moving its length appends
// after the kept ones with this. Inference only: no gradient flows through it.
export function catAfterPrefix(a: Tensor, keep: number, b: Tensor, dim: number): Tensor {
  const d = normDim("catAfterPrefix", dim, a.ndim);
  if (!Number.isInteger(keep) || keep < 0 || keep > a.shape[d]) throw new Error(`catAfterPrefix: keep must be an integer in [0, ${a.shape[d]}], got ${keep}`);
  if (b.ndim !== a.ndim || b.dtype !== a.dtype || b.shape.some((s, i) => i !== d && s !== a.shape[i])) {
    throw new Error(`catAfterPrefix: ${b.dtype}${fmt(b.shape)} cannot follow ${a.dtype}${fmt(a.shape)} in dim ${dim}`);
  }
  if (isGradEnabled() && (a.requiresGrad || b.requiresGrad)) throw new Error("catAfterPrefix: inference only; use cat(narrow(...)) where a gradient is needed");
  if (keep === a.shape[d]) return cat([a, b], d);
  const outShape = a.shape.slice();
  outShape[d] = keep + b.shape[d];
  const outer = numel(a.shape.slice(0, d)), inner = numel(a.shape.slice(d + 1));
  // a's rows are a.shape[d]·inner apart, of which keep·inner are taken; b's are whole
  const params = { outer, sizes: [keep, b.shape[d]], inner, dtype: a.dtype, rowStrides: [a.shape[d] * inner, b.shape[d] * inner] };
  return run1("concat", [a, b], params, outShape, a.dtype, "catAfterPrefix");
}

export function stack(xs: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0) throw new Error("stack: expected a non-empty array of tensors");
  const d = normDim("stack", dim, xs[0].ndim + 1);
  for (const t of xs) if (t.shape.join() !== xs[0].shape.join()) throw new Error(`stack: all shapes must be equal: ${xs.map((u) => fmt(u.shape)).join(", ")}`);
  return cat(xs.map((t) => unsqueeze(t, d)), d);
}

// Lower/upper triangle of the last two dims: tril keeps j ≤ i + k, triu keeps j ≥ i + k.
export function triMask(rows: number, cols: number, k: number, upper: boolean, backend = undefined as Tensor["backend"] | undefined): Tensor {
  const m = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) m[i * cols + j] = (upper ? j >= i + k : j <= i + k) ? 1 : 0;
  return fromArray(m, [rows, cols], "float32", backend);
}

export function tri(x: Tensor, k: number, upper: boolean): Tensor {
  if (x.ndim < 2) throw new Error(`${upper ? "triu" : "tril"}: needs at least 2 dims, got ${fmt(x.shape)}`);
  const mask = triMask(x.shape[x.ndim - 2], x.shape[x.ndim - 1], k, upper, x.backend);
  return mul(x, x.dtype === "int32" ? mask.int() : mask);
}

