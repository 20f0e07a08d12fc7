// The gpujs backend through the Tensor API: forward + backward against the cpu backend, a few
// training steps of a tiny attention model giving the same losses, and no buffer left behind
// after 100 steps inside tidy(). Runs in mode "webgpu" (skipped with the reason printed when no
// adapter answers) and "webasm".
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { setBackend, type Backend } from "../../core/backend.ts";
import "../../core/backends/gpujs/register.ts";
import { probeAdapter, type GpujsBackend, type GpujsMode } from "../../core/backends/gpujs/index.ts";
import { keep, tidy } from "../../core/scope.ts";
import { Generator } from "../../core/rng.ts";
import { embedding, layerNorm, crossEntropy, setLeakBackstop, tensor, type Tensor } from "../../core/index.ts";
import { runKernel } from "../../core/ops/run.ts";
import { noGrad } from "../../core/autograd.ts";
import { skipTest } from "../helpers/skip.ts";

// The buffer count below spans awaits, where the leak backstop could free earlier garbage.
setLeakBackstop(false);

const [B, T, D, V] = [2, 5, 8, 11];
const SEED = 7;

interface Model { params: Record<string, Tensor>; m: Record<string, Tensor>; v: Record<string, Tensor>; step: number }

// Same initial values on every backend: drawn on the host from one seed, then uploaded.
function makeModel(backend: Backend): Model {
  const g = new Generator(SEED);
  const rnd = (shape: number[], scale: number) => tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => g.normal() * scale), { shape, backend, requiresGrad: true });
  const params = {
    E: rnd([V, D], 0.5), Wq: rnd([D, D], 0.3), Wk: rnd([D, D], 0.3), Wv: rnd([D, D], 0.3),
    lnw: tensor(new Array(D).fill(1), { shape: [D], backend, requiresGrad: true }), lnb: rnd([D], 0.1),
    Wo: rnd([D, V], 0.3), bo: rnd([V], 0.1),
  };
  const zeros = () => Object.fromEntries(Object.entries(params).map(([k, p]) => [k, tensor(new Array(p.size).fill(0), { shape: p.shape, backend })]));
  return { params, m: zeros(), v: zeros(), step: 0 };
}

function batch(backend: Backend) {
  const g = new Generator(SEED + 1);
  const ids = Array.from({ length: B * T }, () => g.randint(0, V));
  const tgt = ids.map((x, i) => (i === 3 ? -100 : (x * 3 + 1) % V)); // one ignored target
  const causal = Array.from({ length: T * T }, (_, k) => (k % T > Math.floor(k / T) ? 1 : 0));
  return {
    ids: tensor(ids, { shape: [B, T], dtype: "int32", backend }),
    tgt: tensor(tgt, { shape: [B, T], dtype: "int32", backend }),
    mask: tensor(causal, { shape: [T, T], backend }),
  };
}

// One causal self-attention layer with a residual, layer norm, GELU and an output projection.
function loss(md: Model, b: ReturnType<typeof batch>): Tensor {
  const p = md.params;
  const x = embedding(p.E, b.ids); // [B, T, D]
  const q = x.matmul(p.Wq), k = x.matmul(p.Wk), v = x.matmul(p.Wv);
  const s = q.matmul(k.mT).mul(1 / Math.sqrt(D)).maskedFill(b.mask, -1e9); // [B, T, T]
  const a = s.softmax(-1).matmul(v);
  const h = layerNorm(x.add(a), p.lnw, p.lnb).gelu();
  const logits = h.matmul(p.Wo).add(p.bo); // [B, T, V]
  return crossEntropy(logits, b.tgt, { labelSmoothing: 0.1 });
}

// AdamW on the fused kernel, as nn/optim does.
function adamStep(md: Model, lr = 0.05): void {
  md.step++;
  const [b1, b2] = [0.9, 0.999];
  noGrad(() => {
    for (const [name, p] of Object.entries(md.params)) {
      const [np, nm, nv] = runKernel("adamw", [p, p.grad!, md.m[name], md.v[name]], {
        n: p.size, lr, beta1: b1, beta2: b2, eps: 1e-8, weightDecay: 0.01, bc1: 1 - b1 ** md.step, bc2: 1 - b2 ** md.step,
      }, [0, 1, 2].map(() => ({ shape: p.shape, dtype: "float32" as const })), "adamw");
      p.assign_(np);
      md.m[name].assign_(nm);
      md.v[name].assign_(nv);
      p.zeroGrad();
    }
  });
}

