// Parity of every kernel in core/kernels.ts between the gpujs backend and the cpu backend, on
// seeded random inputs with broadcast strides, sizes that are not multiples of anything,
// size-1 and size-0 dims, and int32 variants. Runs in gpujs mode "webgpu" (skipped, with the
// reason printed, when no adapter answers), "webasm" and "cpu" (gpu.js's JavaScript target).
// Tolerances are per kernel, below.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { BackendBuffer } from "../../core/backend.ts";
import { createCpuBackend } from "../../core/backends/cpu/index.ts";
import { createGpujsBackend, probeAdapter, type GpujsBackend, type GpujsMode } from "../../core/backends/gpujs/index.ts";
import type { DType, TypedArray } from "../../core/dtype.ts";
import { UNARY_OPS, type BinaryOp, type KernelName, type KernelParams, type ScalarOp } from "../../core/kernels.ts";
import { Generator } from "../../core/rng.ts";
import { skipTest } from "../helpers/skip.ts";

interface Input { dtype: DType; data: number[] }
interface Case { name: string; kernel: KernelName; inputs: Input[]; params: KernelParams[KernelName]; atol: number; rtol: number }

// Tolerances: movement, selection, comparisons and casts must be exact. Transcendentals get
// the error WGSL allows (exp/log a few ulp; sin/cos 2^-11 absolute on [−π, π]). Sums of k
// terms accumulate in float32 in a fixed order, as the cpu backend's matmul does, but the
// cpu backend sums reductions in float64: allow k·2^-24 relative plus a small floor.
const EXACT = { atol: 0, rtol: 0 };
const ULP = { atol: 1e-6, rtol: 4e-6 };
const TRIG = { atol: 5e-4, rtol: 0 };
const SUM = { atol: 2e-5, rtol: 2e-5 };

const seed = 20240611;
const g = new Generator(seed);
const floats = (n: number, lo = -2, hi = 2) => Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * g.random()));
const ints = (n: number, lo: number, hi: number) => Array.from({ length: n }, () => g.randint(lo, hi));
const f32 = (data: number[]): Input => ({ dtype: "float32", data });
const i32 = (data: number[]): Input => ({ dtype: "int32", data });
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
function stridesFor(shape: number[], outShape: number[]): number[] {
  // broadcast strides of `shape` (right-aligned) over outShape
  const st: number[] = new Array(outShape.length).fill(0);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    const od = d + outShape.length - shape.length;
    st[od] = shape[d] === 1 ? 0 : acc;
    acc *= shape[d];
  }
  return st;
}

