// Incremental decoding state of a decoder that attends to a window of the last `order` positions
// (the Markov Transformer): per layer, a ring buffer of keys and values, k, v: [B, H, C, Dh], where
// position p lives in slot p mod C. Its size never changes, so memory is independent of position
// and every step allocates the same amount: a step does not grow anything.
//
//   C = order + rollback        rollback: how many positions truncate() may take back (default 0)
//
// A decoding step (one new position n) first writes its keys into slot n mod C, one select,
//   ring ← where(slot == n mod C, new, ring),
// then attends over the C slots: with C = k these hold exactly the window n − k + 1 … n, so once
// the ring is full no mask is needed at all. A step of T > 1 new positions (a prompt, speculative
// drafts) attends over the C slots followed by the T new keys, then writes them with one gather
// over that concatenation: ring ← cat(ring, new)[:, :, index], index[s] = C + i where position
// n + i lands in slot s, and s elsewhere. Either way a slot's position (keyPositions, −1 when
// empty) lets the model mask what lies outside each query's window, so the order of slots never
// matters (softmax attention is permutation-invariant over its keys).
//
// The cross-attention keys/values of the encoder memory are computed on the first step and kept
// (KVCache), as in DecoderCache. Cached tensors are keep()-ed; replacing one frees the old one.
import { cat, fmt, isGradEnabled, keep, tensor, type Tensor, where, zeros } from "../../core/index.ts";
import { KVCache } from "./kv-cache.ts";

export class RingKVCache {
  readonly order: number;
  readonly rollback: number;
  readonly capacity: number; // C
  readonly cross: KVCache[];
  private readonly k: (Tensor | undefined)[]; // per layer [B, H, C, Dh]
  private readonly v: (Tensor | undefined)[];
  private readonly slotPos: Int32Array; // [C]: the position each slot holds, −1 when empty
  private readonly slotMasks: (Tensor | undefined)[]; // [C, 1], 1 at slot s: made on the first step
  private len = 0;

  constructor(layers: number, order: number, opts: { rollback?: number; cross?: boolean } = {}) {
    const rollback = opts.rollback ?? 0;
    if (!Number.isInteger(order) || order < 1) throw new Error(`RingKVCache: order must be an integer >= 1, got ${order}`);
    if (!Number.isInteger(rollback) || rollback < 0) throw new Error(`RingKVCache: rollback must be an integer >= 0, got ${rollback}`);
    this.order = order;
    this.rollback = rollback;
    this.capacity = order + rollback;
    this.k = new Array<Tensor | undefined>(layers).fill(undefined);
    this.v = new Array<Tensor | undefined>(layers).fill(undefined);
    this.cross = (opts.cross ?? true) ? Array.from({ length: layers }, () => new KVCache()) : [];
    this.slotPos = new Int32Array(this.capacity).fill(-1);
    this.slotMasks = new Array<Tensor | undefined>(this.capacity).fill(undefined);
  }

  // Positions decoded so far: the position of the next token.
  get length(): number {
    return this.len;
  }

  get batchSize(): number | undefined {
    return this.k[0]?.shape[0];
  }

  // The positions of the keys a step of `count` new positions attends over, in the order
  // append() returns them (−1 where a slot is empty): for one position, the C slots after its
  // write; for more, the C slots before the step, then length … length + count − 1.
  keyPositions(count: number): Int32Array {
    if (count === 1) {
      const out = Int32Array.from(this.slotPos);
      out[this.len % this.capacity] = this.len;
      return out;
    }
    const out = new Int32Array(this.capacity + count);
    out.set(this.slotPos);
    for (let i = 0; i < count; i++) out[this.capacity + i] = this.len + i;
    return out;
  }

