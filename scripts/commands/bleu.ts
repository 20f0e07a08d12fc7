// `hasten bleu REF [REF2 ...] < HYPOTHESES`: SacreBLEU-compatible corpus BLEU of detokenized text.
// Thin: parse flags, read lines the way SacreBLEU's CLI does, call nn/metrics/bleu.ts.
import { readFileSync } from "node:fs";
import { corpusBleu, formatBleu, formatFixed, type BleuOptions, type BleuResult } from "../../nn/metrics/bleu.ts";
import { pyRstrip } from "../../nn/metrics/tokenizer-13a.ts";

const USAGE = `usage: hasten bleu REFERENCE_FILE [REFERENCE_FILE ...] [options] < HYPOTHESES_FILE

Corpus BLEU as SacreBLEU computes it by default (13a tokenizer, mixed case, exp smoothing).
Each file holds one detokenized sentence per line; the hypotheses and every reference file must
have the same number of lines.

options:
  -i, --input FILE        read hypotheses from FILE instead of standard input
  -w, --width N           decimals of the score (default 2)
  -b, --score-only        print only the score
  -lc, --lowercase        case-insensitive BLEU
  -tok, --tokenize NAME   13a (default) or none
  --signature             print SacreBLEU's signature after "BLEU" (nrefs, case, tok, smooth)
  -h, --help              show this help`;

export interface BleuIO {
  /** The hypotheses text; read from process.stdin when absent. */
  stdin?: string;
  stdout?: (line: string) => void;
}

/** Lines the way SacreBLEU's CLI reads them: split at "\n" (also "\r" for stdin), each rstripped. */
function toLines(text: string, universalNewlines: boolean): string[] {
  if (text === "") return [];
  const lines = text.split(universalNewlines ? /\r\n|\r|\n/ : "\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map(pyRstrip);
}

function readFile(path: string, role: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === "ENOENT" ? `hasten bleu: ${role} not found: ${path}` : `hasten bleu: cannot read ${path}: ${(e as Error).message}`);
  }
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new Error("hasten bleu: expected hypotheses on standard input (or --input FILE)\n" + USAGE);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function bleuCommand(argv: string[], io: BleuIO = {}): Promise<BleuResult | undefined> {
  const out = io.stdout ?? ((line: string) => process.stdout.write(line + "\n"));
  const refFiles: string[] = [];
  const opts: BleuOptions = {};
  let width = 2, scoreOnly = false, signature = false, input: string | undefined;
  const value = (i: number, flag: string) => {
    if (i >= argv.length) throw new Error(`hasten bleu: ${flag} needs a value`);
    return argv[i];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") {
      out(USAGE);
      return undefined;
    } else if (a === "-i" || a === "--input") input = value(++i, a);
    else if (a === "-w" || a === "--width") {
      width = Number(value(++i, a));
      if (!Number.isInteger(width) || width < 0 || width > 20) throw new Error(`hasten bleu: --width must be an integer in [0, 20], got ${argv[i]}`);
    } else if (a === "-b" || a === "--score-only") scoreOnly = true;
    else if (a === "-lc" || a === "--lowercase") opts.lowercase = true;
    else if (a === "-tok" || a === "--tokenize") {
      const t = value(++i, a);
      if (t !== "13a" && t !== "none") throw new Error(`hasten bleu: --tokenize must be 13a or none, got ${t}`);
      opts.tokenize = t;
    } else if (a === "--signature") signature = true;
    else if (a.startsWith("-") && a !== "-") throw new Error(`hasten bleu: unknown option ${a}\n${USAGE}`);
    else refFiles.push(a);
  }
  if (refFiles.length === 0) throw new Error(`hasten bleu: expected at least one reference file\n${USAGE}`);

  const hypText = input !== undefined ? readFile(input, "hypothesis file") : io.stdin ?? (await readStdin());
  // SacreBLEU reads standard input with universal newlines and files with "\n" only.
  const hyps = toLines(hypText, input === undefined);
  const refs = refFiles.map((f) => toLines(readFile(f, "reference file"), false));
  refs.forEach((r, k) => {
    if (r.length !== hyps.length) {
      const from = input ?? "standard input";
      throw new Error(`hasten bleu: ${from} has ${hyps.length} lines but ${refFiles[k]} has ${r.length}`);
    }
  });
  const result = corpusBleu(hyps, refs, opts);
  const sig = `nrefs:${refs.length}|case:${opts.lowercase ? "lc" : "mixed"}|eff:no|tok:${opts.tokenize ?? "13a"}|smooth:exp`;
  out(scoreOnly ? formatFixed(result.score, width) : formatBleu(result, { width, signature: signature ? sig : undefined }));
  return result;
}
