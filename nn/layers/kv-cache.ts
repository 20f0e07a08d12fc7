// Incremental decoding state. A KVCache holds one attention layer's keys and values for every
// position decoded so far, k, v: [B, H, T, Dh]; a DecoderCache holds one per layer (plus the
// cross-attention keys/values of the encoder memory, computed once).
//
// Operations search algorithms need: append (one more step), truncate (roll back rejected
// speculative tokens), reorder (beam search keeps, for each new hypothesis, its parent's state).
// Truncation moves a length and copies nothing: the rolled-back positions stay in the buffers,
// past the length, until the next append writes the new positions after the kept ones (one copy,
// catAfterPrefix, as an append always was) or a reader asks for the keys (a copy of the kept
// ones, once). Speculative decoding rolls back after every verification; copying the whole cache
// there cost as much as the append itself.
// Cached tensors are keep()-ed, so they survive the tidy() of each decoding step; replacing one
// frees the old buffer. The cache is inference-only: appending tensors that carry a gradient
// graph would free buffers the graph still needs, so that is refused.
import { catAfterPrefix, fmt, isGradEnabled, keep, tensor, type Tensor } from "../../core/index.ts";

function checkIndex(who: string, index: Tensor): void {
  if (index.dtype !== "int32" || index.ndim !== 1) throw new Error(`${who}: index must be a 1-D int32 tensor of batch rows, got ${index.dtype}${fmt(index.shape)}`);
}

export class KVCache {
  private k: Tensor | undefined; // [B, H, P, Dh]: positions [0, len) are the cache, the rest rolled back
  private v: Tensor | undefined;
  private len = 0; // the cache's length (≤ P)
  private bias: Tensor | undefined; // [B, H, 1, T]: see keyBias

  get length(): number {
    return this.k ? this.len : 0;
  }
  get batchSize(): number | undefined {
    return this.k?.shape[0];
  }
  // [B, H, T, Dh], exactly the cache's positions (the rolled-back ones are dropped here, once).
  get keys(): Tensor | undefined {
    this.compact();
    return this.k;
  }
  get values(): Tensor | undefined {
    this.compact();
    return this.v;
  }
  // Cross-attention: the additive key-padding bias of the memory these keys came from, made once
  // with them (not again every step), [B, H, 1, T]: the shape of one query's scores, so adding
  // it is a plain element-wise add. Reordered and cleared with the keys.
  get keyBias(): Tensor | undefined {
    return this.bias;
  }
  setKeyBias(bias: Tensor): void {
    this.compact();
    if (!this.k || bias.shape.join() !== [this.k.shape[0], this.k.shape[1], 1, this.k.shape[2]].join()) {
      throw new Error(`KVCache.setKeyBias: expected [B, H, 1, T] for keys ${this.k ? fmt(this.k.shape) : "(none)"}, got ${fmt(bias.shape)}`);
    }
    keep(bias);
    if (this.bias !== bias) this.bias?.dispose();
    this.bias = bias;
  }

  // Appends new positions k, v: [B, H, Tnew, Dh]; returns the full [B, H, T + Tnew, Dh] pair.
  append(k: Tensor, v: Tensor): [Tensor, Tensor] {
    if (isGradEnabled() && (k.requiresGrad || v.requiresGrad)) {
      throw new Error("KVCache: incremental decoding is inference-only; run it under noGrad()");
    }
    if (k.ndim !== 4 || k.shape.join() !== v.shape.join()) throw new Error(`KVCache.append: expected k, v of equal shape [B, H, T, Dh], got ${fmt(k.shape)} and ${fmt(v.shape)}`);
    if (this.k && (this.k.shape[0] !== k.shape[0] || this.k.shape[1] !== k.shape[1] || this.k.shape[3] !== k.shape[3])) {
      throw new Error(`KVCache.append: cached ${fmt(this.k.shape)} cannot take ${fmt(k.shape)} (B, H and Dh must match)`);
    }
    // the kept positions and the new ones, in one copy (the rolled-back ones are skipped)
    const nk = this.k ? catAfterPrefix(this.k, this.len, k, 2) : k;
    const nv = this.v ? catAfterPrefix(this.v, this.len, v, 2) : v;
    this.replace(nk, nv);
    return [nk, nv];
  }

