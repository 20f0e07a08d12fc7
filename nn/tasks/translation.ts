// Translation with an encoder-decoder model: a parallel corpus (<split>.<src>, <split>.<tgt>, one
// sentence a line), a joint BPE vocabulary, token-budget batches, and
//   loss = CE_ls(model(x, bos·y), y·eos)   per target token, padding ignored
// Validation: the same loss and plain NLL, and BLEU of greedy translations of the first
// `validBleuLimit` sentences (through the translate hook the command line injects).
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { crossEntropy, tensor, type Tensor } from "../../core/index.ts";
import { Batcher, type Batch } from "../data/batcher.ts";
import { encodePairs, filterByLength, readParallel, type TextPair, type TokenPair } from "../data/corpus.ts";
import { defaultDataDir } from "../data/paths.ts";
import { corpusBleu } from "../metrics/bleu.ts";
import { isEncoderDecoder, type AnyModel, type EncoderDecoderModel } from "../models/index.ts";
import type { OptionTable } from "../options.ts";
import type { BpeTokenizer } from "../tokenizer/bpe.ts";
import type { TrainConfig } from "../train/config.ts";
import { crossEntropySums, type PreparedTask, type Task, type TaskData, type TaskHooks } from "./task.ts";

export const TRANSLATION_OPTIONS: OptionTable = {
  src: { spec: { kind: "string", nonEmpty: true }, default: "de", help: "source language (file suffix)" },
  tgt: { spec: { kind: "string", nonEmpty: true }, default: "en", help: "target language (file suffix)" },
  data: { spec: { kind: "string" }, default: "", help: "folder with <split>.<lang> files (default: <data dir>/multi30k)", resumable: true },
  trainSplit: { spec: { kind: "string", nonEmpty: true }, default: "train", help: "training split name" },
  validSplit: { spec: { kind: "string", nonEmpty: true }, default: "valid", help: "validation split name", resumable: true },
  tokenizer: { spec: { kind: "string" }, default: "", help: "use this tokenizer.json instead of learning one" },
  vocabSize: { spec: { kind: "int", min: 300 }, default: 8000, help: "joint BPE vocabulary size" },
  maxSentenceTokens: { spec: { kind: "int", min: 1 }, default: 100, help: "drop training pairs with a longer side (BPE tokens)" },
  labelSmoothing: { spec: { kind: "number", min: 0, max: 0.99 }, default: 0.1, help: "label smoothing" },
  validBleuLimit: { spec: { kind: "int", min: 0 }, default: 0, help: "BLEU on the first N validation sentences (0: all)", resumable: true },
  maxLenA: { spec: { kind: "number", min: 0 }, default: 1.2, help: "decoding: max output length = a·srcLen + b", resumable: true },
  maxLenB: { spec: { kind: "int", min: 1 }, default: 10, help: "decoding: the b above", resumable: true },
  beam: { spec: { kind: "int", min: 1, max: 1000 }, default: 5, help: "beam size saved with the model", resumable: true },
  lengthPenalty: { spec: { kind: "number", min: 0 }, default: 1, help: "beam length penalty saved with the model", resumable: true },
};

export const sha256 = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex");

export interface CorpusFiles {
  trainSrc: string;
  trainTgt: string;
  validSrc: string;
  validTgt: string;
}

export function corpusFiles(c: TrainConfig): CorpusFiles {
  const dir = c.data ? resolve(c.data as string) : join(defaultDataDir(), "multi30k");
  const f = (split: unknown, lang: unknown) => join(dir, `${split}.${lang}`);
  const files = { trainSrc: f(c.trainSplit, c.src), trainTgt: f(c.trainSplit, c.tgt), validSrc: f(c.validSplit, c.src), validTgt: f(c.validSplit, c.tgt) };
  const missing = Object.values(files).filter((p) => !existsSync(p));
  if (missing.length) {
    throw new Error(`corpus file${missing.length > 1 ? "s" : ""} not found: ${missing.join(", ")}\n(\`data\` names the folder holding ${c.trainSplit}.${c.src}, ${c.trainSplit}.${c.tgt}, ${c.validSplit}.${c.src} and ${c.validSplit}.${c.tgt})`);
  }
  return files;
}

