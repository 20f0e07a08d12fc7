// Where the time of a translation decoding step goes: decodes the first --sentences of Multi30k
// test2016 with the shipped model on the wasm backend (one untimed warm-up pass), timing every
// kernel call (backend.run) by kernel and shape, and splits the wall time into kernels, the rest
// of a step (JavaScript: tensors, shapes, scopes, dispatch) and what happens between steps
// (encoding, moving rows of finished sentences). Not a peer comparison: it tells what to work on.
//
//   npx tsx bench/decode-profile.ts [--batch=1] [--beam=1] [--threads=1] [--sentences=48] [--top=20] [--model=DIR]
//
// Timing each call adds a few microseconds to it (two clock reads and a map update), so "kernels"
// slightly overstates the kernels; compare runs of this tool with each other, not with the bench.
import { resolve } from "node:path";
import type { BackendBuffer } from "../core/backend.ts";
import { setBackend } from "../core/backend.ts";
import { getWasmRuntime } from "../core/backends/wasm/index.ts";
import type { KernelName, KernelParams } from "../core/kernels.ts";
import { decodeCorpus } from "../decoding/index.ts";
import { DecoderRows } from "../decoding/common.ts";
import { findDataDir, isEncoderDecoder, loadModelDir, multi30kFiles, readLines, type EncoderDecoderModel, type ModelDir } from "../nn/index.ts";
import { isMain, machineLine, parseFlags, tally, type Tally } from "./harness.ts";

/** A short name for a kernel call: the kernel and the sizes that decide its cost. */
function describe(kernel: KernelName, p: Record<string, unknown>): string {
  switch (kernel) {
    case "matmul": {
      const q = p as KernelParams["matmul"];
      return `matmul ${q.batch > 1 ? `${q.batch}× ` : ""}[${q.M}×${q.K}]·[${q.K}×${q.N}]${q.transB ? "ᵀ" : ""}`;
    }
    case "unary": case "scalar": return `${kernel} ${p.op} ${p.n}`;
    case "binary": case "where": return `${kernel} ${p.op ?? ""} [${(p.outShape as number[]).join(",")}]`;
    case "reduce": return `reduce ${p.op} [${p.outer},${p.r},${p.inner}]`;
    case "softmax": return `${p.log ? "logSoftmax" : "softmax"} [${p.outer},${p.n},${p.inner}]`;
    case "layerNorm": case "logSoftmaxArgmax": return `${kernel} [${p.rows},${p.n}]`;
    case "strided": return `strided → [${(p.outShape as number[]).join(",")}]`;
    case "concat": return `concat [${p.outer}, ${(p.sizes as number[]).join("+")}, ${p.inner}]`;
    case "indexSelect": return `indexSelect [${p.outer},${p.n}→${p.m},${p.inner}]`;
    default: return kernel;
  }
}

