// Fused NN primitives: softmax, logSoftmax, layerNorm, crossEntropy; and dropout.
import { needsGrad } from "../autograd.ts";
import { defaultGenerator, type Generator } from "../rng.ts";
import { recordPrim } from "../grad.ts";
import { aroundDim, fmt, normDim, numel } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { cast, compare, mul } from "./elementwise.ts";
import { sum } from "./reduce.ts";
import { filled, fromArray, runKernel, run1 } from "./run.ts";
import { alias, reshape } from "./shape.ts";

function softmaxImpl(x: Tensor, dim: number, log: boolean): Tensor {
  const op = log ? "logSoftmax" : "softmax";
  if (x.dtype !== "float32") throw new Error(`${op}: expected float32, got ${x.dtype}`);
  const d = normDim(op, dim, x.ndim);
  const [outer, n, inner] = x.ndim === 0 ? [1, 1, 1] : aroundDim(x.shape, d);
  const out = run1("softmax", [x], { outer, n, inner, log }, x.shape, "float32", op);
  return recordPrim(out, op, [x], { dim: d });
}
export const softmax = (x: Tensor, dim: number): Tensor => softmaxImpl(x, dim, false);
export const logSoftmax = (x: Tensor, dim: number): Tensor => softmaxImpl(x, dim, true);

// Greedy decoding's pick in one kernel: per row of x [..., n], with s = logSoftmax(x) + bias
// (bias [n], default 0; −∞ bans a position), the first maximum of s (a NaN counts as the
// maximum) and where it is: the numbers s.argmax(-1) and s.gather(-1, ·) would give, bit for
// bit, without writing s. Inference only (no gradient).
export function logSoftmaxArgmax(x: Tensor, bias?: Tensor): { values: Tensor; indices: Tensor } {
  const op = "logSoftmaxArgmax";
  if (x.dtype !== "float32" || x.ndim < 1) throw new Error(`${op}: expected float32 logits [..., n], got ${x.dtype}${fmt(x.shape)}`);
  const n = x.shape[x.ndim - 1], rows = x.size / Math.max(n, 1);
  if (n === 0) throw new Error(`${op}: rows of 0 values have no maximum, got ${fmt(x.shape)}`);
  if (bias && (bias.dtype !== "float32" || bias.shape.join() !== `${n}`)) throw new Error(`${op}: bias must be float32 [${n}], got ${bias.dtype}${fmt(bias.shape)}`);
  if (needsGrad(bias ? [x, bias] : [x])) throw new Error(`${op}: has no gradient; run it under noGrad(), or differentiate logSoftmax(x).max(-1)`);
  const b = bias ?? filled([n], 0, "float32", x.backend);
  try {
    const lead = x.shape.slice(0, -1);
    const [indices, values] = runKernel("logSoftmaxArgmax", [x, b], { rows, n }, [{ shape: lead, dtype: "int32" }, { shape: lead, dtype: "float32" }], op);
    return { values, indices };
  } finally {
    if (!bias) b.dispose();
  }
}

// Normalises over the trailing dims that weight covers: y = (x − μ)/√(σ² + eps) · w + b.
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const normShape = weight?.shape ?? bias?.shape;
  if (!normShape) throw new Error("layerNorm: pass weight or bias (their shape is the normalised shape)");
  if (weight && bias && weight.shape.join() !== bias.shape.join()) {
    throw new Error(`layerNorm: weight ${fmt(weight.shape)} and bias ${fmt(bias.shape)} differ`);
  }
  const k = normShape.length;
  if (x.ndim < k || x.shape.slice(-k).join() !== normShape.join()) {
    throw new Error(`layerNorm: input ${fmt(x.shape)} does not end with the normalised shape ${fmt(normShape)}`);
  }
  if (!(eps > 0)) throw new Error(`layerNorm: eps must be > 0, got ${eps}`);
  const n = numel(normShape), rows = x.size / Math.max(n, 1);
  const w = weight ?? filled(normShape, 1, "float32", x.backend);
  const b = bias ?? filled(normShape, 0, "float32", x.backend);
  const [y, mean, rstd] = runKernel("layerNorm", [x, w, b], { rows, n, eps }, [
    { shape: x.shape, dtype: "float32" }, { shape: [rows], dtype: "float32" }, { shape: [rows], dtype: "float32" },
  ], "layerNorm");
  const out = recordPrim(y, "layerNorm", [x, w, b], { mean, rstd, rows, n });
  if (!out._node) {
    // Nothing will differentiate this: the saved statistics (and stand-in weights) are not needed.
    mean.dispose();
    rstd.dispose();
    if (!weight) w.dispose();
    if (!bias) b.dispose();
  }
  return out;
}

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  labelSmoothing?: number;
  reduction?: "mean" | "sum" | "none";
}

// logits [..., C], target [...] int32. "mean" averages over the non-ignored targets (as PyTorch).
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const { ignoreIndex = -100, labelSmoothing = 0, reduction = "mean" } = opts;
  if (target.dtype !== "int32") throw new Error(`crossEntropy: target must be int32 class ids, got ${target.dtype}`);
  if (logits.dtype !== "float32") throw new Error(`crossEntropy: logits must be float32, got ${logits.dtype}`);
  if (logits.ndim < 1 || logits.shape.slice(0, -1).join() !== target.shape.join()) {
    throw new Error(`crossEntropy: logits ${fmt(logits.shape)} must be target's shape ${fmt(target.shape)} plus a class dim`);
  }
  if (!(labelSmoothing >= 0 && labelSmoothing <= 1)) throw new Error(`crossEntropy: labelSmoothing must be in [0, 1], got ${labelSmoothing}`);
  if (reduction !== "mean" && reduction !== "sum" && reduction !== "none") throw new Error(`crossEntropy: unknown reduction "${reduction}"`);
  const v = logits.shape[logits.ndim - 1];
  const rows = target.size;
  const z = reshape(logits, [rows, v]), t = reshape(target, [rows]);
  const loss = run1("crossEntropy", [z, t], { rows, v, ignoreIndex, labelSmoothing }, [rows], "float32", "crossEntropy");
  const perRow = recordPrim(loss, "crossEntropy", [z, t], { ignoreIndex, labelSmoothing, rows, v });
  if (reduction === "none") return reshape(perRow, target.shape);
  const total = sum(perRow);
  if (reduction === "sum") return total;
  const count = sum(cast(compare("ne", t, ignoreIndex), "float32"));
  return total.div(count);
}

// Inverted dropout: keep with probability 1 − p and scale by 1/(1 − p). The mask comes from the
// host generator, so the same seed drops the same units on every backend.
export function dropout(x: Tensor, p: number, training = true, generator: Generator = defaultGenerator()): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) return alias(x);
  const keep = generator.bernoulliMask(x.size, 1 - p, 1 / (1 - p));
  return mul(x, fromArray(keep, x.shape, "float32", x.backend));
}