// A parallel corpus read and checked (aligned, non-empty), with its fingerprint; shared by the
// tasks that train on one (translation, nat).
export interface ParallelCorpus {
  train: TextPair[];
  valid: TextPair[];
  fingerprint: string;
  tokenizerLines(): string[];
}

export function readParallelCorpus(c: TrainConfig): ParallelCorpus {
  const files = corpusFiles(c);
  const train = readParallel(files.trainSrc, files.trainTgt);
  const valid = readParallel(files.validSrc, files.validTgt);
  if (train.length === 0) throw new Error(`the training corpus ${files.trainSrc} is empty`);
  if (valid.length === 0) throw new Error(`the validation corpus ${files.validSrc} is empty`);
  const fingerprint = sha256(Buffer.concat([readFileSync(files.trainSrc), Buffer.from([0]), readFileSync(files.trainTgt)]));
  return {
    train, valid, fingerprint,
    tokenizerLines: () => {
      const lines: string[] = [];
      for (const p of train) lines.push(p.src, p.tgt);
      return lines;
    },
  };
}

// The encoded pairs a run trains on: training pairs with both sides within `maxSentenceTokens`
// (and non-empty); every validation pair (validPairsThatFit() picks those the loss scores).
// Also what interop/pytorch/export-data.ts writes, so a PyTorch run sees the same sentences.
export function encodeParallel(tok: BpeTokenizer, c: TrainConfig, trainText: TextPair[], validText: TextPair[]): { train: TokenPair[]; valid: TokenPair[]; dropped: number } {
  const enc = (s: string) => tok.encode(s);
  const all = encodePairs(trainText, enc);
  const maxSentenceTokens = c.maxSentenceTokens as number;
  const train = filterByLength(all, { maxLen: maxSentenceTokens });
  if (train.length === 0) throw new Error(`no training pair is within \`maxSentenceTokens\` ${maxSentenceTokens}`);
  return { train, valid: encodePairs(validText, enc), dropped: all.length - train.length };
}

// Validation pairs that fit the positions and a batch (either side ≤ min(maxLen, maxTokens) − 1,
// empty sides allowed); the others are left out of the loss only.
export function validPairsThatFit(pairs: TokenPair[], c: TrainConfig): TokenPair[] {
  const fit = Math.min((c.maxLen as number) - 1, c.maxTokens - 1);
  const kept = filterByLength(pairs, { maxLen: fit, minLen: 0 });
  if (kept.length === 0) throw new Error(`no validation pair fits \`maxLen\` ${c.maxLen} / \`maxTokens\` ${c.maxTokens}`);
  return kept;
}

// Encoded pairs in token-budget batches.
export function parallelBatches(tok: BpeTokenizer, c: TrainConfig, trainText: TextPair[], validText: TextPair[]): { train: Batcher; valid: Batch[]; kept: number; dropped: number } {
  const pairs = encodeParallel(tok, c, trainText, validText);
  const validPairs = validPairsThatFit(pairs.valid, c);
  const ids = { padId: tok.padId, bosId: tok.bosId, eosId: tok.eosId };
  return {
    train: new Batcher(pairs.train, { maxTokens: c.maxTokens, seed: c.seed, ...ids }),
    valid: [...new Batcher(validPairs, { maxTokens: c.maxTokens, shuffle: false, ...ids }).epochBatches()],
    kept: pairs.train.length, dropped: pairs.dropped,
  };
}

function readData(c: TrainConfig): TaskData {
  const corpus = readParallelCorpus(c);
  return { fingerprint: corpus.fingerprint, tokenizerLines: corpus.tokenizerLines, prepare: (tok, cfg) => prepare(tok, cfg, corpus.train, corpus.valid) };
}

