// Real-GPU figures for the gpujs backend, each beside the wasm backend on the same machine's CPU
// cores, in one run. scripts/device-run.sh runs it on the lent GPU machine (scripts/device-kit.sh
// packs what that needs); anywhere else:
//
//   npx tsx bench/gpu-report.ts [--quick] [--budget=SECONDS] [--json=FILE] [--only=matmul,train,decode,time]
//       [--sizes=256,512,1024,2048,4096] [--batches=16,64,256] [--threads=N] [--data=DIR] [--peers=DIR]
//   npx tsx bench/gpu-report.ts --probe [--json=FILE]   # names the WebGPU adapter; exit 0 hardware, 2 software, 3 none
//
// 1. matmul GFLOP/s, n×n·n×n float32: wall time (submit to finished) and GPU kernel time (WebGPU
//    timestamp queries), the result checked against wasm's; tfjs-backend-webgpu on the same Dawn
//    as the peer when --peers names a node_modules holding it (the kit packs one).
// 2. a training step (forward, backward, AdamW) of the benchmark LM (bench/README.md) at several
//    batch sizes of 64-token rows; the first losses must agree across backends.
// 3. greedy decoding of the shipped translation model (models/ar-de-en) at batch 1 and batch 32,
//    on Multi30k test2016 when --data (or DATA_DIR, or ../shared/data) has it, else built-in sentences.
// 4. where the gpujs time goes: upload and read-back, per-kernel dispatch, and a training step and
//    a decoding run split into host work, GPU kernel time and waiting, with the costliest kernels.
//
// --quick picks sizes a software adapter (lavapipe) finishes in a few minutes. --budget (seconds;
// default 300, 240 with --quick) caps the run: each section gets a share of what is left, and a
// measurement that would start past its share is skipped with a note, so the run always ends.
import { execSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setBackend, type Backend, type BackendBuffer } from "../core/backend.ts";
import type { GpujsBackend } from "../core/backends/gpujs/index.ts";
import "../core/backends/gpujs/register.ts";
import { Runtime } from "../core/backends/gpujs/runtime.ts";
import { getWasmRuntime } from "../core/backends/wasm/index.ts";
import { crossEntropy, tensor, tidy, type Tensor } from "../core/index.ts";
import { translateLines } from "../decoding/index.ts";
import { AdamW, isEncoderDecoder, LM_BENCH_CONFIG, lmConfig, loadModelDir, TransformerLM, type EncoderDecoderModel, type ModelDir } from "../nn/index.ts";

// ---------------------------------------------------------------- flags
const argv = process.argv.slice(2);
const has = (name: string) => argv.includes(`--${name}`);
const flag = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const known = ["quick", "probe", "budget", "json", "only", "sizes", "batches", "threads", "data", "peers"];
for (const a of argv) {
  const name = a.replace(/^--/, "").split("=")[0];
  if (!a.startsWith("--") || !known.includes(name)) {
    console.error(`gpu-report: unknown argument ${a}; flags: ${known.map((k) => `--${k}`).join(" ")}`);
    process.exit(2);
  }
}
const nums = (s: string, what: string) => s.split(",").map((x) => {
  const v = Number(x);
  if (!Number.isInteger(v) || v < 1) throw new Error(`gpu-report: --${what} wants positive integers, got ${s}`);
  return v;
});
const QUICK = has("quick");
const BUDGET_S = Number(flag("budget") ?? (QUICK ? 240 : 300));
const SECTIONS = (flag("only") ?? "matmul,train,decode,time").split(",");
const SIZES = nums(flag("sizes") ?? (QUICK ? "256,512" : "256,512,1024,2048,4096"), "sizes");
const BATCHES = nums(flag("batches") ?? (QUICK ? "1,2" : "16,64,256"), "batches");
const SEQ = 64; // tokens per training row, as in bench/train-step.ts
const TRAIN_STEPS = QUICK ? 2 : 4; // timed steps after one warm-up step
const MATMUL_MIN_MS = QUICK ? 400 : 1000;
const DECODE_N1 = QUICK ? 4 : 32; // sentences decoded at batch 1
const DECODE_N32 = QUICK ? 32 : 256; // sentences decoded at batch 32
const BIG_TRANSFER = (QUICK ? 16 : 64) * 2 ** 20; // bytes
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MODEL_DIR = join(ROOT, "models", "ar-de-en");
const JSON_OUT = flag("json");
if (!Number.isFinite(BUDGET_S) || BUDGET_S <= 0) throw new Error(`gpu-report: --budget wants seconds > 0, got ${flag("budget")}`);
for (const s of SECTIONS) if (!["matmul", "train", "decode", "time"].includes(s)) throw new Error(`gpu-report: --only knows matmul, train, decode, time; got ${s}`);

const T0 = performance.now();
const now = () => performance.now();
const elapsedS = () => (now() - T0) / 1000;
const median = (xs: number[]) => (xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[xs.length >> 1]);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "–");
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : "–");
const errMsg = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n")[0].slice(0, 300);

// ---------------------------------------------------------------- results (JSON)
const results: Record<string, unknown> & { notes: string[]; sections: Record<string, unknown> } = {
  format: "hasten-gpu-report", version: 1, quick: QUICK, budgetS: BUDGET_S, notes: [], sections: {},
};
function save(): void {
  if (!JSON_OUT) return;
  results.elapsedS = Number(elapsedS().toFixed(1));
  writeFileSync(JSON_OUT, JSON.stringify(results, null, 1) + "\n");
}
function note(s: string): void {
  console.log(`  note: ${s}`);
  results.notes.push(s);
}

