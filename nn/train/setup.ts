// Everything a run needs before its first step, checked in an order that refuses bad input early:
// settings against the checkpoint, the run folder, the corpus, and the vocabulary. Nothing in the
// run folder is written until all of it has passed.
import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { BpeTokenizer } from "../tokenizer/bpe.ts";
import { sha256 } from "../tasks/translation.ts";
import { readCheckpointHeader, type CheckpointState } from "./checkpoint.ts";
import { checkConfig, defaultConfig, optionTable, resumeConflicts, type TrainConfig } from "./config.ts";
import { hasKey } from "../options.ts";

export interface RunFiles {
  dir: string;
  checkpoint: string;
  best: string;
  tokenizer: string;
  config: string;
  log: string;
  plot: string;
  model: string;
  lock: string;
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
    lock: join(dir, ".lock"),
  };
}

// The run folder must be a folder we can write, or creatable: checked before any data is read,
// so a typo costs no time.
export function checkRunDir(dir: string): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new Error(`\`out\`: ${dir} exists and is not a folder`);
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
    } catch {
      throw new Error(`\`out\`: the run folder ${dir} is not writable`);
    }
    return;
  }
  let parent = dirname(dir);
  while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
  if (!statSync(parent).isDirectory()) throw new Error(`\`out\`: cannot create ${dir}: ${parent} is not a folder`);
  try {
    accessSync(parent, constants.W_OK | constants.X_OK);
  } catch {
    throw new Error(`\`out\`: cannot create ${dir}: ${parent} is not writable`);
  }
}

// Keys that checkpoints of older versions lack: resuming one trains as it did.
// Only keys the run's own option table has are filled (glance belongs to the nat task).
const ADDED_SETTINGS: Record<string, unknown> = { accumulate: 1, glance: 0 };

// The config of this run: defaults < overrides for a fresh run; checkpoint < overrides on
// resume, where only `resumable` keys may differ from what the checkpoint was trained with.
export function resolveConfig(overrides: Record<string, unknown>, resume: boolean): { config: TrainConfig; files: RunFiles; saved: CheckpointState | null; savedTokenizerJson: string | null } {
  if (!overrides.out) throw new Error("`out` is required (the run folder for checkpoints, log and model)");
  const files = runFiles(overrides.out as string);
  checkRunDir(files.dir);
  const hasCheckpoint = existsSync(files.checkpoint);
  if (!resume) {
    if (hasCheckpoint) {
      const { state } = readCheckpointHeader(files.checkpoint);
      throw new Error(`${files.dir} already holds a checkpoint at step ${state.step}; resume it (\`resume\`), or choose another \`out\``);
    }
    return { config: checkConfig({ ...defaultConfig(overrides), ...overrides }), files, saved: null, savedTokenizerJson: null };
  }
  if (!hasCheckpoint) throw new Error(`resume: no checkpoint to resume at ${files.checkpoint}`);
  const { state, tokenizerJson } = readCheckpointHeader(files.checkpoint);
  // Settings added after a checkpoint was written, with the value that reproduces its run.
  const table = optionTable(state.config);
  for (const [k, v] of Object.entries(ADDED_SETTINGS)) if (hasKey(table, k) && !(k in state.config)) (state.config as Record<string, unknown>)[k] = v;
  for (const k of ["task", "model"] as const) {
    if (overrides[k] !== undefined && overrides[k] !== "" && overrides[k] !== state.config[k]) {
      throw new Error(`resume: the checkpoint trains \`${k}\` ${JSON.stringify(state.config[k])}, asked for ${JSON.stringify(overrides[k])}`);
    }
  }
  const wanted = { ...overrides, task: state.config.task, model: state.config.model };
  const conflicts = resumeConflicts(state.config, wanted);
  if (conflicts.length) {
    throw new Error(`resume: these settings differ from the checkpoint's (a resumed run must train the same thing):\n  ${conflicts.join("\n  ")}\nstart a new run with another \`out\` to change them`);
  }
  return { config: checkConfig({ ...state.config, ...wanted }), files, saved: state, savedTokenizerJson: tokenizerJson };
}

