// Token-budget batching for sequence-to-sequence training.
//
// Each epoch: shuffle the examples (seeded), stable-sort them by length so that neighbours have
// similar lengths (little padding), cut the sorted list greedily into batches whose padded size
// B · max(S, T) stays within maxTokens, then shuffle the order of the batches. The plan of an epoch
// is a pure function of (seed, epoch), so the state {seed, epoch, position} is all a training run
// must save to resume on exactly the same batch sequence.
//
// Who adds bos/eos: the batcher. A pair (x, y) becomes
//   src    = x                      [B, S]  (no bos/eos)
//   tgtIn  = bos y₁ … yₙ            [B, T]  decoder input (teacher forcing)
//   tgtOut = y₁ … yₙ eos            [B, T]  what the decoder must predict at each position
// with T = max n + 1, every row right-padded with padId. A model therefore never adds them itself.
import { mulberry32, shuffleInPlace } from "../../core/index.ts";

export interface Example {
  src: ArrayLike<number>;
  tgt: ArrayLike<number>;
}

export interface BatcherOptions {
  /** Largest padded size B · max(S, T) of a batch (e.g. 4096). */
  maxTokens: number;
  padId: number;
  bosId: number;
  eosId: number;
  /** Seed of the data order (default 0). */
  seed?: number;
  /** Shuffle examples of equal length and the order of batches each epoch (default true). With
   *  false, batches come sorted by length, the same every epoch: use it for evaluation. */
  shuffle?: boolean;
  /** Optional cap on the number of sentences in a batch. */
  maxBatchSize?: number;
}

export interface BatcherState {
  seed: number;
  epoch: number;
  /** Number of batches of `epoch` already handed out. */
  position: number;
}

export interface Batch {
  src: Int32Array;
  tgtIn: Int32Array;
  tgtOut: Int32Array;
  srcShape: [number, number];
  tgtShape: [number, number];
  padId: number;
  /** Which examples (positions in the array given to the Batcher) fill rows 0..B-1. */
  indices: number[];
  /** Unpadded lengths: src rows, and target rows including the bos/eos (n + 1). */
  srcLengths: number[];
  tgtLengths: number[];
  /** Non-pad target tokens, Σ (n + 1): the count a per-token loss averages over. */
  numTokens: number;
  epoch: number;
  /** Index of this batch within its epoch. */
  position: number;
}

export class Batcher {
  private readonly examples: Example[];
  private readonly opts: Required<Omit<BatcherOptions, "maxBatchSize">> & { maxBatchSize: number };
  private seed: number;
  private epoch = 0;
  private position = 0;
  private cached: { seed: number; epoch: number; plan: number[][] } | undefined;

  constructor(examples: Example[], options: BatcherOptions) {
    const { maxTokens, padId, bosId, eosId, seed = 0, shuffle = true, maxBatchSize = Infinity } = options;
    if (examples.length === 0) throw new Error("Batcher: no examples to batch");
    if (!(maxTokens >= 1)) throw new Error(`Batcher: maxTokens must be >= 1, got ${maxTokens}`);
    if (!(maxBatchSize >= 1)) throw new Error(`Batcher: maxBatchSize must be >= 1, got ${maxBatchSize}`);
    checkSeed(seed);
    examples.forEach((ex, i) => {
      const cost = padLen(ex);
      if (cost > maxTokens) {
        throw new Error(
          `Batcher: example ${i} alone needs ${cost} padded tokens (src ${ex.src.length}, tgt ${ex.tgt.length} + 1) ` +
            `but maxTokens is ${maxTokens}; drop long pairs with filterByLength first`,
        );
      }
    });
    this.examples = examples;
    this.opts = { maxTokens, padId, bosId, eosId, seed, shuffle, maxBatchSize };
    this.seed = seed;
  }

  get numExamples(): number {
    return this.examples.length;
  }

  /** Number of batches in the current epoch (it can differ slightly between epochs). */
  get batchesInEpoch(): number {
    return this.plan().length;
  }

  getState(): BatcherState {
    return { seed: this.seed, epoch: this.epoch, position: this.position };
  }

  /** Resume from a saved state; the following batches equal those that followed when it was saved. */
  setState(state: BatcherState): void {
    const { seed, epoch, position } = state;
    checkSeed(seed);
    if (!Number.isInteger(epoch) || epoch < 0) throw new Error(`Batcher.setState: epoch must be an integer >= 0, got ${epoch}`);
    const n = this.planFor(seed, epoch).length;
    if (!Number.isInteger(position) || position < 0 || position > n) {
      throw new Error(`Batcher.setState: position must be an integer in [0, ${n}] for epoch ${epoch}, got ${position}`);
    }
    this.seed = seed;
    this.epoch = epoch;
    this.position = position;
  }

