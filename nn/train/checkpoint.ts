// A training checkpoint is ONE safetensors file, so that writing it is one atomic rename: a crash,
// a full disk or Ctrl-C during the write leaves the previous checkpoint whole.
//
//   tensors   model.<param>                float32, exact (resume must be bit-identical)
//             optimizer.<param>.<buffer>   Adam moments
//   metadata  hasten.train      JSON CheckpointState: step, config, optimizer step/lr, dropout
//                               RNG state, batcher state, best-so-far, data fingerprints
//             hasten.tokenizer  the tokenizer JSON, so a checkpoint can never meet another vocabulary
import { closeSync, openSync, readSync, fstatSync } from "node:fs";
import { type Backend, encodeSafetensorsChunks, fromRaw, type GeneratorState, readSafetensors, type Tensor, toRaw, writeFileAtomic } from "../../core/index.ts";
import type { BatchState } from "../tasks/index.ts";
import type { TrainConfig } from "./config.ts";

export const CHECKPOINT_FORMAT = "hasten-train-checkpoint";
const STATE_KEY = "hasten.train";
const TOKENIZER_KEY = "hasten.tokenizer";

export interface BestRecord {
  metric: "bleu" | "loss";
  value: number;
  step: number;
}

export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  version: 1;
  step: number;
  config: TrainConfig;
  optimizer: { step: number; lr: number; hyper: Record<string, number | boolean> };
  dropoutRng: GeneratorState;
  batcher: BatchState;
  best: BestRecord | null;
  // The validation at the checkpoint's step, if it ran (a run resumed after its final
  // validation must not validate, and log, the same step twice).
  lastEval?: { step: number; loss: number; nll: number; bleu: number | null } | null;
  // Target tokens trained on so far, and seconds spent, summed over every session of the run.
  tokens: number;
  seconds: number;
  // sha256 of the tokenizer JSON and of the training files (src + tgt), to refuse a resume that
  // would silently train on other data or another vocabulary.
  tokenizerSha256: string;
  trainDataSha256: string;
}

export interface CheckpointParts {
  state: CheckpointState;
  tokenizerJson: string;
  model: Record<string, Tensor>;
  optimizer: Record<string, Tensor>;
}

export type ChunkWriter = (path: string, chunks: Iterable<Uint8Array>) => void;

const atomicWriter: ChunkWriter = (path, chunks) => writeFileAtomic(path, chunks);

// Reads every tensor first, then writes atomically. `write` is replaceable for fault-injection
// tests; it must never touch `path` unless it has the whole file.
export async function saveCheckpoint(path: string, parts: CheckpointParts, write: ChunkWriter = atomicWriter): Promise<void> {
  const record: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(parts.model)) record[`model.${k}`] = t;
  for (const [k, t] of Object.entries(parts.optimizer)) record[`optimizer.${k}`] = t;
  const raw = await toRaw(record, "F32");
  const chunks = encodeSafetensorsChunks(raw, {
    [STATE_KEY]: JSON.stringify(parts.state),
    [TOKENIZER_KEY]: parts.tokenizerJson,
  });
  write(path, chunks);
}

