// Layer normalisation over the last dim (Ba et al. 2016), weight 1 and bias 0 at init.
import { layerNorm, type Tensor } from "../../core/index.ts";
import { constant } from "../init.ts";
import { Module } from "../module.ts";

export class LayerNorm extends Module {
  readonly weight: Tensor; // [D]
  readonly bias: Tensor; // [D]

  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = this.registerParameter("weight", constant([dim], 1));
    this.bias = this.registerParameter("bias", constant([dim], 0));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}
