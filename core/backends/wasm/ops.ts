// Element-wise, row and optimizer kernels on heap pointers (byte addresses of f32 arrays):
// argument checks, then one row job each. Matrices are row-major [rows, n].

import { BROADCAST, type BinaryOp, type Broadcast } from "./kernels-ew.ts";
import { UNARY_KERNELS, unaryJobName, type UnaryKernel } from "./kernels-unary.ts";

export type { BinaryOp, Broadcast } from "./kernels-ew.ts";
export { UNARY_KERNELS, type UnaryKernel } from "./kernels-unary.ts";

/** What the ops need from the runtime. `sig` gives each argument's type: "i" (i32) or "f" (f32). */
export interface RowRunner {
  readonly heapBytes: number;
  runRows(entry: string, sig: string, args: number[], rows: number, elements: number, chunk?: number): void;
}

/** Flat arrays are cut into rows of this many elements so that threads can share them. */
const FLAT = 4096;

function count(op: string, name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new Error(`${op}: ${name} must be an integer in [0, 2^31), got ${v}`);
  return v;
}

export class WasmOps {
  constructor(private readonly rt: RowRunner) {}

  /** Checks that ptr holds `n` f32 inside the memory (0 is allowed only when optional). */
  private span(op: string, name: string, ptr: number, n: number, optional = false) {
    if (optional && ptr === 0) return;
    if (!Number.isInteger(ptr) || ptr <= 0 || ptr % 4 !== 0) throw new Error(`${op}: ${name} must be a 4-byte aligned heap address, got ${ptr}`);
    if (ptr + 4 * n > this.rt.heapBytes) throw new Error(`${op}: ${name} spans bytes [${ptr}, ${ptr + 4 * n}) but the memory has ${this.rt.heapBytes}`);
  }

  /**
   * out = a ∘ b (or b ∘ a with swap) for a, out of [rows, cols]; b is [rows, cols] (same),
   * [cols] (row: a trailing vector), [rows] (col: one value per row) or [1] (scalar).
   * out may be a.
   */
  binary(op: BinaryOp, a: number, b: number, out: number, rows: number, cols: number, broadcast: Broadcast = "same", swap = false): void {
    const name = `wasm ${op}`;
    count(name, "rows", rows);
    count(name, "cols", cols);
    const mode = BROADCAST[broadcast];
    if (mode === undefined) throw new Error(`${name}: broadcast must be same, row, col or scalar, got ${broadcast}`);
    const n = rows * cols;
    if (n === 0) return;
    this.span(name, "a", a, n);
    this.span(name, "out", out, n);
    this.span(name, "b", b, broadcast === "same" ? n : broadcast === "row" ? cols : broadcast === "col" ? rows : 1);
    // same and scalar do not care where rows end: cut into FLAT-element rows instead
    const flat = broadcast === "same" || broadcast === "scalar";
    const [R, C] = flat ? [Math.ceil(n / FLAT), Math.min(n, FLAT)] : [rows, cols];
    this.rt.runRows(`ew_${op}_job`, "iiiiiii", [a, b, out, C, n, mode, swap ? 1 : 0], R, n);
  }

  /** y = exp(x) on n elements (max relative error: see spec/core/wasm-ops.spec.ts). */
  exp(x: number, y: number, n: number): void {
    count("wasm exp", "n", n);
    if (n === 0) return;
    this.span("wasm exp", "x", x, n);
    this.span("wasm exp", "y", y, n);
    this.rt.runRows("ew_exp_job", "iiii", [x, y, FLAT, n], Math.ceil(n / FLAT), n);
  }

  /**
   * y = op(x) on n elements for op in UNARY_KERNELS (gelu, geluGrad, tanh, relu, log, ...;
   * accuracy: see spec/core/wasm-unary.spec.ts). y may be x.
   */
  unary(op: UnaryKernel, x: number, y: number, n: number): void {
    const name = `wasm ${op}`;
    if (!(UNARY_KERNELS as readonly string[]).includes(op)) throw new Error(`wasm unary: op must be one of ${UNARY_KERNELS.join(", ")}, got ${op}`);
    count(name, "n", n);
    if (n === 0) return;
    this.span(name, "x", x, n);
    this.span(name, "y", y, n);
    this.rt.runRows(unaryJobName(op), "iiii", [x, y, FLAT, n], Math.ceil(n / FLAT), n);
  }

  private rowOp(op: string, entry: string, ptrs: [string, number][], rows: number, n: number) {
    count(op, "rows", rows);
    count(op, "n", n);
    if (rows * n === 0) return;
    for (const [name, p] of ptrs) this.span(op, name, p, rows * n);
    this.rt.runRows(entry, "i".repeat(ptrs.length + 1), [...ptrs.map(([, p]) => p), n], rows, rows * n);
  }

