// The encoder-decoder Transformer for translation (Vaswani et al. 2017), pre-LN.
//
//   memory = Encoder(√D · E_src[src] + P)                 [B, S, D]
//   logits = Decoder(√D · E_tgt[tgtIn] + P, memory) · Wᵀ   [B, T, V]
//
// The batcher supplies tgtIn = bos y₁…yₙ and tgtOut = y₁…yₙ eos; the model never adds them.
// Padding masks are [B, S] tensors, nonzero at padding (see padMask()).
import { fmt, Generator, noGrad, type Tensor } from "../../core/index.ts";
import { DecoderLayer } from "../layers/decoder-layer.ts";
import { Dropout } from "../layers/dropout.ts";
import { Embedding } from "../layers/embedding.ts";
import { EncoderLayer, type LayerConfig } from "../layers/encoder-layer.ts";
import type { Activation } from "../layers/feed-forward.ts";
import { DecoderCache } from "../layers/kv-cache.ts";
import { LayerNorm } from "../layers/layer-norm.ts";
import { Linear } from "../layers/linear.ts";
import type { PositionalEncoding } from "../layers/positions.ts";
import { embedTokens, makePositions, paramCount, projectTokens } from "../layers/token-io.ts";
import { Module, ModuleList } from "../module.ts";
import type { OptionTable } from "../options.ts";
import { checkFields, type DecodeCache, type EncoderDecoderModel, type ModelKind } from "./kinds.ts";

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

// Upper bounds far above anything trainable here, so that a damaged or hostile config is refused
// before it allocates: ids must stay exact as float32 on the gpujs backend (2²⁴).
export const LIMITS = { vocab: 1 << 24, dModel: 1 << 16, ffn: 1 << 20, layers: 1024, maxLen: 1 << 20, heads: 1024, parameters: 2 ** 31 };

function checkConfig(c: TransformerConfig): void {
  const ints: [keyof TransformerConfig, number][] = [["srcVocab", LIMITS.vocab], ["tgtVocab", LIMITS.vocab], ["dModel", LIMITS.dModel], ["heads", LIMITS.heads], ["ffn", LIMITS.ffn], ["maxLen", LIMITS.maxLen]];
  for (const [k, max] of ints) if (!Number.isInteger(c[k]) || (c[k] as number) <= 0 || (c[k] as number) > max) throw new Error(`Transformer: ${k} must be an integer in [1, ${max}], got ${String(c[k])}`);
  for (const k of ["encLayers", "decLayers"] as const) if (!Number.isInteger(c[k]) || c[k] < 0 || c[k] > LIMITS.layers) throw new Error(`Transformer: ${k} must be an integer in [0, ${LIMITS.layers}], got ${c[k]}`);
  if (c.dModel % c.heads !== 0) throw new Error(`Transformer: dModel ${c.dModel} must be divisible by heads ${c.heads}`);
  if (c.tieEmbeddings && c.srcVocab !== c.tgtVocab) {
    throw new Error(`Transformer: tieEmbeddings needs a joint vocabulary, got srcVocab ${c.srcVocab} and tgtVocab ${c.tgtVocab}`);
  }
  for (const k of ["dropout", "attnDropout"] as const) if (!(typeof c[k] === "number" && c[k] >= 0 && c[k] < 1)) throw new Error(`Transformer: ${k} must be a number in [0, 1), got ${String(c[k])}`);
  if (c.activation !== "relu" && c.activation !== "gelu") throw new Error(`Transformer: activation must be relu or gelu, got ${String(c.activation)}`);
  if (c.positions !== "sinusoidal" && c.positions !== "learned") throw new Error(`Transformer: positions must be sinusoidal or learned, got ${String(c.positions)}`);
  for (const k of ["tieEmbeddings", "tieOutput"] as const) if (typeof c[k] !== "boolean") throw new Error(`Transformer: ${k} must be true or false, got ${String(c[k])}`);
  if (!Number.isInteger(c.padId) || c.padId < 0 || c.padId >= c.tgtVocab) throw new Error(`Transformer: padId must be an id in [0, ${c.tgtVocab}), got ${String(c.padId)}`);
  if (typeof c.seed !== "number" && typeof c.seed !== "string") throw new Error(`Transformer: seed must be a number or a string, got ${String(c.seed)}`);
  const n = transformerParameters(c);
  if (n > LIMITS.parameters) throw new Error(`Transformer: the config implies ${n.toExponential(2)} parameters, more than the limit of ${LIMITS.parameters}`);
}

