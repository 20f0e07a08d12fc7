// Everything a run needs before its first step, checked in an order that refuses bad input early:
// flags against the checkpoint, corpus files, backend, corpus alignment and fingerprint, and the
// vocabulary. Nothing in the run folder is written until all of it has passed.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
// core/index.ts, not core/backend.ts: importing it registers the default (cpu) backend.
import { getBackend, registeredBackends, setBackend, type Backend } from "../../core/index.ts";
import { defaultDataDir, projectRoot } from "../data/paths.ts";
import { encodePairs, filterByLength, readParallel, type TextPair, type TokenPair } from "../data/corpus.ts";
import { BpeTokenizer } from "../tokenizer/bpe.ts";
import { checkConfig, DEFAULT_CONFIG, resumeConflicts, type TrainConfig } from "./config.ts";
import { readCheckpointHeader, type CheckpointState } from "./checkpoint.ts";

export interface RunFiles {
  dir: string;
  checkpoint: string;
  best: string;
  tokenizer: string;
  config: string;
  log: string;
  plot: string;
  model: string;
}

export function runFiles(out: string): RunFiles {
  const dir = resolve(out);
  return {
    dir,
    checkpoint: join(dir, "checkpoint.safetensors"),
    best: join(dir, "best.safetensors"),
    tokenizer: join(dir, "tokenizer.json"),
    config: join(dir, "config.json"),
    log: join(dir, "log.jsonl"),
    plot: join(dir, "loss.svg"),
    model: join(dir, "model"),
  };
}

export const sha256 = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex");

// The config of this run: defaults < overrides for a fresh run; checkpoint < overrides on
// --resume, where only `resumable` keys may differ from what the checkpoint was trained with.
export function resolveConfig(overrides: Partial<TrainConfig>, resume: boolean): { config: TrainConfig; files: RunFiles; saved: CheckpointState | null; savedTokenizerJson: string | null } {
  if (!overrides.out) throw new Error("hasten train: --out is required (the run folder for checkpoints, log and model)");
  const files = runFiles(overrides.out);
  const hasCheckpoint = existsSync(files.checkpoint);
  if (!resume) {
    if (hasCheckpoint) {
      const { state } = readCheckpointHeader(files.checkpoint);
      throw new Error(`hasten train: ${files.dir} already holds a checkpoint at step ${state.step}; pass --resume to continue it, or choose another --out`);
    }
    return { config: checkConfig({ ...DEFAULT_CONFIG, ...overrides }), files, saved: null, savedTokenizerJson: null };
  }
  if (!hasCheckpoint) throw new Error(`hasten train: --resume: no checkpoint to resume at ${files.checkpoint}`);
  const { state, tokenizerJson } = readCheckpointHeader(files.checkpoint);
  const conflicts = resumeConflicts(state.config, overrides);
  if (conflicts.length) {
    throw new Error(`hasten train: --resume: these settings differ from the checkpoint's (a resumed run must train the same thing):\n  ${conflicts.join("\n  ")}\nstart a new run with another --out to change them`);
  }
  return { config: checkConfig({ ...DEFAULT_CONFIG, ...state.config, ...overrides }), files, saved: state, savedTokenizerJson: tokenizerJson };
}

export interface CorpusFiles {
  trainSrc: string;
  trainTgt: string;
  validSrc: string;
  validTgt: string;
}

export function corpusFiles(c: TrainConfig): CorpusFiles {
  const dir = c.data ? resolve(c.data) : join(defaultDataDir(), "multi30k");
  const f = (split: string, lang: string) => join(dir, `${split}.${lang}`);
  const files = { trainSrc: f(c.trainSplit, c.src), trainTgt: f(c.trainSplit, c.tgt), validSrc: f(c.validSplit, c.src), validTgt: f(c.validSplit, c.tgt) };
  const missing = Object.values(files).filter((p) => !existsSync(p));
  if (missing.length) {
    throw new Error(`hasten train: corpus file${missing.length > 1 ? "s" : ""} not found: ${missing.join(", ")}\n(--data names the folder holding ${c.trainSplit}.${c.src}, ${c.trainSplit}.${c.tgt}, ${c.validSplit}.${c.src} and ${c.validSplit}.${c.tgt})`);
  }
  return files;
}

// Backends register themselves when their module is imported (core/backends/<name>/register.ts);
// the default one (cpu) is always there.
export async function selectBackend(name: string, threads: number): Promise<Backend> {
  const wanted = name || getBackend().name;
  const dir = join(projectRoot, "core", "backends");
  const loadable = existsSync(dir) ? readdirSync(dir).filter((d) => existsSync(join(dir, d, "register.ts"))) : [];
  if (!registeredBackends().includes(wanted) && /^[a-z0-9-]+$/.test(wanted) && loadable.includes(wanted)) {
    await import(pathToFileURL(join(dir, wanted, "register.ts")).href);
  }
  if (!registeredBackends().includes(wanted)) {
    const known = [...new Set([...registeredBackends(), ...loadable])];
    throw new Error(`hasten train: --backend: unknown backend "${wanted}"; available: ${known.join(", ")}`);
  }
  return await setBackend(wanted, threads > 0 ? { threads } : undefined);
}

export interface Corpora {
  train: TextPair[];
  valid: TextPair[];
  trainDataSha256: string;
}

