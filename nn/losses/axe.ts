// Aligned cross-entropy (AXE; Ghazvininejad, Karpukhin, Zettlemoyer & Levy, ICML 2020): the
// cross-entropy of the best monotonic alignment between the n target tokens Y and the m
// predictions P, where a blank ε absorbs predictions left unaligned.
//
// With a[i][j] = −log P_j(Y_i) and e[j] = −log P_j(ε), the dynamic program over (i, j):
//   A[0][0] = 0
//   A[i][0] = A[i−1][0] + δ·a[i][1]                      skip Y_i before any prediction (uses P_1)
//   A[0][j] = A[0][j−1] + e[j]                           skip P_j
//   A[i][j] = min( A[i−1][j−1] + a[i][j],                align Y_i with P_j
//                  A[i−1][j]   + δ·a[i][j],              skip target Y_i (charged at P_j)
//                  A[i][j−1]   + e[j] )                  skip prediction P_j (it should say ε)
//   AXE = A[n][m]
// as in the paper's Figure 2 (skipping Y_3 after aligning Y_2 with P_3 costs −δ·log P_3(Y_3)).
// The DP runs on the host in float64 over costs read from the backend; the path it chose is then
// scored with differentiable ops (a gather of the chosen log-probabilities, weighted 1 or δ), so
// the gradient flows through exactly the chosen terms. Ties prefer align, then skip target.
//
// Which positions are predictions: `predLengths[b]` (the first ones) when given; otherwise, when
// logits and target have the same length N, the positions whose target is not ignored (the CMLM
// set-up: the decoder is given the gold length); otherwise all M positions.
// Reductions: "none" gives [B] (one loss per sentence), "sum" their sum, "mean" the sum over the
// number of non-ignored target tokens (as crossEntropy; a batch without any divides by 1, since
// its predictions still owe their blanks).
import { gather, logSoftmax, scatterAdd, tensor, zeros, type Tensor } from "../../core/index.ts";
import { checkLogitsTarget, checkReduction, checkTokens, runAsync, runSync, tokenCosts, type HostSteps, type Reduction } from "./host.ts";

export interface AxeOptions {
  delta: number; // δ ≥ 0: the weight of a skipped target's NLL (the paper tunes it)
  blank?: number; // the ε token id (default 0); no target token may equal it
  ignoreIndex?: number; // target id of padding (default −100)
  predLengths?: readonly number[] | Int32Array; // predictions per sentence (see above)
  reduction?: Reduction;
}

// logits [B, M, V], target [B, N] int32 → the AXE loss.
export function axeLoss(logits: Tensor, target: Tensor, opts: AxeOptions): Tensor {
  return runSync("axeLoss", axeSteps(logits, target, opts));
}

export async function axeLossAsync(logits: Tensor, target: Tensor, opts: AxeOptions): Promise<Tensor> {
  return runAsync(axeSteps(logits, target, opts));
}

const ALIGN = 0, SKIP_TARGET = 1, SKIP_PRED = 2;

export interface AxeStep {
  move: "align" | "skipTarget" | "skipPrediction";
  pred: number; // 1-based prediction j whose distribution is charged
  target: number; // 1-based target i, or 0 for ε (skip prediction)
  weight: number; // 1, or δ for a skipped target
}

// The best path of the DP above for one sentence, with its cost; a(i, j) and e(j) are read
// through accessors (1-based i, j). Exported for the tests.
export function axeAlign(n: number, m: number, delta: number, a: (i: number, j: number) => number, e: (j: number) => number): { cost: number; path: AxeStep[] } {
  if (n > 0 && m === 0) throw new Error(`axeLoss: ${n} target tokens but no predictions to align them with`);
  const W = m + 1;
  const A = new Float64Array((n + 1) * W), move = new Uint8Array((n + 1) * W);
  for (let j = 1; j <= m; j++) {
    A[j] = A[j - 1] + e(j);
    move[j] = SKIP_PRED;
  }
  for (let i = 1; i <= n; i++) {
    A[i * W] = A[(i - 1) * W] + delta * a(i, 1);
    move[i * W] = SKIP_TARGET;
    for (let j = 1; j <= m; j++) {
      const aij = a(i, j);
      let best = A[(i - 1) * W + j - 1] + aij, mv = ALIGN;
      const st = A[(i - 1) * W + j] + delta * aij;
      if (st < best) {
        best = st;
        mv = SKIP_TARGET;
      }
      const sp = A[i * W + j - 1] + e(j);
      if (sp < best) {
        best = sp;
        mv = SKIP_PRED;
      }
      A[i * W + j] = best;
      move[i * W + j] = mv;
    }
  }
  const path: AxeStep[] = [];
  for (let i = n, j = m; i > 0 || j > 0;) {
    const mv = move[i * W + j];
    if (mv === ALIGN) path.push({ move: "align", pred: j--, target: i--, weight: 1 });
    else if (mv === SKIP_TARGET) path.push({ move: "skipTarget", pred: Math.max(j, 1), target: i--, weight: delta });
    else path.push({ move: "skipPrediction", pred: j--, target: 0, weight: 1 });
  }
  return { cost: A[n * W + m], path: path.reverse() };
}

