// Batched matmul with broadcasting of batch dims; transposed operands are read in place.
import { recordPrim } from "../grad.ts";
import { broadcastShapes, fmt, numel } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { run1 } from "./run.ts";
import { expand, reshape, squeeze, unsqueeze } from "./shape.ts";

// C = op(A)·op(B) where op transposes the last two dims when its flag is set.
export function matmulT(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  if (a.dtype !== "float32" || b.dtype !== "float32") throw new Error(`matmul: expected float32 tensors, got ${a.dtype} @ ${b.dtype}`);
  if (a.ndim < 2 || b.ndim < 2) throw new Error(`matmul: internal needs ≥2-d operands, got ${fmt(a.shape)} @ ${fmt(b.shape)}`);
  const [ar, ac] = a.shape.slice(-2), [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar, K = transA ? ar : ac, Kb = transB ? bc : br, N = transB ? br : bc;
  if (K !== Kb) {
    throw new Error(`matmul: inner dimensions differ: ${fmt(a.shape)}${transA ? "ᵀ" : ""} @ ${fmt(b.shape)}${transB ? "ᵀ" : ""} (${K} vs ${Kb})`);
  }
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  const batchShape = broadcastShapes("matmul", batchA, batchB);
  const batch = numel(batchShape);
  // A batch stride of 0 broadcasts one matrix over all; other broadcasts are materialised.
  const fit = (t: Tensor, own: number[]): [Tensor, number] => {
    if (numel(own) === 1) return [t, 0];
    if (own.length === batchShape.length && own.every((d, i) => d === batchShape[i])) return [t, t.shape.at(-2)! * t.shape.at(-1)!];
    const e = expand(t, [...batchShape, ...t.shape.slice(-2)]);
    return [e, e.shape.at(-2)! * e.shape.at(-1)!];
  };
  const [aa, sa] = fit(a, batchA);
  const [bb, sb] = fit(b, batchB);
  const out = run1("matmul", [aa, bb], { batch, M, K, N, transA, transB, aBatchStride: sa, bBatchStride: sb }, [...batchShape, M, N], "float32", "matmul");
  return recordPrim(out, "matmul", [a, b], { transA, transB });
}

export interface MatmulOptions {
  transposeA?: boolean; // use Aᵀ (its last two dims swapped), read in place: no copy
  transposeB?: boolean; // use Bᵀ, read in place — x·Wᵀ for a weight W stored [out, in]
}

// matmul(a, b) as NumPy/PyTorch; with transpose flags both operands must be at least 2-D and the
// transposed one is read in place (a.matmul(b.mT) would copy b first).
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const ta = opts.transposeA ?? false, tb = opts.transposeB ?? false;
  if (ta || tb) {
    if (a.ndim < 2 || b.ndim < 2) throw new Error(`matmul: transpose flags need operands of at least 2 dims, got ${fmt(a.shape)} @ ${fmt(b.shape)}`);
    // [..., M, K] @ [N, K]ᵀ: fold the batch into M as below.
    if (b.ndim === 2 && a.ndim > 2 && !ta) {
      const lead = a.shape.slice(0, -1);
      const out = matmulT(reshape(a, [numel(lead), a.shape.at(-1)!]), b, false, tb);
      return reshape(out, [...lead, out.shape[1]]);
    }
    return matmulT(a, b, ta, tb);
  }
  if (a.ndim === 0 || b.ndim === 0) throw new Error(`matmul: scalars are not allowed, got ${fmt(a.shape)} @ ${fmt(b.shape)}`);
  // 1-D operands follow NumPy: a vector is a row (left) or a column (right), removed afterwards.
  if (a.ndim === 1 && b.ndim === 1) {
    if (a.shape[0] !== b.shape[0]) throw new Error(`matmul: inner dimensions differ: ${fmt(a.shape)} @ ${fmt(b.shape)}`);
    return reshape(matmulT(unsqueeze(a, 0), unsqueeze(b, 1), false, false), []);
  }
  if (a.ndim === 1) return squeeze(matmulT(unsqueeze(a, 0), b, false, false), -2);
  if (b.ndim === 1) return squeeze(matmulT(a, unsqueeze(b, 1), false, false), -1);
  // [..., M, K] @ [K, N]: fold the batch into M — one big matmul instead of many small ones.
  if (b.ndim === 2 && a.ndim > 2) {
    const lead = a.shape.slice(0, -1);
    const a2 = reshape(a, [numel(lead), a.shape.at(-1)!]);
    return reshape(matmulT(a2, b, false, false), [...lead, b.shape[1]]);
  }
  return matmulT(a, b, false, false);
}

// PyTorch's F.linear: y = x·Wᵀ + b with W stored [out, in]; x: [..., in] → [..., out].
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  if (weight.ndim !== 2) throw new Error(`linear: expected a weight [out, in], got ${fmt(weight.shape)}`);
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new Error(`linear: expected input [..., ${weight.shape[1]}] for a weight ${fmt(weight.shape)}, got ${fmt(x.shape)}`);
  }
  const lead = x.shape.slice(0, -1);
  const x2 = x.ndim === 2 ? x : reshape(x, [numel(lead), weight.shape[1]]);
  let y = matmulT(x2, weight, false, true); // [rows, out]
  if (bias) y = y.add(bias);
  return x.ndim === 2 ? y : reshape(y, [...lead, weight.shape[0]]);
}