function prepare(tok: BpeTokenizer, c: TrainConfig, trainText: TextPair[], validText: TextPair[]): PreparedTask<Batch> {
  const { train, valid, kept, dropped } = parallelBatches(tok, c, trainText, validText);
  const ls = c.labelSmoothing as number;
  const inputs = (m: AnyModel, b: Batch) => {
    const backend = m.parameters()[0].backend;
    return {
      src: tensor(b.src, { dtype: "int32", shape: b.srcShape, backend }),
      tgtIn: tensor(b.tgtIn, { dtype: "int32", shape: b.tgtShape, backend }),
      tgtOut: tensor(b.tgtOut, { dtype: "int32", shape: b.tgtShape, backend }),
    };
  };
  const logitsOf = (m: AnyModel, b: Batch): { logits: Tensor; tgtOut: Tensor } => {
    const { src, tgtIn, tgtOut } = inputs(m, b);
    return { logits: encoderDecoder(m).forward(src, tgtIn), tgtOut }; // [B, T, V]
  };
  return {
    train,
    valid,
    describe: `${kept} training pairs (${dropped} dropped)`,
    tokens: (b) => b.numTokens,
    srcTokens: (b) => b.srcLengths.reduce((s, n) => s + n, 0),
    loss: (m, b) => {
      const { logits, tgtOut } = logitsOf(m, b);
      return crossEntropy(logits, tgtOut, { ignoreIndex: b.padId, labelSmoothing: ls });
    },
    validSums: (m, b) => {
      const { logits, tgtOut } = logitsOf(m, b);
      return crossEntropySums(logits, tgtOut, { ignoreIndex: b.padId, labelSmoothing: ls });
    },
    validExtra: async (m, hooks: TaskHooks) => {
      if (!hooks.translate) return { bleu: null, bleuSentences: 0 };
      const limit = c.validBleuLimit as number;
      const sub = limit > 0 ? validText.slice(0, limit) : validText;
      const hyps = await hooks.translate({ model: m, tokenizer: tok }, sub.map((p) => p.src), { maxLenA: c.maxLenA as number, maxLenB: c.maxLenB as number });
      return { bleu: corpusBleu(hyps, [sub.map((p) => p.tgt)]).score, bleuSentences: sub.length };
    },
    exportInfo: () => ({
      src: c.src as string, tgt: c.tgt as string,
      decoding: { maxLenA: c.maxLenA as number, maxLenB: c.maxLenB as number, beam: c.beam as number, lengthPenalty: c.lengthPenalty as number },
    }),
  };
}

// The relations every task on a parallel corpus checks.
export function parallelProblems(c: TrainConfig): string[] {
  const p: string[] = [];
  if (c.src === c.tgt) p.push(`\`src\` and \`tgt\` must differ, both are "${c.src}"`);
  const mst = c.maxSentenceTokens as number;
  // A target of n tokens takes n + 1 positions (bos … / … eos) and n + 1 padded batch slots.
  if (typeof c.maxLen === "number" && mst + 1 > c.maxLen) p.push(`\`maxSentenceTokens\` ${mst} needs \`maxLen\` ≥ ${mst + 1}, got ${c.maxLen}`);
  if (mst + 1 > c.maxTokens) p.push(`\`maxSentenceTokens\` ${mst} needs \`maxTokens\` ≥ ${mst + 1}, got ${c.maxTokens}`);
  return p;
}

function encoderDecoder(m: AnyModel): EncoderDecoderModel {
  if (!isEncoderDecoder(m)) throw new Error(`translation needs an encoder-decoder model, got a ${m.family} model`);
  return m;
}

export const translationTask: Task = {
  name: "translation",
  summary: "translate with an encoder-decoder model trained on a parallel corpus (BLEU on validation)",
  family: "encoder-decoder",
  defaultModel: "transformer",
  options: TRANSLATION_OPTIONS,
  check: parallelProblems,
  readData,
};
