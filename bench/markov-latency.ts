// Markov Transformer latency benchmark (issue 12): per-step decoding latency and decoder-cache
// bytes against the target position, for MAT (ring buffer of the last k keys/values per layer)
// and for the full-attention Transformer (KV cache growing by one position per step), both the
// same size and built from the same seed, measured in one process, decoding in lockstep.
//
// Forced decoding: batch 1, a fixed source, a fixed token stream fed for `steps` steps whatever the
// model predicts (no eos), far past the models' maxLen of 256 (sinusoidal positions have no end).
// A step's time covers making the token tensor, decodeStep, the argmax and reading it back. Each
// position's figure is the median over the runs; a least-squares line over positions ≥ 16 gives
// each model's slope. Expected: MAT flat (its cost is O(L·k·D) + O(L·S·D) a step), full attention
// growing (it attends over t keys, and this cache copies its t keys to append one).
//
//   npx tsx bench/markov-latency.ts [--quick] [--steps=3072] [--rounds=3] [--order=4]
//       [--variant=strict|window] [--threads=1] [--quiet-wait=10] [--svg=runs/markov-latency.svg]
//
// Writes the latency plot to --svg and the cache-bytes plot beside it (…-bytes.svg).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { getWasmRuntime } from "../core/backends/wasm/index.ts";
import { keep, noGrad, setBackend, tensor, tidy, type Tensor } from "../core/index.ts";
import {
  DecoderCache, markovConfig, MarkovTransformer, RingKVCache, Transformer, transformerConfig, type DecodeCache, type EncoderDecoderModel, type MarkovVariant,
} from "../nn/index.ts";
import { lossCurveSvg } from "../nn/train/plot.ts";
import { benchOptions, formatSection, isMain, machineLine, median, othersShare, parseFlags, pct, waitQuiet, type Section } from "./harness.ts";
import { tokens as lcgTokens } from "./peers/lm.ts";

export interface LatencyOptions {
  steps: number;
  rounds: number;
  order: number;
  variant: MarkovVariant;
  // The baseline's shape by default (README: d 256, 4 heads, FFN 1024, 3 + 3 layers, 8,000 tokens).
  dModel?: number;
  heads?: number;
  ffn?: number;
  layers?: number;
  vocab?: number;
  srcLen?: number;
  log?: (s: string) => void;
}

export interface Curve {
  name: string;
  ms: number[]; // per position: the median step time over the rounds
  bytes: number[]; // per position: the decoder self-attention cache after the step
}

// Bytes of a decoder cache's self-attention keys and values (float32), for either cache kind.
export function selfCacheBytes(cache: DecodeCache): number {
  if (cache instanceof RingKVCache) return cache.selfBytes;
  if (cache instanceof DecoderCache) return 4 * cache.self.reduce((n, c) => n + (c.keys?.size ?? 0) + (c.values?.size ?? 0), 0);
  throw new Error("selfCacheBytes: unknown cache kind");
}

// One forced-decoding run of every model in lockstep: step t of each model, then step t + 1 of
// each, so that a slow patch of a shared machine falls on the same positions of all of them
// (their ratio at a position is then robust even where the absolute figures are not).
function lockstepRun(models: EncoderDecoderModel[], src: Tensor, forced: Int32Array): { ms: number[]; bytes: number[] }[] {
  return noGrad(() => {
    const backend = src.backend;
    const state = models.map((model) => {
      const mask = keep(src.eq(model.config.padId));
      return { model, mask, memory: keep(tidy(() => model.encode(src, mask))), cache: model.createCache(), ms: [] as number[], bytes: [] as number[] };
    });
    for (let t = 0; t < forced.length; t++) {
      for (const s of state) {
        const t0 = performance.now();
        tidy(() => s.model.decodeStep(tensor(forced.subarray(t, t + 1), { dtype: "int32", backend }), s.memory, s.mask, s.cache).argmax(-1).item());
        s.ms.push(performance.now() - t0);
        s.bytes.push(selfCacheBytes(s.cache));
      }
    }
    for (const s of state) {
      s.cache.dispose();
      s.memory.dispose();
      s.mask.dispose();
    }
    return state.map((s) => ({ ms: s.ms, bytes: s.bytes }));
  });
}

