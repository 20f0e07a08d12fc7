// `hasten evaluate --model DIR [--split test2016] [--beam 5] [--limit N] [--json]`: translate a
// Multi30k split with greedy decoding and with beam search, and report SacreBLEU corpus BLEU and
// decoding speed (batched sentences/s, and the median batch-1 latency per sentence).
// Thin: parse flags, read the split with nn/data, decode with decoding/corpus.ts, score with
// nn/metrics/bleu.ts.
import { existsSync } from "node:fs";
import { getBackend } from "../../core/index.ts";
import { translateLines } from "../../decoding/index.ts";
import { defaultDataDir, multi30kFiles, readParallel, type ModelDir, type Multi30kSplit, type TextPair } from "../../nn/index.ts";
import { corpusBleu, formatBleu, type BleuResult } from "../../nn/metrics/bleu.ts";
import { loadModelOrExplain, translatorOf, runCommand, useBackend, writers, type CommandIO } from "../cli/common.ts";
import { formatHelp, parseFlags, UsageError, type FlagSpec } from "../cli/flags.ts";
import { DECODING_FLAGS, decoderName, decodingOptions } from "./translate.ts";

const SPLITS: Multi30kSplit[] = ["train", "valid", "test2016"];

const SPEC: FlagSpec = {
  model: { spec: { kind: "string", nonEmpty: true }, value: "DIR", help: "model directory" },
  split: { spec: { kind: "enum", values: SPLITS }, value: "NAME", help: `${SPLITS.join(", ")}`, default: "test2016" },
  limit: { spec: { kind: "int", min: 1 }, value: "N", help: "only the first N sentence pairs" },
  ...DECODING_FLAGS,
  beam: { ...DECODING_FLAGS.beam, help: "beam size of the second run (default: the model's; 1 = greedy only)" },
  "latency-sentences": { spec: { kind: "int", min: 0 }, value: "N", help: "sentences decoded one at a time for the latency", default: 50 },
  "data-dir": { spec: { kind: "string", nonEmpty: true }, value: "DIR", help: "the folder holding multi30k/ (default: $DATA_DIR, else ../shared/data)" },
  json: { spec: { kind: "bool" }, help: "one JSON object instead of the table" },
  verbose: { spec: { kind: "bool" }, alias: "-v", help: "progress on standard error even when it is not a terminal" },
  help: { spec: { kind: "bool" }, alias: "-h", help: "show this help" },
};

const USAGE = formatHelp({
  usage: "hasten evaluate --model DIR [options]",
  description: "Translates DATA_DIR/multi30k/<split>.<src> with greedy decoding and with beam search, and prints\nSacreBLEU corpus BLEU against <split>.<tgt> (13a, mixed case) and the decoding speed.",
  spec: SPEC,
});

export interface DecoderReport {
  decoder: string; // "greedy" or "beam K"
  beam: number;
  lengthPenalty: number;
  bleu: BleuResult;
  bleuText: string; // formatBleu
  seconds: number; // the batched run over all sentences
  sentencesPerSecond: number;
  batchSize: number;
  latencyMsMedian: number; // batch 1, per sentence
  latencySentences: number;
}