export function readCorpora(files: CorpusFiles, saved: CheckpointState | null): Corpora {
  const train = readParallel(files.trainSrc, files.trainTgt);
  const valid = readParallel(files.validSrc, files.validTgt);
  if (train.length === 0) throw new Error(`hasten train: the training corpus ${files.trainSrc} is empty`);
  if (valid.length === 0) throw new Error(`hasten train: the validation corpus ${files.validSrc} is empty`);
  const trainDataSha256 = sha256(Buffer.concat([readFileSync(files.trainSrc), Buffer.from([0]), readFileSync(files.trainTgt)]));
  if (saved && saved.trainDataSha256 !== trainDataSha256) {
    throw new Error(`hasten train: --resume: the training data ${files.trainSrc}, ${files.trainTgt} differs from the data the checkpoint was trained on (sha256 ${trainDataSha256.slice(0, 12)}… vs ${saved.trainDataSha256.slice(0, 12)}…)`);
  }
  return { train, valid, trainDataSha256 };
}

export interface TokenizerChoice {
  tokenizer: BpeTokenizer;
  json: string;
  sha256: string;
  source: "checkpoint" | "file" | "cached" | "learned";
}

function loadTokenizer(path: string): { tokenizer: BpeTokenizer; json: string } {
  const tokenizer = BpeTokenizer.load(path);
  return { tokenizer, json: JSON.stringify(tokenizer.toJSON()) };
}

// The vocabulary: the checkpoint's on --resume (the run folder's tokenizer.json must agree), a
// given --tokenizer file, the cached one from an earlier start of this run, or a new joint BPE.
export function chooseTokenizer(c: TrainConfig, files: RunFiles, corpora: Corpora, savedTokenizerJson: string | null, saved: CheckpointState | null): TokenizerChoice {
  if (saved && savedTokenizerJson !== null) {
    const tokenizer = BpeTokenizer.fromJSON(JSON.parse(savedTokenizerJson));
    const json = JSON.stringify(tokenizer.toJSON());
    if (sha256(json) !== saved.tokenizerSha256) throw new Error(`hasten train: --resume: the checkpoint's tokenizer does not match its recorded sha256; the checkpoint is damaged`);
    if (existsSync(files.tokenizer)) {
      const onDisk = loadTokenizer(files.tokenizer);
      if (onDisk.json !== json) {
        throw new Error(`hasten train: --resume: ${files.tokenizer} (vocabulary ${onDisk.tokenizer.vocabSize}) does not match the checkpoint's vocabulary (${tokenizer.vocabSize}); restore the run's own tokenizer.json or delete it to use the checkpoint's`);
      }
    }
    return { tokenizer, json, sha256: sha256(json), source: "checkpoint" };
  }
  if (c.tokenizer) {
    if (!existsSync(c.tokenizer)) throw new Error(`hasten train: --tokenizer: file not found: ${c.tokenizer}`);
    const t = loadTokenizer(c.tokenizer);
    return { ...t, sha256: sha256(t.json), source: "file" };
  }
  // Cached: tokenizer.json of an earlier start of this run, learned from the same data and size.
  if (existsSync(files.tokenizer) && existsSync(files.config)) {
    try {
      const rec = JSON.parse(readFileSync(files.config, "utf8")) as { config?: TrainConfig; trainDataSha256?: string; tokenizerSha256?: string };
      const t = loadTokenizer(files.tokenizer);
      if (rec.config?.vocabSize === c.vocabSize && rec.trainDataSha256 === corpora.trainDataSha256 && rec.tokenizerSha256 === sha256(t.json)) {
        return { ...t, sha256: sha256(t.json), source: "cached" };
      }
    } catch {
      // an unreadable cache is not an error: learn the vocabulary again
    }
  }
  const lines: string[] = [];
  for (const p of corpora.train) lines.push(p.src, p.tgt);
  const tokenizer = BpeTokenizer.train(lines, { vocabSize: c.vocabSize });
  const json = JSON.stringify(tokenizer.toJSON());
  return { tokenizer, json, sha256: sha256(json), source: "learned" };
}

export interface Encoded {
  train: TokenPair[];
  dropped: number; // training pairs over maxSentenceTokens or with an empty side
  valid: TokenPair[]; // those that fit the model, for the validation loss
  validText: TextPair[]; // all of them, for BLEU
}

export function encodeCorpora(c: TrainConfig, tok: BpeTokenizer, corpora: Corpora): Encoded {
  const enc = (s: string) => tok.encode(s);
  const all = encodePairs(corpora.train, enc);
  const train = filterByLength(all, { maxLen: c.maxSentenceTokens });
  if (train.length === 0) throw new Error(`hasten train: no training pair is within --max-sentence-tokens ${c.maxSentenceTokens}`);
  // Validation loss needs every pair to fit the positions and one batch; longer ones are only
  // left out of the loss (BLEU still translates them).
  const fit = Math.min(c.maxLen - 1, c.maxTokens - 1);
  const valid = filterByLength(encodePairs(corpora.valid, enc), { maxLen: fit, minLen: 0 });
  if (valid.length === 0) throw new Error(`hasten train: no validation pair fits --max-len ${c.maxLen} / --max-tokens ${c.maxTokens}`);
  return { train, dropped: all.length - train.length, valid, validText: corpora.valid };
}
