// Reductions. The kernel reduces the middle of [outer, r, inner]; reducing a set of dims that
// is not contiguous first permutes the kept dims to the front.
import { recordPrim } from "../grad.ts";
import type { ReduceOp } from "../kernels.ts";
import { fmt, normDim, normDims, numel } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { cast, compare, where } from "./elementwise.ts";
import { run1 } from "./run.ts";
import { alias, permute, reshape } from "./shape.ts";

function keptShape(shape: readonly number[], dims: number[], keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (dims.includes(i) ? 1 : d)) : shape.filter((_, i) => !dims.includes(i));
}

export function reduceRaw(op: ReduceOp, x: Tensor, dims: number[], keepdim: boolean): Tensor {
  const outShape = keptShape(x.shape, dims, keepdim);
  if ((op !== "sum") && dims.some((d) => x.shape[d] === 0)) {
    throw new Error(`${op}: cannot reduce over an empty dim of ${fmt(x.shape)}`);
  }
  const contiguous = dims.every((d, i) => i === 0 || d === dims[i - 1] + 1);
  let src = x, lo = dims[0] ?? 0, hi = (dims[dims.length - 1] ?? -1) + 1;
  if (!contiguous) {
    const kept = x.shape.map((_, i) => i).filter((i) => !dims.includes(i));
    src = permute(x, [...kept, ...dims]);
    lo = kept.length;
    hi = x.ndim;
  }
  const outer = numel(src.shape.slice(0, lo)), r = numel(src.shape.slice(lo, hi)), inner = numel(src.shape.slice(hi));
  const arg = op === "argmax" || op === "argmin";
  return run1("reduce", [src], { op, outer, r, inner, dtype: src.dtype }, outShape, arg ? "int32" : src.dtype, op);
}

export function sum(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  const dims = normDims("sum", dim, x.ndim);
  if (dims.length === 0) return alias(x);
  return recordPrim(reduceRaw("sum", x, dims, keepdim), "sum", [x], { dims, keepdim });
}

export function mean(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  const dims = normDims("mean", dim, x.ndim);
  const n = numel(dims.map((d) => x.shape[d]));
  const xf = x.dtype === "float32" ? x : cast(x, "float32");
  return sum(xf, dims, keepdim).mul(1 / n);
}

function extreme(op: "max" | "min", x: Tensor, dim: number | number[] | undefined, keepdim: boolean): Tensor {
  const dims = normDims(op, dim, x.ndim);
  if (dims.length === 0) return alias(x);
  return recordPrim(reduceRaw(op, x, dims, keepdim), op, [x], { dims, keepdim });
}
export const max = (x: Tensor, dim?: number | number[], keepdim = false): Tensor => extreme("max", x, dim, keepdim);
export const min = (x: Tensor, dim?: number | number[], keepdim = false): Tensor => extreme("min", x, dim, keepdim);

function argExtreme(op: "argmax" | "argmin", x: Tensor, dim: number | undefined, keepdim: boolean): Tensor {
  if (dim === undefined) return reduceRaw(op, reshape(x, [x.size]), [0], false);
  return reduceRaw(op, x, [normDim(op, dim, x.ndim)], keepdim);
}
export const argmax = (x: Tensor, dim?: number, keepdim = false): Tensor => argExtreme("argmax", x, dim, keepdim);
export const argmin = (x: Tensor, dim?: number, keepdim = false): Tensor => argExtreme("argmin", x, dim, keepdim);

// log Σ eˣ = m + log Σ e^(x−m) with m = max x (detached: the result does not depend on m).
// Rows whose max is ±∞ use m = 0 so that x − m stays defined.
export function logsumexp(x: Tensor, dim: number | number[], keepdim = false): Tensor {
  const dims = normDims("logsumexp", dim, x.ndim);
  const m0 = reduceRaw("max", x, dims, true);
  const m = where(compare("lt", m0.abs(), Infinity), m0, 0);
  const out = sum(x.sub(m).exp(), dims, true).log().add(m);
  return keepdim ? out : reshape(out, keptShape(x.shape, dims, false));
}

export function variance(x: Tensor, dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
  const dims = normDims("var", dim, x.ndim);
  const n = numel(dims.map((d) => x.shape[d]));
  const unbiased = opts.unbiased ?? true;
  const dof = unbiased ? n - 1 : n;
  if (dof <= 0) throw new Error(`var: needs more than ${unbiased ? 1 : 0} elements over dims [${dims}] of ${fmt(x.shape)}`);
  const c = x.sub(mean(x, dims, true));
  return sum(c.mul(c), dims, opts.keepdim ?? false).mul(1 / dof);
}
