// Matmul benchmark: median GFLOP/s of Hasten's wasm gemm on 1 thread and on all threads, next to
// peers measured in the same run on the same inputs, with ratios Hasten / peer.
//
//   bash bench/install-peers.sh          # once: tfjs-wasm and jax-js into .bench-peers/
//   npx tsx bench/matmul.ts [--sizes=256,512,1024,64x512x2048,64x2048x512] [--rounds=7] [--ms=40]
//                           [--quiet-wait=60]
//
// Sizes are M×K×N (a single number n means n×n×n). Contenders take turns within each round, so
// a slow patch of a shared machine hits all of them alike; the median is over rounds. Each
// sample makes one untimed call (so it measures steady state: worker threads awake after the
// other contenders' turns), then repeats the call until it lasts --ms milliseconds. PyTorch (a native reference) runs in
// a Python subprocess on the same inputs when `import torch` works. On a shared machine the
// multi-threaded figures depend on what else runs: before each size the bench waits (up to
// --quiet-wait seconds) for the CPUs to be idle, and the last column reports the share of CPU
// time other processes took during the measurement. Where the gemm uses f32x4.relaxed_madd
// (FMA; the default in Node, HASTEN_WASM_FMA=0 turns it off), a second runtime compiled with
// mul + add runs on 1 thread as a further contender, so each run also measures what FMA gains.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { WasmRuntime } from "../core/backends/wasm/index.ts";
import { jaxWasm } from "./peers/jax.ts";
import { tfjsWasm } from "./peers/tfjs.ts";
import type { MatmulRunner, PeerOrSkip } from "./peers/types.ts";
import { blasNote, cpuNote, cpuTimes, torchPython, wasmGemmPath, type CpuTime, type TorchBlas } from "./harness.ts";

const flags = new Map(process.argv.slice(2).map((a) => {
  const m = /^--([^=]+)=(.*)$/.exec(a);
  if (!m) throw new Error(`bench/matmul: expected --key=value, got ${a}`);
  return [m[1], m[2]] as const;
}));
const sizes = (flags.get("sizes") ?? "256,512,1024,64x512x2048,64x2048x512").split(",").map((s) => {
  const d = s.split("x").map(Number);
  const mkn = d.length === 1 ? [d[0], d[0], d[0]] : d;
  if (mkn.length !== 3 || mkn.some((x) => !Number.isInteger(x) || x <= 0)) throw new Error(`bench/matmul: bad size ${s} (want n or MxKxN)`);
  return mkn as [number, number, number];
});
const rounds = Number(flags.get("rounds") ?? 7);
const sampleMs = Number(flags.get("ms") ?? 40);
/** Seconds to wait, before each size, for other processes to leave the CPUs (0: don't). */
const quietWait = Number(flags.get("quiet-wait") ?? 60);

const rt = new WasmRuntime();
const threads = rt.getNumThreads();
await rt.ready();
/** The same gemm compiled with mul + add (1 thread), when rt's uses FMA. */
const plainRt = rt.fma ? new WasmRuntime({ threads: 1, gemm: { fma: false } }) : null;

const peers: PeerOrSkip[] = [];
for (const load of [tfjsWasm, jaxWasm]) {
  try {
    peers.push(await load());
  } catch (e) {
    peers.push({ skip: `${load.name}: failed to load: ${(e as Error).message}` });
  }
}
for (const p of peers) if ("skip" in p) console.log(`skipping a peer: ${p.skip}`);
const live = peers.filter((p): p is Exclude<PeerOrSkip, { skip: string }> => !("skip" in p));

function random(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) out[i] = ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  return out;
}

/** Waits until other processes use under 10% of the CPUs over half a second (or gives up). */
async function waitQuiet(): Promise<string> {
  const t0 = performance.now();
  let others = NaN;
  while (performance.now() - t0 < quietWait * 1000) {
    const a = cpuTimes(), w0 = performance.now();
    if (!a) return "";
    await new Promise((r) => setTimeout(r, 500));
    const b = cpuTimes()!;
    others = (b.machine - a.machine - (b.self - a.self)) / ((performance.now() - w0) * os.cpus().length);
    if (others < 0.1) return "";
    await new Promise((r) => setTimeout(r, 1000));
  }
  return quietWait > 0 ? ` (machine busy: others used ${(100 * others).toFixed(0)}% before the start)` : "";
}

interface Contender {
  name: string;
  runner: MatmulRunner;
  reps: number;
  times: number[];
}

/** Time per call over c.reps calls, after one untimed call (wakes idle worker threads). */
async function sample(c: Contender): Promise<number> {
  const w = c.runner.run();
  if (w) await w;
  const t0 = performance.now();
  for (let i = 0; i < c.reps; i++) {
    const p = c.runner.run();
    if (p) await p;
  }
  return (performance.now() - t0) / c.reps;
}

function hastenRunner(rt: WasmRuntime, M: number, K: number, N: number, A: Float32Array, B: Float32Array, nThreads: number): MatmulRunner {
  const h = rt.heap;
  const a = h.alloc(A.byteLength), b = h.alloc(B.byteLength), c = h.alloc(M * N * 4);
  h.f32(a, A.length).set(A);
  h.f32(b, B.length).set(B);
  return {
    run() {
      rt.setNumThreads(nThreads);
      rt.gemm({ M, N, K, a, b, c });
    },
    async result() {
      return Float32Array.from(h.f32(c, M * N));
    },
    dispose() {
      h.free(a);
      h.free(b);
      h.free(c);
    },
  };
}

