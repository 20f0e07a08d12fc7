// Decode-step benchmark: greedy decoding at batch 1 with a KV cache on the benchmark LM
// (LM_BENCH_CONFIG, the model of bench/train-step.ts). After a prompt of 32 tokens, each step
// feeds the last token, appends one position to the cache and picks the argmax; a step's time
// includes making the token tensor, the forward pass, the argmax and reading the token back.
// Reports the median per-token latency (target: under 1 ms) and checks that every contender,
// loaded with the same weights, decodes the same tokens as Hasten.
//
//   npx tsx bench/decode-step.ts [--quick] [--rounds=5] [--quiet-wait=60]
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { noGrad } from "../core/autograd.ts";
import { setBackend } from "../core/backend.ts";
import { getWasmRuntime } from "../core/backends/wasm/index.ts";
import { tensor } from "../core/ops/creation.ts";
import { tidy } from "../core/scope.ts";
import type { Tensor } from "../core/tensor.ts";
import { LM_BENCH_CONFIG } from "../nn/index.ts";
import {
  benchOptions, blasNote, cpuNote, formatSection, isMain, machineLine, median, othersShare, parseFlags, pct, ratio, runPython,
  torchPython, waitQuiet, wasmGemmPath, type BenchOptions, type CpuTime, type Section, type TorchBlas,
} from "./harness.ts";
import { jaxDecoder, loadJax } from "./peers/lm-jax.ts";
import { loadTfjs, tfjsDecoder } from "./peers/lm-tfjs.ts";
import { tokens as lcgTokens, writeForPython, type LMDecoder } from "./peers/lm.ts";
import { benchModel, exportWeights } from "./train-step.ts";

const PROMPT = 32;

function hastenDecoder(backend: "wasm" | "cpu", threads: number): LMDecoder {
  const model = benchModel(backend).eval();
  const be = model.parameters()[0].backend;
  const vocab = model.config.vocab;
  const read = (t: Tensor): number => {
    const v = t.item();
    t.dispose();
    return v;
  };
  return {
    name: backend === "wasm" ? `hasten wasm ${threads}t` : "hasten cpu",
    async decode(prompt, steps) {
      setBackend(backend);
      if (backend === "wasm") getWasmRuntime().setNumThreads(threads);
      const cache = model.createCache();
      let t0 = performance.now();
      let tok = read(tidy(() => noGrad(() => {
        const ids = tensor(prompt, { dtype: "int32", shape: [1, prompt.length], backend: be });
        return model.forward(ids, { cache }).narrow(1, prompt.length - 1, 1).reshape(vocab).argmax();
      })));
      const prefillMs = performance.now() - t0;
      const out = [tok], stepMs: number[] = [];
      for (let s = 0; s < steps; s++) {
        t0 = performance.now();
        tok = read(tidy(() => model.decodeStep(tensor(Int32Array.of(tok), { dtype: "int32", shape: [1], backend: be }), cache).argmax(-1)));
        stepMs.push(performance.now() - t0);
        out.push(tok);
      }
      cache.dispose();
      return { tokens: out, stepMs, prefillMs };
    },
    dispose() {
      model.dispose();
    },
  };
}

interface TorchDecode {
  version: string;
  threads_all: number;
  params: number;
  ms_1t: number;
  ms_all: number;
  prefill_ms_1t: number;
  prefill_ms_all: number;
  tokens: number[];
  cpu_1t?: CpuTime;
  cpu_all?: CpuTime;
  blas: TorchBlas | null;
  omp_wait_policy?: string;
}

/** How many of `got` equal `want`, position by position ("same/total"). */
function agreement(got: number[], want: number[]): string {
  let same = 0;
  for (let i = 0; i < want.length; i++) if (got[i] === want[i]) same++;
  return `${same}/${want.length}`;
}

