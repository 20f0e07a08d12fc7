// Learning BPE merges (Sennrich et al. 2016) with incremental pair counts.
//
// The corpus is reduced to its distinct words with their frequencies. Each word is a sequence of
// symbol ids; a pair (a, b) of adjacent symbols has count Σ_words freq(word) · occurrences(a b).
// Each step merges the most frequent pair into a new symbol. Recounting every pair after every
// merge costs O(corpus) per merge; instead only the words that contain the merged pair are
// touched: their old pairs are subtracted, the merge applied, their new pairs added. A max-heap
// with lazy deletion (an entry is stale when its count differs from the live count) finds the best
// pair, so a merge costs O(words touched · word length · log heap).

/** Symbols with id >= firstMergeable take part in merges; smaller ids (specials, byte fallback) are barriers. */
export interface LearnOptions {
  /** Stop when the vocabulary (including the fixed ids below firstMergeable) reaches this size. */
  vocabSize: number;
  /** Stop when the best pair occurs fewer times than this. */
  minFrequency: number;
  firstMergeable: number;
}

export interface LearnedMerges {
  /** Merges in rank order, as pairs of token strings. */
  merges: [string, string][];
}

/**
 * Learn merges over `words` (each a sequence of initial symbol ids with a frequency).
 * `tokens[id]` is the surface string of every initial id; `isReserved(s)` rejects a merge whose
 * string would collide with a reserved name (special or byte token). Mutates `tokens`.
 */
export function learnMerges(
  words: number[][],
  freqs: number[],
  tokens: string[],
  isReserved: (s: string) => boolean,
  opts: LearnOptions,
): LearnedMerges {
  const { vocabSize, minFrequency, firstMergeable } = opts;
  // Pair key a·stride + b: stays a small integer (fast Map key) while ids < stride.
  const stride = Math.max(vocabSize, tokens.length) + 1;
  const key = (a: number, b: number) => a * stride + b;
  const index = new Map<string, number>();
  tokens.forEach((t, i) => index.set(t, i));

  const count = new Map<number, number>();
  const where = new Map<number, number[]>(); // pair → words that contain (or once contained) it
  const addPairs = (w: number, sign: number, delta: Map<number, number>, only = -1) => {
    const seq = words[w];
    const f = freqs[w] * sign;
    for (let i = 0; i + 1 < seq.length; i++) {
      const a = seq[i], b = seq[i + 1];
      if (a < firstMergeable || b < firstMergeable) continue;
      const k = key(a, b);
      delta.set(k, (delta.get(k) ?? 0) + f);
      if (sign > 0 && (only < 0 || a === only || b === only)) {
        let list = where.get(k);
        if (list === undefined) where.set(k, (list = []));
        list.push(w);
      }
    }
  };

  const heap = new PairHeap();
  const initial = new Map<number, number>();
  for (let w = 0; w < words.length; w++) addPairs(w, 1, initial);
  for (const [k, c] of initial) {
    count.set(k, c);
    heap.push(c, k);
  }

  const merges: [string, string][] = [];
  const ranked = new Set<number>();
  const forbidden = new Set<number>();
  const visited = new Int32Array(words.length).fill(-1);
  let step = 0;
  while (tokens.length < vocabSize) {
    // Pop until a live entry: its count is current and the pair may merge.
    let best = -1, bestCount = 0;
    while (heap.size > 0) {
      const [c, k] = heap.pop();
      if (count.get(k) !== c || forbidden.has(k)) continue;
      best = k;
      bestCount = c;
      break;
    }
    if (best < 0 || bestCount < minFrequency) break;
    const a = Math.floor(best / stride), b = best % stride;
    const merged = tokens[a] + tokens[b];
    if (isReserved(merged)) {
      forbidden.add(best);
      continue;
    }
    // The same string can arise from different splits ("▁a"+"b" then "▁"+"ab"): reuse its id, so
    // every string has one id. A pair merged before and formed again later is applied, not re-ranked.
    let c = index.get(merged);
    if (c === undefined) {
      c = tokens.length;
      tokens.push(merged);
      index.set(merged, c);
    }
    if (!ranked.has(best)) {
      ranked.add(best);
      merges.push([tokens[a], tokens[b]]);
    }

    const delta = new Map<number, number>();
    for (const w of where.get(best) ?? []) {
      if (visited[w] === step) continue;
      visited[w] = step;
      const seq = words[w];
      if (!containsPair(seq, a, b)) continue;
      addPairs(w, -1, delta);
      words[w] = mergePair(seq, a, b, c);
      addPairs(w, 1, delta, c);
    }
    where.delete(best);
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const n = (count.get(k) ?? 0) + d;
      if (n > 0) {
        count.set(k, n);
        heap.push(n, k);
      } else count.delete(k);
    }
    step++;
  }
  return { merges };
}

function containsPair(seq: number[], a: number, b: number): boolean {
  for (let i = 0; i + 1 < seq.length; i++) if (seq[i] === a && seq[i + 1] === b) return true;
  return false;
}

/** Replace every non-overlapping occurrence of (a, b), left to right, by c. */
export function mergePair(seq: number[], a: number, b: number, c: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < seq.length; i++) {
    if (i + 1 < seq.length && seq[i] === a && seq[i + 1] === b) {
      out.push(c);
      i++;
    } else out.push(seq[i]);
  }
  return out;
}

/** Binary max-heap of (count, key); ties go to the smaller key, so training is deterministic. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i], cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i], k = this.keys[i];
    this.counts[i] = this.counts[j];
    this.keys[i] = this.keys[j];
    this.counts[j] = c;
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lastC = this.counts.pop()!, lastK = this.keys.pop()!;
    if (this.counts.length > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < this.counts.length && this.above(l, m)) m = l;
        if (r < this.counts.length && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}
