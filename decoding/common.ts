// What greedy and beam decoding share: the source batch, the output length limit, the banned
// tokens, and the decoder state of a set of rows (memory, padding mask, KV cache) that search
// keeps, drops or duplicates row by row.
//
// Conventions (those of nn/data's Batcher): a source is x with no bos/eos, right-padded with padId;
// the decoder starts from bos; a hypothesis ends at eos. Returned tokens hold neither bos nor eos,
// and a hypothesis's score is Σ log p(yₜ | y<ₜ, x) over its tokens and the final eos.
import { type Backend, keep, noGrad, tensor, type Tensor, tidy } from "../core/index.ts";
import type { DecodeCache, EncoderDecoderModel } from "../nn/models/index.ts";
import type { Module } from "../nn/module.ts";
import { SPECIAL_TOKENS } from "../nn/tokenizer/index.ts";

// The tokenizer's <unk> and <mask>: never worth emitting in a translation or a continuation.
export const DEFAULT_BANNED: readonly number[] = [SPECIAL_TOKENS.indexOf("<unk>"), SPECIAL_TOKENS.indexOf("<mask>")];

// Sentences as id arrays, or one right-padded [B, S] batch.
export type SourceInput = readonly ArrayLike<number>[] | { ids: Int32Array; shape: readonly number[] };

export interface DecodeOptions {
  // The longest output for a source of n tokens is floor(maxLenA · n + maxLenB) tokens plus eos,
  // never more than the model's maxLen − 1 (bos and the tokens occupy positions 0 … maxLen − 1;
  // a model may declare more with maxDecodeLen, e.g. Infinity).
  // When a hypothesis reaches it, eos is forced (and its log-probability counted).
  maxLenA?: number; // default 1.5
  maxLenB?: number; // default 10
  bosId?: number; // default 1
  eosId?: number; // default 2
  padId?: number; // default: the model's padId
  // Ids never emitted besides pad and bos, which never are. Default: the tokenizer's <unk> and
  // <mask> (the same default as the command line); [] allows them.
  banned?: readonly number[];
}

export interface Hypothesis {
  tokens: number[]; // without bos/eos
  score: number; // Σ log-probabilities of the tokens and the eos (float64 sum of float32 terms)
}

// What preparing sources needs to know of a model (every translation model family has it).
export interface SourceModelConfig {
  readonly maxLen: number;
  readonly srcVocab: number;
  readonly tgtVocab: number;
  readonly padId: number;
}

// A source batch ready for the model, with per-sentence length limits.
export interface Prepared {
  ids: Int32Array; // [B, S], right-padded; S ≥ 1 even when every source is empty
  batch: number;
  width: number;
  lengths: number[]; // real source lengths
  maxOut: number[]; // output length limit of each sentence (eos excluded)
  bosId: number;
  eosId: number;
  padId: number;
  banned: Uint8Array; // [V], 1 where the id may not be emitted
}

export function prepareSources(model: { config: SourceModelConfig; readonly maxDecodeLen?: number }, src: SourceInput, opts: DecodeOptions, who: string): Prepared {
  const { maxLen, srcVocab, tgtVocab } = model.config;
  const maxLenA = opts.maxLenA ?? 1.5, maxLenB = opts.maxLenB ?? 10;
  if (!(Number.isFinite(maxLenA) && maxLenA >= 0)) throw new Error(`${who}: maxLenA must be a finite number >= 0, got ${maxLenA}`);
  if (!(Number.isFinite(maxLenB) && maxLenB >= 0)) throw new Error(`${who}: maxLenB must be a finite number >= 0, got ${maxLenB}`);
  const bosId = opts.bosId ?? 1, eosId = opts.eosId ?? 2, padId = opts.padId ?? model.config.padId;
  for (const [k, v] of [["bosId", bosId], ["eosId", eosId], ["padId", padId]] as const) {
    if (!Number.isInteger(v) || v < 0 || v >= tgtVocab) throw new Error(`${who}: ${k} must be an id in [0, ${tgtVocab}), got ${v}`);
  }
  if (eosId === padId || eosId === bosId) throw new Error(`${who}: eosId ${eosId} must differ from bosId ${bosId} and padId ${padId}`);
  const banned = new Uint8Array(tgtVocab);
  banned[padId] = banned[bosId] = 1;
  for (const id of opts.banned ?? DEFAULT_BANNED.filter((id) => id < tgtVocab)) {
    if (!Number.isInteger(id) || id < 0 || id >= tgtVocab) throw new Error(`${who}: banned id ${id} is outside the vocabulary [0, ${tgtVocab})`);
    if (id === eosId) throw new Error(`${who}: eos (${eosId}) cannot be banned: hypotheses could never end`);
    banned[id] = 1;
  }

  let rows: ArrayLike<number>[];
  if (Array.isArray(src)) rows = src as ArrayLike<number>[];
  else {
    const { ids, shape } = src as { ids: Int32Array; shape: readonly number[] };
    if (!(ids instanceof Int32Array) || shape.length !== 2 || ids.length !== shape[0] * shape[1]) {
      throw new Error(`${who}: expected {ids: Int32Array, shape: [B, S]} with B·S ids, got ${ids?.constructor?.name} of ${ids?.length} and shape [${shape}]`);
    }
    // Right padding: a row's length is one past its last non-pad id.
    rows = Array.from({ length: shape[0] }, (_, b) => {
      const row = ids.subarray(b * shape[1], (b + 1) * shape[1]);
      let n = row.length;
      while (n > 0 && row[n - 1] === padId) n--;
      return row.subarray(0, n);
    });
  }
  const lengths = rows.map((r) => r.length);
  const width = Math.max(1, ...lengths);
  const ids = new Int32Array(rows.length * width).fill(padId);
  rows.forEach((r, b) => {
    if (r.length > maxLen) throw new Error(`${who}: source ${b} has ${r.length} tokens but the model's maxLen is ${maxLen}`);
    for (let j = 0; j < r.length; j++) {
      const id = r[j];
      if (!Number.isInteger(id) || id < 0 || id >= srcVocab) throw new Error(`${who}: source ${b} position ${j} holds ${id}, expected an id in [0, ${srcVocab})`);
      ids[b * width + j] = id;
    }
  });
  const decodeLen = model.maxDecodeLen ?? maxLen;
  const maxOut = lengths.map((n) => Math.max(0, Math.min(decodeLen - 1, Math.floor(maxLenA * n + maxLenB))));
  return { ids, batch: rows.length, width, lengths, maxOut, bosId, eosId, padId, banned };
}

