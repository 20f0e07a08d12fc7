// A decoder-only Transformer language model (GPT-style, pre-LN, causal):
//
//   logits = LN(Blocks(√D · E[ids] + P)) · Wᵀ        ids [B, T] → [B, T, V]
//
// With a KV cache it scores new tokens incrementally: `forward(ids, { cache })` takes the next
// positions only (one token for plain decoding, k draft tokens at once for speculative
// decoding, after which `cache.truncate()` rolls back the rejected ones).
import { fmt, Generator, noGrad, type Tensor } from "../../core/index.ts";
import { MASKED } from "../layers/attention.ts";
import { DecoderLayer } from "../layers/decoder-layer.ts";
import { Dropout } from "../layers/dropout.ts";
import { Embedding } from "../layers/embedding.ts";
import type { LayerConfig } from "../layers/encoder-layer.ts";
import type { Activation } from "../layers/feed-forward.ts";
import { DecoderCache } from "../layers/kv-cache.ts";
import { LayerNorm } from "../layers/layer-norm.ts";
import { Linear } from "../layers/linear.ts";
import type { PositionalEncoding } from "../layers/positions.ts";
import { embedTokens, makePositions, paramCount, projectTokens } from "../layers/token-io.ts";
import { Module, ModuleList } from "../module.ts";
import type { OptionTable } from "../options.ts";
import { checkFields, type CausalLM, type CausalLMForwardOptions, type DecodeCache, type ModelKind } from "./kinds.ts";
import { LIMITS, TRANSFORMER_OPTIONS } from "./transformer.ts";

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
  const ints: [keyof LMConfig, number][] = [["vocab", LIMITS.vocab], ["dModel", LIMITS.dModel], ["heads", LIMITS.heads], ["ffn", LIMITS.ffn], ["maxLen", LIMITS.maxLen]];
  for (const [k, max] of ints) {
    if (!Number.isInteger(c[k]) || (c[k] as number) <= 0 || (c[k] as number) > max) throw new Error(`TransformerLM: ${k} must be an integer in [1, ${max}], got ${String(c[k])}`);
  }
  if (!Number.isInteger(c.layers) || c.layers < 0 || c.layers > LIMITS.layers) throw new Error(`TransformerLM: layers must be an integer in [0, ${LIMITS.layers}], got ${c.layers}`);
  if (c.dModel % c.heads !== 0) throw new Error(`TransformerLM: dModel ${c.dModel} must be divisible by heads ${c.heads}`);
  if (c.window !== undefined && (!Number.isInteger(c.window) || c.window < 1)) throw new Error(`TransformerLM: window must be a positive integer, got ${c.window}`);
  for (const k of ["dropout", "attnDropout"] as const) if (!(typeof c[k] === "number" && c[k] >= 0 && c[k] < 1)) throw new Error(`TransformerLM: ${k} must be a number in [0, 1), got ${String(c[k])}`);
  if (c.activation !== "relu" && c.activation !== "gelu") throw new Error(`TransformerLM: activation must be relu or gelu, got ${String(c.activation)}`);
  if (c.positions !== "sinusoidal" && c.positions !== "learned") throw new Error(`TransformerLM: positions must be sinusoidal or learned, got ${String(c.positions)}`);
  if (typeof c.tieEmbeddings !== "boolean") throw new Error(`TransformerLM: tieEmbeddings must be true or false, got ${String(c.tieEmbeddings)}`);
  const n = lmParameters(c);
  if (n > LIMITS.parameters) throw new Error(`TransformerLM: the config implies ${n.toExponential(2)} parameters, more than the limit of ${LIMITS.parameters}`);
}

// Parameter count of a config, without building it.
export function lmParameters(c: LMConfig): number {
  const d = c.dModel;
  const layer = paramCount.attention(d) + paramCount.feedForward(d, c.ffn) + 2 * paramCount.layerNorm(d);
  return c.vocab * d + (c.positions === "learned" ? c.maxLen * d : 0) + c.layers * layer + paramCount.layerNorm(d) + (c.tieEmbeddings ? 0 : c.vocab * d);
}

