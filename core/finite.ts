// Finiteness checks: a loader that trusts weights only after they pass (a flipped exponent bit
// turns a weight into ±∞ or NaN, and one NaN poisons every output downstream).
import { Tensor } from "./tensor.ts";

/** The index of the first NaN or ±∞ in `values`, or -1 when every value is finite. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) {
    // x − x is 0 for every finite x and NaN for NaN and ±∞: one subtraction, no call per element
    if (values[i] - values[i] !== 0) return i;
  }
  return -1;
}

/**
 * Whether every value of a tensor (on a synchronous backend: cpu, wasm, gpujs webasm/cpu) or of a
 * plain array is finite. int32 tensors always are. For a tensor on webgpu use allFinite().
 */
export function allFiniteSync(x: Tensor | ArrayLike<number>): boolean {
  if (x instanceof Tensor) {
    if (x.dtype === "int32") return true;
    if (!x.backend.sync) throw new Error(`allFiniteSync: backend "${x.backend.name}" reads asynchronously; use await allFinite(t)`);
    return firstNonFinite(x.dataSync()) < 0;
  }
  return firstNonFinite(x) < 0;
}

/** Whether every value of a tensor (on any backend) or of a plain array is finite. */
export async function allFinite(x: Tensor | ArrayLike<number>): Promise<boolean> {
  if (x instanceof Tensor) return x.dtype === "int32" || firstNonFinite(await x.data()) < 0;
  return firstNonFinite(x) < 0;
}
