// The gpujs backend's promises beyond the arithmetic: mode selection, clear errors, index
// checks, and the device queue (free in order, errors surface at read and flush).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createGpujsBackend, probeAdapter, type GpujsBackend } from "../../core/backends/gpujs/index.ts";
import { chooseMode } from "../../core/backends/gpujs/device.ts";
import type { GpujsBuffer, KernelSpec } from "../../core/backends/gpujs/runtime.ts";
import { floorDiv } from "../../core/backends/gpujs/gpu-math.ts";
import { skipTest } from "../helpers/skip.ts";

// Every await happens before the suites are defined: uvu starts running queued suites on the
// next timer tick when a file is run alone.
const adapter = await probeAdapter();

const f32 = (xs: number[]) => Float32Array.from(xs);
const i32 = (xs: number[]) => Int32Array.from(xs);

const options = suite("gpujs options and mode choice");
options("bad options are refused with what was expected", () => {
  assert.throws(() => createGpujsBackend({ mode: "gpu" }), /gpujs: option mode: expected one of webgpu, webasm, cpu, got "gpu"/);
  assert.throws(() => createGpujsBackend({ mode: "cpu", threads: 2 }), /unknown option\(s\) threads/);
});
options("the default mode is webgpu only on a hardware adapter, else webasm with a reason", async () => {
  const saved = process.env.HASTEN_GPUJS_MODE;
  delete process.env.HASTEN_GPUJS_MODE;
  try {
    const warnings: string[] = [];
    const mode = await chooseMode((m) => warnings.push(m));
    if (adapter && !adapter.software) {
      assert.is(mode, "webgpu");
      assert.is(warnings.length, 0);
    } else {
      assert.is(mode, "webasm");
      assert.is(warnings.length, 1);
      assert.match(warnings[0], adapter ? /only WebGPU adapter is a software one .*using mode "webasm"/ : /no WebGPU adapter answered; using mode "webasm"/);
    }
    process.env.HASTEN_GPUJS_MODE = "cpu";
    assert.is(await chooseMode(() => assert.unreachable("no warning when the mode is forced")), "cpu");
  } finally {
    if (saved === undefined) delete process.env.HASTEN_GPUJS_MODE;
    else process.env.HASTEN_GPUJS_MODE = saved;
  }
});
options.run();

// Index arithmetic is float32 in gpu.js kernels; floorDiv must be exact up to 2^24. With a
// correctly rounded division ⌊a/b⌋ is already exact there, so on lavapipe this shows only that
// the correction does no harm; it matters on drivers with approximate division (WGSL allows
// 2.5 ulp), where a/b for a multiple of b can land just below the integer.
const FLOOR_DIV: KernelSpec = {
  key: "test:floorDiv",
  source: "function (base, d) { return floorDiv(base + this.thread.x, d); }",
  args: ["Integer", "Integer"],
  functions: [floorDiv],
};
async function checkFloorDiv(b: GpujsBackend): Promise<void> {
  const n = 4096, base = 2 ** 24 - n;
  for (const d of [3, 7, 641, 4095, 65537, 2 ** 24 - 1]) {
    const out = b.rt.launch(FLOOR_DIV, n, "float32", [base, d]);
    const got = await b.rt.read(out);
    b.rt.free(out);
    for (let i = 0; i < n; i++) {
      if (got[i] !== Math.floor((base + i) / d)) assert.unreachable(`floorDiv(${base + i}, ${d}) = ${got[i]}, want ${Math.floor((base + i) / d)} (${b.mode})`);
    }
  }
}

// The synchronous modes check indices on the host and throw the cpu backend's errors.
for (const mode of ["webasm", "cpu"] as const) {
  const s = suite(`gpujs ${mode}: index checks and synchronous reads`);
  const b = createGpujsBackend({ mode }) as GpujsBackend;
  s("sync is true and readSync returns typed arrays of the buffer's dtype", () => {
    assert.is(b.sync, true);
    const x = b.upload("int32", i32([3, -4]));
    assert.equal(b.readSync(x), i32([3, -4]));
    b.free(x);
  });
  s("an out-of-range index throws before any kernel runs", () => {
    const x = b.upload("float32", f32([1, 2, 3])), idx = b.upload("int32", i32([0, 3]));
    const live = b.liveBuffers();
    assert.throws(() => b.run("gather", [x, idx], { outer: 1, n: 3, k: 2, inner: 1, dtype: "float32" }), /gather: index 3 out of range \[0, 3\)/);
    assert.throws(() => b.run("indexSelect", [x, idx], { outer: 1, n: 3, m: 2, inner: 1, dtype: "float32" }), /indexSelect: index 3 out of range/);
    const z = b.upload("float32", f32([0, 1, 2, 3, 4, 5])), t = b.upload("int32", i32([-100, 7]));
    assert.throws(() => b.run("crossEntropy", [z, t], { rows: 2, v: 3, ignoreIndex: -100, labelSmoothing: 0 }), /crossEntropy: index 7 out of range \[0, 3\)/);
    const src = b.upload("float32", f32([10, 20]));
    assert.throws(() => b.run("scatterAdd", [idx, src], { outer: 1, n: 3, k: 2, inner: 1 }), /scatterAdd: index 3 out of range \[0, 3\)/);
    assert.throws(() => b.run("indexAdd", [idx, src], { outer: 1, n: 3, m: 2, inner: 1 }), /indexAdd: index 3 out of range \[0, 3\)/);
    assert.is(b.liveBuffers(), live + 3);
    for (const u of [x, idx, z, t, src]) b.free(u);
  });
  s("floorDiv is exact just below 2^24", () => checkFloorDiv(b));
  s("a buffer freed twice is an error, not a corrupted count", () => {
    const x = b.full("float32", 2, 1);
    b.free(x);
    assert.throws(() => b.free(x), /already freed/);
    assert.is(b.liveBuffers(), 0);
  });
  s.after(() => b.destroy());
  s.run();
}

