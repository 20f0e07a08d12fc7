// The kernel vocabulary of the backend contract. A backend sees only buffers and these
// parameter records — never a Tensor. Shapes arrive pre-digested (outer/n/inner splits,
// broadcast strides) so a kernel is "one function per output element plus an inner loop".
import type { DType } from "./dtype.ts";

export type UnaryOp =
  | "neg" | "exp" | "log" | "sqrt" | "rsqrt" | "abs" | "tanh" | "sigmoid" | "relu"
  | "gelu" | "geluTanh" | "geluGrad" | "geluTanhGrad" | "sign" | "sin" | "cos" | "step";
export type BinaryOp =
  | "add" | "sub" | "mul" | "div" | "pow" | "maximum" | "minimum"
  | "lt" | "le" | "gt" | "ge" | "eq" | "ne";
export type ScalarOp = "add" | "mul" | "pow" | "rsub" | "rdiv" | "maximum" | "minimum" | "lt" | "le" | "gt" | "ge" | "eq" | "ne";
export type ReduceOp = "sum" | "max" | "min" | "argmax" | "argmin";

export const UNARY_OPS: readonly UnaryOp[] = [
  "neg", "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "sigmoid", "relu",
  "gelu", "geluTanh", "geluGrad", "geluTanhGrad", "sign", "sin", "cos", "step",
];

export interface KernelParams {
  // y = op(x), elementwise; output dtype = input dtype except float-only ops.
  unary: { op: UnaryOp; n: number };
  // y = a op b over outShape, reading a and b with (possibly 0) strides. Compare ops give 0/1 float32.
  binary: { op: BinaryOp; outShape: number[]; aStrides: number[]; bStrides: number[]; dtype: DType };
  // y = x op s (or s op x for rsub/rdiv), scalar s.
  scalar: { op: ScalarOp; value: number; n: number; dtype: DType };
  // y = cond != 0 ? a : b, with broadcast strides.
  where: { outShape: number[]; cStrides: number[]; aStrides: number[]; bStrides: number[]; dtype: DType };
  // x viewed as [outer, r, inner] → y [outer, inner]. argmax/argmin give int32.
  reduce: { op: ReduceOp; outer: number; r: number; inner: number; dtype: DType };
  // y[i] = x[offset + Σ idx_d · strides_d] over outShape: permute, expand, slice.
  strided: { outShape: number[]; strides: number[]; offset: number; dtype: DType };
  // y = x padded with `value`: before[d] entries in front and (outShape-inShape-before) after.
  pad: { inShape: number[]; outShape: number[]; before: number[]; value: number; dtype: DType };
  // inputs viewed as [outer, sizes[i]·inner] side by side → y [outer, Σ sizes · inner].
  // rowStrides[i] (default sizes[i]·inner): elements between input i's rows, of which the first
  // sizes[i]·inner are taken (a prefix along the concatenated dim, read without a copy first).
  concat: { outer: number; sizes: number[]; inner: number; dtype: DType; rowStrides?: number[] };
  // C[b] = op(A[b]) · op(B[b]); op = transpose when the flag is set; a batch stride 0 broadcasts.
  matmul: { batch: number; M: number; K: number; N: number; transA: boolean; transB: boolean; aBatchStride: number; bBatchStride: number };
  // y[o,j,i] = x[o, idx[o,j,i], i]; x is [outer, n, inner], idx/y are [outer, k, inner].
  gather: { outer: number; n: number; k: number; inner: number; dtype: DType };
  // y = zeros [outer, n, inner]; y[o, idx[o,j,i], i] += src[o,j,i].
  scatterAdd: { outer: number; n: number; k: number; inner: number };
  // y[o,j,:] = x[o, ids[j], :]; x is [outer, n, inner], ids has m entries.
  indexSelect: { outer: number; n: number; m: number; inner: number; dtype: DType };
  // y = zeros [outer, n, inner]; y[o, ids[j], :] += g[o, j, :].
  indexAdd: { outer: number; n: number; m: number; inner: number };
  // softmax / log-softmax along the middle axis of [outer, n, inner].
  softmax: { outer: number; n: number; inner: number; log: boolean };
  // Greedy decoding's pick, fused: per row of x [rows, n] (n ≥ 1), with s = logSoftmax(x) + bias
  // (bias [n], the same for every row): [index int32 [rows], value [rows]] = the first position
  // of the row maximum of s (a NaN counts as the maximum, as in reduce's argmax) and s there.
  // Bit for bit what softmax(log) → binary add → reduce argmax → gather give on the same backend,
  // in one read of x and without writing the [rows, n] log-probabilities.
  logSoftmaxArgmax: { rows: number; n: number };
  // dx from y (the forward output) and g.
  softmaxBackward: { outer: number; n: number; inner: number; log: boolean };
  // rows of n: y = (x-μ)·rstd·w + b; outputs [y, mean, rstd].
  layerNorm: { rows: number; n: number; eps: number };
  // inputs [x, w, mean, rstd, g] → [dx, dw, db].
  layerNormBackward: { rows: number; n: number };
  // inputs [logits [rows,v], target int32 [rows]] → [loss [rows]]; ignored rows give 0.
  crossEntropy: { rows: number; v: number; ignoreIndex: number; labelSmoothing: number };
  // inputs [logits, target, g [rows]] → [dlogits]. The row statistics (max, log Σ exp) are
  // recomputed from the logits: a saved float32 log-sum-exp loses the low digits that
  // exp(z − lse) needs once |z| is large.
  crossEntropyBackward: { rows: number; v: number; ignoreIndex: number; labelSmoothing: number };
  cast: { n: number; from: DType; to: DType };
  // AdamW: inputs [p, g, m, v] → new [p, m, v], with bias corrections bc1 = 1−β₁ᵗ, bc2 = 1−β₂ᵗ:
  // p ← p·(1 − lr·λ) − lr·(m/bc1)/(√(v/bc2) + ε)
  adamw: { n: number; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; bc1: number; bc2: number };
}

export type KernelName = keyof KernelParams;

// How many buffers each kernel returns; the Tensor layer relies on it.
export const KERNEL_OUTPUTS: { [K in KernelName]: number } = {
  unary: 1, binary: 1, scalar: 1, where: 1, reduce: 1, strided: 1, pad: 1, concat: 1, matmul: 1,
  gather: 1, scatterAdd: 1, indexSelect: 1, indexAdd: 1, softmax: 1, logSoftmaxArgmax: 2, softmaxBackward: 1,
  layerNorm: 3, layerNormBackward: 3, crossEntropy: 1, crossEntropyBackward: 1, cast: 1, adamw: 3,
};