// Parameter count of a config, without building it (numParameters() of the built model).
export function transformerParameters(c: TransformerConfig): number {
  const d = c.dModel;
  const enc = paramCount.attention(d) + paramCount.feedForward(d, c.ffn) + 2 * paramCount.layerNorm(d);
  const dec = 2 * paramCount.attention(d) + paramCount.feedForward(d, c.ffn) + 3 * paramCount.layerNorm(d);
  const embeddings = c.tieEmbeddings ? c.srcVocab * d : (c.srcVocab + c.tgtVocab) * d;
  return embeddings + (c.positions === "learned" ? c.maxLen * d : 0) + c.encLayers * enc + c.decLayers * dec +
    2 * paramCount.layerNorm(d) + (!c.tieEmbeddings && !c.tieOutput ? c.tgtVocab * d : 0);
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

export class Encoder extends Module {
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

export class Decoder extends Module {
  readonly layers: ModuleList<DecoderLayer>;
  readonly norm: LayerNorm;
  constructor(n: number, lc: LayerConfig) {
    super();
    this.layers = this.registerModule("layers", new ModuleList(Array.from({ length: n }, () => new DecoderLayer(lc))));
    this.norm = this.registerModule("norm", new LayerNorm(lc.dModel));
  }
  // x: [B, T, D] → [B, T, D]
  // causal false: every target position attends to every other (non-autoregressive decoding).
  forward(x: Tensor, memory: Tensor, memoryPadMask?: Tensor, selfPadMask?: Tensor, cache?: DecoderCache, causal = true): Tensor {
    let i = 0;
    for (const layer of this.layers) {
      x = layer.forward(x, { memory, memoryPadMask, selfPadMask, selfCache: cache?.self[i], crossCache: cache?.cross?.[i], causal });
      i++;
    }
    return this.norm.forward(x);
  }
}

// The parts every encoder-decoder here shares, registered on `m` in a fixed order (embeddings,
// positions, encoder, decoder) from one generator: the same config and seed give the same initial
// weights and the same parameter names, whichever model kind builds them. The caller registers
// what follows (an output projection or a length head, then the dropout).
export function buildEncoderDecoderParts<D extends Module>(m: Module, c: TransformerConfig, makeDecoder: (layers: number, lc: LayerConfig) => D) {
  const g = new Generator(c.seed);
  const dropoutGenerator = new Generator(`${c.seed}:dropout`);
  const lc: LayerConfig = {
    dModel: c.dModel, heads: c.heads, ffn: c.ffn, dropout: c.dropout, attnDropout: c.attnDropout,
    activation: c.activation, generator: g, dropoutGenerator,
  };
  const reg = <M extends Module>(name: string, x: M) => (m as unknown as { registerModule: (n: string, x: M) => M }).registerModule(name, x);
  let srcEmbed: Embedding, tgtEmbed: Embedding;
  if (c.tieEmbeddings) {
    srcEmbed = tgtEmbed = reg("embed", new Embedding(c.srcVocab, c.dModel, { generator: g }));
  } else {
    srcEmbed = reg("srcEmbed", new Embedding(c.srcVocab, c.dModel, { generator: g }));
    tgtEmbed = reg("tgtEmbed", new Embedding(c.tgtVocab, c.dModel, { generator: g }));
  }
  const positions = reg("positions", makePositions(c.positions, c.maxLen, c.dModel, g));
  const encoder = reg("encoder", new Encoder(c.encLayers, lc));
  const decoder = reg("decoder", makeDecoder(c.decLayers, lc));
  return { g, dropoutGenerator, srcEmbed, tgtEmbed, positions, encoder, decoder };
}

export class Transformer extends Module implements EncoderDecoderModel {
  readonly family = "encoder-decoder" as const;
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
    const p = buildEncoderDecoderParts(this, c, (n, lc) => new Decoder(n, lc));
    const g = p.g;
    this.dropoutGenerator = p.dropoutGenerator;
    [this.srcEmbed, this.tgtEmbed, this.positions, this.encoder, this.decoder] = [p.srcEmbed, p.tgtEmbed, p.positions, p.encoder, p.decoder];
    if (!c.tieEmbeddings && !c.tieOutput) {
      this.outProj = this.registerModule("outProj", new Linear(c.dModel, c.tgtVocab, { bias: false, generator: g }));
    }
    this.drop = this.registerModule("drop", new Dropout(c.dropout, this.dropoutGenerator));
  }


  // src: [B, S] int32 → memory [B, S, D]. The padding mask defaults to src == padId.
  encode(src: Tensor, srcPadMask: Tensor = padMask(src, this.config.padId)): Tensor {
    checkIds("Transformer.encode", src, 2);
    return this.encoder.forward(embedTokens(this.srcEmbed, this.positions, this.drop, src, 0), srcPadMask);
  }

  // h: [..., D] → logits [..., V]
  private project(h: Tensor): Tensor {
    return projectTokens(h, (this.outProj ?? this.tgtEmbed).weight);
  }

  // tgtIn: [B, T] int32, memory: [B, S, D] → logits [B, T, V]. With a cache (inference, under
  // noGrad), tgtIn holds the next positions only: the first at position cache.length.
  // tgtPadMask ([B, T], or [B, cached + T] with a cache) is needed only for left padding: with
  // right padding, causality already hides padded positions from real ones.
  decode(tgtIn: Tensor, memory: Tensor, memoryPadMask?: Tensor, cache?: DecoderCache, tgtPadMask?: Tensor): Tensor {
    checkIds("Transformer.decode", tgtIn, 2);
    const offset = cache?.length ?? 0;
    const x = embedTokens(this.tgtEmbed, this.positions, this.drop, tgtIn, offset);
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
  decodeStep(lastTokens: Tensor, memory: Tensor, memoryPadMask: Tensor | undefined, cache: DecodeCache): Tensor {
    checkIds("Transformer.decodeStep", lastTokens, 1);
    const b = lastTokens.shape[0];
    return noGrad(() => this.decode(lastTokens.reshape(b, 1), memory, memoryPadMask, cache as DecoderCache).reshape(b, this.config.tgtVocab));
  }
}

// ---- the model kind "transformer" ----

const FIELDS = Object.keys(transformerConfig({ vocab: 1, dModel: 1, heads: 1 })) as (keyof TransformerConfig)[];

// Settings `train` may give; vocabulary, padId and seed come from the tokenizer and the run.
// The other kinds reuse the entries they share (width, heads, dropout, …).
export const TRANSFORMER_OPTIONS: OptionTable = {
  dModel: { spec: { kind: "int", min: 1, max: LIMITS.dModel }, default: 256, help: "model width" },
  heads: { spec: { kind: "int", min: 1, max: LIMITS.heads }, default: 4, help: "attention heads" },
  ffn: { spec: { kind: "int", min: 1, max: LIMITS.ffn }, default: 1024, help: "feed-forward width" },
  encLayers: { spec: { kind: "int", min: 0, max: LIMITS.layers }, default: 3, help: "encoder layers" },
  decLayers: { spec: { kind: "int", min: 1, max: LIMITS.layers }, default: 3, help: "decoder layers" },
  dropout: { spec: { kind: "number", min: 0, max: 0.99 }, default: 0.1, help: "residual/embedding dropout" },
  attnDropout: { spec: { kind: "number", min: 0, max: 0.99 }, default: 0, help: "attention-weight dropout" },
  activation: { spec: { kind: "enum", values: ["relu", "gelu"] }, default: "relu", help: "feed-forward activation" },
  positions: { spec: { kind: "enum", values: ["sinusoidal", "learned"] }, default: "sinusoidal", help: "position encoding" },
  tieEmbeddings: { spec: { kind: "bool" }, default: true, help: "share source, target and output embeddings" },
  maxLen: { spec: { kind: "int", min: 2, max: LIMITS.maxLen }, default: 256, help: "longest sequence the positions cover" },
};

export const transformerKind: ModelKind<TransformerConfig> = {
  name: "transformer",
  family: "encoder-decoder",
  summary: "encoder-decoder Transformer (pre-LN), autoregressive decoding",
  options: TRANSFORMER_OPTIONS,
  fromOptions: (o, v) => transformerConfig({
    srcVocab: v.size, tgtVocab: v.size, dModel: o.dModel as number, heads: o.heads as number, ffn: o.ffn as number,
    encLayers: o.encLayers as number, decLayers: o.decLayers as number, dropout: o.dropout as number, attnDropout: o.attnDropout as number,
    activation: o.activation as Activation, maxLen: o.maxLen as number, positions: o.positions as TransformerConfig["positions"],
    tieEmbeddings: o.tieEmbeddings as boolean, tieOutput: true, padId: v.padId, seed: v.seed,
  }),
  check: (raw) => transformerConfig(checkFields("transformer config", raw, FIELDS) as unknown as TransformerConfig),
  numParameters: transformerParameters,
  vocab: (c) => ({ sizes: [c.srcVocab, c.tgtVocab], padId: c.padId }),
  build: (c) => new Transformer(c),
};
