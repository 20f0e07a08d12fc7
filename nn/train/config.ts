// The training configuration: one typed object with defaults, and a table that says, for every
// key, what values it accepts and whether it may change when a run is resumed.
//
// Flags (`--max-tokens 4096`), config files and checkpoints all go through checkValue() and
// checkConfig(), so a bad value is refused with the same message wherever it came from, before
// any data is read or any file is written.

export interface TrainConfig {
  task: "translation";
  src: string; // source language suffix of the corpus files (train.de)
  tgt: string;
  out: string; // the run folder: checkpoint, tokenizer, log, plot, exported model
  data: string; // folder holding <split>.<lang> files; "" = <data dir>/multi30k
  trainSplit: string;
  validSplit: string;
  tokenizer: string; // an existing tokenizer.json; "" = learn a joint BPE (cached in the run folder)
  vocabSize: number;
  maxSentenceTokens: number; // training pairs with a longer side (in BPE tokens) are dropped

  dModel: number;
  heads: number;
  ffn: number;
  encLayers: number;
  decLayers: number;
  dropout: number;
  attnDropout: number;
  activation: "relu" | "gelu";
  positions: "sinusoidal" | "learned";
  tieEmbeddings: boolean;
  maxLen: number; // longest sequence the position table covers

  maxTokens: number; // padded tokens per batch, B · max(S, T)
  lr: number; // peak learning rate, reached after `warmup` updates, then ∝ 1/√step
  warmup: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  labelSmoothing: number;
  clipNorm: number; // 0 = no clipping
  maxSteps: number; // 0 = no limit
  maxEpochs: number; // 0 = no limit
  seed: number;

  logEvery: number;
  evalEvery: number; // 0 = only at the end
  checkpointEvery: number; // 0 = only at the end and on Ctrl-C
  validBleuLimit: number; // translate the first N validation sentences for BLEU; 0 = all
  bestBy: "bleu" | "loss";
  export: "final" | "best";

  maxLenA: number; // decoding: output length ≤ maxLenA · srcLen + maxLenB
  maxLenB: number;
  beam: number;
  lengthPenalty: number;

  backend: string; // "" = the default backend
  threads: number; // 0 = the backend's default
  progress: "auto" | "bar" | "lines" | "none";
}

// A small Transformer that trains on a CPU in hours rather than days; Multi30k needs no more.
export const DEFAULT_CONFIG: Readonly<TrainConfig> = Object.freeze({
  task: "translation",
  src: "de",
  tgt: "en",
  out: "",
  data: "",
  trainSplit: "train",
  validSplit: "valid",
  tokenizer: "",
  vocabSize: 8000,
  maxSentenceTokens: 100,
  dModel: 256,
  heads: 4,
  ffn: 1024,
  encLayers: 3,
  decLayers: 3,
  dropout: 0.1,
  attnDropout: 0,
  activation: "relu",
  positions: "sinusoidal",
  tieEmbeddings: true,
  maxLen: 256,
  maxTokens: 4096,
  lr: 7e-4,
  warmup: 1000,
  beta1: 0.9,
  beta2: 0.98,
  eps: 1e-9,
  weightDecay: 1e-4,
  labelSmoothing: 0.1,
  clipNorm: 1,
  maxSteps: 20000,
  maxEpochs: 0,
  seed: 1,
  logEvery: 10,
  evalEvery: 1000,
  checkpointEvery: 1000,
  validBleuLimit: 0,
  bestBy: "bleu",
  export: "final",
  maxLenA: 1.2,
  maxLenB: 10,
  beam: 5,
  lengthPenalty: 1,
  backend: "",
  threads: 0,
  progress: "auto",
});

type Spec =
  | { kind: "int"; min: number; max?: number }
  | { kind: "number"; min: number; max?: number; above?: boolean } // above: min itself excluded
  | { kind: "string"; nonEmpty?: boolean }
  | { kind: "enum"; values: readonly string[] }
  | { kind: "bool" };

export interface KeySpec {
  spec: Spec;
  help: string;
  // May differ from the checkpoint's value on --resume (it does not change what is computed).
  resumable?: boolean;
}