function table(header: string[], rows: string[][]): void {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => "  " + r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ");
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

// ---------------------------------------------------------------- time budget
// Each section gets its share of the time left when it starts; a measurement that would end
// past that is skipped.
const SHARE: Record<string, number> = { matmul: 0.25, train: 0.3, decode: 0.25, time: 0.2 };
let sectionEnd = Infinity;
function startSection(name: string): void {
  const left = BUDGET_S - elapsedS();
  const rest = SECTIONS.slice(SECTIONS.indexOf(name)).reduce((a, s) => a + SHARE[s], 0);
  sectionEnd = elapsedS() + Math.max(0, left) * (SHARE[name] / rest);
}
// true (and a note) when a measurement expected to take estS seconds would overrun its share
function overBudget(what: string, estS: number): boolean {
  const t = elapsedS();
  if (t + estS <= sectionEnd && t < BUDGET_S) return false;
  note(`skipped ${what}: the time budget (--budget=${BUDGET_S}) would be exceeded (estimated ${f(estS)} s, ${f(Math.max(0, sectionEnd - t))} s left in this section)`);
  return true;
}

// ---------------------------------------------------------------- WebGPU: Dawn, adapter, timestamps
// Minimal shapes of the WebGPU objects touched here (gpu.js does the rest).
interface GpuAdapterInfo { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean }
interface GpuAdapter { info?: GpuAdapterInfo; isFallbackAdapter?: boolean; features: Set<string>; limits: Record<string, number> }
interface GpuBuffer { mapAsync(mode: number): Promise<void>; getMappedRange(): ArrayBuffer; destroy(): void }
interface GpuDevice {
  features: Set<string>;
  queue: { submit(b: unknown[]): void; onSubmittedWorkDone(): Promise<void> };
  createQuerySet(d: { type: string; count: number }): unknown;
  createBuffer(d: { size: number; usage: number }): GpuBuffer;
  createCommandEncoder(): { resolveQuerySet(q: unknown, first: number, count: number, dst: GpuBuffer, off: number): void; copyBufferToBuffer(a: GpuBuffer, ao: number, b: GpuBuffer, bo: number, n: number): void; finish(): unknown };
}
type Proto = Record<string, (...args: unknown[]) => unknown>;
const G = globalThis as unknown as Record<string, { prototype: Proto } & Record<string, number>>;

// Dawn rounds timestamps to 2^16 ns unless told not to; kernels here last microseconds.
const DAWN_FLAGS = ["disable-dawn-features=timestamp_quantization"];

// Installs navigator.gpu from the `webgpu` package (as core/backends/gpujs/device.ts does, which
// then uses it) with DAWN_FLAGS, and asks every device for timestamp queries when the adapter has them.
async function installDawn(): Promise<string | null> {
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator?.gpu) return null;
  process.env.XDG_RUNTIME_DIR ??= mkdtempSync(join(os.tmpdir(), "hasten-xdg-"));
  let mod: { create(flags: string[]): unknown; globals: object };
  try {
    mod = (await import("webgpu")) as unknown as typeof mod;
  } catch (e) {
    return `the "webgpu" package could not be loaded: ${errMsg(e)}`;
  }
  Object.assign(globalThis, mod.globals);
  const gpu = mod.create(DAWN_FLAGS);
  if (g.navigator) Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true });
  const A = G.GPUAdapter?.prototype;
  if (A) {
    const requestDevice = A.requestDevice;
    A.requestDevice = function (this: GpuAdapter, d?: unknown) {
      const desc = (d ?? {}) as { requiredFeatures?: string[] };
      const extra = this.features.has("timestamp-query") && !(desc.requiredFeatures ?? []).includes("timestamp-query") ? ["timestamp-query"] : [];
      return requestDevice.call(this, { ...desc, requiredFeatures: [...(desc.requiredFeatures ?? []), ...extra] });
    };
  }
  return null;
}

interface AdapterSummary {
  name: string; software: boolean; vendor: string; architecture: string; device: string; description: string;
  timestampQuery: boolean; maxStorageBufferBindingSize: number; maxBufferSize: number; features: string[];
}
async function adapterSummary(): Promise<AdapterSummary | null> {
  const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(o?: object): Promise<GpuAdapter | null> } } }).navigator?.gpu;
  if (!gpu) return null;
  const a = await gpu.requestAdapter().catch(() => null);
  if (!a) return null;
  const i = a.info ?? {};
  const name = i.description || [i.vendor, i.architecture, i.device].filter(Boolean).join(" ") || "unnamed adapter";
  const software = Boolean(i.isFallbackAdapter ?? a.isFallbackAdapter) || /llvmpipe|lavapipe|swiftshader|software/i.test(name);
  return {
    name, software, vendor: i.vendor ?? "", architecture: i.architecture ?? "", device: i.device ?? "", description: i.description ?? "",
    timestampQuery: a.features.has("timestamp-query"), maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize,
    maxBufferSize: a.limits.maxBufferSize, features: [...a.features].sort(),
  };
}

// GPU time per compute pass, from timestamp queries written around the passes of gpu.js's device
// (gpu.js runs one kernel per pass). Which kernel a pass belongs to comes from wrapping the
// gpujs runtime's kernel call, which begins the pass synchronously once a kernel is compiled
// (a first call compiles asynchronously and shows up as "?").
interface Pass { key: string; ns: number }
const PER_SET = 2048; // passes per query set (4096 queries, the most one may hold)
class Timestamps {
  device: GpuDevice | null = null;
  currentKey = "?";
  private encoders = new WeakSet<object>();
  private sets: unknown[] = [];
  private keys: string[] = [];
  private recording = false;
  dropped = 0;
  get available(): boolean {
    return this.device !== null;
  }
  install(): void {
    const D = G.GPUDevice?.prototype, E = G.GPUCommandEncoder?.prototype;
    if (!D || !E) return;
    const ts = this;
    const createCommandEncoder = D.createCommandEncoder;
    D.createCommandEncoder = function (this: unknown, ...a: unknown[]) {
      const enc = createCommandEncoder.apply(this, a) as object;
      if (ts.recording && this === ts.device) ts.encoders.add(enc);
      return enc;
    };
    const beginComputePass = E.beginComputePass;
    E.beginComputePass = function (this: object, d?: unknown) {
      if (ts.recording && ts.encoders.has(this)) {
        const i = ts.keys.length;
        if (i < PER_SET * 16) {
          const s = Math.floor(i / PER_SET), k = i % PER_SET;
          while (ts.sets.length <= s) ts.sets.push(ts.device!.createQuerySet({ type: "timestamp", count: 2 * PER_SET }));
          ts.keys.push(ts.currentKey);
          d = { ...(d as object), timestampWrites: { querySet: ts.sets[s], beginningOfPassWriteIndex: 2 * k, endOfPassWriteIndex: 2 * k + 1 } };
        } else ts.dropped++;
      }
      return beginComputePass.call(this, d);
    };
    const R = Runtime.prototype as unknown as { call?: (spec: { key: string }, ...rest: unknown[]) => unknown };
    if (typeof R.call === "function") {
      const call = R.call;
      R.call = function (this: unknown, spec: { key: string }, ...rest: unknown[]) {
        ts.currentKey = spec.key;
        try {
          return call.call(this, spec, ...rest);
        } finally {
          ts.currentKey = "?";
        }
      };
    }
  }
  // gpu.js's shared device, once the gpujs backend exists; null without timestamp queries.
  async attach(): Promise<void> {
    const gpujs = (await import("gpu.js")) as unknown as { WebGPUContext?: { acquire(): Promise<{ device: GpuDevice }> } };
    const device = (await gpujs.WebGPUContext?.acquire())?.device;
    this.device = device && device.features.has("timestamp-query") ? device : null;
  }
  start(): void {
    this.keys = [];
    this.dropped = 0;
    this.recording = this.available;
  }
  // Stops recording; call after the work has been flushed. Returns one entry per timed pass.
  async stop(): Promise<Pass[]> {
    this.recording = false;
    const dev = this.device;
    if (!dev || this.keys.length === 0) return [];
    const U = G.GPUBufferUsage, M = G.GPUMapMode;
    const out: Pass[] = [];
    for (let s = 0; s * PER_SET < this.keys.length; s++) {
      const n = Math.min(PER_SET, this.keys.length - s * PER_SET);
      const res = dev.createBuffer({ size: 16 * n, usage: U.QUERY_RESOLVE | U.COPY_SRC });
      const map = dev.createBuffer({ size: 16 * n, usage: U.MAP_READ | U.COPY_DST });
      const enc = dev.createCommandEncoder();
      enc.resolveQuerySet(this.sets[s], 0, 2 * n, res, 0);
      enc.copyBufferToBuffer(res, 0, map, 0, 16 * n);
      dev.queue.submit([enc.finish()]);
      await map.mapAsync(M.READ);
      const t = new BigUint64Array(map.getMappedRange().slice(0));
      map.destroy();
      res.destroy();
      for (let k = 0; k < n; k++) {
        const ns = Number(t[2 * k + 1] - t[2 * k]);
        if (t[2 * k] > 0n && ns >= 0 && ns < 60e9) out.push({ key: this.keys[s * PER_SET + k], ns });
      }
    }
    return out;
  }
}
const ts = new Timestamps();