const gpu = suite("gpujs webgpu: the device queue");
if (!adapter) {
  skipTest(gpu, "device queue semantics (gpujs/webgpu)", "no WebGPU adapter answered");
} else {
  let b: GpujsBackend;
  gpu.before(async () => {
    b = (await createGpujsBackend({ mode: "webgpu" })) as GpujsBackend;
  });
  gpu.after(() => b.destroy());
  gpu("sync is false and readSync says to await instead", () => {
    assert.is(b.sync, false);
    const x = b.full("float32", 1, 0);
    assert.throws(() => b.readSync(x), /mode "webgpu" reads asynchronously; use await t.data\(\)/);
    b.free(x);
  });
  gpu("floorDiv is exact just below 2^24", () => checkFloorDiv(b));
  gpu("an input freed right after the kernel that reads it is still read correctly", async () => {
    const x = b.upload("float32", f32([1, 4, 9]));
    const [y] = b.run("unary", [x], { op: "sqrt", n: 3 });
    b.free(x); // queued after the kernel's submit; WebGPU keeps the buffer until that work is done
    const [z] = b.run("scalar", [y], { op: "mul", value: -2, n: 3, dtype: "float32" });
    b.free(y);
    assert.equal(Array.from(await b.read(z)), [-2, -4, -6]);
    b.free(z);
    await b.flush();
    assert.is(b.deviceBuffers(), 0);
  });
  gpu("out-of-range indices give NaN rows (a GPU kernel cannot throw)", async () => {
    const x = b.upload("float32", f32([1, 2, 3])), idx = b.upload("int32", i32([2, 5]));
    const [y] = b.run("gather", [x, idx], { outer: 1, n: 3, k: 2, inner: 1, dtype: "float32" });
    const got = await b.read(y);
    assert.is(got[0], 3);
    assert.ok(Number.isNaN(got[1]));
    for (const u of [x, idx, y]) b.free(u);
  });
  gpu("scatterAdd and indexAdd: an out-of-range index gives NaN, not a silently dropped term", async () => {
    // scatterAdd [outer 1, n 3, inner 2]: column i = 1 holds index 3, so that column is NaN
    const idx = b.upload("int32", i32([0, 2, 1, 3])), src = b.upload("float32", f32([1, 2, 3, 4]));
    const [y] = b.run("scatterAdd", [idx, src], { outer: 1, n: 3, k: 2, inner: 2 });
    const got = Array.from(await b.read(y));
    assert.equal([got[0], got[2], got[4]], [1, 3, 0], "column 0 is a correct sum");
    assert.ok([got[1], got[3], got[5]].every(Number.isNaN), `column 1: ${got}`);
    const ok = b.upload("int32", i32([0, 2, 1, 2]));
    const [z] = b.run("scatterAdd", [ok, src], { outer: 1, n: 3, k: 2, inner: 2 });
    assert.equal(Array.from(await b.read(z)), [1, 0, 3, 0, 0, 6], "in-range indices are summed as before");
    const ids = b.upload("int32", i32([1, -1])), g = b.upload("float32", f32([5, 6]));
    const [w] = b.run("indexAdd", [ids, g], { outer: 1, n: 3, m: 2, inner: 1 });
    assert.ok(Array.from(await b.read(w)).every(Number.isNaN));
    for (const u of [idx, src, y, ok, z, ids, g, w]) b.free(u);
  });
  gpu("a failing kernel surfaces at read, in its dependents, and once at flush", async () => {
    const bad: KernelSpec = { key: "test:bad", source: "function (x) { return x[this.thread.x] + undefinedName; }", args: ["Array"] };
    const x = b.upload("float32", f32([1, 2]));
    const y = b.rt.launch(bad, 2, "float32", [x as GpujsBuffer]);
    const [z] = b.run("unary", [y], { op: "exp", n: 2 });
    let msg = "";
    await b.read(y).catch((e: Error) => (msg = e.message));
    assert.match(msg, /gpujs: kernel test:bad failed: Identifier is not defined/);
    msg = "";
    await b.read(z).catch((e: Error) => (msg = e.message));
    assert.match(msg, /gpujs: kernel test:bad failed/);
    msg = "";
    await b.flush().catch((e: Error) => (msg = e.message));
    assert.match(msg, /kernel test:bad failed/);
    await b.flush(); // reported once
    b.free(x);
    b.rt.free(y);
    b.free(z);
  });
}
gpu.run();
