// The wasm unary kernels (core/backends/wasm/kernels-unary.ts) against float64 references:
// the error of every op on a dense grid and on random bit patterns (printed, and held to the
// bounds below), the special values (±0, ±inf, NaN, denormals, ±FLT_MAX) against the cpu
// kernels, the same bits on 1 and 2 threads and at every position, and the wiring into the
// wasm backend (forward and autodiff).
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as C from "../../core/index.ts";
import { cpuKernels } from "../../core/backends/cpu/kernels.ts";
import { WasmRuntime } from "../../core/backends/wasm/index.ts";
import { UNARY_KERNELS, type UnaryKernel } from "../../core/backends/wasm/ops.ts";
import { erf, sigmoid } from "../../core/math.ts";

const rt = new WasmRuntime({ threads: 1, heap: { initialBytes: 1 << 24 } });
const { heap, ops } = rt;

/** Runs op on a copy of xs inside the heap of `r`; returns a copy of the output. */
function run(op: UnaryKernel, xs: Float32Array, r: WasmRuntime = rt, inPlace = false): Float32Array {
  const n = xs.length;
  const px = r.heap.alloc(Math.max(4, 4 * n)), py = inPlace ? px : r.heap.alloc(Math.max(4, 4 * n));
  try {
    r.heap.f32(px, n).set(xs);
    r.ops.unary(op, px, py, n);
    return Float32Array.from(r.heap.f32(py, n));
  } finally {
    r.heap.free(px);
    if (!inPlace) r.heap.free(py);
  }
}

// ---- float64 references ----
// erfc without cancellation in either tail: 1 − erf (core/math.ts, ~1e-15) below 3, the
// continued fraction e^{−z²}/√π · 1/(z + ½/(z + 1/(z + 3/2/(z + …)))) above, 2 − erfc(−z) below 0.
function erfc(z: number): number {
  if (z < 0) return 2 - erfc(-z);
  if (z < 3) return 1 - erf(z);
  let f = z;
  for (let k = 80; k >= 1; k--) f = z + k / 2 / f;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}
const Phi = (x: number) => 0.5 * erfc(-x / Math.SQRT2);
const GC = Math.sqrt(2 / Math.PI), GK = 0.044715;
// ½x(1 + tanh(v/2)) = x·σ(v), v = 2·√(2/π)(x + 0.044715x³): the σ form keeps the left tail
const gateV = (x: number) => 2 * GC * (x + GK * x * x * x);
const REF: Record<UnaryKernel, (x: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  log: Math.log,
  tanh: Math.tanh,
  sigmoid,
  relu: (x) => (x > 0 ? x : Number.isNaN(x) ? NaN : 0),
  step: (x) => (x > 0 ? 1 : 0),
  gelu: (x) => x * Phi(x),
  geluGrad: (x) => Phi(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI),
  geluTanh: (x) => x * sigmoid(gateV(x)),
  geluTanhGrad: (x) => {
    const v = gateV(x);
    return sigmoid(v) + x * sigmoid(v) * sigmoid(-v) * 2 * GC * (1 + 3 * GK * x * x);
  },
};

