// The configuration of a training run: one flat object whose keys come from three tables —
// the training loop's own (this file), the task's (nn/tasks/<task>.ts) and the model kind's
// (nn/models/<kind>.ts). `task` and `model` pick the other two tables.
//
// Flags, config files and checkpoints all go through checkConfig(), so a bad value is refused with
// the same message wherever it came from, before any data is read or any file is written. Errors
// name settings by key in backquotes (`maxTokens`); the command line shows them as flags.
import { getModelKind, modelKinds } from "../models/index.ts";
import { checkOption, defaultsOf, hasKey, type OptionTable, type OptionValue } from "../options.ts";
import { getTask, taskNames, type Task } from "../tasks/index.ts";

// The keys every run has; a task's and a model kind's keys come beside them.
export interface CommonConfig {
  task: string; // what to train: a registered task ("translation", "lm")
  model: string; // which model kind ("transformer", "lm"); "" = the task's default
  out: string; // the run folder: checkpoint, tokenizer, log, plot, exported model
  init: string; // "" or a model directory whose weights (and tokenizer) the run starts from
  maxTokens: number; // tokens per batch (padded)
  accumulate: number; // batches per update (gradient accumulation)
  lr: number; // peak learning rate, reached after `warmup` updates, then ∝ 1/√step
  warmup: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  clipNorm: number; // 0 = no clipping
  maxSteps: number; // 0 = no limit
  maxEpochs: number; // 0 = no limit
  seed: number;
  logEvery: number;
  evalEvery: number; // 0 = only at the end
  checkpointEvery: number; // 0 = only at the end and on Ctrl-C
  bestBy: "bleu" | "loss";
  export: "final" | "best";
  backend: string; // "" = the default backend; NAME or NAME:MODE
  threads: number; // 0 = the backend's default
}

export type TrainConfig = CommonConfig & Record<string, OptionValue>;

export const COMMON_OPTIONS: OptionTable = {
  task: { spec: { kind: "string", nonEmpty: true }, default: "translation", help: "what to train (a registered task)" },
  model: { spec: { kind: "string" }, default: "", help: "model kind (default: the task's)" },
  out: { spec: { kind: "string", nonEmpty: true }, default: "", help: "run folder (checkpoint, log, plot, model/)", resumable: true },
  init: { spec: { kind: "string" }, default: "", help: "start from this model directory's weights and tokenizer: fine-tuning (same kind), or a warm start from a kind of the same family holding every parameter (ctc from cmlm)" },
  maxTokens: { spec: { kind: "int", min: 2 }, default: 4096, help: "tokens per batch (padded)" },
  accumulate: { spec: { kind: "int", min: 1, max: 1024 }, default: 1, help: "batches per update (gradient accumulation): an update sees accumulate × maxTokens tokens with one batch in memory at a time" },
  lr: { spec: { kind: "number", min: 0, above: true }, default: 7e-4, help: "peak learning rate" },
  warmup: { spec: { kind: "int", min: 0 }, default: 1000, help: "linear warm-up updates before 1/sqrt decay" },
  beta1: { spec: { kind: "number", min: 0, max: 0.999999 }, default: 0.9, help: "Adam beta1" },
  beta2: { spec: { kind: "number", min: 0, max: 0.999999 }, default: 0.98, help: "Adam beta2" },
  eps: { spec: { kind: "number", min: 0 }, default: 1e-9, help: "Adam epsilon" },
  weightDecay: { spec: { kind: "number", min: 0 }, default: 1e-4, help: "decoupled weight decay (AdamW)" },
  clipNorm: { spec: { kind: "number", min: 0 }, default: 1, help: "clip the global gradient norm to this (0: off)" },
  maxSteps: { spec: { kind: "int", min: 0 }, default: 20000, help: "stop after this many updates (0: no limit)", resumable: true },
  maxEpochs: { spec: { kind: "int", min: 0 }, default: 0, help: "stop after this many epochs (0: no limit)", resumable: true },
  seed: { spec: { kind: "int", min: 0, max: 0xffffffff }, default: 1, help: "seed of initialisation, dropout and data order" },
  logEvery: { spec: { kind: "int", min: 1 }, default: 10, help: "log the training loss every N updates", resumable: true },
  evalEvery: { spec: { kind: "int", min: 0 }, default: 1000, help: "validate every N updates (0: at the end only)", resumable: true },
  checkpointEvery: { spec: { kind: "int", min: 0 }, default: 1000, help: "checkpoint every N updates (0: at the end and on Ctrl-C)", resumable: true },
  bestBy: { spec: { kind: "enum", values: ["bleu", "loss"] }, default: "bleu", help: "validation metric that picks the best checkpoint (bleu where the task has it)" },
  export: { spec: { kind: "enum", values: ["final", "best"] }, default: "final", help: "which weights go to <out>/model at the end", resumable: true },
  backend: { spec: { kind: "string" }, default: "", help: "compute backend, NAME or NAME:MODE (default: wasm)", resumable: true },
  threads: { spec: { kind: "int", min: 0 }, default: 0, help: "backend threads (0: its default)", resumable: true },
};

