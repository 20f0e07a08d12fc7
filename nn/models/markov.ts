// The Markov autoregressive Transformer (MAT; Du, Zhou, Tu & Jiang, "Revisiting the Markov
// Property for Machine Translation", Findings of EACL 2024, arXiv 2402.02084): the pre-LN
// encoder-decoder Transformer (transformer.ts) whose decoder has the k-th order Markov property,
//
//   p(y | x) = Πᵢ p(yᵢ | yᵢ₋ₖ … yᵢ₋₁, x)         k = `order`; the whole source x stays visible.
//
// Only the decoder's self-attention changes; the encoder, cross-attention, feed-forward blocks,
// embeddings and parameter names are the Transformer's (a Transformer checkpoint loads into it).
//
// 1. The k-order band mask (markovMask). Decoder input i holds yᵢ₋₁ (bos at 0), so query i may
//    attend to key j iff 0 ≤ i − j ≤ k − 1: itself and the k − 1 positions before it, which hold
//    yᵢ₋ₖ … yᵢ₋₁. The paper describes it as a lower-triangular mask of bandwidth k ("if k is 2, the
//    current target token can only attend to the previous 2 tokens").
//
// 2. No leakage through depth (variant "strict", the default). With the band mask alone, layer ℓ
//    at position i reads layer ℓ − 1 at positions i − k + 1 … i, each of which already read k − 1
//    positions further back: L layers see L·(k − 1) + 1 inputs, not k (Longformer's l × w
//    receptive field). The paper names the cure "transparent attention" and calls it crucial to
//    prevent this leakage; its exact formula was not in any source reachable from here (only
//    reviews of the paper were), so this is our reading, marked as such: at every decoder layer
//    the self-attention keys and values are computed from the layer-0 representation (token
//    embedding + position) of the window, LN_ℓ(x⁰), while queries come from the position's own
//    state hℓ₋₁. (Bapna et al. 2018's transparent attention lets each decoder layer attend to a
//    learned mix of all encoder layers' outputs; carried over to the decoder's own self-attention,
//    a mix that included any layer ≥ 1 would leak again, so only layer 0 is used.)
//    By induction, hℓ(i) depends on x⁰ at i − k + 1 … i and on the source only: a token older
//    than the window changes nothing, bit for bit (spec/nn/markov.spec.ts). The layer's own
//    selfNorm normalises x⁰ too, so the variant adds no parameters.
//
// 3. Variant "window": plain sliding-window attention (keys/values from hℓ₋₁), the leaky baseline;
//    with k ≥ the target length it is exactly the Transformer.
//
// Decoding keeps, per layer, a ring buffer of the last k keys/values (RingKVCache): per-step cost
// and memory are constant in the position (O(L·k·D) self-attention, O(L·S·D) cross-attention),
// where the Transformer's KV cache grows by L·2·D values a step. With sinusoidal positions there is
// no position limit at all (maxDecodeLen = Infinity).
import { fmt, Generator, noGrad, tensor, type Tensor } from "../../core/index.ts";
import { MASKED, scaledDotProductAttention } from "../layers/attention.ts";
import { DecoderLayer } from "../layers/decoder-layer.ts";
import { Dropout } from "../layers/dropout.ts";
import { Embedding } from "../layers/embedding.ts";
import type { LayerConfig } from "../layers/encoder-layer.ts";
import { LayerNorm } from "../layers/layer-norm.ts";
import { Linear } from "../layers/linear.ts";
import type { PositionalEncoding } from "../layers/positions.ts";
import { RingKVCache } from "../layers/ring-kv-cache.ts";
import { embedTokens, projectTokens } from "../layers/token-io.ts";
import { Module, ModuleList } from "../module.ts";
import type { OptionTable } from "../options.ts";
import { checkFields, type DecodeCache, type EncoderDecoderModel, type ModelKind } from "./kinds.ts";
import { buildEncoderDecoderParts, Encoder, LIMITS, padMask, transformerConfig, transformerKind, transformerParameters, type TransformerConfig } from "./transformer.ts";

export type MarkovVariant = "strict" | "window";

export interface MarkovConfig extends TransformerConfig {
  order: number; // k: yᵢ is predicted from yᵢ₋ₖ … yᵢ₋₁ (and the source)
  variant: MarkovVariant; // strict: no leakage past k; window: plain sliding-window attention
}

