// Training-step benchmark: one forward + backward + AdamW step of the 2-layer pre-LN Transformer
// LM (LM_BENCH_CONFIG: d 256, 4 heads, FFN 1024, vocab 1000, tied embeddings, dropout 0) on a
// batch of 16 × 64 tokens. Hasten (wasm backend on 1 thread and on all threads, and the plain
// cpu backend) against tfjs-wasm, jax-js (wasm) and PyTorch (CPU, 1 thread and all threads),
// all starting from the same weights and stepping on the same batch, so their first losses must
// agree. Reports the median ms per step, tokens per second and Hasten's speed over each peer's.
//
//   npx tsx bench/train-step.ts [--quick] [--rounds=5] [--quiet-wait=60]
//
// The JavaScript contenders take turns within each round (a slow patch of a shared machine hits
// them alike); PyTorch runs afterwards in a Python subprocess.
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setBackend } from "../core/backend.ts";
import { getWasmRuntime } from "../core/backends/wasm/index.ts";
import "../core/index.ts";
import { tensor } from "../core/ops/creation.ts";
import { crossEntropy } from "../core/ops/nn.ts";
import { tidy } from "../core/scope.ts";
import { AdamW, LM_BENCH_CONFIG, lmConfig, TransformerLM } from "../nn/index.ts";
import {
  benchOptions, blasNote, cpuNote, formatSection, interleave, isMain, machineLine, median, othersShare, parseFlags, pct, ratio,
  runPython, torchPython, waitQuiet, wasmGemmPath, type BenchOptions, type CpuTime, type Section, type Timed, type TorchBlas,
} from "./harness.ts";
import { jaxTrainer, loadJax } from "./peers/lm-jax.ts";
import { loadTfjs, tfjsTrainer } from "./peers/lm-tfjs.ts";
import { ADAMW, lmBatch, writeForPython, type LMTrainer, type LMWeights } from "./peers/lm.ts";

const B = 16, T = 64;

// moved to harness.ts (matmul.ts reports the BLAS too); other benchmarks import it from here
export { blasNote } from "./harness.ts";

/** The benchmark model with dropout off, so every peer does the same work. */
export function benchModel(backend: "wasm" | "cpu"): TransformerLM {
  setBackend(backend);
  return new TransformerLM(lmConfig({ ...LM_BENCH_CONFIG, dropout: 0, attnDropout: 0 }));
}

/** A model's parameters by name, copied out: what every peer loads. */
export function exportWeights(model: TransformerLM): LMWeights {
  const named = model.namedParameters();
  const { vocab, dModel, heads, ffn, layers, maxLen } = model.config;
  return {
    config: { vocab, dModel, heads, ffn, layers, maxLen },
    names: named.map(([n]) => n),
    shapes: named.map(([, p]) => [...p.shape]),
    data: named.map(([, p]) => Float32Array.from(p.dataSync() as Float32Array)),
  };
}

function hastenTrainer(backend: "wasm" | "cpu", threads: number, ids: Int32Array, targets: Int32Array): LMTrainer {
  const model = benchModel(backend);
  const be = model.parameters()[0].backend;
  const idsT = tensor(ids, { dtype: "int32", shape: [B, T], backend: be });
  const tgtT = tensor(targets, { dtype: "int32", shape: [B, T], backend: be });
  const { lr, beta1, beta2, eps, weightDecay } = ADAMW;
  // the loss read serves as the finiteness check, as in nn/train (no extra gradient read)
  const opt = new AdamW(model.namedParameters(), { lr, betas: [beta1, beta2], eps, weightDecay, checkFinite: false });
  return {
    name: backend === "wasm" ? `hasten wasm ${threads}t` : "hasten cpu",
    params: model.numParameters(),
    async step() {
      setBackend(backend);
      if (backend === "wasm") getWasmRuntime().setNumThreads(threads);
      const lossT = tidy(() => {
        const loss = crossEntropy(model.forward(idsT), tgtT);
        loss.backward();
        return loss;
      });
      const loss = lossT.item();
      lossT.dispose();
      opt.step();
      opt.zeroGrad();
      return loss;
    },
    dispose() {
      opt.dispose();
      model.dispose();
      idsT.dispose();
      tgtT.dispose();
    },
  };
}

interface TorchTrain {
  version: string;
  threads_all: number;
  params: number;
  ms_1t: number;
  ms_all: number;
  losses: number[];
  cpu_1t?: CpuTime;
  cpu_all?: CpuTime;
  blas: TorchBlas | null;
  omp_wait_policy?: string;
}