function torchReference(M: number, K: number, N: number, A: Float32Array, B: Float32Array) {
  const dir = mkdtempSync(join(os.tmpdir(), "hasten-bench-"));
  try {
    writeFileSync(join(dir, "a.f32"), A);
    writeFileSync(join(dir, "b.f32"), B);
    const script = join(dirname(fileURLToPath(import.meta.url)), "peers", "torch_matmul.py");
    if ("skip" in torchPy) return torchPy;
    const r = spawnSync(torchPy.python, [script, String(M), String(K), String(N), join(dir, "a.f32"), join(dir, "b.f32"), String(rounds)], { encoding: "utf8", env: torchPy.env });
    if (r.status !== 0) return { skip: (r.stderr || r.error?.message || "python3 failed").trim().split("\n").pop()! };
    return JSON.parse(r.stdout) as {
      version: string; gflops_1t: number; gflops_all: number; threads: number;
      cpu_1t?: CpuTime; cpu_all?: CpuTime; blas: TorchBlas | null; omp_wait_policy?: string;
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The same Python (with the local OpenBLAS) as the other benchmarks: Debian's /usr/bin/python3
// has torch where the python3 on PATH may not.
const torchPy = torchPython();
const torchOk = !("skip" in torchPy);
if ("skip" in torchPy) console.log(`skipping torch: ${torchPy.skip}`);

const rows: string[][] = [];
/** What PyTorch ran on, and its CPU use per size (printed under the table). */
const torchNotes: string[] = [];
const header = ["M×K×N", "hasten 1t", `hasten ${threads}t`, ...live.map((p) => p.name)];
if (plainRt) header.push("h1 mul+add");
if (torchOk) header.push("torch 1t", `torch all`);
header.push(...live.map((p) => `h1/${p.name.split(" ")[0]}`), `h${threads}/h1`);
if (plainRt) header.push("fma/mul+add");
header.push("max rel diff", "others' CPU");

for (const [M, K, N] of sizes) {
  const A = random(M * K, 1), B = random(K * N, 2);
  const flops = 2 * M * N * K;
  const contenders: Contender[] = [
    { name: "hasten 1t", runner: hastenRunner(rt, M, K, N, A, B, 1), reps: 1, times: [] },
    { name: "hasten all", runner: hastenRunner(rt, M, K, N, A, B, threads), reps: 1, times: [] },
  ];
  for (const p of live) contenders.push({ name: p.name, runner: await p.setup(M, K, N, A, B), reps: 1, times: [] });
  if (plainRt) contenders.push({ name: "hasten 1t mul+add", runner: hastenRunner(plainRt, M, K, N, A, B, 1), reps: 1, times: [] });
  // warm up (tier-up of wasm code, peers' caches) and size each sample to about sampleMs
  for (const c of contenders) {
    for (let i = 0; i < 3; i++) await sample(c);
    c.reps = Math.max(1, Math.round(sampleMs / (await sample(c))));
  }
  const note = await waitQuiet();
  if (note) console.log(`${M}×${K}×${N}${note}`);
  const cpu0 = cpuTimes(), wall0 = performance.now();
  for (let r = 0; r < rounds; r++) for (const c of contenders) c.times.push(await sample(c));
  const cpu1 = cpuTimes(), wall = performance.now() - wall0;
  // share of the machine's CPUs that other processes used while we measured
  const others = cpu0 && cpu1 ? Math.max(0, (cpu1.machine - cpu0.machine - (cpu1.self - cpu0.self)) / (wall * os.cpus().length)) : NaN;
  const gf = contenders.map((c) => {
    const t = [...c.times].sort((x, y) => x - y)[c.times.length >> 1];
    return flops / t / 1e6;
  });
  // the peers must compute the same product: largest difference relative to max |C|
  const ref = await contenders[0].runner.result();
  let scale = 0;
  for (const v of ref) scale = Math.max(scale, Math.abs(v));
  let diff = 0;
  for (const c of contenders.slice(1)) {
    const got = await c.runner.result();
    for (let i = 0; i < ref.length; i++) diff = Math.max(diff, Math.abs(got[i] - ref[i]) / scale);
  }
  for (const c of contenders) c.runner.dispose();
  const row = [`${M}×${K}×${N}`, ...gf.map((g) => g.toFixed(1))];
  if (torchOk) {
    const t = torchReference(M, K, N, A, B);
    if ("skip" in t) {
      row.push("err", "err");
      torchNotes.push(`torch at ${M}×${K}×${N} failed: ${t.skip}`);
    } else {
      row.push(t.gflops_1t.toFixed(1), t.gflops_all.toFixed(1));
      if (torchNotes.length === 0) torchNotes.push(`torch's BLAS: ${blasNote(t.blas)}`);
      torchNotes.push(`${M}×${K}×${N}: ${cpuNote(`${t.threads}t`, t.cpu_all, t.omp_wait_policy)}`);
    }
  }
  row.push(...live.map((_, i) => (gf[0] / gf[2 + i]).toFixed(2)), (gf[1] / gf[0]).toFixed(2));
  if (plainRt) row.push((gf[0] / gf[gf.length - 1]).toFixed(2));
  row.push(diff.toExponential(1), Number.isNaN(others) ? "?" : `${(100 * others).toFixed(0)}%`);
  rows.push(row);
  console.log(`done ${row[0]}`);
}

const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
console.log(`\nmatmul GFLOP/s, median of ${rounds} interleaved samples of ≥${sampleMs} ms; ${os.cpus()[0]?.model ?? "cpu"}, ${os.availableParallelism?.() ?? os.cpus().length} threads, Node ${process.version}; ${wasmGemmPath(rt.fma)}`);
console.log(line(header));
for (const r of rows) console.log(line(r));
for (const n of torchNotes) console.log(`  · ${n}`);
await rt.shutdown();
await plainRt?.shutdown();