// The compiler names any key of TrainConfig left out of this table.
export const CONFIG_KEYS: { readonly [K in keyof TrainConfig]: KeySpec } = {
  task: { spec: { kind: "enum", values: ["translation"] }, help: "what to train" },
  src: { spec: { kind: "string", nonEmpty: true }, help: "source language (file suffix)" },
  tgt: { spec: { kind: "string", nonEmpty: true }, help: "target language (file suffix)" },
  out: { spec: { kind: "string", nonEmpty: true }, help: "run folder (checkpoint, log, plot, model/)", resumable: true },
  data: { spec: { kind: "string" }, help: "folder with <split>.<lang> files (default: <data dir>/multi30k)", resumable: true },
  trainSplit: { spec: { kind: "string", nonEmpty: true }, help: "training split name" },
  validSplit: { spec: { kind: "string", nonEmpty: true }, help: "validation split name", resumable: true },
  tokenizer: { spec: { kind: "string" }, help: "use this tokenizer.json instead of learning one" },
  vocabSize: { spec: { kind: "int", min: 300 }, help: "joint BPE vocabulary size" },
  maxSentenceTokens: { spec: { kind: "int", min: 1 }, help: "drop training pairs with a longer side (BPE tokens)" },
  dModel: { spec: { kind: "int", min: 1 }, help: "model width" },
  heads: { spec: { kind: "int", min: 1 }, help: "attention heads" },
  ffn: { spec: { kind: "int", min: 1 }, help: "feed-forward width" },
  encLayers: { spec: { kind: "int", min: 0 }, help: "encoder layers" },
  decLayers: { spec: { kind: "int", min: 1 }, help: "decoder layers" },
  dropout: { spec: { kind: "number", min: 0, max: 0.99 }, help: "residual/embedding dropout" },
  attnDropout: { spec: { kind: "number", min: 0, max: 0.99 }, help: "attention-weight dropout" },
  activation: { spec: { kind: "enum", values: ["relu", "gelu"] }, help: "feed-forward activation" },
  positions: { spec: { kind: "enum", values: ["sinusoidal", "learned"] }, help: "position encoding" },
  tieEmbeddings: { spec: { kind: "bool" }, help: "share source, target and output embeddings" },
  maxLen: { spec: { kind: "int", min: 2 }, help: "longest sequence the positions cover" },
  maxTokens: { spec: { kind: "int", min: 2 }, help: "padded tokens per batch" },
  lr: { spec: { kind: "number", min: 0, above: true }, help: "peak learning rate" },
  warmup: { spec: { kind: "int", min: 0 }, help: "linear warm-up updates before 1/sqrt decay" },
  beta1: { spec: { kind: "number", min: 0, max: 0.999999 }, help: "Adam beta1" },
  beta2: { spec: { kind: "number", min: 0, max: 0.999999 }, help: "Adam beta2" },
  eps: { spec: { kind: "number", min: 0 }, help: "Adam epsilon" },
  weightDecay: { spec: { kind: "number", min: 0 }, help: "decoupled weight decay (AdamW)" },
  labelSmoothing: { spec: { kind: "number", min: 0, max: 0.99 }, help: "label smoothing" },
  clipNorm: { spec: { kind: "number", min: 0 }, help: "clip the global gradient norm to this (0: off)" },
  maxSteps: { spec: { kind: "int", min: 0 }, help: "stop after this many updates (0: no limit)", resumable: true },
  maxEpochs: { spec: { kind: "int", min: 0 }, help: "stop after this many epochs (0: no limit)", resumable: true },
  seed: { spec: { kind: "int", min: 0, max: 0xffffffff }, help: "seed of initialisation, dropout and data order" },
  logEvery: { spec: { kind: "int", min: 1 }, help: "log the training loss every N updates", resumable: true },
  evalEvery: { spec: { kind: "int", min: 0 }, help: "validate every N updates (0: at the end only)", resumable: true },
  checkpointEvery: { spec: { kind: "int", min: 0 }, help: "checkpoint every N updates (0: at the end and on Ctrl-C)", resumable: true },
  validBleuLimit: { spec: { kind: "int", min: 0 }, help: "BLEU on the first N validation sentences (0: all)", resumable: true },
  bestBy: { spec: { kind: "enum", values: ["bleu", "loss"] }, help: "validation metric that picks the best checkpoint" },
  export: { spec: { kind: "enum", values: ["final", "best"] }, help: "which weights go to <out>/model at the end", resumable: true },
  maxLenA: { spec: { kind: "number", min: 0 }, help: "decoding: max output length = a·srcLen + b", resumable: true },
  maxLenB: { spec: { kind: "int", min: 1 }, help: "decoding: the b above", resumable: true },
  beam: { spec: { kind: "int", min: 1 }, help: "beam size saved with the model", resumable: true },
  lengthPenalty: { spec: { kind: "number", min: 0 }, help: "beam length penalty saved with the model", resumable: true },
  backend: { spec: { kind: "string" }, help: "compute backend (default: the default backend)", resumable: true },
  threads: { spec: { kind: "int", min: 0 }, help: "backend threads (0: its default)", resumable: true },
  progress: { spec: { kind: "enum", values: ["auto", "bar", "lines", "none"] }, help: "progress on stderr: bar when a TTY, else lines", resumable: true },
};

