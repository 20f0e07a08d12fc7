// y = x·Wᵀ + b, with W stored as [out, in] (PyTorch's layout, so its checkpoints load as is).
import { defaultGenerator, fmt, type Generator, linear, type Tensor } from "../../core/index.ts";
import { constant, kaimingUniform, xavierUniform } from "../init.ts";
import { Module } from "../module.ts";

export interface LinearOptions {
  bias?: boolean;
  // "xavier" (Transformer recipe, the default) or "kaiming" (PyTorch's nn.Linear default).
  init?: "xavier" | "kaiming";
  gain?: number;
  generator?: Generator;
}

export class Linear extends Module {
  readonly weight: Tensor; // [out, in]
  readonly bias: Tensor | undefined; // [out]

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    const g = opts.generator ?? defaultGenerator();
    const shape = [outFeatures, inFeatures];
    const w = opts.init === "kaiming" ? kaimingUniform(shape, g) : xavierUniform(shape, g, opts.gain ?? 1);
    this.weight = this.registerParameter("weight", w);
    this.bias = opts.bias === false ? undefined : this.registerParameter("bias", constant([outFeatures], 0));
  }

  forward(x: Tensor): Tensor {
    const k = x.shape[x.ndim - 1];
    if (x.ndim < 1 || k !== this.inFeatures) {
      throw new Error(`Linear: expected input [..., ${this.inFeatures}], got ${fmt(x.shape)}`);
    }
    // Every leading dim folds into rows: one [rows, in]·[out, in]ᵀ matmul, Wᵀ read in place.
    return linear(x, this.weight, this.bias); // [..., out]
  }
}
