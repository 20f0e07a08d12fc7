// Element-wise kernels: unary, binary with broadcast strides, scalar, where, cast.
import type { TypedArray } from "../../dtype.ts";
import type { BinaryOp, KernelParams, ScalarOp, UnaryOp } from "../../kernels.ts";
import { gelu, geluGrad, geluTanh, geluTanhGrad, sigmoid } from "../../math.ts";
import type { Alloc } from "./types.ts";

export function unaryFn(op: UnaryOp): (x: number) => number {
  switch (op) {
    case "neg": return (x) => -x;
    case "exp": return Math.exp;
    case "log": return Math.log;
    case "sqrt": return Math.sqrt;
    case "rsqrt": return (x) => 1 / Math.sqrt(x);
    case "abs": return Math.abs;
    case "tanh": return Math.tanh;
    case "sigmoid": return sigmoid;
    case "relu": return (x) => (x > 0 || x !== x ? x : 0);
    case "gelu": return gelu;
    case "geluTanh": return geluTanh;
    case "geluGrad": return geluGrad;
    case "geluTanhGrad": return geluTanhGrad;
    case "sign": return (x) => (x > 0 ? 1 : x < 0 ? -1 : 0);
    case "sin": return Math.sin;
    case "cos": return Math.cos;
    case "step": return (x) => (x > 0 ? 1 : 0);
  }
}

export function binaryFn(op: BinaryOp | ScalarOp): (a: number, b: number) => number {
  switch (op) {
    case "add": return (a, b) => a + b;
    case "sub": return (a, b) => a - b;
    case "mul": return (a, b) => a * b;
    case "div": return (a, b) => a / b;
    case "pow": return Math.pow;
    case "maximum": return (a, b) => (a >= b || Number.isNaN(a) ? a : b);
    case "minimum": return (a, b) => (a <= b || Number.isNaN(a) ? a : b);
    case "rsub": return (a, b) => b - a;
    case "rdiv": return (a, b) => b / a;
    case "lt": return (a, b) => (a < b ? 1 : 0);
    case "le": return (a, b) => (a <= b ? 1 : 0);
    case "gt": return (a, b) => (a > b ? 1 : 0);
    case "ge": return (a, b) => (a >= b ? 1 : 0);
    case "eq": return (a, b) => (a === b ? 1 : 0);
    case "ne": return (a, b) => (a !== b ? 1 : 0);
  }
}

const COMPARE = new Set(["lt", "le", "gt", "ge", "eq", "ne"]);
export const isCompare = (op: string): boolean => COMPARE.has(op);

export function unary(alloc: Alloc, [x]: TypedArray[], p: KernelParams["unary"]): TypedArray[] {
  // Output dtype = input dtype; the Tensor layer casts ints to float before float-only ops.
  const y = alloc(x instanceof Int32Array ? "int32" : "float32", p.n);
  const n = p.n;
  // Hot ones (activations and their gradients) get their own monomorphic loops; the rest go
  // through a function call per element.
  if (x instanceof Float32Array && y instanceof Float32Array) {
    if (p.op === "relu") return [reluF32(x, y, n)];
    if (p.op === "step") return [stepF32(x, y, n)];
    if (p.op === "exp") { for (let i = 0; i < n; i++) y[i] = Math.exp(x[i]); return [y]; }
    if (p.op === "neg") { for (let i = 0; i < n; i++) y[i] = -x[i]; return [y]; }
  }
  {
    const f = unaryFn(p.op);
    for (let i = 0; i < n; i++) y[i] = f(x[i]);
  }
  return [y];
}

function reluF32(x: Float32Array, y: Float32Array, n: number): Float32Array {
  // As PyTorch: NaN stays NaN and −∞ gives 0 (so not v·[v > 0], which is faster but makes
  // −∞·0 = NaN). The wasm backend has the fast SIMD version.
  for (let i = 0; i < n; i++) { const v = x[i]; y[i] = v > 0 || v !== v ? v : 0; }
  return y;
}
function stepF32(x: Float32Array, y: Float32Array, n: number): Float32Array {
  for (let i = 0; i < n; i++) y[i] = +(x[i] > 0);
  return y;
}