// Kernel time by kernel name, costliest first.
function byKernel(passes: Pass[]): { key: string; calls: number; ms: number }[] {
  const m = new Map<string, { calls: number; ns: number }>();
  for (const p of passes) {
    const e = m.get(p.key) ?? { calls: 0, ns: 0 };
    e.calls++;
    e.ns += p.ns;
    m.set(p.key, e);
  }
  return [...m].map(([key, e]) => ({ key, calls: e.calls, ms: e.ns / 1e6 })).sort((a, b) => b.ms - a.ms);
}

// ---------------------------------------------------------------- backends
let wasm: Backend;
let gpu: GpujsBackend | null = null;
async function use(kind: "wasm" | "gpujs"): Promise<Backend> {
  return kind === "wasm" ? setBackend("wasm") : setBackend("gpujs", { mode: "webgpu" });
}
const sync = async (b: Backend) => {
  await b.flush?.();
};
const launches = () => gpu?.stats().launches ?? 0;

// ---------------------------------------------------------------- tfjs on WebGPU (optional peer)
/* eslint-disable @typescript-eslint/no-explicit-any -- tfjs's types are not installed here */
type TF = any;
async function loadTfjsWebgpu(): Promise<TF | string> {
  const dir = flag("peers") ?? join(ROOT, ".bench-peers", "node_modules");
  const req = createRequire(join(dir, "..", "package.json"));
  let tf: TF;
  try {
    tf = req(join(dir, "@tensorflow", "tfjs-core"));
    req(join(dir, "@tensorflow", "tfjs-backend-webgpu"));
  } catch (e) {
    return `tfjs-backend-webgpu not found under ${dir} (${errMsg(e)})`;
  }
  try {
    if (!(await tf.setBackend("webgpu"))) return "tfjs could not start its webgpu backend";
    await tf.ready();
  } catch (e) {
    return `tfjs webgpu backend failed to start: ${errMsg(e)}`;
  }
  return tf;
}

// ---------------------------------------------------------------- 1. matmul
function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}
// 4096 fixed positions of an n×n result, compared across contenders
function sample(c: Float32Array, n: number): Float32Array {
  const k = Math.min(4096, n * n), out = new Float32Array(k);
  for (let i = 0; i < k; i++) out[i] = c[Math.floor((i * (n * n - 1)) / Math.max(1, k - 1))];
  return out;
}
function relDiff(a: Float32Array, ref: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < ref.length; i++) {
    d = Math.max(d, Math.abs(a[i] - ref[i]));
    m = Math.max(m, Math.abs(ref[i]));
  }
  return m > 0 ? d / m : d;
}

interface MatmulTiming { firstMs: number; ms: number; calls: number; kernelMs: number; out: Float32Array }
// Calls in groups (doubling while a group is short), waiting for the device after each group, so
// a fast host cannot queue far more work than the time asked for.
async function timeCalls(call: () => void, wait: () => Promise<void>, minMs: number): Promise<{ ms: number; calls: number }> {
  let g = 1, calls = 0;
  const t0 = now();
  for (;;) {
    const t = now();
    for (let i = 0; i < g; i++) call();
    await wait();
    calls += g;
    if (now() - t0 >= minMs && calls >= 2) break;
    if (now() - t < minMs / 8) g *= 2;
  }
  return { ms: (now() - t0) / calls, calls };
}

async function matmulHasten(b: Backend, A: Float32Array, B: Float32Array, n: number): Promise<MatmulTiming> {
  const x = b.upload("float32", A), y = b.upload("float32", B);
  await sync(b);
  const p = { batch: 1, M: n, K: n, N: n, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 };
  try {
    const t0 = now();
    const c = b.run("matmul", [x, y], p)[0];
    await sync(b);
    const firstMs = now() - t0;
    const out = sample((await b.read(c)) as Float32Array, n);
    b.free(c);
    const profile = b === gpu && ts.available;
    if (profile) ts.start();
    const r = await timeCalls(() => b.free(b.run("matmul", [x, y], p)[0]), () => sync(b), MATMUL_MIN_MS);
    const passes = profile ? (await ts.stop()).filter((q) => q.key === "matmul") : [];
    return { firstMs, ...r, kernelMs: median(passes.map((q) => q.ns / 1e6)), out };
  } finally {
    b.free(x);
    b.free(y);
    await sync(b);
  }
}

