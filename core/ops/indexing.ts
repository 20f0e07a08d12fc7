// Indexing: gather / scatterAdd along a dim, indexSelect, embedding, oneHot.
import { recordPrim } from "../grad.ts";
import { aroundDim, fmt, normDim, stridesOf } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { add, compare, maskedFill } from "./elementwise.ts";
import { fromArray, run1 } from "./run.ts";
import { reshape, unsqueeze } from "./shape.ts";

function checkIndexTensor(op: string, index: Tensor): void {
  if (index.dtype !== "int32") throw new Error(`${op}: index must be int32, got ${index.dtype}`);
}

// out[..., j, ...] = x[..., index[..., j, ...], ...] along dim. Here index must have x's shape
// in every dim but `dim` (the form every use in this project needs).
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  checkIndexTensor("gather", index);
  const d = normDim("gather", dim, x.ndim);
  if (index.ndim !== x.ndim || index.shape.some((s, i) => i !== d && s !== x.shape[i])) {
    throw new Error(`gather: index ${fmt(index.shape)} must match input ${fmt(x.shape)} in every dim except ${dim}`);
  }
  const [outer, n, inner] = aroundDim(x.shape, d);
  const k = index.shape[d];
  const out = run1("gather", [x, index], { outer, n, k, inner, dtype: x.dtype }, index.shape, x.dtype, "gather");
  return recordPrim(out, "gather", [x, index], { dim: d });
}

// Returns x + (src scattered-added at index along dim), like torch.Tensor.scatter_add.
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  checkIndexTensor("scatterAdd", index);
  const d = normDim("scatterAdd", dim, x.ndim);
  if (index.shape.join() !== src.shape.join()) throw new Error(`scatterAdd: index ${fmt(index.shape)} and src ${fmt(src.shape)} must have the same shape`);
  if (index.ndim !== x.ndim || index.shape.some((s, i) => i !== d && s !== x.shape[i])) {
    throw new Error(`scatterAdd: index ${fmt(index.shape)} must match input ${fmt(x.shape)} in every dim except ${dim}`);
  }
  const [outer, n, inner] = aroundDim(x.shape, d);
  const scattered = run1("scatterAdd", [index, src], { outer, n, k: index.shape[d], inner }, x.shape, "float32", "scatterAdd");
  const out = run1("binary", [x, scattered], {
    op: "add", outShape: x.shape.slice(), aStrides: stridesOf(x.shape), bStrides: stridesOf(x.shape), dtype: "float32",
  }, x.shape, "float32", "scatterAdd");
  scattered.dispose();
  return recordPrim(out, "scatterAdd", [x, index, src], { dim: d });
}

// Rows (or slices along dim) of x picked by a 1-D int32 index.
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  checkIndexTensor("indexSelect", index);
  if (index.ndim !== 1) throw new Error(`indexSelect: index must be 1-D, got ${fmt(index.shape)}`);
  const d = normDim("indexSelect", dim, x.ndim);
  const [outer, n, inner] = aroundDim(x.shape, d);
  const m = index.shape[0];
  const outShape = x.shape.slice();
  outShape[d] = m;
  const out = run1("indexSelect", [x, index], { outer, n, m, inner, dtype: x.dtype }, outShape, x.dtype, "indexSelect");
  return recordPrim(out, "indexSelect", [x, index], { dim: d });
}

// weight [V, D], ids [...] int32 → [..., D]
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be [V, D], got ${fmt(weight.shape)}`);
  checkIndexTensor("embedding", ids);
  const rows = indexSelect(weight, 0, reshape(ids, [ids.size]));
  return reshape(rows, [...ids.shape, weight.shape[1]]);
}

// ids [...] int32 → float32 [..., numClasses] with a 1 at each id. An id outside
// [0, numClasses) is an error on the synchronous backends (cpu, wasm, gpujs webasm/cpu), which
// read the ids first; a GPU backend cannot read them back inside a synchronous op, so there its
// row comes out NaN instead, as gather and indexSelect give there — never a silent row of zeros.
export function oneHot(ids: Tensor, numClasses: number): Tensor {
  checkIndexTensor("oneHot", ids);
  if (!Number.isInteger(numClasses) || numClasses <= 0) throw new Error(`oneHot: numClasses must be a positive integer, got ${numClasses}`);
  if (ids.backend.sync) {
    const v = ids.dataSync();
    for (let i = 0; i < v.length; i++) {
      if (!(v[i] >= 0 && v[i] < numClasses)) {
        const at = ids.ndim > 1 ? ` at ${fmt(unravelIndex(i, ids.shape))}` : ids.ndim === 1 ? ` at position ${i}` : "";
        throw new Error(`oneHot: id ${v[i]}${at} is outside [0, ${numClasses}) (numClasses = ${numClasses})`);
      }
    }
  }
  const classes = fromArray(Int32Array.from({ length: numClasses }, (_, i) => i), [numClasses], "int32", ids.backend);
  const col = unsqueeze(ids, -1);
  const hot = compare("eq", col, classes);
  classes.dispose();
  if (ids.backend.sync) {
    col.dispose();
    return hot;
  }
  const below = compare("lt", col, 0), above = compare("ge", col, numClasses);
  const bad = add(below, above);
  const out = maskedFill(hot, bad, NaN);
  for (const t of [col, hot, below, above, bad]) t.dispose();
  return out;
}

function unravelIndex(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}
