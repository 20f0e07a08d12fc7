// Connectionist temporal classification (CTC; Graves, Fernández, Gomez & Schmidhuber, ICML 2006):
//   −log p(y | x) = −log Σ over paths π of length T with B(π) = y of Π_t p_t(π_t)
// where B merges repeated symbols and then deletes blanks. For NAT (Libovický & Helcl 2018) the
// decoder emits T ≥ |y| positions, usually a multiple of the source length.
//
// The forward–backward recursions run on the host in float64, in log space, over the extended
// label y' = (ε, y₁, ε, y₂, …, y_L, ε) of length S = 2L + 1:
//   α_t(s) = p_t(y'_s) · (α_{t−1}(s) + α_{t−1}(s−1) + [y'_s ≠ ε, y'_s ≠ y'_{s−2}]·α_{t−1}(s−2))
//   β_t(s) = p_t(y'_s) · (β_{t+1}(s) + β_{t+1}(s+1) + [y'_{s+2} ≠ ε, y'_{s+2} ≠ y'_s]·β_{t+1}(s+2))
//   p(y|x) = α_{T−1}(S−1) + α_{T−1}(S−2)
//   γ_t(v) = Σ_{s: y'_s = v} α_t(s)·β_t(s) / (p_t(v)·p(y|x))  = Pr(π_t = v | y, x)
// and ∂(−log p(y|x)) / ∂ log p_t(v) = −γ_t(v) when the log-probabilities are free inputs.
// Only the B·T·(L+1) log-probabilities of ε and the target tokens are read (a gather). The loss
// is then built as a surrogate whose value is the exact loss and whose gradient is −γ:
//   loss_b = L_b + Σ_{t,k} −γ_{b,t,k}·(g_{b,t,k} − stopgrad(g_{b,t,k}))     (g: the gathered log-probs)
// (the bracket is exactly 0 in value). Entries of logProbs that were not gathered get no gradient;
// when logProbs = logSoftmax(logits), the logits' gradient is softmax − γ, as for every CTC.
//
// Batch-first, unlike PyTorch's [T, B, V]. An impossible target (T_b < L_b + its adjacent
// repeats) has loss +∞ and no gradient, or 0 with zeroInfinity. Reductions as PyTorch's
// ctc_loss: "none" [B], "sum", and "mean" = the mean over the batch of loss_b / max(L_b, 1).
import { fmt, gather, tensor, where, type Tensor } from "../../core/index.ts";
import { checkReduction, runAsync, runSync, type HostSteps, type Reduction } from "./host.ts";

export interface CtcOptions {
  inputLengths: readonly number[] | Int32Array; // T_b ≤ T: the positions of sentence b that count
  targetLengths: readonly number[] | Int32Array; // L_b ≤ L: the target tokens of sentence b
  blank?: number; // default 0
  reduction?: Reduction;
  zeroInfinity?: boolean; // impossible targets give 0 (and no gradient) instead of +∞
}

// logProbs [B, T, V] float32 (log-probabilities, e.g. logSoftmax(logits, -1)), targets [B, L] int32.
export function ctcLoss(logProbs: Tensor, targets: Tensor, opts: CtcOptions): Tensor {
  return runSync("ctcLoss", ctcSteps(logProbs, targets, opts));
}

export async function ctcLossAsync(logProbs: Tensor, targets: Tensor, opts: CtcOptions): Promise<Tensor> {
  return runAsync(ctcSteps(logProbs, targets, opts));
}

function lse2(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

// One sentence. lp(t, k): log-prob at time t of column k (0: blank, k ≥ 1: the k-th target token);
// y: the target ids (to compare neighbours). Returns −log p(y|x) and fills gamma[t·(L+1) + k].
export function ctcForwardBackward(T: number, y: ArrayLike<number>, lp: (t: number, k: number) => number, gamma: Float64Array): number {
  const L = y.length, S = 2 * L + 1;
  gamma.fill(0, 0, T * (L + 1));
  if (T === 0) return L === 0 ? 0 : Infinity;
  const col = (s: number): number => (s & 1 ? (s + 1) >> 1 : 0);
  // s → s+2 (skipping the blank between) is allowed when y'_{s+2} is a label unlike y'_s.
  const skip = (s: number): boolean => (s & 1) === 1 && s + 2 < S && y[(s + 1) >> 1] !== y[(s - 1) >> 1];
  const alpha = new Float64Array(T * S).fill(-Infinity), beta = new Float64Array(T * S).fill(-Infinity);
  alpha[0] = lp(0, 0);
  if (S > 1) alpha[1] = lp(0, 1);
  for (let t = 1; t < T; t++) {
    const o = t * S, p = o - S;
    for (let s = 0; s < S; s++) {
      let a = alpha[p + s];
      if (s >= 1) a = lse2(a, alpha[p + s - 1]);
      if (s >= 2 && skip(s - 2)) a = lse2(a, alpha[p + s - 2]);
      alpha[o + s] = a === -Infinity ? a : a + lp(t, col(s));
    }
  }
  const last = (T - 1) * S;
  const logP = S > 1 ? lse2(alpha[last + S - 1], alpha[last + S - 2]) : alpha[last];
  if (logP === -Infinity || logP !== logP) return logP !== logP ? NaN : Infinity;
  beta[last + S - 1] = lp(T - 1, col(S - 1));
  if (S > 1) beta[last + S - 2] = lp(T - 1, col(S - 2));
  for (let t = T - 2; t >= 0; t--) {
    const o = t * S, n = o + S;
    for (let s = 0; s < S; s++) {
      let b = beta[n + s];
      if (s + 1 < S) b = lse2(b, beta[n + s + 1]);
      if (skip(s)) b = lse2(b, beta[n + s + 2]);
      beta[o + s] = b === -Infinity ? b : b + lp(t, col(s));
    }
  }
  // α and β both include p_t(y'_s): divide one out.
  for (let t = 0; t < T; t++) {
    for (let s = 0; s < S; s++) {
      const a = alpha[t * S + s], b = beta[t * S + s];
      if (a === -Infinity || b === -Infinity) continue;
      gamma[t * (L + 1) + col(s)] += Math.exp(a + b - lp(t, col(s)) - logP);
    }
  }
  return -logP;
}

function lengths(op: string, name: string, v: CtcOptions["inputLengths"] | undefined, B: number, max: number): Int32Array {
  if (v === undefined || (!Array.isArray(v) && !(v instanceof Int32Array))) throw new Error(`${op}: ${name} must be an array of ${B} lengths`);
  if (v.length !== B) throw new Error(`${op}: ${name} needs one length per sentence (${B}), got ${v.length}`);
  const out = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const l = v[b];
    if (!Number.isInteger(l) || l < 0 || l > max) throw new Error(`${op}: ${name}[${b}] = ${l} is not an integer in [0, ${max}]`);
    out[b] = l;
  }
  return out;
}

