// `hasten translate --model DIR [options] < source.txt > hyps.txt`: one translation per input line.
// Thin: parse flags, load the model directory, call decoding/corpus.ts. Standard output carries the
// translations and nothing else; progress goes to standard error, only on a terminal or --verbose.
// Usage errors and an unloadable model exit with code 2.
import { readFileSync } from "node:fs";
import { registeredBackends, setBackend } from "../../core/index.ts"; // importing core registers the backends
import { translateLines } from "../../decoding/corpus.ts";
import { loadModelDir, type ModelDir } from "../../nn/models/model-dir.ts";

const USAGE = `usage: hasten translate --model DIR [options] < SOURCE > TRANSLATIONS

Translates one sentence per line (the model's source language) and writes one line per input
line, in order; an empty line gives an empty line.

options:
  --model DIR            model directory (config.json, tokenizer.json, model.safetensors)
  -i, --input FILE       read sentences from FILE instead of standard input
  --beam N               beam size; 1 = greedy (default: the model's config)
  --length-penalty A     rank finished beams by score / len^A (default: the model's config)
  --max-len-a A          longest output: A · source length + B tokens
  --max-len-b B            (defaults: the model's config)
  --batch-size N         sentences decoded together (default 32)
  --backend NAME[:MODE]  cpu (default), gpujs:webgpu, gpujs:webasm, ...
  -v, --verbose          progress and timing on standard error even when it is not a terminal
  -h, --help             show this help`;

// ---- shared by the translate and evaluate commands ----

// A mistake in how the command was called (bad flag, missing model): exit code 2.
export class UsageError extends Error {
  readonly exitCode = 2;
}

export interface CommandIO {
  stdin?: string; // the input text; read from process.stdin when absent
  stdout?: (text: string) => void; // raw text, newlines included
  stderr?: (text: string) => void;
  stderrIsTTY?: boolean;
  setExitCode?: (code: number) => void; // default: process.exitCode
}

export type FlagType = "string" | "int" | "number" | "bool";
export type FlagSpec = Record<string, { type: FlagType; alias?: string; min?: number }>;
export type Flags = Record<string, string | number | boolean | undefined>;

// --name value, --name=value, and the aliases in spec; no positional arguments.
export function parseFlags(cmd: string, argv: string[], spec: FlagSpec, usage: string): Flags {
  const byName = new Map<string, string>();
  for (const [name, s] of Object.entries(spec)) {
    byName.set(`--${name}`, name);
    if (s.alias) byName.set(s.alias, name);
  }
  const out: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const key = eq > 0 ? arg.slice(0, eq) : arg;
    const name = byName.get(key);
    if (name === undefined) {
      throw new UsageError(arg.startsWith("-") ? `hasten ${cmd}: unknown option ${key}\n${usage}` : `hasten ${cmd}: unexpected argument "${arg}"\n${usage}`);
    }
    const { type, min } = spec[name];
    if (type === "bool") {
      if (eq > 0) throw new UsageError(`hasten ${cmd}: ${key} takes no value`);
      out[name] = true;
      continue;
    }
    let raw: string;
    if (eq > 0) raw = arg.slice(eq + 1);
    else if (i + 1 < argv.length) raw = argv[++i];
    else throw new UsageError(`hasten ${cmd}: ${key} needs a value`);
    if (type === "string") {
      out[name] = raw;
      continue;
    }
    const x = Number(raw);
    const ok = raw.trim() !== "" && Number.isFinite(x) && (type === "number" || Number.isInteger(x)) && (min === undefined || x >= min);
    if (!ok) throw new UsageError(`hasten ${cmd}: ${key} must be ${type === "int" ? "an integer" : "a number"}${min !== undefined ? ` >= ${min}` : ""}, got "${raw}"`);
    out[name] = x;
  }
  return out;
}

// Runs a command body; a UsageError sets exit code 2 (the dispatcher prints the message and keeps
// a code already set).
export async function runCommand<T>(io: CommandIO, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) (io.setExitCode ?? ((c: number) => (process.exitCode = c)))(e.exitCode);
    throw e;
  }
}

// "name" or "name:mode" (gpujs:webgpu); must be chosen before the model's tensors are made.
export async function selectBackend(cmd: string, spec: string | undefined): Promise<void> {
  if (spec === undefined) return;
  const [name, mode] = spec.split(":", 2);
  if (!registeredBackends().includes(name)) throw new UsageError(`hasten ${cmd}: --backend must be one of ${registeredBackends().sort().join(", ")} (optionally name:mode), got "${spec}"`);
  try {
    await setBackend(name, mode ? { mode } : undefined);
  } catch (e) {
    throw new UsageError(`hasten ${cmd}: cannot start backend ${spec}: ${(e as Error).message.split("\n")[0]}`);
  }
}