function* axeSteps(logits: Tensor, target: Tensor, opts: AxeOptions): HostSteps<Tensor> {
  const op = "axeLoss";
  if (!opts || typeof opts !== "object") throw new Error(`${op}: pass options with delta (the skip-target weight)`);
  const { delta, blank = 0, ignoreIndex = -100, predLengths } = opts;
  const reduction = checkReduction(op, opts.reduction ?? "mean");
  checkLogitsTarget(op, logits, target, false);
  const [B, M, V] = logits.shape, N = target.shape[1];
  if (typeof delta !== "number" || !(delta >= 0) || delta === Infinity) throw new Error(`${op}: delta must be a finite number ≥ 0, got ${String(delta)}`);
  if (!Number.isInteger(blank) || blank < 0 || blank >= V) throw new Error(`${op}: blank must be a token id in [0, ${V}), got ${blank}`);
  if (!Number.isInteger(ignoreIndex)) throw new Error(`${op}: ignoreIndex must be an integer, got ${ignoreIndex}`);
  if (predLengths !== undefined) {
    if (predLengths.length !== B) throw new Error(`${op}: predLengths needs one length per sentence (${B}), got ${predLengths.length}`);
    for (let b = 0; b < B; b++) {
      const l = predLengths[b];
      if (!Number.isInteger(l) || l < 0 || l > M) throw new Error(`${op}: predLengths[${b}] = ${l} is not an integer in [0, ${M}]`);
    }
  }

  const [ids] = yield [target];
  checkTokens(op, ids, N, V, ignoreIndex);
  const ys: number[][] = [], preds: number[][] = [];
  let K = 1;
  for (let b = 0; b < B; b++) {
    const y: number[] = [], q: number[] = [];
    for (let i = 0; i < N; i++) {
      const t = ids[b * N + i];
      if (t === ignoreIndex) continue;
      if (t === blank) throw new Error(`${op}: target[${b}][${i}] is the blank id ${blank}; the blank must not be a target token`);
      y.push(t);
    }
    if (predLengths !== undefined) for (let j = 0; j < predLengths[b]; j++) q.push(j);
    else if (M === N) for (let i = 0; i < N; i++) ids[b * N + i] !== ignoreIndex && q.push(i);
    else for (let j = 0; j < M; j++) q.push(j);
    if (y.length > 0 && q.length === 0) throw new Error(`${op}: sentence ${b} has ${y.length} target tokens but no predictions`);
    ys.push(y);
    preds.push(q);
    K = Math.max(K, y.length + 1);
  }
  const cols = new Int32Array(B * K); // column 0: ε; column k ≥ 1: the k-th target token
  for (let b = 0; b < B; b++) {
    cols[b * K] = blank;
    ys[b].forEach((t, k) => (cols[b * K + k + 1] = t));
  }
  const C = yield* tokenCosts(logits, cols, K); // C[b, j, k] = −log p_{b,j}(cols[b, k])

  const flat: number[] = [], weight: number[] = [], sentence: number[] = [];
  let tokens = 0;
  for (let b = 0; b < B; b++) {
    const y = ys[b], q = preds[b];
    const row = (j: number): number => (b * M + q[j - 1]) * K;
    const { path } = axeAlign(y.length, q.length, delta, (i, j) => C[row(j) + i], (j) => C[row(j)]);
    for (const { pred, target: i, weight: w } of path) {
      if (w === 0) continue; // δ = 0: a skipped target costs nothing
      flat.push((b * M + q[pred - 1]) * V + (i === 0 ? blank : y[i - 1]));
      weight.push(w);
      sentence.push(b);
    }
    tokens += y.length;
  }
  const be = logits.backend;
  let perSentence: Tensor;
  if (flat.length === 0) perSentence = logits.sum([1, 2]).mul(0); // nothing to align: zero, still in the graph
  else {
    const P = flat.length;
    // −w·log p at each chosen (position, token): a gather from the flattened log-probabilities.
    const lp = logSoftmax(logits, -1).reshape([1, B * M * V]);
    const picked = gather(lp, 1, tensor(Int32Array.from(flat), { shape: [1, P], dtype: "int32", backend: be })).reshape([P]);
    const terms = picked.mul(tensor(Float32Array.from(weight, (w) => -w), { backend: be }));
    perSentence = scatterAdd(zeros([B], { backend: be }), 0, tensor(Int32Array.from(sentence), { dtype: "int32", backend: be }), terms);
  }
  if (reduction === "none") return perSentence;
  const total = perSentence.sum();
  return reduction === "sum" ? total : total.div(Math.max(tokens, 1));
}
