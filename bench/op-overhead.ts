// Per-op dispatch overhead: the median time of one small op, called in a loop, result freed each
// time. The ops are small enough that the arithmetic is negligible, so this measures what a
// framework spends around a kernel: argument checks, shape logic, autograd bookkeeping,
// allocation, and for jax-js the wait for the result (blockUntilReady).
//
//   npx tsx bench/op-overhead.ts [--quick] [--rounds=7] [--quiet-wait=60]
import { setBackend } from "../core/backend.ts";
import { getWasmRuntime } from "../core/backends/wasm/index.ts";
import "../core/index.ts";
import { tensor } from "../core/ops/creation.ts";
import { layerNorm } from "../core/ops/nn.ts";
import {
  benchOptions, formatSection, isMain, machineLine, median, othersShare, parseFlags, pct, ratio, waitQuiet,
  type BenchOptions, type Section,
} from "./harness.ts";
import { loadJax } from "./peers/lm-jax.ts";
import { loadTfjs } from "./peers/lm-tfjs.ts";

const OPS = ["add [256]+[256]", "mul [256]·2", "matmul [1,256]×[256,256]", "softmax [1,256]", "layerNorm [1,256]", "reshape [256]→[16,16]"] as const;
type Op = (typeof OPS)[number];

/** One call of the op, complete (result computed and freed) when it returns or resolves. */
type Call = () => void | Promise<void>;

interface Contender {
  name: string;
  /** The op's call, or why this contender has none. */
  calls: Record<Op, Call | string>;
  dispose(): void;
}

function random(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) out[i] = ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  return out;
}

const X = random(256, 1), Y = random(256, 2), W = random(256 * 256, 3), G = random(256, 4), Bv = random(256, 5);

function hasten(backend: "wasm" | "cpu"): Contender {
  const be = setBackend(backend);
  if (be instanceof Promise) throw new Error(`bench/op-overhead: backend ${backend} is asynchronous`);
  const o = { backend: be };
  const x = tensor(X, o), y = tensor(Y, o), row = tensor(X, { ...o, shape: [1, 256] });
  const w = tensor(W, { ...o, shape: [256, 256] }), g = tensor(G, o), b = tensor(Bv, o);
  return {
    name: `hasten ${backend}`,
    calls: {
      "add [256]+[256]": () => x.add(y).dispose(),
      "mul [256]·2": () => x.mul(2).dispose(),
      "matmul [1,256]×[256,256]": () => row.matmul(w).dispose(),
      "softmax [1,256]": () => row.softmax(-1).dispose(),
      "layerNorm [1,256]": () => layerNorm(row, g, b).dispose(),
      "reshape [256]→[16,16]": () => x.reshape(16, 16).dispose(),
    },
    dispose() {
      for (const t of [x, y, row, w, g, b]) t.dispose();
    },
  };
}

/* eslint-disable @typescript-eslint/no-explicit-any -- peers' types live in .bench-peers/ */
function tfjs(tf: any, label: string): Contender {
  const x = tf.tensor1d(X), y = tf.tensor1d(Y), row = tf.tensor2d(X, [1, 256]);
  const w = tf.tensor2d(W, [256, 256]), g = tf.tensor1d(G), b = tf.tensor1d(Bv);
  return {
    name: label,
    calls: {
      "add [256]+[256]": () => tf.add(x, y).dispose(),
      "mul [256]·2": () => tf.mul(x, 2).dispose(),
      "matmul [1,256]×[256,256]": () => tf.matMul(row, w).dispose(),
      "softmax [1,256]": () => tf.softmax(row).dispose(),
      // tfjs has no layerNorm op: moments, then (x − μ)·rsqrt(σ² + ε)·γ + β
      "layerNorm [1,256]": () => tf.tidy(() => {
        const { mean, variance } = tf.moments(row, -1, true);
        return tf.add(tf.mul(tf.mul(tf.sub(row, mean), tf.rsqrt(tf.add(variance, 1e-5))), g), b);
      }).dispose(),
      "reshape [256]→[16,16]": () => tf.reshape(x, [16, 16]).dispose(),
    },
    dispose() {
      tf.dispose([x, y, row, w, g, b]);
    },
  };
}

