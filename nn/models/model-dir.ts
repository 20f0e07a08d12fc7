// A trained model on disk: one directory a fresh clone can load with no other input.
//
//   DIR/config.json        {format, version: 2, kind, config, task, src?, tgt?, decoding, training?}
//   DIR/tokenizer.json     the BPE vocabulary (nn/tokenizer)
//   DIR/model.safetensors  the parameters, by their stateDict() names
//
// `kind` names a registered model kind (nn/models/registry.ts) and `config` is that kind's config;
// `task` says what the model was trained for, and `decoding` holds that task's decoding defaults
// (translation: maxLenA, maxLenB, beam, lengthPenalty). Version 1 directories (translation only,
// the Transformer's config under `model`) still load, as kind "transformer".
//
// Loading trusts nothing: the config is checked against the kind's bounds, the parameter count
// it implies against the weight file's shapes, before anything is allocated; the weights must be
// finite, and a checksum Hasten wrote is verified by the safetensors reader.
//
// Saving never leaves half a directory behind: everything is written into a hidden sibling
// directory, which is then renamed into place (rename is atomic within one filesystem). Replacing
// an existing model takes two renames (old aside, new in); a crash between them leaves no DIR and
// the old model intact in its hidden ".DIR.old-*" sibling, never a mix of the two. Files in an
// existing DIR that are not ours (a README, evaluation notes) are carried over.
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { firstNonFinite, fromRaw, getBackend, readSafetensors, saveSafetensors, syncDirectory, writeFileAtomic, type RawTensor, type Tensor } from "../../core/index.ts";
import { BpeTokenizer } from "../tokenizer/bpe.ts";
import { getModelKind, type AnyModel } from "./kinds.ts";
import "./registry.ts";

export type DecodingDefaults = Record<string, number | string | boolean>;

export interface ModelDirConfig {
  kind: string; // a registered model kind
  config: object; // that kind's config
  task: string; // what it was trained for: "translation", "lm", …
  src?: string; // translation: source language, e.g. "de"
  tgt?: string;
  decoding: DecodingDefaults;
  training?: Record<string, unknown>; // provenance: command, steps, time, data
}

export interface ModelDir<M extends AnyModel = AnyModel> {
  model: M;
  tokenizer: BpeTokenizer;
  config: ModelDirConfig;
}

export const MODEL_DIR_FORMAT = "hasten-model-dir";
export const MODEL_DIR_VERSION = 2;
export const MODEL_DIR_FILES = { config: "config.json", tokenizer: "tokenizer.json", weights: "model.safetensors" } as const;
const OURS = new Set<string>(Object.values(MODEL_DIR_FILES));

