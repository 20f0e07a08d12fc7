// Measures the gpujs backend against the cpu backend on this machine and says which adapter ran:
//   npx tsx scripts/gpu-report.ts [--sizes=256,512,1024] [--steps=5] [--modes=webgpu,webasm]
// Reports matmul GFLOP/s, kernel compile cost, per-kernel overhead, and the time of one
// training step (forward, backward, AdamW) of a small Transformer-like block.
import os from "node:os";
import { setBackend, type Backend } from "../core/backend.ts";
import { createCpuBackend } from "../core/backends/cpu/index.ts";
import { probeAdapter, type GpujsBackend, type GpujsMode } from "../core/backends/gpujs/index.ts";
import "../core/backends/gpujs/register.ts";
import { crossEntropy, embedding, layerNorm, tensor, type Tensor } from "../core/index.ts";
import { keep, tidy } from "../core/scope.ts";
import { Generator } from "../core/rng.ts";
import { noGrad } from "../core/autograd.ts";
import { runKernel } from "../core/ops/run.ts";

const flag = (name: string, dflt: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt;
const sizes = flag("sizes", "256,512,1024").split(",").map(Number);
const steps = Number(flag("steps", "5"));
const modes = flag("modes", "webgpu").split(",") as GpujsMode[];

async function sync(b: Backend): Promise<void> {
  await b.flush?.();
}

// ---- matmul ----
async function gflops(b: Backend, n: number): Promise<number> {
  const g = new Generator(1);
  const up = () => b.upload("float32", Float32Array.from({ length: n * n }, () => g.normal()));
  const [x, y] = [up(), up()];
  const p = { batch: 1, M: n, K: n, N: n, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 };
  const once = () => b.run("matmul", [x, y], p)[0];
  const warm = once();
  await b.read(warm); // compiles, and waits for the GPU
  b.free(warm);
  let reps = 0;
  const t0 = performance.now();
  // Repeat until 1.5 s have passed (at least twice); the last read waits for the device.
  while (reps < 2 || performance.now() - t0 < 1500) {
    const c = once();
    reps++;
    if (reps % 4 === 0 || performance.now() - t0 > 1500) await b.read(c);
    b.free(c);
  }
  await sync(b);
  const s = (performance.now() - t0) / 1000;
  b.free(x);
  b.free(y);
  return (2 * n * n * n * reps) / s / 1e9;
}

// ---- per-kernel overhead: many tiny kernels; time until all are submitted, and until done ----
async function overheadUs(b: Backend): Promise<[number, number]> {
  const x = b.upload("float32", new Float32Array(64));
  const run = (k: number) => {
    for (let i = 0; i < k; i++) b.free(b.run("scalar", [x], { op: "add", value: 1, n: 64, dtype: "float32" })[0]);
  };
  run(10);
  await sync(b);
  const t0 = performance.now();
  run(2000);
  await (b as Partial<GpujsBackend>).submitted?.();
  const t1 = performance.now();
  await sync(b);
  const t2 = performance.now();
  b.free(x);
  return [((t1 - t0) * 1000) / 2000, ((t2 - t0) * 1000) / 2000];
}

// ---- a Transformer-like block: multi-head causal attention + GELU feed-forward, pre-LN ----
const [B, T, D, H, F, V] = [8, 32, 64, 4, 256, 512];
function model(backend: Backend) {
  const g = new Generator(3);
  const p = (shape: number[], s: number) => tensor(Array.from({ length: shape.reduce((a, c) => a * c, 1) }, () => g.normal() * s), { shape, backend, requiresGrad: true });
  const one = (n: number) => tensor(new Array(n).fill(1), { shape: [n], backend, requiresGrad: true });
  const params: Record<string, Tensor> = {
    E: p([V, D], 0.1), Wqkv: p([D, 3 * D], 0.1), Wo: p([D, D], 0.1), ln1: one(D), b1: p([D], 0),
    ln2: one(D), b2: p([D], 0), W1: p([D, F], 0.1), c1: p([F], 0), W2: p([F, D], 0.05), c2: p([D], 0), Wout: p([D, V], 0.1),
  };
  const state = Object.fromEntries(Object.entries(params).flatMap(([k, t]) => [[`m${k}`, tensor(new Array(t.size).fill(0), { shape: t.shape, backend })], [`v${k}`, tensor(new Array(t.size).fill(0), { shape: t.shape, backend })]]));
  const ids = tensor(Array.from({ length: B * T }, () => g.randint(0, V)), { shape: [B, T], dtype: "int32", backend });
  const tgt = tensor(Array.from({ length: B * T }, () => g.randint(0, V)), { shape: [B, T], dtype: "int32", backend });
  const mask = tensor(Array.from({ length: T * T }, (_, k) => (k % T > Math.floor(k / T) ? 1 : 0)), { shape: [T, T], backend });
  let t = 0;
  const step = (): Tensor => tidy(() => {
    const P = params;
    const x = embedding(P.E, ids); // [B, T, D]
    const qkv = layerNorm(x, P.ln1, P.b1).matmul(P.Wqkv).reshape(B, T, 3, H, D / H).permute(2, 0, 3, 1, 4); // [3, B, H, T, Dh]
    const [q, k, v] = qkv.split(1, 0).map((u) => u.squeeze(0));
    const att = q.matmul(k.mT).mul(1 / Math.sqrt(D / H)).maskedFill(mask, -1e9).softmax(-1).matmul(v); // [B, H, T, Dh]
    const h = x.add(att.permute(0, 2, 1, 3).reshape(B, T, D).matmul(P.Wo));
    const f = layerNorm(h, P.ln2, P.b2).matmul(P.W1).add(P.c1).gelu().matmul(P.W2).add(P.c2);
    const loss = crossEntropy(h.add(f).matmul(P.Wout), tgt);
    loss.backward();
    t++;
    noGrad(() => {
      for (const [name, w] of Object.entries(P)) {
        const [nw, nm, nv] = runKernel("adamw", [w, w.grad!, state[`m${name}`], state[`v${name}`]], {
          n: w.size, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, bc1: 1 - 0.9 ** t, bc2: 1 - 0.999 ** t,
        }, [0, 1, 2].map(() => ({ shape: w.shape, dtype: "float32" as const })), "adamw");
        w.assign_(nw);
        state[`m${name}`].assign_(nm);
        state[`v${name}`].assign_(nv);
        w.zeroGrad();
      }
    });
    return keep(loss.detach());
  });
  return { step, dispose: () => [...Object.values(params), ...Object.values(state), ids, tgt, mask].forEach((x) => x.dispose()) };
}

async function stepMs(b: Backend): Promise<{ ms: number; loss: number }> {
  await setBackend(b.name === "cpu" ? "cpu" : "gpujs", b.name === "cpu" ? undefined : { mode: (b as GpujsBackend).mode });
  const m = model(b);
  const first = m.step(); // compiles every kernel on gpujs
  await first.data();
  first.dispose();
  const t0 = performance.now();
  let loss = 0;
  for (let i = 0; i < steps; i++) {
    const l = m.step();
    loss = (await l.data())[0]; // a training loop that logs its loss waits for each step
    l.dispose();
  }
  const ms = (performance.now() - t0) / steps;
  m.dispose();
  await sync(b);
  return { ms, loss };
}

const adapter = await probeAdapter();
console.log(`machine: ${os.cpus()[0]?.model ?? "?"} × ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`);
console.log(`WebGPU adapter: ${adapter ? `${adapter.name}${adapter.software ? " (software adapter: numbers say nothing about a GPU)" : ""}` : "none"}`);
const cpu = createCpuBackend();
const backends: [string, Backend][] = [["cpu", cpu]];
for (const mode of modes) {
  try {
    const b = (await setBackend("gpujs", { mode })) as GpujsBackend;
    backends.push([`gpujs/${mode}`, b]);
  } catch (e) {
    console.log(`gpujs/${mode}: not measured: ${(e as Error).message}`);
  }
}

console.log("\nmatmul GFLOP/s (n×n @ n×n, float32)");
console.log(["n".padStart(6), ...backends.map(([l]) => l.padStart(14))].join(""));
for (const n of sizes) {
  const row = [String(n).padStart(6)];
  for (const [, b] of backends) row.push((await gflops(b, n)).toFixed(2).padStart(14));
  console.log(row.join(""));
}

console.log(`\ntraining step, B=${B} T=${T} D=${D} heads=${H} ff=${F} vocab=${V} (mean of ${steps} steps after one warm-up)`);
for (const [label, b] of backends) {
  const r = await stepMs(b);
  console.log(`${label.padEnd(14)} ${r.ms.toFixed(1).padStart(9)} ms/step   loss after ${steps + 1} steps ${r.loss.toFixed(5)}`);
}

console.log("\nper-kernel overhead (2000 kernels on 64 elements): µs per kernel until submitted / until finished");
for (const [label, b] of backends) {
  const [sub, done] = await overheadUs(b);
  console.log(`${label.padEnd(14)} ${sub.toFixed(1).padStart(9)} / ${done.toFixed(1)} µs`);
}

for (const [label, b] of backends.slice(1)) {
  const st = (b as GpujsBackend).stats();
  const ms = st.compiles.map((c) => c.firstCallMs).sort((a, c) => a - c);
  const total = ms.reduce((a, c) => a + c, 0);
  console.log(`\n${label}: ${st.compiles.length} kernels compiled, first calls ${total.toFixed(0)} ms in all (median ${ms[ms.length >> 1]?.toFixed(1)} ms, max ${ms.at(-1)?.toFixed(1)} ms), ${st.launches} kernel calls`);
  (b as GpujsBackend).destroy();
}
