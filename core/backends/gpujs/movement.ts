// Data movement: strided copies (permute/expand/slice), pad, concat, gather and the
// scatter-adds. A kernel writes only its own output element, so the scatters are written
// gather-style: each output element sums the sources whose index points at it (no atomics
// in gpu.js). That costs O(k) per output; fine for the embedding/gather sizes of this project.
//
// Out-of-range indices cannot throw from a GPU kernel, and on webgpu the index buffer cannot be
// read back inside a synchronous op. So on webgpu gather/indexSelect give NaN where an index is
// out of range, and the scatters give NaN over every output its column could have reached (a
// dropped contribution would be a silently wrong sum). On the synchronous modes the backend
// checks indices on the host first and throws the cpu backend's error (see index.ts).
import type { KernelParams } from "../../kernels.ts";
import { floorDiv } from "./gpu-math.ts";
import { checkIndexed, coalesce, isFlat, numel, packMeta } from "./layout.ts";
import type { GpujsBuffer, KernelArg, KernelSpec, Runtime } from "./runtime.ts";

type K = { thread: { x: number } };
type Arr = Float32Array;

const STRIDED: KernelSpec = {
  key: "strided",
  source: function (this: K, x: Arr, meta: Arr, rank: number, offset: number) {
    let rem = this.thread.x;
    let xo = offset;
    for (let e = 0; e < rank; e++) {
      const d = rank - 1 - e;
      const n = meta[d];
      const q = floorDiv(rem, n);
      xo += (rem - q * n) * meta[rank + d];
      rem = q;
    }
    return x[xo];
  },
  args: ["Array", "Array", "Integer", "Integer"],
  functions: [floorDiv],
};
// A contiguous run from an offset (slices along the first dim, clones): no index arithmetic.
const SLICE: KernelSpec = {
  key: "strided-flat",
  source: function (this: K, x: Arr, offset: number) {
    return x[offset + this.thread.x];
  },
  args: ["Array", "Integer"],
};

export function strided(rt: Runtime, [x]: GpujsBuffer[], p: KernelParams["strided"]): GpujsBuffer[] {
  const n = numel(p.outShape);
  const w = coalesce(p.outShape, [p.strides]);
  if (isFlat(w)) return [rt.launch(SLICE, n, p.dtype, [x, p.offset])];
  checkIndexed("strided", n, [x]);
  return [rt.launch(STRIDED, n, p.dtype, [x, packMeta(w), w.shape.length, p.offset])];
}

// meta = [outShape, inShape, before, inStrides], each of length rank.
const PAD: KernelSpec = {
  key: "pad",
  source: function (this: K, x: Arr, meta: Arr, rank: number, value: number) {
    let rem = this.thread.x;
    let xo = 0;
    let inside = 1;
    for (let e = 0; e < rank; e++) {
      const d = rank - 1 - e;
      const n = meta[d];
      const q = floorDiv(rem, n);
      const j = rem - q * n - meta[2 * rank + d];
      if (j < 0 || j >= meta[rank + d]) {
        inside = 0;
      }
      xo += j * meta[3 * rank + d];
      rem = q;
    }
    if (inside > 0) {
      return x[xo];
    }
    return value;
  },
  args: ["Array", "Array", "Integer", "Float"],
  functions: [floorDiv],
};

export function pad(rt: Runtime, [x]: GpujsBuffer[], p: KernelParams["pad"]): GpujsBuffer[] {
  const n = numel(p.outShape);
  checkIndexed("pad", n, [x]);
  const rank = p.outShape.length;
  const inStrides: number[] = new Array(rank);
  let acc = 1;
  for (let d = rank - 1; d >= 0; d--) {
    inStrides[d] = acc;
    acc *= p.inShape[d];
  }
  if (rank === 0) return [rt.launch(SLICE, n, p.dtype, [x, 0])];
  const meta = Float32Array.from([...p.outShape, ...p.inShape, ...p.before, ...inStrides]);
  return [rt.launch(PAD, n, p.dtype, [x, meta, rank, p.value])];
}

