// Corpus BLEU (Papineni et al. 2002) exactly as SacreBLEU computes it by default (Post 2018):
// detokenized input, 13a tokenisation, case-sensitive, n-grams 1..4, one brevity penalty over the
// corpus, 'exp' smoothing. Written from SacreBLEU's documented definition
// (sacrebleu/metrics/bleu.py, tokenizers/tokenizer_13a.py) and checked against its published numbers.
//
// For each hypothesis h with references r₁..r_K:
//   matchₙ(h) = Σ_g min(count_h(g), max_k count_{r_k}(g))   over the n-grams g of h (clipped counts)
//   totalₙ(h) = number of n-grams of h
//   refLen(h) = |r_k| closest to |h| (on a tie the shorter one)
// Summed over the corpus: pₙ = matchₙ / totalₙ, c = Σ|h|, r = Σ refLen,
//   BP = 1 if c ≥ r else exp(1 − r/c)        BLEU = 100 · BP · exp(¼ Σₙ log pₙ)
// Smoothing 'exp' (mteval-v13a's): the k-th order with zero matches uses pₙ = 1 / (2ᵏ · totalₙ).
import { pyRstrip, pySplit, tokenize13a } from "./tokenizer-13a.ts";

export type SmoothMethod = "exp" | "none" | "floor" | "add-k";

export interface BleuOptions {
  /** "13a" (default) or "none" (split on whitespace only, for already-tokenized text). */
  tokenize?: "13a" | "none";
  /** Lowercase hypotheses and references first (default false). */
  lowercase?: boolean;
  /** Default "exp"; "floor" and "add-k" take smoothValue (defaults 0.1 and 1). */
  smoothMethod?: SmoothMethod;
  smoothValue?: number;
  /** Average only over the orders that have n-grams (default false; sentenceBleu defaults to true). */
  effectiveOrder?: boolean;
  /** Highest n-gram order (default 4). */
  maxNgramOrder?: number;
}

export interface BleuResult {
  /** BLEU in [0, 100]. */
  score: number;
  /** Clipped n-gram matches and hypothesis n-gram totals, for n = 1..maxNgramOrder. */
  counts: number[];
  totals: number[];
  /** Percentages 100 · pₙ after smoothing. */
  precisions: number[];
  bp: number;
  sysLen: number;
  refLen: number;
}

/** Sufficient statistics: add them over sentences, then computeBleu. */
export interface BleuStats {
  sysLen: number;
  refLen: number;
  counts: number[];
  totals: number[];
}

const SMOOTH_DEFAULTS: Record<SmoothMethod, number> = { exp: 0, none: 0, floor: 0.1, "add-k": 1 };

function preprocess(s: string, opts: BleuOptions): string[] {
  if (opts.lowercase) s = s.toLowerCase();
  s = pyRstrip(s);
  return pySplit((opts.tokenize ?? "13a") === "13a" ? tokenize13a(s) : s);
}

/** n-gram counts of orders 1..maxN; an n-gram's key is its tokens joined by " " (tokens hold no whitespace). */
function ngramCounts(tokens: string[], maxN: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let n = 1; n <= maxN; n++) {
    for (let i = 0; i + n <= tokens.length; i++) {
      const g = tokens.slice(i, i + n).join(" ");
      counts.set(g, (counts.get(g) ?? 0) + 1);
    }
  }
  return counts;
}

/**
 * Statistics of one hypothesis against its references. A null/undefined reference is absent (variable
 * reference counts); "" is an empty reference of length 0, as in SacreBLEU 2.x (2.6.0 checked).
 */
export function sentenceStats(hyp: string, refs: (string | null | undefined)[], opts: BleuOptions = {}): BleuStats {
  const maxN = opts.maxNgramOrder ?? 4;
  const usable = refs.filter((r): r is string => typeof r === "string");
  if (usable.length === 0) throw new Error("BLEU: a sentence has no reference (all are null or undefined)");
  const refMax = new Map<string, number>();
  const refLens: number[] = [];
  for (const ref of usable) {
    const toks = preprocess(ref, opts);
    refLens.push(toks.length);
    for (const [g, c] of ngramCounts(toks, maxN)) refMax.set(g, Math.max(refMax.get(g) ?? 0, c));
  }
  const hypToks = preprocess(hyp, opts);
  let refLen = -1, bestDiff = -1;
  for (const len of refLens) {
    const diff = Math.abs(hypToks.length - len);
    if (bestDiff < 0 || diff < bestDiff || (diff === bestDiff && len < refLen)) {
      bestDiff = diff;
      refLen = len;
    }
  }
  const counts = new Array<number>(maxN).fill(0);
  const totals = new Array<number>(maxN).fill(0);
  for (const [g, c] of ngramCounts(hypToks, maxN)) {
    const n = g.split(" ").length - 1;
    totals[n] += c;
    counts[n] += Math.min(c, refMax.get(g) ?? 0);
  }
  return { sysLen: hypToks.length, refLen, counts, totals };
}

/** log with SacreBLEU's floor: log(0) is −9999999999 rather than −∞. */
const flooredLog = (x: number) => (x === 0 ? -9999999999 : Math.log(x));

