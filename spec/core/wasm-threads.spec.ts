// The worker pool: results with 2 threads equal the 1-thread results bit for bit (every split
// gives each C element the same k order), the partition covers C exactly once, shutdown works
// and the runtime keeps working after it, and a process that used workers exits by itself.
// Workers instantiate the caller's compiled module, so they run the same multiply-add path
// (relaxed_madd or mul + add): checked on both paths.
import { spawnSync } from "node:child_process";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { WasmRuntime } from "../../core/backends/wasm/index.ts";
import { planGemm, resolveGemm } from "../../core/backends/wasm/gemm.ts";
import { ThreadChooser } from "../../core/backends/wasm/adaptive.ts";

const rt = new WasmRuntime({ threads: 2, parallelMinFlops: 0, adaptive: false, heap: { initialBytes: 1 << 22 }, gemm: { fma: true } });
const plain = new WasmRuntime({ threads: 2, parallelMinFlops: 0, adaptive: false, heap: rt.heap, gemm: { fma: false } });

function fill(ptr: number, n: number, seed: number) {
  const v = rt.heap.f32(ptr, n);
  let s = seed;
  for (let i = 0; i < n; i++) v[i] = ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
}

async function sameOnTwoThreads(rt: WasmRuntime) {
  await rt.ready();
  const cases = [
    { M: 67, N: 45, K: 300 }, // row tiles
    { M: 3, N: 131, K: 70, transB: true }, // column tiles
    { M: 150, N: 700, K: 33, transA: true, transB: true }, // both, with edges
    { M: 20, N: 33, K: 17, batch: 4, transA: true }, // batches
    { M: 9, N: 30, K: 12, batch: 3, cBatchStride: 0, transA: true, transB: true }, // batch sum: batches in order
  ];
  for (const cs of cases) {
    const batch = cs.batch ?? 1;
    const nA = batch * cs.M * cs.K, nB = batch * cs.K * cs.N, nC = (cs.cBatchStride === 0 ? 1 : batch) * cs.M * cs.N;
    const a = rt.heap.alloc(nA * 4), b = rt.heap.alloc(nB * 4), c1 = rt.heap.alloc(nC * 4), c2 = rt.heap.alloc(nC * 4);
    fill(a, nA, 1);
    fill(b, nB, 2);
    rt.setNumThreads(1);
    rt.gemm({ ...cs, a, b, c: c1 });
    rt.setNumThreads(2);
    await rt.ready(); // the worker may still be finishing the last call on a busy machine
    rt.gemm({ ...cs, a, b, c: c2 });
    if (rt.lastGemm.tasks > 1) assert.is(rt.lastGemm.threads, 2, `${JSON.stringify(cs)}: the call was shared with the worker`);
    const x = rt.heap.f32(c1, nC), y = rt.heap.f32(c2, nC);
    for (let i = 0; i < nC; i++) if (!Object.is(x[i], y[i])) assert.unreachable(`${JSON.stringify(cs)}: C[${i}] ${x[i]} vs ${y[i]}`);
    for (const p of [a, b, c1, c2]) rt.heap.free(p);
  }
}

test("2 threads give bit-identical results to 1 thread (row, column and batch tasks), relaxed_madd", () => sameOnTwoThreads(rt));
test("2 threads give bit-identical results to 1 thread (row, column and batch tasks), mul+add", () => sameOnTwoThreads(plain));

test("the worker's tasks use the caller's multiply-add: fused where the caller's is", async () => {
  // every C element is 1·(−(1 + 2⁻¹¹)) + (1 + 2⁻¹²)²: 2⁻²⁴ fused, 0 rounded twice (see wasm-gemm.spec)
  // Many row tasks, so that a worker still waking up finds some left to take.
  const [M, N, K] = [4096, 64, 2];
  const a = rt.heap.alloc(M * K * 4), b = rt.heap.alloc(K * N * 4), c = rt.heap.alloc(M * N * 4);
  const A = rt.heap.f32(a, M * K), B = rt.heap.f32(b, K * N);
  for (let i = 0; i < M; i++) A.set([1, 1 + 2 ** -12], i * K);
  B.fill(-(1 + 2 ** -11), 0, N);
  B.fill(1 + 2 ** -12, N, 2 * N);
  for (const r of [rt, plain]) {
    r.setNumThreads(1);
    r.gemm({ M, N, K, a, b, c });
    const alone = rt.heap.f32(c, 1)[0];
    assert.is(alone, r.fma ? alone : 0, "mul+add rounds twice");
    r.setNumThreads(2);
    // on a busy machine the caller may take every task before the worker wakes: retry, giving
    // the worker's thread a moment to be scheduled between tries
    for (let i = 0; i < 50; i++) {
      await r.ready();
      if (i > 0) await new Promise((res) => setTimeout(res, 5));
      rt.heap.f32(c, M * N).fill(NaN);
      r.gemm({ M, N, K, a, b, c });
      if (r.lastGemm.tasksHere < r.lastGemm.tasks) break;
    }
    assert.ok(r.lastGemm.tasksHere < r.lastGemm.tasks, `the worker ran none of ${r.lastGemm.tasks} tasks in 50 tries`);
    assert.equal([...new Set(rt.heap.f32(c, M * N))], [alone], `fma ${r.fma}: every task, the worker's too, gives ${alone}`);
  }
  for (const p of [a, b, c]) rt.heap.free(p);
});

