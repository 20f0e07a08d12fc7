// The wasm gemm against a float64 triple loop: every layout (A·B, A·Bᵀ, Aᵀ·B, Aᵀ·Bᵀ), sizes that
// are not multiples of the tile, vector width or cache blocks, M/N/K = 1 and 0, padded leading
// dimensions, batch broadcasting (stride 0), a batch sum into one C, and beta = 0, 1, other.
// Bytes of C outside the written matrix must stay untouched. Every case runs on both
// multiply-add paths of the micro-kernel: f32x4.mul + f32x4.add, and f32x4.relaxed_madd (FMA),
// which may round once or twice; the tolerance (2·K ulps of Σ|a·b|) holds for either.
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { chooseFma, Heap, relaxedSimdAvailable, WasmRuntime, type GemmArgs } from "../../core/backends/wasm/index.ts";

// All runtimes share one heap. Per path: one with the default gemv thresholds (few-row products
// go to the gemv kernels) and one that always packs, so that the packed path's edge tiles are
// checked on tiny M too.
const heap = new Heap({ initialBytes: 1 << 20 });
interface Path { name: string; rt: WasmRuntime; packed: WasmRuntime }
const makePath = (fma: boolean): Path => ({
  name: fma ? "relaxed_madd" : "mul+add",
  rt: new WasmRuntime({ threads: 1, heap, gemm: { fma } }),
  packed: new WasmRuntime({ threads: 1, heap, gemm: { fma, dotsMaxM: 0, axpyMaxM: 0 } }),
});
// Node 20 and later have relaxed SIMD (a V8 flag on 20, shipped from 22): the FMA path is
// required here, so that a broken detection fails the suite instead of silently skipping it.
const paths: Path[] = [makePath(false), makePath(true)];
const rt = paths[0].rt;
const { MR, NR, KC, MC, NC, dotsMaxM, axpyMaxM } = rt.gemmConfig;
const gemvMaxM = Math.max(dotsMaxM, axpyMaxM);

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0; // mulberry32
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Case {
  M: number; N: number; K: number; transA?: boolean; transB?: boolean; batch?: number;
  aBatch?: "own" | "broadcast"; bBatch?: "own" | "broadcast"; cBatch?: "own" | "sum";
  padA?: number; padB?: number; padC?: number; beta?: number; seed?: number;
}

