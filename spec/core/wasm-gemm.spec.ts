// The wasm gemm against a float64 triple loop: every layout (A·B, A·Bᵀ, Aᵀ·B, Aᵀ·Bᵀ), sizes that
// are not multiples of the tile, vector width or cache blocks, M/N/K = 1 and 0, padded leading
// dimensions, batch broadcasting (stride 0), a batch sum into one C, and beta = 0, 1, other.
// Bytes of C outside the written matrix must stay untouched.
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { WasmRuntime, type GemmArgs } from "../../core/backends/wasm/index.ts";

// Both runtimes share one heap: the default one (few-row products go to the gemv kernels) and
// one that always packs, so that the packed path's edge tiles are checked on tiny M too.
const rt = new WasmRuntime({ threads: 1, heap: { initialBytes: 1 << 20 } });
const heap = rt.heap;
const packed = new WasmRuntime({ threads: 1, heap, gemm: { dotsMaxM: 0, axpyMaxM: 0 } });
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

/** Runs one case through the wasm gemm and checks every stored byte of C against float64. */
function check(cs: Case, via?: WasmRuntime) {
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
        assert.unreachable(`C[${o}] = ${Cg[o]}, want ${want[o]} (tol ${tol.toExponential(2)}) in ${JSON.stringify(cs)}`);
      }
    }
  } finally {
    heap.free(a);
    heap.free(b);
    heap.free(c);
  }
}

/** The default runtime, and for few rows also the always-packing one. */
function checkBoth(cs: Case) {
  check(cs);
  if (cs.M <= gemvMaxM) check(cs, packed);
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

test("no block leaks: only the two runtimes' own blocks are live", () => {
  assert.is(heap.liveBlocks(), rt.ownBlocks() + packed.ownBlocks());
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
  await rt.shutdown();
  await packed.shutdown();
});
test.run();