export function loadModelOrExplain(cmd: string, dir: string | undefined, usage: string): ModelDir {
  if (dir === undefined) throw new UsageError(`hasten ${cmd}: --model DIR is required\n${usage}`);
  try {
    return loadModelDir(dir);
  } catch (e) {
    throw new UsageError(`hasten ${cmd}: cannot load the model: ${(e as Error).message}`);
  }
}

export function writers(io: CommandIO, verbose: boolean) {
  const stdout = io.stdout ?? ((s: string) => void process.stdout.write(s));
  const stderr = io.stderr ?? ((s: string) => void process.stderr.write(s));
  const tty = io.stderrIsTTY ?? Boolean(process.stderr.isTTY);
  // Progress: a rewritten line on a terminal, whole lines with --verbose, nothing otherwise.
  const progress = (s: string) => {
    if (tty) stderr(`\r\x1b[2K${s}`);
    else if (verbose) stderr(`${s}\n`);
  };
  const endProgress = () => {
    if (tty) stderr("\r\x1b[2K");
  };
  const info = (s: string) => {
    if (tty || verbose) stderr(`${s}\n`);
  };
  return { stdout, stderr, progress, endProgress, info };
}

// Lines of the input: "\n" or "\r\n" ends a line; a final newline does not start an empty line.
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

async function readInput(cmd: string, io: CommandIO, file: string | undefined): Promise<string> {
  if (file !== undefined) {
    try {
      return readFileSync(file, "utf8");
    } catch (e) {
      throw new UsageError(`hasten ${cmd}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
    }
  }
  if (io.stdin !== undefined) return io.stdin;
  if (process.stdin.isTTY) throw new UsageError(`hasten ${cmd}: expected sentences on standard input (or --input FILE)\n${USAGE}`);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

// The decoding flags both commands share, with the model's defaults.
export const DECODING_FLAGS: FlagSpec = {
  beam: { type: "int", min: 1 },
  "length-penalty": { type: "number", min: 0 },
  "max-len-a": { type: "number", min: 0 },
  "max-len-b": { type: "number", min: 0 },
  "batch-size": { type: "int", min: 1 },
  backend: { type: "string" },
};

export function decodingOptions(flags: Flags, m: ModelDir) {
  const d = m.config.decoding;
  return {
    beam: (flags.beam as number | undefined) ?? d.beam,
    lengthPenalty: (flags["length-penalty"] as number | undefined) ?? d.lengthPenalty,
    maxLenA: (flags["max-len-a"] as number | undefined) ?? d.maxLenA,
    maxLenB: (flags["max-len-b"] as number | undefined) ?? d.maxLenB,
    batchSize: (flags["batch-size"] as number | undefined) ?? 32,
  };
}

// ---- the command ----

export async function translateCommand(argv: string[], io: CommandIO = {}): Promise<string[] | undefined> {
  return runCommand(io, async () => {
    const flags = parseFlags("translate", argv, {
      model: { type: "string" }, input: { type: "string", alias: "-i" }, ...DECODING_FLAGS,
      verbose: { type: "bool", alias: "-v" }, help: { type: "bool", alias: "-h" },
    }, USAGE);
    const out = writers(io, Boolean(flags.verbose));
    if (flags.help) {
      out.stdout(USAGE + "\n");
      return undefined;
    }
    await selectBackend("translate", flags.backend as string | undefined);
    const m = loadModelOrExplain("translate", flags.model as string | undefined, USAGE);
    try {
      const opts = decodingOptions(flags, m);
      const lines = splitLines(await readInput("translate", io, flags.input as string | undefined));
      const t0 = performance.now();
      const rate = (n: number) => `${(n / Math.max((performance.now() - t0) / 1000, 1e-9)).toFixed(1)} sent/s`;
      const { translations, truncated } = await translateLines(m, lines, {
        ...opts, onBatch: (done, total) => out.progress(`translated ${done}/${total} (${rate(done)})`),
      });
      out.endProgress();
      if (truncated.length > 0) {
        const shown = truncated.slice(0, 10).map((i) => i + 1).join(", ");
        out.stderr(`hasten translate: warning: ${truncated.length} line(s) longer than the model's maxLen of ${m.model.config.maxLen} tokens were cut (line ${shown}${truncated.length > 10 ? ", …" : ""})\n`);
      }
      if (translations.length > 0) out.stdout(translations.join("\n") + "\n");
      out.info(`hasten translate: ${lines.length} lines in ${((performance.now() - t0) / 1000).toFixed(2)} s (${rate(lines.length)}), ${opts.beam <= 1 ? "greedy" : `beam ${opts.beam}`}, batch ${opts.batchSize}`);
      return translations;
    } finally {
      m.model.dispose();
    }
  });
}
