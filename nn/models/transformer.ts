// The encoder-decoder Transformer for translation (Vaswani et al. 2017), pre-LN.
//
//   memory = Encoder(√D · E_src[src] + P)                 [B, S, D]
//   logits = Decoder(√D · E_tgt[tgtIn] + P, memory) · Wᵀ   [B, T, V]
//
// The batcher supplies tgtIn = bos y₁…yₙ and tgtOut = y₁…yₙ eos; the model never adds them.
// Padding masks are [B, S] tensors, nonzero at padding (see padMask()).
import { noGrad } from "../../core/autograd.ts";
import { matmulT } from "../../core/ops/linalg.ts";
import { Generator } from "../../core/rng.ts";
import { fmt } from "../../core/shape.ts";
import type { Tensor } from "../../core/tensor.ts";
import { DecoderLayer } from "../layers/decoder-layer.ts";
import { Dropout } from "../layers/dropout.ts";
import { Embedding } from "../layers/embedding.ts";
import { EncoderLayer, type LayerConfig } from "../layers/encoder-layer.ts";
import type { Activation } from "../layers/feed-forward.ts";
import { DecoderCache } from "../layers/kv-cache.ts";
import { LayerNorm } from "../layers/layer-norm.ts";
import { Linear } from "../layers/linear.ts";
import { LearnedPositions, SinusoidalPositions, type PositionalEncoding } from "../layers/positions.ts";
import { Module, ModuleList } from "../module.ts";

export interface TransformerConfig {
  srcVocab: number;
  tgtVocab: number;
  dModel: number;
  heads: number;
  ffn: number;
  encLayers: number;
  decLayers: number;
  dropout: number; // residual and embedding dropout
  attnDropout: number; // on attention weights
  activation: Activation;
  maxLen: number; // longest source or target sequence
  positions: "sinusoidal" | "learned";
  // One embedding for source, target and output projection (needs a joint vocabulary).
  tieEmbeddings: boolean;
  // Without tieEmbeddings: the output projection reuses the target embedding.
  tieOutput: boolean;
  padId: number;
  seed: number | string;
}

// Transformer-base hyper-parameters; pass at least the vocabulary size(s).
export function transformerConfig(c: Partial<TransformerConfig> & ({ vocab: number } | { srcVocab: number; tgtVocab: number })): TransformerConfig {
  const { vocab, ...rest } = c as Partial<TransformerConfig> & { vocab?: number };
  const cfg: TransformerConfig = {
    srcVocab: vocab ?? 0, tgtVocab: vocab ?? 0, dModel: 512, heads: 8, ffn: 2048, encLayers: 6, decLayers: 6,
    dropout: 0.1, attnDropout: 0, activation: "relu", maxLen: 256, positions: "sinusoidal",
    tieEmbeddings: vocab !== undefined, tieOutput: true, padId: 0, seed: 0, ...rest,
  };
  checkConfig(cfg);
  return cfg;
}

function checkConfig(c: TransformerConfig): void {
  const ints: (keyof TransformerConfig)[] = ["srcVocab", "tgtVocab", "dModel", "heads", "ffn", "maxLen"];
  for (const k of ints) if (!Number.isInteger(c[k]) || (c[k] as number) <= 0) throw new Error(`Transformer: ${k} must be a positive integer, got ${String(c[k])}`);
  for (const k of ["encLayers", "decLayers"] as const) if (!Number.isInteger(c[k]) || c[k] < 0) throw new Error(`Transformer: ${k} must be a non-negative integer, got ${c[k]}`);
  if (c.dModel % c.heads !== 0) throw new Error(`Transformer: dModel ${c.dModel} must be divisible by heads ${c.heads}`);
  if (c.tieEmbeddings && c.srcVocab !== c.tgtVocab) {
    throw new Error(`Transformer: tieEmbeddings needs a joint vocabulary, got srcVocab ${c.srcVocab} and tgtVocab ${c.tgtVocab}`);
  }
}

// [B, S] int32 ids → [B, S] float32, 1 at padding.
export function padMask(ids: Tensor, padId: number): Tensor {
  return ids.eq(padId);
}

function checkIds(who: string, ids: Tensor, ndim: number): void {
  if (ids.dtype !== "int32" || ids.ndim !== ndim) {
    throw new Error(`${who}: expected ${ndim === 1 ? "[B]" : "[B, T]"} int32 token ids, got ${ids.dtype}${fmt(ids.shape)}`);
  }
}

class Encoder extends Module {
  readonly layers: ModuleList<EncoderLayer>;
  readonly norm: LayerNorm;
  constructor(n: number, lc: LayerConfig) {
    super();
    this.layers = this.registerModule("layers", new ModuleList(Array.from({ length: n }, () => new EncoderLayer(lc))));
    this.norm = this.registerModule("norm", new LayerNorm(lc.dModel));
  }
  // x: [B, S, D] → [B, S, D]
  forward(x: Tensor, padMask?: Tensor): Tensor {
    for (const layer of this.layers) x = layer.forward(x, padMask);
    return this.norm.forward(x);
  }
}

class Decoder extends Module {
  readonly layers: ModuleList<DecoderLayer>;
  readonly norm: LayerNorm;
  constructor(n: number, lc: LayerConfig) {
    super();
    this.layers = this.registerModule("layers", new ModuleList(Array.from({ length: n }, () => new DecoderLayer(lc))));
    this.norm = this.registerModule("norm", new LayerNorm(lc.dModel));
  }
  // x: [B, T, D] → [B, T, D]
  forward(x: Tensor, memory: Tensor, memoryPadMask?: Tensor, selfPadMask?: Tensor, cache?: DecoderCache): Tensor {
    let i = 0;
    for (const layer of this.layers) {
      x = layer.forward(x, { memory, memoryPadMask, selfPadMask, selfCache: cache?.self[i], crossCache: cache?.cross?.[i] });
      i++;
    }
    return this.norm.forward(x);
  }
}

