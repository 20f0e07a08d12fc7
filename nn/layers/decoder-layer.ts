// Pre-LN decoder layer: causal self-attention, then (encoder-decoder models) cross-attention to
// the encoder memory, then the feed-forward block; each as x ← x + Dropout(Sublayer(LN(x))).
// A decoder-only LM uses it with cross: false.
import type { Tensor } from "../../core/index.ts";
import { Module } from "../module.ts";
import type { MultiHeadAttention } from "./attention.ts";
import { Dropout } from "./dropout.ts";
import { attentionOf, feedForwardOf, type LayerConfig } from "./encoder-layer.ts";
import type { FeedForward } from "./feed-forward.ts";
import type { KVCache } from "./kv-cache.ts";
import { LayerNorm } from "./layer-norm.ts";

export interface DecoderLayerInputs {
  memory?: Tensor; // [B, S, D]
  memoryPadMask?: Tensor; // [B, S]
  selfPadMask?: Tensor; // [B, T] (with a cache: [B, cached + T])
  selfCache?: KVCache;
  crossCache?: KVCache;
  window?: number; // self-attention window (Markov Transformer); undefined = full causal
  causal?: boolean; // false: every position sees every other (non-autoregressive decoders); default true
  selfAttnBias?: Tensor; // additive [T, cached + T] replacing the causal mask (a token tree)
}

export class DecoderLayer extends Module {
  readonly selfNorm: LayerNorm;
  readonly selfAttn: MultiHeadAttention;
  readonly crossNorm: LayerNorm | undefined;
  readonly crossAttn: MultiHeadAttention | undefined;
  readonly ffnNorm: LayerNorm;
  readonly ffn: FeedForward;
  readonly drop: Dropout;

  constructor(c: LayerConfig & { cross?: boolean }) {
    super();
    this.selfNorm = this.registerModule("selfNorm", new LayerNorm(c.dModel));
    this.selfAttn = this.registerModule("selfAttn", attentionOf(c));
    if (c.cross ?? true) {
      this.crossNorm = this.registerModule("crossNorm", new LayerNorm(c.dModel));
      this.crossAttn = this.registerModule("crossAttn", attentionOf(c));
    }
    this.ffnNorm = this.registerModule("ffnNorm", new LayerNorm(c.dModel));
    this.ffn = this.registerModule("ffn", feedForwardOf(c));
    this.drop = this.registerModule("drop", new Dropout(c.dropout ?? 0, c.dropoutGenerator));
  }

  // x: [B, T, D] → [B, T, D]
  forward(x: Tensor, inp: DecoderLayerInputs = {}): Tensor {
    const s = this.selfAttn.forward(this.selfNorm.forward(x), {
      causal: inp.causal ?? true, window: inp.window, keyPaddingMask: inp.selfPadMask, cache: inp.selfCache, attnBias: inp.selfAttnBias,
    });
    let h = x.add(this.drop.forward(s));
    if (this.crossAttn) {
      if (!inp.memory) throw new Error("DecoderLayer: this layer has cross-attention and needs the encoder memory");
      const c = this.crossAttn.forward(this.crossNorm!.forward(h), {
        memory: inp.memory, keyPaddingMask: inp.memoryPadMask, cache: inp.crossCache,
      });
      h = h.add(this.drop.forward(c));
    } else if (inp.memory) {
      throw new Error("DecoderLayer: got memory, but this layer was built without cross-attention");
    }
    return h.add(this.drop.forward(this.ffn.forward(this.ffnNorm.forward(h))));
  }
}
