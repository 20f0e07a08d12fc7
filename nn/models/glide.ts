// GliDe: a draft model that glimpses the target's KV cache (Du et al. 2024, "GliDe with a CaPE";
// the authors' code, glide/glideModel.py). A small causal decoder whose every layer has, between
// its self-attention and its feed-forward block, a cross-attention to the keys and values the
// target LM cached during its last verification:
//
//   h ← h + SelfAttn(LN(h))               causal, the draft's own KV cache
//   h ← h + Glimpse(h; K_ℓ, V_ℓ)           no norm before it, as in the authors' code
//   h ← h + FFN(LN(h))
//   logits = LN(h) · Wᵀ
//
// Draft layer i of Ld reads target layer ℓ = Lt − Ld + i: a one-layer draft reads the target's last
// layer. The glimpse learns only its query and output projections (nn/layers/glimpse-attention.ts);
// the keys and values are the target's, in its heads and head width.
//
// Which target positions a token sees. While the draft proposes γ tokens, the target's cache
// holds every committed token but the root (the token the last verification produced), so all of
// the root and the proposals see the same, increasingly stale, cache [0, t). In training, with
// the target run over the whole sequence, position p sees the target positions j with
//
//   j < B·⌊p/B⌋                          (the block mask, B = blockSize ≥ γ)
//
// so a token at offset k of its block sees what a draft token k steps past the root sees at
// inference: the positions before the block's start. In general the limit is min(L, B·⌊p/B⌋) for
// a target cache of L positions; inference uses B = 1, limit min(L, p), which is L for the root
// and every proposal. A token that may see nothing (the first block; a prompt of bos alone)
// attends to no target position, where the authors' code falls back to a causal mask that lets
// the first block see its own and later target positions: a small train/inference mismatch
// avoided. Its glimpse then adds the output projection's bias b_o (its attention output is zeroed
// before the projection) when other tokens of the pass see something, and exactly 0 when none does
// (the glimpse is skipped: a prompt of bos alone). The two differ by b_o; the models were trained
// with it (first-block rows), and a one-layer draft never reads those rows' logits when drafting.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fmt, Generator, tensor, type Tensor } from "../../core/index.ts";
import { MASKED, type MultiHeadAttention } from "../layers/attention.ts";
import { Dropout } from "../layers/dropout.ts";
import { Embedding } from "../layers/embedding.ts";
import { attentionOf, feedForwardOf, type LayerConfig } from "../layers/encoder-layer.ts";
import type { Activation, FeedForward } from "../layers/feed-forward.ts";
import { GlimpseAttention, glimpseParameters } from "../layers/glimpse-attention.ts";
import { DecoderCache, KVCache } from "../layers/kv-cache.ts";
import { LayerNorm } from "../layers/layer-norm.ts";
import { Linear } from "../layers/linear.ts";
import type { PositionalEncoding } from "../layers/positions.ts";
import { embedTokens, makePositions, paramCount, projectTokens } from "../layers/token-io.ts";
import { Module, ModuleList } from "../module.ts";
import type { OptionTable } from "../options.ts";
import { checkFields, type DecodeCache, type GlideDraftModel, type ModelKind } from "./kinds.ts";
import { lmKind } from "./lm.ts";
import { LIMITS } from "./transformer.ts";

export interface GlideConfig {
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
  tieEmbeddings: boolean;
  // The target whose cache the draft reads: its layer count, heads and head width.
  targetLayers: number;
  targetHeads: number;
  targetHeadDim: number;
  seed: number | string;
}