export function markovConfig(c: Partial<MarkovConfig> & ({ vocab: number } | { srcVocab: number; tgtVocab: number })): MarkovConfig {
  // A field given as undefined stays undefined (and is refused), as in transformerConfig.
  const { order, variant, ...rest } = { order: 4, variant: "strict" as MarkovVariant, ...c };
  const cfg: MarkovConfig = { ...transformerConfig(rest), order, variant };
  checkMarkov(cfg);
  return cfg;
}

function checkMarkov(c: MarkovConfig): void {
  if (!Number.isInteger(c.order) || c.order < 1 || c.order > LIMITS.maxLen) throw new Error(`MarkovTransformer: order must be an integer in [1, ${LIMITS.maxLen}], got ${String(c.order)}`);
  if (c.variant !== "strict" && c.variant !== "window") throw new Error(`MarkovTransformer: variant must be strict or window, got ${String(c.variant)}`);
}

// ---- the k-order band mask ----

// [Tq, Tk], 1 where query position queryPos[a] may attend to key position keyPos[b]:
//   0 ≤ queryPos[a] − keyPos[b] ≤ order − 1.
// A key position < 0 is an empty cache slot, never visible. Training passes positions 0 … T − 1
// for both; a decoding step passes its own position and those of the ring's slots.
export function markovMask(queryPos: ArrayLike<number>, keyPos: ArrayLike<number>, order: number): Uint8Array {
  if (!Number.isInteger(order) || order < 1) throw new Error(`markovMask: order must be an integer >= 1, got ${order}`);
  const tq = queryPos.length, tk = keyPos.length;
  const m = new Uint8Array(tq * tk);
  for (let a = 0; a < tq; a++) {
    for (let b = 0; b < tk; b++) {
      const d = queryPos[a] - keyPos[b];
      m[a * tk + b] = keyPos[b] >= 0 && d >= 0 && d <= order - 1 ? 1 : 0;
    }
  }
  return m;
}

// The mask as the additive attention bias [Tq, Tk]: 0 where visible, MASKED (−1e9) elsewhere.
export function markovBias(queryPos: ArrayLike<number>, keyPos: ArrayLike<number>, order: number, backend?: Tensor["backend"]): Tensor {
  const m = markovMask(queryPos, keyPos, order);
  const a = new Float32Array(m.length);
  for (let i = 0; i < m.length; i++) a[i] = m[i] ? 0 : MASKED;
  return tensor(a, { shape: [queryPos.length, keyPos.length], backend });
}

// offset, offset + 1, …, offset + n − 1
export function positionRange(offset: number, n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => offset + i);
}

// ---- the decoder ----

// One pre-LN decoder layer with the Markov self-attention; the cross-attention and feed-forward
// blocks are DecoderLayer's (its modules, so parameters and their names are the Transformer's).
// kvInput: the input keys and values come from, x⁰ (strict) or h itself (window).
function markovLayer(
  layer: DecoderLayer, h: Tensor, kvInput: Tensor, bias: Tensor | undefined, memory: Tensor, memoryPadMask: Tensor | undefined,
  cache: RingKVCache | undefined, index: number,
): Tensor {
  const a = layer.selfAttn;
  const [b, t] = h.shape;
  const heads = (x: Tensor) => x.reshape(b, t, a.heads, a.headDim).permute(0, 2, 1, 3); // [B, T, D] → [B, H, T, Dh]
  const hn = layer.selfNorm.forward(h);
  const kvn = kvInput === h ? hn : layer.selfNorm.forward(kvInput);
  const q = heads(a.q.forward(hn));
  let k = heads(a.k.forward(kvn)), v = heads(a.v.forward(kvn));
  if (cache) [k, v] = cache.append(index, k, v); // [B, H, C (+ T), Dh]: the ring (then the new keys)
  const drop = a.attnDrop.p > 0 && a.training ? (w: Tensor) => a.attnDrop.forward(w) : undefined;
  const { output } = scaledDotProductAttention(q, k, v, bias, drop); // [B, H, T, Dh]
  const s = a.o.forward(output.permute(0, 2, 1, 3).reshape(b, t, a.dModel));
  let x = h.add(layer.drop.forward(s));
  const c = layer.crossAttn!.forward(layer.crossNorm!.forward(x), { memory, keyPaddingMask: memoryPadMask, cache: cache?.cross[index] });
  x = x.add(layer.drop.forward(c));
  return x.add(layer.drop.forward(layer.ffn.forward(layer.ffnNorm.forward(x))));
}