export const CONFIG_KEY_NAMES = Object.keys(CONFIG_KEYS) as (keyof TrainConfig)[];

export function isConfigKey(k: string): k is keyof TrainConfig {
  return Object.prototype.hasOwnProperty.call(CONFIG_KEYS, k);
}

// maxTokens ↔ max-tokens
export const toFlag = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
export const fromFlag = (flag: string): string => flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function describeSpec(s: Spec): string {
  switch (s.kind) {
    case "int": return s.max === undefined ? `an integer ≥ ${s.min}` : `an integer in [${s.min}, ${s.max}]`;
    case "number": return `a number ${s.above ? ">" : "≥"} ${s.min}${s.max === undefined ? "" : ` and ≤ ${s.max}`}`;
    case "string": return s.nonEmpty ? "a non-empty string" : "a string";
    case "enum": return `one of ${s.values.join(", ")}`;
    case "bool": return "true or false";
  }
}

// Converts a flag's text (or checks a config file's value) for `key`; `where` names the source
// in errors ("--max-tokens", "config.json: maxTokens").
export function checkValue(key: keyof TrainConfig, raw: unknown, where: string): TrainConfig[typeof key] {
  const { spec } = CONFIG_KEYS[key];
  const bad = () => new Error(`${where}: expected ${describeSpec(spec)}, got ${JSON.stringify(raw)}`);
  const fromText = typeof raw === "string";
  switch (spec.kind) {
    case "int":
    case "number": {
      let v: number;
      if (typeof raw === "number") v = raw;
      else if (fromText && raw.trim() !== "" && /^[-+0-9.eE]+$/.test(raw.trim())) v = Number(raw);
      else throw bad();
      if (!Number.isFinite(v) || (spec.kind === "int" && !Number.isInteger(v))) throw bad();
      if (spec.kind === "number" && spec.above ? v <= spec.min : v < spec.min) throw bad();
      if (spec.max !== undefined && v > spec.max) throw bad();
      return v;
    }
    case "string":
      if (typeof raw !== "string" || (spec.nonEmpty && raw === "")) throw bad();
      return raw;
    case "enum":
      if (typeof raw !== "string" || !spec.values.includes(raw)) throw bad();
      return raw as TrainConfig[typeof key];
    case "bool":
      if (typeof raw === "boolean") return raw;
      if (fromText && /^(true|1|yes)$/i.test(raw)) return true;
      if (fromText && /^(false|0|no)$/i.test(raw)) return false;
      throw bad();
  }
}

// Relations between keys, checked once everything is merged.
export function checkConfig(c: TrainConfig): TrainConfig {
  if (!c.out) throw new Error("hasten train: --out is required (the run folder)");
  for (const k of CONFIG_KEY_NAMES) checkValue(k, c[k], `config: ${k}`);
  const problems: string[] = [];
  if (c.src === c.tgt) problems.push(`--src and --tgt must differ, both are "${c.src}"`);
  if (c.dModel % c.heads !== 0) problems.push(`--d-model ${c.dModel} must be divisible by --heads ${c.heads}`);
  if (c.positions === "sinusoidal" && c.dModel % 2 !== 0) problems.push(`--d-model ${c.dModel} must be even for sinusoidal positions`);
  // A target of n tokens takes n + 1 positions (bos … / … eos) and n + 1 padded batch slots.
  if (c.maxSentenceTokens + 1 > c.maxLen) problems.push(`--max-sentence-tokens ${c.maxSentenceTokens} needs --max-len ≥ ${c.maxSentenceTokens + 1}, got ${c.maxLen}`);
  if (c.maxSentenceTokens + 1 > c.maxTokens) problems.push(`--max-sentence-tokens ${c.maxSentenceTokens} needs --max-tokens ≥ ${c.maxSentenceTokens + 1}, got ${c.maxTokens}`);
  if (c.maxSteps === 0 && c.maxEpochs === 0) problems.push("--max-steps and --max-epochs are both 0: training would never stop");
  if (problems.length) throw new Error(`hasten train: bad configuration:\n  ${problems.join("\n  ")}`);
  return c;
}

// Keys whose value on --resume differs from the checkpoint's although they change what is
// computed: the run would not be the one that was interrupted.
export function resumeConflicts(saved: TrainConfig, wanted: Partial<TrainConfig>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(wanted)) {
    if (!isConfigKey(k) || CONFIG_KEYS[k].resumable) continue;
    if (saved[k] !== v) out.push(`--${toFlag(k)}: checkpoint has ${JSON.stringify(saved[k])}, asked for ${JSON.stringify(v)}`);
  }
  return out;
}
