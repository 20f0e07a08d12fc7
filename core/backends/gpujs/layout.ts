// Host-side shape work done before a launch: merging dimensions that can be walked as one,
// and packing shapes and strides into the small `meta` array that N-d kernels read.
import { MAX_INDEXED, type GpujsBuffer } from "./runtime.ts";

export interface Walk {
  shape: number[];
  strides: number[][]; // one stride list per input
}

// Drop size-1 dims and merge neighbours d, d+1 whenever every input steps through them as
// one run (s[d] = s[d+1]·shape[d+1]). A contiguous add of two [B,T,D] tensors becomes a
// rank-1 walk; broadcasting a [D] bias over [B,T,D] becomes [B·T, D] with strides [0, 1].
export function coalesce(shape: readonly number[], strides: readonly (readonly number[])[]): Walk {
  const dims: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, k) => st[k][last] === s[d] * shape[d])) {
      dims[last] *= shape[d];
      strides.forEach((s, k) => (st[k][last] = s[d]));
    } else {
      dims.push(shape[d]);
      strides.forEach((s, k) => st[k].push(s[d]));
    }
  }
  if (dims.length === 0) return { shape: [1], strides: strides.map(() => [0]) };
  return { shape: dims, strides: st };
}

// [shape..., strides of input 0..., strides of input 1..., ...] as float32 (exact: every
// entry is below 2^24, checked by checkIndexed).
export function packMeta(w: Walk): Float32Array {
  return Float32Array.from([...w.shape, ...w.strides.flat()]);
}

export function isFlat(w: Walk): boolean {
  return w.shape.length === 1 && w.strides.every((s) => s[0] === 1);
}

// Kernels that compute indices in float32 need every buffer they touch below 2^24 elements.
export function checkIndexed(kernel: string, outSize: number, inputs: readonly GpujsBuffer[]): void {
  let big = outSize;
  for (const b of inputs) big = Math.max(big, b.size);
  if (big > MAX_INDEXED) {
    throw new Error(`gpujs ${kernel}: a buffer of ${big} elements exceeds 2^24 = ${MAX_INDEXED}, the largest this backend indexes exactly (indices are float32 in gpu.js kernels)`);
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