// Decoding always runs the model in eval mode (no dropout); the caller's mode is restored after.
export async function inEvalMode<T>(model: Module, fn: () => Promise<T>): Promise<T> {
  const wasTraining = model.training;
  model.eval();
  try {
    return await fn();
  } finally {
    if (wasTraining) model.train();
  }
}

export function backendOf(model: Module): Backend | undefined {
  return model.parameters()[0]?.backend;
}

// The decoder state of N rows: row i decodes the source in memory row i. Search moves rows with
// select(index): new row i continues old row index[i] (keep, drop, or duplicate for beams).
export class DecoderRows {
  private memory: Tensor; // [N, S, D]
  private mask: Tensor; // [N, S], 1 at source padding
  private readonly cache: DecodeCache;
  private readonly backend: Backend | undefined;

  constructor(private readonly model: EncoderDecoderModel, p: Prepared) {
    this.backend = backendOf(model);
    const [memory, mask] = noGrad(() => tidy(() => {
      const src = tensor(p.ids, { shape: [p.batch, p.width], dtype: "int32", backend: this.backend });
      const m = src.eq(p.padId); // [B, S], 1 at padding
      return [model.encode(src, m), m];
    }));
    this.memory = keep(memory);
    this.mask = keep(mask);
    this.cache = model.createCache();
  }

  get rows(): number {
    return this.mask.shape[0];
  }

  // Feeds one token per row; `post` turns the log-probabilities [N, V] into what the caller reads.
  // Everything else made during the step is freed.
  step<T>(tokens: Int32Array, post: (logProbs: Tensor) => T): T {
    return this.stepLogits(tokens, (logits) => post(logits.logSoftmax(-1)), "DecoderRows.step");
  }

  // The same with the logits [N, V], for callers that normalise them themselves.
  stepLogits<T>(tokens: Int32Array, post: (logits: Tensor) => T, who = "DecoderRows.stepLogits"): T {
    if (tokens.length !== this.rows) throw new Error(`${who}: expected ${this.rows} tokens, got ${tokens.length}`);
    return noGrad(() => tidy(() => {
      const last = tensor(tokens, { dtype: "int32", backend: this.backend });
      return post(this.model.decodeStep(last, this.memory, this.mask, this.cache));
    }));
  }

  select(index: ArrayLike<number>): void {
    let identity = index.length === this.rows;
    for (let i = 0; identity && i < index.length; i++) identity = index[i] === i;
    if (identity) return;
    const [memory, mask] = noGrad(() => tidy(() => {
      const idx = tensor(Int32Array.from(index), { dtype: "int32", backend: this.backend });
      this.cache.reorder(idx);
      return [this.memory.indexSelect(0, idx), this.mask.indexSelect(0, idx)];
    }));
    this.memory.dispose();
    this.mask.dispose();
    this.memory = keep(memory);
    this.mask = keep(mask);
  }

  dispose(): void {
    this.cache.dispose();
    this.memory.dispose();
    this.mask.dispose();
  }
}

// Reads tensors to the host and frees them, even when a read fails (asynchronous backends too).
export async function readAndDispose(ts: Tensor[]): Promise<(Float32Array | Int32Array)[]> {
  try {
    return (await Promise.all(ts.map((t) => t.data()))) as (Float32Array | Int32Array)[];
  } finally {
    for (const t of ts) t.dispose();
  }
}