  // Layer `layer` of the current step: new keys/values k, v: [B, H, T, Dh] for positions
  // length … length + T − 1 → the keys and values to attend over, [B, H, C, Dh] for T = 1 and
  // [B, H, C + T, Dh] otherwise (see keyPositions). The ring now holds the new positions; call
  // advance(T) once every layer has appended.
  append(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    if (isGradEnabled() && (k.requiresGrad || v.requiresGrad)) {
      throw new Error("RingKVCache: incremental decoding is inference-only; run it under noGrad()");
    }
    if (!(layer >= 0 && layer < this.k.length)) throw new Error(`RingKVCache.append: layer ${layer} is not in [0, ${this.k.length})`);
    if (k.ndim !== 4 || k.shape.join() !== v.shape.join()) throw new Error(`RingKVCache.append: expected k, v of equal shape [B, H, T, Dh], got ${fmt(k.shape)} and ${fmt(v.shape)}`);
    const [b, h, t, dh] = k.shape;
    const C = this.capacity;
    let ringK = this.k[layer], ringV = this.v[layer];
    const fresh = !ringK || !ringV;
    if (!ringK || !ringV) {
      // The first step: empty slots (position −1, always masked) hold zeros.
      ringK = zeros([b, h, C, dh], { backend: k.backend });
      ringV = zeros([b, h, C, dh], { backend: k.backend });
    } else if (ringK.shape[0] !== b || ringK.shape[1] !== h || ringK.shape[3] !== dh) {
      throw new Error(`RingKVCache.append: the ring ${fmt(ringK.shape)} cannot take ${fmt(k.shape)} (B, H and Dh must match)`);
    }
    if (t === 1) {
      const s = this.len % C;
      if (!this.slotMasks[s]) {
        // All C masks at once, so that after the first step nothing more is ever allocated.
        for (let j = 0; j < C; j++) this.slotMasks[j] ??= keep(tensor(Float32Array.from({ length: C }, (_, i) => (i === j ? 1 : 0)), { shape: [C, 1], backend: k.backend }));
      }
      const m = this.slotMasks[s]!;
      const nk = where(m, k, ringK), nv = where(m, v, ringV); // [B, H, C, Dh], slot s replaced
      if (fresh) {
        ringK.dispose();
        ringV.dispose();
      }
      this.replace(layer, nk, nv);
      return [nk, nv];
    }
    const allK = cat([ringK, k], 2), allV = cat([ringV, v], 2); // [B, H, C + T, Dh]
    if (fresh) {
      ringK.dispose();
      ringV.dispose();
    }
    const index = new Int32Array(C);
    for (let s = 0; s < C; s++) index[s] = s;
    for (let i = 0; i < t; i++) index[(this.len + i) % C] = C + i; // later positions overwrite earlier ones
    const idx = tensor(index, { dtype: "int32", backend: k.backend });
    this.replace(layer, allK.indexSelect(2, idx), allV.indexSelect(2, idx));
    idx.dispose();
    return [allK, allV];
  }

  // Ends a step of `count` positions (after every layer appended them).
  advance(count: number): void {
    for (let i = 0; i < count; i++) this.slotPos[(this.len + i) % this.capacity] = this.len + i;
    this.len += count;
  }

  // Rolls back to `length` positions. The next step needs positions length − order … length − 1,
  // and the ring holds a run of consecutive positions ending at length − 1 (at most C of them, fewer
  // after a rollback), so only the last `rollback` positions can be taken back (or all of them:
  // truncate(0) clears).
  truncate(length: number): void {
    let oldest = this.len;
    for (const p of this.slotPos) if (p >= 0 && p < oldest) oldest = p;
    const lo = oldest === 0 ? 0 : Math.min(this.len, oldest + this.order);
    if (!Number.isInteger(length) || length > this.len || (length < lo && length !== 0)) {
      throw new Error(`RingKVCache.truncate: length must be 0 or an integer in [${lo}, ${this.len}] (the ring keeps ${this.rollback} position(s) to roll back), got ${length}`);
    }
    if (length === 0) return this.clearSelf();
    for (let s = 0; s < this.capacity; s++) if (this.slotPos[s] >= length) this.slotPos[s] = -1;
    this.len = length;
  }

  // Row i continues old row index[i] (beam search); the batch size may change.
  reorder(index: Tensor): void {
    if (index.dtype !== "int32" || index.ndim !== 1) throw new Error(`RingKVCache.reorder: index must be a 1-D int32 tensor of batch rows, got ${index.dtype}${fmt(index.shape)}`);
    for (let l = 0; l < this.k.length; l++) {
      const k = this.k[l], v = this.v[l];
      if (k && v) this.replace(l, k.indexSelect(0, index), v.indexSelect(0, index));
    }
    for (const c of this.cross) c.reorder(index);
  }

  // Bytes held by the self-attention rings (float32): 2 · L · B · C · D · 4 once the first step ran,
  // whatever the position.
  get selfBytes(): number {
    let n = 0;
    for (let l = 0; l < this.k.length; l++) n += (this.k[l]?.size ?? 0) + (this.v[l]?.size ?? 0);
    return 4 * n;
  }

  // The same for the cross-attention keys/values (fixed by the source length).
  get crossBytes(): number {
    let n = 0;
    for (const c of this.cross) n += (c.keys?.size ?? 0) + (c.values?.size ?? 0);
    return 4 * n;
  }

  dispose(): void {
    this.clearSelf();
    for (const c of this.cross) c.dispose();
    for (const m of this.slotMasks) m?.dispose();
    this.slotMasks.fill(undefined);
  }

  private clearSelf(): void {
    for (let l = 0; l < this.k.length; l++) {
      this.k[l]?.dispose();
      this.v[l]?.dispose();
      this.k[l] = this.v[l] = undefined;
    }
    this.slotPos.fill(-1);
    this.len = 0;
  }

  private replace(layer: number, k: Tensor, v: Tensor): void {
    keep(k);
    keep(v);
    this.k[layer]?.dispose();
    this.v[layer]?.dispose();
    this.k[layer] = k;
    this.v[layer] = v;
  }
}
