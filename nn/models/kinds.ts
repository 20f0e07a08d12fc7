// The model interfaces that decoders, tasks and commands program against, and the registry of
// model kinds. A model kind is one file (its class, its config check, its descriptor) plus one
// registration line in nn/models/index.ts; nothing else needs to know its class.
import type { Generator, Tensor } from "../../core/index.ts";
import type { Module } from "../module.ts";
import type { OptionTable, OptionValue } from "../options.ts";

// An incremental decoding state (KV caches). reorder(index): row i continues old row index[i]
// (beam search, dropping finished rows); truncate(n) rolls back to n positions (speculative decoding).
// select(positions) keeps the listed positions in that order (after a token tree is verified in
// one pass: the cache before the tree plus the accepted path); caches without it cannot verify trees.
export interface DecodeCache {
  readonly length: number; // positions decoded so far: the position of the next token
  reorder(index: Tensor): void;
  truncate(length: number): void;
  select?(positions: ArrayLike<number>): void;
  dispose(): void;
}

interface ModelBase extends Module {
  // Dropout masks come from here; a checkpoint saves its state for exact resume.
  readonly dropoutGenerator: Generator;
}

// Sequence to sequence: a source sentence in, a target sentence out.
export interface EncoderDecoderModel extends ModelBase {
  readonly family: "encoder-decoder";
  readonly config: { readonly srcVocab: number; readonly tgtVocab: number; readonly maxLen: number; readonly padId: number };
  // Target positions decoding may use (bos included), when not config.maxLen: Infinity for a model
  // whose positions have no end (sinusoidal) and whose decoding state does not grow with them.
  readonly maxDecodeLen?: number;
  // Teacher-forced pass: src [B, S], tgtIn [B, T] int32 → logits [B, T, V].
  forward(src: Tensor, tgtIn: Tensor): Tensor;
  // src [B, S] → memory [B, S, D]; the padding mask defaults to src == padId.
  encode(src: Tensor, srcPadMask?: Tensor): Tensor;
  createCache(): DecodeCache;
  // last [B] int32 → next-token logits [B, V]; appends one position to the cache.
  decodeStep(last: Tensor, memory: Tensor, memoryPadMask: Tensor | undefined, cache: DecodeCache): Tensor;
}

// What a causal LM's forward pass accepts besides the ids.
export interface CausalLMForwardOptions {
  cache?: DecodeCache;
  padMask?: Tensor;
  // Self-attention mask over [cached keys, new keys], replacing the causal mask: [T, cache.length + T]
  // (or [B, 1, T, cache.length + T]); float32 additive (0 visible, a large negative number hidden)
  // or int32 with 1 where visible. A token tree verified in one pass: each node sees the cache,
  // its ancestors and itself.
  attnMask?: Tensor;
  // Absolute position of each new token ([T], the same for every row); default cache.length + i.
  // Tree nodes sit at cache.length + depth.
  positions?: ArrayLike<number>;
  // "cache": fill the cache and return no logits (an empty [B, T, 0] tensor): a caller that only
  // wants the keys and values (a GliDe draft's target) skips the output projection. "last": the
  // logits after the last position only, [B, 1, V] (a draft catching up on several tokens needs
  // no others; the projection to the vocabulary is most of a small model's step). Default "logits".
  output?: "logits" | "last" | "cache";
}

// A decoder-only language model.
export interface CausalLM extends ModelBase {
  readonly family: "causal-lm";
  readonly config: { readonly vocab: number; readonly maxLen: number };
  // ids [B, T] → logits [B, T, V]. With a cache, ids are the next positions (a prompt, or several
  // draft tokens to verify at once), the first at position cache.length.
  forward(ids: Tensor, opts?: CausalLMForwardOptions): Tensor;
  createCache(): DecodeCache;
  // last [B] int32 → next-token logits [B, V]; appends one position to the cache.
  decodeStep(last: Tensor, cache: DecodeCache): Tensor;
}

// Non-autoregressive translation: the whole target in one (or a few) parallel decoder passes.
export interface NonAutoregressiveModel extends ModelBase {
  readonly family: "non-autoregressive";
  readonly config: {
    readonly srcVocab: number; readonly tgtVocab: number; readonly maxLen: number; readonly padId: number;
    readonly maskId: number; // [MASK] input (cmlm), or the blank (ctc)
    readonly decoderInput: "mask" | "copy"; // what the decoder reads: [MASK]s, or copied source tokens
    readonly upsample: number; // > 0: decoder length = upsample · source length (ctc); 0: a length head
  };
  // Training pass: src [B, S], decIn [B, T] ([MASK]ed target, or copied source ids) → logits [B, T, V].
  forward(src: Tensor, decIn: Tensor, opts?: { tgtPadMask?: Tensor }): Tensor;
  encode(src: Tensor, srcPadMask?: Tensor): Tensor; // [B, S] → memory [B, S, D]
  predictLength(memory: Tensor, srcPadMask: Tensor): Tensor; // → length logits [B, maxLen]
  // decIn [B, T] → logits [B, T, V]; fromSource: decIn holds copied source ids.
  decodeParallel(decIn: Tensor, memory: Tensor, memoryPadMask: Tensor | undefined, tgtPadMask?: Tensor, fromSource?: boolean): Tensor;
}