export async function decodeBench(o: BenchOptions, log: (s: string) => void = console.log): Promise<Section> {
  const steps = o.quick ? 16 : 64, rounds = o.rounds ?? (o.quick ? 2 : 5), warmup = 1;
  const notes: string[] = [];
  const prompt = lcgTokens(PROMPT, LM_BENCH_CONFIG.vocab, 7);
  const all = getWasmRuntime().getNumThreads();
  await getWasmRuntime().ready();
  const ref = benchModel("wasm");
  const weights = exportWeights(ref);
  ref.dispose();

  const decoders: LMDecoder[] = [hastenDecoder("wasm", 1)];
  if (all > 1) decoders.push(hastenDecoder("wasm", all));
  decoders.push(hastenDecoder("cpu", 1));
  const tf = await loadTfjs();
  if ("skip" in tf) notes.push(`skipped tfjs: ${tf.skip}`);
  else decoders.push(tfjsDecoder(tf.tf, tf.label, weights));
  const jx = await loadJax().catch((e: Error) => ({ skip: `failed to load: ${e.message}` }));
  if ("skip" in jx) notes.push(`skipped jax-js: ${jx.skip}`);
  else {
    decoders.push(jaxDecoder(jx.jax, `${jx.label} (jit)`, weights, PROMPT + steps));
    notes.push("jax-js: a fixed-size cache written through a one-hot mask (jit needs static shapes); its prefill is the prompt fed one token at a time");
  }

  // warm-up run of each; a peer that fails here is reported and dropped
  for (const d of [...decoders]) {
    try {
      for (let i = 0; i < warmup; i++) await d.decode(prompt, steps);
    } catch (e) {
      if (d.name.startsWith("hasten")) throw e;
      notes.push(`skipped ${d.name}: ${(e as Error).message}`);
      decoders.splice(decoders.indexOf(d), 1);
      try { d.dispose(); } catch { /* already broken */ }
    }
  }
  const quiet = await waitQuiet(o.quietWait);
  if (quiet) notes.push(quiet);
  const stepMs = decoders.map(() => [] as number[]), prefill = decoders.map(() => [] as number[]);
  const toks: number[][] = [];
  const { others } = await othersShare(async () => {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < decoders.length; i++) {
        const res = await decoders[i].decode(prompt, steps);
        stepMs[i].push(...res.stepMs);
        prefill[i].push(res.prefillMs);
        toks[i] = res.tokens;
      }
    }
  });
  log(`  decoded ${rounds} × ${steps} tokens with each contender`);
  notes.push(`other processes used ${pct(others)} of the CPUs during the JavaScript measurements`);
  for (const d of decoders) d.dispose();

  interface Row { name: string; ms: number; prefill: number; tokens: number[] }
  const rows: Row[] = decoders.map((d, i) => ({ name: d.name, ms: median(stepMs[i]), prefill: median(prefill[i]), tokens: toks[i] }));

  const py = torchPython();
  if ("skip" in py) notes.push(`skipped torch: ${py.skip}`);
  else {
    log("  torch: running bench/peers/torch_lm.py decode…");
    const busy = await waitQuiet(o.quietWait);
    if (busy) notes.push(`torch: ${busy}`);
    const dir = writeForPython(weights, { prompt });
    try {
      const script = join(dirname(fileURLToPath(import.meta.url)), "peers", "torch_lm.py");
      const r = runPython<TorchDecode>(py, script, ["decode", dir, String(steps), String(warmup), String(rounds)], 10 * 60e3);
      if ("skip" in r) notes.push(`skipped torch: ${r.skip}`);
      else {
        notes.push(`torch's BLAS: ${blasNote(r.blas)}`, cpuNote("1t", r.cpu_1t, r.omp_wait_policy));
        rows.push({ name: `torch ${r.version} 1t`, ms: r.ms_1t, prefill: r.prefill_ms_1t, tokens: r.tokens });
        if (r.threads_all > 1) {
          rows.push({ name: `torch ${r.version} ${r.threads_all}t`, ms: r.ms_all, prefill: r.prefill_ms_all, tokens: r.tokens });
          notes.push(cpuNote(`${r.threads_all}t`, r.cpu_all, r.omp_wait_policy));
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const h1 = rows[0], hAll = rows.find((r) => r.name === `hasten wasm ${all}t`) ?? h1;
  for (const r of rows) if (r.tokens.join() !== h1.tokens.join()) notes.push(`TOKENS DIFFER: ${r.name} agrees with Hasten on ${agreement(r.tokens, h1.tokens)}`);
  return {
    title: `Decode step, batch 1, KV cache, ${PROMPT}-token prompt then ${steps} greedy steps (median over ${rounds} runs; ${machineLine()})`,
    header: ["contender", "ms/token", "tokens/s", "prefill ms", "same tokens", "hasten 1t ×", `hasten ${all}t ×`],
    rows: rows.map((r) => [
      r.name, r.ms.toFixed(3), (1000 / r.ms).toFixed(0), r.prefill.toFixed(2), agreement(r.tokens, h1.tokens),
      ratio(r.ms, h1.ms), ratio(r.ms, hAll.ms),
    ]),
    notes: [
      `target: under 1 ms per token; "hasten Nt ×": that Hasten contender's speed over this row's`,
      `${wasmGemmPath(getWasmRuntime().fma)} (decoding's few-row products use the gemv kernels, which multiply then add)`,
      ...notes,
    ],
  };
}

if (isMain(import.meta.url)) {
  const o = benchOptions(parseFlags(process.argv.slice(2), "bench/decode-step"), "bench/decode-step");
  console.log(machineLine());
  console.log(`\n${formatSection(await decodeBench(o))}`);
  await getWasmRuntime().shutdown();
}