function jaxjs(jax: any, label: string): Contender {
  const np = jax.numpy, nn = jax.nn;
  const x = np.array(X), y = np.array(Y), row = np.array(X, { shape: [1, 256] });
  const w = np.array(W, { shape: [256, 256] }), g = np.array(G), b = np.array(Bv);
  // jax-js may compute lazily: each call waits for its result, as the others return it computed
  const done = async (z: any) => {
    await z.blockUntilReady();
    z.dispose();
  };
  return {
    name: label,
    calls: {
      "add [256]+[256]": () => done(np.add(x.ref, y.ref)),
      "mul [256]·2": () => done(x.ref.mul(2)),
      "matmul [1,256]×[256,256]": () => done(np.matmul(row.ref, w.ref)),
      "softmax [1,256]": () => done(nn.softmax(row.ref, -1)),
      "layerNorm [1,256]": () => done(nn.standardize(row.ref, -1, { epsilon: 1e-5 }).mul(g.ref).add(b.ref)),
      "reshape [256]→[16,16]": () => done(x.ref.reshape([16, 16])),
    },
    dispose() {
      for (const a of [x, y, row, w, g, b]) a.dispose();
    },
  };
}

/** Mean µs per call over `n` calls. */
async function sample(call: Call, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const p = call();
    if (p) await p;
  }
  return ((performance.now() - t0) * 1000) / n;
}

export async function opsBench(o: BenchOptions, log: (s: string) => void = console.log): Promise<Section> {
  const rounds = o.rounds ?? (o.quick ? 3 : 7), sampleMs = o.quick ? 5 : 20;
  const notes: string[] = [];
  await getWasmRuntime().ready();
  const cs: Contender[] = [hasten("wasm"), hasten("cpu")];
  const tf = await loadTfjs();
  if ("skip" in tf) notes.push(`skipped tfjs: ${tf.skip}`);
  else cs.push(tfjs(tf.tf, tf.label));
  const jx = await loadJax().catch((e: Error) => ({ skip: `failed to load: ${e.message}` }));
  if ("skip" in jx) notes.push(`skipped jax-js: ${jx.skip}`);
  else cs.push(jaxjs(jx.jax, `${jx.label} (eager)`));
  notes.push("tfjs layerNorm is its moments() plus 5 element-wise ops; jax-js layerNorm is nn.standardize plus 2");

  const quiet = await waitQuiet(o.quietWait);
  if (quiet) notes.push(quiet);
  const us = new Map<string, number>(); // `${op}|${contender}` → median µs
  const { others } = await othersShare(async () => {
    for (const op of OPS) {
      const live = cs.filter((c) => typeof c.calls[op] === "function");
      // warm up, and size each sample to about sampleMs
      const reps = new Map<Contender, number>();
      for (const c of live) {
        const call = c.calls[op] as Call;
        await sample(call, 200);
        reps.set(c, Math.max(20, Math.round((sampleMs * 1000) / (await sample(call, 200)))));
      }
      const times = new Map<Contender, number[]>(live.map((c) => [c, []]));
      for (let r = 0; r < rounds; r++) for (const c of live) times.get(c)!.push(await sample(c.calls[op] as Call, reps.get(c)!));
      for (const c of live) us.set(`${op}|${c.name}`, median(times.get(c)!));
      log(`  ${op}: done`);
    }
  });
  notes.push(`other processes used ${pct(others)} of the CPUs during the measurements`);
  for (const c of cs) c.dispose();

  const h = cs[0].name;
  const short = (c: Contender) => (c.name.startsWith("hasten ") ? c.name.slice(7) : c.name.split(/[ -]/)[0]);
  const header = ["op (µs per call)", ...cs.map((c) => c.name), ...cs.slice(1).map((c) => `${short(c)}/${short(cs[0])}`)];
  const rows = OPS.map((op) => {
    const v = cs.map((c) => us.get(`${op}|${c.name}`));
    return [op, ...v.map((x) => (x === undefined ? "n/a" : x.toFixed(2))), ...cs.slice(1).map((_, i) => ratio(v[i + 1], v[0]))];
  });
  return {
    title: `Per-op overhead, median µs per call of ${rounds} interleaved samples (${machineLine()})`,
    header,
    rows,
    notes: [`"x/${short(cs[0])}": x's time over ${h}'s (above 1: ${h} is faster)`, ...notes],
  };
}

if (isMain(import.meta.url)) {
  const o = benchOptions(parseFlags(process.argv.slice(2), "bench/op-overhead"), "bench/op-overhead");
  console.log(machineLine());
  console.log(`\n${formatSection(await opsBench(o))}`);
  await getWasmRuntime().shutdown();
}
