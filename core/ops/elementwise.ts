// Element-wise ops: unary, binary with broadcasting, scalars, comparisons, where, casts.
import type { DType } from "../dtype.ts";
import type { BinaryOp, ScalarOp, UnaryOp } from "../kernels.ts";
import { broadcastShapes, broadcastStrides, fmt, shapesEqual, stridesOf } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { recordPrim, type UnaryPrim } from "../grad.ts";
import { backendOf, filled, run1 } from "./run.ts";
import { alias } from "./shape.ts";

type Operand = Tensor | number;

function checkFinite(op: string, v: number): void {
  if (typeof v !== "number" || Number.isNaN(v)) throw new Error(`${op}: expected a number or a Tensor, got ${String(v)}`);
}

// Int tensors are promoted to float for float-only math (like PyTorch's true division).
function asFloat(t: Tensor): Tensor {
  return t.dtype === "float32" ? t : cast(t, "float32");
}

export function cast(t: Tensor, to: DType): Tensor {
  if (to !== "float32" && to !== "int32") throw new Error(`cast: unknown dtype "${String(to)}"; expected "float32" or "int32"`);
  if (t.dtype === to) return alias(t);
  // float→int has no gradient; int→float starts from a non-differentiable int tensor.
  return run1("cast", [t], { n: t.size, from: t.dtype, to }, t.shape, to, "cast");
}

const INT_UNARY = new Set<UnaryOp>(["neg", "abs", "sign", "relu"]);

export function unaryOp(op: UnaryPrim | "sign", x: Tensor): Tensor {
  const src = x.dtype === "int32" && !INT_UNARY.has(op) ? asFloat(x) : x;
  const out = run1("unary", [src], { op, n: src.size }, src.shape, src.dtype, op);
  return op === "sign" ? out : recordPrim(out, op, [src], {});
}

// A raw kernel call with no autodiff node (used by backward rules and masks).
export function unaryRaw(op: UnaryOp, x: Tensor): Tensor {
  return run1("unary", [x], { op, n: x.size }, x.shape, x.dtype, op);
}

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== b.dtype) {
    a = asFloat(a);
    b = asFloat(b);
  }
  const outShape = broadcastShapes(op, a.shape, b.shape);
  const cmp = op === "lt" || op === "le" || op === "gt" || op === "ge" || op === "eq" || op === "ne";
  return run1("binary", [a, b], {
    op, outShape, aStrides: broadcastStrides(a.shape, outShape), bStrides: broadcastStrides(b.shape, outShape), dtype: a.dtype,
  }, outShape, cmp ? "float32" : a.dtype, op);
}

function scalarRaw(op: ScalarOp, x: Tensor, value: number): Tensor {
  const cmp = op === "lt" || op === "le" || op === "gt" || op === "ge" || op === "eq" || op === "ne";
  // int ⊕ non-integer scalar is float, as in PyTorch.
  if (x.dtype === "int32" && !cmp && (!Number.isInteger(value) || op === "rdiv" || op === "pow")) x = asFloat(x);
  return run1("scalar", [x], { op, value, n: x.size, dtype: x.dtype }, x.shape, cmp ? "float32" : x.dtype, op);
}

function binaryPrim(op: "add" | "sub" | "mul" | "div" | "pow" | "maximum" | "minimum", a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") {
    checkFinite(op, b);
    const sop: ScalarOp = op === "sub" ? "add" : op === "div" ? "mul" : op;
    const v = op === "sub" ? -b : op === "div" ? 1 / b : b;
    if (op === "div" && b === 0) return binaryPrim("div", a, filled([], 0, a.dtype, a.backend));
    const out = scalarRaw(sop, a, v);
    return recordPrim(out, "scalar", [out.dtype === a.dtype ? a : asFloat(a)], { op: sop, value: v });
  }
  if (op === "div" || op === "pow") {
    a = asFloat(a);
    b = asFloat(b);
  }
  const out = binaryRaw(op, a, b);
  return recordPrim(out, op, [a.dtype === out.dtype ? a : asFloat(a), b.dtype === out.dtype ? b : asFloat(b)], {});
}

export const add = (a: Tensor, b: Operand): Tensor => binaryPrim("add", a, b);
export const sub = (a: Tensor, b: Operand): Tensor => binaryPrim("sub", a, b);
export const mul = (a: Tensor, b: Operand): Tensor => binaryPrim("mul", a, b);
export const div = (a: Tensor, b: Operand): Tensor => binaryPrim("div", a, b);
export const pow = (a: Tensor, b: Operand): Tensor => binaryPrim("pow", a, b);
export const maximum = (a: Tensor, b: Operand): Tensor => binaryPrim("maximum", a, b);
export const minimum = (a: Tensor, b: Operand): Tensor => binaryPrim("minimum", a, b);

// s - x and s / x, for scalars on the left.
export function rsub(x: Tensor, s: number): Tensor {
  return recordPrim(scalarRaw("rsub", x, s), "scalar", [x], { op: "rsub", value: s });
}
export function rdiv(x: Tensor, s: number): Tensor {
  const xf = asFloat(x);
  return recordPrim(scalarRaw("rdiv", xf, s), "scalar", [xf], { op: "rdiv", value: s });
}

// Comparisons give float32 masks of 0 and 1, with no gradient.
export function compare(op: "lt" | "le" | "gt" | "ge" | "eq" | "ne", a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") {
    checkFinite(op, b);
    return scalarRaw(op, a, b);
  }
  return binaryRaw(op, a, b);
}

export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const ref = typeof a === "number" ? (typeof b === "number" ? cond : b) : a;
  const at = typeof a === "number" ? filled([], a, ref.dtype, ref.backend) : a;
  const bt = typeof b === "number" ? filled([], b, ref.dtype, ref.backend) : b;
  let [x, y] = [at, bt];
  if (x.dtype !== y.dtype) [x, y] = [asFloat(x), asFloat(y)];
  const outShape = broadcastShapes("where", broadcastShapes("where", cond.shape, x.shape), y.shape);
  const out = run1("where", [cond, x, y], {
    outShape,
    cStrides: broadcastStrides(cond.shape, outShape),
    aStrides: broadcastStrides(x.shape, outShape),
    bStrides: broadcastStrides(y.shape, outShape),
    dtype: x.dtype,
  }, outShape, x.dtype, "where");
  return recordPrim(out, "where", [cond, x, y], {});
}

export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  broadcastShapes("maskedFill", x.shape, mask.shape);
  if (!shapesEqual(broadcastShapes("maskedFill", x.shape, mask.shape), x.shape)) {
    throw new Error(`maskedFill: mask ${fmt(mask.shape)} must broadcast to the tensor's shape ${fmt(x.shape)}`);
  }
  return where(mask, value, x);
}

export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  if (min !== undefined && max !== undefined && min > max) throw new Error(`clamp: min ${min} > max ${max}`);
  let y = min === undefined && max === undefined ? alias(x) : x;
  if (min !== undefined) y = maximum(y, min);
  if (max !== undefined) y = minimum(y, max);
  return y;
}

export function fullLike(t: Tensor, value: number): Tensor {
  return filled(t.shape, value, t.dtype, backendOf("fullLike", [t]));
}

export function clone(t: Tensor): Tensor {
  const out = run1("strided", [t], { outShape: t.shape.slice(), strides: stridesOf(t.shape), offset: 0, dtype: t.dtype }, t.shape, t.dtype, "clone");
  return recordPrim(out, "reshape", [t], {}); // identity: the gradient passes through
}

export { binaryRaw, scalarRaw };