  /** y = softmax(x) along each row of [rows, n]. y may be x. */
  softmax(x: number, y: number, rows: number, n: number): void {
    this.rowOp("wasm softmax", "softmax_job", [["x", x], ["y", y]], rows, n);
  }
  /** dx = y ⊙ (dy − Σ dy⊙y) per row, from the softmax output y. */
  softmaxBackward(y: number, dy: number, dx: number, rows: number, n: number): void {
    this.rowOp("wasm softmaxBackward", "softmax_bwd_job", [["y", y], ["dy", dy], ["dx", dx]], rows, n);
  }
  /** y = x − log Σ eˣ along each row. y may be x. */
  logSoftmax(x: number, y: number, rows: number, n: number): void {
    this.rowOp("wasm logSoftmax", "log_softmax_job", [["x", x], ["y", y]], rows, n);
  }
  /**
   * Per row of x [rows, n]: the first maximum of logSoftmax(x) + bias (bias [n]; a NaN counts as
   * the maximum) into index (i32 [rows]) and its value into value ([rows]).
   */
  logSoftmaxArgmax(x: number, bias: number, index: number, value: number, rows: number, n: number): void {
    const op = "wasm logSoftmaxArgmax";
    count(op, "rows", rows);
    count(op, "n", n);
    if (rows === 0) return;
    if (n === 0) throw new Error(`${op}: rows of 0 values have no maximum`);
    this.span(op, "x", x, rows * n);
    this.span(op, "bias", bias, n);
    this.span(op, "index", index, rows);
    this.span(op, "value", value, rows);
    this.rt.runRows("log_softmax_argmax_job", "iiiii", [x, bias, index, value, n], rows, rows * n);
  }
  /** dx = dy − eʸ·Σ dy per row, from the logSoftmax output y. */
  logSoftmaxBackward(y: number, dy: number, dx: number, rows: number, n: number): void {
    this.rowOp("wasm logSoftmaxBackward", "log_softmax_bwd_job", [["y", y], ["dy", dy], ["dx", dx]], rows, n);
  }

  /**
   * y = (x − μ)/√(σ² + eps)·γ + β per row of [rows, n] (γ, β of [n], both or neither); saves
   * μ and 1/√(σ² + eps) per row into mean and rstd ([rows]) when given.
   */
  layerNorm(a: { x: number; y: number; rows: number; n: number; eps: number; gamma?: number; beta?: number; mean?: number; rstd?: number }): void {
    const op = "wasm layerNorm";
    const { x, y, rows, n, eps, gamma = 0, beta = 0, mean = 0, rstd = 0 } = a;
    count(op, "rows", rows);
    count(op, "n", n);
    if ((gamma === 0) !== (beta === 0)) throw new Error(`${op}: gamma and beta must both be given or both be absent`);
    if (!(eps >= 0)) throw new Error(`${op}: eps must be >= 0, got ${eps}`);
    if (rows * n === 0) return;
    this.span(op, "x", x, rows * n);
    this.span(op, "y", y, rows * n);
    this.span(op, "gamma", gamma, n, true);
    this.span(op, "beta", beta, n, true);
    this.span(op, "mean", mean, rows, true);
    this.span(op, "rstd", rstd, rows, true);
    this.rt.runRows("layer_norm_job", "iiiiiiif", [x, gamma, beta, y, mean, rstd, n, eps], rows, rows * n);
  }

  /** dx of layerNorm from the saved mean and rstd (gamma optional). */
  layerNormBackward(a: { x: number; mean: number; rstd: number; dy: number; dx: number; rows: number; n: number; gamma?: number }): void {
    const op = "wasm layerNormBackward";
    const { x, mean, rstd, dy, dx, rows, n, gamma = 0 } = a;
    count(op, "rows", rows);
    count(op, "n", n);
    if (rows * n === 0) return;
    for (const [name, p] of [["x", x], ["dy", dy], ["dx", dx]] as const) this.span(op, name, p, rows * n);
    this.span(op, "mean", mean, rows);
    this.span(op, "rstd", rstd, rows);
    this.span(op, "gamma", gamma, n, true);
    this.rt.runRows("layer_norm_bwd_job", "iiiiiii", [x, gamma, mean, rstd, dy, dx, n], rows, rows * n);
  }

  /** dγ = Σ_rows dy⊙x̂ and dβ = Σ_rows dy ([n] each); accumulate adds to what they hold. */
  layerNormParamsBackward(a: { x: number; mean: number; rstd: number; dy: number; dgamma: number; dbeta: number; rows: number; n: number; accumulate?: boolean }): void {
    const op = "wasm layerNormParamsBackward";
    const { x, mean, rstd, dy, dgamma, dbeta, rows, n, accumulate = false } = a;
    count(op, "rows", rows);
    count(op, "n", n);
    if (n === 0) return;
    this.span(op, "dgamma", dgamma, n);
    this.span(op, "dbeta", dbeta, n);
    if (rows > 0) {
      for (const [name, p] of [["x", x], ["dy", dy]] as const) this.span(op, name, p, rows * n);
      this.span(op, "mean", mean, rows);
      this.span(op, "rstd", rstd, rows);
    }
    // the job's "rows" are columns here: chunks of 64 columns, each summed over all rows
    const chunk = 64;
    this.rt.runRows("layer_norm_params_bwd_job", "iiiiiiiii", [x, mean, rstd, dy, dgamma, dbeta, rows, n, accumulate ? 1 : 0], n, rows * n, chunk);
  }

  /** One AdamW step (PyTorch semantics, step t counted from 1) on n parameters in place. */
  adamw(a: { p: number; g: number; m: number; v: number; n: number; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number; bc1?: number; bc2?: number }): void {
    const op = "wasm adamw";
    const { p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, step } = a;
    count(op, "n", n);
    if (!Number.isInteger(step) || step < 1) throw new Error(`${op}: step must be an integer >= 1, got ${step}`);
    if (n === 0) return;
    for (const [name, q] of [["p", p], ["g", g], ["m", m], ["v", v]] as const) this.span(op, name, q, n);
    // Bias corrections 1 − βᵗ, or as given by a caller that tracks them itself.
    const bc1 = a.bc1 ?? 1 - beta1 ** step;
    const bc2 = a.bc2 ?? 1 - beta2 ** step;
    this.rt.runRows("adamw_job", "iiiiiiffffff", [FLAT, n, p, g, m, v, 1 - lr * weightDecay, beta1, beta2, lr / bc1, Math.sqrt(bc2), eps], Math.ceil(n / FLAT), n);
  }
}