// The task and model kind a partial config names (the task's default kind when none is given).
export function choices(c: { task?: unknown; model?: unknown }): { task: Task; kind: string } {
  const taskName = typeof c.task === "string" && c.task !== "" ? c.task : (COMMON_OPTIONS.task.default as string);
  if (!taskNames().includes(taskName)) throw new Error(`\`task\`: unknown task "${taskName}"; registered tasks: ${taskNames().join(", ")}`);
  const task = getTask(taskName);
  const kind = typeof c.model === "string" && c.model !== "" ? c.model : task.defaultModel;
  if (!modelKinds().includes(kind)) throw new Error(`\`model\`: unknown model kind "${kind}"; registered kinds: ${modelKinds().join(", ")}`);
  const family = getModelKind(kind).family;
  if (family !== task.family) {
    const fits = modelKinds().filter((k) => getModelKind(k).family === task.family);
    throw new Error(`\`model\`: the ${task.name} task trains ${task.family} models, but "${kind}" is ${family}; choose one of ${fits.join(", ")}`);
  }
  return { task, kind };
}

// Every key a run of this task and model kind accepts. Task keys win over model keys of the same
// name only if identical in meaning; a clash between tables is a programming error.
export function optionTable(c: { task?: unknown; model?: unknown }): OptionTable {
  const { task, kind } = choices(c);
  const table: Record<string, (typeof COMMON_OPTIONS)[string]> = { ...COMMON_OPTIONS };
  for (const [source, t] of [[`task ${task.name}`, task.options], [`model kind ${kind}`, getModelKind(kind).options]] as const) {
    for (const [k, o] of Object.entries(t)) {
      if (hasKey(table, k)) throw new Error(`internal: ${source} redefines the setting "${k}"`);
      table[k] = o;
    }
  }
  return table;
}

// Task defaults may override common ones (e.g. a task's own learning rate).
export function defaultConfig(c: { task?: unknown; model?: unknown } = {}): TrainConfig {
  const { task, kind } = choices(c);
  return { ...defaultsOf(optionTable(c)), ...task.overrideDefaults, task: task.name, model: kind } as TrainConfig;
}

// One setting's value, from a flag's text or a file's JSON.
export function checkValue(table: OptionTable, key: string, raw: unknown, where: string): OptionValue {
  if (!hasKey(table, key)) throw new Error(`${where}: unknown setting`);
  return checkOption(table[key].spec, raw, where);
}

// The whole config: known keys only, each valid, then the relations between keys.
export function checkConfig(c: Record<string, unknown>): TrainConfig {
  const table = optionTable(c);
  const { task, kind } = choices(c);
  const unknown = Object.keys(c).filter((k) => !hasKey(table, k));
  if (unknown.length) throw new Error(`unknown setting${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => `"${k}"`).join(", ")} for task ${task.name} with model ${kind}`);
  if (!c.out) throw new Error("`out` is required (the run folder)");
  const out: Record<string, OptionValue> = {};
  for (const k of Object.keys(table)) {
    if (!hasKey(c, k)) throw new Error(`config: \`${k}\` is missing`);
    out[k] = checkOption(table[k].spec, c[k], `config: \`${k}\``);
  }
  out.model = kind;
  const cfg = out as TrainConfig;
  const problems = [...commonProblems(cfg), ...modelProblems(cfg), ...task.check(cfg)];
  if (problems.length) throw new Error(`bad configuration:\n  ${problems.join("\n  ")}`);
  return cfg;
}

function commonProblems(c: TrainConfig): string[] {
  return c.maxSteps === 0 && c.maxEpochs === 0 ? ["`maxSteps` and `maxEpochs` are both 0: training would never stop"] : [];
}

// Relations inside the model's settings that its kind would otherwise refuse only when building.
function modelProblems(c: TrainConfig): string[] {
  const p: string[] = [];
  const d = c.dModel, h = c.heads;
  if (typeof d === "number" && typeof h === "number" && d % h !== 0) p.push(`\`dModel\` ${d} must be divisible by \`heads\` ${h}`);
  if (c.positions === "sinusoidal" && typeof d === "number" && d % 2 !== 0) p.push(`\`dModel\` ${d} must be even for sinusoidal \`positions\``);
  return p;
}

// Keys whose value on --resume differs from the checkpoint's although they change what is
// computed: the run would not be the one that was interrupted.
export function resumeConflicts(saved: TrainConfig, wanted: Record<string, unknown>): string[] {
  const table = optionTable(saved);
  const out: string[] = [];
  for (const [k, v] of Object.entries(wanted)) {
    if (!hasKey(table, k) || table[k].resumable) continue;
    if (saved[k] !== v) out.push(`\`${k}\`: checkpoint has ${JSON.stringify(saved[k])}, asked for ${JSON.stringify(v)}`);
  }
  return out;
}