function checkConfig(c: GlideConfig): void {
  const ints: [keyof GlideConfig, number, number][] = [
    ["vocab", 1, LIMITS.vocab], ["dModel", 1, LIMITS.dModel], ["heads", 1, LIMITS.heads], ["ffn", 1, LIMITS.ffn], ["maxLen", 2, LIMITS.maxLen],
    ["layers", 1, LIMITS.layers], ["targetLayers", 1, LIMITS.layers], ["targetHeads", 1, LIMITS.heads], ["targetHeadDim", 1, LIMITS.dModel],
  ];
  for (const [k, min, max] of ints) {
    if (!Number.isInteger(c[k]) || (c[k] as number) < min || (c[k] as number) > max) throw new Error(`GlideDraft: ${k} must be an integer in [${min}, ${max}], got ${String(c[k])}`);
  }
  if (c.dModel % c.heads !== 0) throw new Error(`GlideDraft: dModel ${c.dModel} must be divisible by heads ${c.heads}`);
  if (c.layers > c.targetLayers) throw new Error(`GlideDraft: layers ${c.layers} must be at most targetLayers ${c.targetLayers} (draft layer i reads target layer targetLayers − layers + i)`);
  for (const k of ["dropout", "attnDropout"] as const) if (!(typeof c[k] === "number" && c[k] >= 0 && c[k] < 1)) throw new Error(`GlideDraft: ${k} must be a number in [0, 1), got ${String(c[k])}`);
  if (c.activation !== "relu" && c.activation !== "gelu") throw new Error(`GlideDraft: activation must be relu or gelu, got ${String(c.activation)}`);
  if (c.positions !== "sinusoidal" && c.positions !== "learned") throw new Error(`GlideDraft: positions must be sinusoidal or learned, got ${String(c.positions)}`);
  if (typeof c.tieEmbeddings !== "boolean") throw new Error(`GlideDraft: tieEmbeddings must be true or false, got ${String(c.tieEmbeddings)}`);
  if (typeof c.seed !== "number" && typeof c.seed !== "string") throw new Error(`GlideDraft: seed must be a number or a string, got ${String(c.seed)}`);
  const n = glideParameters(c);
  if (n > LIMITS.parameters) throw new Error(`GlideDraft: the config implies ${n.toExponential(2)} parameters, more than the limit of ${LIMITS.parameters}`);
}

export function glideParameters(c: GlideConfig): number {
  const d = c.dModel;
  const layer = paramCount.attention(d) + glimpseParameters(d, c.targetHeads, c.targetHeadDim) + paramCount.feedForward(d, c.ffn) + 2 * paramCount.layerNorm(d);
  return c.vocab * d + (c.positions === "learned" ? c.maxLen * d : 0) + c.layers * layer + paramCount.layerNorm(d) + (c.tieEmbeddings ? 0 : c.vocab * d);
}

class GlideLayer extends Module {
  readonly selfNorm: LayerNorm;
  readonly selfAttn: MultiHeadAttention;
  readonly glimpse: GlimpseAttention;
  readonly ffnNorm: LayerNorm;
  readonly ffn: FeedForward;
  readonly drop: Dropout;

  constructor(c: LayerConfig, target: { heads: number; headDim: number }) {
    super();
    this.selfNorm = this.registerModule("selfNorm", new LayerNorm(c.dModel));
    this.selfAttn = this.registerModule("selfAttn", attentionOf(c));
    this.glimpse = this.registerModule("glimpse", new GlimpseAttention(c.dModel, target.heads, target.headDim, { generator: c.generator }));
    this.ffnNorm = this.registerModule("ffnNorm", new LayerNorm(c.dModel));
    this.ffn = this.registerModule("ffn", feedForwardOf(c));
    this.drop = this.registerModule("drop", new Dropout(c.dropout ?? 0, c.dropoutGenerator));
  }

  // x [B, T, D] → [B, T, D]; kv: the target layer's keys and values with the glimpse mask, or
  // undefined when no token sees any target position.
  forward(x: Tensor, cache: KVCache | undefined, kv: { keys: Tensor; values: Tensor; bias?: Tensor; rows?: Tensor } | undefined): Tensor {
    let h = x.add(this.drop.forward(this.selfAttn.forward(this.selfNorm.forward(x), { causal: true, cache })));
    if (kv) h = h.add(this.drop.forward(this.glimpse.forward(h, kv.keys, kv.values, kv.bias, kv.rows)));
    return h.add(this.drop.forward(this.ffn.forward(this.ffnNorm.forward(h))));
  }
}

export class GlideDraft extends Module implements GlideDraftModel {
  readonly family = "glide-draft" as const;
  readonly config: GlideConfig;
  readonly embed: Embedding;
  readonly positions: PositionalEncoding;
  readonly layers: ModuleList<GlideLayer>;
  readonly norm: LayerNorm;
  readonly outProj: Linear | undefined;
  readonly drop: Dropout;
  readonly dropoutGenerator: Generator;

