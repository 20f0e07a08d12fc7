// Batched matmul in plain TypeScript. Both operands are packed into 4-wide panels laid out
// k-major (which absorbs any transpose for free), then a 4×4 micro-kernel keeps 16 partial
// sums of C in locals across a whole k-block: 16 multiply-adds per 8 loads.
import type { TypedArray } from "../../dtype.ts";
import type { KernelParams } from "../../kernels.ts";
import type { Alloc } from "./types.ts";

const KC = 256; // k-block: a 4×KC A panel and the KC×N B panels stay cache-resident
const R = 4;

// Pack op(X)[rows r0.., all k in [k0,k1)] into panels of R rows: out[(p*kc + k)*R + r].
// `rowStride`/`kStride` locate element (row, k) in X, so a transpose is just swapped strides.
function packPanels(x: TypedArray, off: number, rows: number, k0: number, k1: number, rowStride: number, kStride: number, out: Float32Array): void {
  const kc = k1 - k0;
  const panels = Math.ceil(rows / R);
  for (let p = 0; p < panels; p++) {
    for (let r = 0; r < R; r++) {
      const row = p * R + r;
      const dst = p * kc * R + r;
      if (row >= rows) {
        for (let k = 0; k < kc; k++) out[dst + k * R] = 0;
        continue;
      }
      const src = off + row * rowStride + k0 * kStride;
      for (let k = 0; k < kc; k++) out[dst + k * R] = x[src + k * kStride];
    }
  }
}

export function matmul(alloc: Alloc, [a, b]: TypedArray[], p: KernelParams["matmul"]): TypedArray[] {
  const { batch, M, K, N } = p;
  const c = alloc("float32", batch * M * N) as Float32Array;
  if (M === 0 || N === 0 || K === 0) return [c];
  // Strides of element (row i, k) of op(A) and (col j, k) of op(B).
  const aRow = p.transA ? 1 : K, aK = p.transA ? M : 1;
  const bCol = p.transB ? K : 1, bK = p.transB ? 1 : N;
  if (M <= 2 && !p.transA) {
    for (let bi = 0; bi < batch; bi++) skinny(a, bi * p.aBatchStride, b, bi * p.bBatchStride, c, bi * M * N, M, K, N, p.transB);
    return [c];
  }
  const kcMax = Math.min(K, KC);
  const ap = new Float32Array(Math.ceil(M / R) * R * kcMax);
  const bp = new Float32Array(Math.ceil(N / R) * R * kcMax);
  for (let bi = 0; bi < batch; bi++) {
    const co = bi * M * N;
    for (let k0 = 0; k0 < K; k0 += KC) {
      const k1 = Math.min(K, k0 + KC), kc = k1 - k0;
      packPanels(a, bi * p.aBatchStride, M, k0, k1, aRow, aK, ap);
      packPanels(b, bi * p.bBatchStride, N, k0, k1, bCol, bK, bp);
      for (let ip = 0; ip * R < M; ip++) {
        const aBase = ip * kc * R;
        for (let jp = 0; jp * R < N; jp++) micro(ap, aBase, bp, jp * kc * R, kc, c, co, ip * R, jp * R, M, N);
      }
    }
  }
  return [c];
}

function micro(ap: Float32Array, ao: number, bp: Float32Array, bo: number, kc: number, c: Float32Array, co: number, i0: number, j0: number, M: number, N: number): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  for (let k = 0; k < kc; k++) {
    const ak = ao + k * 4, bk = bo + k * 4;
    const a0 = ap[ak], a1 = ap[ak + 1], a2 = ap[ak + 2], a3 = ap[ak + 3];
    const b0 = bp[bk], b1 = bp[bk + 1], b2 = bp[bk + 2], b3 = bp[bk + 3];
    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
  }
  const acc = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
  const rows = Math.min(R, M - i0), cols = Math.min(R, N - j0);
  for (let r = 0; r < rows; r++) {
    const o = co + (i0 + r) * N + j0;
    for (let q = 0; q < cols; q++) c[o + q] += acc[r * 4 + q];
  }
}

// One or two rows of A (decoding at batch 1): packing B would cost as much as the product, so
// stream B once. A·B accumulates rows of B; A·Bᵀ is a dot product per output.
function skinny(a: TypedArray, ao: number, b: TypedArray, bo: number, c: Float32Array, co: number, M: number, K: number, N: number, transB: boolean): void {
  for (let i = 0; i < M; i++) {
    const ai = ao + i * K, ci = co + i * N;
    if (transB) {
      for (let j = 0; j < N; j++) {
        const bj = bo + j * K;
        let s0 = 0, s1 = 0, k = 0;
        for (; k + 1 < K; k += 2) { s0 += a[ai + k] * b[bj + k]; s1 += a[ai + k + 1] * b[bj + k + 1]; }
        if (k < K) s0 += a[ai + k] * b[bj + k];
        c[ci + j] = s0 + s1;
      }
    } else {
      for (let k = 0; k < K; k++) {
        const av = a[ai + k], bk = bo + k * N;
        for (let j = 0; j < N; j++) c[ci + j] += av * b[bk + j];
      }
    }
  }
}