// Concat of up to CONCAT_ARITY inputs in one kernel (WebGPU guarantees 8 storage buffers per
// shader: the inputs, the output, and one spare). Each input is [outer, w_k] in elements, its
// rows s_k apart (s_k ≥ w_k: a prefix of every row).
const CONCAT_ARITY = 6;
const concatSpecs: KernelSpec[] = [];
function concatSpec(arity: number): KernelSpec {
  if (concatSpecs[arity]) return concatSpecs[arity];
  const xs = Array.from({ length: arity }, (_, k) => `x${k}`);
  const ws = Array.from({ length: arity }, (_, k) => `w${k}`);
  const ss = Array.from({ length: arity }, (_, k) => `s${k}`);
  const branches = xs.map((x, k) => k < arity - 1
    ? `  if (c < w${k}) {\n    return ${x}[o * s${k} + c];\n  }\n  c -= w${k};`
    : `  return ${x}[o * s${k} + c];`);
  return (concatSpecs[arity] = {
    key: `concat:${arity}`,
    source: `function (${[...xs, ...ws, ...ss].join(", ")}, total) {
  const o = floorDiv(this.thread.x, total);
  let c = this.thread.x - o * total;
${branches.join("\n")}
}`,
    args: [...xs.map(() => "Array" as const), ...ws.map(() => "Integer" as const), ...ss.map(() => "Integer" as const), "Integer"],
    functions: [floorDiv],
  });
}

function concatWidths(rt: Runtime, xs: GpujsBuffer[], widths: number[], outer: number, dtype: KernelParams["concat"]["dtype"], strides = widths): GpujsBuffer {
  const total = widths.reduce((s, v) => s + v, 0);
  if (xs.length <= CONCAT_ARITY) {
    const args: KernelArg[] = [...xs, ...widths, ...strides, total];
    return rt.launch(concatSpec(xs.length), outer * total, dtype, args);
  }
  // More inputs than one shader can bind: concatenate groups, then the groups.
  const groups: GpujsBuffer[] = [], gw: number[] = [];
  for (let s = 0; s < xs.length; s += CONCAT_ARITY) {
    const w = widths.slice(s, s + CONCAT_ARITY);
    groups.push(concatWidths(rt, xs.slice(s, s + CONCAT_ARITY), w, outer, dtype, strides.slice(s, s + CONCAT_ARITY)));
    gw.push(w.reduce((a, v) => a + v, 0));
  }
  const out = concatWidths(rt, groups, gw, outer, dtype);
  for (const g of groups) rt.free(g); // queued after the kernel that reads them
  return out;
}

export function concat(rt: Runtime, xs: GpujsBuffer[], p: KernelParams["concat"]): GpujsBuffer[] {
  const total = p.sizes.reduce((s, v) => s + v, 0) * p.inner;
  checkIndexed("concat", p.outer * total, xs);
  const widths = p.sizes.map((s) => s * p.inner);
  return [concatWidths(rt, xs, widths, p.outer, p.dtype, p.rowStrides ?? widths)];
}

// y[o,j,i] = x[o, idx[o,j,i], i]
const GATHER: KernelSpec = {
  key: "gather",
  source: function (this: K, x: Arr, idx: Arr, n: number, k: number, inner: number, bad: number) {
    const t = this.thread.x;
    const o = floorDiv(t, k * inner);
    const i = t - floorDiv(t, inner) * inner;
    const v = idx[t];
    if (v < 0 || v >= n) {
      return bad;
    }
    return x[(o * n + v) * inner + i];
  },
  args: ["Array", "Array", "Integer", "Integer", "Integer", "Float"],
  functions: [floorDiv],
};

export function gather(rt: Runtime, [x, idx]: GpujsBuffer[], p: KernelParams["gather"]): GpujsBuffer[] {
  const n = p.outer * p.k * p.inner;
  checkIndexed("gather", n, [x, idx]);
  return [rt.launch(GATHER, n, p.dtype, [x, idx, p.n, p.k, p.inner, p.dtype === "int32" ? 0 : NaN])];
}