/** Runs one case through `rt`'s gemm (or `via`'s) and checks every stored byte of C against float64. */
function check(cs: Case, rt: WasmRuntime, via?: WasmRuntime) {
  const { M, N, K, transA = false, transB = false, batch = 1, padA = 0, padB = 0, padC = 0, beta = 0, seed = 1 } = cs;
  const r = rng(seed);
  const aRows = transA ? K : M, aCols = transA ? M : K;
  const bRows = transB ? N : K, bCols = transB ? K : N;
  const lda = aCols + padA, ldb = bCols + padB, ldc = N + padC;
  const aBS = cs.aBatch === "broadcast" ? 0 : aRows * lda;
  const bBS = cs.bBatch === "broadcast" ? 0 : bRows * ldb;
  const cBS = cs.cBatch === "sum" ? 0 : M * ldc;
  const nA = Math.max(1, aBS === 0 ? aRows * lda : batch * aBS);
  const nB = Math.max(1, bBS === 0 ? bRows * ldb : batch * bBS);
  const nC = Math.max(1, cBS === 0 ? M * ldc : batch * cBS) + 4; // + a guard after C
  const a = heap.alloc(nA * 4), b = heap.alloc(nB * 4), c = heap.alloc(nC * 4);
  try {
    const A = heap.f32(a, nA), B = heap.f32(b, nB), C = heap.f32(c, nC);
    for (let i = 0; i < nA; i++) A[i] = r() * 2 - 1;
    for (let i = 0; i < nB; i++) B[i] = r() * 2 - 1;
    for (let i = 0; i < nC; i++) C[i] = r() * 2 - 1;
    const C0 = Float64Array.from(C);
    const args: GemmArgs = {
      transA, transB, M, N, K, batch, a, aBatchStride: aBS, lda, b, bBatchStride: bBS, ldb, c, cBatchStride: cBS, ldc, beta,
    };
    const Cg = (() => {
      if (!via) {
        rt.gemm(args);
        if (M > 0 && N > 0 && K > 0 && batch > 0) assert.is(rt.lastGemm.gemv, M <= (transB ? dotsMaxM : axpyMaxM), "path chosen by M");
        return heap.f32(c, nC);
      }
      via.gemm(args);
      return heap.f32(c, nC);
    })();
    // expected value and error scale of every C element; untouched elsewhere
    const want = Float64Array.from(C0);
    const scale = new Float64Array(nC);
    const written = new Uint8Array(nC);
    const cBatches = cBS === 0 ? 1 : batch;
    if (M > 0 && N > 0 && batch > 0) {
      for (let cb = 0; cb < cBatches; cb++) {
        for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
          const o = cb * cBS + i * ldc + j;
          want[o] = beta === 0 ? 0 : beta * C0[o];
          scale[o] = Math.abs(want[o]);
          written[o] = 1;
        }
      }
      for (let bi = 0; bi < batch; bi++) {
        for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
          let s = 0, sa = 0;
          for (let k = 0; k < K; k++) {
            const x = A[bi * aBS + (transA ? k * lda + i : i * lda + k)];
            const y = B[bi * bBS + (transB ? j * ldb + k : k * ldb + j)];
            s += x * y;
            sa += Math.abs(x * y);
          }
          const o = bi * cBS + i * ldc + j;
          want[o] += s;
          scale[o] += sa;
        }
      }
    }
    const terms = K * (cBS === 0 ? batch : 1) + 2;
    for (let o = 0; o < nC; o++) {
      if (!written[o]) {
        if (!Object.is(Cg[o], Math.fround(C0[o]))) assert.unreachable(`C[${o}] outside the result changed: ${C0[o]} → ${Cg[o]} in ${JSON.stringify(cs)}`);
        continue;
      }
      const tol = 2 * terms * 2 ** -24 * scale[o] + 1e-30;
      if (!(Math.abs(Cg[o] - want[o]) <= tol)) {
        assert.unreachable(`C[${o}] = ${Cg[o]}, want ${want[o]} (tol ${tol.toExponential(2)}) in ${JSON.stringify(cs)}, fma ${rt.fma}`);
      }
    }
  } finally {
    heap.free(a);
    heap.free(b);
    heap.free(c);
  }
}

/** On each path: the default runtime, and for few rows also the always-packing one. */
function checkBoth(cs: Case) {
  for (const p of paths) {
    check(cs, p.rt);
    if (cs.M <= gemvMaxM) check(cs, p.rt, p.packed);
  }
}

const layouts: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

test("blocking assumptions of these tests", () => {
  assert.ok(MR > 1 && NR % 4 === 0 && KC < 300 && MC < 140, JSON.stringify(rt.gemmConfig));
});

test("every layout on edge sizes (tile, vector and block boundaries)", () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1], [1, 17, 3], [2, 16, 4], [MR + 1, NR + 1, 5], [3, 5, 7], [MR, NR, 1], [17, 33, 64],
    [37, 45, KC + 44], // K crosses a KC block: the second block accumulates
    [MC + 3, 9, 20], // M crosses an MC block
    [5, 20, 4 * 5 + 3], // k tail of the 4×4 transposing pack
  ];
  let seed = 10;
  for (const [M, N, K] of shapes) for (const [transA, transB] of layouts) checkBoth({ M, N, K, transA, transB, seed: seed++ });
});