class MarkovDecoder extends Module {
  readonly layers: ModuleList<DecoderLayer>;
  readonly norm: LayerNorm;
  constructor(n: number, lc: LayerConfig) {
    super();
    this.layers = this.registerModule("layers", new ModuleList(Array.from({ length: n }, () => new DecoderLayer(lc))));
    this.norm = this.registerModule("norm", new LayerNorm(lc.dModel));
  }
  // x0: [B, T, D] (embedded targets), bias broadcastable to [B, H, T, Tk] → [B, T, D]
  forward(x0: Tensor, bias: Tensor | undefined, memory: Tensor, memoryPadMask: Tensor | undefined, strict: boolean, cache?: RingKVCache): Tensor {
    let h = x0, i = 0;
    for (const layer of this.layers) h = markovLayer(layer, h, strict ? x0 : h, bias, memory, memoryPadMask, cache, i++);
    return this.norm.forward(h);
  }
}

function checkIds(who: string, ids: Tensor, ndim: number): void {
  if (ids.dtype !== "int32" || ids.ndim !== ndim) {
    throw new Error(`${who}: expected ${ndim === 1 ? "[B]" : "[B, T]"} int32 token ids, got ${ids.dtype}${fmt(ids.shape)}`);
  }
}

export class MarkovTransformer extends Module implements EncoderDecoderModel {
  readonly family = "encoder-decoder" as const;
  readonly config: MarkovConfig;
  readonly srcEmbed: Embedding;
  readonly tgtEmbed: Embedding; // the same object as srcEmbed when tied
  readonly positions: PositionalEncoding;
  readonly encoder: Encoder;
  readonly decoder: MarkovDecoder;
  readonly outProj: Linear | undefined;
  readonly drop: Dropout;
  readonly dropoutGenerator: Generator;

  // Built in the Transformer's order from the same generator: the same config and seed give the
  // same initial weights as a Transformer.
  constructor(config: MarkovConfig) {
    super();
    const c = (this.config = markovConfig(config));
    const p = buildEncoderDecoderParts(this, c, (n, lc) => new MarkovDecoder(n, lc));
    const g = p.g;
    this.dropoutGenerator = p.dropoutGenerator;
    [this.srcEmbed, this.tgtEmbed, this.positions, this.encoder, this.decoder] = [p.srcEmbed, p.tgtEmbed, p.positions, p.encoder, p.decoder];
    if (!c.tieEmbeddings && !c.tieOutput) {
      this.outProj = this.registerModule("outProj", new Linear(c.dModel, c.tgtVocab, { bias: false, generator: g }));
    }
    this.drop = this.registerModule("drop", new Dropout(c.dropout, this.dropoutGenerator));
  }

  // Sinusoidal positions have no end and the decoding state does not grow: no length limit.
  get maxDecodeLen(): number {
    return this.positions.bounded ? this.config.maxLen : Infinity;
  }

  // src: [B, S] int32 → memory [B, S, D]. The padding mask defaults to src == padId.
  encode(src: Tensor, srcPadMask: Tensor = padMask(src, this.config.padId)): Tensor {
    checkIds("MarkovTransformer.encode", src, 2);
    return this.encoder.forward(embedTokens(this.srcEmbed, this.positions, this.drop, src, 0), srcPadMask);
  }

