// Fused optimizer updates: one kernel reads p, g, m, v once and writes the new p, m, v.
//   m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²,   m̂ = m/(1−β₁ᵗ),   v̂ = v/(1−β₂ᵗ)
//   p ← p(1 − lr·λ) − lr·m̂/(√v̂ + ε)         (λ: decoupled weight decay; 0 gives Adam's update)
// Not differentiable: it is what an optimizer does with gradients, outside any graph.
import { fmt, shapesEqual } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { runKernel } from "./run.ts";

export interface AdamwHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number; // 1-based update count, for the bias corrections
}

export interface AdamwResult {
  param: Tensor;
  expAvg: Tensor; // m
  expAvgSq: Tensor; // v
}

export function adamwUpdate(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, h: AdamwHyper): AdamwResult {
  for (const [name, t] of [["grad", grad], ["expAvg", expAvg], ["expAvgSq", expAvgSq]] as const) {
    if (!shapesEqual(t.shape, param.shape) || t.dtype !== "float32") {
      throw new Error(`adamwUpdate: ${name} must be float32${fmt(param.shape)} like the parameter, got ${t.dtype}${fmt(t.shape)}`);
    }
  }
  if (param.dtype !== "float32") throw new Error(`adamwUpdate: expected a float32 parameter, got ${param.dtype}`);
  if (!Number.isInteger(h.step) || h.step < 1) throw new Error(`adamwUpdate: step must be an integer >= 1, got ${h.step}`);
  const out = { shape: param.shape, dtype: "float32" as const };
  const [p, m, v] = runKernel("adamw", [param, grad, expAvg, expAvgSq], {
    n: param.size, lr: h.lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay,
    bc1: 1 - Math.pow(h.beta1, h.step), bc2: 1 - Math.pow(h.beta2, h.step),
  }, [out, out, out], "adamw");
  return { param: p, expAvg: m, expAvgSq: v };
}
