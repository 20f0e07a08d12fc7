// The wasm emitter: LEB128 against known encodings, and every opcode in the Simd/Op tables that
// the kernels use, run on real lanes and compared with what JavaScript computes.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Atomic, f32, f64, i32, ModuleBuilder, Op, Simd, sleb, uleb, v128 } from "../../core/backends/wasm/asm.ts";

test("LEB128 encodings (examples from the DWARF/wasm specs)", () => {
  assert.equal(uleb(0), [0]);
  assert.equal(uleb(127), [0x7f]);
  assert.equal(uleb(128), [0x80, 0x01]);
  assert.equal(uleb(624485), [0xe5, 0x8e, 0x26]);
  assert.equal(uleb(0xffffffff), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  assert.equal(sleb(0), [0]);
  assert.equal(sleb(-1), [0x7f]);
  assert.equal(sleb(63), [0x3f]);
  assert.equal(sleb(64), [0xc0, 0x00]);
  assert.equal(sleb(-64), [0x40]);
  assert.equal(sleb(-65), [0xbf, 0x7f]);
  assert.equal(sleb(-123456), [0xc0, 0xbb, 0x78]);
  assert.equal(sleb(0x80000000), sleb(-0x80000000), "u32 above 2^31 encodes as its i32 bits");
  assert.throws(() => uleb(-1), /uleb expects a u32, got -1/);
  assert.throws(() => sleb(2 ** 33), /sleb expects an i32/);
});

/** Instantiates a module whose functions take a byte address into a fresh shared memory. */
function build(def: (m: ModuleBuilder) => void) {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true });
  const m = new ModuleBuilder().importMemory({ module: "env", name: "memory", initialPages: 1, maximumPages: 2, shared: true });
  def(m);
  const bytes = m.bytes();
  assert.ok(WebAssembly.validate(bytes), "module validates");
  const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports as Record<string, (...a: number[]) => number>;
  return { exports, f: new Float32Array(memory.buffer), i: new Int32Array(memory.buffer) };
}

const X = [1.5, -2, 3.25, 0.5];
const Y = [4, 0.25, -1, 2];

test("f32x4 binary and unary ops lane by lane", () => {
  const bin: [keyof typeof Simd, (x: number, y: number) => number][] = [
    ["f32x4_add", (x, y) => x + y], ["f32x4_sub", (x, y) => x - y], ["f32x4_mul", (x, y) => x * y],
    ["f32x4_div", (x, y) => x / y], ["f32x4_min", Math.min], ["f32x4_max", Math.max],
    ["f32x4_pmin", (x, y) => (y < x ? y : x)], ["f32x4_pmax", (x, y) => (x < y ? y : x)],
  ];
  const un: [keyof typeof Simd, (x: number) => number][] = [
    ["f32x4_abs", Math.abs], ["f32x4_neg", (x) => -x], ["f32x4_sqrt", (x) => Math.sqrt(Math.abs(x))], ["f32x4_floor", Math.floor],
  ];
  const { exports, f } = build((m) => {
    // p: [x(4) | y(4) | out(4)]
    for (const [name] of bin) m.func(name, [i32], [], (b) => b.get(0).get(0).v128load(0).get(0).v128load(16).simd(Simd[name]).v128store(32));
    for (const [name] of un) {
      m.func(name, [i32], [], (b) => {
        b.get(0).get(0).v128load(0);
        if (name === "f32x4_sqrt") b.simd(Simd.f32x4_abs);
        b.simd(Simd[name]).v128store(32);
      });
    }
  });
  for (const [name, ref] of bin) {
    f.set([...X, ...Y]);
    exports[name](0);
    assert.equal(Array.from(f.subarray(8, 12)), X.map((x, k) => Math.fround(ref(x, Y[k]))), name);
  }
  for (const [name, ref] of un) {
    f.set(X);
    exports[name](0);
    assert.equal(Array.from(f.subarray(8, 12)), X.map((x) => Math.fround(ref(x))), name);
  }
});