test("few rows (gemv kernels): every layout across the 32-column, 8-row and k tails", () => {
  let seed = 500;
  for (const M of [1, 2, 3, 4, 7, 8]) {
    for (const [N, K] of [[31, 3], [32, 1], [33, 9], [70, 257], [7, 4], [8, 5], [17, 12]]) {
      for (const [transA, transB] of layouts) checkBoth({ M, N, K, transA, transB, padA: M & 1, padB: 2, padC: 1, seed: seed++ });
    }
  }
  for (const [transA, transB] of layouts) {
    checkBoth({ M: 2, N: 45, K: 20, transA, transB, beta: 1 });
    checkBoth({ M: 1, N: 40, K: 11, transA, transB, batch: 3, cBatch: "sum", bBatch: "broadcast" });
    checkBoth({ M: 3, N: 19, K: 7, transA, transB, batch: 2, aBatch: "broadcast", beta: -2 });
  }
});

test("N across an NC panel, and padded leading dimensions", () => {
  checkBoth({ M: 3, N: NC + 21, K: 5 });
  checkBoth({ M: 3, N: NC + 21, K: 6, transB: true, padB: 3 });
  for (const [transA, transB] of layouts) checkBoth({ M: 9, N: 19, K: 13, transA, transB, padA: 3, padB: 5, padC: 7 });
});

test("zero-size dimensions: nothing, zeros, or beta·C", () => {
  for (const [transA, transB] of layouts) {
    checkBoth({ M: 0, N: 5, K: 3, transA, transB });
    checkBoth({ M: 4, N: 0, K: 3, transA, transB });
    checkBoth({ M: 4, N: 5, K: 0, transA, transB }); // C = 0
    checkBoth({ M: 4, N: 5, K: 0, transA, transB, beta: 1 }); // C unchanged
    checkBoth({ M: 4, N: 5, K: 0, transA, transB, beta: -0.5, padC: 2 });
    checkBoth({ M: 4, N: 5, K: 3, transA, transB, batch: 0 });
  }
});

test("beta: accumulate (1) and scale (other values)", () => {
  for (const [transA, transB] of layouts) {
    checkBoth({ M: 7, N: 18, K: KC + 5, transA, transB, beta: 1 });
    checkBoth({ M: 7, N: 18, K: 9, transA, transB, beta: 0.25, padC: 1 });
  }
});

test("batches: own matrices, broadcast A or B (stride 0), and a batch sum into one C", () => {
  for (const [transA, transB] of layouts) {
    checkBoth({ M: 5, N: 17, K: 6, batch: 3, transA, transB });
    checkBoth({ M: 5, N: 17, K: 6, batch: 3, transA, transB, aBatch: "broadcast" });
    checkBoth({ M: 5, N: 17, K: 6, batch: 3, transA, transB, bBatch: "broadcast", padC: 2 });
    checkBoth({ M: 5, N: 17, K: 6, batch: 4, transA, transB, cBatch: "sum" });
    checkBoth({ M: 5, N: 17, K: 6, batch: 4, transA, transB, cBatch: "sum", beta: 1, bBatch: "broadcast" });
  }
});

test("property: random shapes, layouts, strides, batches and beta (seeded)", () => {
  const seed = 20240611;
  const dim = fc.integer({ min: 0, max: 23 });
  fc.assert(
    fc.property(
      fc.record({
        M: dim, N: fc.integer({ min: 0, max: 40 }), K: fc.oneof(dim, fc.integer({ min: KC - 3, max: KC + 9 })),
        transA: fc.boolean(), transB: fc.boolean(), batch: fc.integer({ min: 0, max: 3 }),
        aBatch: fc.constantFrom("own", "broadcast"), bBatch: fc.constantFrom("own", "broadcast"), cBatch: fc.constantFrom("own", "sum"),
        padA: fc.integer({ min: 0, max: 3 }), padB: fc.integer({ min: 0, max: 3 }), padC: fc.integer({ min: 0, max: 3 }),
        beta: fc.constantFrom(0, 1, 0.5), seed: fc.integer({ min: 1, max: 1000 }),
      }),
      (cs) => checkBoth(cs as Case),
    ),
    { seed, numRuns: 60 },
  );
});