async function matmulTfjs(tf: TF, A: Float32Array, B: Float32Array, n: number): Promise<MatmulTiming> {
  const x = tf.tensor2d(A, [n, n]), y = tf.tensor2d(B, [n, n]);
  try {
    const t0 = now();
    const c = tf.matMul(x, y);
    const full = (await c.data()) as Float32Array;
    const firstMs = now() - t0;
    c.dispose();
    let last: TF = null;
    const r = await timeCalls(() => {
      last?.dispose();
      last = tf.matMul(x, y);
    }, async () => {
      const s = tf.slice(last, [0, 0], [1, 1]);
      await s.data(); // waits for every matmul queued before it
      s.dispose();
    }, MATMUL_MIN_MS);
    last?.dispose();
    return { firstMs, ...r, kernelMs: NaN, out: sample(full, n) };
  } finally {
    x.dispose();
    y.dispose();
  }
}

async function sectionMatmul(tf: TF | null): Promise<void> {
  startSection("matmul");
  console.log(`\n1. matmul GFLOP/s, n×n · n×n float32 (wall: calls until the device is done, ≥ ${MATMUL_MIN_MS} ms; kernel: GPU timestamps, median per call)`);
  const rows: string[][] = [];
  const out: Record<string, unknown>[] = [];
  results.sections.matmul = out;
  const lastMs: Record<string, number> = {};
  const contenders: [string, () => Backend | TF][] = [["wasm", () => wasm]];
  if (gpu) contenders.push(["gpujs", () => gpu]);
  if (tf) contenders.push(["tfjs-webgpu", () => tf]);
  for (const n of SIZES) {
    const A = fill(n * n, 1), B = fill(n * n, 2);
    const flop = 2 * n ** 3;
    const gf = (ms: number) => flop / (ms / 1000) / 1e9;
    const row: Record<string, unknown> = { n };
    let ref: Float32Array | null = null;
    for (const [name, get] of contenders) {
      // the next size costs ~8× the last one; at least three calls (first, and two timed)
      const est = lastMs[name] !== undefined ? Math.max((lastMs[name] * 8 * 3) / 1000, (2 * MATMUL_MIN_MS) / 1000) : 0;
      if (lastMs[name] === Infinity || overBudget(`matmul ${n}³ on ${name}`, est)) {
        lastMs[name] = Infinity;
        continue;
      }
      try {
        const r = name === "tfjs-webgpu" ? await matmulTfjs(get(), A, B, n) : await matmulHasten(get() as Backend, A, B, n);
        lastMs[name] = Math.max(r.ms, r.firstMs / 4);
        const diff = ref ? relDiff(r.out, ref) : 0;
        if (!ref) ref = r.out;
        row[name] = { gflops: gf(r.ms), kernelGflops: gf(r.kernelMs), ms: r.ms, kernelMs: r.kernelMs, firstMs: r.firstMs, calls: r.calls, maxRelDiffVsWasm: diff };
        if (diff > 1e-3) note(`matmul ${n}³: ${name} differs from wasm by ${diff.toExponential(2)} (relative to the largest value)`);
      } catch (e) {
        lastMs[name] = Infinity;
        row[name] = { error: errMsg(e) };
        note(`matmul ${n}³ on ${name} failed: ${errMsg(e)}`);
      }
    }
    out.push(row);
    const get = (c: string, k: string) => ((row[c] as Record<string, number> | undefined)?.[k] ?? NaN);
    rows.push([
      `${n}³`, f(get("wasm", "gflops")), f(get("gpujs", "gflops")), f(get("gpujs", "kernelGflops")), ratio(get("gpujs", "gflops"), get("wasm", "gflops")),
      f(get("gpujs", "firstMs"), 0), ...(tf ? [f(get("tfjs-webgpu", "gflops")), ratio(get("tfjs-webgpu", "gflops"), get("gpujs", "gflops"))] : []),
      Number.isFinite(get("gpujs", "maxRelDiffVsWasm")) ? get("gpujs", "maxRelDiffVsWasm").toExponential(1) : "–",
    ]);
    save();
  }
  table(["n", `wasm ${getWasmRuntime().getNumThreads()}t`, "gpujs wall", "gpujs kernel", "gpujs/wasm", "1st call ms", ...(tf ? ["tfjs-webgpu", "tfjs/gpujs"] : []), "diff vs wasm"], rows);
}

// ---------------------------------------------------------------- 2. training step
// The benchmark batch of bench/peers/lm.ts: a 32-bit LCG over the vocabulary, targets shifted by one.
function lmBatch(b: number, t: number, vocab: number, seed = 1): { ids: Int32Array; targets: Int32Array } {
  const seq = new Int32Array(b * (t + 1));
  let s = seed >>> 0;
  for (let i = 0; i < seq.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    seq[i] = Math.floor((s / 2 ** 32) * vocab);
  }
  const ids = new Int32Array(b * t), targets = new Int32Array(b * t);
  for (let r = 0; r < b; r++) {
    ids.set(seq.subarray(r * (t + 1), r * (t + 1) + t), r * t);
    targets.set(seq.subarray(r * (t + 1) + 1, (r + 1) * (t + 1)), r * t);
  }
  return { ids, targets };
}

