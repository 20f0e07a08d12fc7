// `hasten translate --model DIR [options] < source.txt > hyps.txt`: one translation per input line.
// Thin: parse flags, load the model directory, call decoding/corpus.ts. Standard output carries the
// translations and nothing else; progress goes to standard error, only on a terminal or --verbose.
// Usage errors and an unloadable model exit with code 2.
import { translateLines, type NatDecoder } from "../../decoding/index.ts";
import type { ModelDir } from "../../nn/index.ts";
import { decodingNumber, loadModelOrExplain, translatorOf, readInput, runCommand, splitLines, useBackend, writers, type CommandIO } from "../cli/common.ts";
import { formatHelp, parseFlags, type FlagSpec, type ParsedArgs } from "../cli/flags.ts";

// Limits that keep one flag from exhausting memory or time (a beam of 100,000 needs gigabytes).
export const MAX_BEAM = 1000;
export const MAX_BATCH = 4096;

// The decoding flags translate and evaluate share, with the model's defaults.
export const DECODING_FLAGS: FlagSpec = {
  beam: { spec: { kind: "int", min: 1, max: MAX_BEAM }, value: "N", help: "beam size; 1 = greedy (default: the model's)" },
  "length-penalty": { spec: { kind: "number", min: 0, max: 100 }, value: "A", help: "rank finished beams by score / len^A (default: the model's)" },
  "max-len-a": { spec: { kind: "number", min: 0, max: 100 }, value: "A", help: "longest output: A · source length + B tokens (default: the model's)" },
  "max-len-b": { spec: { kind: "int", min: 0, max: 100000 }, value: "B", help: "the B above (default: the model's); never past the model's maxLen" },
  "batch-size": { spec: { kind: "int", min: 1, max: MAX_BATCH }, value: "N", help: "sentences decoded together", default: 32 },
  decoder: { spec: { kind: "enum", values: ["nat", "mask-predict", "ctc"] }, value: "NAME", help: "non-autoregressive models: nat (one pass), mask-predict, ctc (default: the model's)" },
  "length-beam": { spec: { kind: "int", min: 1, max: 64 }, value: "N", help: "non-autoregressive: candidate lengths per sentence (default: the model's)" },
  iterations: { spec: { kind: "int", min: 1, max: 100 }, value: "T", help: "mask-predict iterations (default: the model's)" },
  backend: { spec: { kind: "string" }, value: "NAME[:MODE]", help: "wasm (default), cpu, gpujs:webgpu, gpujs:webasm" },
};

const SPEC: FlagSpec = {
  model: { spec: { kind: "string", nonEmpty: true }, value: "DIR", help: "model directory (config.json, tokenizer.json, model.safetensors)" },
  input: { spec: { kind: "string", nonEmpty: true }, alias: "-i", value: "FILE", help: "read sentences from FILE instead of standard input" },
  ...DECODING_FLAGS,
  verbose: { spec: { kind: "bool" }, alias: "-v", help: "progress and timing on standard error even when it is not a terminal" },
  help: { spec: { kind: "bool" }, alias: "-h", help: "show this help" },
};

export const USAGE = formatHelp({
  usage: "hasten translate --model DIR [options] < SOURCE > TRANSLATIONS",
  description: "Translates one sentence per line (the model's source language) and writes one line per input\nline, in order; an empty line gives an empty line. A line longer than the model's maxLen is cut\nto it, with a warning naming the line.",
  spec: SPEC,
});

export function decodingOptions(a: ParsedArgs, m: ModelDir) {
  const f = a.flags;
  const saved = m.config.decoding.decoder;
  const decoder = (f.decoder as NatDecoder | undefined) ?? (saved === "nat" || saved === "mask-predict" || saved === "ctc" ? saved : undefined);
  return {
    decoder,
    dropBlank: m.config.decoding.dropBlank === true,
    lengthBeam: (f["length-beam"] as number | undefined) ?? decodingNumber(m, "lengthBeam", 3),
    // Mask-predict's T: the flag, else the model's when it was saved for mask-predict, else 10.
    iterations: (f.iterations as number | undefined) ?? (decoder !== "mask-predict" ? 1 : saved === "mask-predict" ? decodingNumber(m, "iterations", 10) : 10),
    beam: (f.beam as number | undefined) ?? decodingNumber(m, "beam", 1),
    lengthPenalty: (f["length-penalty"] as number | undefined) ?? decodingNumber(m, "lengthPenalty", 1),
    maxLenA: (f["max-len-a"] as number | undefined) ?? decodingNumber(m, "maxLenA", 1.5),
    maxLenB: (f["max-len-b"] as number | undefined) ?? decodingNumber(m, "maxLenB", 10),
    batchSize: (f["batch-size"] as number | undefined) ?? 32,
  };
}

// "greedy", "beam 5", "nat (length beam 3)", "mask-predict T=10 (length beam 3)", "ctc".
export function decoderName(m: ModelDir, o: ReturnType<typeof decodingOptions>): string {
  if (m.model.family !== "non-autoregressive") return o.beam <= 1 ? "greedy" : `beam ${o.beam}`;
  const d = o.decoder ?? (m.model.config.upsample > 0 ? "ctc" : "nat");
  return d === "ctc" ? "ctc" : d === "mask-predict" ? `mask-predict T=${o.iterations} (length beam ${o.lengthBeam})` : `nat (length beam ${o.lengthBeam})`;
}

export async function translateCommand(argv: string[], io: CommandIO = {}): Promise<string[] | undefined> {
  return runCommand(io, async () => {
    const a = parseFlags("translate", argv, SPEC);
    const out = writers(io, Boolean(a.flags.verbose));
    if (a.flags.help) {
      out.stdout(USAGE + "\n");
      return undefined;
    }
    await useBackend("translate", a.flags.backend as string | undefined);
    const dir = a.flags.model as string | undefined;
    const m = translatorOf("translate", loadModelOrExplain("translate", dir, USAGE), dir!);
    try {
      const opts = decodingOptions(a, m);
      const lines = splitLines(await readInput("translate", io, a.flags.input as string | undefined, out.stderr, USAGE));
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
      out.info(`hasten translate: ${lines.length} lines in ${((performance.now() - t0) / 1000).toFixed(2)} s (${rate(lines.length)}), ${decoderName(m, opts)}, batch ${opts.batchSize}`);
      return translations;
    } finally {
      m.model.dispose();
    }
  });
}
