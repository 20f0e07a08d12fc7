// One reverse-mode rule per primitive, in one table: the mapped type makes the compiler name
// any primitive that lacks a rule. Composite ops (mean, logsumexp, var, clamp, dropout, …)
// have no entry: their gradients come from their parts. Rules run under noGrad.
import type { ScalarOp } from "./kernels.ts";
import { binaryRaw, compare, scalarRaw, unaryRaw, where } from "./ops/elementwise.ts";
import { matmulT } from "./ops/linalg.ts";
import { reduceRaw } from "./ops/reduce.ts";
import { filled, run1, runKernel } from "./ops/run.ts";
import { expand, narrow, padBox, permute, reshape, sliceBox } from "./ops/shape.ts";
import { aroundDim, fmt, numel } from "./shape.ts";
import { record } from "./ops/run.ts";
import type { Tensor } from "./tensor.ts";

export type UnaryPrim = "neg" | "exp" | "log" | "sqrt" | "rsqrt" | "abs" | "tanh" | "sigmoid" | "relu" | "gelu" | "geluTanh" | "sin" | "cos";
type NoParams = Record<string, never>;

export interface PrimParams {
  neg: NoParams; exp: NoParams; log: NoParams; sqrt: NoParams; rsqrt: NoParams; abs: NoParams; tanh: NoParams;
  sigmoid: NoParams; relu: NoParams; gelu: NoParams; geluTanh: NoParams; sin: NoParams; cos: NoParams;
  add: NoParams; sub: NoParams; mul: NoParams; div: NoParams; pow: NoParams; maximum: NoParams; minimum: NoParams;
  scalar: { op: ScalarOp; value: number };
  where: NoParams; // inputs [cond, a, b]
  sum: { dims: number[]; keepdim: boolean };
  max: { dims: number[]; keepdim: boolean };
  min: { dims: number[]; keepdim: boolean };
  reshape: NoParams;
  permute: { perm: number[] };
  expand: NoParams;
  slice: { starts: number[]; sizes: number[] };
  pad: { before: number[]; after: number[] };
  cat: { dim: number; sizes: number[] };
  matmul: { transA: boolean; transB: boolean };
  gather: { dim: number }; // inputs [x, index]
  scatterAdd: { dim: number }; // inputs [x, index, src]
  indexSelect: { dim: number }; // inputs [x, index]
  softmax: { dim: number };
  logSoftmax: { dim: number };
  layerNorm: { mean: Tensor; rstd: Tensor; rows: number; n: number }; // inputs [x, w, b]
  crossEntropy: { ignoreIndex: number; labelSmoothing: number; rows: number; v: number }; // inputs [z, t]
}
export type Prim = keyof PrimParams;

type Grads = (Tensor | null)[];
// `needs[i]` says whether input i wants a gradient: rules skip the work for those that do not
// (a dropout mask, an attention bias, a constant operand).
type VjpRule<P extends Prim> = (g: Tensor, inputs: Tensor[], out: Tensor, params: PrimParams[P], needs: boolean[]) => Grads;

// Sum g over the dims that broadcasting added or stretched, so it takes `shape` again.
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.join() === shape.join()) return g;
  const lead = g.ndim - shape.length;
  const dims: number[] = [];
  for (let i = 0; i < g.ndim; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) dims.push(i);
  const s = dims.length ? reduceRaw("sum", g, dims, true) : g;
  return reshape(s, shape.slice());
}

const m = (a: Tensor, b: Tensor): Tensor => binaryRaw("mul", a, b);
const d = (a: Tensor, b: Tensor): Tensor => binaryRaw("div", a, b);
const s = (a: Tensor, op: ScalarOp, v: number): Tensor => scalarRaw(op, a, v);

// Split a maximum/minimum gradient: the winner takes it, ties share it half and half.
function winnerMask(a: Tensor, b: Tensor | number, op: "gt" | "lt"): Tensor {
  const win = compare(op, a, b); // compare takes a tensor or a number
  const tie = compare("eq", a, b);
  return binaryRaw("add", win, s(tie, "mul", 0.5));
}

// Cotangent of a reduction, broadcast back over the reduced dims.
function unreduce(g: Tensor, x: Tensor, dims: number[], keepdim: boolean): Tensor {
  const kept = keepdim ? g : reshape(g, x.shape.map((n, i) => (dims.includes(i) ? 1 : n)));
  return expand(kept, x.shape.slice());
}