function cases(): Case[] {
  const out: Case[] = [];
  const add = (name: string, kernel: KernelName, inputs: Input[], params: object, tol: { atol: number; rtol: number }) =>
    out.push({ name, kernel, inputs, params: params as Case["params"], ...tol });

  // unary: every op, n = 37; positive inputs where the op needs them
  for (const op of UNARY_OPS) {
    const pos = op === "log" || op === "sqrt" || op === "rsqrt";
    const tol = op === "sin" || op === "cos" ? TRIG : op.startsWith("gelu") ? { atol: 2e-6, rtol: 4e-6 } : ULP;
    add(`unary ${op}`, "unary", [f32(floats(37, pos ? 0.05 : -4, 4))], { op, n: 37 }, tol);
  }
  for (const op of ["neg", "abs", "sign", "relu"] as const) add(`unary ${op} int32`, "unary", [i32(ints(11, -50, 50))], { op, n: 11 }, EXACT);

  // binary: every op over a broadcast, a flat same-shape case, size-1 dims and rank 5
  const BIN: BinaryOp[] = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "lt", "le", "gt", "ge", "eq", "ne"];
  const bshape = [2, 3, 5];
  for (const op of BIN) {
    const a = op === "pow" ? floats(30, 0.1, 2) : ints(30, -3, 3).map((v, i) => (i % 3 === 0 ? v : Math.fround(v + 0.25 * g.random())));
    const b = op === "div" ? floats(3, 0.5, 2) : op === "pow" ? floats(3, -1.5, 2) : ints(3, -3, 3).map((v) => v * 1);
    const cmp = ["lt", "le", "gt", "ge", "eq", "ne", "maximum", "minimum"].includes(op);
    add(`binary ${op} broadcast [2,3,5]⊕[3,1]`, "binary", [f32(a), f32(b)],
      { op, outShape: bshape, aStrides: stridesFor(bshape, bshape), bStrides: stridesFor([3, 1], bshape), dtype: "float32" }, cmp || op !== "pow" && op !== "div" ? EXACT : ULP);
  }
  add("binary pow negative base, integer exponent", "binary", [f32([-2, -1.5, 3, -3]), f32([3, 2, 0, -1])],
    { op: "pow", outShape: [4], aStrides: [1], bStrides: [1], dtype: "float32" }, ULP);
  add("binary add flat", "binary", [f32(floats(41)), f32(floats(41))], { op: "add", outShape: [41], aStrides: [1], bStrides: [1], dtype: "float32" }, EXACT);
  add("binary mul size-1 dims [1,7,1]⊕[1]", "binary", [f32(floats(7)), f32(floats(1))], { op: "mul", outShape: [1, 7, 1], aStrides: [0, 1, 0], bStrides: [0, 0, 0], dtype: "float32" }, EXACT);
  const r5 = [2, 1, 3, 2, 3];
  add("binary sub rank 5 [2,1,3,2,3]⊕[3,1,3]", "binary", [f32(floats(numel(r5))), f32(floats(9))],
    { op: "sub", outShape: r5, aStrides: stridesFor(r5, r5), bStrides: stridesFor([3, 1, 3], r5), dtype: "float32" }, EXACT);
  add("binary add transposed operand", "binary", [f32(floats(12)), f32(floats(12))], { op: "add", outShape: [3, 4], aStrides: [1, 3], bStrides: [4, 1], dtype: "float32" }, EXACT);
  for (const op of ["add", "mul", "div", "maximum", "eq"] as BinaryOp[]) {
    add(`binary ${op} int32`, "binary", [i32(ints(12, -20, 20)), i32(ints(4, 1, 6))], { op, outShape: [3, 4], aStrides: [4, 1], bStrides: [0, 1], dtype: "int32" }, EXACT);
  }

  // scalar: every op, float and int
  const SC: ScalarOp[] = ["add", "mul", "pow", "rsub", "rdiv", "maximum", "minimum", "lt", "le", "gt", "ge", "eq", "ne"];
  for (const op of SC) {
    const x = op === "pow" ? floats(29, 0.1, 3) : op === "rdiv" ? floats(29, 0.5, 3) : ints(29, -3, 3).map((v, i) => (i % 2 ? v : Math.fround(v + 0.5)));
    add(`scalar ${op}`, "scalar", [f32(x)], { op, value: op === "pow" ? 2.5 : -1.5, n: 29, dtype: "float32" }, op === "pow" || op === "rdiv" ? ULP : EXACT);
  }
  for (const op of ["add", "mul", "rsub", "maximum", "ge"] as ScalarOp[]) add(`scalar ${op} int32`, "scalar", [i32(ints(13, -9, 9))], { op, value: -3, n: 13, dtype: "int32" }, EXACT);

  // where: cond [2,1,4], a [1,3,4], b [] → [2,3,4]
  const ws = [2, 3, 4];
  for (const dtype of ["float32", "int32"] as DType[]) {
    const mk = (n: number) => (dtype === "float32" ? f32(floats(n)) : i32(ints(n, -9, 9)));
    add(`where broadcast ${dtype}`, "where", [f32(ints(8, 0, 2)), mk(12), mk(1)],
      { outShape: ws, cStrides: stridesFor([2, 1, 4], ws), aStrides: stridesFor([1, 3, 4], ws), bStrides: stridesFor([], ws), dtype }, EXACT);
  }

  // reduce: several [outer, r, inner] splits, ties (ints) for the arg forms, an empty axis
  for (const [o, r, i] of [[3, 5, 4], [1, 7, 1], [4, 1, 3], [2, 13, 1]]) {
    const x = floats(o * r * i), xt = ints(o * r * i, 0, 3);
    add(`reduce sum [${o},${r},${i}]`, "reduce", [f32(x)], { op: "sum", outer: o, r, inner: i, dtype: "float32" }, SUM);
    for (const op of ["max", "min"] as const) add(`reduce ${op} [${o},${r},${i}]`, "reduce", [f32(x)], { op, outer: o, r, inner: i, dtype: "float32" }, EXACT);
    for (const op of ["argmax", "argmin"] as const) add(`reduce ${op} ties [${o},${r},${i}]`, "reduce", [f32(xt)], { op, outer: o, r, inner: i, dtype: "float32" }, EXACT);
  }
  add("reduce sum int32", "reduce", [i32(ints(24, -100, 100))], { op: "sum", outer: 2, r: 3, inner: 4, dtype: "int32" }, EXACT);
  add("reduce sum over empty axis", "reduce", [f32([])], { op: "sum", outer: 2, r: 0, inner: 3, dtype: "float32" }, EXACT);
  add("reduce max over empty axis", "reduce", [f32([])], { op: "max", outer: 2, r: 0, inner: 3, dtype: "float32" }, EXACT);

  // strided: permute, expand, slice with offset, rank 0, rank 6
  add("strided permute [2,3,4]→[4,2,3]", "strided", [f32(floats(24))], { outShape: [4, 2, 3], strides: [1, 12, 4], offset: 0, dtype: "float32" }, EXACT);
  add("strided expand [3]→[2,3]", "strided", [i32(ints(3, -5, 5))], { outShape: [2, 3], strides: [0, 1], offset: 0, dtype: "int32" }, EXACT);
  add("strided slice rows 1..3 of [4,5]", "strided", [f32(floats(20))], { outShape: [2, 5], strides: [5, 1], offset: 5, dtype: "float32" }, EXACT);
  add("strided slice cols 2..4 of [4,5]", "strided", [f32(floats(20))], { outShape: [4, 2], strides: [5, 1], offset: 2, dtype: "float32" }, EXACT);
  add("strided rank 0", "strided", [f32(floats(3))], { outShape: [], strides: [], offset: 2, dtype: "float32" }, EXACT);
  add("strided rank 6 transpose", "strided", [f32(floats(64))], { outShape: [2, 2, 2, 2, 2, 2], strides: [1, 2, 4, 8, 16, 32], offset: 0, dtype: "float32" }, EXACT);

  // pad: before/after per dim, negative fill value
  add("pad [2,3]→[5,4]", "pad", [f32(floats(6))], { inShape: [2, 3], outShape: [5, 4], before: [1, 0], value: -1.5, dtype: "float32" }, EXACT);
  add("pad [2,1,3]→[2,3,6] int32", "pad", [i32(ints(6, -9, 9))], { inShape: [2, 1, 3], outShape: [2, 3, 6], before: [0, 2, 1], value: 7, dtype: "int32" }, EXACT);

  // concat: two inputs, one empty part, more inputs than one shader binds
  add("concat 2 × [3, w·2]", "concat", [f32(floats(3 * 2 * 2)), f32(floats(3 * 5 * 2))], { outer: 3, sizes: [2, 5], inner: 2, dtype: "float32" }, EXACT);
  add("concat with an empty part", "concat", [i32(ints(4, 0, 9)), i32([]), i32(ints(6, 0, 9))], { outer: 2, sizes: [2, 0, 3], inner: 1, dtype: "int32" }, EXACT);
  add("concat of a row prefix (rowStrides)", "concat", [f32(floats(3 * 4 * 2)), f32(floats(3 * 1 * 2))], { outer: 3, sizes: [2, 1], inner: 2, dtype: "float32", rowStrides: [8, 2] }, EXACT);
  const sizes9 = [1, 2, 3, 1, 2, 3, 1, 2, 1];
  add("concat 9 inputs (grouped)", "concat", sizes9.map((s) => f32(floats(2 * s * 3))), { outer: 2, sizes: sizes9, inner: 3, dtype: "float32" }, EXACT);

  // matmul: all transposes, odd sizes, batch broadcast, K = 1
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
    const [B, M, K, N] = [2, 5, 7, 3];
    add(`matmul ${ta ? "Aᵀ" : "A"}·${tb ? "Bᵀ" : "B"} [2,5,7,3]`, "matmul", [f32(floats(B * M * K)), f32(floats(B * K * N))],
      { batch: B, M, K, N, transA: ta, transB: tb, aBatchStride: M * K, bBatchStride: K * N }, SUM);
  }
  add("matmul batch-broadcast B", "matmul", [f32(floats(3 * 4 * 6)), f32(floats(6 * 5))], { batch: 3, M: 4, K: 6, N: 5, transA: false, transB: false, aBatchStride: 24, bBatchStride: 0 }, SUM);
  add("matmul K=1", "matmul", [f32(floats(4)), f32(floats(3))], { batch: 1, M: 4, K: 1, N: 3, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 }, EXACT);
  add("matmul 33×65×17", "matmul", [f32(floats(33 * 65)), f32(floats(65 * 17))], { batch: 1, M: 33, K: 65, N: 17, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 }, { atol: 1e-4, rtol: 1e-4 });

  // indexing
  add("gather [2,5,4] k=3", "gather", [f32(floats(40)), i32(ints(24, 0, 5))], { outer: 2, n: 5, k: 3, inner: 4, dtype: "float32" }, EXACT);
  add("gather int32 last dim", "gather", [i32(ints(12, -9, 9)), i32(ints(6, 0, 4))], { outer: 3, n: 4, k: 2, inner: 1, dtype: "int32" }, EXACT);
  add("scatterAdd with duplicates", "scatterAdd", [i32(ints(24, 0, 5)), f32(floats(24))], { outer: 2, n: 5, k: 3, inner: 4 }, SUM);
  add("indexSelect [2,6,3] m=4", "indexSelect", [f32(floats(36)), i32([5, 0, 5, 2])], { outer: 2, n: 6, m: 4, inner: 3, dtype: "float32" }, EXACT);
  add("indexAdd with duplicates", "indexAdd", [i32([5, 0, 5, 2, 5]), f32(floats(2 * 5 * 3))], { outer: 2, n: 6, m: 5, inner: 3 }, SUM);

  // nn
  for (const log of [false, true]) {
    for (const [o, n, i] of [[3, 7, 1], [2, 5, 3]]) {
      const x = floats(o * n * i, -4, 4);
      x[1] = -1e9; // a masked-out score
      add(`softmax log=${log} [${o},${n},${i}]`, "softmax", [f32(x)], { outer: o, n, inner: i, log }, SUM);
      const y = cpuRun("softmax", [f32(x)], { outer: o, n, inner: i, log });
      add(`softmaxBackward log=${log} [${o},${n},${i}]`, "softmaxBackward", [f32(y), f32(floats(o * n * i))], { outer: o, n, inner: i, log }, SUM);
    }
  }
  // the index is exact (no near-ties in these values); the value as softmax's
  add("logSoftmaxArgmax [6,9] with banned positions", "logSoftmaxArgmax", [f32(floats(54, -4, 4)), f32([0, -Infinity, 0, 0, 0, -Infinity, 0, 0, 0])], { rows: 6, n: 9 }, SUM);
  const [rows, n] = [5, 7];
  const lnIn = [f32(floats(rows * n, -3, 5)), f32(floats(n)), f32(floats(n))];
  add("layerNorm [5,7]", "layerNorm", lnIn, { rows, n, eps: 1e-5 }, { atol: 1e-5, rtol: 1e-5 });
  const [, mean, rstd] = cpuRunAll("layerNorm", lnIn, { rows, n, eps: 1e-5 });
  add("layerNormBackward [5,7]", "layerNormBackward", [lnIn[0], lnIn[1], mean, rstd, f32(floats(rows * n))], { rows, n }, { atol: 1e-5, rtol: 1e-4 });
  for (const eps of [0, 0.1]) {
    const [R, V] = [6, 9];
    const z = f32(floats(R * V, -3, 3)), t = i32([1, 8, -100, 0, 4, 4]);
    const p = { rows: R, v: V, ignoreIndex: -100, labelSmoothing: eps };
    add(`crossEntropy ε=${eps}`, "crossEntropy", [z, t], p, SUM);
    add(`crossEntropyBackward ε=${eps}`, "crossEntropyBackward", [z, t, f32(floats(R))], p, ULP);
  }
  // Masked (−∞) and huge logits: the row statistics must stay apart (m and log Σ, never one
  // float32 lse), or softmax [1e30, 1e30, 0] comes out [1, 1, 0].
  const edge = [1e30, 1e30, 0, 3e7, 3e7 - 2, 0, -Infinity, 1, -Infinity, -1e30, 5, -Infinity].map(Math.fround);
  for (const log of [false, true]) add(`softmax log=${log} huge and −∞ rows`, "softmax", [f32(edge)], { outer: 4, n: 3, inner: 1, log }, SUM);
  for (const eps of [0, 0.1]) {
    const p = { rows: 4, v: 3, ignoreIndex: -100, labelSmoothing: eps };
    const t = i32([1, 0, 1, 2]);
    add(`crossEntropy ε=${eps} huge and −∞ rows`, "crossEntropy", [f32(edge), t], p, SUM);
    add(`crossEntropyBackward ε=${eps} huge and −∞ rows`, "crossEntropyBackward", [f32(edge), t, f32([0.5, -1, 2, 0.25])], p, ULP);
  }
  add("cast float→int32 truncates", "cast", [f32([-2.7, -0.5, 0, 0.9, 3.99, 1e6 + 0.5])], { n: 6, from: "float32", to: "int32" }, EXACT);
  add("cast int32→float", "cast", [i32(ints(9, -1000, 1000))], { n: 9, from: "int32", to: "float32" }, EXACT);
  add("adamw", "adamw", [f32(floats(33)), f32(floats(33)), f32(floats(33, -0.1, 0.1)), f32(floats(33, 0, 0.1))],
    { n: 33, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, bc1: 0.1, bc2: 0.001 }, ULP);
  return out;
}