export async function trainBench(o: BenchOptions, log: (s: string) => void = console.log): Promise<Section> {
  const warmup = o.quick ? 2 : 3, rounds = o.rounds ?? (o.quick ? 2 : 5);
  const notes: string[] = [];
  const { ids, targets } = lmBatch(B, T, LM_BENCH_CONFIG.vocab);
  const all = getWasmRuntime().getNumThreads();
  await getWasmRuntime().ready();

  const ref = benchModel("wasm");
  const weights = exportWeights(ref);
  ref.dispose();
  const trainers: LMTrainer[] = [hastenTrainer("wasm", 1, ids, targets)];
  if (all > 1) trainers.push(hastenTrainer("wasm", all, ids, targets));
  trainers.push(hastenTrainer("cpu", 1, ids, targets));
  const tf = await loadTfjs();
  if ("skip" in tf) notes.push(`skipped tfjs: ${tf.skip}`);
  else trainers.push(tfjsTrainer(tf.tf, tf.label, weights, ids, targets, B, T));
  const jx = await loadJax().catch((e: Error) => ({ skip: `failed to load: ${e.message}` }));
  if ("skip" in jx) notes.push(`skipped jax-js: ${jx.skip}`);
  else trainers.push(jaxTrainer(jx.jax, jx.label, weights, ids, targets, B, T));

  // two untimed steps of each (warm-up): the losses before and after one AdamW update from the
  // shared initial weights must agree across peers. A peer that fails here is reported and dropped.
  const losses = new Map<LMTrainer, number[]>();
  for (const tr of [...trainers]) {
    log(`  ${tr.name}: first steps…`);
    try {
      losses.set(tr, [await tr.step(), await tr.step()]);
    } catch (e) {
      if (tr.name.startsWith("hasten")) throw e;
      notes.push(`skipped ${tr.name}: its first step failed: ${(e as Error).message}`);
      trainers.splice(trainers.indexOf(tr), 1);
      try { tr.dispose(); } catch { /* already broken */ }
    }
  }
  const quiet = await waitQuiet(o.quietWait);
  if (quiet) notes.push(quiet);
  const timed: Timed[] = trainers.map((tr) => ({
    name: tr.name,
    async sample() {
      const t0 = performance.now();
      await tr.step();
      return performance.now() - t0;
    },
  }));
  const { value: times, others } = await othersShare(() => interleave(timed, warmup - 2, rounds, log));
  notes.push(`other processes used ${pct(others)} of the CPUs during the JavaScript measurements`);
  for (const tr of trainers) tr.dispose();

  interface Row { name: string; params: number; losses: number[]; ms: number }
  const rows: Row[] = trainers.map((tr, i) => ({ name: tr.name, params: tr.params, losses: losses.get(tr)!, ms: median(times[i]) }));

  const py = torchPython();
  if ("skip" in py) notes.push(`skipped torch: ${py.skip}`);
  else {
    log("  torch: running bench/peers/torch_lm.py…");
    const busy = await waitQuiet(o.quietWait);
    if (busy) notes.push(`torch: ${busy}`);
    const dir = writeForPython(weights, { ids, targets });
    try {
      const script = join(dirname(fileURLToPath(import.meta.url)), "peers", "torch_lm.py");
      const r = runPython<TorchTrain>(py, script, ["train", dir, String(B), String(T), String(warmup), String(rounds)], 30 * 60e3);
      if ("skip" in r) notes.push(`skipped torch: ${r.skip}`);
      else {
        notes.push(`torch's BLAS: ${blasNote(r.blas)}`, cpuNote("1t", r.cpu_1t, r.omp_wait_policy));
        rows.push({ name: `torch ${r.version} 1t`, params: r.params, losses: r.losses, ms: r.ms_1t });
        if (r.threads_all > 1) {
          rows.push({ name: `torch ${r.version} ${r.threads_all}t`, params: r.params, losses: r.losses, ms: r.ms_all });
          notes.push(cpuNote(`${r.threads_all}t`, r.cpu_all, r.omp_wait_policy));
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const h1 = rows[0], hAll = rows.find((r) => r.name === `hasten wasm ${all}t`) ?? h1;
  const hParams = h1.params;
  for (const r of rows) {
    if (r.params !== hParams) notes.push(`PARAMETER COUNT DIFFERS: ${r.name} has ${r.params}, Hasten ${hParams}`);
    r.losses.forEach((l, k) => {
      if (!Number.isFinite(l) || Math.abs(l - h1.losses[k]) > 2e-3) notes.push(`LOSS ${k + 1} DIFFERS: ${r.name} ${l}, Hasten ${h1.losses[k]}`);
    });
  }
  notes.push(
    `loss 1 is from the shared initial weights; it is ≈ 12, not ln(1000) = ${Math.log(1000).toFixed(2)}, because at init the tied ` +
    "embedding makes every position predict its own input token (logit ≈ 12, the rest ≈ 0); loss 2 is after one AdamW step",
  );
  const tok = (ms: number) => (B * T) / (ms / 1000);
  return {
    title: `Training step, ${B}×${T} tokens, forward + backward + AdamW (median of ${rounds} after warm-up; ${machineLine()})`,
    header: ["contender", "params", "loss 1", "loss 2", "ms/step", "tokens/s", "hasten 1t ×", `hasten ${all}t ×`],
    rows: rows.map((r) => [
      r.name, String(r.params), r.losses[0].toFixed(4), r.losses[1].toFixed(4), r.ms.toFixed(1), tok(r.ms).toFixed(0),
      ratio(r.ms, h1.ms), ratio(r.ms, hAll.ms),
    ]),
    notes: [`"hasten Nt ×": that Hasten contender's tokens/s over this row's (above 1: Hasten is faster)`, wasmGemmPath(getWasmRuntime().fma), ...notes],
  };
}

if (isMain(import.meta.url)) {
  const o = benchOptions(parseFlags(process.argv.slice(2), "bench/train-step"), "bench/train-step");
  console.log(machineLine());
  console.log(`\n${formatSection(await trainBench(o))}`);
  await getWasmRuntime().shutdown();
}
