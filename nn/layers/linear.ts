// y = x·Wᵀ + b, with W stored as [out, in] (PyTorch's layout, so its checkpoints load as is).
import { matmulT } from "../../core/ops/linalg.ts";
import { defaultGenerator, type Generator } from "../../core/rng.ts";
import { fmt } from "../../core/shape.ts";
import type { Tensor } from "../../core/tensor.ts";
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
    // Fold every leading dim into rows: one [rows, in]·[out, in]ᵀ matmul, Wᵀ read in place.
    const lead = x.shape.slice(0, -1);
    const x2 = x.ndim === 2 ? x : x.reshape(-1, k);
    let y = matmulT(x2, this.weight, false, true); // [rows, out]
    if (this.bias) y = y.add(this.bias);
    return x.ndim === 2 ? y : y.reshape([...lead, this.outFeatures]);
  }
}