test("the two paths compile the two kernels: relaxed_madd fuses or rounds twice, mul+add rounds twice", () => {
  // Every C element is 1·(−(1 + 2⁻¹¹)) + (1 + 2⁻¹²)², and (1 + 2⁻¹²)² = 1 + 2⁻¹¹ + 2⁻²⁴ is a tie
  // in float32 that rounds to 1 + 2⁻¹¹: rounded twice the sum is 0, fused it is exactly 2⁻²⁴.
  const [M, N, K] = [4, 32, 2];
  const a = heap.alloc(M * K * 4), b = heap.alloc(K * N * 4), c = heap.alloc(M * N * 4);
  try {
    const A = heap.f32(a, M * K), B = heap.f32(b, K * N);
    for (let i = 0; i < M; i++) A.set([1, 1 + 2 ** -12], i * K);
    B.fill(-(1 + 2 ** -11), 0, N);
    B.fill(1 + 2 ** -12, N, 2 * N);
    const results = paths.map((p) => {
      p.packed.gemm({ M, N, K, a, b, c });
      assert.is(p.packed.lastGemm.gemv, false, "the packed micro-kernel ran");
      return [...new Set(heap.f32(c, M * N))];
    });
    assert.equal(results[0], [0], "mul+add rounds the product, then the sum");
    assert.is(results[1].length, 1, "relaxed_madd gives one answer for every element");
    assert.ok(results[1][0] === 0 || results[1][0] === 2 ** -24, `relaxed_madd gave ${results[1][0]}`);
    console.log(`  (relaxed_madd ${results[1][0] === 0 ? "rounds twice" : "is fused"} on this engine and CPU)`);
  } finally {
    heap.free(a);
    heap.free(b);
    heap.free(c);
  }
});

test("FMA choice: an option wins over HASTEN_WASM_FMA, which wins over availability; asking where missing is an error", () => {
  assert.ok(relaxedSimdAvailable(), "Node 20+ accepts relaxed SIMD (with the flag the runtime sets on Node 20)");
  assert.is(new WasmRuntime({ threads: 1, heap: { initialBytes: 1 << 16 } }).fma, process.env.HASTEN_WASM_FMA !== "0", "the default runtime uses FMA unless HASTEN_WASM_FMA=0");
  const yes = () => true, no = () => false;
  const never = (): boolean => assert.unreachable("availability is not probed when FMA is off") as never;
  assert.is(chooseFma(undefined, undefined, yes), true);
  assert.is(chooseFma(undefined, "auto", no), false);
  assert.is(chooseFma(undefined, "0", never), false);
  assert.is(chooseFma(false, "1", never), false);
  assert.is(chooseFma(true, "0", yes), true);
  assert.is(chooseFma(undefined, "1", yes), true);
  assert.throws(() => chooseFma(undefined, "1", no), /HASTEN_WASM_FMA=1 asks for f32x4.relaxed_madd, but this engine does not validate it/);
  assert.throws(() => chooseFma(true, undefined, no), /the gemm option fma: true asks for/);
  assert.throws(() => chooseFma(undefined, "yes", yes), /HASTEN_WASM_FMA must be 0, 1 or auto, got "yes"/);
});