// Loss of each step; the graph and temporaries die with tidy().
async function train(backend: Backend, steps: number): Promise<number[]> {
  const md = makeModel(backend), b = batch(backend);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    const l = tidy(() => {
      const l = loss(md, b);
      l.backward();
      adamStep(md);
      return keep(l.detach());
    });
    out.push((await l.data())[0]);
    l.dispose();
  }
  return out;
}

// Every await happens before the suites are defined: uvu starts running queued suites on the
// next timer tick when a file is run alone.
const cpuBackend = await setBackend("cpu");
const cpuLosses = await train(cpuBackend, 5);
const adapter = await probeAdapter();

function modeSuite(mode: GpujsMode): void {
  const s = suite(`gpujs through the Tensor API, mode ${mode}`);
  if (mode === "webgpu" && !adapter) {
    skipTest(s, "forward + backward, training parity, live buffers (gpujs/webgpu)", "no WebGPU adapter answered");
    s.run();
    return;
  }
  let gb: GpujsBackend;
  s.before(async () => {
    gb = (await setBackend("gpujs", { mode })) as GpujsBackend;
  });
  s.after(async () => {
    await setBackend("cpu");
  });

  s("forward + backward of a small expression matches cpu", async () => {
    const vals = { x: [0.5, -1.25, 2, 0.75, -0.3, 1.1], w: [0.2, -0.4, 1.5, 0.1, -0.7, 0.9] };
    const grads = async (backend: Backend) => {
      await setBackend(backend.name === "cpu" ? "cpu" : "gpujs", backend.name === "cpu" ? undefined : { mode });
      const x = tensor(vals.x, { shape: [2, 3], requiresGrad: true, backend });
      const w = tensor(vals.w, { shape: [3, 2], requiresGrad: true, backend });
      const y = x.matmul(w).tanh().softmax(-1).mul(x.sum(1, true)).sum();
      y.backward();
      return [await y.data(), await x.grad!.data(), await w.grad!.data()];
    };
    const want = await grads(cpuBackend), got = await grads(gb);
    for (let k = 0; k < want.length; k++) {
      for (let i = 0; i < want[k].length; i++) assert.ok(Math.abs(got[k][i] - want[k][i]) <= 1e-5 + 1e-5 * Math.abs(want[k][i]), `output ${k}[${i}]: ${got[k][i]} vs ${want[k][i]}`);
    }
  });

  s("dataSync works exactly when the backend is synchronous", async () => {
    const t = tensor([1, 2, 3], { backend: gb });
    if (gb.sync) assert.equal(Array.from(t.dataSync()), [1, 2, 3]);
    else assert.throws(() => t.dataSync(), /reads asynchronously; use await t.data\(\)/);
    assert.equal(Array.from(await t.data()), [1, 2, 3]);
    t.dispose();
  });

  s("five AdamW steps of a tiny attention model give the cpu backend's losses", async () => {
    const got = await train(gb, 5);
    assert.ok(cpuLosses[4] < cpuLosses[0], `the model should learn: ${cpuLosses}`);
    for (let i = 0; i < got.length; i++) {
      assert.ok(Math.abs(got[i] - cpuLosses[i]) <= 1e-4 * Math.abs(cpuLosses[i]), `step ${i}: gpujs/${mode} ${got[i]} vs cpu ${cpuLosses[i]}`);
    }
  });

  s("liveBuffers returns to its baseline after 100 training steps inside tidy()", async () => {
    const md = makeModel(gb), b = batch(gb);
    const step = () => tidy(() => {
      loss(md, b).backward();
      adamStep(md);
    });
    step();
    await gb.flush();
    const live = gb.liveBuffers(), device = gb.deviceBuffers();
    for (let i = 0; i < 100; i++) step();
    await gb.flush();
    assert.is(gb.liveBuffers(), live, "tensor-level buffers");
    assert.is(gb.deviceBuffers(), device, "device buffers (after flush)");
    const l = tidy(() => keep(loss(md, b).detach()));
    assert.ok((await l.data())[0] < cpuLosses[0], "training moved the loss");
    l.dispose();
    for (const t of [...Object.values(md.params), ...Object.values(md.m), ...Object.values(md.v), b.ids, b.tgt, b.mask]) t.dispose();
    await gb.flush();
  });
  s.run();
}

modeSuite("webgpu");
modeSuite("webasm");
