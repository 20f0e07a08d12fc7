// Position information added to token embeddings: a fixed sinusoidal table (Vaswani et al.
// 2017, §3.5) or a learned one. Both return rows [offset, offset + length) of a [maxLen, D] table;
// the offset is how incremental decoding asks for the position of the next token. The sinusoidal
// formula has no end: rows past its table are computed on demand, so decoding can run past the
// training maxLen (`bounded` says which kind a model has); learned positions stop at maxLen.
import { defaultGenerator, type Generator, keep, tensor, type Tensor } from "../../core/index.ts";
import { normal } from "../init.ts";
import { Module } from "../module.ts";

function checkRange(who: string, length: number, offset: number, maxLen: number): void {
  if (!Number.isInteger(length) || !Number.isInteger(offset) || length < 0 || offset < 0) {
    throw new Error(`${who}: expected a length and an offset that are integers >= 0, got ${length} and ${offset}`);
  }
  if (offset + length > maxLen) throw new Error(`${who}: positions [${offset}, ${offset + length}) exceed maxLen ${maxLen}`);
}

export abstract class PositionalEncoding extends Module {
  constructor(readonly maxLen: number, readonly dim: number) {
    super();
  }
  // false: any position p ≥ 0 has a row (maxLen is only the size of a precomputed table).
  readonly bounded: boolean = true;
  // → [length, D]
  abstract forward(length: number, offset?: number): Tensor;

  // Rows at arbitrary positions p₀ … p_{T−1} → [T, D]. The tokens of a tree verified in one pass
  // sit at position cache.length + depth, not at consecutive positions.
  select(positions: ArrayLike<number>): Tensor {
    const all = this.forward(this.maxLen, 0);
    return all.indexSelect(0, indexOf(positions, this.maxLen, all));
  }
}

// Host positions as an int32 index on the table's backend, each checked against maxLen.
function indexOf(positions: ArrayLike<number>, maxLen: number, like: Tensor): Tensor {
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i];
    if (!Number.isInteger(p) || p < 0 || p >= maxLen) throw new Error(`PositionalEncoding.select: position ${p} is outside [0, ${maxLen})`);
  }
  return tensor(Int32Array.from(positions), { dtype: "int32", backend: like.backend });
}

// PE[p, 2i] = sin(p / 10000^(2i/D)),  PE[p, 2i+1] = cos(p / 10000^(2i/D)). Each pair of dims is a
// rotation at its own frequency, so PE[p + k] is a fixed linear function of PE[p]: relative
// offsets are easy for attention to read. Not a parameter: it is not saved in the state dict.
export class SinusoidalPositions extends PositionalEncoding {
  override readonly bounded = false;
  private readonly table: Tensor; // [maxLen, D]

  constructor(maxLen: number, dim: number) {
    super(maxLen, dim);
    this.table = keep(tensor(sinusoidalRows(0, maxLen, dim), { shape: [maxLen, dim] }));
  }

  // Rows inside the table are narrowed from it; rows past it come from the same formula (the same
  // float32 values the table would hold), so a sequence may be longer than maxLen.
  forward(length: number, offset = 0): Tensor {
    checkRange("SinusoidalPositions", length, offset, Infinity);
    if (offset + length <= this.maxLen) return this.table.narrow(0, offset, length);
    return tensor(sinusoidalRows(offset, length, this.dim), { shape: [length, this.dim], backend: this.table.backend });
  }

  override select(positions: ArrayLike<number>): Tensor {
    return this.table.indexSelect(0, indexOf(positions, this.maxLen, this.table));
  }

  protected override disposeExtra(): void {
    this.table.dispose();
  }
}

// Rows [offset, offset + length) of the sinusoidal table, computed in float64 and rounded once.
function sinusoidalRows(offset: number, length: number, dim: number): Float32Array {
  const a = new Float32Array(length * dim);
  for (let r = 0; r < length; r++) {
    const p = offset + r;
    for (let i = 0; i < dim; i += 2) {
      const angle = p / Math.pow(10000, i / dim);
      a[r * dim + i] = Math.sin(angle);
      if (i + 1 < dim) a[r * dim + i + 1] = Math.cos(angle);
    }
  }
  return a;
}

export class LearnedPositions extends PositionalEncoding {
  readonly weight: Tensor; // [maxLen, D]

  constructor(maxLen: number, dim: number, opts: { std?: number; generator?: Generator } = {}) {
    super(maxLen, dim);
    const std = opts.std ?? dim ** -0.5;
    this.weight = this.registerParameter("weight", normal([maxLen, dim], std, opts.generator ?? defaultGenerator()));
  }

  forward(length: number, offset = 0): Tensor {
    checkRange("LearnedPositions", length, offset, this.maxLen);
    return this.weight.narrow(0, offset, length);
  }

  override select(positions: ArrayLike<number>): Tensor {
    return this.weight.indexSelect(0, indexOf(positions, this.maxLen, this.weight));
  }
}
