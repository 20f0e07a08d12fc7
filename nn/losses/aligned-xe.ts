// Cross-entropy on the (position, token) pairs an alignment chose: the loss OAXE and ngram-OAXE
// build once the Hungarian solver has paired predictions with target tokens.
//
// A pair (i, y) costs what crossEntropy charges row i for target y:
//   (1 − ε)·(−log pᵢ(y)) + ε·mean_v(−log pᵢ(v))
// A truncated pair keeps only its smoothing term ε·mean_v(−log pᵢ(v)), as the released OAXE
// criterion does (it zeroes the chosen NLL but smooths every non-padding position).
// The kept pairs are crossEntropy calls on aligned targets (a fused kernel forward and backward).
// A position can hold several pairs (ngram-OAXE's overlapping windows), so they come in layers,
// each with at most one pair per position, and the layers are summed. The truncated pairs' rows
// are picked out (indexSelect) and scored by crossEntropy with smoothing 1, where (1 − 1)·NLL
// vanishes, then scaled by ε: cheaper than another pass over every row.
import { crossEntropy, scatterAdd, tensor, zeros, type Tensor } from "../../core/index.ts";
import type { Reduction } from "./host.ts";

export interface AlignedPairs {
  layers: Int32Array[]; // each [B·N]: the token paired with each position, or ignoreIndex
  droppedRows: number[]; // flat positions b·N + i of the truncated pairs (repeats allowed)
}

export interface AlignedXeOptions {
  ignoreIndex: number;
  labelSmoothing: number;
  reduction: Reduction;
  pairs: number; // how many pairs in all: "mean" divides the summed loss by it
}

export function alignedCrossEntropy(logits: Tensor, { layers, droppedRows }: AlignedPairs, o: AlignedXeOptions): Tensor {
  const [B, N, V] = logits.shape;
  const be = logits.backend;
  let perPos: Tensor | null = null;
  const add = (x: Tensor): void => {
    perPos = perPos ? perPos.add(x) : x;
  };
  for (const kept of layers) {
    add(crossEntropy(logits, tensor(kept, { shape: [B, N], dtype: "int32", backend: be }), { ignoreIndex: o.ignoreIndex, labelSmoothing: o.labelSmoothing, reduction: "none" }));
  }
  const D = droppedRows.length;
  if (D > 0 && o.labelSmoothing > 0) {
    const rows = tensor(Int32Array.from(droppedRows), { dtype: "int32", backend: be });
    const picked = logits.reshape([B * N, V]).indexSelect(0, rows);
    const smooth = crossEntropy(picked, tensor(new Int32Array(D), { dtype: "int32", backend: be }), { labelSmoothing: 1, reduction: "none" });
    add(scatterAdd(zeros([B * N], { backend: be }), 0, rows, smooth.mul(o.labelSmoothing)).reshape([B, N]));
  }
  // No pairs at all (every target ignored): a zero loss that still reaches the logits in the graph.
  const loss: Tensor = perPos ?? logits.sum(-1).mul(0);
  if (o.reduction === "none") return loss;
  const total = loss.sum();
  return o.reduction === "sum" ? total : total.div(o.pairs);
}