  constructor(config: GlideConfig) {
    super();
    checkConfig(config);
    const c = (this.config = { ...config });
    const g = new Generator(c.seed);
    this.dropoutGenerator = new Generator(`${c.seed}:dropout`);
    const lc: LayerConfig = { dModel: c.dModel, heads: c.heads, ffn: c.ffn, dropout: c.dropout, attnDropout: c.attnDropout, activation: c.activation, generator: g, dropoutGenerator: this.dropoutGenerator };
    this.embed = this.registerModule("embed", new Embedding(c.vocab, c.dModel, { generator: g }));
    this.positions = this.registerModule("positions", makePositions(c.positions, c.maxLen, c.dModel, g));
    this.layers = this.registerModule("layers", new ModuleList(Array.from({ length: c.layers }, () => new GlideLayer(lc, { heads: c.targetHeads, headDim: c.targetHeadDim }))));
    this.norm = this.registerModule("norm", new LayerNorm(c.dModel));
    if (!c.tieEmbeddings) this.outProj = this.registerModule("outProj", new Linear(c.dModel, c.vocab, { bias: false, generator: g }));
    this.drop = this.registerModule("drop", new Dropout(c.dropout, this.dropoutGenerator));
  }

  // ids [B, T] → logits [B, T, V] (see GlideDraftModel.forward and the header for the glimpse).
  forward(ids: Tensor, opts: { glimpse: DecodeCache; cache?: DecodeCache; blockSize?: number; output?: "logits" | "last" }): Tensor {
    if (ids.dtype !== "int32" || ids.ndim !== 2) throw new Error(`GlideDraft: expected [B, T] int32 token ids, got ${ids.dtype}${fmt(ids.shape)}`);
    const c = this.config;
    const target = opts.glimpse;
    if (!(target instanceof DecoderCache) || target.self.length !== c.targetLayers) {
      throw new Error(`GlideDraft: the glimpse must be the KV cache of the target LM it was trained with (${c.targetLayers} layers), got ${target instanceof DecoderCache ? `a cache of ${target.self.length} layers` : "another kind of cache"}`);
    }
    const B = opts.blockSize ?? 1;
    if (!Number.isInteger(B) || B < 1) throw new Error(`GlideDraft: blockSize must be an integer >= 1, got ${B}`);
    const cache = opts.cache as DecoderCache | undefined;
    const offset = cache?.length ?? 0, T = ids.shape[1], L = target.length;
    const x0 = embedTokens(this.embed, this.positions, this.drop, ids, offset); // [B, T, D]
    const mask = glimpseMask(offset, T, L, B, x0.backend);
    let x = x0, i = 0;
    for (const layer of this.layers) {
      const kvc = target.self[c.targetLayers - c.layers + i];
      const kv = mask && { keys: kvc.keys!, values: kvc.values!, ...mask };
      x = layer.forward(x, cache?.self[i], kv);
      i++;
    }
    if (opts.output === "last") x = x.narrow(1, T - 1, 1); // [B, 1, D]: LN and projection are per row
    return projectTokens(this.norm.forward(x), (this.outProj ?? this.embed).weight); // [B, T, V] ([B, 1, V] for "last")
  }

  createCache(): DecoderCache {
    return new DecoderCache(this.config.layers);
  }
}

// The glimpse mask of T tokens from absolute position `offset` over L target positions: token p
// sees j < min(L, B·⌊p/B⌋). Undefined when no token sees anything; no bias when every token sees
// all of [0, L); `rows` only when some token sees nothing.
export function glimpseMask(offset: number, T: number, L: number, B: number, backend?: Tensor["backend"]): { bias?: Tensor; rows?: Tensor } | undefined {
  const limit = (i: number) => Math.min(L, B * Math.floor((offset + i) / B));
  let anyVisible = false, allFull = true, anyEmpty = false;
  for (let i = 0; i < T; i++) {
    const lim = limit(i);
    anyVisible ||= lim > 0;
    allFull &&= lim === L;
    anyEmpty ||= lim === 0;
  }
  if (!anyVisible) return undefined;
  if (allFull) return {};
  const bias = new Float32Array(T * L);
  const rows = new Float32Array(T);
  for (let i = 0; i < T; i++) {
    const lim = limit(i);
    bias.fill(MASKED, i * L + lim, (i + 1) * L);
    rows[i] = lim > 0 ? 1 : 0;
  }
  return { bias: tensor(bias, { shape: [T, L], backend }), rows: anyEmpty ? tensor(rows, { shape: [T, 1], backend }) : undefined };
}

