// Non-autoregressive translation models (one parallel decoder pass per sentence):
//
//   memory  = Encoder(√D · E[src] + P)                                   [B, S, D]
//   length  = W_len · mean_s(memory)                                     [B, maxLen]  (target length n)
//   logits  = Decoder_noncausal(√D · E[decIn] + P, memory) · Wᵀ           [B, T, V]
//
// Three kinds share this file, differing in what the decoder reads and how long it is:
//   cmlm  decIn = the target with some (training) or all (inference) tokens replaced by [MASK];
//         T = n, predicted by the length head (Ghazvininejad et al. 2019, conditional masked LM).
//   nat   decIn = source tokens copied uniformly onto the T = n target positions: position i reads
//         src[⌊i·S/T⌋] (Gu et al. 2018's "copied source embeddings", uniform copy).
//   ctc   decIn = the source copied onto T = r·S positions (r = `upsample`, 2 by default); no
//         length head: the output is the CTC collapse of the T predictions, and the tokenizer's
//         [MASK] serves as the blank (Libovický & Helcl 2018).
// The decoder has no causal mask: every position sees every other.
import { fmt, Generator, type Tensor } from "../../core/index.ts";
import { Dropout } from "../layers/dropout.ts";
import { Embedding } from "../layers/embedding.ts";
import type { Activation } from "../layers/feed-forward.ts";
import { Linear } from "../layers/linear.ts";
import type { PositionalEncoding } from "../layers/positions.ts";
import { embedTokens, projectTokens } from "../layers/token-io.ts";
import { Module } from "../module.ts";
import type { OptionTable } from "../options.ts";
import { checkFields, type ModelKind, type NonAutoregressiveModel } from "./kinds.ts";
import { buildEncoderDecoderParts, Decoder, Encoder, LIMITS, TRANSFORMER_OPTIONS, transformerConfig, transformerParameters, type TransformerConfig } from "./transformer.ts";

export type NatInput = "mask" | "copy";

export interface NatConfig extends TransformerConfig {
  decoderInput: NatInput;
  upsample: number; // ctc: decoder length = upsample · source length; 0: length head (cmlm, nat)
  maskId: number; // the [MASK] input of cmlm; the blank of ctc
}

// The uniform copy map: which source position target position i of T reads (Gu et al. 2018).
export function copyIndex(srcLen: number, tgtLen: number): Int32Array {
  const out = new Int32Array(tgtLen);
  for (let i = 0; i < tgtLen; i++) out[i] = srcLen === 0 ? 0 : Math.min(srcLen - 1, Math.floor((i * srcLen) / tgtLen));
  return out;
}

export class NATransformer extends Module implements NonAutoregressiveModel {
  readonly family = "non-autoregressive" as const;
  readonly config: NatConfig;
  readonly srcEmbed: Embedding;
  readonly tgtEmbed: Embedding;
  readonly positions: PositionalEncoding;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly lengthHead: Linear | undefined; // absent for ctc
  readonly drop: Dropout;
  readonly dropoutGenerator: Generator;

  constructor(config: NatConfig) {
    super();
    checkNatConfig(config);
    const c = (this.config = { ...config });
    const p = buildEncoderDecoderParts(this, c, (n, lc) => new Decoder(n, lc));
    const g = p.g;
    this.dropoutGenerator = p.dropoutGenerator;
    [this.srcEmbed, this.tgtEmbed, this.positions, this.encoder, this.decoder] = [p.srcEmbed, p.tgtEmbed, p.positions, p.encoder, p.decoder];
    if (c.upsample === 0) this.lengthHead = this.registerModule("lengthHead", new Linear(c.dModel, c.maxLen, { generator: g }));
    this.drop = this.registerModule("drop", new Dropout(c.dropout, this.dropoutGenerator));
  }

  // src [B, S] int32 → memory [B, S, D]
  encode(src: Tensor, srcPadMask: Tensor = src.eq(this.config.padId)): Tensor {
    checkIds("NATransformer.encode", src);
    return this.encoder.forward(embedTokens(this.srcEmbed, this.positions, this.drop, src, 0), srcPadMask);
  }

  // Length logits [B, maxLen] from the mean of the unpadded memory rows: class n = n target tokens.
  predictLength(memory: Tensor, srcPadMask: Tensor): Tensor {
    if (!this.lengthHead) throw new Error("NATransformer.predictLength: a ctc model has no length head (its length is upsample · source length)");
    const keep = srcPadMask.eq(0).unsqueeze(-1); // [B, S, 1], 1 at real tokens
    const pooled = memory.mul(keep).sum(1).div(keep.sum(1).maximum(1)); // [B, D]
    return this.lengthHead.forward(pooled);
  }

  // decIn [B, T] int32 (ids: [MASK]s, a partly masked target, or copied source ids) → logits [B, T, V].
  // fromSource: the ids are source tokens (nat/ctc copy), read through the source embedding.
  decodeParallel(decIn: Tensor, memory: Tensor, memoryPadMask: Tensor | undefined, tgtPadMask?: Tensor, fromSource = false): Tensor {
    checkIds("NATransformer.decodeParallel", decIn);
    const x = embedTokens(fromSource ? this.srcEmbed : this.tgtEmbed, this.positions, this.drop, decIn, 0);
    const h = this.decoder.forward(x, memory, memoryPadMask, tgtPadMask, undefined, false);
    return projectTokens(h, this.tgtEmbed.weight);
  }

