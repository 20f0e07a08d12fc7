// A lookup table of token vectors. Initialised N(0, d^-½) as in fairseq's Transformer: the model
// multiplies by √d on the way in, so the scaled embeddings start with unit variance, and the
// same table can serve as the (tied) output projection without blowing up the logits.
import { defaultGenerator, embedding, fmt, type Generator, type Tensor } from "../../core/index.ts";
import { normal } from "../init.ts";
import { Module } from "../module.ts";

export class Embedding extends Module {
  readonly weight: Tensor; // [V, D]

  constructor(readonly numEmbeddings: number, readonly dim: number, opts: { std?: number; generator?: Generator } = {}) {
    super();
    const std = opts.std ?? dim ** -0.5;
    this.weight = this.registerParameter("weight", normal([numEmbeddings, dim], std, opts.generator ?? defaultGenerator()));
  }

  // ids [...] int32 → [..., D]
  forward(ids: Tensor): Tensor {
    if (ids.dtype !== "int32") throw new Error(`Embedding: ids must be int32, got ${ids.dtype}${fmt(ids.shape)}`);
    return embedding(this.weight, ids);
  }
}
