// A trained translation model on disk: one directory a fresh clone can load with no other input.
//
//   DIR/config.json        {format, version, task, src, tgt, model: TransformerConfig, decoding, training?}
//   DIR/tokenizer.json     the joint BPE vocabulary (nn/tokenizer)
//   DIR/model.safetensors  the parameters, by their stateDict() names
//
// Saving never leaves half a directory behind: everything is written into a hidden sibling
// directory, which is then renamed into place (rename is atomic within one filesystem). Replacing
// an existing model takes two renames (old aside, new in); a crash between them leaves no DIR and
// the old model intact in its hidden ".DIR.old-*" sibling, never a mix of the two. Files in an
// existing DIR that are not ours (a README, evaluation notes) are carried over.
import { randomBytes } from "node:crypto";
import { closeSync, cpSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import "../../core/index.ts"; // a fresh process that only loads a model still gets the cpu backend
import { writeFileAtomic } from "../../core/atomic-write.ts";
import { saveSafetensors } from "../../core/serialize.ts";
import { BpeTokenizer } from "../tokenizer/bpe.ts";
import { Transformer, transformerConfig, type TransformerConfig } from "./transformer.ts";

export interface DecodingDefaults {
  // Longest output (tokens, eos excluded) for a source of n tokens: floor(maxLenA · n + maxLenB),
  // capped by the model's maxLen − 1.
  maxLenA: number;
  maxLenB: number;
  beam: number;
  // Exponent α of the length normalisation score / len^α (decoding/beam.ts).
  lengthPenalty: number;
}

export interface ModelDirConfig {
  task: "translation";
  src: string; // source language, e.g. "de"
  tgt: string; // target language, e.g. "en"
  model: TransformerConfig;
  decoding: DecodingDefaults;
  training?: Record<string, unknown>; // provenance: command, steps, time, data
}

export interface ModelDir {
  model: Transformer;
  tokenizer: BpeTokenizer;
  config: ModelDirConfig;
}

export const MODEL_DIR_FORMAT = "hasten-model-dir";
export const MODEL_DIR_VERSION = 1;
export const MODEL_DIR_FILES = { config: "config.json", tokenizer: "tokenizer.json", weights: "model.safetensors" } as const;
const OURS = new Set<string>(Object.values(MODEL_DIR_FILES));

export async function saveModelDir(dir: string, m: ModelDir, opts: { floatDtype?: "F32" | "F16" } = {}): Promise<void> {
  const target = resolve(dir);
  const config = checkConfig(m.config, "saveModelDir");
  checkAgreement(config, m.tokenizer, "saveModelDir");
  const differ = (Object.keys(config.model) as (keyof TransformerConfig)[]).filter((k) => m.model.config[k] !== config.model[k]);
  if (differ.length > 0) {
    throw new Error(`saveModelDir: config.model differs from the model's own config in ${differ.map((k) => `${k} (${show(config.model[k])} vs ${show(m.model.config[k])})`).join(", ")}`);
  }
  const old = existsSync(target) ? checkReplaceable(target) : undefined;
  mkdirSync(dirname(target), { recursive: true });
  const tag = `${process.pid}-${randomBytes(6).toString("hex")}`;
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${tag}`);
  mkdirSync(tmp);
  try {
    // Weights first: they are read from the backend (async) and are the likeliest to fail.
    await saveSafetensors(join(tmp, MODEL_DIR_FILES.weights), m.model.stateDict(), {
      floatDtype: opts.floatDtype ?? "F32",
      metadata: { format: MODEL_DIR_FORMAT, src: config.src, tgt: config.tgt },
    });
    writeFileAtomic(join(tmp, MODEL_DIR_FILES.tokenizer), JSON.stringify(m.tokenizer.toJSON()));
    writeFileAtomic(join(tmp, MODEL_DIR_FILES.config), JSON.stringify({ format: MODEL_DIR_FORMAT, version: MODEL_DIR_VERSION, ...config }, null, 2) + "\n");
    for (const name of old ?? []) if (!OURS.has(name)) cpSync(join(target, name), join(tmp, name), { recursive: true });
    syncDir(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (old === undefined) {
    renameSync(tmp, target);
  } else {
    const aside = join(dirname(target), `.${basename(target)}.old-${tag}`);
    renameSync(target, aside);
    try {
      renameSync(tmp, target);
    } catch (e) {
      renameSync(aside, target); // put the old model back; the new one stays in tmp for inspection
      throw e;
    }
    rmSync(aside, { recursive: true, force: true });
  }
  syncDir(dirname(target));
}

// Loads, validates and returns the model in eval mode (on the current backend).
export function loadModelDir(dir: string): ModelDir {
  const root = resolve(dir);
  if (!existsSync(root)) throw new Error(`loadModelDir: no model directory at ${root}`);
  if (!statSync(root).isDirectory()) throw new Error(`loadModelDir: ${root} is a file, expected a model directory (${Object.values(MODEL_DIR_FILES).join(", ")})`);
  const path = (name: string) => {
    const p = join(root, name);
    if (!existsSync(p)) throw new Error(`loadModelDir: ${p} is missing (a model directory holds ${Object.values(MODEL_DIR_FILES).join(", ")})`);
    return p;
  };
  const configPath = path(MODEL_DIR_FILES.config);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(configPath, "utf8"));
  } catch (e) {
    throw new Error(`loadModelDir: ${configPath} is not valid JSON: ${(e as Error).message}`);
  }
  const config = parseConfig(raw, configPath);
  const tokenizer = BpeTokenizer.load(path(MODEL_DIR_FILES.tokenizer));
  checkAgreement(config, tokenizer, `loadModelDir: ${root}`);
  const weights = path(MODEL_DIR_FILES.weights);
  const model = new Transformer(config.model);
  try {
    model.load(weights);
  } catch (e) {
    model.dispose();
    throw new Error(`loadModelDir: ${(e as Error).message}`);
  }
  return { model: model.eval(), tokenizer, config };
}

// ---- validation ----

function fail(where: string, what: string): never {
  throw new Error(`${where}: ${what}`);
}

const show = (v: unknown) => (v === undefined ? "nothing" : JSON.stringify(v));

// The config file: format/version stamp, then the same checks as saving.
function parseConfig(raw: unknown, where: string): ModelDirConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(where, `expected a JSON object, got ${show(raw)}`);
  const { format, version, ...rest } = raw as Record<string, unknown>;
  if (format !== MODEL_DIR_FORMAT) fail(where, `expected format "${MODEL_DIR_FORMAT}", got ${show(format)}`);
  if (version !== MODEL_DIR_VERSION) fail(where, `expected version ${MODEL_DIR_VERSION}, got ${show(version)}`);
  return checkConfig(rest as unknown as ModelDirConfig, where);
}

// Every field present and of the right kind; the model config is checked by transformerConfig,
// and must name exactly the fields a TransformerConfig has (a typo would otherwise be ignored).
function checkConfig(c: ModelDirConfig, where: string): ModelDirConfig {
  if (c.task !== "translation") fail(where, `task must be "translation", got ${show(c.task)}`);
  for (const k of ["src", "tgt"] as const) if (typeof c[k] !== "string" || c[k] === "") fail(where, `${k} must be a language code such as "de", got ${show(c[k])}`);
  if (typeof c.model !== "object" || c.model === null) fail(where, `model must be a TransformerConfig object, got ${show(c.model)}`);
  const want = Object.keys(transformerConfig({ vocab: 1, dModel: 1, heads: 1 })).sort();
  const got = Object.keys(c.model).sort();
  const missing = want.filter((k) => !got.includes(k)), extra = got.filter((k) => !want.includes(k));
  if (missing.length || extra.length) {
    fail(where, `model config: ${[missing.length ? `missing ${missing.join(", ")}` : "", extra.length ? `unknown ${extra.join(", ")}` : ""].filter(Boolean).join("; ")}`);
  }
  let model: TransformerConfig;
  try {
    model = transformerConfig(c.model);
  } catch (e) {
    fail(where, `model config: ${(e as Error).message}`);
  }
  const d = c.decoding as DecodingDefaults | undefined;
  if (typeof d !== "object" || d === null) fail(where, `decoding must be an object {maxLenA, maxLenB, beam, lengthPenalty}, got ${show(d)}`);
  const nonNeg = (k: keyof DecodingDefaults) => {
    if (typeof d[k] !== "number" || !Number.isFinite(d[k]) || d[k] < 0) fail(where, `decoding.${k} must be a finite number >= 0, got ${show(d[k])}`);
  };
  nonNeg("maxLenA");
  nonNeg("maxLenB");
  nonNeg("lengthPenalty");
  if (!Number.isInteger(d.beam) || d.beam < 1) fail(where, `decoding.beam must be an integer >= 1, got ${show(d.beam)}`);
  if (c.training !== undefined && (typeof c.training !== "object" || c.training === null)) fail(where, `training must be an object, got ${show(c.training)}`);
  const out: ModelDirConfig = {
    task: "translation", src: c.src, tgt: c.tgt, model,
    decoding: { maxLenA: d.maxLenA, maxLenB: d.maxLenB, beam: d.beam, lengthPenalty: d.lengthPenalty },
  };
  if (c.training !== undefined) out.training = c.training;
  return out;
}

// The tokenizer's ids must be the model's ids: same vocabulary size on both sides, same pad id.
function checkAgreement(c: ModelDirConfig, tok: BpeTokenizer, where: string): void {
  const { srcVocab, tgtVocab, padId } = c.model;
  if (srcVocab !== tok.vocabSize || tgtVocab !== tok.vocabSize) {
    fail(where, `the tokenizer has ${tok.vocabSize} tokens but the model expects srcVocab ${srcVocab} and tgtVocab ${tgtVocab}`);
  }
  if (padId !== tok.padId) fail(where, `the model's padId is ${padId} but the tokenizer's is ${tok.padId}`);
}

// An existing target may be replaced only when it looks like a model directory (or is empty):
// a mistyped path must never delete an unrelated folder. Returns its entries.
function checkReplaceable(target: string): string[] {
  if (!statSync(target).isDirectory()) throw new Error(`saveModelDir: ${target} exists and is not a directory`);
  const entries = readdirSync(target);
  if (entries.length > 0 && !entries.includes(MODEL_DIR_FILES.config)) {
    throw new Error(`saveModelDir: refusing to replace ${target}: it is not empty and holds no ${MODEL_DIR_FILES.config}, so it is not a model directory`);
  }
  return entries;
}

// fsync a directory so that the entries just created in it survive a power loss (best effort).
function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // not supported on every platform; the files themselves were fsynced
  }
}