  // Teacher-forced pass for cmlm: src [B, S], decIn [B, T] (masked target) → logits [B, T, V].
  // For nat and ctc the caller builds decIn with copyIndex and calls decodeParallel(…, true).
  forward(src: Tensor, decIn: Tensor, opts: { tgtPadMask?: Tensor } = {}): Tensor {
    const mask = src.eq(this.config.padId);
    const memory = this.encode(src, mask);
    return this.decodeParallel(decIn, memory, mask, opts.tgtPadMask, this.config.decoderInput === "copy");
  }
}

function checkIds(who: string, ids: Tensor): void {
  if (ids.dtype !== "int32" || ids.ndim !== 2) throw new Error(`${who}: expected [B, T] int32 token ids, got ${ids.dtype}${fmt(ids.shape)}`);
}

function checkNatConfig(c: NatConfig): void {
  if (c.decoderInput !== "mask" && c.decoderInput !== "copy") throw new Error(`NATransformer: decoderInput must be mask or copy, got ${String(c.decoderInput)}`);
  if (!Number.isInteger(c.upsample) || c.upsample < 0 || c.upsample > 16) throw new Error(`NATransformer: upsample must be an integer in [0, 16], got ${String(c.upsample)}`);
  if (c.upsample > 0 && c.decoderInput !== "copy") throw new Error("NATransformer: a ctc model (upsample > 0) reads the copied source (decoderInput copy)");
  if (!Number.isInteger(c.maskId) || c.maskId < 0 || c.maskId >= c.tgtVocab) throw new Error(`NATransformer: maskId must be an id in [0, ${c.tgtVocab}), got ${String(c.maskId)}`);
  const n = natParameters(c);
  if (n > LIMITS.parameters) throw new Error(`NATransformer: the config implies ${n.toExponential(2)} parameters, more than the limit of ${LIMITS.parameters}`);
}

// The Transformer's count (with the output tied, as here) plus the length head.
export function natParameters(c: NatConfig): number {
  const base = transformerParameters({ ...c, tieOutput: true });
  // The Transformer's decoder layers have cross-attention, as these do; no outProj (tied output).
  return base + (c.upsample === 0 ? c.dModel * c.maxLen + c.maxLen : 0);
}

const FIELDS = ["srcVocab", "tgtVocab", "dModel", "heads", "ffn", "encLayers", "decLayers", "dropout", "attnDropout", "activation", "maxLen", "positions",
  "tieEmbeddings", "tieOutput", "padId", "seed", "decoderInput", "upsample", "maskId"];

const COMMON: OptionTable = {
  ...TRANSFORMER_OPTIONS,
  maxLen: { ...TRANSFORMER_OPTIONS.maxLen, help: "longest sequence the positions (and the length head) cover" },
};

function natKind(name: "cmlm" | "nat" | "ctc", summary: string): ModelKind<NatConfig> {
  const options: OptionTable = name === "ctc"
    ? { ...COMMON, upsample: { spec: { kind: "int", min: 1, max: 16 }, default: 2, help: "decoder length = upsample · source length" } }
    : COMMON;
  return {
    name,
    family: "non-autoregressive",
    summary,
    options,
    fromOptions: (o, v) => {
      const c: NatConfig = {
        srcVocab: v.size, tgtVocab: v.size, dModel: o.dModel as number, heads: o.heads as number, ffn: o.ffn as number,
        encLayers: o.encLayers as number, decLayers: o.decLayers as number, dropout: o.dropout as number, attnDropout: o.attnDropout as number,
        activation: o.activation as Activation, maxLen: o.maxLen as number, positions: o.positions as NatConfig["positions"],
        tieEmbeddings: o.tieEmbeddings as boolean, tieOutput: true, padId: v.padId, seed: v.seed,
        decoderInput: name === "cmlm" ? "mask" : "copy", upsample: name === "ctc" ? (o.upsample as number) : 0, maskId: v.maskId ?? 4,
      };
      return check(c, name);
    },
    check: (raw) => check(checkFields(`${name} config`, raw, FIELDS) as unknown as NatConfig, name),
    numParameters: natParameters,
    vocab: (c) => ({ sizes: [c.srcVocab, c.tgtVocab], padId: c.padId }),
    build: (c) => new NATransformer(c),
  };
}

function check(c: NatConfig, name: string): NatConfig {
  // The Transformer's own checks (bounds, heads, vocabularies), then the NAT fields.
  const { decoderInput, upsample, maskId, ...t } = c;
  const base = transformerConfig(t as TransformerConfig);
  const want = { cmlm: ["mask", 0], nat: ["copy", 0], ctc: ["copy", -1] }[name] as [NatInput, number];
  if (decoderInput !== want[0]) throw new Error(`${name} config: decoderInput must be ${want[0]}, got ${String(decoderInput)}`);
  if (want[1] === 0 && upsample !== 0) throw new Error(`${name} config: upsample must be 0 (the length head sets the length), got ${String(upsample)}`);
  if (want[1] < 0 && !(Number.isInteger(upsample) && upsample >= 1)) throw new Error(`${name} config: upsample must be an integer >= 1, got ${String(upsample)}`);
  const out: NatConfig = { ...base, decoderInput, upsample, maskId };
  checkNatConfig(out);
  return out;
}


export const cmlmKind = natKind("cmlm", "conditional masked LM (non-autoregressive): [MASK] inputs, a length head; one pass or mask-predict");
export const natVanillaKind = natKind("nat", "vanilla NAT (non-autoregressive): uniformly copied source inputs, a length head");
export const ctcKind = natKind("ctc", "CTC NAT (non-autoregressive): source copied to upsample · S positions, blank = [MASK], collapse");