function parseState(json: string | undefined, path: string): CheckpointState {
  if (json === undefined) throw new Error(`checkpoint ${path}: no "${STATE_KEY}" metadata; not a hasten training checkpoint`);
  let s: CheckpointState;
  try {
    s = JSON.parse(json) as CheckpointState;
  } catch (e) {
    throw new Error(`checkpoint ${path}: "${STATE_KEY}" metadata is not JSON: ${(e as Error).message}`);
  }
  if (s?.format !== CHECKPOINT_FORMAT || s.version !== 1) {
    throw new Error(`checkpoint ${path}: expected format ${CHECKPOINT_FORMAT} version 1, got ${JSON.stringify(s?.format)} version ${JSON.stringify(s?.version)}`);
  }
  if (!Number.isInteger(s.step) || s.step < 0) throw new Error(`checkpoint ${path}: bad step ${JSON.stringify(s.step)}`);
  // Every field the resume reads, checked here so a damaged header is refused with its name
  // instead of failing later as a TypeError.
  const bad = (field: string, want: string) => new Error(`checkpoint ${path}: "${STATE_KEY}" has ${field} = ${JSON.stringify((s as unknown as Record<string, unknown>)[field.split(".")[0]])}, expected ${want}`);
  const obj = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!obj(s.config) || typeof s.config.task !== "string") throw bad("config", "the run's settings object");
  if (!obj(s.optimizer) || !Number.isInteger(s.optimizer.step) || typeof s.optimizer.lr !== "number" || !obj(s.optimizer.hyper)) throw bad("optimizer", "{step, lr, hyper}");
  if (!obj(s.dropoutRng)) throw bad("dropoutRng", "a generator state");
  const b = s.batcher as unknown as Record<string, unknown>;
  if (!obj(b) || !Number.isInteger(b.seed) || !Number.isInteger(b.epoch) || !Number.isInteger(b.position)) throw bad("batcher", "the data-order state {seed, epoch, position}");
  if (s.best !== null && (!obj(s.best) || typeof s.best.value !== "number" || !Number.isInteger(s.best.step))) throw bad("best", "null or {metric, value, step}");
  if (typeof s.tokens !== "number" || typeof s.seconds !== "number") throw bad("tokens", "numbers of tokens and seconds");
  if (typeof s.tokenizerSha256 !== "string" || typeof s.trainDataSha256 !== "string") throw bad("tokenizerSha256", "sha256 strings");
  return s;
}

// The metadata only (header bytes), without reading the tensors: cheap enough to validate a
// --resume before anything heavy happens.
export function readCheckpointHeader(path: string): { state: CheckpointState; tokenizerJson: string } {
  const fd = openSync(path, "r");
  let header: Record<string, unknown>;
  try {
    const size = fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new Error(`checkpoint ${path}: file is ${size} bytes, too short for a safetensors header`);
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (n > size - 8) throw new Error(`checkpoint ${path}: header length ${n} exceeds file size ${size}`);
    const hb = Buffer.alloc(n);
    if (readSync(fd, hb, 0, n, 8) !== n) throw new Error(`checkpoint ${path}: short read of the header`);
    try {
      header = JSON.parse(hb.toString("utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`checkpoint ${path}: header is not JSON: ${(e as Error).message}`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) throw new Error(`checkpoint ${path}: the header is ${JSON.stringify(header)}, expected a JSON object`);
  } finally {
    closeSync(fd);
  }
  const rawMeta = header.__metadata__;
  if (rawMeta !== undefined && (typeof rawMeta !== "object" || rawMeta === null)) throw new Error(`checkpoint ${path}: __metadata__ is ${JSON.stringify(rawMeta)}, expected an object of strings`);
  const meta = (rawMeta ?? {}) as Record<string, string>;
  const tokenizerJson = meta[TOKENIZER_KEY];
  if (typeof tokenizerJson !== "string") throw new Error(`checkpoint ${path}: no "${TOKENIZER_KEY}" metadata`);
  return { state: parseState(meta[STATE_KEY], path), tokenizerJson };
}

// The whole checkpoint, validated, with its tensors on `backend`. The caller disposes them.
export function loadCheckpoint(path: string, backend?: Backend): CheckpointParts {
  const { tensors, metadata } = readSafetensors(path);
  const state = parseState(metadata[STATE_KEY], path);
  const tokenizerJson = metadata[TOKENIZER_KEY];
  if (typeof tokenizerJson !== "string") throw new Error(`checkpoint ${path}: no "${TOKENIZER_KEY}" metadata`);
  const model: Record<string, Tensor> = {}, optimizer: Record<string, Tensor> = {};
  for (const [name, raw] of Object.entries(tensors)) {
    if (name.startsWith("model.")) model[name.slice(6)] = fromRaw(raw, name, backend);
    else if (name.startsWith("optimizer.")) optimizer[name.slice(10)] = fromRaw(raw, name, backend);
    else throw new Error(`checkpoint ${path}: unexpected tensor "${name}" (expected model.* or optimizer.*)`);
  }
  return { state, tokenizerJson, model, optimizer };
}
