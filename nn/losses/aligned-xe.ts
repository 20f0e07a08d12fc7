// Cross-entropy on the (position, token) pairs an alignment chose: the loss OAXE and ngram-OAXE
// build once the Hungarian solver has paired predictions with target tokens.
//
// A pair (i, y) costs what crossEntropy charges row i for target y:
//   (1 − ε)·(−log pᵢ(y)) + ε·mean_v(−log pᵢ(v))
// A truncated pair keeps only its smoothing term ε·mean_v(−log pᵢ(v)), as the released OAXE
// criterion does (it zeroes the chosen NLL but smooths every non-padding position).
// Both are crossEntropy calls (a fused kernel forward and backward): the kept pairs with smoothing
// ε, the truncated ones with smoothing 1 (then (1 − 1)·NLL vanishes) scaled by ε. A position can
// hold several pairs (ngram-OAXE's overlapping windows), so pairs come in layers, each with at
// most one pair per position, and the layers are summed.
import { crossEntropy, tensor, type Tensor } from "../../core/index.ts";
import type { Reduction } from "./host.ts";

export interface PairLayer {
  kept: Int32Array; // [B·N]: the token paired with each position, or ignoreIndex
  dropped: Int32Array | null; // [B·N]: truncated pairs (smoothing only), or null when there are none
}

export interface AlignedXeOptions {
  ignoreIndex: number;
  labelSmoothing: number;
  reduction: Reduction;
  pairs: number; // how many pairs in all: "mean" divides the summed loss by it
}

export function alignedCrossEntropy(logits: Tensor, layers: PairLayer[], o: AlignedXeOptions): Tensor {
  const [B, N] = logits.shape;
  const ids = (a: Int32Array): Tensor => tensor(a, { shape: [B, N], dtype: "int32", backend: logits.backend });
  let perPos: Tensor | null = null;
  const add = (x: Tensor): void => {
    perPos = perPos ? perPos.add(x) : x;
  };
  for (const layer of layers) {
    add(crossEntropy(logits, ids(layer.kept), { ignoreIndex: o.ignoreIndex, labelSmoothing: o.labelSmoothing, reduction: "none" }));
    if (layer.dropped && o.labelSmoothing > 0) {
      add(crossEntropy(logits, ids(layer.dropped), { ignoreIndex: o.ignoreIndex, labelSmoothing: 1, reduction: "none" }).mul(o.labelSmoothing));
    }
  }
  // No pairs at all (every target ignored): a zero loss that still reaches the logits in the graph.
  const loss: Tensor = perPos ?? logits.sum(-1).mul(0);
  if (o.reduction === "none") return loss;
  const total = loss.sum();
  return o.reduction === "sum" ? total : total.div(o.pairs);
}