const cpu = createCpuBackend();
// The cpu backend's outputs, with the dtype of each.
function cpuRunAll(kernel: KernelName, inputs: Input[], params: object): Input[] {
  const ins = inputs.map((x) => cpu.upload(x.dtype, x.dtype === "int32" ? Int32Array.from(x.data) : Float32Array.from(x.data)));
  const outs = cpu.run(kernel, ins, params as never);
  const res = outs.map((o) => ({ dtype: o.dtype, data: Array.from(cpu.readSync(o)) }));
  [...ins, ...outs].forEach((b) => cpu.free(b));
  return res;
}
const cpuRun = (kernel: KernelName, inputs: Input[], params: object): number[] => cpuRunAll(kernel, inputs, params)[0].data;

function compare(label: string, got: TypedArray, want: number[], atol: number, rtol: number): void {
  assert.is(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    const a = got[i], b = want[i];
    if (Number.isNaN(a) && Number.isNaN(b)) continue;
    if (a === b) continue;
    if (!(Math.abs(a - b) <= atol + rtol * Math.abs(b))) assert.unreachable(`${label}: index ${i}: gpujs ${a}, cpu ${b} (atol ${atol}, rtol ${rtol}; seed ${seed})`);
  }
}

async function parity(b: GpujsBackend, c: Case): Promise<void> {
  const want = cpuRunAll(c.kernel, c.inputs, c.params);
  const ins: BackendBuffer[] = c.inputs.map((x) => b.upload(x.dtype, x.dtype === "int32" ? Int32Array.from(x.data) : Float32Array.from(x.data)));
  const outs = b.run(c.kernel, ins, c.params as never);
  try {
    assert.is(outs.length, want.length);
    for (let k = 0; k < outs.length; k++) {
      const got = await b.read(outs[k]);
      assert.is(outs[k].dtype, want[k].dtype, `${c.name}: output ${k} dtype`);
      assert.is(got instanceof Int32Array ? "int32" : "float32", want[k].dtype, `${c.name}: output ${k} array type`);
      compare(`${c.name} [${b.mode}] output ${k}`, got, want[k].data, c.atol, c.rtol);
    }
  } finally {
    for (const x of [...ins, ...outs]) b.free(x);
  }
}

