// `hasten train --task translation --out runs/ar-de-en [--key value ...]`
// `hasten train --task lm --data ../shared/data/tinyshakespeare/input.txt --out runs/lm`
// Thin: work out the task and model kind (flags, config file or the checkpoint being resumed),
// parse the settings they accept, wire validation BLEU to greedy decoding, draw progress, handle
// Ctrl-C, call nn/train.
import { existsSync, readFileSync } from "node:fs";
import { extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { translateLines } from "../../decoding/index.ts";
import {
  checkOption, choices, defaultConfig, getModelKind, isEncoderDecoder, isNonAutoregressive, modelKinds, optionTable, readCheckpointHeader, taskNames, train,
  type OptionTable, type OptionValue, type TrainResult, type TranslateFn,
} from "../../nn/index.ts";
import { asUsageError, runCommand, type CommandIO } from "../cli/common.ts";
import { formatHelp, fromFlag, keysToFlags, parseFlags, toFlag, UsageError, type FlagSpec } from "../cli/flags.ts";
import { Progress, type ProgressStream } from "../cli/progress.ts";

export interface TrainIO extends Omit<CommandIO, "stdout"> {
  stdout?: (line: string) => void; // the help, a line at a time
  progressStream?: ProgressStream; // default: standard error
}

// Validation BLEU: greedy search, batched by length, sentences in input order.
// (Non-autoregressive models: their default one-pass decoding.)
export const greedyTranslate: TranslateFn = async (m, lines, o) => {
  if (!isEncoderDecoder(m.model) && !isNonAutoregressive(m.model)) throw new Error("validation BLEU needs a translation model");
  return (await translateLines({ model: m.model, tokenizer: m.tokenizer }, lines, { beam: 1, maxLenA: o.maxLenA, maxLenB: o.maxLenB, batchSize: 64 })).translations;
};

// Flags that are not settings of the run.
const SPECIAL: FlagSpec = {
  config: { spec: { kind: "string", nonEmpty: true }, value: "FILE", help: "settings from a .json or .ts file (flags win over it)" },
  resume: { spec: { kind: "bool" }, help: "continue the checkpoint in --out (flags may change only limits, intervals, decoding and runtime settings)" },
  progress: { spec: { kind: "enum", values: ["auto", "bar", "lines", "none"] }, value: "MODE", help: "progress on stderr: bar on a terminal, else lines", default: "auto" },
  help: { spec: { kind: "bool" }, alias: "-h", help: "show this help (of the task and model given with --task/--model)" },
};

function flagSpecOf(table: OptionTable, defaults: Record<string, OptionValue> = {}): FlagSpec {
  const spec: Record<string, FlagSpec[string]> = { ...SPECIAL };
  for (const [k, o] of Object.entries(table)) spec[toFlag(k)] = { spec: o.spec, help: o.help, default: defaults[k] ?? o.default };
  return spec;
}

// The value of --name (either spelling) before full parsing: it decides which flags exist.
function peek(argv: readonly string[], name: string): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    for (const spelled of [`--${name}`, `--${fromFlag(name)}`]) {
      if (a === spelled && i + 1 < argv.length) found = argv[i + 1];
      else if (a.startsWith(`${spelled}=`)) found = a.slice(spelled.length + 1);
    }
  }
  return found;
}

// A config file: JSON, or a .ts/.js module whose default export (or `config` export) is the
// object. Keys are settings (camelCase).
export async function loadConfigFile(path: string): Promise<Record<string, OptionValue>> {
  const obj = await readConfigFile(path);
  let table: OptionTable;
  try {
    table = optionTable({ task: obj.task, model: obj.model });
  } catch (e) {
    throw asUsageError("train", e, `config file ${path}: `);
  }
  return checkFileSettings(path, obj, table);
}

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new UsageError(`hasten train: config file not found: ${path}`);
  let obj: unknown;
  const ext = extname(abs);
  if (ext === ".json") {
    try {
      obj = JSON.parse(readFileSync(abs, "utf8"));
    } catch (e) {
      throw new UsageError(`hasten train: config file ${path} is not valid JSON: ${(e as Error).message}`);
    }
  } else if ([".ts", ".mts", ".js", ".mjs"].includes(ext)) {
    const mod = (await import(pathToFileURL(abs).href)) as { default?: unknown; config?: unknown };
    obj = mod.default ?? mod.config;
  } else {
    throw new UsageError(`hasten train: config file ${path}: expected a .json, .ts or .js file, got "${ext || "no extension"}"`);
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new UsageError(`hasten train: config file ${path} must hold an object of settings, got ${obj === null ? "null" : Array.isArray(obj) ? "an array" : typeof obj}`);
  }
  return obj as Record<string, unknown>;
}

// Checks a config file's keys and values against the run's settings.
function checkFileSettings(path: string, obj: Record<string, unknown>, table: OptionTable): Record<string, OptionValue> {
  const out: Record<string, OptionValue> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (!Object.prototype.hasOwnProperty.call(table, k)) {
      throw new UsageError(`hasten train: config file ${path}: unknown key "${k}"\nvalid keys: ${Object.keys(table).join(" ")}`);
    }
    try {
      out[k] = checkOption(table[k].spec, v, `config file ${path}: ${k}`);
    } catch (e) {
      throw new UsageError(`hasten train: ${(e as Error).message}`);
    }
  }
  return out;
}

export interface TrainArgs {
  overrides: Record<string, OptionValue>; // settings by key (camelCase)
  resume: boolean;
  configFile?: string;
  progress?: "auto" | "bar" | "lines" | "none";
  help: boolean;
}