  // Keeps the first `length` positions (speculative decoding rolls rejected tokens back): moves
  // the length, copies nothing.
  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.length) {
      throw new Error(`KVCache.truncate: length must be an integer in [0, ${this.length}], got ${length}`);
    }
    if (!this.k || length === this.length) return;
    if (length === 0) return this.clear();
    this.len = length;
    // a key bias describes all the positions it was made with
    this.bias?.dispose();
    this.bias = undefined;
  }

  // Keeps the listed positions, in that order: the cache becomes positions.length long. After a
  // token tree is verified in one pass, speculative decoding keeps the cache before the tree and
  // the accepted path's nodes, which need not be contiguous.
  select(positions: ArrayLike<number>): void {
    const n = this.length;
    let prefix = 0; // positions 0 … prefix − 1 kept in place need no copy when that is all
    for (let i = 0; i < positions.length; i++) {
      const p = positions[i];
      if (!Number.isInteger(p) || p < 0 || p >= n) throw new Error(`KVCache.select: position ${p} is outside the cache [0, ${n})`);
      if (p === i && prefix === i) prefix++;
    }
    if (prefix === positions.length) return this.truncate(prefix);
    // positions < len: read from the buffers as they are, rolled-back tail and all
    const idx = tensor(Int32Array.from(positions), { dtype: "int32", backend: this.k!.backend });
    try {
      this.replace(this.k!.indexSelect(2, idx), this.v!.indexSelect(2, idx));
    } finally {
      idx.dispose();
    }
  }

  // Row i of the new cache is row index[i] of the old one (beam search: hypothesis i continues
  // from parent index[i]). The batch size may change (e.g. expanding B sources to B·beam rows).
  reorder(index: Tensor): void {
    checkIndex("KVCache.reorder", index);
    if (!this.k) return;
    this.compact();
    const bias = this.bias?.indexSelect(0, index);
    this.replace(this.k.indexSelect(0, index), this.v!.indexSelect(0, index));
    if (bias) this.setKeyBias(bias);
  }

  clear(): void {
    this.k?.dispose();
    this.v?.dispose();
    this.bias?.dispose();
    this.k = this.v = this.bias = undefined;
    this.len = 0;
  }

  dispose(): void {
    this.clear();
  }

  // Drops the rolled-back positions from the buffers (for readers that take them whole).
  private compact(): void {
    if (this.k && this.len < this.k.shape[2]) this.replace(this.k.narrow(2, 0, this.len), this.v!.narrow(2, 0, this.len));
  }

  private replace(k: Tensor, v: Tensor): void {
    keep(k);
    keep(v);
    // a key bias describes these keys only: other rows or positions drop it
    if (this.bias && (this.bias.shape[0] !== k.shape[0] || this.bias.shape[3] !== k.shape[2])) {
      this.bias.dispose();
      this.bias = undefined;
    }
    if (this.k !== k) this.k?.dispose();
    if (this.v !== v) this.v?.dispose();
    this.k = k;
    this.v = v;
    this.len = k.shape[2];
  }
}

// One self-attention cache per decoder layer, and (encoder-decoder models) one cross-attention
// cache per layer that is filled from the memory on the first step and never grows.
export class DecoderCache {
  readonly self: KVCache[];
  readonly cross: KVCache[] | undefined;

  constructor(layers: number, opts: { cross?: boolean } = {}) {
    this.self = Array.from({ length: layers }, () => new KVCache());
    this.cross = opts.cross ? Array.from({ length: layers }, () => new KVCache()) : undefined;
  }

  // Number of target positions decoded so far (the position of the next token).
  get length(): number {
    return this.self[0]?.length ?? 0;
  }

  truncate(length: number): void {
    for (const c of this.self) c.truncate(length);
  }

  // Keeps the listed positions of every self-attention cache, in that order (KVCache.select).
  select(positions: ArrayLike<number>): void {
    for (const c of this.self) c.select(positions);
  }

  // Reorders self and cross caches alike. The caller reorders its own copies of the memory and
  // its padding mask with the same index.
  reorder(index: Tensor): void {
    checkIndex("DecoderCache.reorder", index);
    for (const c of this.self) c.reorder(index);
    for (const c of this.cross ?? []) c.reorder(index);
  }

  dispose(): void {
    for (const c of this.self) c.dispose();
    for (const c of this.cross ?? []) c.dispose();
  }
}