  /** The next batch; after the last batch of an epoch comes the first of the next. */
  next(): Batch {
    if (this.position >= this.plan().length) {
      this.epoch++;
      this.position = 0;
    }
    const batch = this.build(this.plan()[this.position], this.position);
    this.position++;
    return batch;
  }

  /** The remaining batches of the current epoch (all of the next one when the current is done). */
  *epochBatches(): Generator<Batch> {
    if (this.position >= this.plan().length) {
      this.epoch++;
      this.position = 0;
    }
    const epoch = this.epoch;
    while (this.epoch === epoch && this.position < this.plan().length) yield this.next();
  }

  private plan(): number[][] {
    return this.planFor(this.seed, this.epoch);
  }

  private planFor(seed: number, epoch: number): number[][] {
    const c = this.cached;
    if (c !== undefined && c.seed === seed && c.epoch === epoch) return c.plan;
    const { maxTokens, shuffle, maxBatchSize } = this.opts;
    const order = Array.from(this.examples.keys());
    // One generator per (seed, epoch): any epoch's plan can be rebuilt without replaying earlier ones.
    const random = mulberry32(mixSeed(seed, epoch));
    if (shuffle) shuffleInPlace(order, random);
    // Sort by padded length then source length; Array.prototype.sort is stable, so equal lengths
    // keep their shuffled order.
    const rank = this.examples.map((ex) => padLen(ex) * 65536 + Math.min(ex.src.length, 65535));
    order.sort((a, b) => rank[a] - rank[b]);
    const plan: number[][] = [];
    let cur: number[] = [], width = 0;
    for (const i of order) {
      const w = Math.max(width, padLen(this.examples[i]));
      if (cur.length > 0 && ((cur.length + 1) * w > maxTokens || cur.length + 1 > maxBatchSize)) {
        plan.push(cur);
        cur = [];
        width = 0;
      }
      cur.push(i);
      width = Math.max(width, padLen(this.examples[i]));
    }
    if (cur.length > 0) plan.push(cur);
    if (shuffle) shuffleInPlace(plan, random);
    this.cached = { seed, epoch, plan };
    return plan;
  }

  private build(indices: number[], position: number): Batch {
    const { padId, bosId, eosId } = this.opts;
    const B = indices.length;
    const rows = indices.map((i) => this.examples[i]);
    // Widths by a loop, not Math.max(...lengths): a spread passes one argument per row, and a
    // batch of many short rows must not run into the engine's argument limit.
    let S = 1; // at least 1: no zero-width tensors
    let T = 1;
    for (const r of rows) {
      S = Math.max(S, r.src.length);
      T = Math.max(T, r.tgt.length + 1);
    }
    const src = new Int32Array(B * S).fill(padId);
    const tgtIn = new Int32Array(B * T).fill(padId);
    const tgtOut = new Int32Array(B * T).fill(padId);
    let numTokens = 0;
    rows.forEach(({ src: x, tgt: y }, b) => {
      for (let j = 0; j < x.length; j++) src[b * S + j] = x[j];
      tgtIn[b * T] = bosId;
      for (let j = 0; j < y.length; j++) {
        tgtIn[b * T + j + 1] = y[j];
        tgtOut[b * T + j] = y[j];
      }
      tgtOut[b * T + y.length] = eosId;
      numTokens += y.length + 1;
    });
    return {
      src,
      tgtIn,
      tgtOut,
      srcShape: [B, S],
      tgtShape: [B, T],
      padId,
      indices: [...indices],
      srcLengths: rows.map((r) => r.src.length),
      tgtLengths: rows.map((r) => r.tgt.length + 1),
      numTokens,
      epoch: this.epoch,
      position,
    };
  }
}

/** Padded width one example needs: max(source length, target length + 1). */
function padLen(ex: Example): number {
  return Math.max(1, ex.src.length, ex.tgt.length + 1);
}

function checkSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new Error(`Batcher: seed must be an integer in [0, 2^32), got ${seed}`);
  }
}

/** Combine seed and epoch into one 32-bit generator seed (golden-ratio step per epoch). */
function mixSeed(seed: number, epoch: number): number {
  return (seed ^ Math.imul(epoch + 1, 0x9e3779b9)) >>> 0;
}
