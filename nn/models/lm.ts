// A decoder-only Transformer language model (GPT-style, pre-LN, causal):
//
//   logits = LN(Blocks(√D · E[ids] + P)) · Wᵀ        ids [B, T] → [B, T, V]
//
// With a KV cache it scores new tokens incrementally: `forward(ids, { cache })` takes the next
// positions only (one token for plain decoding, k draft tokens at once for speculative
// decoding, after which `cache.truncate()` rolls back the rejected ones).
import { noGrad } from "../../core/autograd.ts";
import { matmulT } from "../../core/ops/linalg.ts";
import { Generator } from "../../core/rng.ts";
import { fmt } from "../../core/shape.ts";
import type { Tensor } from "../../core/tensor.ts";
import { DecoderLayer } from "../layers/decoder-layer.ts";
import { Dropout } from "../layers/dropout.ts";
import { Embedding } from "../layers/embedding.ts";
import type { LayerConfig } from "../layers/encoder-layer.ts";
import type { Activation } from "../layers/feed-forward.ts";
import { DecoderCache } from "../layers/kv-cache.ts";
import { LayerNorm } from "../layers/layer-norm.ts";
import { Linear } from "../layers/linear.ts";
import { LearnedPositions, SinusoidalPositions, type PositionalEncoding } from "../layers/positions.ts";
import { Module, ModuleList } from "../module.ts";

export interface LMConfig {
  vocab: number;
  dModel: number;
  heads: number;
  ffn: number;
  layers: number;
  dropout: number;
  attnDropout: number;
  activation: Activation;
  maxLen: number;
  positions: "sinusoidal" | "learned";
  tieEmbeddings: boolean; // output projection = token embedding
  // Each position attends only to the last `window` positions (itself included); undefined = all.
  window: number | undefined;
  seed: number | string;
}

export function lmConfig(c: Partial<LMConfig> & { vocab: number }): LMConfig {
  const cfg: LMConfig = {
    dModel: 256, heads: 4, ffn: 1024, layers: 2, dropout: 0.1, attnDropout: 0, activation: "gelu",
    maxLen: 512, positions: "learned", tieEmbeddings: true, window: undefined, seed: 0, ...c,
  };
  checkConfig(cfg);
  return cfg;
}

// The benchmark model (and speculative-decoding target): 2 layers, d = 256, 4 heads, FFN 1024,
// vocabulary 1000.
export const LM_BENCH_CONFIG: Readonly<Partial<LMConfig> & { vocab: number }> = Object.freeze({
  vocab: 1000, dModel: 256, heads: 4, ffn: 1024, layers: 2,
});

function checkConfig(c: LMConfig): void {
  for (const k of ["vocab", "dModel", "heads", "ffn", "maxLen"] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new Error(`TransformerLM: ${k} must be a positive integer, got ${c[k]}`);
  }
  if (!Number.isInteger(c.layers) || c.layers < 0) throw new Error(`TransformerLM: layers must be a non-negative integer, got ${c.layers}`);
  if (c.dModel % c.heads !== 0) throw new Error(`TransformerLM: dModel ${c.dModel} must be divisible by heads ${c.heads}`);
  if (c.window !== undefined && (!Number.isInteger(c.window) || c.window < 1)) throw new Error(`TransformerLM: window must be a positive integer, got ${c.window}`);
}

export class TransformerLM extends Module {
  readonly config: LMConfig;
  readonly embed: Embedding;
  readonly positions: PositionalEncoding;
  readonly layers: ModuleList<DecoderLayer>;
  readonly norm: LayerNorm;
  readonly outProj: Linear | undefined; // absent when tied to the embedding
  readonly drop: Dropout;
  readonly dropoutGenerator: Generator;

  constructor(config: LMConfig) {
    super();
    checkConfig(config);
    const c = (this.config = { ...config });
    const g = new Generator(c.seed);
    this.dropoutGenerator = new Generator(`${c.seed}:dropout`);
    const lc: LayerConfig = {
      dModel: c.dModel, heads: c.heads, ffn: c.ffn, dropout: c.dropout, attnDropout: c.attnDropout,
      activation: c.activation, generator: g, dropoutGenerator: this.dropoutGenerator,
    };
    this.embed = this.registerModule("embed", new Embedding(c.vocab, c.dModel, { generator: g }));
    this.positions = this.registerModule("positions", c.positions === "learned"
      ? new LearnedPositions(c.maxLen, c.dModel, { generator: g })
      : new SinusoidalPositions(c.maxLen, c.dModel));
    this.layers = this.registerModule("layers", new ModuleList(Array.from({ length: c.layers }, () => new DecoderLayer({ ...lc, cross: false }))));
    this.norm = this.registerModule("norm", new LayerNorm(c.dModel));
    if (!c.tieEmbeddings) this.outProj = this.registerModule("outProj", new Linear(c.dModel, c.vocab, { bias: false, generator: g }));
    this.drop = this.registerModule("drop", new Dropout(c.dropout, this.dropoutGenerator));
  }

  // ids: [B, T] int32 → logits [B, T, V]. With a cache (inference, under noGrad) ids are the next
  // positions, the first at position cache.length. padMask: [B, T] (with a cache [B, cached + T]),
  // nonzero at padding; needed only for left padding.
  forward(ids: Tensor, opts: { cache?: DecoderCache; padMask?: Tensor } = {}): Tensor {
    if (ids.dtype !== "int32" || ids.ndim !== 2) throw new Error(`TransformerLM: expected [B, T] int32 token ids, got ${ids.dtype}${fmt(ids.shape)}`);
    const { cache, padMask } = opts;
    const d = this.config.dModel;
    const offset = cache?.length ?? 0;
    let x = this.embed.forward(ids).mul(Math.sqrt(d)).add(this.positions.forward(ids.shape[1], offset)); // [B, T, D]
    x = this.drop.forward(x);
    let i = 0;
    for (const layer of this.layers) {
      x = layer.forward(x, { selfPadMask: padMask, selfCache: cache?.self[i], window: this.config.window });
      i++;
    }
    const h = this.norm.forward(x);
    if (this.outProj) return this.outProj.forward(h);
    const [b, t] = ids.shape;
    return matmulT(h.reshape(b * t, d), this.embed.weight, false, true).reshape(b, t, this.config.vocab);
  }

  createCache(): DecoderCache {
    return new DecoderCache(this.config.layers);
  }

  // lastTokens [B] int32 → next-token logits [B, V]; appends one position to the cache.
  step(lastTokens: Tensor, cache: DecoderCache): Tensor {
    if (lastTokens.dtype !== "int32" || lastTokens.ndim !== 1) throw new Error(`TransformerLM.step: expected [B] int32 token ids, got ${lastTokens.dtype}${fmt(lastTokens.shape)}`);
    const b = lastTokens.shape[0];
    return noGrad(() => this.forward(lastTokens.reshape(b, 1), { cache }).reshape(b, this.config.vocab));
  }
}
