// Batched matmul in plain TypeScript: transposes are packed away first (O(n²)), then a
// cache-blocked kernel updates 4 rows of C per pass so each loaded B element feeds 4 FMAs.
import type { TypedArray } from "../../dtype.ts";
import type { KernelParams } from "../../kernels.ts";
import type { Alloc } from "./types.ts";

const KC = 256; // k-block: a 4×KC strip of A and a KC×NC panel of B stay in cache
const NC = 1024;

// Copy op(X[b]) into a row-major [rows, cols] buffer.
function packed(x: TypedArray, off: number, rows: number, cols: number, trans: boolean, out: Float32Array): Float32Array {
  if (!trans) return x.subarray(off, off + rows * cols) as Float32Array;
  // x holds [cols, rows]; out[r, c] = x[c, r]
  for (let c = 0; c < cols; c++) {
    const src = off + c * rows;
    for (let r = 0; r < rows; r++) out[r * cols + c] = x[src + r];
  }
  return out;
}

export function matmul(alloc: Alloc, [a, b]: TypedArray[], p: KernelParams["matmul"]): TypedArray[] {
  const { batch, M, K, N } = p;
  const c = alloc("float32", batch * M * N) as Float32Array;
  const ta = p.transA ? new Float32Array(M * K) : new Float32Array(0);
  const tb = p.transB ? new Float32Array(K * N) : new Float32Array(0);
  for (let bi = 0; bi < batch; bi++) {
    const A = packed(a, bi * p.aBatchStride, M, K, p.transA, ta);
    const B = packed(b, bi * p.bBatchStride, K, N, p.transB, tb);
    gemmBlock(A, B, c, bi * M * N, M, K, N);
  }
  return [c];
}

function gemmBlock(A: Float32Array, B: Float32Array, C: Float32Array, co: number, M: number, K: number, N: number): void {
  for (let j0 = 0; j0 < N; j0 += NC) {
    const j1 = Math.min(N, j0 + NC);
    for (let k0 = 0; k0 < K; k0 += KC) {
      const k1 = Math.min(K, k0 + KC);
      let i = 0;
      for (; i + 4 <= M; i += 4) {
        const c0 = co + i * N, c1 = c0 + N, c2 = c1 + N, c3 = c2 + N;
        for (let k = k0; k < k1; k++) {
          const a0 = A[i * K + k], a1 = A[(i + 1) * K + k], a2 = A[(i + 2) * K + k], a3 = A[(i + 3) * K + k];
          const bo = k * N;
          for (let j = j0; j < j1; j++) {
            const bv = B[bo + j];
            C[c0 + j] += a0 * bv;
            C[c1 + j] += a1 * bv;
            C[c2 + j] += a2 * bv;
            C[c3 + j] += a3 * bv;
          }
        }
      }
      for (; i < M; i++) {
        const c0 = co + i * N;
        for (let k = k0; k < k1; k++) {
          const a0 = A[i * K + k];
          const bo = k * N;
          for (let j = j0; j < j1; j++) C[c0 + j] += a0 * B[bo + j];
        }
      }
    }
  }
}