/** BLEU from summed statistics. */
export function computeBleu(stats: BleuStats, opts: BleuOptions = {}): BleuResult {
  const maxN = opts.maxNgramOrder ?? 4;
  const method = opts.smoothMethod ?? "exp";
  if (!(method in SMOOTH_DEFAULTS)) throw new Error(`BLEU: unknown smoothMethod ${JSON.stringify(method)}`);
  const smoothValue = opts.smoothValue ?? SMOOTH_DEFAULTS[method];
  const { sysLen, refLen } = stats;
  const counts = stats.counts.slice(0, maxN), totals = stats.totals.slice(0, maxN);
  const bp = sysLen < refLen ? (sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0) : 1;
  const precisions = new Array<number>(maxN).fill(0);
  const result = { counts, totals, precisions, bp, sysLen, refLen };
  if (counts.every((c) => c === 0)) return { score: 0, ...result };

  let smoothExp = 1, effOrder = maxN;
  for (let n = 1; n <= maxN; n++) {
    if (method === "add-k" && n > 1) {
      counts[n - 1] += smoothValue;
      totals[n - 1] += smoothValue;
    }
    if (totals[n - 1] === 0) break;
    if (opts.effectiveOrder) effOrder = n;
    if (counts[n - 1] === 0) {
      if (method === "exp") {
        smoothExp *= 2;
        precisions[n - 1] = 100 / (smoothExp * totals[n - 1]);
      } else if (method === "floor") precisions[n - 1] = (100 * smoothValue) / totals[n - 1];
    } else precisions[n - 1] = (100 * counts[n - 1]) / totals[n - 1];
  }
  let logSum = 0;
  for (let n = 0; n < effOrder; n++) logSum += flooredLog(precisions[n]);
  return { score: bp * Math.exp(logSum / effOrder), ...result };
}

/**
 * Corpus BLEU. `refs[k][i]` is the k-th reference of sentence i (SacreBLEU's layout: one array per
 * reference set). A reference may be null/undefined for some sentences (variable reference counts).
 */
export function corpusBleu(hyps: string[], refs: (string | null | undefined)[][], opts: BleuOptions = {}): BleuResult {
  if (refs.length === 0) throw new Error("corpusBleu: expected at least one reference set, got none");
  refs.forEach((set, k) => {
    if (set.length !== hyps.length) {
      throw new Error(`corpusBleu: ${hyps.length} hypotheses but reference set ${k} has ${set.length} sentences`);
    }
  });
  const maxN = opts.maxNgramOrder ?? 4;
  const sum: BleuStats = { sysLen: 0, refLen: 0, counts: new Array(maxN).fill(0), totals: new Array(maxN).fill(0) };
  hyps.forEach((hyp, i) => {
    let s: BleuStats;
    try {
      s = sentenceStats(hyp, refs.map((set) => set[i]), opts);
    } catch (e) {
      throw new Error(`corpusBleu: sentence ${i}: ${(e as Error).message}`);
    }
    sum.sysLen += s.sysLen;
    sum.refLen += s.refLen;
    for (let n = 0; n < maxN; n++) {
      sum.counts[n] += s.counts[n];
      sum.totals[n] += s.totals[n];
    }
  });
  return computeBleu(sum, opts);
}

/** Sentence BLEU like SacreBLEU's sentence_bleu: effective order on unless opts say otherwise. */
export function sentenceBleu(hyp: string, refs: string[], opts: BleuOptions = {}): BleuResult {
  const o = { effectiveOrder: true, ...opts };
  return computeBleu(sentenceStats(hyp, refs, o), o);
}

/**
 * `x` with `digits` decimals as Python's f"{x:.{digits}f}" writes it. JavaScript's toFixed and
 * Python agree except on exact ties (x = k + ½·10⁻ᵈ exactly in binary, e.g. 12.25 at 1 decimal):
 * Python rounds those to even ("12.2"), toFixed upward ("12.3").
 */
export function formatFixed(x: number, digits: number): string {
  const s = x.toFixed(digits);
  if (!Number.isFinite(x) || !isExactTie(Math.abs(x), digits)) return s;
  const last = s.charCodeAt(s.length - 1) - 48;
  // toFixed chose the upper neighbour; step down one unit when that made the last digit odd.
  return last % 2 === 1 ? s.slice(0, -1) + String(last - 1) : s;
}

/** Whether |x|·10ᵈ is exactly halfway between integers: x's lowest set bit is 2^−(d+1). */
function isExactTie(x: number, digits: number): boolean {
  if (x === 0 || Number.isInteger(x)) return false;
  let k = 0;
  for (let y = x; !Number.isInteger(y); y *= 2) k++; // exact: doubling never rounds
  return k === digits + 1;
}

/** SacreBLEU's one-line report: "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)". */
export function formatBleu(r: BleuResult, opts: { width?: number; signature?: string } = {}): string {
  const width = opts.width ?? 2;
  const ratio = r.refLen ? r.sysLen / r.refLen : 0;
  const prec = r.precisions.map((p) => formatFixed(p, 1)).join("/");
  const name = opts.signature ? `BLEU|${opts.signature}` : "BLEU";
  return (
    `${name} = ${formatFixed(r.score, width)} ${prec} (BP = ${formatFixed(r.bp, 3)} ` +
    `ratio = ${formatFixed(ratio, 3)} hyp_len = ${r.sysLen} ref_len = ${r.refLen})`
  );
}