export interface TokenizerChoice {
  tokenizer: BpeTokenizer;
  json: string;
  sha256: string;
  source: "checkpoint" | "init" | "file" | "cached" | "learned" | "task";
}

function loadTokenizer(path: string): { tokenizer: BpeTokenizer; json: string } {
  const tokenizer = BpeTokenizer.load(path);
  return { tokenizer, json: JSON.stringify(tokenizer.toJSON()) };
}

// The vocabulary: the checkpoint's on resume (the run folder's tokenizer.json must agree), a given
// `tokenizer` file, the cached one from an earlier start of this run, or a new BPE learned from
// the task's lines.
export function chooseTokenizer(c: TrainConfig, files: RunFiles, data: { fingerprint: string; tokenizerLines(): string[]; fixedTokenizer?: BpeTokenizer }, savedTokenizerJson: string | null, saved: CheckpointState | null): TokenizerChoice {
  if (saved && savedTokenizerJson !== null) {
    const tokenizer = BpeTokenizer.fromJSON(JSON.parse(savedTokenizerJson));
    const json = JSON.stringify(tokenizer.toJSON());
    if (sha256(json) !== saved.tokenizerSha256) throw new Error(`resume: the checkpoint's tokenizer does not match its recorded sha256; the checkpoint is damaged`);
    if (existsSync(files.tokenizer)) {
      const onDisk = loadTokenizer(files.tokenizer);
      if (onDisk.json !== json) {
        throw new Error(`resume: ${files.tokenizer} (vocabulary ${onDisk.tokenizer.vocabSize}) does not match the checkpoint's vocabulary (${tokenizer.vocabSize}); restore the run's own tokenizer.json or delete it to use the checkpoint's`);
      }
    }
    return { tokenizer, json, sha256: sha256(json), source: "checkpoint" };
  }
  if (c.init) {
    // Fine-tuning: the ids must be the ones the initial weights were trained with.
    const path = join(resolve(c.init), "tokenizer.json");
    if (!existsSync(path)) throw new Error(`\`init\`: ${path} not found (\`init\` names a model directory)`);
    if (c.tokenizer) throw new Error("`init` and `tokenizer` both set: a fine-tuning run uses the initial model's tokenizer");
    const t = loadTokenizer(path);
    return { ...t, sha256: sha256(t.json), source: "init" };
  }
  // A task that fixes the vocabulary (a draft trained for a target uses the target's).
  if (data.fixedTokenizer) {
    const json = JSON.stringify(data.fixedTokenizer.toJSON());
    return { tokenizer: data.fixedTokenizer, json, sha256: sha256(json), source: "task" };
  }
  if (c.tokenizer) {
    if (!existsSync(c.tokenizer as string)) throw new Error(`\`tokenizer\`: file not found: ${c.tokenizer}`);
    const t = loadTokenizer(c.tokenizer as string);
    return { ...t, sha256: sha256(t.json), source: "file" };
  }
  // Cached: tokenizer.json of an earlier start of this run, learned from the same data and size.
  if (existsSync(files.tokenizer) && existsSync(files.config)) {
    try {
      const rec = JSON.parse(readFileSync(files.config, "utf8")) as { config?: TrainConfig; trainDataSha256?: string; tokenizerSha256?: string };
      const t = loadTokenizer(files.tokenizer);
      if (rec.config?.vocabSize === c.vocabSize && rec.trainDataSha256 === data.fingerprint && rec.tokenizerSha256 === sha256(t.json)) {
        return { ...t, sha256: sha256(t.json), source: "cached" };
      }
    } catch {
      // an unreadable cache is not an error: learn the vocabulary again
    }
  }
  const tokenizer = BpeTokenizer.train(data.tokenizerLines(), { vocabSize: c.vocabSize as number });
  const json = JSON.stringify(tokenizer.toJSON());
  return { tokenizer, json, sha256: sha256(json), source: "learned" };
}
