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

const MATMUL: KernelSpec = {
  key: "matmul",
  source: function (this: K, a: Arr, b: Arr, M: number, N: number, Kd: number, abs: number, bbs: number, sam: number, sak: number, sbk: number, sbn: number) {
    const t = this.thread.x;
    const bi = floorDiv(t, M * N);
    const r = t - bi * M * N;
    const m = floorDiv(r, N);
    const n = r - m * N;
    const ao = bi * abs + m * sam;
    const bo = bi * bbs + n * sbn;
    let s = 0;
    for (let k = 0; k < Kd; k++) {
      s += a[ao + k * sak] * b[bo + k * sbk];
    }
    return s;
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
