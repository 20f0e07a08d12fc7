// Reductions over the middle axis of [outer, r, inner]: one thread per output element,
// looping over r. Sums accumulate in float32 in index order.
import type { KernelParams } from "../../kernels.ts";
import { floorDiv } from "./gpu-math.ts";
import { checkIndexed } from "./layout.ts";
import type { GpujsBuffer, KernelSpec, Runtime } from "./runtime.ts";

type K = { thread: { x: number } };

const SUM: KernelSpec = {
  key: "reduce:sum",
  source: function (this: K, x: Float32Array, r: number, inner: number) {
    const o = floorDiv(this.thread.x, inner);
    const base = o * r * inner + (this.thread.x - o * inner);
    let s = 0;
    for (let j = 0; j < r; j++) {
      s += x[base + j * inner];
    }
    return s;
  },
  args: ["Array", "Integer", "Integer"],
  functions: [floorDiv],
};

// max/min and their arg forms. NaN wins and stops the scan (PyTorch; the cpu backend);
// ties keep the first index. An empty axis gives `empty` (±Infinity) and index 0.
function extremeSpec(op: "max" | "min" | "argmax" | "argmin"): KernelSpec {
  const cmp = op === "max" || op === "argmax" ? ">" : "<";
  const ret = op.startsWith("arg") ? "bj" : "best";
  return {
    key: `reduce:${op}`,
    source: `function (x, r, inner, empty) {
  const o = floorDiv(this.thread.x, inner);
  const base = o * r * inner + (this.thread.x - o * inner);
  let best = empty;
  if (r > 0) {
    best = x[base];
  }
  let bj = 0;
  for (let j = 1; j < r; j++) {
    const v = x[base + j * inner];
    if (best == best && (v != v || v ${cmp} best)) {
      best = v;
      bj = j;
    }
  }
  return ${ret};
}`,
    args: ["Array", "Integer", "Integer", "Float"],
    functions: [floorDiv],
  };
}
const EXTREME = { max: extremeSpec("max"), min: extremeSpec("min"), argmax: extremeSpec("argmax"), argmin: extremeSpec("argmin") };

export function reduce(rt: Runtime, [x]: GpujsBuffer[], p: KernelParams["reduce"]): GpujsBuffer[] {
  const n = p.outer * p.inner;
  checkIndexed("reduce", n, [x]);
  if (p.op === "sum") return [rt.launch(SUM, n, p.dtype, [x, p.r, p.inner])];
  const empty = p.op === "max" || p.op === "argmax" ? -Infinity : Infinity;
  const dtype = p.op === "argmax" || p.op === "argmin" ? "int32" : p.dtype;
  return [rt.launch(EXTREME[p.op], n, dtype, [x, p.r, p.inner, empty])];
}
