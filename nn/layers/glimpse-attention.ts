// GliDe's cross-attention (Du et al. 2024): a draft token attends to the keys and values a
// target LM has already cached, used as they are. Only the query and output projections are
// learned; the keys and values are the target's own, in the target's heads and head width:
//
//   q = W_q · h                     h [B, T, D]  → [B, Ht, T, Dh]     (D → Ht·Dh)
//   o = W_o · softmax(q·Kᵀ/√Dh + bias) · V       K, V [B, Ht, L, Dh] (the target's cache)
//
// A row that may see no target position at all (bias all masked) attends to nothing: the caller
// passes `visibleRows` with a 0 there, and the mask's uniform fallback is multiplied away before
// the output projection, so the row contributes o's bias, b_o, not 0. (Only a pass in which no
// row sees anything skips the glimpse and adds exactly 0: see nn/models/glide.ts.) The shipped
// drafts were trained so, and the PyTorch bridge mirrors it, so this stays as it is.
import { fmt, type Generator, type Tensor } from "../../core/index.ts";
import { Module } from "../module.ts";
import { scaledDotProductAttention } from "./attention.ts";
import { Linear } from "./linear.ts";

export class GlimpseAttention extends Module {
  readonly q: Linear;
  readonly o: Linear;

  constructor(readonly dModel: number, readonly heads: number, readonly headDim: number, opts: { generator?: Generator } = {}) {
    super();
    this.q = this.registerModule("q", new Linear(dModel, heads * headDim, { generator: opts.generator }));
    this.o = this.registerModule("o", new Linear(heads * headDim, dModel, { generator: opts.generator }));
  }

  // x [B, T, D], keys/values [B, Ht, L, Dh]; bias [T, L] additive; visibleRows [T, 1] (1: the row
  // sees at least one key) → [B, T, D]
  forward(x: Tensor, keys: Tensor, values: Tensor, bias?: Tensor, visibleRows?: Tensor): Tensor {
    const [b, t] = x.shape;
    const want = [b, this.heads, keys.shape[2], this.headDim];
    if (keys.ndim !== 4 || keys.shape.join() !== want.join() || values.shape.join() !== want.join()) {
      throw new Error(`GlimpseAttention: expected the target's keys and values as [${b}, ${this.heads}, L, ${this.headDim}], got ${fmt(keys.shape)} and ${fmt(values.shape)}`);
    }
    const q = this.q.forward(x).reshape(b, t, this.heads, this.headDim).permute(0, 2, 1, 3); // [B, Ht, T, Dh]
    const { output } = scaledDotProductAttention(q, keys, values, bias);
    let merged = output.permute(0, 2, 1, 3).reshape(b, t, this.heads * this.headDim); // [B, T, Ht·Dh]
    if (visibleRows) merged = merged.mul(visibleRows);
    return this.o.forward(merged);
  }
}

// q: D·(Ht·Dh) + Ht·Dh, o: (Ht·Dh)·D + D
export function glimpseParameters(dModel: number, heads: number, headDim: number): number {
  const w = heads * headDim;
  return dModel * w + w + w * dModel + dModel;
}