export async function profileDecoding(o: { model: string; batch: number; beam: number; threads: number; sentences: number }) {
  const backend = setBackend("wasm") as { run: (k: KernelName, i: BackendBuffer[], p: never) => BackendBuffer[] };
  const loaded = loadModelDir(o.model);
  if (!isEncoderDecoder(loaded.model)) throw new Error(`decode-profile: ${o.model} is not a translation model`);
  const m = loaded as ModelDir<EncoderDecoderModel>;
  const data = findDataDir();
  if (!data) throw new Error("decode-profile: Multi30k not found (set DATA_DIR)");
  const src = m.config.src ?? "de", tgt = m.config.tgt ?? "en";
  const sources = readLines(multi30kFiles("test2016", src, tgt, data).src).slice(0, o.sentences)
    .map((l) => m.tokenizer.encode(l).slice(0, m.model.config.maxLen));
  const d = m.config.decoding as Record<string, number>;
  const opts = { maxLenA: d.maxLenA, maxLenB: d.maxLenB, lengthPenalty: d.lengthPenalty, banned: [m.tokenizer.unkId, m.tokenizer.maskId], beam: o.beam, batchSize: o.batch };
  const rt = getWasmRuntime();
  await rt.ready();
  rt.setNumThreads(o.threads);
  await decodeCorpus(m.model, sources, opts); // warm-up: compiled code, heap, packed weights

  // Wrap the backend's run and the decoder's step; restored afterwards.
  const byShape = new Map<string, Tally>(), byKernel = new Map<string, Tally>();
  let inStep = false, steps = 0, stepMs = 0, kernelMs = 0, stepKernelMs = 0;
  const run = backend.run;
  backend.run = function (kernel, inputs, params) {
    const t0 = performance.now();
    const out = run.call(this, kernel, inputs, params);
    const ms = performance.now() - t0;
    kernelMs += ms;
    if (inStep) stepKernelMs += ms;
    const where = inStep ? "step" : "between";
    tally(byKernel, `${where} ${kernel}`, ms);
    tally(byShape, `${where} ${describe(kernel, params as Record<string, unknown>)}`, ms);
    return out;
  };
  const proto = DecoderRows.prototype, stepLogits = proto.stepLogits;
  proto.stepLogits = function (this: DecoderRows, ...args: Parameters<typeof stepLogits>) {
    const t0 = performance.now();
    inStep = true;
    try {
      return stepLogits.apply(this, args) as ReturnType<typeof stepLogits>;
    } finally {
      inStep = false;
      steps++;
      stepMs += performance.now() - t0;
    }
  } as typeof stepLogits;
  const t0 = performance.now();
  try {
    await decodeCorpus(m.model, sources, opts);
  } finally {
    backend.run = run;
    proto.stepLogits = stepLogits;
  }
  const totalMs = performance.now() - t0;
  m.model.dispose();
  return { totalMs, steps, stepMs, stepKernelMs, kernelMs, byKernel, byShape };
}

if (isMain(import.meta.url)) {
  const flags = parseFlags(process.argv.slice(2), "bench/decode-profile");
  const known = ["batch", "beam", "threads", "sentences", "top", "model"];
  for (const k of flags.keys()) if (!known.includes(k)) throw new Error(`bench/decode-profile: unknown flag --${k}; known: ${known.map((x) => `--${x}`).join(", ")}`);
  const int = (k: string, dflt: number) => {
    const v = Number(flags.get(k) ?? dflt);
    if (!Number.isInteger(v) || v < 1) throw new Error(`bench/decode-profile: --${k} must be a positive integer, got ${flags.get(k)}`);
    return v;
  };
  const o = {
    model: resolve(flags.get("model") ?? "models/ar-de-en"), batch: int("batch", 1), beam: int("beam", 1),
    threads: int("threads", 1), sentences: int("sentences", 48),
  };
  const r = await profileDecoding(o);
  const per = (ms: number) => `${((1000 * ms) / r.steps).toFixed(0).padStart(6)} µs/step`;
  const pct = (ms: number) => `${((100 * ms) / r.totalMs).toFixed(1).padStart(5)}%`;
  console.log(machineLine());
  console.log(`batch ${o.batch}, beam ${o.beam}, ${o.threads} thread(s): ${o.sentences} sentences, ${r.steps} steps, ${r.totalMs.toFixed(0)} ms (${((1000 * o.sentences) / r.totalMs).toFixed(1)} sentences/s)`);
  console.log(`  decoding steps ${per(r.stepMs)}: kernels ${per(r.stepKernelMs)}, the rest (JavaScript) ${per(r.stepMs - r.stepKernelMs)}`);
  console.log(`  between steps (encoder, moving rows) ${pct(r.totalMs - r.stepMs)} of the time, of which kernels ${pct(r.kernelMs - r.stepKernelMs)}`);
  console.log("\nby kernel:");
  for (const [k, t] of [...r.byKernel].sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(`  ${pct(t.ms)} ${per(t.ms)} ${(t.calls / r.steps).toFixed(1).padStart(6)} calls/step  ${k}`);
  }
  console.log(`\nby kernel and shape (top ${int("top", 20)}):`);
  for (const [k, t] of [...r.byShape].sort((a, b) => b[1].ms - a[1].ms).slice(0, int("top", 20))) {
    console.log(`  ${pct(t.ms)} ${per(t.ms)} ${((1000 * t.ms) / t.calls).toFixed(1).padStart(8)} µs/call  ${k}`);
  }
  await getWasmRuntime().shutdown();
}
