// Element-wise kernels: unary, binary and where over broadcast strides, scalar, cast, AdamW,
// and the copy/fill kernels behind upload() and full().
//
// Each op is one expression; the kernel around it is generated once per op (and per dtype
// where int32 needs truncation), so each compiled shader does exactly one thing.
// int32 tensors live on the device as float32 holding exact integers (|v| ≤ 2^24).
import type { DType } from "../../dtype.ts";
import type { BinaryOp, KernelParams, ScalarOp, UnaryOp } from "../../kernels.ts";
import * as M from "./gpu-math.ts";
import { checkIndexed, coalesce, isFlat, numel, packMeta } from "./layout.ts";
import type { GpujsBuffer, KernelSpec, Runtime } from "./runtime.ts";

const HELPERS = [M.floorDiv, M.erfApprox, M.tanhSafe, M.sigmoidSafe, M.geluExact, M.geluExactGrad,
  M.geluTanhApprox, M.geluTanhApproxGrad, M.powSigned, M.truncInt];

// y = f(v)
const UNARY: Record<UnaryOp, string> = {
  neg: "0 - v",
  exp: "Math.exp(v)",
  log: "Math.log(v)",
  sqrt: "Math.sqrt(v)",
  rsqrt: "1 / Math.sqrt(v)",
  abs: "Math.abs(v)",
  tanh: "tanhSafe(v)",
  sigmoid: "sigmoidSafe(v)",
  relu: "(v > 0 ? v : 0)",
  gelu: "geluExact(v)",
  geluTanh: "geluTanhApprox(v)",
  geluGrad: "geluExactGrad(v)",
  geluTanhGrad: "geluTanhApproxGrad(v)",
  sign: "((v > 0 ? 1 : 0) - (v < 0 ? 1 : 0))",
  sin: "Math.sin(v)",
  cos: "Math.cos(v)",
  step: "(v > 0 ? 1 : 0)",
};

// y = f(a, b); rsub/rdiv are the scalar forms s − x and s / x with a = x, b = s.
const BINARY: Record<BinaryOp | ScalarOp, string> = {
  add: "a + b",
  sub: "a - b",
  mul: "a * b",
  div: "a / b",
  pow: "powSigned(a, b)",
  // NaN wins, as in the cpu backend (drivers may still fold a != a away: see the README).
  maximum: "(a >= b || a != a ? a : b)",
  minimum: "(a <= b || a != a ? a : b)",
  rsub: "b - a",
  rdiv: "b / a",
  lt: "(a < b ? 1 : 0)",
  le: "(a <= b ? 1 : 0)",
  gt: "(a > b ? 1 : 0)",
  ge: "(a >= b ? 1 : 0)",
  eq: "(a == b ? 1 : 0)",
  ne: "(a != b ? 1 : 0)",
};
const COMPARE = new Set(["lt", "le", "gt", "ge", "eq", "ne"]);
// Ops whose int32 result needs truncating back to an integer (the cpu backend stores into an
// Int32Array, which truncates).
const INT_TRUNC = new Set(["div", "pow", "rdiv"]);

const specs = new Map<string, KernelSpec>();
function spec(key: string, make: () => Omit<KernelSpec, "key">): KernelSpec {
  let s = specs.get(key);
  if (!s) specs.set(key, (s = { key, ...make() }));
  return s;
}

function finish(expr: string, op: string, dtype: DType): string {
  return dtype === "int32" && INT_TRUNC.has(op) ? `truncInt(${expr})` : expr;
}

// The N-d walk shared by binary and where: decompose the flat output index into a
// multi-index (last dim fastest) and accumulate one offset per input.
// meta = [shape[rank], strides of input 0[rank], strides of input 1[rank], ...].
function walkSource(offsets: string[]): string {
  return `
  let rem = this.thread.x;
  ${offsets.map((o) => `let ${o} = 0;`).join(" ")}
  for (let e = 0; e < rank; e++) {
    const d = rank - 1 - e;
    const n = meta[d];
    const q = floorDiv(rem, n);
    const i = rem - q * n;
    ${offsets.map((o, k) => `${o} += i * meta[${k + 1} * rank + d];`).join("\n    ")}
    rem = q;
  }`;
}

export function unary(rt: Runtime, [x]: GpujsBuffer[], p: KernelParams["unary"]): GpujsBuffer[] {
  const s = spec(`unary:${p.op}`, () => ({
    source: `function (x) { const v = x[this.thread.x]; return ${UNARY[p.op]}; }`,
    args: ["Array"],
    functions: HELPERS,
  }));
  return [rt.launch(s, p.n, x.dtype, [x])];
}

export function binary(rt: Runtime, [a, b]: GpujsBuffer[], p: KernelParams["binary"]): GpujsBuffer[] {
  const outType: DType = COMPARE.has(p.op) ? "float32" : p.dtype;
  const n = numel(p.outShape);
  const w = coalesce(p.outShape, [p.aStrides, p.bStrides]);
  const expr = finish(BINARY[p.op], p.op, p.dtype);
  const tag = `${p.op}:${p.dtype === "int32" ? "i" : "f"}`;
  if (isFlat(w)) {
    // Same-shape operands: no index arithmetic, exact for any size.
    const s = spec(`binary-flat:${tag}`, () => ({
      source: `function (x, y) { const a = x[this.thread.x]; const b = y[this.thread.x]; return ${expr}; }`,
      args: ["Array", "Array"],
      functions: HELPERS,
    }));
    return [rt.launch(s, n, outType, [a, b])];
  }
  checkIndexed("binary", n, [a, b]);
  const s = spec(`binary:${tag}`, () => ({
    source: `function (x, y, meta, rank) {${walkSource(["ao", "bo"])}
  const a = x[ao]; const b = y[bo];
  return ${expr};
}`,
    args: ["Array", "Array", "Array", "Integer"],
    functions: HELPERS,
  }));
  return [rt.launch(s, n, outType, [a, b, packMeta(w), w.shape.length])];
}