  // tgtIn: [B, T] int32, memory: [B, S, D] → logits [B, T, V]. With a cache (inference, under
  // noGrad), tgtIn holds the next positions, the first at cache.length. tgtPadMask ([B, T],
  // parallel pass only) matters only for left padding, as in the Transformer.
  decode(tgtIn: Tensor, memory: Tensor, memoryPadMask?: Tensor, cache?: RingKVCache, tgtPadMask?: Tensor): Tensor {
    checkIds("MarkovTransformer.decode", tgtIn, 2);
    const [b, t] = tgtIn.shape;
    if (cache) this.checkCache("MarkovTransformer.decode", cache);
    if (cache && tgtPadMask) throw new Error("MarkovTransformer.decode: a target padding mask is for the parallel pass; incremental decoding takes none");
    const offset = cache?.length ?? 0;
    const x0 = embedTokens(this.tgtEmbed, this.positions, this.drop, tgtIn, offset); // [B, T, D]
    const qPos = positionRange(offset, t), kPos = cache ? cache.keyPositions(t) : qPos;
    // [T, Tk]; none when every key is visible (a decoding step once the ring is full).
    let bias = markovMask(qPos, kPos, this.config.order).every((x) => x === 1) ? undefined : markovBias(qPos, kPos, this.config.order, x0.backend);
    if (tgtPadMask) {
      if (tgtPadMask.shape.join() !== [b, t].join()) throw new Error(`MarkovTransformer.decode: tgtPadMask must be [B, T] = [${b}, ${t}], got ${fmt(tgtPadMask.shape)}`);
      const padBias = tgtPadMask.ne(0).mul(MASKED).reshape(b, 1, 1, t);
      bias = bias ? padBias.add(bias) : padBias; // [B, 1, T, T]
    }
    const h = this.decoder.forward(x0, bias, memory, memoryPadMask, this.config.variant === "strict", cache);
    cache?.advance(t);
    return projectTokens(h, (this.outProj ?? this.tgtEmbed).weight); // [B, T, V]
  }

  // Teacher-forced training pass: src [B, S], tgtIn [B, T] → logits [B, T, V].
  forward(src: Tensor, tgtIn: Tensor, opts: { srcPadMask?: Tensor; tgtPadMask?: Tensor } = {}): Tensor {
    const srcPadMask = opts.srcPadMask ?? padMask(src, this.config.padId);
    return this.decode(tgtIn, this.encode(src, srcPadMask), srcPadMask, undefined, opts.tgtPadMask);
  }

  // rollback: how many positions truncate() may take back (speculative decoding); each costs one
  // more ring slot per layer.
  createCache(opts: { rollback?: number } = {}): RingKVCache {
    return new RingKVCache(this.config.decLayers, this.config.order, { rollback: opts.rollback ?? 0, cross: true });
  }

  // lastTokens [B] int32 → logits [B, V] for the next position; the ring takes one position.
  decodeStep(lastTokens: Tensor, memory: Tensor, memoryPadMask: Tensor | undefined, cache: DecodeCache): Tensor {
    checkIds("MarkovTransformer.decodeStep", lastTokens, 1);
    const ring = this.checkCache("MarkovTransformer.decodeStep", cache);
    const b = lastTokens.shape[0];
    return noGrad(() => this.decode(lastTokens.reshape(b, 1), memory, memoryPadMask, ring).reshape(b, this.config.tgtVocab));
  }

  private checkCache(who: string, cache: DecodeCache): RingKVCache {
    if (!(cache instanceof RingKVCache) || cache.order !== this.config.order || cache.cross.length !== this.config.decLayers) {
      throw new Error(`${who}: expected a cache made by this model's createCache() (a ring of order ${this.config.order} over ${this.config.decLayers} layers)`);
    }
    return cache;
  }
}

// ---- the model kind "markov" ----

const FIELDS = [...Object.keys(transformerConfig({ vocab: 1, dModel: 1, heads: 1 })), "order", "variant"];

// The Transformer's settings, plus the order and the variant.
const OPTIONS: OptionTable = {
  ...transformerKind.options,
  order: { spec: { kind: "int", min: 1, max: LIMITS.maxLen }, default: 4, help: "Markov order k: each target token sees the k tokens before it" },
  variant: { spec: { kind: "enum", values: ["strict", "window"] }, default: "strict", help: "strict: keys/values from the embeddings (nothing older than k leaks); window: plain sliding-window attention" },
};

export const markovKind: ModelKind<MarkovConfig> = {
  name: "markov",
  family: "encoder-decoder",
  summary: "Markov autoregressive Transformer: the decoder sees the last k target tokens; constant-cost decoding steps",
  options: OPTIONS,
  fromOptions: (o, v) => markovConfig({
    ...transformerKind.fromOptions(o, v) as TransformerConfig, order: o.order as number, variant: o.variant as MarkovVariant,
  }),
  check: (raw) => markovConfig(checkFields("markov config", raw, FIELDS) as unknown as MarkovConfig),
  // The strict variant reuses each layer's selfNorm for x⁰: the Transformer's parameters exactly.
  numParameters: (c) => transformerParameters(c),
  vocab: (c) => ({ sizes: [c.srcVocab, c.tgtVocab], padId: c.padId }),
  build: (c) => new MarkovTransformer(c),
};
