// Inverted dropout that follows the module's train/eval mode. Masks come from a seeded
// Generator, so a run (and a resumed run, given the generator's saved state) is reproducible.
import { defaultGenerator, dropout, type Generator, type Tensor } from "../../core/index.ts";
import { Module } from "../module.ts";

export class Dropout extends Module {
  constructor(readonly p: number, readonly generator: Generator = defaultGenerator()) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`Dropout: p must be in [0, 1), got ${p}`);
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.generator);
  }
}
