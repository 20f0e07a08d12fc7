// The translation table of issue 10 (and the Markov rows of issue 12), measured in one run: for
// each row (a model directory and its decoder settings) the SacreBLEU score on a Multi30k split,
// the batch-1 latency per sentence and the batched throughput, with the speed-up over a reference
// row (AR beam 5 by default).
//
//   npx tsx bench/nat-table.ts --row='AR beam 5@models/ar-de-en@beam=5' \
//     --row='AR greedy@models/ar-de-en@beam=1' \
//     --row='CMLM OAXE, one pass@runs/cmlm-oaxe/model@decoder=nat,length-beam=3' \
//     [--split=test2016] [--limit=N] [--buckets=8,11,14] [--latency-sentences=100] [--batch-size=64] [--threads=N] [--json=FILE]
//
// A row is LABEL@DIR@SETTINGS, SETTINGS a comma list of beam=K, decoder=nat|mask-predict|ctc,
// length-beam=L, iterations=T, length-penalty=A (absent: the directory's saved decoding settings).
// Latency: the first --latency-sentences sentences, each decoded alone by every row in turn (so a
// slow patch of the shared machine hits all rows alike), median over sentences; one untimed
// warm-up sentence per row first. Throughput: the whole split at --batch-size, one run per row,
// sorted into batches by length as decodeCorpus does.
import { writeFileSync } from "node:fs";
import { getWasmRuntime } from "../core/backends/wasm/index.ts";
import { translateLines, type CorpusOptions, type Translator } from "../decoding/index.ts";
import { findDataDir, loadModelDir, multi30kFiles, readParallel, type ModelDir } from "../nn/index.ts";
import { corpusBleu } from "../nn/metrics/bleu.ts";
import { isMain, machineLine, median } from "./harness.ts";

interface Row {
  label: string;
  dir: string;
  settings: Record<string, string>;
}

interface Result {
  label: string;
  dir: string;
  kind: string;
  decoder: string;
  bleu: number;
  bleuText: string;
  latencyMs: number; // median, batch 1
  sentPerSec: number; // batched
  truncated: number;
  buckets?: { range: string; sentences: number; bleu: number }[]; // BLEU by source length (words)
}

const USAGE = "usage: npx tsx bench/nat-table.ts --row=LABEL@DIR@SETTINGS [--row=...] [--split=test2016] [--limit=N] [--limit=N] [--buckets=8,11,14] [--latency-sentences=100] [--batch-size=64] [--threads=N] [--reference=LABEL] [--json=FILE]";
const SETTING_KEYS = ["beam", "decoder", "length-beam", "iterations", "length-penalty"];

function parseArgs(argv: string[]) {
  const rows: Row[] = [];
  const flags = new Map<string, string>();
  for (const a of argv) {
    const m = /^--([^=]+)=(.*)$/.exec(a);
    if (!m) throw new Error(`nat-table: expected --key=value, got ${a}\n${USAGE}`);
    if (m[1] !== "row") {
      if (!["split", "limit", "buckets", "latency-sentences", "batch-size", "threads", "reference", "json"].includes(m[1])) throw new Error(`nat-table: unknown flag --${m[1]}\n${USAGE}`);
      flags.set(m[1], m[2]);
      continue;
    }
    const parts = m[2].split("@");
    if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) throw new Error(`nat-table: a row is LABEL@DIR[@SETTINGS], got ${m[2]}`);
    const settings: Record<string, string> = {};
    for (const kv of (parts[2] ?? "").split(",").filter(Boolean)) {
      const [k, v] = kv.split("=");
      if (!SETTING_KEYS.includes(k) || v === undefined) throw new Error(`nat-table: row ${parts[0]}: expected ${SETTING_KEYS.join("|")}=VALUE, got ${kv}`);
      settings[k] = v;
    }
    rows.push({ label: parts[0], dir: parts[1], settings });
  }
  if (rows.length === 0) throw new Error(`nat-table: no --row given\n${USAGE}`);
  const int = (k: string, d: number) => {
    const v = Number(flags.get(k) ?? d);
    if (!Number.isInteger(v) || v < 1) throw new Error(`nat-table: --${k} must be a positive integer, got ${flags.get(k)}`);
    return v;
  };
  return {
    rows, split: flags.get("split") ?? "test2016", limit: flags.has("limit") ? int("limit", 1) : undefined, latencyN: int("latency-sentences", 100), batchSize: int("batch-size", 64),
    buckets: flags.has("buckets") ? flags.get("buckets")!.split(",").map(Number) : undefined,
    threads: flags.has("threads") ? int("threads", 1) : undefined, reference: flags.get("reference"), json: flags.get("json"),
  };
}

