// Batched matrix multiply on heap pointers: C[b] = op(A[b]) · op(B[b]) (+ beta·C[b]), where
// op(X) is X or Xᵀ, read in place through strides (no transposed copies). This file checks the
// arguments, splits the work between threads and fills the job records that the wasm driver
// `gemm_job` (gemm-kernels.ts) reads.

import { JOB, type GemmConfig } from "./gemm-kernels.ts";

export interface GemmArgs {
  /** A is stored K×M (row-major) and used transposed. */
  transA?: boolean;
  /** B is stored N×K and used transposed. */
  transB?: boolean;
  M: number;
  N: number;
  K: number;
  /** Number of matrices; default 1. */
  batch?: number;
  /** Byte address of A[0] in the heap (4-byte aligned). */
  a: number;
  /** Elements between A[b] and A[b+1]; 0 broadcasts one A over the batch. Default: packed. */
  aBatchStride?: number;
  /** Row stride of A as stored, in elements. Default: its column count. */
  lda?: number;
  b: number;
  bBatchStride?: number;
  ldb?: number;
  c: number;
  /** Elements between C[b] and C[b+1]; 0 sums every batch's product into one C. */
  cBatchStride?: number;
  ldc?: number;
  /** 0 overwrites C (default), 1 accumulates into C, other values scale C first. */
  beta?: number;
}

export type ResolvedGemm = Required<Omit<GemmArgs, "transA" | "transB">> & { transA: boolean; transB: boolean };

/** One thread's share: a range of batches and a rectangle of C. */
export interface GemmPart {
  batch0: number;
  batch1: number;
  m0: number;
  m1: number;
  n0: number;
  n1: number;
}

function count(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
    throw new Error(`gemm: ${name} must be an integer in [0, 2^31), got ${String(v)}`);
  }
  return v;
}

/** Fills defaults and rejects anything that would read or write outside the memory. */
export function resolveGemm(g: GemmArgs, memoryBytes: number): ResolvedGemm {
  const transA = !!g.transA;
  const transB = !!g.transB;
  const M = count("M", g.M);
  const N = count("N", g.N);
  const K = count("K", g.K);
  const batch = count("batch", g.batch ?? 1);
  // stored shapes: A is M×K (or K×M when transposed), B is K×N (or N×K), C is M×N
  const aRows = transA ? K : M;
  const aCols = transA ? M : K;
  const bRows = transB ? N : K;
  const bCols = transB ? K : N;
  const lda = count("lda", g.lda ?? aCols);
  const ldb = count("ldb", g.ldb ?? bCols);
  const ldc = count("ldc", g.ldc ?? N);
  if (lda < aCols) throw new Error(`gemm: lda ${lda} is less than A's stored row length ${aCols}`);
  if (ldb < bCols) throw new Error(`gemm: ldb ${ldb} is less than B's stored row length ${bCols}`);
  if (ldc < N) throw new Error(`gemm: ldc ${ldc} is less than N ${N}`);
  const aBatchStride = count("aBatchStride", g.aBatchStride ?? aRows * lda);
  const bBatchStride = count("bBatchStride", g.bBatchStride ?? bRows * ldb);
  const cBatchStride = count("cBatchStride", g.cBatchStride ?? M * ldc);
  const beta = g.beta ?? 0;
  if (!Number.isFinite(beta)) throw new Error(`gemm: beta must be finite, got ${beta}`);
  const r: ResolvedGemm = {
    transA, transB, M, N, K, batch, a: g.a, aBatchStride, lda, b: g.b, bBatchStride, ldb, c: g.c, cBatchStride, ldc, beta,
  };
  if (batch === 0 || M === 0 || N === 0) return r;
  if (batch > 1 && cBatchStride !== 0 && cBatchStride < (M - 1) * ldc + N) {
    throw new Error(`gemm: cBatchStride ${cBatchStride} makes C[b] overlap C[b+1] (need 0 or >= ${(M - 1) * ldc + N})`);
  }
  const extent = (name: string, ptr: number, bs: number, rows: number, ld: number, cols: number) => {
    if (!Number.isInteger(ptr) || ptr < 0 || ptr % 4 !== 0) throw new Error(`gemm: ${name} must be a 4-byte aligned address, got ${ptr}`);
    if (rows === 0 || cols === 0) return [ptr, ptr];
    const end = ptr + 4 * ((batch - 1) * bs + (rows - 1) * ld + cols);
    if (end > memoryBytes) throw new Error(`gemm: ${name} spans bytes [${ptr}, ${end}) but the memory has ${memoryBytes}`);
    return [ptr, end];
  };
  const ea = extent("A", g.a, aBatchStride, aRows, lda, aCols);
  const eb = extent("B", g.b, bBatchStride, bRows, ldb, bCols);
  const ec = extent("C", g.c, cBatchStride, M, ldc, N);
  for (const [name, e] of [["A", ea], ["B", eb]] as const) {
    if (e[0] < ec[1] && ec[0] < e[1]) throw new Error(`gemm: C [${ec[0]}, ${ec[1]}) overlaps ${name} [${e[0]}, ${e[1]})`);
  }
  return r;
}

