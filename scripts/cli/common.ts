// What every command shares: its input and output streams, reading the input text, choosing the
// backend, loading a model directory, and turning errors into exit codes.
import { readFileSync } from "node:fs";
import { selectBackend } from "../../core/index.ts";
import { isCausalLM, isEncoderDecoder, isNonAutoregressive, loadModelDir, type CausalLM, type EncoderDecoderModel, type ModelDir, type NonAutoregressiveModel } from "../../nn/index.ts";
import { keysToFlags, UsageError } from "./flags.ts";

export interface CommandIO {
  stdin?: string | Uint8Array; // the input; read from process.stdin when absent
  stdout?: (text: string) => void; // raw text, newlines included
  stderr?: (text: string) => void;
  stderrIsTTY?: boolean;
  setExitCode?: (code: number) => void; // default: process.exitCode
  handleSignals?: boolean; // install SIGINT/SIGTERM handlers (train; default true)
}

// Runs a command body; a usage error sets exit code 2 (the dispatcher prints the message and keeps
// a code already set).
export async function runCommand<T>(io: CommandIO, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) (io.setExitCode ?? ((c: number) => (process.exitCode = c)))(e.exitCode);
    throw e;
  }
}

// A library error about the command's input (a value, a file) as a usage error: exit code 2, and
// settings named as flags.
export function asUsageError(cmd: string, e: unknown, what = ""): UsageError {
  const msg = keysToFlags((e as Error).message);
  return new UsageError(`hasten ${cmd}: ${what}${msg}`);
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
  return { stdout, stderr, tty, progress, endProgress, info };
}

// Lines of a text: "\n", "\r\n" and a lone "\r" each end a line (the universal newlines SacreBLEU
// reads standard input with, so `bleu` and `translate` agree); a final newline does not start an
// empty line.
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split(/\r\n|\r|\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

// UTF-8 text from bytes; invalid sequences become U+FFFD with a warning naming the first byte.
export function decodeUtf8(bytes: Uint8Array, source: string, warn: (s: string) => void, cmd: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const text = new TextDecoder("utf-8").decode(bytes);
    // One pass over both: a decoded character advances the byte offset by its UTF-8 length, and
    // the first U+FFFD not spelled EF BF BD in the input is where the first bad byte was.
    const isLiteralFffd = (i: number) => bytes[i] === 0xef && bytes[i + 1] === 0xbf && bytes[i + 2] === 0xbd;
    let at = -1, off = 0, replaced = 0, literal = 0;
    for (const ch of text) {
      if (ch === "\uFFFD") {
        replaced++;
        if (at < 0 && !isLiteralFffd(off)) at = off;
      }
      if (at >= 0) continue;
      const c = ch.codePointAt(0)!;
      off += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    }
    for (let i = 0; i + 2 < bytes.length; i++) if (isLiteralFffd(i)) literal++;
    warn(`hasten ${cmd}: warning: ${source} is not valid UTF-8 (first bad byte at offset ${at}); ${replaced - literal} character(s) replaced with U+FFFD\n`);
    return text;
  }
}

export async function readInput(cmd: string, io: CommandIO, file: string | undefined, warn: (s: string) => void, usage: string): Promise<string> {
  if (file !== undefined) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      throw new UsageError(`hasten ${cmd}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
    }
    return decodeUtf8(bytes, file, warn, cmd);
  }
  if (io.stdin !== undefined) return typeof io.stdin === "string" ? io.stdin : decodeUtf8(io.stdin, "standard input", warn, cmd);
  if (process.stdin.isTTY) throw new UsageError(`hasten ${cmd}: expected text on standard input (or --input FILE)\n${usage}`);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return decodeUtf8(Buffer.concat(chunks), "standard input", warn, cmd);
}

// "name" or "name:mode" (gpujs:webgpu); chosen before any model tensor is made.
export async function useBackend(cmd: string, spec: string | undefined, threads?: number): Promise<void> {
  if (spec === undefined && !threads) return;
  try {
    await selectBackend(spec ?? "", { threads });
  } catch (e) {
    throw new UsageError(`hasten ${cmd}: --backend: ${(e as Error).message.replace(/^backend: /, "").split("\n")[0]}`);
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

export function encoderDecoderOf(cmd: string, m: ModelDir, dir: string): ModelDir<EncoderDecoderModel> {
  if (isEncoderDecoder(m.model)) return m as ModelDir<EncoderDecoderModel>;
  m.model.dispose();
  throw new UsageError(`hasten ${cmd}: ${dir} holds a ${m.config.kind} model (${m.model.family}); ${cmd} needs an autoregressive encoder-decoder model`);
}

// A model that translates: autoregressive (encoder-decoder) or non-autoregressive.
export function translatorOf(cmd: string, m: ModelDir, dir: string): ModelDir<EncoderDecoderModel | NonAutoregressiveModel> {
  if (isEncoderDecoder(m.model) || isNonAutoregressive(m.model)) return m as ModelDir<EncoderDecoderModel | NonAutoregressiveModel>;
  m.model.dispose();
  throw new UsageError(`hasten ${cmd}: ${dir} holds a ${m.config.kind} model (${m.model.family}); ${cmd} needs a translation model (use 'hasten generate' for language models)`);
}

export function causalLMOf(cmd: string, m: ModelDir, dir: string): ModelDir<CausalLM> {
  if (isCausalLM(m.model)) return m as ModelDir<CausalLM>;
  m.model.dispose();
  throw new UsageError(`hasten ${cmd}: ${dir} holds a ${m.config.kind} model (${m.model.family}); ${cmd} needs a causal language model (use 'hasten translate' for translation models)`);
}

// A number from a model directory's decoding defaults, or `fallback` when absent.
export function decodingNumber(m: ModelDir, key: string, fallback: number): number {
  const v = m.config.decoding[key];
  return typeof v === "number" ? v : fallback;
}
