// Pre-LN Transformer layers (Xiong et al. 2020, "On Layer Normalization in the Transformer
// Architecture"): each sublayer normalises its input and adds its output to the residual stream,
//   x ← x + Dropout(Sublayer(LayerNorm(x))),
// so the residual path is the identity and training is stable without a long warm-up. A pre-LN
// stack needs one final LayerNorm after its last layer (the models add it).
import type { Generator, Tensor } from "../../core/index.ts";
import { Module } from "../module.ts";
import { MultiHeadAttention } from "./attention.ts";
import { Dropout } from "./dropout.ts";
import { FeedForward, type Activation } from "./feed-forward.ts";
import { LayerNorm } from "./layer-norm.ts";

export interface LayerConfig {
  dModel: number;
  heads: number;
  ffn: number;
  dropout?: number;
  attnDropout?: number;
  activation?: Activation;
  generator?: Generator; // parameter init
  dropoutGenerator?: Generator; // dropout masks
}

export function attentionOf(c: LayerConfig): MultiHeadAttention {
  return new MultiHeadAttention(c.dModel, c.heads, { dropout: c.attnDropout ?? 0, generator: c.generator, dropoutGenerator: c.dropoutGenerator });
}

export function feedForwardOf(c: LayerConfig): FeedForward {
  return new FeedForward(c.dModel, c.ffn, { activation: c.activation, dropout: c.dropout ?? 0, generator: c.generator, dropoutGenerator: c.dropoutGenerator });
}

export class EncoderLayer extends Module {
  readonly attnNorm: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ffnNorm: LayerNorm;
  readonly ffn: FeedForward;
  readonly drop: Dropout;

  constructor(c: LayerConfig) {
    super();
    this.attnNorm = this.registerModule("attnNorm", new LayerNorm(c.dModel));
    this.attn = this.registerModule("attn", attentionOf(c));
    this.ffnNorm = this.registerModule("ffnNorm", new LayerNorm(c.dModel));
    this.ffn = this.registerModule("ffn", feedForwardOf(c));
    this.drop = this.registerModule("drop", new Dropout(c.dropout ?? 0, c.dropoutGenerator));
  }

  // x: [B, S, D], padMask: [B, S] (nonzero = padding) → [B, S, D]
  forward(x: Tensor, padMask?: Tensor): Tensor {
    const a = this.attn.forward(this.attnNorm.forward(x), { keyPaddingMask: padMask });
    const h = x.add(this.drop.forward(a));
    return h.add(this.drop.forward(this.ffn.forward(this.ffnNorm.forward(h))));
  }
}