export async function saveModelDir(dir: string, m: ModelDir, opts: { floatDtype?: "F32" | "F16" } = {}): Promise<void> {
  const target = resolve(dir);
  const config = checkDirConfig(m.config, "saveModelDir");
  const kind = getModelKind(config.kind);
  if (m.model.family !== kind.family) fail("saveModelDir", `the model is ${m.model.family} but kind "${kind.name}" is ${kind.family}`);
  const own = m.model.config as unknown as Record<string, unknown>, want = config.config as Record<string, unknown>;
  const differ = Object.keys(want).filter((k) => own[k] !== want[k] && !(own[k] === undefined && want[k] === null));
  if (differ.length > 0) {
    fail("saveModelDir", `config differs from the model's own config in ${differ.map((k) => `${k} (${show(want[k])} vs ${show(own[k])})`).join(", ")}`);
  }
  checkAgreement(config, m.tokenizer, "saveModelDir");
  const old = existsSync(target) ? checkReplaceable(target) : undefined;
  mkdirSync(dirname(target), { recursive: true });
  const tag = `${process.pid}-${randomBytes(6).toString("hex")}`;
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${tag}`);
  mkdirSync(tmp);
  try {
    // Weights first: they are read from the backend (async) and are the likeliest to fail.
    await saveSafetensors(join(tmp, MODEL_DIR_FILES.weights), m.model.stateDict(), {
      floatDtype: opts.floatDtype ?? "F32",
      metadata: { format: MODEL_DIR_FORMAT, kind: config.kind },
    });
    writeFileAtomic(join(tmp, MODEL_DIR_FILES.tokenizer), JSON.stringify(m.tokenizer.toJSON()));
    const json = { format: MODEL_DIR_FORMAT, version: MODEL_DIR_VERSION, ...config, config: jsonConfig(config.config) };
    writeFileAtomic(join(tmp, MODEL_DIR_FILES.config), JSON.stringify(json, null, 2) + "\n");
    for (const name of old ?? []) if (!OURS.has(name)) cpSync(join(target, name), join(tmp, name), { recursive: true });
    syncDirectory(tmp);
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
  syncDirectory(dirname(target));
}

// The config.json of a model directory, checked (format, version, kind, the kind's config).
export function readModelDirConfig(dir: string): ModelDirConfig {
  const root = resolve(dir);
  const configPath = join(root, MODEL_DIR_FILES.config);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(configPath, "utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === "ENOENT" ? `loadModelDir: ${configPath} is missing (a model directory holds ${Object.values(MODEL_DIR_FILES).join(", ")})` : `loadModelDir: ${configPath} is not valid JSON: ${(e as Error).message}`);
  }
  return parseConfig(raw, configPath);
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
  path(MODEL_DIR_FILES.config);
  const config = readModelDirConfig(root);
  const kind = getModelKind(config.kind);
  const tokenizer = BpeTokenizer.load(path(MODEL_DIR_FILES.tokenizer));
  checkAgreement(config, tokenizer, `loadModelDir: ${root}`);
  const weightsPath = path(MODEL_DIR_FILES.weights);
  let tensors: Record<string, RawTensor>;
  try {
    tensors = readSafetensors(weightsPath).tensors;
  } catch (e) {
    throw new Error(`loadModelDir: ${(e as Error).message}`);
  }
  checkWeights(weightsPath, tensors, kind.numParameters(config.config));
  const model = kind.build(config.config);
  const backend = model.parameters()[0]?.backend ?? getBackend();
  const dict: Record<string, Tensor> = {};
  try {
    for (const [name, raw] of Object.entries(tensors)) dict[name] = fromRaw(raw, name, backend);
    model.loadStateDict(dict);
  } catch (e) {
    model.dispose();
    throw new Error(`loadModelDir: ${weightsPath}: ${(e as Error).message}`);
  } finally {
    for (const t of Object.values(dict)) t.dispose();
  }
  model.eval();
  return { model, tokenizer, config };
}

// ---- validation ----

function fail(where: string, what: string): never {
  throw new Error(`${where}: ${what}`);
}

const show = (v: unknown) => (v === undefined ? "nothing" : JSON.stringify(v));

// undefined fields (an LM without a window) become null, so that JSON keeps every field.
function jsonConfig(c: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c)) out[k] = v === undefined ? null : v;
  return out;
}

// Before building: the weights must hold exactly as many values as the config implies (a damaged
// config, e.g. 100,000 layers, is refused here instead of allocating gigabytes), and every float
// must be finite (flipped bytes in an unchecksummed file often make NaN or ±∞).
function checkWeights(path: string, tensors: Record<string, RawTensor>, expected: number): void {
  let total = 0;
  for (const raw of Object.values(tensors)) total += raw.shape.reduce((a, b) => a * b, 1);
  if (total !== expected) {
    fail("loadModelDir", `${path} holds ${total} values but the config implies ${expected} parameters; the config or the weights are damaged, or they belong to different models`);
  }
  for (const [name, raw] of Object.entries(tensors)) {
    const at = firstNonFiniteRaw(raw);
    if (at >= 0) fail("loadModelDir", `${path}: tensor ${name} holds a non-finite value at flat index ${at}; the weights are damaged`);
  }
}

// Index of the first NaN or ±∞ in a raw float tensor, read straight from its bytes (-1: none;
// integer tensors have none). F16 and BF16 encode NaN/∞ as an exponent field of all ones.
function firstNonFiniteRaw(raw: RawTensor): number {
  const b = raw.data;
  if (raw.dtype === "F32" || raw.dtype === "F64") {
    const bytes = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    return firstNonFinite(raw.dtype === "F32" ? new Float32Array(bytes) : new Float64Array(bytes));
  }
  if (raw.dtype !== "F16" && raw.dtype !== "BF16") return -1;
  const mask = raw.dtype === "F16" ? 0x7c00 : 0x7f80;
  for (let i = 0; 2 * i + 1 < b.length; i++) if (((b[2 * i] | (b[2 * i + 1] << 8)) & mask) === mask) return i;
  return -1;
}

function parseConfig(raw: unknown, where: string): ModelDirConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(where, `expected a JSON object, got ${show(raw)}`);
  const { format, version, ...rest } = raw as Record<string, unknown>;
  if (format !== MODEL_DIR_FORMAT) fail(where, `expected format "${MODEL_DIR_FORMAT}", got ${show(format)}`);
  if (version === 1) {
    // Version 1: translation Transformers, the config under "model".
    const { model, task, ...v1 } = rest;
    if (task !== "translation") fail(where, `version 1 directories hold translation models, got task ${show(task)}`);
    return checkDirConfig({ ...v1, kind: "transformer", config: model, task } as unknown as ModelDirConfig, where);
  }
  if (version !== MODEL_DIR_VERSION) fail(where, `expected version 1 or ${MODEL_DIR_VERSION}, got ${show(version)}`);
  return checkDirConfig(rest as unknown as ModelDirConfig, where);
}

// Every field present and of the right kind; the model config is checked by its kind.
function checkDirConfig(c: ModelDirConfig, where: string): ModelDirConfig {
  const known = ["kind", "config", "task", "src", "tgt", "decoding", "training"];
  const extra = Object.keys(c).filter((k) => !known.includes(k));
  if (extra.length) fail(where, `unknown field${extra.length > 1 ? "s" : ""} ${extra.join(", ")}`);
  if (typeof c.kind !== "string") fail(where, `kind must name a model kind, got ${show(c.kind)}`);
  let kind;
  try {
    kind = getModelKind(c.kind);
  } catch (e) {
    fail(where, (e as Error).message);
  }
  let config: object;
  try {
    config = kind.check(c.config);
  } catch (e) {
    fail(where, `config: ${(e as Error).message}`);
  }
  if (typeof c.task !== "string" || c.task === "") fail(where, `task must be a non-empty string, got ${show(c.task)}`);
  for (const k of ["src", "tgt"] as const) if (c[k] !== undefined && (typeof c[k] !== "string" || c[k] === "")) fail(where, `${k} must be a language code such as "de", got ${show(c[k])}`);
  if ((c.task === "translation" || c.task === "nat" || c.src !== undefined || c.tgt !== undefined) && (c.src === undefined || c.tgt === undefined)) fail(where, `a translation model needs src and tgt`);
  const d = c.decoding;
  if (typeof d !== "object" || d === null || Array.isArray(d)) fail(where, `decoding must be an object of settings, got ${show(d)}`);
  for (const [k, v] of Object.entries(d)) {
    if (typeof v === "number" && !(Number.isFinite(v) && v >= 0)) fail(where, `decoding.${k} must be a finite number >= 0, got ${show(v)}`);
    if (typeof v !== "number" && typeof v !== "string" && typeof v !== "boolean") fail(where, `decoding.${k} must be a number, a string or a boolean, got ${show(v)}`);
  }
  if (c.task === "translation") {
    for (const k of ["maxLenA", "maxLenB", "lengthPenalty"]) if (typeof d[k] !== "number") fail(where, `decoding.${k} must be a finite number >= 0, got ${show(d[k])}`);
    if (!Number.isInteger(d.beam) || (d.beam as number) < 1) fail(where, `decoding.beam must be an integer >= 1, got ${show(d.beam)}`);
  }
  if (c.training !== undefined && (typeof c.training !== "object" || c.training === null)) fail(where, `training must be an object, got ${show(c.training)}`);
  const out: ModelDirConfig = { kind: c.kind, config, task: c.task, decoding: { ...d } };
  if (c.src !== undefined) out.src = c.src;
  if (c.tgt !== undefined) out.tgt = c.tgt;
  if (c.training !== undefined) out.training = c.training;
  return out;
}

// The tokenizer's ids must be the model's ids: every vocabulary size, and the pad id.
function checkAgreement(c: ModelDirConfig, tok: BpeTokenizer, where: string): void {
  const need = getModelKind(c.kind).vocab(c.config);
  if (need.sizes.some((n) => n !== tok.vocabSize)) {
    fail(where, `the tokenizer has ${tok.vocabSize} tokens but the model expects vocabularies of ${need.sizes.join(" and ")}`);
  }
  if (need.padId !== undefined && need.padId !== tok.padId) fail(where, `the model's padId is ${need.padId} but the tokenizer's is ${tok.padId}`);
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
