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
  /**
   * B packed beforehand by WasmRuntime.packB (same b, transB, ldb, K and N), or 0: the packed
   * path then reads its panels instead of packing B again. Batch 1 only; the few-row kernels
   * read B itself and ignore it.
   */
  packedB?: number;
}

export type ResolvedGemm = Required<Omit<GemmArgs, "transA" | "transB" | "packedB">> & { transA: boolean; transB: boolean; packedB: number };

function count(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
    throw new Error(`gemm: ${name} must be an integer in [0, 2^31), got ${String(v)}`);
  }
  return v;
}

/**
 * Fills defaults and rejects anything that would read or write outside the memory (only B's
 * extent with bOnly: packing B alone).
 */
export function resolveGemm(g: GemmArgs, memoryBytes: number, bOnly = false): ResolvedGemm {
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
  const packedB = g.packedB ?? 0;
  if (packedB !== 0) {
    if (!Number.isInteger(packedB) || packedB < 0 || packedB % 4 !== 0) throw new Error(`gemm: packedB must be a 4-byte aligned address, got ${packedB}`);
    if (batch !== 1) throw new Error(`gemm: packedB is for one matrix, got batch ${batch}`);
  }
  const r: ResolvedGemm = {
    transA, transB, M, N, K, batch, a: g.a, aBatchStride, lda, b: g.b, bBatchStride, ldb, c: g.c, cBatchStride, ldc, beta, packedB,
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
  const eb = extent("B", g.b, bBatchStride, bRows, ldb, bCols);
  if (bOnly) return r;
  const ea = extent("A", g.a, aBatchStride, aRows, lda, aCols);
  const ec = extent("C", g.c, cBatchStride, M, ldc, N);
  for (const [name, e] of [["A", ea], ["B", eb]] as const) {
    if (e[0] < ec[1] && ec[0] < e[1]) throw new Error(`gemm: C [${ec[0]}, ${ec[1]}) overlaps ${name} [${e[0]}, ${e[1]})`);
  }
  return r;
}

/** How C is cut into tasks that threads claim one at a time (see JOB in gemm-kernels.ts). */
export interface GemmPlan {
  mb: number;
  nb: number;
  tilesM: number;
  tilesN: number;
  tasks: number;
  /** C is one matrix that every batch adds into: a task runs all batches, in order. */
  sumBatch: boolean;
  /** Few rows: the unpacked kernels of gemv-kernels.ts instead of the packed blocks. */
  gemv: boolean;
}



const roundUp = (x: number, unit: number) => Math.ceil(x / unit) * unit;

/** Whether the unpacked few-row kernels (gemv-kernels.ts) take this product. */
export function usesGemv(r: ResolvedGemm, cfg: GemmConfig): boolean {
  // a transposed A with Bᵀ is copied into the packing buffer, which must hold it
  return r.transB ? r.M <= cfg.dotsMaxM && (!r.transA || r.M * r.K <= cfg.MC * cfg.KC) : r.M <= cfg.axpyMaxM;
}

/**
 * One task per batch on one thread. With more threads, cut C into tiles of mb × nb so that
 * there are about 4 tasks per thread: a thread that is descheduled (a shared machine) then
 * delays the call by one small task, not by its whole share. Each halving of nb adds packing
 * of A (∝ 1/nb of the work) and of mb adds packing of B (∝ 1/mb), so the larger one halves.
 * Every C element is computed by one task with the same k order whatever the cut, so results
 * do not depend on the thread count.
 */
export function planGemm(r: ResolvedGemm, threads: number, cfg: GemmConfig): GemmPlan {
  const sumBatch = r.cBatchStride === 0 && r.batch > 1;
  const batches = sumBatch ? 1 : r.batch;
  let mb = Math.max(1, r.M), nb = Math.max(1, r.N);
  const gemv = usesGemv(r, cfg);
  if (gemv && threads > 1) {
    // split columns only, in blocks of 32 (the axpy width), ~4 per thread
    nb = Math.max(32, roundUp(Math.ceil(r.N / (4 * threads)), 32));
  } else if (threads > 1) {
    mb = roundUp(Math.min(r.M, cfg.MC), cfg.MR);
    nb = roundUp(Math.min(r.N, 512), cfg.NR);
    const minM = Math.max(cfg.MR, 16), minN = Math.max(cfg.NR, 32);
    while (batches * Math.ceil(r.M / mb) * Math.ceil(r.N / nb) < 4 * threads) {
      if (nb >= mb && nb >= 2 * minN) nb = roundUp(nb / 2, cfg.NR);
      else if (mb >= 2 * minM) mb = roundUp(mb / 2, cfg.MR);
      else if (nb >= 2 * minN) nb = roundUp(nb / 2, cfg.NR);
      else break;
    }
  }
  const tilesM = Math.ceil(r.M / mb), tilesN = Math.ceil(r.N / nb);
  return { mb, nb, tilesM, tilesN, tasks: batches * tilesM * tilesN, sumBatch, gemv };
}

/** Writes a job record (i32 slots, see JOB) into `view`, a view of the record. */
export function writeJob(view: Int32Array, r: ResolvedGemm, plan: GemmPlan, accumulate: boolean) {
  view[JOB.transA] = r.transA ? 1 : 0;
  view[JOB.transB] = r.transB ? 1 : 0;
  view[JOB.M] = r.M;
  view[JOB.N] = r.N;
  view[JOB.K] = r.K;
  view[JOB.a] = r.a;
  view[JOB.aBatchStride] = r.aBatchStride;
  view[JOB.lda] = r.lda;
  view[JOB.b] = r.b;
  view[JOB.bBatchStride] = r.bBatchStride;
  view[JOB.ldb] = r.ldb;
  view[JOB.c] = r.c;
  view[JOB.cBatchStride] = r.cBatchStride;
  view[JOB.ldc] = r.ldc;
  view[JOB.accumulate] = accumulate ? 1 : 0;
  view[JOB.batch] = r.batch;
  view[JOB.mb] = plan.mb;
  view[JOB.nb] = plan.nb;
  view[JOB.tilesM] = plan.tilesM;
  view[JOB.tilesN] = plan.tilesN;
  view[JOB.tasks] = plan.tasks;
  view[JOB.sumBatch] = plan.sumBatch ? 1 : 0;
  view[JOB.gemv] = plan.gemv ? 1 : 0;
  view[JOB.packedB] = plan.gemv ? 0 : r.packedB;
  Atomics.store(view, JOB.finished, 0);
  Atomics.store(view, JOB.next, 0);
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
        const row = (r.c >>> 2) + bi * r.cBatchStride + i * r.ldc;
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