test("loads, splats, shuffles, constants, lanes and conversions", () => {
  const { exports, f, i } = build((m) => {
    m.func("splat_load", [i32], [], (b) => b.get(0).get(0).v128load32splat(4).v128store(32));
    m.func("splat", [i32], [], (b) => b.get(0).get(0).f32load(8).simd(Simd.f32x4_splat).v128store(32));
    m.func("shuffle", [i32], [], (b) => b.get(0).get(0).v128load(0).get(0).v128load(16).shuffle32(3, 4, 1, 6).v128store(32));
    m.func("const", [i32], [], (b) => b.get(0).f32x4c(1, 2, 3, 4).v128store(32));
    m.func("lane", [i32], [f32], (b) => b.get(0).v128load(0).extractLane(2));
    m.func("cvt", [i32], [], (b) => b.get(0).get(0).v128load(0).simd(Simd.i32x4_trunc_sat_f32x4_s).simd(Simd.f32x4_convert_i32x4_s).v128store(32));
    m.func("imath", [i32], [], (b) => {
      b.get(0).i32x4c(3, -4, 5, 6).i32x4c(7, 8, -9, 10).simd(Simd.i32x4_mul).i32x4c(1, 1, 1, 1).simd(Simd.i32x4_add);
      b.i32c(2).simd(Simd.i32x4_shl).v128store(32);
    });
    m.func("select", [i32], [], (b) => {
      // bitselect(x, y, x < y): min through a comparison mask
      b.get(0).get(0).v128load(0).get(0).v128load(16).get(0).v128load(0).get(0).v128load(16).simd(Simd.f32x4_lt);
      b.simd(Simd.v128_bitselect).v128store(32);
    });
  });
  f.set([...X, ...Y]);
  exports.splat_load(0);
  assert.equal(Array.from(f.subarray(8, 12)), [-2, -2, -2, -2]);
  exports.splat(0);
  assert.equal(Array.from(f.subarray(8, 12)), [3.25, 3.25, 3.25, 3.25]);
  exports.shuffle(0);
  assert.equal(Array.from(f.subarray(8, 12)), [X[3], Y[0], X[1], Y[2]]);
  exports.const(0);
  assert.equal(Array.from(f.subarray(8, 12)), [1, 2, 3, 4]);
  assert.is(exports.lane(0), 3.25);
  f.set([1.7, -2.7, 1e10, -0.2]);
  exports.cvt(0);
  assert.equal(Array.from(f.subarray(8, 12)), [1, -2, 2147483648, 0], "trunc_sat saturates, then converts back");
  exports.imath(0);
  assert.equal(Array.from(i.subarray(8, 12)), [(3 * 7 + 1) * 4, (-4 * 8 + 1) * 4, (5 * -9 + 1) * 4, (6 * 10 + 1) * 4]);
  f.set([...X, ...Y]);
  exports.select(0);
  assert.equal(Array.from(f.subarray(8, 12)), X.map((x, k) => Math.min(x, Y[k])));
});

test("structured control flow: for loops, if/else, calls and scalar ops", () => {
  const { exports } = build((m) => {
    const sq = m.func(null, [i32], [i32], (b) => b.get(0).get(0).op(Op.i32_mul));
    // Σ_{i<n, i odd} i² − Σ_{i<n, i even} i
    m.func("sum", [i32], [i32], (b) => {
      const i = b.local(i32), acc = b.local(i32);
      b.for(i, () => b.i32c(0), () => b.get(0), 1, () => {
        b.get(i).i32c(1).op(Op.i32_and).if(
          () => b.get(acc).get(i).call(sq).op(Op.i32_add).set(acc),
          () => b.get(acc).get(i).op(Op.i32_sub).set(acc),
        );
      });
      b.get(acc);
    });
    m.func("f", [f32], [f32], (b) => b.get(0).f32c(0.5).op(Op.f32_mul).op(Op.f32_sqrt));
  });
  let want = 0;
  for (let k = 0; k < 10; k++) want += k & 1 ? k * k : -k;
  assert.is(exports.sum(10), want);
  assert.is(exports.sum(0), 0);
  assert.is(exports.f(8), 2);
});

test("host function imports and atomics on the shared memory", () => {
  const calls: number[] = [];
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const m = new ModuleBuilder();
  const host = m.importFunc("env", "twice", [f64], [f64]);
  m.importMemory({ module: "env", name: "memory", initialPages: 1, maximumPages: 1, shared: true });
  // bump(p) = old value of the i32 at p + 8 (atomically += 5), after calling the host
  m.func("bump", [i32], [i32], (b) => b.f32c(1.5).op(Op.f64_promote_f32).call(host).op(Op.drop).get(0).i32c(5).atomic(Atomic.i32_atomic_rmw_add, 8));
  const ex = new WebAssembly.Instance(new WebAssembly.Module(m.bytes()), { env: { memory, twice: (x: number) => (calls.push(x), 2 * x) } }).exports as Record<string, (p: number) => number>;
  const iv = new Int32Array(memory.buffer);
  iv[3] = 10;
  assert.is(ex.bump(4), 10);
  assert.is(ex.bump(4), 15);
  assert.is(Atomics.load(iv, 3), 20);
  assert.equal(calls, [1.5, 1.5]);
  assert.throws(() => m.importFunc("env", "late", [], []), /import env.late after functions were defined/);
});

test("builder errors: bad branch depth, bad shuffle", () => {
  const m = new ModuleBuilder();
  assert.throws(() => m.func("x", [], [], (b) => b.block(() => b.br(2))), /branch depth 2 outside 1 open blocks/);
  assert.throws(() => m.func("y", [v128], [], (b) => b.get(0).get(0).shuffle([1, 2])), /shuffle needs 16 lanes, got 2/);
});

test.run();
