// Reductions over the middle axis of [outer, r, inner].
import type { TypedArray } from "../../dtype.ts";
import type { KernelParams } from "../../kernels.ts";
import type { Alloc } from "./types.ts";

export function reduce(alloc: Alloc, [x]: TypedArray[], p: KernelParams["reduce"]): TypedArray[] {
  const { outer, r, inner, op } = p;
  const arg = op === "argmax" || op === "argmin";
  const y = alloc(arg ? "int32" : p.dtype, outer * inner);
  if (op === "sum" && inner === 1) {
    // Contiguous rows: the common case (sum over the last dim).
    for (let o = 0; o < outer; o++) {
      let s = 0;
      const base = o * r;
      for (let j = 0; j < r; j++) s += x[base + j];
      y[o] = s;
    }
    return [y];
  }
  if (op === "sum") {
    // Accumulate whole rows of `inner` contiguous values: reads x in order (the column-wise walk
    // below would stride through memory for bias gradients over [B·T, D]).
    for (let o = 0; o < outer; o++) {
      const yo = o * inner;
      for (let j = 0; j < r; j++) {
        const xo = (o * r + j) * inner;
        for (let i = 0; i < inner; i++) y[yo + i] += x[xo + i];
      }
    }
    return [y];
  }
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * r * inner + i;
      {
        // max/min propagate NaN like PyTorch; argmax returns the first extreme index.
        const wantMax = op === "max" || op === "argmax";
        let best = r > 0 ? x[base] : wantMax ? -Infinity : Infinity;
        let bestJ = 0;
        for (let j = 1; j < r; j++) {
          const v = x[base + j * inner];
          if (Number.isNaN(best)) break;
          if (Number.isNaN(v) || (wantMax ? v > best : v < best)) { best = v; bestJ = j; }
        }
        y[o * inner + i] = arg ? bestJ : best;
      }
    }
  }
  return [y];
}