// A GliDe draft model (Du et al. 2024): a small causal decoder whose layers also attend, through a
// cross-attention with learned query and output projections only, to the keys and values a target
// LM has cached — its "glimpse" of the target. It never runs alone: every pass takes the target's
// cache.
export interface GlideDraftModel extends ModelBase {
  readonly family: "glide-draft";
  readonly config: {
    readonly vocab: number;
    readonly maxLen: number;
    readonly layers: number;
    readonly targetLayers: number; // the target this draft reads: its layers, heads, head width
    readonly targetHeads: number;
    readonly targetHeadDim: number;
  };
  // ids [B, T] → logits [B, T, V]. glimpse: the target's cache (positions [0, L)); with a cache,
  // ids are the draft's next positions. A token at absolute position p sees the target positions
  // j < min(L, B·⌊p/B⌋) with B = blockSize (default 1: everything the target had cached before
  // it); blockSize > 1 is the training mask that makes teacher forcing match drafting from a cache
  // up to B − 1 tokens stale. output "last": only the logits after the last position, [B, 1, V].
  forward(ids: Tensor, opts: { glimpse: DecodeCache; cache?: DecodeCache; blockSize?: number; output?: "logits" | "last" }): Tensor;
  createCache(): DecodeCache;
}


export type AnyModel = EncoderDecoderModel | CausalLM | NonAutoregressiveModel | GlideDraftModel;
export type ModelFamily = AnyModel["family"];

// What a tokenizer must agree with: every listed vocabulary size, and the padding id.
export interface VocabNeeds {
  sizes: number[];
  padId?: number;
}

export interface ModelKind<C extends object = object> {
  readonly name: string;
  readonly family: ModelFamily;
  readonly summary: string;
  // The settings `train` may give (model width, layers, …), with defaults.
  readonly options: OptionTable;
  // A config from those settings and the tokenizer's vocabulary.
  fromOptions(o: Readonly<Record<string, OptionValue>>, vocab: { size: number; padId: number; seed: number; maskId?: number }): C;
  // A stored config (model directory, checkpoint), checked strictly: every field present and
  // valid, no unknown field. Throws plain errors naming the field.
  check(raw: unknown): C;
  // The parameter count the config implies, in closed form: checked against a weight file's
  // header before anything is allocated (a corrupt config must not allocate gigabytes).
  numParameters(c: C): number;
  vocab(c: C): VocabNeeds;
  build(c: C): AnyModel;
}

const kinds = new Map<string, ModelKind>();

export function registerModelKind<C extends object>(kind: ModelKind<C>): void {
  if (kinds.has(kind.name)) throw new Error(`registerModelKind: a model kind "${kind.name}" is already registered`);
  kinds.set(kind.name, kind as unknown as ModelKind);
}

export function modelKinds(): string[] {
  return [...kinds.keys()];
}

export function getModelKind(name: string): ModelKind {
  const k = kinds.get(name);
  if (!k) throw new Error(`unknown model kind "${name}"; registered kinds: ${modelKinds().join(", ")}`);
  return k;
}

export function isEncoderDecoder(m: AnyModel): m is EncoderDecoderModel {
  return m.family === "encoder-decoder";
}

export function isNonAutoregressive(m: AnyModel): m is NonAutoregressiveModel {
  return m.family === "non-autoregressive";
}

export function isCausalLM(m: AnyModel): m is CausalLM {
  return m.family === "causal-lm";
}

export function isGlideDraft(m: AnyModel): m is GlideDraftModel {
  return m.family === "glide-draft";
}

// Strict field check shared by the kinds' check(): exactly these keys, each present.
export function checkFields(who: string, raw: unknown, keys: readonly string[]): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`${who}: expected a config object, got ${JSON.stringify(raw)}`);
  const got = Object.keys(raw);
  const missing = keys.filter((k) => !got.includes(k)), extra = got.filter((k) => !keys.includes(k));
  if (missing.length || extra.length) {
    throw new Error(`${who}: ${[missing.length ? `missing ${missing.join(", ")}` : "", extra.length ? `unknown ${extra.join(", ")}` : ""].filter(Boolean).join("; ")}`);
  }
  return raw as Record<string, unknown>;
}