// y[o,v,i] = Σ_j src[o,j,i] · [idx[o,j,i] = v]; `bad` (NaN) for the whole column (o, ·, i)
// when any of its indices is out of range.
const SCATTER_ADD: KernelSpec = {
  key: "scatterAdd",
  source: function (this: K, idx: Arr, src: Arr, n: number, k: number, inner: number, bad: number) {
    const t = this.thread.x;
    const o = floorDiv(t, n * inner);
    const rest = t - o * n * inner;
    const v = floorDiv(rest, inner);
    const base = o * k * inner + rest - v * inner;
    let s = 0;
    let outside = 0;
    for (let j = 0; j < k; j++) {
      const w = idx[base + j * inner];
      if (w == v) {
        s += src[base + j * inner];
      }
      if (w < 0 || w >= n) {
        outside = 1;
      }
    }
    if (outside > 0) {
      return bad;
    }
    return s;
  },
  args: ["Array", "Array", "Integer", "Integer", "Integer", "Float"],
  functions: [floorDiv],
};

export function scatterAdd(rt: Runtime, [idx, src]: GpujsBuffer[], p: KernelParams["scatterAdd"]): GpujsBuffer[] {
  const n = p.outer * p.n * p.inner;
  checkIndexed("scatterAdd", n, [idx, src]);
  return [rt.launch(SCATTER_ADD, n, "float32", [idx, src, p.n, p.k, p.inner, NaN])];
}

// y[o,j,:] = x[o, ids[j], :]
const INDEX_SELECT: KernelSpec = {
  key: "indexSelect",
  source: function (this: K, x: Arr, ids: Arr, n: number, m: number, inner: number, bad: number) {
    const t = this.thread.x;
    const o = floorDiv(t, m * inner);
    const rest = t - o * m * inner;
    const j = floorDiv(rest, inner);
    const v = ids[j];
    if (v < 0 || v >= n) {
      return bad;
    }
    return x[(o * n + v) * inner + rest - j * inner];
  },
  args: ["Array", "Array", "Integer", "Integer", "Integer", "Float"],
  functions: [floorDiv],
};

export function indexSelect(rt: Runtime, [x, ids]: GpujsBuffer[], p: KernelParams["indexSelect"]): GpujsBuffer[] {
  const n = p.outer * p.m * p.inner;
  checkIndexed("indexSelect", n, [x, ids]);
  return [rt.launch(INDEX_SELECT, n, p.dtype, [x, ids, p.n, p.m, p.inner, p.dtype === "int32" ? 0 : NaN])];
}

// y[o,v,:] = Σ_j g[o,j,:] · [ids[j] = v]   (the embedding gradient); all `bad` (NaN) when any
// id is out of range.
const INDEX_ADD: KernelSpec = {
  key: "indexAdd",
  source: function (this: K, ids: Arr, g: Arr, n: number, m: number, inner: number, bad: number) {
    const t = this.thread.x;
    const o = floorDiv(t, n * inner);
    const rest = t - o * n * inner;
    const v = floorDiv(rest, inner);
    const base = o * m * inner + rest - v * inner;
    let s = 0;
    let outside = 0;
    for (let j = 0; j < m; j++) {
      const w = ids[j];
      if (w == v) {
        s += g[base + j * inner];
      }
      if (w < 0 || w >= n) {
        outside = 1;
      }
    }
    if (outside > 0) {
      return bad;
    }
    return s;
  },
  args: ["Array", "Array", "Integer", "Integer", "Integer", "Float"],
  functions: [floorDiv],
};

export function indexAdd(rt: Runtime, [ids, g]: GpujsBuffer[], p: KernelParams["indexAdd"]): GpujsBuffer[] {
  const n = p.outer * p.n * p.inner;
  checkIndexed("indexAdd", n, [ids, g]);
  return [rt.launch(INDEX_ADD, n, "float32", [ids, g, p.n, p.m, p.inner, NaN])];
}