export class Transformer extends Module {
  readonly config: TransformerConfig;
  readonly srcEmbed: Embedding;
  readonly tgtEmbed: Embedding; // the same object as srcEmbed when tied
  readonly positions: PositionalEncoding;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly outProj: Linear | undefined; // absent when the output reuses an embedding
  readonly drop: Dropout;
  // Dropout masks come from here; save its getState() with a checkpoint for exact resume.
  readonly dropoutGenerator: Generator;

  constructor(config: TransformerConfig) {
    super();
    checkConfig(config);
    const c = (this.config = { ...config });
    const g = new Generator(c.seed);
    this.dropoutGenerator = new Generator(`${c.seed}:dropout`);
    const lc: LayerConfig = {
      dModel: c.dModel, heads: c.heads, ffn: c.ffn, dropout: c.dropout, attnDropout: c.attnDropout,
      activation: c.activation, generator: g, dropoutGenerator: this.dropoutGenerator,
    };
    if (c.tieEmbeddings) {
      this.srcEmbed = this.tgtEmbed = this.registerModule("embed", new Embedding(c.srcVocab, c.dModel, { generator: g }));
    } else {
      this.srcEmbed = this.registerModule("srcEmbed", new Embedding(c.srcVocab, c.dModel, { generator: g }));
      this.tgtEmbed = this.registerModule("tgtEmbed", new Embedding(c.tgtVocab, c.dModel, { generator: g }));
    }
    this.positions = this.registerModule("positions", c.positions === "learned"
      ? new LearnedPositions(c.maxLen, c.dModel, { generator: g })
      : new SinusoidalPositions(c.maxLen, c.dModel));
    this.encoder = this.registerModule("encoder", new Encoder(c.encLayers, lc));
    this.decoder = this.registerModule("decoder", new Decoder(c.decLayers, lc));
    if (!c.tieEmbeddings && !c.tieOutput) {
      this.outProj = this.registerModule("outProj", new Linear(c.dModel, c.tgtVocab, { bias: false, generator: g }));
    }
    this.drop = this.registerModule("drop", new Dropout(c.dropout, this.dropoutGenerator));
  }

  // ids: [B, T] → √D · E[ids] + P[offset …]  [B, T, D]
  private embed(e: Embedding, ids: Tensor, offset: number): Tensor {
    const x = e.forward(ids).mul(Math.sqrt(this.config.dModel)).add(this.positions.forward(ids.shape[1], offset));
    return this.drop.forward(x);
  }

  // src: [B, S] int32 → memory [B, S, D]. The padding mask defaults to src == padId.
  encode(src: Tensor, srcPadMask: Tensor = padMask(src, this.config.padId)): Tensor {
    checkIds("Transformer.encode", src, 2);
    return this.encoder.forward(this.embed(this.srcEmbed, src, 0), srcPadMask);
  }

  // h: [..., D] → logits [..., V]
  private project(h: Tensor): Tensor {
    if (this.outProj) return this.outProj.forward(h);
    const lead = h.shape.slice(0, -1);
    const w = this.tgtEmbed.weight; // [V, D], read transposed in place
    return matmulT(h.reshape(-1, this.config.dModel), w, false, true).reshape([...lead, this.config.tgtVocab]);
  }

  // tgtIn: [B, T] int32, memory: [B, S, D] → logits [B, T, V]. With a cache (inference, under
  // noGrad), tgtIn holds the next positions only: the first at position cache.length.
  // tgtPadMask ([B, T], or [B, cached + T] with a cache) is needed only for left padding: with
  // right padding, causality already hides padded positions from real ones.
  decode(tgtIn: Tensor, memory: Tensor, memoryPadMask?: Tensor, cache?: DecoderCache, tgtPadMask?: Tensor): Tensor {
    checkIds("Transformer.decode", tgtIn, 2);
    const offset = cache?.length ?? 0;
    const x = this.embed(this.tgtEmbed, tgtIn, offset);
    return this.project(this.decoder.forward(x, memory, memoryPadMask, tgtPadMask, cache));
  }

  // Teacher-forced training pass: src [B, S], tgtIn [B, T] → logits [B, T, V].
  forward(src: Tensor, tgtIn: Tensor, opts: { srcPadMask?: Tensor; tgtPadMask?: Tensor } = {}): Tensor {
    const srcPadMask = opts.srcPadMask ?? padMask(src, this.config.padId);
    const memory = this.encode(src, srcPadMask);
    return this.decode(tgtIn, memory, srcPadMask, undefined, opts.tgtPadMask);
  }

  createCache(): DecoderCache {
    return new DecoderCache(this.config.decLayers, { cross: true });
  }

  // One step of incremental decoding: lastTokens [B] int32 → logits [B, V] for the next
  // position; appends to the cache. For beam search, reorder the cache, memory and mask together.
  decodeStep(lastTokens: Tensor, memory: Tensor, memoryPadMask: Tensor | undefined, cache: DecoderCache): Tensor {
    checkIds("Transformer.decodeStep", lastTokens, 1);
    const b = lastTokens.shape[0];
    return noGrad(() => this.decode(lastTokens.reshape(b, 1), memory, memoryPadMask, cache).reshape(b, this.config.tgtVocab));
  }
}
