// Batches for language modelling: a token stream cut into windows of seqLen + 1 tokens (stride
// seqLen, so every token but the first is predicted once per epoch), each giving
//   input  = w[0 … seqLen−1]     target = w[1 … seqLen]          [B, seqLen] each
// Each epoch visits the windows in a seeded random order, `batchSize` at a time (the last batch of
// an epoch may be smaller). As with Batcher, the plan of an epoch is a pure function of
// (seed, epoch), so {seed, epoch, position} is all a checkpoint saves.
import { mulberry32, shuffleInPlace } from "../../core/index.ts";
import type { BatcherState } from "./batcher.ts";

export interface LMBatch {
  input: Int32Array; // [B, T]
  target: Int32Array; // [B, T]
  shape: [number, number];
  numTokens: number; // B · T: every target is a real token
  epoch: number;
  position: number;
}

export class LMBatcher {
  private readonly windows: number; // number of windows in the stream
  private seed: number;
  private epoch = 0;
  private position = 0;
  private cached: { seed: number; epoch: number; order: Int32Array } | undefined;

  constructor(private readonly stream: Int32Array, readonly seqLen: number, readonly batchSize: number, opts: { seed?: number; shuffle?: boolean } = {}) {
    if (!Number.isInteger(seqLen) || seqLen < 1) throw new Error(`LMBatcher: seqLen must be an integer >= 1, got ${seqLen}`);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`LMBatcher: batchSize must be an integer >= 1, got ${batchSize}`);
    this.windows = Math.floor((stream.length - 1) / seqLen);
    if (this.windows < 1) throw new Error(`LMBatcher: a stream of ${stream.length} tokens holds no window of ${seqLen} + 1 tokens`);
    this.seed = opts.seed ?? 0;
    this.shuffle = opts.shuffle ?? true;
    checkSeed(this.seed);
  }
  private readonly shuffle: boolean;

  get numWindows(): number {
    return this.windows;
  }

  get batchesInEpoch(): number {
    return Math.ceil(this.windows / this.batchSize);
  }

  getState(): BatcherState {
    return { seed: this.seed, epoch: this.epoch, position: this.position };
  }

  setState(s: BatcherState): void {
    checkSeed(s.seed);
    if (!Number.isInteger(s.epoch) || s.epoch < 0) throw new Error(`LMBatcher.setState: epoch must be an integer >= 0, got ${s.epoch}`);
    if (!Number.isInteger(s.position) || s.position < 0 || s.position > this.batchesInEpoch) {
      throw new Error(`LMBatcher.setState: position must be an integer in [0, ${this.batchesInEpoch}], got ${s.position}`);
    }
    this.seed = s.seed;
    this.epoch = s.epoch;
    this.position = s.position;
  }

  next(): LMBatch {
    if (this.position >= this.batchesInEpoch) {
      this.epoch++;
      this.position = 0;
    }
    const order = this.order();
    const from = this.position * this.batchSize, to = Math.min(this.windows, from + this.batchSize);
    const B = to - from, T = this.seqLen;
    const input = new Int32Array(B * T), target = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const start = order[from + b] * T;
      input.set(this.stream.subarray(start, start + T), b * T);
      target.set(this.stream.subarray(start + 1, start + T + 1), b * T);
    }
    const batch: LMBatch = { input, target, shape: [B, T], numTokens: B * T, epoch: this.epoch, position: this.position };
    this.position++;
    return batch;
  }

  // Every batch of one epoch in order (for validation: an unshuffled batcher gives the stream order).
  *epochBatches(): Generator<LMBatch> {
    const epoch = this.epoch;
    while (this.epoch === epoch && this.position < this.batchesInEpoch) yield this.next();
  }

  private order(): Int32Array {
    const c = this.cached;
    if (c && c.seed === this.seed && c.epoch === this.epoch) return c.order;
    const order = new Int32Array(this.windows);
    for (let i = 0; i < order.length; i++) order[i] = i;
    if (this.shuffle) shuffleInPlace(order, mulberry32((this.seed ^ Math.imul(this.epoch + 1, 0x9e3779b9)) >>> 0));
    this.cached = { seed: this.seed, epoch: this.epoch, order };
    return order;
  }
}

function checkSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`LMBatcher: seed must be an integer in [0, 2^32), got ${seed}`);
}
