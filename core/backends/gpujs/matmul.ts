// Batched matmul, one thread per element of C with a loop over K. Transposes are just
// strides: op(A)[m,k] = A[b·aBatchStride + m·sam + k·sak] with (sam, sak) = (K, 1), or (1, M)
// when transposed; likewise for B. Consecutive threads take consecutive n, so the reads of B
// are coalesced and A's element is shared by the threads of a row.
//
// gpu.js cannot express workgroup-shared memory, so there is no tiling: this is the
// "one function per output element" matmul, bounded by cache bandwidth on a real GPU.
import type { KernelParams } from "../../kernels.ts";
import { floorDiv } from "./gpu-math.ts";
import { checkIndexed } from "./layout.ts";
import type { GpujsBuffer, KernelSpec, Runtime } from "./runtime.ts";

type K = { thread: { x: number } };
type Arr = Float32Array;

// The K loop is unrolled by 4 into four partial sums (independent chains of FMAs; 2.5× on
// webasm, where gpu.js's loop guard costs as much as the body), then a tail loop.
const MATMUL: KernelSpec = {
  key: "matmul",
  source: function (this: K, a: Arr, b: Arr, M: number, N: number, Kd: number, abs: number, bbs: number, sam: number, sak: number, sbk: number, sbn: number) {
    const t = this.thread.x;
    const bi = floorDiv(t, M * N);
    const r = t - bi * M * N;
    const m = floorDiv(r, N);
    let ai = bi * abs + m * sam;
    let bj = bi * bbs + (r - m * N) * sbn;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    const K4 = floorDiv(Kd, 4);
    for (let q = 0; q < K4; q++) {
      s0 += a[ai] * b[bj];
      s1 += a[ai + sak] * b[bj + sbk];
      s2 += a[ai + 2 * sak] * b[bj + 2 * sbk];
      s3 += a[ai + 3 * sak] * b[bj + 3 * sbk];
      ai += 4 * sak;
      bj += 4 * sbk;
    }
    // (a loop counter must start from a literal: gpu.js types it f32 otherwise, and WGSL
    // has no ++ on floats)
    for (let q2 = 0; q2 < Kd - 4 * K4; q2++) {
      s0 += a[ai] * b[bj];
      ai += sak;
      bj += sbk;
    }
    return (s0 + s1) + (s2 + s3);
  },
  args: ["Array", "Array", "Integer", "Integer", "Integer", "Integer", "Integer", "Integer", "Integer", "Integer", "Integer"],
  functions: [floorDiv],
};

export function matmul(rt: Runtime, [a, b]: GpujsBuffer[], p: KernelParams["matmul"]): GpujsBuffer[] {
  const { batch, M, K, N } = p;
  const n = batch * M * N;
  checkIndexed("matmul", n, [a, b]);
  const [sam, sak] = p.transA ? [1, M] : [K, 1];
  const [sbk, sbn] = p.transB ? [1, K] : [N, 1];
  return [rt.launch(MATMUL, n, "float32", [a, b, M, N, K, p.aBatchStride, p.bBatchStride, sam, sak, sbk, sbn])];
}