// MAT and the Transformer of the same shape and seed (so the same weights), decoding in lockstep;
// the model that steps first alternates between rounds.
export async function measureLatency(o: LatencyOptions): Promise<{ curves: Curve[]; others: number; params: number }> {
  const shape = {
    vocab: o.vocab ?? 8000, dModel: o.dModel ?? 256, heads: o.heads ?? 4, ffn: o.ffn ?? 1024,
    encLayers: o.layers ?? 3, decLayers: o.layers ?? 3, maxLen: 256, dropout: 0, seed: 1,
  };
  const names = [`MAT k=${o.order} ${o.variant}`, "full attention"];
  const models: EncoderDecoderModel[] = [
    new MarkovTransformer(markovConfig({ ...shape, order: o.order, variant: o.variant })).eval(),
    new Transformer(transformerConfig(shape)).eval(),
  ];
  const srcLen = o.srcLen ?? 20;
  const src = keep(tensor(lcgTokens(srcLen, shape.vocab - 4, 3).map((x) => x + 4), { dtype: "int32", shape: [1, srcLen] }));
  const forced = lcgTokens(o.steps, shape.vocab - 4, 11).map((x) => x + 4);
  const runs = models.map(() => [] as { ms: number[]; bytes: number[] }[]);
  lockstepRun(models, src, forced.subarray(0, Math.min(64, o.steps))); // warm-up (kernels, heap)
  const { others } = await othersShare(async () => {
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? [0, 1] : [1, 0];
      const got = lockstepRun(order.map((i) => models[i]), src, forced);
      order.forEach((i, j) => runs[i].push(got[j]));
      o.log?.(`  round ${r + 1}/${o.rounds}: ${o.steps} steps of each model`);
    }
  });
  const curves = names.map((name, i) => ({
    name,
    ms: Array.from({ length: o.steps }, (_, t) => median(runs[i].map((run) => run.ms[t]))),
    bytes: runs[i][0].bytes,
  }));
  const params = models[0].numParameters();
  for (const m of models) m.dispose();
  src.dispose();
  return { curves, others, params };
}

// Least squares y ≈ a + b·x.
export function fitLine(xs: readonly number[], ys: readonly number[]): { slope: number; intercept: number } {
  const n = xs.length;
  const mx = xs.reduce((s, x) => s + x, 0) / n, my = ys.reduce((s, y) => s + y, 0) / n;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  return { slope, intercept: my - slope * mx };
}

const FIT_FROM = 16; // positions before this are left out of the fit (the first steps fill the caches)

// The fit runs over medians of 64 windows, not over single steps: a shared machine's pauses
// (another process, the garbage collector) put 10× outliers into single steps that would tilt a
// least-squares line, and a window median ignores them.
export function slopeOf(c: Curve): { slope: number; intercept: number; mean: number } {
  const ys = c.ms.slice(FIT_FROM);
  const pts = windowed(ys, Math.max(1, Math.floor(ys.length / 64))).map(([x, y]): [number, number] => [x + FIT_FROM, y]);
  const fit = fitLine(pts.map((p) => p[0]), pts.map((p) => p[1]));
  return { ...fit, mean: pts.reduce((s, p) => s + p[1], 0) / Math.max(1, pts.length) };
}

