// A task is a training recipe: which data, how it is batched, the loss of a batch, what
// validation measures, and what a finished model directory records. One trainer runs every task
// (nn/train/run.ts). A new task is its own file plus one registration line in nn/tasks/index.ts.
import { cat, crossEntropy, type Tensor } from "../../core/index.ts";
import type { AnyModel, DecodingDefaults, ModelFamily } from "../models/index.ts";
import type { OptionTable, OptionValue } from "../options.ts";
import type { BpeTokenizer } from "../tokenizer/bpe.ts";
import type { TrainConfig } from "../train/config.ts";

// A resumable stream of batches: the state {seed, epoch, position} is all a checkpoint saves.
export interface BatchSource<B> {
  next(): B;
  getState(): BatchState;
  setState(s: BatchState): void;
  readonly batchesInEpoch: number;
}

export interface BatchState {
  seed: number;
  epoch: number;
  position: number; // batches of `epoch` already handed out
}

// Functions the command line injects (nn never imports decoding/): translation validation BLEU
// decodes with greedy search.
export type TranslateFn = (m: { model: AnyModel; tokenizer: BpeTokenizer }, lines: string[], opts: { maxLenA: number; maxLenB: number }) => string[] | Promise<string[]>;

export interface TaskHooks {
  translate?: TranslateFn;
}

export interface ValidExtra {
  bleu: number | null; // null: the task has no BLEU, or no translate hook was given
  bleuSentences: number;
}

// The data of a run, read and checked before anything is written.
export interface TaskData {
  // Lines to learn a BPE vocabulary from.
  tokenizerLines(): string[];
  // sha256 over the training files: a resume on other data is refused.
  fingerprint: string;
  // Encode with the run's tokenizer and set up batching.
  prepare(tokenizer: BpeTokenizer, c: TrainConfig): PreparedTask;
  // The vocabulary is the task's to choose, not learned (a draft model uses its target's).
  fixedTokenizer?: BpeTokenizer;
}

export interface PreparedTask<B = unknown> {
  train: BatchSource<B>;
  valid: B[];
  describe: string; // "29,000 pairs (12 dropped)" — for the log
  tokens(b: B): number; // tokens the loss averages over (targets)
  srcTokens(b: B): number; // other tokens read (translation sources; 0 for a language model)
  // Mean training loss of a batch (a scalar that will be differentiated).
  loss(model: AnyModel, b: B): Tensor;
  // [2]: summed label-smoothed loss and summed negative log-likelihood of a batch.
  validSums(model: AnyModel, b: B): Tensor;
  // Metrics beyond the loss (BLEU), computed by decoding; default none.
  validExtra?(model: AnyModel, hooks: TaskHooks): Promise<ValidExtra>;
  // What the model directory records about the task: {src, tgt, decoding defaults}.
  exportInfo(): { src?: string; tgt?: string; decoding: DecodingDefaults };
  // Frees what the task holds besides the model (a frozen target model); called once at the end.
  dispose?(): void;
}

export interface Task {
  readonly name: string;
  readonly summary: string;
  readonly family: ModelFamily; // which models it trains
  readonly defaultModel: string; // model kind when none is named
  readonly options: OptionTable; // its own settings (data, vocabulary, loss, decoding)
  readonly overrideDefaults?: Readonly<Record<string, OptionValue>>; // defaults of common settings it changes
  // Relations between settings, as messages naming keys in backquotes; [] when fine.
  check(c: TrainConfig): string[];
  // Reads and checks the corpus (missing files, empty or misaligned data): nothing is written.
  readData(c: TrainConfig): TaskData;
}

// validSums for a cross-entropy objective: [summed label-smoothed loss, summed NLL] of one forward.
export function crossEntropySums(logits: Tensor, target: Tensor, opts: { ignoreIndex?: number; labelSmoothing: number }): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const smoothed = crossEntropy(logits, target, { ignoreIndex, labelSmoothing: opts.labelSmoothing, reduction: "sum" });
  const nll = crossEntropy(logits, target, { ignoreIndex, reduction: "sum" });
  return cat([smoothed.reshape(1), nll.reshape(1)]);
}

const tasks = new Map<string, Task>();

export function registerTask(t: Task): void {
  if (tasks.has(t.name)) throw new Error(`registerTask: a task "${t.name}" is already registered`);
  tasks.set(t.name, t);
}

export function taskNames(): string[] {
  return [...tasks.keys()];
}

export function getTask(name: string): Task {
  const t = tasks.get(name);
  if (!t) throw new Error(`unknown task "${name}"; registered tasks: ${taskNames().join(", ")}`);
  return t;
}
