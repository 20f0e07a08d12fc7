// Order-agnostic cross-entropy (OAXE; Du, Tu & Jiang, ICML 2021): cross-entropy under the best
// one-to-one alignment between predicted positions and target tokens, so a NAT model is not
// penalised for putting the right words in another order.
//
// Per sentence, over its N non-ignored target tokens y₁..y_N and the N positions that hold them:
//   C[i][j] = −log pᵢ(y_j)                         (read from the backend, N² numbers)
//   σ*      = argmin over permutations σ of Σᵢ C[i][σ(i)]   (Hungarian, on the host, no gradient)
//   OAXE    = Σᵢ (1 − ε)·C[i][σ*(i)]·[pᵢ(y_σ*(i)) ≥ truncate] + ε·mean_v(−log pᵢ(v))
// The loss is built from crossEntropy on the aligned targets, so the gradient flows only through
// the chosen pairs (and the smoothing term), exactly as autodiff of that expression gives.
//
// Truncation (the paper's "loss truncation", after Kang & Hashimoto 2020): a chosen pair whose
// probability is below `truncate` contributes no NLL. The released criterion compares the
// natural-log NLL with −log₂(skip), so its `--skip 0.15` drops pairs with p < e^(log₂ 0.15) ≈
// 0.0648: pass truncate = skip^(1/ln 2) to reproduce it. truncate = 0 drops nothing.
//
// Reductions: "none" gives [B, N] (each position's term, 0 where the target is ignored), "sum"
// their sum, "mean" the sum over the number of non-ignored target tokens (as crossEntropy).
// The paper adds the CMLM length loss and starts from an XE-trained model; both are the caller's.
import type { Tensor } from "../../core/index.ts";
import { alignedCrossEntropy } from "./aligned-xe.ts";
import { linearSumAssignmentFlat } from "./assignment.ts";
import { checkLogitsTarget, checkReduction, checkTokens, runAsync, runSync, tokenCosts, type HostSteps, type Reduction } from "./host.ts";

export interface OaxeOptions {
  ignoreIndex?: number; // target id of padding (default −100, as crossEntropy)
  labelSmoothing?: number; // ε in [0, 1]
  truncate?: number; // probability in [0, 1] below which a chosen pair's NLL is dropped; 0: none
  reduction?: Reduction;
}

// logits [B, N, V], target [B, N] int32 → the OAXE loss.
export function oaxeLoss(logits: Tensor, target: Tensor, opts: OaxeOptions = {}): Tensor {
  return runSync("oaxeLoss", orderAgnosticSteps("oaxeLoss", logits, target, opts, 1));
}

export async function oaxeLossAsync(logits: Tensor, target: Tensor, opts: OaxeOptions = {}): Promise<Tensor> {
  return runAsync(orderAgnosticSteps("oaxeLoss", logits, target, opts, 1));
}

// Stands in for +∞ costs (a probability that underflowed to 0): large, but finite, so the solver
// still prefers every finite pairing; the loss itself is computed from the logits, not from this.
const HUGE = 1e30;

// OAXE over blocks of n consecutive positions and n consecutive target tokens (n = 1: OAXE;
// see ngram-oaxe.ts for n > 1). A sentence of L < n tokens is one block of L.
export function* orderAgnosticSteps(op: string, logits: Tensor, target: Tensor, opts: OaxeOptions, n: number): HostSteps<Tensor> {
  const { ignoreIndex = -100, labelSmoothing = 0, truncate = 0 } = opts;
  const reduction = checkReduction(op, opts.reduction ?? "mean");
  checkLogitsTarget(op, logits, target);
  if (!Number.isInteger(ignoreIndex)) throw new Error(`${op}: ignoreIndex must be an integer, got ${ignoreIndex}`);
  if (!(labelSmoothing >= 0 && labelSmoothing <= 1)) throw new Error(`${op}: labelSmoothing must be in [0, 1], got ${labelSmoothing}`);
  if (!(truncate >= 0 && truncate <= 1)) throw new Error(`${op}: truncate is a probability in [0, 1] (0: no truncation), got ${truncate}`);
  const [B, N, V] = logits.shape;

  const [ids] = yield [target];
  checkTokens(op, ids, N, V, ignoreIndex);
  // Each sentence's target positions (in order) and their tokens.
  const pos: number[][] = [];
  let K = 0;
  for (let b = 0; b < B; b++) {
    const p: number[] = [];
    for (let i = 0; i < N; i++) if (ids[b * N + i] !== ignoreIndex) p.push(i);
    pos.push(p);
    K = Math.max(K, p.length);
  }
  const cols = new Int32Array(B * K); // column k of sentence b: its k-th target token (0 past the end)
  for (let b = 0; b < B; b++) pos[b].forEach((i, k) => (cols[b * K + k] = ids[b * N + i]));
  const C = yield* tokenCosts(logits, cols, K); // C[b, i, k] = −log p_{b,i}(cols[b, k])

  const maxBlock = Math.min(n, K);
  const layers = Array.from({ length: maxBlock }, () => new Int32Array(B * N).fill(ignoreIndex));
  const droppedRows: number[] = [];
  const tau = truncate > 0 ? -Math.log(truncate) : Infinity; // drop when −log p > τ, i.e. p < truncate
  let pairs = 0;
  for (let b = 0; b < B; b++) {
    const p = pos[b], L = p.length;
    if (L === 0) continue;
    const g = Math.min(n, L), W = L - g + 1; // block length, number of blocks
    // cost[w][k]: block of positions p[w..w+g−1] given tokens k..k+g−1, summed over the block.
    const cost = new Float64Array(W * W);
    let nan = false;
    for (let w = 0; w < W; w++) {
      for (let k = 0; k < W; k++) {
        let c = 0;
        for (let t = 0; t < g; t++) c += C[(b * N + p[w + t]) * K + k + t];
        if (c !== c) nan = true;
        cost[w * W + k] = c > HUGE ? HUGE : c;
      }
    }
    // NaN logits: keep the given order; the loss is NaN either way, and training code sees it.
    const sigma = nan ? Int32Array.from({ length: W }, (_, w) => w) : linearSumAssignmentFlat(cost, W, W);
    for (let w = 0; w < W; w++) {
      const drop = cost[w * W + sigma[w]] / g > tau; // the block's geometric-mean probability < truncate
      for (let t = 0; t < g; t++) {
        const at = b * N + p[w + t];
        if (drop) droppedRows.push(at);
        else layers[t][at] = cols[b * K + sigma[w] + t];
      }
    }
    pairs += W * g;
  }
  return alignedCrossEntropy(logits, { layers, droppedRows }, { ignoreIndex, labelSmoothing, reduction, pairs });
}