/** Splits [0, n) into `parts` ranges whose boundaries are multiples of `unit`. */
function splitRange(n: number, parts: number, unit: number): [number, number][] {
  const units = Math.ceil(n / unit);
  const out: [number, number][] = [];
  for (let t = 0; t < parts; t++) {
    const lo = Math.min(n, Math.round((units * t) / parts) * unit);
    const hi = Math.min(n, Math.round((units * (t + 1)) / parts) * unit);
    if (hi > lo) out.push([lo, hi]);
  }
  return out;
}

/**
 * Divides the work among up to `threads` threads. Whole batches when there are enough of them
 * (and C is not a batch sum, whose batches must run in order on one thread), else rows or
 * columns of C in micro-tile units, along whichever dimension has more tiles. Every C element
 * is computed by exactly one thread, with the same k order whatever the split, so results do
 * not depend on the thread count.
 */
export function partitionGemm(r: ResolvedGemm, threads: number, cfg: GemmConfig): GemmPart[] {
  const all: GemmPart = { batch0: 0, batch1: r.batch, m0: 0, m1: r.M, n0: 0, n1: r.N };
  if (threads <= 1) return [all];
  if (r.cBatchStride !== 0 && r.batch >= threads && (r.batch % threads === 0 || r.batch >= 4 * threads)) {
    return splitRange(r.batch, threads, 1).map(([b0, b1]) => ({ ...all, batch0: b0, batch1: b1 }));
  }
  const tilesM = Math.ceil(r.M / cfg.MR);
  const tilesN = Math.ceil(r.N / cfg.NR);
  if (tilesM >= tilesN) return splitRange(r.M, threads, cfg.MR).map(([m0, m1]) => ({ ...all, m0, m1 }));
  return splitRange(r.N, threads, cfg.NR).map(([n0, n1]) => ({ ...all, n0, n1 }));
}

export interface ThreadScratch {
  job: number;
  packA: number;
  packB: number;
  tile: number;
}

/** Writes one job record (i32 slots, see JOB) into `view`, a view of the record at s.job. */
export function writeJob(view: Int32Array, r: ResolvedGemm, part: GemmPart, s: ThreadScratch, accumulate: boolean) {
  const o = 0;
  view[o + JOB.transA] = r.transA ? 1 : 0;
  view[o + JOB.transB] = r.transB ? 1 : 0;
  view[o + JOB.M] = r.M;
  view[o + JOB.N] = r.N;
  view[o + JOB.K] = r.K;
  view[o + JOB.a] = r.a;
  view[o + JOB.aBatchStride] = r.aBatchStride;
  view[o + JOB.lda] = r.lda;
  view[o + JOB.b] = r.b;
  view[o + JOB.bBatchStride] = r.bBatchStride;
  view[o + JOB.ldb] = r.ldb;
  view[o + JOB.c] = r.c;
  view[o + JOB.cBatchStride] = r.cBatchStride;
  view[o + JOB.ldc] = r.ldc;
  view[o + JOB.accumulate] = accumulate ? 1 : 0;
  view[o + JOB.batch0] = part.batch0;
  view[o + JOB.batch1] = part.batch1;
  view[o + JOB.m0] = part.m0;
  view[o + JOB.m1] = part.m1;
  view[o + JOB.n0] = part.n0;
  view[o + JOB.n1] = part.n1;
  view[o + JOB.packA] = s.packA;
  view[o + JOB.packB] = s.packB;
  view[o + JOB.tile] = s.tile;
}

/**
 * The parts of C = beta·C that happen outside the kernels: K = 0 (no products at all) and a
 * beta other than 0 or 1 (scale first, then accumulate). Returns whether the kernels should
 * accumulate into C.
 */
export function prepareC(r: ResolvedGemm, f32view: Float32Array): boolean {
  const scale = (beta: number) => {
    const batches = r.cBatchStride === 0 ? 1 : r.batch;
    for (let bi = 0; bi < batches; bi++) {
      for (let i = 0; i < r.M; i++) {
        const row = (r.c >> 2) + bi * r.cBatchStride + i * r.ldc;
        if (beta === 0) f32view.fill(0, row, row + r.N);
        else for (let j = row; j < row + r.N; j++) f32view[j] *= beta;
      }
    }
  };
  if (r.K === 0) {
    if (r.beta !== 1) scale(r.beta);
    return true;
  }
  if (r.beta === 0) return false;
  if (r.beta !== 1) scale(r.beta);
  return true;
}