// The directory's saved decoding settings, overridden by the row's.
function optionsOf(m: ModelDir, s: Record<string, string>): CorpusOptions & { label: string } {
  const d = m.config.decoding as Record<string, unknown>;
  const num = (k: string, saved: unknown, dflt: number) => (s[k] !== undefined ? Number(s[k]) : typeof saved === "number" ? saved : dflt);
  const nat = m.model.family === "non-autoregressive";
  const decoder = (s.decoder ?? (typeof d.decoder === "string" ? d.decoder : undefined)) as CorpusOptions["decoder"];
  const iterations = num("iterations", decoder === "mask-predict" ? d.iterations : undefined, decoder === "mask-predict" ? 10 : 1);
  const o: CorpusOptions = {
    beam: nat ? 1 : num("beam", d.beam, 1), lengthPenalty: num("length-penalty", d.lengthPenalty, 1),
    maxLenA: num("max-len-a", d.maxLenA, 1.5), maxLenB: num("max-len-b", d.maxLenB, 10),
    decoder, lengthBeam: num("length-beam", d.lengthBeam, 3), iterations, dropBlank: d.dropBlank === true,
  };
  const label = !nat ? (o.beam! > 1 ? `beam ${o.beam}` : "greedy")
    : (decoder ?? ((m.model.config as { upsample?: number }).upsample! > 0 ? "ctc" : "nat")) === "ctc" ? "ctc"
    : decoder === "mask-predict" ? `mask-predict T=${iterations}, length beam ${o.lengthBeam}` : `one pass, length beam ${o.lengthBeam}`;
  return { ...o, label };
}

// Corpus BLEU of the sentences whose source has lo..hi words, for bounds b0 < b1 < ...: buckets
// 1..b0, b0+1..b1, ..., and above the last bound.
function bucketBleu(bounds: number[], srcs: string[], hyps: string[], refs: string[]) {
  if (bounds.some((b, i) => !Number.isInteger(b) || b < 1 || (i > 0 && b <= bounds[i - 1]))) throw new Error(`nat-table: --buckets must be increasing positive integers, got ${bounds.join(",")}`);
  const edges = [0, ...bounds, Infinity];
  return edges.slice(1).map((hi, i) => {
    const lo = edges[i] + 1;
    const idx = srcs.map((s, j) => [s.trim().split(/\s+/).length, j]).filter(([n]) => n >= lo && n <= hi).map(([, j]) => j);
    const range = hi === Infinity ? `${lo}+` : `${lo}–${hi}`;
    return { range, sentences: idx.length, bleu: idx.length ? corpusBleu(idx.map((j) => hyps[j]), [idx.map((j) => refs[j])]).score : NaN };
  });
}