export class TransformerLM extends Module implements CausalLM {
  readonly family = "causal-lm" as const;
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
    this.positions = this.registerModule("positions", makePositions(c.positions, c.maxLen, c.dModel, g));
    this.layers = this.registerModule("layers", new ModuleList(Array.from({ length: c.layers }, () => new DecoderLayer({ ...lc, cross: false }))));
    this.norm = this.registerModule("norm", new LayerNorm(c.dModel));
    if (!c.tieEmbeddings) this.outProj = this.registerModule("outProj", new Linear(c.dModel, c.vocab, { bias: false, generator: g }));
    this.drop = this.registerModule("drop", new Dropout(c.dropout, this.dropoutGenerator));
  }

  // ids: [B, T] int32 → logits [B, T, V]. With a cache (inference, under noGrad) ids are the next
  // positions, the first at position cache.length. padMask: [B, T] (with a cache [B, cached + T]),
  // nonzero at padding; needed only for left padding. attnMask and positions: a token tree
  // verified in one pass (CausalLMForwardOptions).
  forward(ids: Tensor, opts: CausalLMForwardOptions = {}): Tensor {
    if (ids.dtype !== "int32" || ids.ndim !== 2) throw new Error(`TransformerLM: expected [B, T] int32 token ids, got ${ids.dtype}${fmt(ids.shape)}`);
    const { padMask } = opts;
    const cache = opts.cache as DecoderCache | undefined;
    const bias = opts.attnMask && this.maskBias(opts.attnMask, ids.shape[1], (cache?.length ?? 0) + ids.shape[1]);
    if (bias && this.config.window !== undefined) throw new Error("TransformerLM: attnMask replaces the causal mask and cannot be combined with an attention window");
    let x = embedTokens(this.embed, this.positions, this.drop, ids, cache?.length ?? 0, opts.positions); // [B, T, D]
    let i = 0;
    for (const layer of this.layers) {
      x = layer.forward(x, { selfPadMask: padMask, selfCache: cache?.self[i], window: this.config.window, selfAttnBias: bias });
      i++;
    }
    if (opts.output === "cache") return x.narrow(2, 0, 0); // [B, T, 0]: the cache is what was wanted
    if (opts.output === "last") x = x.narrow(1, x.shape[1] - 1, 1); // [B, 1, D]: LN and projection are per row
    return projectTokens(this.norm.forward(x), (this.outProj ?? this.embed).weight); // [B, T, V]
  }

  // An attention mask as the additive bias attention adds: float32 passes through, int32 1/0
  // (visible/hidden) becomes 0/MASKED.
  private maskBias(m: Tensor, t: number, tk: number): Tensor {
    const s = m.shape;
    if (!((m.ndim === 2 && s[0] === t && s[1] === tk) || (m.ndim === 4 && s[1] === 1 && s[2] === t && s[3] === tk))) {
      throw new Error(`TransformerLM: attnMask must be [T, cached + T] = [${t}, ${tk}] (or [B, 1, ${t}, ${tk}]), got ${fmt(s)}`);
    }
    return m.dtype === "int32" ? m.eq(0).mul(MASKED) : m;
  }

  createCache(): DecoderCache {
    return new DecoderCache(this.config.layers);
  }

  // lastTokens [B] int32 → next-token logits [B, V]; appends one position to the cache.
  decodeStep(lastTokens: Tensor, cache: DecodeCache): Tensor {
    if (lastTokens.dtype !== "int32" || lastTokens.ndim !== 1) throw new Error(`TransformerLM.decodeStep: expected [B] int32 token ids, got ${lastTokens.dtype}${fmt(lastTokens.shape)}`);
    const b = lastTokens.shape[0];
    return noGrad(() => this.forward(lastTokens.reshape(b, 1), { cache }).reshape(b, this.config.vocab));
  }
}

// ---- the model kind "lm" ----

// The stored config keeps every field (window: null when absent, since JSON has no undefined).
const FIELDS = ["vocab", "dModel", "heads", "ffn", "layers", "dropout", "attnDropout", "activation", "maxLen", "positions", "tieEmbeddings", "window", "seed"];

const T = TRANSFORMER_OPTIONS;
const OPTIONS: OptionTable = {
  dModel: T.dModel,
  heads: T.heads,
  ffn: T.ffn,
  layers: { spec: { kind: "int", min: 0, max: LIMITS.layers }, default: 4, help: "decoder layers" },
  dropout: T.dropout,
  attnDropout: T.attnDropout,
  activation: { ...T.activation, default: "gelu" },
  positions: { ...T.positions, default: "learned" },
  tieEmbeddings: { ...T.tieEmbeddings, help: "output projection = token embedding" },
  maxLen: { spec: { kind: "int", min: 2, max: LIMITS.maxLen }, default: 256, help: "longest context the positions cover" },
  window: { spec: { kind: "int", min: 0 }, default: 0, help: "attend only to the last N positions (0: all)" },
};

export const lmKind: ModelKind<LMConfig> = {
  name: "lm",
  family: "causal-lm",
  summary: "decoder-only Transformer language model (pre-LN, causal)",
  options: OPTIONS,
  fromOptions: (o, v) => lmConfig({
    vocab: v.size, dModel: o.dModel as number, heads: o.heads as number, ffn: o.ffn as number, layers: o.layers as number,
    dropout: o.dropout as number, attnDropout: o.attnDropout as number, activation: o.activation as Activation, maxLen: o.maxLen as number,
    positions: o.positions as LMConfig["positions"], tieEmbeddings: o.tieEmbeddings as boolean,
    window: (o.window as number) > 0 ? (o.window as number) : undefined, seed: v.seed,
  }),
  check: (raw) => {
    // JSON has no undefined: a config without a window may store null or leave the field out.
    const withWindow = typeof raw === "object" && raw !== null && !("window" in raw) ? { ...raw, window: null } : raw;
    const r = checkFields("lm config", withWindow, FIELDS);
    return lmConfig({ ...(r as unknown as LMConfig), window: r.window === null ? undefined : (r.window as number) });
  },
  numParameters: lmParameters,
  vocab: (c) => ({ sizes: [c.vocab] }),
  build: (c) => new TransformerLM(c),
};