// Medians over windows of `w` positions, as [position, value] points (a plot of thousands of
// per-step figures would show mostly the machine's noise).
function windowed(ys: readonly number[], w: number): [number, number][] {
  const out: [number, number][] = [];
  for (let a = 0; a < ys.length; a += w) out.push([a + Math.min(w, ys.length - a) / 2, median(ys.slice(a, a + w))]);
  return out;
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c"];

export function latencySvg(curves: Curve[], title: string): string {
  const w = Math.max(1, Math.round(curves[0].ms.length / 128));
  return lossCurveSvg(curves.map((c, i) => ({ label: c.name, color: COLORS[i % COLORS.length], points: windowed(c.ms, w) })), {
    title, xLabel: "target position", yLabel: `ms per step (median over ${w}-step windows)`,
  });
}

export function bytesSvg(curves: Curve[], title: string): string {
  return lossCurveSvg(curves.map((c, i) => ({
    label: c.name, color: COLORS[i % COLORS.length], points: c.bytes.map((b, t): [number, number] => [t, b / 2 ** 20]).filter((_, t) => t % 8 === 0 || t === c.bytes.length - 1),
  })), { title, xLabel: "target position", yLabel: "self-attention cache, MiB" });
}

export async function markovLatencyBench(o: LatencyOptions & { quietWait: number; threads: number; svg: string }): Promise<Section> {
  await setBackend("wasm");
  await getWasmRuntime().ready();
  getWasmRuntime().setNumThreads(o.threads);
  const notes: string[] = [];
  const quiet = await waitQuiet(o.quietWait);
  if (quiet) notes.push(quiet);
  const machine = machineLine();
  const { curves, others, params } = await measureLatency(o);
  notes.push(`other processes used ${pct(others)} of the CPUs while it measured; wasm backend, ${o.threads} thread(s)`);
  const fits = curves.map(slopeOf);
  for (const [i, c] of curves.entries()) {
    const f = fits[i];
    notes.push(`${c.name}: fitted ${f.intercept.toFixed(3)} ms + ${(1000 * f.slope).toFixed(4)} ms per 1000 positions; ` +
      `slope × ${o.steps} = ${pct((f.slope * o.steps) / f.mean)} of its mean step (of window medians); cache ${(c.bytes[c.bytes.length - 1] / 2 ** 20).toFixed(2)} MiB at position ${o.steps - 1}`);
  }
  mkdirSync(dirname(o.svg) || ".", { recursive: true });
  const title = `decoding step vs position (${params.toLocaleString("en-US")} parameters, batch 1)`;
  writeFileSync(o.svg, latencySvg(curves, title));
  const bytesPath = o.svg.replace(/\.svg$/, "") + "-bytes.svg";
  writeFileSync(bytesPath, bytesSvg(curves, "decoder self-attention cache vs position"));
  notes.push(`plots: ${o.svg}, ${bytesPath}`);

  // Rows: median step time in eight equal position ranges, and the cache at the range's end.
  const rows: string[][] = [];
  const n = Math.min(8, o.steps), w = Math.ceil(o.steps / n);
  for (let a = 0; a < o.steps; a += w) {
    const b = Math.min(o.steps, a + w);
    const cells = curves.flatMap((c) => [median(c.ms.slice(a, b)).toFixed(3), (c.bytes[b - 1] / 1024).toFixed(0)]);
    rows.push([`${a}–${b - 1}`, ...cells, (median(curves[1].ms.slice(a, b)) / median(curves[0].ms.slice(a, b))).toFixed(2)]);
  }
  return {
    title: `Markov Transformer vs full attention: forced decoding of ${o.steps} positions, median of ${o.rounds} runs (${machine})`,
    header: ["positions", ...curves.flatMap((c) => [`${c.name} ms`, "cache KiB"]), "full / MAT"],
    rows,
    notes,
  };
}

if (isMain(import.meta.url)) {
  const flags = parseFlags(process.argv.slice(2), "bench/markov-latency");
  const base = benchOptions(flags, "bench/markov-latency", ["steps", "order", "variant", "threads", "svg"]);
  const int = (k: string, d: number) => {
    const v = flags.get(k);
    const n = v === undefined ? d : Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`bench/markov-latency: --${k} must be an integer >= 1, got ${v}`);
    return n;
  };
  const variant = flags.get("variant") ?? "strict";
  if (variant !== "strict" && variant !== "window") throw new Error(`bench/markov-latency: --variant must be strict or window, got ${variant}`);
  const o = {
    steps: int("steps", base.quick ? 512 : 3072), rounds: base.rounds ?? (base.quick ? 1 : 3), order: int("order", 4), variant: variant as MarkovVariant,
    // A shorter default wait than the other benchmarks': the whole default run stays near 2 minutes.
    threads: int("threads", 1), quietWait: flags.has("quiet-wait") ? base.quietWait : base.quick ? 0 : 10, svg: flags.get("svg") ?? "runs/markov-latency.svg", log: (s: string) => console.log(s),
  };
  console.log(machineLine());
  console.log(`\n${formatSection(await markovLatencyBench(o))}`);
  await getWasmRuntime().shutdown();
}
