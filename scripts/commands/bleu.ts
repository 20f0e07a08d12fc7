// `hasten bleu REF [REF2 ...] < HYPOTHESES`: SacreBLEU-compatible corpus BLEU of detokenized text.
// Thin: parse flags, read lines the way SacreBLEU's CLI does, call nn/metrics/bleu.ts.
import { readFileSync } from "node:fs";
import { runCommand, splitLines, type CommandIO } from "../cli/common.ts";
import { formatHelp, parseFlags, UsageError, type FlagSpec } from "../cli/flags.ts";
import { corpusBleu, formatBleu, formatFixed, type BleuOptions, type BleuResult } from "../../nn/metrics/bleu.ts";
import { pyRstrip } from "../../nn/metrics/tokenizer-13a.ts";

const SPEC: FlagSpec = {
  input: { spec: { kind: "string", nonEmpty: true }, alias: "-i", value: "FILE", help: "read hypotheses from FILE instead of standard input" },
  width: { spec: { kind: "int", min: 0, max: 20 }, alias: "-w", value: "N", help: "decimals of the score", default: 2 },
  "score-only": { spec: { kind: "bool" }, alias: "-b", help: "print only the score" },
  lowercase: { spec: { kind: "bool" }, alias: "-lc", help: "case-insensitive BLEU" },
  tokenize: { spec: { kind: "enum", values: ["13a", "none"] }, alias: "-tok", value: "NAME", help: "13a or none", default: "13a" },
  signature: { spec: { kind: "bool" }, help: "print SacreBLEU's signature after \"BLEU\" (nrefs, case, tok, smooth)" },
  help: { spec: { kind: "bool" }, alias: "-h", help: "show this help" },
};

const USAGE = formatHelp({
  usage: "hasten bleu REFERENCE_FILE [REFERENCE_FILE ...] [options] < HYPOTHESES_FILE",
  description: "Corpus BLEU as SacreBLEU computes it by default (13a tokenizer, mixed case, exp smoothing).\nEach file holds one detokenized sentence per line; the hypotheses and every reference file must\nhave the same number of lines.",
  spec: SPEC,
});

/** Lines the way SacreBLEU's CLI reads them: split at "\n" (also a lone "\r" for stdin), each rstripped. */
function toLines(text: string, universalNewlines: boolean): string[] {
  if (text === "") return [];
  const lines = universalNewlines ? splitLines(text) : text.split("\n");
  if (!universalNewlines && lines[lines.length - 1] === "") lines.pop();
  return lines.map(pyRstrip);
}

function readFile(path: string, role: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(code === "ENOENT" ? `hasten bleu: ${role} not found: ${path}` : `hasten bleu: cannot read ${path}: ${(e as Error).message}`);
  }
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError("hasten bleu: expected hypotheses on standard input (or --input FILE)\n" + USAGE);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function bleuCommand(argv: string[], io: CommandIO & { stdout?: (line: string) => void } = {}): Promise<BleuResult | undefined> {
  return runCommand(io, async () => {
    const out = io.stdout ?? ((line: string) => process.stdout.write(line + "\n"));
    const a = parseFlags("bleu", argv, SPEC, { positional: true });
    const f = a.flags;
    if (f.help) {
      out(USAGE);
      return undefined;
    }
    const refFiles = a.positional;
    if (refFiles.length === 0) throw new UsageError(`hasten bleu: expected at least one reference file\n${USAGE}`);
    const opts: BleuOptions = { lowercase: Boolean(f.lowercase), tokenize: (f.tokenize as "13a" | "none" | undefined) ?? "13a" };
    const width = (f.width as number | undefined) ?? 2;
    const input = f.input as string | undefined;
    const stdin = typeof io.stdin === "string" ? io.stdin : io.stdin !== undefined ? new TextDecoder().decode(io.stdin) : undefined;
    const hypText = input !== undefined ? readFile(input, "hypothesis file") : stdin ?? (await readStdin());
    // SacreBLEU reads standard input with universal newlines and files with "\n" only.
    const hyps = toLines(hypText, input === undefined);
    const refs = refFiles.map((file) => toLines(readFile(file, "reference file"), false));
    refs.forEach((r, k) => {
      if (r.length !== hyps.length) {
        const from = input ?? "standard input";
        throw new UsageError(`hasten bleu: ${from} has ${hyps.length} lines but ${refFiles[k]} has ${r.length}`);
      }
    });
    const result = corpusBleu(hyps, refs, opts);
    const sig = `nrefs:${refs.length}|case:${opts.lowercase ? "lc" : "mixed"}|eff:no|tok:${opts.tokenize}|smooth:exp`;
    out(f["score-only"] ? formatFixed(result.score, width) : formatBleu(result, { width, signature: f.signature ? sig : undefined }));
    return result;
  });
}