function extremeVjp(g: Tensor, [x]: Tensor[], out: Tensor, { dims, keepdim }: { dims: number[]; keepdim: boolean }): Grads {
  // Like PyTorch's amax: the gradient is shared evenly among tied extremes.
  const outFull = unreduce(out, x, dims, keepdim);
  const mask = compare("eq", x, outFull);
  const count = reduceRaw("sum", mask, dims, true);
  return [d(m(unreduce(g, x, dims, keepdim), mask), expand(count, x.shape.slice()))];
}

export const vjp: { [P in Prim]: VjpRule<P> } = {
  neg: (g) => [s(g, "mul", -1)],
  exp: (g, _x, out) => [m(g, out)], // d eˣ = eˣ dx
  log: (g, [x]) => [d(g, x)], // d log x = dx / x
  sqrt: (g, _x, out) => [d(s(g, "mul", 0.5), out)], // d √x = dx / (2√x)
  rsqrt: (g, _x, out) => [m(g, s(s(out, "pow", 3), "mul", -0.5))], // d x^(-½) = −½ x^(-3/2) dx
  abs: (g, [x]) => [m(g, unaryRaw("sign", x))],
  tanh: (g, _x, out) => [m(g, s(m(out, out), "rsub", 1))], // 1 − tanh²
  sigmoid: (g, _x, out) => [m(g, m(out, s(out, "rsub", 1)))], // σ(1 − σ)
  relu: (g, [x]) => [m(g, unaryRaw("step", x))],
  gelu: (g, [x]) => [m(g, unaryRaw("geluGrad", x))],
  geluTanh: (g, [x]) => [m(g, unaryRaw("geluTanhGrad", x))],
  sin: (g, [x]) => [m(g, unaryRaw("cos", x))],
  cos: (g, [x]) => [s(m(g, unaryRaw("sin", x)), "mul", -1)],

  add: (g, [a, b]) => [sumTo(g, a.shape), sumTo(g, b.shape)],
  sub: (g, [a, b]) => [sumTo(g, a.shape), sumTo(s(g, "mul", -1), b.shape)],
  mul: (g, [a, b], _o, _p, [na, nb]) => [na ? sumTo(m(g, b), a.shape) : null, nb ? sumTo(m(g, a), b.shape) : null],
  div: (g, [a, b], out, _p, [na, nb]) => [na ? sumTo(d(g, b), a.shape) : null, nb ? sumTo(s(d(m(g, out), b), "mul", -1), b.shape) : null], // d(a/b)/db = −(a/b)/b
  // d aᵇ = b·aᵇ⁻¹ da + aᵇ·log a db
  pow: (g, [a, b], out, _p, [na, nb]) => [
    na ? sumTo(m(g, m(b, binaryRaw("pow", a, s(b, "add", -1)))), a.shape) : null,
    nb ? sumTo(m(g, m(out, unaryRaw("log", a))), b.shape) : null,
  ],
  maximum: (g, [a, b]) => [sumTo(m(g, winnerMask(a, b, "gt")), a.shape), sumTo(m(g, winnerMask(b, a, "gt")), b.shape)],
  minimum: (g, [a, b]) => [sumTo(m(g, winnerMask(a, b, "lt")), a.shape), sumTo(m(g, winnerMask(b, a, "lt")), b.shape)],
  scalar: (g, [x], out, { op, value }) => {
    switch (op) {
      case "add": return [g];
      case "mul": return [s(g, "mul", value)];
      case "rsub": return [s(g, "mul", -1)];
      case "rdiv": return [s(d(m(g, out), x), "mul", -1)]; // d(v/x) = −(v/x)/x dx
      case "pow": return [m(g, s(s(x, "pow", value - 1), "mul", value))];
      case "maximum": return [m(g, winnerMask(x, value, "gt"))];
      case "minimum": return [m(g, winnerMask(x, value, "lt"))];
      default: return [null]; // comparisons have no gradient
    }
  },
  where: (g, [c, a, b], _o, _p, [, na, nb]) => {
    const zero = filled([], 0, g.dtype, g.backend); // not g·0, which would turn inf/NaN into NaN
    return [null, na ? sumTo(where(c, g, zero), a.shape) : null, nb ? sumTo(where(c, zero, g), b.shape) : null];
  },

  sum: (g, [x], _out, { dims, keepdim }) => [unreduce(g, x, dims, keepdim)],
  max: extremeVjp,
  min: extremeVjp,

  reshape: (g, [x]) => [reshape(g, x.shape.slice())],
  permute: (g, _x, _out, { perm }) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [permute(g, inv)];
  },
  expand: (g, [x]) => [sumTo(g, x.shape)],
  slice: (g, [x], _out, { starts, sizes }) => [padBox(g, starts, x.shape.map((n, i) => n - starts[i] - sizes[i]))],
  pad: (g, [x], _out, { before }) => [sliceBox(g, before, x.shape.slice())],
  cat: (g, _xs, _out, { dim, sizes }) => {
    let at = 0;
    return sizes.map((n) => {
      const part = narrow(g, dim, at, n);
      at += n;
      return part;
    });
  },

  // C = op(A)·op(B):  NN: dA = G·Bᵀ, dB = Aᵀ·G    NT: dA = G·B,   dB = Gᵀ·A
  //                   TN: dA = B·Gᵀ, dB = A·G      TT: dA = Bᵀ·Gᵀ, dB = Gᵀ·Aᵀ
  matmul: (g, [a, b], _out, { transA, transB }, [na, nb]) => {
    const da = !na ? null
      : !transA ? matmulT(g, b, false, !transB) // NN: G·Bᵀ   NT: G·B
      : !transB ? matmulT(b, g, false, true) // TN: B·Gᵀ
      : matmulT(b, g, true, true); // TT: Bᵀ·Gᵀ
    const db = !nb ? null
      : !transB ? matmulT(a, g, !transA, false) // NN: Aᵀ·G   TN: A·G
      : !transA ? matmulT(g, a, true, false) // NT: Gᵀ·A
      : matmulT(g, a, true, true); // TT: Gᵀ·Aᵀ
    return [da && sumTo(da, a.shape), db && sumTo(db, b.shape)];
  },
  gather: (g, [x, index], _out, { dim }) => {
    const [outer, n, inner] = aroundDim(x.shape, dim);
    return [run1("scatterAdd", [index, g], { outer, n, k: index.shape[dim], inner }, x.shape, "float32"), null];
  },
  scatterAdd: (g, [, index], _out, { dim }) => {
    const [outer, n, inner] = aroundDim(g.shape, dim);
    const k = index.shape[dim];
    return [g, null, run1("gather", [g, index], { outer, n, k, inner, dtype: "float32" }, index.shape, "float32")];
  },
  indexSelect: (g, [x, index], _out, { dim }) => {
    const [outer, n, inner] = aroundDim(x.shape, dim);
    return [run1("indexAdd", [index, g], { outer, n, m: index.shape[0], inner }, x.shape, "float32"), null];
  },
  softmax: (g, [x], out, { dim }) => [softmaxGrad(g, x, out, dim, false)],
  logSoftmax: (g, [x], out, { dim }) => [softmaxGrad(g, x, out, dim, true)],
  layerNorm: (g, [x, w, b], _out, { mean, rstd, rows, n }) => runKernel(
    "layerNormBackward", [x, w, mean, rstd, g], { rows, n },
    [{ shape: x.shape, dtype: "float32" }, { shape: w.shape, dtype: "float32" }, { shape: b.shape, dtype: "float32" }],
  ),
  crossEntropy: (g, [z, t], _out, { ignoreIndex, labelSmoothing, rows, v }) => [
    run1("crossEntropyBackward", [z, t, g], { rows, v, ignoreIndex, labelSmoothing }, z.shape, "float32"),
    null,
  ],
};

function softmaxGrad(g: Tensor, x: Tensor, out: Tensor, dim: number, log: boolean): Tensor {
  const [outer, n, inner] = x.ndim === 0 ? [1, 1, 1] : aroundDim(x.shape, dim);
  return run1("softmaxBackward", [out, g], { outer, n, inner, log }, x.shape, "float32");
}

export function recordPrim<P extends Prim>(out: Tensor, prim: P, inputs: Tensor[], params: PrimParams[P]): Tensor {
  const rule = vjp[prim] as VjpRule<P>;
  return record(out, prim, inputs, (g) => {
    if (g.shape.join() !== out.shape.join()) throw new Error(`internal: ${prim} cotangent ${fmt(g.shape)} vs output ${fmt(out.shape)}`);
    return rule(g, inputs, out, params, inputs.map((t) => t.requiresGrad));
  });
}

export { numel };