const allCases = cases();

// Every await happens before the suites are defined: uvu starts running queued suites on the
// next timer tick when a file is run alone.
const adapter = await probeAdapter();

function modeSuite(mode: GpujsMode): void {
  const s = suite(`gpujs kernels, mode ${mode}`);
  let skip: string | null = null;
  if (mode === "webgpu") {
    if (!adapter) skip = "no WebGPU adapter answered (navigator.gpu / the webgpu package found none)";
    else console.log(`  gpujs/webgpu parity runs on adapter: ${adapter.name}${adapter.software ? " (software)" : ""}`);
  }
  if (skip) {
    skipTest(s, `every kernel matches the cpu backend (gpujs/${mode})`, skip);
    s.run();
    return;
  }
  let b: GpujsBackend;
  s.before(async () => {
    b = (await createGpujsBackend({ mode })) as GpujsBackend;
  });
  s.after(() => b.destroy());
  const kernelsCovered = new Set(allCases.map((c) => c.kernel));
  s("the parity cases cover every kernel in core/kernels.ts", () => {
    const all: KernelName[] = ["unary", "binary", "scalar", "where", "reduce", "strided", "pad", "concat", "matmul", "gather",
      "scatterAdd", "indexSelect", "indexAdd", "softmax", "logSoftmaxArgmax", "softmaxBackward", "layerNorm", "layerNormBackward", "crossEntropy",
      "crossEntropyBackward", "cast", "adamw"];
    for (const k of all) assert.ok(kernelsCovered.has(k), `no parity case for kernel ${k}`);
  });
  for (const c of allCases) s(`${c.name}`, () => parity(b, c));
  s("upload/full/read round-trip, and every buffer released", async () => {
    const f = b.full("float32", 5, -2.25), n = b.full("int32", 3, 7), u = b.upload("int32", Int32Array.from([-3, 0, 16777216]));
    assert.equal(Array.from(await b.read(f)), [-2.25, -2.25, -2.25, -2.25, -2.25]);
    assert.equal(Array.from(await b.read(n)), [7, 7, 7]);
    assert.equal(Array.from(await b.read(u)), [-3, 0, 16777216]);
    assert.ok((await b.read(u)) instanceof Int32Array);
    for (const x of [f, n, u]) b.free(x);
    assert.is(b.liveBuffers(), 0);
    await b.flush();
    assert.is(b.deviceBuffers(), 0, "device results left alive after every buffer was freed");
  });
  s("int32 values beyond 2^24 are refused on upload", () => {
    assert.throws(() => b.upload("int32", Int32Array.from([1, 16777217])), /16777217 at index 1 cannot be held exactly/);
  });
  s.run();
}

modeSuite("webgpu");
modeSuite("webasm");
modeSuite("cpu");