export async function natTable(argv: string[]): Promise<Result[]> {
  const a = parseArgs(argv);
  const wasm = getWasmRuntime();
  await wasm.ready();
  if (a.threads !== undefined) wasm.setNumThreads(a.threads);
  const dataDir = findDataDir();
  if (!dataDir) throw new Error("nat-table: no data directory with multi30k/ (set DATA_DIR)");
  const loaded = a.rows.map((r) => {
    const m = loadModelDir(r.dir);
    if (m.model.family !== "encoder-decoder" && m.model.family !== "non-autoregressive") throw new Error(`nat-table: ${r.dir} is not a translation model`);
    return { row: r, m: m as ModelDir & { model: Translator }, opts: optionsOf(m, r.settings) };
  });
  const src0 = loaded[0].m.config.src ?? "de", tgt0 = loaded[0].m.config.tgt ?? "en";
  const files = multi30kFiles(a.split as "test2016", src0, tgt0, dataDir);
  const all = readParallel(files.src, files.tgt);
  const pairs = a.limit === undefined ? all : all.slice(0, a.limit);
  const srcs = pairs.map((p) => p.src), refs = pairs.map((p) => p.tgt);
  console.log(`# ${machineLine()}, wasm ${wasm.getNumThreads()} threads`);
  console.log(`# multi30k ${a.split} ${src0}→${tgt0}: ${pairs.length} sentences; batch ${a.batchSize} for throughput, first ${Math.min(a.latencyN, pairs.length)} alone for latency`);

  const results: Result[] = [];
  for (const { row, m, opts } of loaded) {
    await translateLines(m, srcs.slice(0, 2), { ...opts, batchSize: 2 }); // warm-up
    const t0 = performance.now();
    const { translations, truncated } = await translateLines(m, srcs, { ...opts, batchSize: a.batchSize });
    const s = (performance.now() - t0) / 1000;
    const bleu = corpusBleu(translations, [refs]);
    const buckets = a.buckets && bucketBleu(a.buckets, srcs, translations, refs);
    results.push({ buckets,
      label: row.label, dir: row.dir, kind: String((m.config as { kind?: string }).kind ?? "transformer"), decoder: opts.label,
      bleu: bleu.score, bleuText: `BLEU ${bleu.score.toFixed(2)}`, latencyMs: NaN, sentPerSec: pairs.length / s, truncated: truncated.length,
    });
    console.error(`  ${row.label}: BLEU ${bleu.score.toFixed(2)}, ${(pairs.length / s).toFixed(1)} sent/s at batch ${a.batchSize}`);
  }
  // Latency: sentence by sentence, every row in turn.
  const n = Math.min(a.latencyN, pairs.length);
  const lat = loaded.map(() => [] as number[]);
  for (const { m, opts } of loaded) await translateLines(m, [srcs[0]], { ...opts, batchSize: 1 });
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < loaded.length; j++) {
      const { m, opts } = loaded[j];
      const t0 = performance.now();
      await translateLines(m, [srcs[i]], { ...opts, batchSize: 1 });
      lat[j].push(performance.now() - t0);
    }
  }
  results.forEach((r, j) => (r.latencyMs = median(lat[j])));
  for (const { m } of loaded) m.model.dispose();

  const ref = results.find((r) => r.label === a.reference) ?? results.find((r) => /^beam [2-9]/.test(r.decoder)) ?? results[0];
  const head = ["model", "decoder", "BLEU", "ms/sent, batch 1", `speed-up vs ${ref.label}`, `sent/s, batch ${a.batchSize}`, "ratio"];
  const rows = results.map((r) => [
    r.label, r.decoder, r.bleu.toFixed(2), r.latencyMs.toFixed(1), `${(ref.latencyMs / r.latencyMs).toFixed(1)}×`,
    r.sentPerSec.toFixed(1), `${(r.sentPerSec / ref.sentPerSec).toFixed(1)}×`,
  ]);
  console.log("\n| " + head.join(" | ") + " |\n|" + head.map(() => "---").join("|") + "|");
  for (const row of rows) console.log("| " + row.join(" | ") + " |");
  if (a.buckets) {
    const bh = ["model", "decoder", ...results[0].buckets!.map((b) => `${b.range} words (${b.sentences})`)];
    console.log("\nBLEU by source length\n\n| " + bh.join(" | ") + " |\n|" + bh.map(() => "---").join("|") + "|");
    for (const r of results) console.log("| " + [r.label, r.decoder, ...r.buckets!.map((b) => b.bleu.toFixed(2))].join(" | ") + " |");
  }
  const cut = results.filter((r) => r.truncated > 0);
  if (cut.length) console.log(`\nsources cut to maxLen: ${cut.map((r) => `${r.label} ${r.truncated}`).join(", ")}`);
  if (a.json) writeFileSync(a.json, JSON.stringify({ machine: machineLine(), split: a.split, sentences: pairs.length, latencySentences: n, batchSize: a.batchSize, reference: ref.label, results }, null, 1) + "\n");
  return results;
}

if (isMain(import.meta.url)) {
  natTable(process.argv.slice(2)).catch((e) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