function* ctcSteps(logProbs: Tensor, targets: Tensor, opts: CtcOptions): HostSteps<Tensor> {
  const op = "ctcLoss";
  if (!opts || typeof opts !== "object") throw new Error(`${op}: pass options with inputLengths and targetLengths`);
  if (logProbs.dtype !== "float32") throw new Error(`${op}: logProbs must be float32, got ${logProbs.dtype}`);
  if (targets.dtype !== "int32") throw new Error(`${op}: targets must be int32 token ids, got ${targets.dtype}`);
  if (logProbs.ndim !== 3) throw new Error(`${op}: logProbs must be [B, T, V] (batch first), got ${fmt(logProbs.shape)}`);
  const [B, T, V] = logProbs.shape;
  if (targets.ndim !== 2 || targets.shape[0] !== B) throw new Error(`${op}: targets must be [${B},L] for logProbs ${fmt(logProbs.shape)}, got ${fmt(targets.shape)}`);
  if (targets.backend !== logProbs.backend) throw new Error(`${op}: logProbs are on backend "${logProbs.backend.name}", targets on "${targets.backend.name}"`);
  const L = targets.shape[1];
  const { blank = 0, zeroInfinity = false } = opts;
  const reduction = checkReduction(op, opts.reduction ?? "mean");
  if (!Number.isInteger(blank) || blank < 0 || blank >= V) throw new Error(`${op}: blank must be a token id in [0, ${V}), got ${blank}`);
  const inLen = lengths(op, "inputLengths", opts.inputLengths, B, T);
  const tgLen = lengths(op, "targetLengths", opts.targetLengths, B, L);

  const [ids] = yield [targets];
  const K = L + 1;
  const index = new Int32Array(B * T * K); // [b, t, 0] = blank, [b, t, k] = the k-th target (blank past L_b)
  const cols = new Int32Array(B * K).fill(blank);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < tgLen[b]; k++) {
      const y = ids[b * L + k];
      if (!(y >= 0 && y < V)) throw new Error(`${op}: targets[${b}][${k}] = ${y} is outside the vocabulary [0, ${V})`);
      if (y === blank) throw new Error(`${op}: targets[${b}][${k}] is the blank id ${blank}; the blank must not be a target token`);
      cols[b * K + k + 1] = y;
    }
    for (let t = 0; t < T; t++) index.set(cols.subarray(b * K, (b + 1) * K), (b * T + t) * K);
  }
  const be = logProbs.backend;
  const g = gather(logProbs, 2, tensor(index, { shape: [B, T, K], dtype: "int32", backend: be })); // [B, T, K]
  const [raw] = yield [g];

  const gamma = new Float32Array(B * T * K), gb = new Float64Array(T * K);
  const loss = new Float32Array(B), weight = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    const y = cols.subarray(b * K + 1, b * K + 1 + tgLen[b]);
    const base = b * T * K;
    const l = ctcForwardBackward(inLen[b], y, (t, k) => raw[base + t * K + k], gb);
    const infeasible = l === Infinity;
    loss[b] = infeasible && zeroInfinity ? 0 : l;
    if (!infeasible) for (let t = 0; t < inLen[b]; t++) for (let k = 0; k <= tgLen[b]; k++) gamma[base + t * K + k] = -gb[t * (tgLen[b] + 1) + k];
    weight[b] = reduction === "mean" ? 1 / (Math.max(tgLen[b], 1) * B) : 1;
  }
  // value: L_b exactly (the difference is 0); gradient: −γ on the gathered entries. Entries that
  // are not finite (log 0 = −∞, or anything past T_b) are masked out first: −∞ − (−∞) is NaN.
  let finite = true;
  for (let k = 0; k < raw.length && finite; k++) finite = Number.isFinite(raw[k]);
  const gm = finite ? g : where(tensor(Float32Array.from(raw, (x) => (Number.isFinite(x) ? 1 : 0)), { shape: [B, T, K], backend: be }), g, 0);
  const zero = gm.sub(gm.detach());
  const surrogate = zero.mul(tensor(gamma, { shape: [B, T, K], backend: be })).sum([1, 2]);
  const perSentence = surrogate.add(tensor(loss, { backend: be }));
  if (reduction === "none") return perSentence;
  return reduction === "sum" ? perSentence.sum() : perSentence.mul(tensor(weight, { backend: be })).sum();
}