/** The spacing of float32 numbers at |v| (2⁻¹⁴⁹ in the denormals). */
function ulp(v: number): number {
  const a = Math.abs(Math.fround(v));
  if (a < 2 ** -126) return 2 ** -149;
  const e = Math.floor(Math.log2(a));
  return 2 ** (e - 23 + (2 ** e > a ? -1 : 0));
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
const grid = (lo: number, hi: number, n: number) => Float32Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
/** Random bit patterns: every exponent equally likely, both signs, NaNs dropped. */
function randomBits(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(new Uint32Array(n).map(() => r()).buffer);
  return out.filter((v) => !Number.isNaN(v));
}

test("the float64 reference of Φ agrees with core/math.ts's erf where that one is accurate", () => {
  let worst = 0;
  for (const x of grid(-4, 4, 4001)) worst = Math.max(worst, Math.abs(Phi(x) - 0.5 * (1 + erf(x / Math.SQRT2))));
  assert.ok(worst < 1e-15, `|Φ − ½(1 + erf)| = ${worst}`);
});

interface Err { abs: number; rel: number; ulps: number; atUlps: number }
/** Max abs, relative (where |ref| ≥ 1e-30) and ulp error of op over xs (finite references only). */
function measure(op: UnaryKernel, xs: Float32Array): Err {
  const y = run(op, xs);
  const e: Err = { abs: 0, rel: 0, ulps: 0, atUlps: 0 };
  for (let i = 0; i < xs.length; i++) {
    const want = REF[op](xs[i]);
    if (!Number.isFinite(want)) continue;
    const d = Math.abs(y[i] - want);
    e.abs = Math.max(e.abs, d);
    if (Math.abs(want) >= 1e-30) e.rel = Math.max(e.rel, d / Math.abs(want));
    if (d / ulp(want) > e.ulps) [e.ulps, e.atUlps] = [d / ulp(want), xs[i]];
  }
  return e;
}
const fmt = (e: Err) => `abs ${e.abs.toExponential(2)}  rel ${e.rel.toExponential(2)}  ulp ${e.ulps.toFixed(2)} (at x = ${e.atUlps})`;

// Elementary functions: bounds in units in the last place over the whole float32 range.
const ULP_BOUNDS: [UnaryKernel, number][] = [
  ["neg", 0], ["abs", 0], ["sign", 0], ["relu", 0], ["step", 0],
  ["sqrt", 0.5], ["rsqrt", 1.5], ["log", 1], ["tanh", 1.5], ["sigmoid", 2.5],
];

test("elementary ops: error in ulps on a grid and on random bit patterns of all magnitudes", () => {
  const xs = new Float32Array([...grid(-20, 20, 100_001), ...grid(0.5, 2, 50_001), ...randomBits(1 << 18, 7)]);
  for (const [op, bound] of ULP_BOUNDS) {
    const e = measure(op, xs);
    console.log(`    ${op.padEnd(8)} ${fmt(e)}`);
    assert.ok(e.ulps <= bound, `${op}: ${e.ulps} ulps at x = ${e.atUlps}, bound ${bound}`);
  }
});

// The GELU family: relative error where the output is well conditioned, absolute error
// everywhere (the gradients cross zero near x = −0.75, where only the latter means anything),
// and the op suite's tolerance (spec/core/ops.spec.ts: atol 1e-5, rtol 1e-4) on all points.
// In the left tail the functions themselves amplify input rounding: d log y / d log x ≈ x² for
// gelu, so ½ ulp of x at x = −11 moves the exact result by 4e-6 relative; the bounds on [−20,
// 20] reflect that.
const GELU_BOUNDS: { op: UnaryKernel; relNear: number; relFar: number; abs: number }[] = [
  { op: "gelu", relNear: 2e-6, relFar: 1e-5, abs: 5e-7 },
  { op: "geluTanh", relNear: 3e-6, relFar: 2e-5, abs: 6e-7 },
  { op: "geluGrad", relNear: Infinity, relFar: Infinity, abs: 3e-7 },
  { op: "geluTanhGrad", relNear: Infinity, relFar: Infinity, abs: 3e-7 },
];

test("gelu family: relative error on |x| ≤ 5 and on [−20, 20], absolute error, the op suite's tolerance", () => {
  const near = grid(-5, 5, 200_001), far = new Float32Array([...grid(-20, 20, 200_001), ...randomBits(1 << 16, 11)]);
  for (const { op, relNear, relFar, abs } of GELU_BOUNDS) {
    const en = measure(op, near), ef = measure(op, far);
    console.log(`    ${op.padEnd(12)} |x| ≤ 5: ${fmt(en)}\n    ${"".padEnd(12)} all:    ${fmt(ef)}`);
    assert.ok(en.rel <= relNear, `${op}: relative error ${en.rel} on |x| ≤ 5, bound ${relNear}`);
    assert.ok(ef.rel <= relFar, `${op}: relative error ${ef.rel} overall, bound ${relFar}`);
    assert.ok(Math.max(en.abs, ef.abs) <= abs, `${op}: absolute error ${Math.max(en.abs, ef.abs)}, bound ${abs}`);
    const y = run(op, far);
    far.forEach((x, i) => {
      const want = REF[op](x);
      if (Number.isFinite(want) && !(Math.abs(y[i] - want) <= 1e-5 + 1e-4 * Math.abs(want))) assert.unreachable(`${op}(${x}) = ${y[i]}, want ${want}`);
    });
  }
});

const FLT_MAX = 3.4028234663852886e38, FLT_MIN = 2 ** -126;
const SPECIAL = Float32Array.from([0, -0, Infinity, -Infinity, NaN, FLT_MIN, -FLT_MIN, 2 ** -149, -(2 ** -149), 1e-40, -1e-40, FLT_MAX, -FLT_MAX, 1e20, -1e20, 100, -100, 30, -30, 1, -1]);

test("special values match the cpu kernels (NaN where they give NaN, infinities exactly)", () => {
  const alloc = (_: string, n: number) => new Float32Array(n);
  for (const op of UNARY_KERNELS) {
    const got = run(op, SPECIAL);
    const [want] = cpuKernels.unary(alloc as never, [SPECIAL], { op, n: SPECIAL.length });
    SPECIAL.forEach((x, i) => {
      const a = got[i], b = want[i];
      const where = `${op}(${x}) = ${a}, cpu ${b}`;
      if (Number.isNaN(b) || Number.isNaN(a)) return assert.ok(Number.isNaN(a) && Number.isNaN(b), where);
      if (!Number.isFinite(b)) return assert.is(a, b, where);
      // the cpu's erfFast cancels in 1 + erf for x ≪ 0 (float64 0 where the kernel keeps e^{−x²/2}),
      // so compare the tiny values absolutely
      assert.ok(Math.abs(a - b) <= 1e-20 + 4e-7 * Math.abs(b), where);
    });
  }
  // exact signs where they are defined
  assert.ok(Object.is(run("neg", Float32Array.of(0))[0], -0));
  assert.ok(Object.is(run("abs", Float32Array.of(-0))[0], 0));
  assert.ok(Object.is(run("tanh", Float32Array.of(-0))[0], -0));
  assert.ok(Object.is(run("gelu", Float32Array.of(-0))[0], -0));
  assert.ok(Object.is(run("sqrt", Float32Array.of(-0))[0], -0));
  assert.is(run("log", Float32Array.of(-0))[0], -Infinity);
  assert.is(run("rsqrt", Float32Array.of(0))[0], Infinity);
});

test("the same bits on 1 and 2 threads, in place, and at every position (vector body and tail)", async () => {
  const rt2 = new WasmRuntime({ threads: 2, parallelMinElements: 0, adaptive: false, heap: { initialBytes: 1 << 22 } });
  await rt2.ready();
  try {
    const r = rng(3);
    const n = 5 * 4096 + 3;
    const x = Float32Array.from({ length: n }, () => ((r() / 2 ** 32) * 2 - 1) * 8);
    for (const op of UNARY_KERNELS) {
      const xs = op === "log" || op === "sqrt" || op === "rsqrt" ? x.map(Math.abs) : x;
      const one = run(op, xs), two = run(op, xs, rt2), inPlace = run(op, xs, rt, true);
      for (let i = 0; i < n; i++) {
        if (!Object.is(one[i], two[i])) assert.unreachable(`${op}[${i}]: ${one[i]} on 1 thread, ${two[i]} on 2`);
        if (!Object.is(one[i], inPlace[i])) assert.unreachable(`${op}[${i}]: ${one[i]}, in place ${inPlace[i]}`);
      }
      // lengths 1..9 and an odd offset put each value through the one-lane tail path too
      for (let len = 1; len <= 9; len++) {
        const part = run(op, xs.subarray(len, 2 * len));
        for (let i = 0; i < len; i++) if (!Object.is(part[i], one[len + i])) assert.unreachable(`${op}: element ${len + i} gives ${part[i]} in a run of ${len}, ${one[len + i]} in the full array`);
      }
    }
  } finally {
    await rt2.shutdown();
  }
});

test("the wasm backend runs them: forward and autodiff give the kernels' bits; int32 stays exact", async () => {
  const wasm = await C.setBackend("wasm");
  try {
    const r = rng(9);
    const vals = Array.from({ length: 1000 }, () => Math.fround(((r() / 2 ** 32) * 2 - 1) * 6));
    const xs = Float32Array.from(vals);
    const t = () => C.tensor(vals, { shape: [10, 100], backend: wasm, requiresGrad: true });
    const same = (got: ArrayLike<number>, want: Float32Array, what: string) => {
      for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) assert.unreachable(`${what}[${i}]: ${got[i]} vs kernel ${want[i]}`);
    };
    same(t().gelu().dataSync(), run("gelu", xs), "gelu");
    same(t().gelu("tanh").dataSync(), run("geluTanh", xs), "gelu tanh");
    same(t().tanh().dataSync(), run("tanh", xs), "tanh");
    same(t().sigmoid().dataSync(), run("sigmoid", xs), "sigmoid");
    same(t().relu().dataSync(), run("relu", xs), "relu");
    same(t().abs().log().dataSync(), run("log", run("abs", xs)), "log");
    for (const [fn, k] of [[(x: C.Tensor) => x.gelu(), "geluGrad"], [(x: C.Tensor) => x.gelu("tanh"), "geluTanhGrad"], [(x: C.Tensor) => x.relu(), "step"]] as const) {
      const x = t();
      fn(x).sum().backward();
      same(x.grad!.dataSync(), run(k, xs), `d/dx via ${k}`);
    }
    const ints = C.tensor([-3, 0, 7, -2147483647], { dtype: "int32", backend: wasm });
    const a = ints.abs().dataSync(), ng = ints.neg().dataSync();
    assert.ok(a instanceof Int32Array && ng instanceof Int32Array, "int32 in, int32 out");
    assert.equal(Array.from(a), [3, 0, 7, 2147483647]);
    assert.equal(Array.from(ng), [3, 0, -7, 2147483647]);
  } finally {
    await C.setBackend("cpu");
  }
});

test("bad arguments get errors naming what was expected", () => {
  const p = heap.alloc(64);
  try {
    assert.throws(() => ops.unary("sin" as UnaryKernel, p, p, 4), /wasm unary: op must be one of neg, abs, .*, got sin/);
    assert.throws(() => ops.unary("gelu", p + 2, p, 4), /wasm gelu: x must be a 4-byte aligned heap address, got/);
    assert.throws(() => ops.unary("tanh", p, p, 1 << 30), /wasm tanh: x spans bytes .* but the memory has/);
    assert.throws(() => ops.unary("relu", p, p, -1), /wasm relu: n must be an integer in \[0, 2\^31\), got -1/);
  } finally {
    heap.free(p);
  }
  assert.is(heap.liveBlocks(), rt.ownBlocks(), "no heap block left behind");
});

test.after(() => rt.shutdown());
test.run();