// ---- the model kind "glide" ----

const FIELDS = ["vocab", "dModel", "heads", "ffn", "layers", "dropout", "attnDropout", "activation", "maxLen", "positions", "tieEmbeddings", "targetLayers", "targetHeads", "targetHeadDim", "seed"];

const L = lmKind.options;
const OPTIONS: OptionTable = {
  dModel: { ...L.dModel, help: "draft width" },
  heads: { ...L.heads, help: "draft self-attention heads (the glimpse uses the target's)" },
  ffn: L.ffn,
  layers: { spec: { kind: "int", min: 1, max: LIMITS.layers }, default: 1, help: "draft layers; layer i reads the target's layer (its layers − these + i)" },
  dropout: L.dropout,
  attnDropout: { ...L.attnDropout, help: "self-attention-weight dropout" },
  activation: L.activation,
  positions: L.positions,
  tieEmbeddings: L.tieEmbeddings,
  maxLen: { spec: { kind: "int", min: 0, max: LIMITS.maxLen }, default: 0, help: "longest context (0: the target's)" },
};

// What a GliDe draft needs to know of its target, from the target's model directory (kind lm).
export function glideTargetOf(dir: string): { layers: number; heads: number; headDim: number; maxLen: number; vocab: number } {
  const path = join(dir, "config.json");
  if (!existsSync(path)) throw new Error(`\`target\`: ${path} is missing; name the model directory of the target LM`);
  let raw: { format?: unknown; version?: unknown; kind?: unknown; config?: unknown };
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`\`target\`: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw.version !== 2 || raw.kind !== "lm") throw new Error(`\`target\`: ${dir} must hold a model of kind lm (a GliDe draft reads its KV cache), got kind ${JSON.stringify(raw.kind)} (version ${JSON.stringify(raw.version)})`);
  const t = lmKind.check(raw.config);
  return { layers: t.layers, heads: t.heads, headDim: t.dModel / t.heads, maxLen: t.maxLen, vocab: t.vocab };
}

export const glideKind: ModelKind<GlideConfig> = {
  name: "glide",
  family: "glide-draft",
  summary: "GliDe draft: a small decoder that cross-attends to a target LM's KV cache (speculative decoding)",
  options: OPTIONS,
  fromOptions: (o, v) => {
    if (typeof o.target !== "string" || o.target === "") throw new Error("a glide draft is built for a target: `target` must name the target LM's model directory (the glide task's setting)");
    const t = glideTargetOf(o.target);
    if (t.vocab !== v.size) throw new Error(`the target's vocabulary has ${t.vocab} tokens but the draft's tokenizer ${v.size}; the draft uses the target's tokenizer`);
    const maxLen = (o.maxLen as number) > 0 ? (o.maxLen as number) : t.maxLen;
    const c: GlideConfig = {
      vocab: v.size, dModel: o.dModel as number, heads: o.heads as number, ffn: o.ffn as number, layers: o.layers as number,
      dropout: o.dropout as number, attnDropout: o.attnDropout as number, activation: o.activation as Activation, maxLen,
      positions: o.positions as GlideConfig["positions"], tieEmbeddings: o.tieEmbeddings as boolean,
      targetLayers: t.layers, targetHeads: t.heads, targetHeadDim: t.headDim, seed: v.seed,
    };
    checkConfig(c);
    return c;
  },
  check: (raw) => {
    const r = checkFields("glide config", raw, FIELDS) as unknown as GlideConfig;
    checkConfig(r);
    return { ...r };
  },
  numParameters: glideParameters,
  vocab: (c) => ({ sizes: [c.vocab] }),
  build: (c) => new GlideDraft(c),
};