test("property: the task plan covers every C element of every batch exactly once", () => {
  const cfg = rt.gemmConfig;
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 700 }), fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 6 }), fc.boolean(),
      (M, N, batch, threads, sum) => {
        const r = resolveGemm({ M, N, K: 2, batch, a: 0, b: 1 << 24, c: 2 << 24, cBatchStride: sum ? 0 : undefined }, 1 << 30);
        const p = planGemm(r, threads, cfg);
        assert.ok(p.mb % cfg.MR === 0 || p.mb === M, `mb ${p.mb}`);
        assert.ok(p.nb % cfg.NR === 0 || p.nb === N, `nb ${p.nb}`);
        if (threads === 1) assert.is(p.tasks, sum && batch > 1 ? 1 : batch, "one task per batch on one thread");
        // the wasm driver's mapping of task t to (batches, rows, columns)
        const seen = new Uint8Array(batch * M * N);
        const per = p.tilesM * p.tilesN;
        for (let t = 0; t < p.tasks; t++) {
          const [b0, b1, rest] = p.sumBatch ? [0, batch, t] : [Math.floor(t / per), Math.floor(t / per) + 1, t % per];
          const m0 = Math.floor(rest / p.tilesN) * p.mb, n0 = (rest % p.tilesN) * p.nb;
          for (let b = b0; b < b1; b++) for (let i = m0; i < Math.min(M, m0 + p.mb); i++) for (let j = n0; j < Math.min(N, n0 + p.nb); j++) seen[(b * M + i) * N + j]++;
        }
        assert.ok(seen.every((v) => v === 1));
      },
    ),
    { seed: 7, numRuns: 150 },
  );
});

test("the adaptive choice follows the faster arm, probes the other, and notices a change", () => {
  const ch = new ThreadChooser(32);
  let msOne = 2, msMany = 1; // ms per call of 1000 units
  const run = (calls: number) => {
    let parallel = 0;
    for (let i = 0; i < calls; i++) {
      const p = ch.parallel("k", 1000);
      parallel += p ? 1 : 0;
      ch.record("k", 1000, p, p ? msMany : msOne);
    }
    return parallel / calls;
  };
  assert.ok(run(400) > 0.9, "workers twice as fast: used almost always");
  msMany = 3; // the machine got busy: the workers now slow calls down
  run(300);
  assert.ok(run(300) < 0.1, "then one thread wins");
  msMany = 1;
  run(300);
  assert.ok(run(300) > 0.9, "and the workers come back when they help again");
  // one slow outlier does not flip a clear choice
  const before = ch.snapshot()["k:10"][1];
  ch.record("k", 1000, true, 50);
  assert.ok(ch.snapshot()["k:10"][1] <= 1.3 * before + 1e-12);
});

test("shutdown stops the workers; the runtime keeps working and restarts them", async () => {
  const n = 64 * 64;
  const a = rt.heap.alloc(n * 4), b = rt.heap.alloc(n * 4), c = rt.heap.alloc(n * 4), d = rt.heap.alloc(n * 4);
  fill(a, n, 3);
  fill(b, n, 4);
  rt.gemm({ M: 64, N: 64, K: 64, a, b, c });
  await rt.shutdown();
  rt.gemm({ M: 64, N: 64, K: 64, a, b, c: d }); // no workers ready: runs here
  await rt.ready();
  rt.gemm({ M: 64, N: 64, K: 64, a, b, c: d });
  assert.equal(Array.from(rt.heap.f32(d, n)), Array.from(rt.heap.f32(c, n)));
  for (const p of [a, b, c, d]) rt.heap.free(p);
});

test("a process that used worker threads exits by itself (workers are unref'd)", () => {
  const dir = mkdtempSync(join(tmpdir(), "hasten-wasm-"));
  const script = join(dir, "exit.mts"); // .mts: top-level await outside a "type": "module" package
  const runtime = fileURLToPath(new URL("../../core/backends/wasm/index.ts", import.meta.url));
  writeFileSync(script, `
    import { WasmRuntime } from ${JSON.stringify(runtime)};
    const rt = new WasmRuntime({ threads: 2, parallelMinFlops: 0 });
    await rt.ready();
    const a = rt.heap.alloc(4 * 256 * 256), c = rt.heap.alloc(4 * 256 * 256);
    rt.gemm({ M: 256, N: 256, K: 256, a, b: a, c });
    console.log("done");
  `);
  try {
    const tsx = fileURLToPath(new URL("../../node_modules/tsx/dist/loader.mjs", import.meta.url));
    const r = spawnSync(process.execPath, ["--import", tsx, script], { timeout: 20000, encoding: "utf8" });
    assert.equal(r.signal, null, `the child was killed (${r.signal}): it did not exit by itself`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "done");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.after(async () => {
  await rt.shutdown();
  await plain.shutdown();
});
test.run();