// The flags of `hasten train` for a task and model kind (default: translation and its kind).
export function parseTrainArgs(argv: readonly string[], which: { task?: string; model?: string } = {}): TrainArgs {
  let table: OptionTable;
  try {
    table = optionTable({ task: which.task ?? peek(argv, "task"), model: which.model ?? peek(argv, "model") });
  } catch (e) {
    throw asUsageError("train", e);
  }
  const a = parseFlags("train", argv, flagSpecOf(table));
  const overrides: Record<string, OptionValue> = {};
  for (const [f, v] of Object.entries(a.flags)) if (!Object.prototype.hasOwnProperty.call(SPECIAL, f)) overrides[fromFlag(f)] = v;
  const out: TrainArgs = { overrides, resume: Boolean(a.flags.resume), help: Boolean(a.flags.help) };
  if (a.flags.config !== undefined) out.configFile = a.flags.config as string;
  if (a.flags.progress !== undefined) out.progress = a.flags.progress as TrainArgs["progress"];
  return out;
}

export function trainUsage(task?: string, model?: string): string {
  const table = optionTable({ task, model });
  const { task: t, kind } = choices({ task, model });
  const kinds = modelKinds().filter((k) => getModelKind(k).family === t.family);
  return formatHelp({
    usage: `hasten train --task ${t.name} --out DIR [options]`,
    description: `Task ${t.name}: ${t.summary}.\nModel kind ${kind}: ${getModelKind(kind).summary}.\n` +
      `Tasks: ${taskNames().join(", ")}; model kinds for this task: ${kinds.join(", ")} ('--task T --model K --help' shows theirs).\n` +
      "Checkpoints, log.jsonl, loss.svg and model/ go to --out. Options take --key value or --key=value; booleans also --key / --no-key.",
    spec: flagSpecOf(table, defaultConfig({ task, model })),
    footer: "Ctrl-C finishes the current step, writes a checkpoint and exits; --resume continues it exactly.",
  });
}

export async function trainCommand(argv: string[], io: TrainIO = {}): Promise<TrainResult | undefined> {
  return runCommand(io, async () => {
    const out = io.stdout ?? ((line: string) => process.stdout.write(line + "\n"));
    // Which task and model kind: flags, else the config file, else the checkpoint being resumed.
    const configPath = peek(argv, "config");
    const fromFile = configPath ? await readConfigFile(configPath) : {};
    let task = peek(argv, "task") ?? (fromFile.task as string | undefined);
    let model = peek(argv, "model") ?? (fromFile.model as string | undefined);
    const outDir = peek(argv, "out") ?? (fromFile.out as string | undefined);
    const resuming = argv.some((a) => a === "--resume" || a.startsWith("--resume="));
    if (resuming && task === undefined && outDir && existsSync(join(resolve(outDir), "checkpoint.safetensors"))) {
      try {
        const { state } = readCheckpointHeader(join(resolve(outDir), "checkpoint.safetensors"));
        task = state.config.task;
        model = model ?? state.config.model;
      } catch (e) {
        throw asUsageError("train", e, "--resume: ");
      }
    }
    const a = parseTrainArgs(argv, { task, model });
    if (a.help) {
      out(trainUsage(task, model));
      return undefined;
    }
    const overrides: Record<string, unknown> = { ...checkFileSettings(configPath ?? "", fromFile, optionTable({ task, model })), ...a.overrides };

    // First Ctrl-C: stop after the current step and write a checkpoint. Second: quit at once (the
    // checkpoint on disk is whole either way: it is only ever replaced by an atomic rename).
    const ac = new AbortController();
    const errWrite = io.stderr ?? ((s: string) => void process.stderr.write(s));
    const stream: ProgressStream = io.progressStream ?? (io.stderr ? { write: io.stderr, isTTY: io.stderrIsTTY } : process.stderr);
    const progress = new Progress(stream, a.progress ?? "auto");
    const onSignal = (sig: NodeJS.Signals) => {
      if (ac.signal.aborted) {
        errWrite(`\n${sig} again: quitting without a new checkpoint\n`);
        process.exit(130);
      }
      errWrite(`\n${sig}: finishing this step and writing a checkpoint (press Ctrl-C again to quit at once)\n`);
      ac.abort();
    };
    const handle = io.handleSignals ?? true;
    if (handle) {
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
    }
    let started = false;
    try {
      const result = await train(overrides, {
        resume: a.resume, translate: greedyTranslate, signal: ac.signal,
        onEvent: (e) => {
          started = true;
          progress.onEvent(e.type === "step" ? e : { ...e, text: keysToFlags(e.text) });
        },
      });
      progress.done();
      if (result.stoppedBy === "interrupted") (io.setExitCode ?? ((c: number) => (process.exitCode = c)))(130);
      return result;
    } catch (e) {
      progress.done();
      // Refused before the first step (settings, files, data): the caller's mistake, exit code 2.
      if (!started && !(e instanceof UsageError)) throw asUsageError("train", e);
      throw new Error(`hasten train: ${(e as Error).message}`);
    } finally {
      if (handle) {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    }
  });
}


// Runnable on its own too: `npx tsx scripts/commands/train.ts --out runs/x ...`.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  trainCommand(process.argv.slice(2)).catch((e: Error & { exitCode?: number }) => {
    console.error(e.message);
    process.exitCode = process.exitCode || e.exitCode || 1;
  });
}