test("packB: a gemm reading B pre-packed gives the same bits as one packing it (1 and 2 threads, both layouts)", async () => {
  const two = new WasmRuntime({ threads: 2, parallelMinFlops: 0, adaptive: false, heap: { initialBytes: 1 << 20 }, gemm: { dotsMaxM: 0, axpyMaxM: 0 } });
  await two.ready();
  const runtimes = [...paths.map((p) => p.packed), two];
  // N past a panel edge and across NC, K across KC blocks, M across MC, a padded ldb
  const shapes = [[9, 37, 20], [33, 19, KC + 44], [MC + 5, NC + 21, 7], [1, 16, 1], [12, 45, 2 * KC + 1], [20, NC + 21, KC + 5], [40, 700, KC + 3]];
  let seed = 900;
  for (const rtx of runtimes) {
    const heap = rtx.heap;
    for (const [M, N, K] of shapes) {
      for (const transB of [true, false]) {
        for (const padB of [0, 3]) {
          const r = rng(seed++);
          const ldb = (transB ? K : N) + padB, nB = (transB ? N : K) * ldb;
          const a = heap.alloc(M * K * 4), b = heap.alloc(nB * 4), c1 = heap.alloc(M * N * 4), c2 = heap.alloc(M * N * 4);
          heap.f32(a, M * K).forEach((_, i, x) => (x[i] = r() * 2 - 1));
          heap.f32(b, nB).forEach((_, i, x) => (x[i] = r() * 2 - 1));
          const args = { M, N, K, transB, a, b, ldb };
          rtx.gemm({ ...args, c: c1 });
          const packed = rtx.packB({ b, K, N, transB, ldb });
          rtx.gemm({ ...args, c: c2, packedB: packed });
          const x = heap.f32(c1, M * N), y = heap.f32(c2, M * N);
          for (let i = 0; i < M * N; i++) if (!Object.is(x[i], y[i])) assert.unreachable(`C[${i}]: ${x[i]} vs ${y[i]} (pre-packed) for ${JSON.stringify({ M, N, K, transB, padB })}, threads ${rtx.getNumThreads()}`);
          assert.throws(() => rtx.gemm({ ...args, N: N - 1, c: c2, packedB: packed }), /packedB \d+ was not packed from this B/);
          rtx.freePackedB(packed);
          for (const q of [a, b, c1, c2]) heap.free(q);
        }
      }
    }
  }
  assert.throws(() => rt.gemm({ M: 1, N: 1, K: 1, a: 1024, b: 1024, c: 2048, batch: 2, packedB: 4096 }), /packedB is for one matrix, got batch 2/);
  assert.throws(() => rt.freePackedB(4096), /4096 is not a packed B of this runtime/);
  await two.shutdown();
});

test("no block leaks: only the runtimes' own blocks are live", () => {
  const own = paths.reduce((n, p) => n + p.rt.ownBlocks() + p.packed.ownBlocks(), 0);
  assert.is(heap.liveBlocks(), own);
});

test("bad arguments get errors naming what was expected", () => {
  const p = heap.alloc(64 * 4);
  try {
    const base = { M: 2, N: 3, K: 4, a: p, b: p + 64, c: p + 128 };
    assert.throws(() => rt.gemm({ ...base, lda: 3 }), /lda 3 is less than A's stored row length 4/);
    assert.throws(() => rt.gemm({ ...base, transB: true, ldb: 2 }), /ldb 2 is less than B's stored row length 4/);
    assert.throws(() => rt.gemm({ ...base, ldc: 2 }), /ldc 2 is less than N 3/);
    assert.throws(() => rt.gemm({ ...base, a: p + 2 }), /A must be a 4-byte aligned address, got/);
    assert.throws(() => rt.gemm({ ...base, M: -1 }), /M must be an integer/);
    assert.throws(() => rt.gemm({ ...base, K: 1.5 }), /K must be an integer/);
    assert.throws(() => rt.gemm({ ...base, c: p + 4 }), /C \[\d+, \d+\) overlaps A/);
    assert.throws(() => rt.gemm({ ...base, b: heap.byteLength - 8 }), /B spans bytes .* but the memory has/);
    assert.throws(() => rt.gemm({ ...base, batch: 2, cBatchStride: 3 }), /cBatchStride 3 makes C\[b\] overlap/);
    assert.throws(() => rt.gemm({ ...base, beta: NaN }), /beta must be finite/);
  } finally {
    heap.free(p);
  }
});

test.after(async () => {
  for (const p of paths) await Promise.all([p.rt.shutdown(), p.packed.shutdown()]);
});
test.run();
