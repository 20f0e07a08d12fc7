// ngram-OAXE (Du, Tu, Wang & Jiang, COLING 2022): OAXE that may reorder n-gram phrases but keeps
// the word order inside each phrase.
//
// What the paper defines, and what is implemented here. Its exact objective would search every
// segmentation of the target into phrases (2^L of them) and run the Hungarian method on each; the
// paper relaxes it to a tractable form, which is the one it trains with and the one built here:
//   1. take every n-gram of the target, overlapping: g_k = y_k..y_{k+n−1}, k = 1..L−n+1 (a word
//      belongs to up to n of them);
//   2. take the L−n+1 windows of n neighbouring output positions, w = 1..L−n+1;
//   3. the cost of window w producing g_k is −log Π_t p_{w+t}(y_{k+t}) = Σ_t C[w+t][k+t];
//   4. a bipartite matching (Hungarian) of windows to n-grams; the loss is the summed cost of the
//      chosen pairs, each expanded into its n (position, token) terms.
// So n = 1 is OAXE exactly, and for n = L there is one window and one n-gram: plain XE.
// A sentence shorter than n is treated as a single block (n = L for it).
//
// Choices the paper leaves open (ours, stated so they can be changed):
//   - label smoothing is per (position, token) term, as in OAXE: (1−ε)·NLL + ε·mean_v(−log p);
//   - truncation drops a whole chosen n-gram when its geometric-mean probability
//     exp(−cost/n) is below `truncate` (for n = 1: OAXE's rule); its terms keep their smoothing;
//   - "mean" divides by the number of (position, token) terms, Σ (L−n+1)·n over sentences, so the
//     loss is on the per-token scale of XE and OAXE; "none" gives [B, N], each position's terms.
import type { Tensor } from "../../core/index.ts";
import { runAsync, runSync } from "./host.ts";
import { orderAgnosticSteps, type OaxeOptions } from "./oaxe.ts";

export interface NgramOaxeOptions extends OaxeOptions {
  n: number; // phrase length ≥ 1
}

function checkN(opts: NgramOaxeOptions | undefined): number {
  const n = opts?.n;
  if (!Number.isInteger(n) || (n as number) < 1) throw new Error(`ngramOaxeLoss: n must be an integer ≥ 1 (the phrase length), got ${String(n)}`);
  return n as number;
}

// logits [B, N, V], target [B, N] int32 → the ngram-OAXE loss.
export function ngramOaxeLoss(logits: Tensor, target: Tensor, opts: NgramOaxeOptions): Tensor {
  return runSync("ngramOaxeLoss", orderAgnosticSteps("ngramOaxeLoss", logits, target, opts, checkN(opts)));
}

export async function ngramOaxeLossAsync(logits: Tensor, target: Tensor, opts: NgramOaxeOptions): Promise<Tensor> {
  return runAsync(orderAgnosticSteps("ngramOaxeLoss", logits, target, opts, checkN(opts)));
}