export function scalar(rt: Runtime, [x]: GpujsBuffer[], p: KernelParams["scalar"]): GpujsBuffer[] {
  const outType: DType = COMPARE.has(p.op) ? "float32" : p.dtype;
  const s = spec(`scalar:${p.op}:${p.dtype === "int32" ? "i" : "f"}`, () => ({
    // The scalar is an argument, never a literal (negative literals break gpu.js's WGSL).
    source: `function (x, b) { const a = x[this.thread.x]; return ${finish(BINARY[p.op], p.op, p.dtype)}; }`,
    args: ["Array", "Float"],
    functions: HELPERS,
  }));
  return [rt.launch(s, p.n, outType, [x, p.value])];
}

export function where(rt: Runtime, [c, a, b]: GpujsBuffer[], p: KernelParams["where"]): GpujsBuffer[] {
  const n = numel(p.outShape);
  checkIndexed("where", n, [c, a, b]);
  const w = coalesce(p.outShape, [p.cStrides, p.aStrides, p.bStrides]);
  const s = spec("where", () => ({
    source: `function (cond, x, y, meta, rank) {${walkSource(["co", "ao", "bo"])}
  if (cond[co] != 0) {
    return x[ao];
  }
  return y[bo];
}`,
    args: ["Array", "Array", "Array", "Array", "Integer"],
    functions: HELPERS,
  }));
  return [rt.launch(s, n, p.dtype, [c, a, b, packMeta(w), w.shape.length])];
}

export function cast(rt: Runtime, [x]: GpujsBuffer[], p: KernelParams["cast"]): GpujsBuffer[] {
  // float → int truncates toward zero; int → float is a copy (the device already holds floats).
  return [rt.launch(p.to === "int32" ? TRUNC : COPY, p.n, p.to, [x])];
}

const COPY: KernelSpec = {
  key: "copy",
  source: function (this: { thread: { x: number } }, x: Float32Array) {
    return x[this.thread.x];
  },
  args: ["Array"],
};
const TRUNC: KernelSpec = {
  key: "trunc",
  source: "function (x) { return truncInt(x[this.thread.x]); }",
  args: ["Array"],
  functions: [M.truncInt],
};

// upload(): host data → a device buffer, through the copy kernel's argument upload.
export function copyFromHost(rt: Runtime, dtype: DType, data: Float32Array): GpujsBuffer {
  return rt.launch(COPY, data.length, dtype, [data]);
}

const FILL: KernelSpec = {
  key: "fill",
  source: function (value: number) {
    return value;
  },
  args: ["Float"],
};
export function fill(rt: Runtime, dtype: DType, size: number, value: number): GpujsBuffer {
  return rt.launch(FILL, size, dtype, [value]);
}

// AdamW as three kernels (gpu.js kernels have one output): each recomputes m and v, which
// costs a few flops and saves a pass over memory.
// p ← p(1 − lr·λ) − lr · (m/bc1) / (√(v/bc2) + ε)
const ADAM_ARGS = ["Array", "Array", "Array", "Array", "Float", "Float", "Float", "Float", "Float", "Float", "Float"] as const;
type K = { thread: { x: number } };
type Arr = Float32Array;
const ADAM_P: KernelSpec = {
  key: "adamw:p",
  source: function (this: K, p: Arr, g: Arr, m: Arr, v: Arr, lr: number, b1: number, b2: number, eps: number, wd: number, bc1: number, bc2: number) {
    const i = this.thread.x;
    const gi = g[i];
    const mi = b1 * m[i] + (1 - b1) * gi;
    const vi = b2 * v[i] + (1 - b2) * gi * gi;
    return p[i] * (1 - lr * wd) - (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + eps);
  },
  args: ADAM_ARGS,
};
const ADAM_M: KernelSpec = {
  key: "adamw:m",
  source: function (this: K, p: Arr, g: Arr, m: Arr, v: Arr, lr: number, b1: number) {
    const i = this.thread.x;
    return b1 * m[i] + (1 - b1) * g[i];
  },
  args: ADAM_ARGS.slice(0, 6),
};
const ADAM_V: KernelSpec = {
  key: "adamw:v",
  source: function (this: K, p: Arr, g: Arr, m: Arr, v: Arr, lr: number, b1: number, b2: number) {
    const i = this.thread.x;
    return b2 * v[i] + (1 - b2) * g[i] * g[i];
  },
  args: ADAM_ARGS.slice(0, 7),
};

export function adamw(rt: Runtime, [p, g, m, v]: GpujsBuffer[], q: KernelParams["adamw"]): GpujsBuffer[] {
  const all = [p, g, m, v, q.lr, q.beta1, q.beta2, q.eps, q.weightDecay, q.bc1, q.bc2];
  return [
    rt.launch(ADAM_P, q.n, "float32", all),
    rt.launch(ADAM_M, q.n, "float32", all.slice(0, 6)),
    rt.launch(ADAM_V, q.n, "float32", all.slice(0, 7)),
  ];
}