interface Trainer { step(): Tensor; opt: AdamW; dispose(): void }
function trainer(be: Backend, B: number): Trainer {
  const model = new TransformerLM(lmConfig({ ...LM_BENCH_CONFIG, dropout: 0, attnDropout: 0 }));
  const { ids, targets } = lmBatch(B, SEQ, LM_BENCH_CONFIG.vocab);
  const idsT = tensor(ids, { dtype: "int32", shape: [B, SEQ], backend: be });
  const tgtT = tensor(targets, { dtype: "int32", shape: [B, SEQ], backend: be });
  // as bench/train-step.ts: the loss read is the finiteness check
  const opt = new AdamW(model.namedParameters(), { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, checkFinite: false });
  return {
    opt,
    // forward + backward + AdamW; returns the loss (before the update), not yet read
    step() {
      const loss = tidy(() => {
        const l = crossEntropy(model.forward(idsT), tgtT);
        l.backward();
        return l;
      });
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
async function readLoss(l: Tensor): Promise<number> {
  const v = (await l.data())[0];
  l.dispose();
  return v;
}

async function trainRun(kind: "wasm" | "gpujs", B: number): Promise<{ firstMs: number; ms: number; losses: number[] }> {
  const be = await use(kind);
  const tr = trainer(be, B);
  try {
    let t = now();
    const losses = [await readLoss(tr.step())]; // compiles every kernel on gpujs
    const firstMs = now() - t;
    const times: number[] = [];
    for (let i = 0; i < TRAIN_STEPS; i++) {
      t = now();
      losses.push(await readLoss(tr.step())); // a loop that logs its loss waits for each step
      times.push(now() - t);
    }
    return { firstMs, ms: median(times), losses };
  } finally {
    tr.dispose();
    await sync(be);
  }
}

async function sectionTrain(): Promise<void> {
  startSection("train");
  const c = LM_BENCH_CONFIG;
  console.log(`\n2. training step of the benchmark LM (${c.layers} layers, d ${c.dModel}, ${c.heads} heads, FFN ${c.ffn}, vocab ${c.vocab}; forward + backward + AdamW), rows of ${SEQ} tokens; median of ${TRAIN_STEPS} steps after one warm-up, each waiting for its loss`);
  const out: Record<string, unknown>[] = [];
  results.sections.train = out;
  const rows: string[][] = [];
  const last: Record<string, number> = {};
  for (const B of BATCHES) {
    const row: Record<string, unknown> = { batch: B, tokens: B * SEQ };
    for (const kind of gpu ? (["wasm", "gpujs"] as const) : (["wasm"] as const)) {
      // the last batch's ms per row, scaled to this batch, for the warm-up and the timed steps
      const est = last[kind] === undefined ? 0 : (last[kind] * B * (TRAIN_STEPS + 2)) / 1000;
      if (last[kind] === Infinity || overBudget(`training step at batch ${B} on ${kind}`, est)) {
        last[kind] = Infinity;
        continue;
      }
      try {
        const r = await trainRun(kind, B);
        last[kind] = Math.max(r.ms, r.firstMs / 3) / B;
        row[kind] = { msPerStep: r.ms, tokensPerS: (B * SEQ) / (r.ms / 1000), firstStepMs: r.firstMs, losses: r.losses };
      } catch (e) {
        last[kind] = Infinity;
        row[kind] = { error: errMsg(e) };
        note(`training step at batch ${B} on ${kind} failed: ${errMsg(e)}`);
      }
    }
    const get = (k: string, p: string) => ((row[k] as Record<string, number> | undefined)?.[p] ?? NaN);
    const l1 = (k: string) => ((row[k] as { losses?: number[] } | undefined)?.losses?.[0] ?? NaN);
    if (Number.isFinite(l1("wasm")) && Number.isFinite(l1("gpujs")) && Math.abs(l1("wasm") - l1("gpujs")) > 2e-3) {
      note(`training at batch ${B}: first loss differs, wasm ${l1("wasm")} gpujs ${l1("gpujs")}`);
    }
    out.push(row);
    rows.push([
      String(B), String(B * SEQ), f(get("wasm", "msPerStep")), f(get("wasm", "tokensPerS"), 0), f(get("gpujs", "msPerStep")), f(get("gpujs", "tokensPerS"), 0),
      ratio(get("gpujs", "tokensPerS"), get("wasm", "tokensPerS")), f(get("gpujs", "firstStepMs"), 0), f(l1("wasm"), 4), f(l1("gpujs"), 4),
    ]);
    save();
  }
  table(["batch", "tokens", "wasm ms", "wasm tok/s", "gpujs ms", "gpujs tok/s", "gpujs/wasm", "gpujs 1st ms", "loss1 wasm", "loss1 gpujs"], rows);
}

// ---------------------------------------------------------------- 3. decoding
const BUILT_IN = [
  "Ein Mann fährt Fahrrad auf einer Straße.",
  "Zwei Hunde spielen im Schnee.",
  "Eine Frau in einem roten Kleid singt auf einer Bühne.",
  "Kinder spielen Fußball auf einem Feld.",
  "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.",
  "Ein Mann mit Hut sitzt auf einer Bank und liest eine Zeitung.",
  "Eine Gruppe von Menschen steht vor einem Gebäude.",
  "Ein brauner Hund rennt durch das hohe Gras.",
];
function sentences(): { lines: string[]; source: string } {
  for (const d of [flag("data"), process.env.DATA_DIR, join(ROOT, "..", "shared", "data")]) {
    if (!d) continue;
    const p = join(d, "multi30k", "test2016.de");
    if (existsSync(p)) {
      const lines = readFileSync(p, "utf8").split("\n").filter((s) => s.trim().length > 0);
      return { lines, source: `Multi30k test2016 (${p})` };
    }
  }
  return { lines: BUILT_IN, source: "built-in sentences (no Multi30k test2016 found; --data=DIR)" };
}
function take(lines: string[], n: number): string[] {
  return Array.from({ length: n }, (_, i) => lines[i % lines.length]);
}

type Loaded = ModelDir<EncoderDecoderModel>;
function loadTranslator(): Loaded {
  const m = loadModelDir(MODEL_DIR);
  if (!isEncoderDecoder(m.model)) throw new Error(`${MODEL_DIR} is not a translation model`);
  return m as Loaded;
}
async function loadModel(kind: "wasm" | "gpujs"): Promise<Loaded> {
  await use(kind);
  return loadTranslator();
}
// Decodes `lines` at `batchSize` in chunks until done or past the section's share; the first
// chunk is preceded by an untimed warm-up (compiles kernels on gpujs).
async function decodeRun(m: Loaded, lines: string[], batchSize: number, label: string): Promise<{ n: number; ms: number; tokens: number; out: string[] }> {
  const opts = { beam: 1, batchSize, maxLenA: m.config.decoding.maxLenA as number, maxLenB: m.config.decoding.maxLenB as number };
  await translateLines(m, lines.slice(0, Math.min(lines.length, batchSize, 2)), opts);
  const chunk = batchSize === 1 ? 4 : batchSize; // sentences per timed call (and per budget check)
  const out: string[] = [];
  let ms = 0;
  for (let i = 0; i < lines.length; i += chunk) {
    const part = lines.slice(i, i + chunk);
    const est = out.length > 0 ? (ms / out.length) * part.length / 1000 : 0;
    if (out.length > 0 && overBudget(`${label}: decoding sentences ${i + 1}–${lines.length}`, est)) break;
    const t = now();
    const r = await translateLines(m, part, opts);
    ms += now() - t;
    out.push(...r.translations);
  }
  const tokens = sum(out.map((s) => m.tokenizer.encode(s).length + 1)); // + EOS
  return { n: out.length, ms, tokens, out };
}

async function sectionDecode(): Promise<void> {
  startSection("decode");
  const { lines, source } = sentences();
  console.log(`\n3. greedy decoding, models/ar-de-en, ${source}; batch 1 on ${DECODE_N1} sentences, batch 32 on ${DECODE_N32} (after an untimed warm-up)`);
  const out: Record<string, unknown>[] = [];
  results.sections.decode = out;
  const rows: string[][] = [];
  const models: Partial<Record<"wasm" | "gpujs", Loaded>> = {};
  try {
    for (const [bs, n] of [[1, DECODE_N1], [32, DECODE_N32]] as const) {
      const src = take(lines, n);
      const row: Record<string, unknown> = { batch: bs, sentences: n };
      const got: Partial<Record<string, string[]>> = {};
      for (const kind of gpu ? (["wasm", "gpujs"] as const) : (["wasm"] as const)) {
        if (overBudget(`decoding at batch ${bs} on ${kind}`, 0)) continue;
        try {
          const m = (models[kind] ??= await loadModel(kind));
          await use(kind);
          const r = await decodeRun(m, src, bs, `batch ${bs} on ${kind}`);
          got[kind] = r.out;
          row[kind] = { sentences: r.n, ms: r.ms, msPerSentence: r.ms / r.n, sentencesPerS: r.n / (r.ms / 1000), tokensPerS: r.tokens / (r.ms / 1000), msPerToken: r.ms / r.tokens * bs };
        } catch (e) {
          row[kind] = { error: errMsg(e) };
          note(`decoding at batch ${bs} on ${kind} failed: ${errMsg(e)}`);
        }
      }
      const k = Math.min(got.wasm?.length ?? 0, got.gpujs?.length ?? 0);
      const same = k > 0 ? got.wasm!.slice(0, k).filter((s, i) => s === got.gpujs![i]).length : NaN;
      row.sameTranslations = Number.isFinite(same) ? `${same}/${k}` : "–";
      out.push(row);
      const get = (c: string, p: string) => ((row[c] as Record<string, number> | undefined)?.[p] ?? NaN);
      rows.push([
        String(bs), f(get("wasm", "sentencesPerS")), f(get("wasm", "msPerSentence")), f(get("gpujs", "sentencesPerS")), f(get("gpujs", "msPerSentence")),
        ratio(get("gpujs", "sentencesPerS"), get("wasm", "sentencesPerS")), f(get("gpujs", "msPerToken"), 2), String(row.sameTranslations),
      ]);
      save();
    }
  } finally {
    for (const [kind, m] of Object.entries(models)) {
      await use(kind as "wasm" | "gpujs");
      m.model.dispose();
    }
  }
  table(["batch", "wasm sent/s", "wasm ms/sent", "gpujs sent/s", "gpujs ms/sent", "gpujs/wasm", "gpujs ms/step", "same output"], rows);
  console.log("  (ms/step: gpujs time per decoding step of the batch, i.e. per generated token of one sentence)");
}

// ---------------------------------------------------------------- 4. where the time goes
async function transfers(b: GpujsBackend): Promise<Record<string, number>[]> {
  const out: Record<string, number>[] = [];
  for (const bytes of [4, 2 ** 20, BIG_TRANSFER]) {
    const data = fill(bytes / 4, 3);
    const up: number[] = [], down: number[] = [];
    for (let i = 0; i < 5; i++) {
      let t = now();
      const buf = b.upload("float32", data);
      await b.flush();
      up.push(now() - t);
      t = now();
      await b.read(buf);
      down.push(now() - t);
      b.free(buf);
    }
    await b.flush();
    const u = median(up.slice(1)), d = median(down.slice(1));
    out.push({ bytes, uploadMs: u, readMs: d, uploadGBs: bytes / (u / 1000) / 1e9, readGBs: bytes / (d / 1000) / 1e9 });
  }
  return out;
}

async function dispatch(b: GpujsBackend): Promise<Record<string, number>> {
  const x = b.upload("float32", new Float32Array(64));
  const run = (k: number) => {
    for (let i = 0; i < k; i++) b.free(b.run("scalar", [x], { op: "add", value: 1, n: 64, dtype: "float32" })[0]);
  };
  run(20);
  await b.flush();
  const N = QUICK ? 500 : 2000;
  ts.start();
  const t0 = now();
  run(N);
  const t1 = now();
  await b.submitted();
  const t2 = now();
  await b.flush();
  const t3 = now();
  const passes = await ts.stop();
  b.free(x);
  await b.flush();
  return {
    kernels: N, hostOpsUs: ((t1 - t0) * 1000) / N, untilSubmittedUs: ((t2 - t0) * 1000) / N, untilDoneUs: ((t3 - t0) * 1000) / N,
    gpuUsPerKernel: median(passes.map((p) => p.ns / 1000)),
  };
}

interface Phases { wallMs: number; hostOpsMs: number; encodeSubmitMs: number; gpuWaitMs: number; readMs: number; kernelMs: number; kernels: number; timed: number; top: { key: string; calls: number; ms: number }[] }
// One training step split: Hasten's ops on the host (autograd, shapes, queueing), encoding and
// submitting the kernels, waiting for the GPU after the last submit, reading the loss back.
async function stepPhases(b: GpujsBackend, B: number, steps: number): Promise<Phases> {
  await use("gpujs");
  const tr = trainer(b, B);
  try {
    await readLoss(tr.step());
    await readLoss(tr.step());
    const ph: Phases[] = [];
    for (let i = 0; i < steps; i++) {
      const l0 = launches();
      ts.start();
      const t0 = now();
      const loss = tr.step();
      const t1 = now();
      await b.submitted();
      const t2 = now();
      await b.flush();
      const t3 = now();
      await readLoss(loss);
      const t4 = now();
      const passes = await ts.stop();
      ph.push({
        wallMs: t4 - t0, hostOpsMs: t1 - t0, encodeSubmitMs: t2 - t1, gpuWaitMs: t3 - t2, readMs: t4 - t3,
        kernelMs: sum(passes.map((p) => p.ns)) / 1e6, kernels: launches() - l0, timed: passes.length, top: byKernel(passes).slice(0, 8),
      });
    }
    ph.sort((a, c) => a.wallMs - c.wallMs);
    return ph[ph.length >> 1];
  } finally {
    tr.dispose();
    await b.flush();
  }
}

async function decodePhases(b: GpujsBackend, lines: string[]): Promise<Record<string, unknown>> {
  await use("gpujs");
  const m = loadTranslator();
  const read = b.read;
  let reads = 0, readMs = 0;
  try {
    const opts = { beam: 1, batchSize: 1, maxLenA: m.config.decoding.maxLenA as number, maxLenB: m.config.decoding.maxLenB as number };
    await translateLines(m, lines.slice(0, 1), opts);
    await b.flush();
    b.read = async (buf: BackendBuffer) => {
      reads++;
      const t = now();
      try {
        return await read.call(b, buf);
      } finally {
        readMs += now() - t;
      }
    };
    const l0 = launches();
    ts.start();
    const t0 = now();
    const r = await translateLines(m, lines, opts);
    const wallMs = now() - t0;
    const passes = await ts.stop();
    const tokens = sum(r.translations.map((s) => m.tokenizer.encode(s).length + 1));
    return {
      sentences: lines.length, tokens, wallMs, msPerToken: wallMs / tokens, kernelsPerToken: (launches() - l0) / tokens,
      gpuKernelMsPerToken: sum(passes.map((p) => p.ns)) / 1e6 / tokens, readsPerToken: reads / tokens, readWaitMsPerToken: readMs / tokens,
      top: byKernel(passes).slice(0, 6),
    };
  } finally {
    b.read = read;
    m.model.dispose();
    await b.flush();
  }
}

async function sectionTime(): Promise<void> {
  startSection("time");
  const b = gpu!;
  console.log(`\n4. where the gpujs time goes${ts.available ? "" : " (no timestamp queries on this adapter: GPU kernel times are missing)"}`);
  const sec: Record<string, unknown> = {};
  results.sections.time = sec;
  try {
    const tr = await transfers(b);
    sec.transfers = tr;
    console.log("  upload (host → device buffer, incl. gpu.js's copy kernel) and read-back (device → host), median of 4:");
    table(["bytes", "upload ms", "upload GB/s", "read ms", "read GB/s"], tr.map((r) => [String(r.bytes), f(r.uploadMs, 3), f(r.uploadGBs, 2), f(r.readMs, 3), f(r.readGBs, 2)]));
  } catch (e) {
    note(`transfers failed: ${errMsg(e)}`);
  }
  save();
  try {
    const d = await dispatch(b);
    sec.dispatch = d;
    console.log(`  dispatch: ${d.kernels} tiny kernels (64 floats): ${f(d.hostOpsUs, 1)} µs/kernel of Hasten host work, ${f(d.untilSubmittedUs, 1)} µs until submitted, ${f(d.untilDoneUs, 1)} µs until done; GPU time ${f(d.gpuUsPerKernel, 2)} µs/kernel`);
  } catch (e) {
    note(`dispatch measurement failed: ${errMsg(e)}`);
  }
  save();
  const B = BATCHES[0];
  if (!overBudget(`time split of a training step at batch ${B}`, 0)) {
    try {
      const p = await stepPhases(b, B, QUICK ? 1 : 3);
      sec.trainStep = { batch: B, ...p };
      const pct = (x: number) => `${f((100 * x) / p.wallMs, 0)}%`;
      console.log(`  training step, batch ${B} (${B * SEQ} tokens), ${p.kernels} kernels, median of ${QUICK ? 1 : 3}: wall ${f(p.wallMs)} ms =`);
      console.log(`    host, Hasten ops (autograd, shapes, queueing)  ${f(p.hostOpsMs).padStart(9)} ms  ${pct(p.hostOpsMs)}`);
      console.log(`    host, encode + submit the kernels              ${f(p.encodeSubmitMs).padStart(9)} ms  ${pct(p.encodeSubmitMs)}  (${f((p.encodeSubmitMs * 1000) / Math.max(1, p.kernels))} µs/kernel)`);
      console.log(`    waiting for the GPU after the last submit      ${f(p.gpuWaitMs).padStart(9)} ms  ${pct(p.gpuWaitMs)}`);
      console.log(`    read-back of the loss                          ${f(p.readMs).padStart(9)} ms  ${pct(p.readMs)}`);
      if (p.timed > 0) {
        console.log(`    GPU kernel time (timestamps, ${p.timed} passes)       ${f(p.kernelMs).padStart(9)} ms  ${pct(p.kernelMs)} of the wall time: the GPU is idle the rest`);
        console.log("    costliest kernels: " + p.top.map((k) => `${k.key} ${f(k.ms, 2)} ms (${k.calls})`).join(", "));
      }
    } catch (e) {
      note(`training-step time split failed: ${errMsg(e)}`);
    }
    save();
  }
  const { lines } = sentences();
  const n = QUICK ? 2 : 8;
  if (!overBudget(`time split of decoding at batch 1 (${n} sentences)`, 0)) {
    try {
      const d = await decodePhases(b, lines.slice(0, n));
      sec.decodeBatch1 = d;
      const g = (k: string) => d[k] as number;
      console.log(`  greedy decoding at batch 1, ${n} sentences, ${g("tokens")} tokens: ${f(g("msPerToken"), 2)} ms/token = ${f(g("kernelsPerToken"), 0)} kernels, ${f(g("readsPerToken"), 1)} read-backs (${f(g("readWaitMsPerToken"), 2)} ms waiting in them)` +
        (ts.available ? `; GPU kernel time ${f(g("gpuKernelMsPerToken"), 3)} ms/token (${f((100 * g("gpuKernelMsPerToken")) / g("msPerToken"), 0)}% of the wall time)` : ""));
      if (ts.available) console.log("    costliest kernels: " + (d.top as { key: string; ms: number; calls: number }[]).map((k) => `${k.key} ${f(k.ms, 2)} ms (${k.calls})`).join(", "));
    } catch (e) {
      note(`decoding time split failed: ${errMsg(e)}`);
    }
    save();
  }
}

// ---------------------------------------------------------------- summary
function summary(adapter: AdapterSummary | null): void {
  const S = results.sections as Record<string, Record<string, unknown>[] | undefined>;
  const g = (o: unknown, ...path: string[]) => path.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], o) as number | undefined;
  const lines: string[] = [];
  const mm = (S.matmul ?? []).filter((r) => g(r, "gpujs", "gflops") !== undefined && g(r, "wasm", "gflops") !== undefined).at(-1);
  if (mm) lines.push(`matmul ${mm.n}³: gpujs ${f(g(mm, "gpujs", "gflops")!)} GFLOP/s (kernel alone ${f(g(mm, "gpujs", "kernelGflops") ?? NaN)}), wasm ${f(g(mm, "wasm", "gflops")!)}: ${ratio(g(mm, "gpujs", "gflops")!, g(mm, "wasm", "gflops")!)}` +
    (g(mm, "tfjs-webgpu", "gflops") !== undefined ? `; tfjs-webgpu ${f(g(mm, "tfjs-webgpu", "gflops")!)}` : ""));
  for (const r of S.train ?? []) {
    if (g(r, "gpujs", "tokensPerS") !== undefined && g(r, "wasm", "tokensPerS") !== undefined) {
      lines.push(`training step, batch ${r.batch}×${SEQ}: gpujs ${f(g(r, "gpujs", "tokensPerS")!, 0)} tokens/s, wasm ${f(g(r, "wasm", "tokensPerS")!, 0)}: ${ratio(g(r, "gpujs", "tokensPerS")!, g(r, "wasm", "tokensPerS")!)}`);
    }
  }
  for (const r of (S.decode as Record<string, unknown>[] | undefined) ?? []) {
    if (g(r, "gpujs", "sentencesPerS") !== undefined && g(r, "wasm", "sentencesPerS") !== undefined) {
      lines.push(`decoding, batch ${r.batch}: gpujs ${f(g(r, "gpujs", "sentencesPerS")!)} sentences/s, wasm ${f(g(r, "wasm", "sentencesPerS")!)}: ${ratio(g(r, "gpujs", "sentencesPerS")!, g(r, "wasm", "sentencesPerS")!)} (same output: ${r.sameTranslations})`);
    }
  }
  const t = results.sections.time as Record<string, Record<string, number>> | undefined;
  if (t?.trainStep?.kernelMs) lines.push(`a training step at batch ${t.trainStep.batch} keeps the GPU busy ${f((100 * t.trainStep.kernelMs) / t.trainStep.wallMs, 0)}% of its wall time; ${t.trainStep.kernels} kernels`);
  if (t?.dispatch) lines.push(`per kernel: ${f(t.dispatch.untilSubmittedUs)} µs of host time to submit, ${f(t.dispatch.gpuUsPerKernel, 2)} µs on the GPU for a tiny one`);
  console.log(`\nsummary (${adapter ? adapter.name : "no adapter"}${adapter?.software ? ", a SOFTWARE adapter: these say nothing about a GPU" : ""}; ${f(elapsedS(), 0)} s in all):`);
  for (const l of lines) console.log(`  ${l}`);
  if (results.notes.length) console.log(`  ${results.notes.length} note(s) above`);
  results.summary = lines;
}

// ---------------------------------------------------------------- main
function gitCommit(): string {
  try {
    return execSync("git rev-parse --short HEAD", { cwd: ROOT, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  } catch {
    return "unknown (no git here)";
  }
}

async function main(): Promise<number> {
  const dawnError = await installDawn();
  if (!has("probe")) ts.install();
  const adapter = dawnError ? null : await adapterSummary();
  results.adapter = adapter ?? { error: dawnError ?? "no WebGPU adapter answered" };
  if (has("probe")) {
    console.log(adapter ? `ADAPTER: ${adapter.name}${adapter.software ? " (software)" : " (hardware)"}; vendor ${adapter.vendor || "?"}, architecture ${adapter.architecture || "?"}, device ${adapter.device || "?"}; timestamp queries ${adapter.timestampQuery ? "yes" : "no"}; max storage binding ${adapter.maxStorageBufferBindingSize} B`
      : `ADAPTER: none (${dawnError ?? "no WebGPU adapter answered"})`);
    save();
    return adapter ? (adapter.software ? 2 : 0) : 3;
  }
  const cpus = os.cpus();
  results.machine = { cpu: cpus[0]?.model ?? "?", cores: cpus.length, memGiB: Math.round(os.totalmem() / 2 ** 30), os: `${os.type()} ${os.release()}`, node: process.version };
  results.commit = gitCommit();
  console.log(`Hasten GPU report${QUICK ? " (--quick)" : ""}, ${new Date().toISOString().slice(0, 19)}Z, commit ${results.commit}`);
  console.log(`machine: ${cpus[0]?.model ?? "?"} × ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`);
  console.log(`WebGPU adapter: ${adapter ? `${adapter.name} — ${adapter.software ? "SOFTWARE (a CPU pretending; the gpujs figures say nothing about a GPU)" : "hardware"}; vendor ${adapter.vendor || "?"}, architecture ${adapter.architecture || "?"}` : `none (${dawnError ?? "no WebGPU adapter answered"})`}`);

  const threads = flag("threads");
  wasm = await use("wasm");
  if (threads) getWasmRuntime().setNumThreads(Number(threads));
  await getWasmRuntime().ready();
  results.wasmThreads = getWasmRuntime().getNumThreads();
  console.log(`wasm backend: ${getWasmRuntime().getNumThreads()} threads`);
  if (adapter) {
    try {
      gpu = (await use("gpujs")) as GpujsBackend;
      await ts.attach();
    } catch (e) {
      note(`gpujs/webgpu could not start: ${errMsg(e)}`);
    }
  }
  console.log(`gpujs backend: ${gpu ? `mode ${gpu.mode}; GPU kernel times from timestamp queries: ${ts.available ? "yes" : "no (the adapter lacks them)"}` : "not measured"}`);
  let tf: TF | null = null;
  if (gpu && SECTIONS.includes("matmul")) {
    const r = await loadTfjsWebgpu();
    if (typeof r === "string") note(`peer tfjs-webgpu not measured: ${r}`);
    else {
      tf = r;
      console.log(`peer: tfjs ${tf.version_core} on its webgpu backend (same Dawn, its own device)`);
      results.peer = `tfjs-backend-webgpu ${tf.version_core}`;
    }
  }
  console.log(`time budget ${BUDGET_S} s`);
  save();

  for (const s of SECTIONS) {
    if (s === "time" && !gpu) {
      note(`section ${s} needs the gpujs backend: skipped`);
      continue;
    }
    try {
      if (s === "matmul") await sectionMatmul(tf);
      else if (s === "train") await sectionTrain();
      else if (s === "decode") await sectionDecode();
      else await sectionTime();
    } catch (e) {
      note(`section ${s} failed: ${errMsg(e)}`);
    }
    save();
  }
  summary(adapter);
  save();
  return 0;
}

main().then(
  async (code) => {
    await getWasmRuntime().shutdown().catch(() => undefined);
    process.exit(code); // Dawn keeps the event loop alive while navigator.gpu is referenced
  },
  (e: Error) => {
    console.error(`gpu-report: ${e.stack ?? e.message}`);
    save();
    process.exit(1);
  },
);