export interface EvaluateReport {
  model: string;
  split: string;
  src: string;
  tgt: string;
  sentences: number;
  backend: string;
  maxLenA: number;
  maxLenB: number;
  results: DecoderReport[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function evaluateCommand(argv: string[], io: CommandIO = {}): Promise<EvaluateReport | undefined> {
  return runCommand(io, async () => {
    const a = parseFlags("evaluate", argv, SPEC);
    const flags = a.flags;
    const out = writers(io, Boolean(flags.verbose));
    if (flags.help) {
      out.stdout(USAGE + "\n");
      return undefined;
    }
    const split = (flags.split as string | undefined) ?? "test2016";
    await useBackend("evaluate", flags.backend as string | undefined);
    const dir = flags.model as string | undefined;
    const m = translatorOf("evaluate", loadModelOrExplain("evaluate", dir, USAGE), dir!);
    try {
      const pairs = readSplit(m, split as Multi30kSplit, flags["data-dir"] as string | undefined, flags.limit as number | undefined);
      const opts = decodingOptions(a, m);
      const latencyN = Math.min((flags["latency-sentences"] as number | undefined) ?? 50, pairs.length);
      const srcs = pairs.map((p) => p.src), refs = pairs.map((p) => p.tgt);
      await translateLines(m, srcs.slice(0, 2), { ...opts, beam: 1 }); // warm-up: first-call compilation is not decoding speed
      const results: DecoderReport[] = [];
      // Autoregressive: greedy, then beam search; non-autoregressive: the model's (or the flags') decoder.
      const nat = m.model.family === "non-autoregressive";
      for (const beam of nat ? [1] : opts.beam > 1 ? [1, opts.beam] : [1]) {
        const name = decoderName(m, { ...opts, beam });
        const t0 = performance.now();
        const { translations } = await translateLines(m, srcs, {
          ...opts, beam, onBatch: (done, total) => out.progress(`${name}: ${done}/${total}`),
        });
        const seconds = (performance.now() - t0) / 1000;
        const latencies: number[] = [];
        for (let i = 0; i < latencyN; i++) {
          out.progress(`${name}: batch-1 latency ${i + 1}/${latencyN}`);
          const s0 = performance.now();
          await translateLines(m, [srcs[i]], { ...opts, beam, batchSize: 1 });
          latencies.push(performance.now() - s0);
        }
        out.endProgress();
        const bleu = corpusBleu(translations, [refs]);
        results.push({
          decoder: name, beam, lengthPenalty: beam === 1 ? 0 : opts.lengthPenalty, bleu, bleuText: formatBleu(bleu),
          seconds, sentencesPerSecond: pairs.length / Math.max(seconds, 1e-9), batchSize: opts.batchSize,
          latencyMsMedian: median(latencies), latencySentences: latencyN,
        });
      }
      const report: EvaluateReport = {
        model: flags.model as string, split, src: m.config.src ?? "", tgt: m.config.tgt ?? "", sentences: pairs.length,
        backend: (flags.backend as string | undefined) ?? getBackend().name, maxLenA: opts.maxLenA, maxLenB: opts.maxLenB, results,
      };
      out.stdout(flags.json ? JSON.stringify(report) + "\n" : formatReport(report));
      return report;
    } finally {
      m.model.dispose();
    }
  });
}

function readSplit(m: ModelDir, split: Multi30kSplit, dataDir: string | undefined, limit: number | undefined): TextPair[] {
  let files: { src: string; tgt: string };
  try {
    if (dataDir !== undefined && !existsSync(dataDir)) throw new Error(`--data-dir ${dataDir} does not exist`);
    files = multi30kFiles(split, m.config.src ?? "de", m.config.tgt ?? "en", dataDir ?? defaultDataDir());
    const pairs = readParallel(files.src, files.tgt);
    if (pairs.length === 0) throw new Error(`${files.src} is empty`);
    return limit === undefined ? pairs : pairs.slice(0, limit);
  } catch (e) {
    throw new UsageError(`hasten evaluate: cannot read the ${split} split: ${(e as Error).message}`);
  }
}

export function formatReport(r: EvaluateReport): string {
  const lines = [
    `${r.model}: multi30k ${r.split} ${r.src}→${r.tgt}, ${r.sentences} sentences, backend ${r.backend}, max length ${r.maxLenA}·n + ${r.maxLenB}`,
    "",
    ...r.results.map((x) => `${x.decoder.padEnd(8)} ${x.bleuText}`),
    "",
  ];
  const head = ["decoder", "BLEU", `sent/s (batch ${r.results[0]?.batchSize})`, `ms/sent (batch 1, median of ${r.results[0]?.latencySentences})`];
  const rows = r.results.map((x) => [
    x.decoder, x.bleu.score.toFixed(2), x.sentencesPerSecond.toFixed(1), x.latencySentences > 0 ? x.latencyMsMedian.toFixed(1) : "-",
  ]);
  const widths = head.map((h, j) => Math.max(h.length, ...rows.map((row) => row[j].length)));
  for (const row of [head, ...rows]) lines.push(row.map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join("  "));
  return lines.join("\n") + "\n";
}