// Walk an N-d output, calling body(outIndex, aOffset, bOffset) along the last dim with strides.
// The innermost dim is a tight loop; outer dims advance with an odometer.
function forEachRow(
  shape: readonly number[], sa: readonly number[], sb: readonly number[],
  row: (o: number, a: number, b: number, n: number, da: number, db: number) => void,
): void {
  const nd = shape.length;
  if (nd === 0) return row(0, 0, 0, 1, 0, 0);
  const last = shape[nd - 1];
  let rows = 1;
  for (let d = 0; d < nd - 1; d++) rows *= shape[d];
  if (last === 0 || rows === 0) return;
  const idx = new Array<number>(nd).fill(0);
  let ao = 0, bo = 0;
  for (let r = 0; r < rows; r++) {
    row(r * last, ao, bo, last, sa[nd - 1], sb[nd - 1]);
    for (let d = nd - 2; d >= 0; d--) {
      idx[d]++;
      ao += sa[d];
      bo += sb[d];
      if (idx[d] < shape[d]) break;
      ao -= sa[d] * shape[d];
      bo -= sb[d] * shape[d];
      idx[d] = 0;
    }
  }
}

export function binary(alloc: Alloc, [a, b]: TypedArray[], p: KernelParams["binary"]): TypedArray[] {
  let n = 1;
  for (const d of p.outShape) n *= d;
  const y = alloc(isCompare(p.op) ? "float32" : p.dtype, n);
  const f = binaryFn(p.op);
  const op = p.op;
  forEachRow(p.outShape, p.aStrides, p.bStrides, (o, ao, bo, len, da, db) => {
    if (op === "add" && da === 1 && db === 1) for (let i = 0; i < len; i++) y[o + i] = a[ao + i] + b[bo + i];
    else if (op === "mul" && da === 1 && db === 1) for (let i = 0; i < len; i++) y[o + i] = a[ao + i] * b[bo + i];
    else if (op === "add" && da === 1 && db === 0) { const s = b[bo]; for (let i = 0; i < len; i++) y[o + i] = a[ao + i] + s; }
    else if (op === "mul" && da === 1 && db === 0) { const s = b[bo]; for (let i = 0; i < len; i++) y[o + i] = a[ao + i] * s; }
    else for (let i = 0; i < len; i++) y[o + i] = f(a[ao + i * da], b[bo + i * db]);
  });
  return [y];
}

export function scalar(alloc: Alloc, [x]: TypedArray[], p: KernelParams["scalar"]): TypedArray[] {
  const y = alloc(isCompare(p.op) ? "float32" : p.dtype, p.n);
  const s = p.value;
  if (p.op === "mul") for (let i = 0; i < p.n; i++) y[i] = x[i] * s;
  else if (p.op === "add") for (let i = 0; i < p.n; i++) y[i] = x[i] + s;
  else {
    const f = binaryFn(p.op);
    for (let i = 0; i < p.n; i++) y[i] = f(x[i], s);
  }
  return [y];
}

export function where(alloc: Alloc, [c, a, b]: TypedArray[], p: KernelParams["where"]): TypedArray[] {
  let n = 1;
  for (const d of p.outShape) n *= d;
  const y = alloc(p.dtype, n);
  // Odometer over three strided inputs.
  const nd = p.outShape.length;
  const idx = new Array<number>(nd).fill(0);
  let co = 0, ao = 0, bo = 0;
  for (let i = 0; i < n; i++) {
    y[i] = c[co] !== 0 ? a[ao] : b[bo];
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      co += p.cStrides[d]; ao += p.aStrides[d]; bo += p.bStrides[d];
      if (idx[d] < p.outShape[d]) break;
      co -= p.cStrides[d] * p.outShape[d]; ao -= p.aStrides[d] * p.outShape[d]; bo -= p.bStrides[d] * p.outShape[d];
      idx[d] = 0;
    }
  }
  return [y];
}

export function cast(alloc: Alloc, [x]: TypedArray[], p: KernelParams["cast"]): TypedArray[] {
  const y = alloc(p.to, p.n);
  if (p.to === "int32") for (let i = 0; i < p.n; i++) y[i] = Math.trunc(x[i]);
  else y.set(x);
  return [y];
}

export function adamw(alloc: Alloc, [p0, g, m0, v0]: TypedArray[], q: KernelParams["adamw"]): TypedArray[] {
  const p = alloc("float32", q.n), m = alloc("float32", q.n), v = alloc("float32", q.n);
  const { lr, beta1, beta2, eps, weightDecay, bc1, bc2 } = q;
  const decay = 1 - lr * weightDecay;
  for (let i = 0; i < q.n; i++) {
    const gi = g[i];
    const mi = beta1 * m0[i] + (1 - beta1) * gi;
    const vi = beta2 * v0[i] + (1 - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    // Decoupled weight decay (Loshchilov & Hutter): p ← p(1 − lr·λ) − lr · m̂ / (√v̂ + ε)
    p[i] = p0[i] * decay - (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + eps);
  }
  return [p, m, v];
}
