// Multi-head scaled dot-product attention (Vaswani et al. 2017, §3.2), self or cross, with
// key-padding masks, causal masks, an optional attention window, and an incremental KV cache.
//
//   Attention(Q, K, V) = softmax(Q·Kᵀ / √Dh + bias) · V
//
// Masks enter as an additive bias: 0 where a key is visible, −1e9 where it is not. A finite
// value (not −∞) keeps a row whose keys are all masked finite (uniform weights instead of NaN);
// for any row with one visible key, exp(−1e9 − max) is exactly 0 in float32.
import { defaultGenerator, fmt, type Generator, isGradEnabled, tensor, type Tensor } from "../../core/index.ts";
import { Module } from "../module.ts";
import { Dropout } from "./dropout.ts";
import type { KVCache } from "./kv-cache.ts";
import { Linear } from "./linear.ts";

export const MASKED = -1e9;

export interface AttentionOptions {
  // Cross-attention when given: keys and values come from memory [B, Tk, D].
  memory?: Tensor;
  // [B, Tk], nonzero where the key is padding (never attended). With a cache it covers all
  // keys: the cached ones followed by the new ones.
  keyPaddingMask?: Tensor;
  // Query at absolute position p sees keys at positions ≤ p.
  causal?: boolean;
  // Query at absolute position p sees only keys in (p − window, p]: the last `window` positions,
  // itself included. Implies causal (used by the Markov Transformer).
  window?: number;
  // Self-attention: new keys/values are appended and queries start at position cache.length.
  // Cross-attention: filled from memory on first use, then reused instead of projecting memory.
  cache?: KVCache;
  // An additive bias [Tq, Tk] (or [B, 1, Tq, Tk]) that replaces the causal/window mask: 0 where a
  // key is visible, MASKED where not. The caller's mask encodes causality itself — e.g. a token
  // tree verified in one pass, where a node sees the cache, its ancestors and itself.
  attnBias?: Tensor;
}

// The [Tq, Tk] additive bias of a causal (optionally windowed) mask for queries at absolute
// positions offset … offset + Tq − 1 over keys at positions 0 … Tk − 1.
export function causalBias(tq: number, tk: number, offset = 0, window?: number, backend?: Tensor["backend"]): Tensor {
  const a = new Float32Array(tq * tk);
  for (let i = 0; i < tq; i++) {
    const p = offset + i;
    for (let j = 0; j < tk; j++) {
      const visible = j <= p && (window === undefined || j > p - window);
      a[i * tk + j] = visible ? 0 : MASKED;
    }
  }
  return tensor(a, { shape: [tq, tk], backend });
}

// q: [B, H, Tq, Dh], k, v: [B, H, Tk, Dh], bias broadcastable to [B, H, Tq, Tk].
// Returns the output [B, H, Tq, Dh] and the attention weights [B, H, Tq, Tk].
export function scaledDotProductAttention(
  q: Tensor, k: Tensor, v: Tensor, bias?: Tensor, drop?: (w: Tensor) => Tensor,
): { output: Tensor; weights: Tensor } {
  const dh = q.shape[3];
  // Scaling q (T·Dh values) is cheaper than scaling the scores (T·T values) when T > Dh.
  let scores = q.mul(1 / Math.sqrt(dh)).matmul(k, { transposeB: true }); // [B, H, Tq, Tk]
  if (bias) scores = scores.add(bias);
  const weights = scores.softmax(-1);
  const output = (drop ? drop(weights) : weights).matmul(v); // [B, H, Tq, Dh]
  return { output, weights };
}

export class MultiHeadAttention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly attnDrop: Dropout;
  readonly headDim: number;

  constructor(readonly dModel: number, readonly heads: number, opts: { dropout?: number; bias?: boolean; generator?: Generator; dropoutGenerator?: Generator } = {}) {
    super();
    if (!Number.isInteger(heads) || heads <= 0 || dModel % heads !== 0) {
      throw new Error(`MultiHeadAttention: dModel ${dModel} must be divisible by heads ${heads}`);
    }
    this.headDim = dModel / heads;
    const g = opts.generator ?? defaultGenerator();
    const lin = { bias: opts.bias ?? true, generator: g };
    this.q = this.registerModule("q", new Linear(dModel, dModel, lin));
    this.k = this.registerModule("k", new Linear(dModel, dModel, lin));
    this.v = this.registerModule("v", new Linear(dModel, dModel, lin));
    this.o = this.registerModule("o", new Linear(dModel, dModel, lin));
    this.attnDrop = this.registerModule("attnDrop", new Dropout(opts.dropout ?? 0, opts.dropoutGenerator));
  }

  // [B, T, D] → [B, H, T, Dh]
  private splitHeads(x: Tensor): Tensor {
    const [b, t] = x.shape;
    return x.reshape(b, t, this.heads, this.headDim).permute(0, 2, 1, 3);
  }

  // x: [B, Tq, D] → [B, Tq, D]
  forward(x: Tensor, opts: AttentionOptions = {}): Tensor {
    return this.forwardWithWeights(x, opts).output;
  }

  forwardWithWeights(x: Tensor, opts: AttentionOptions = {}): { output: Tensor; weights: Tensor } {
    if (x.ndim !== 3 || x.shape[2] !== this.dModel) throw new Error(`MultiHeadAttention: expected x [B, T, ${this.dModel}], got ${fmt(x.shape)}`);
    const [b, tq] = x.shape;
    const { memory, cache, window } = opts;
    const isCross = memory !== undefined;
    const causal = opts.causal ?? window !== undefined;
    if (window !== undefined && (!Number.isInteger(window) || window < 1)) throw new Error(`MultiHeadAttention: window must be a positive integer, got ${window}`);
    if (window !== undefined && !causal) throw new Error("MultiHeadAttention: window implies causal attention; do not pass causal: false with it");
    if (isCross && causal) throw new Error("MultiHeadAttention: causal/window masks apply to self-attention, not cross-attention");
    if (cache && isGradEnabled() && this.parameters().some((p) => p.requiresGrad)) {
      throw new Error("MultiHeadAttention: a KV cache is for inference; run incremental decoding under noGrad()");
    }

    const q = this.splitHeads(this.q.forward(x)); // q: [B, H, Tq, Dh]
    let k: Tensor, v: Tensor; // [B, H, Tk, Dh]
    let offset = 0;
    let keyBias: Tensor | undefined; // the cached cross-attention padding bias, [B, H, 1, Tk]
    if (isCross) {
      if (cache && cache.length > 0) {
        [k, v] = [cache.keys!, cache.values!];
        if (tq === 1 && opts.keyPaddingMask) keyBias = cache.keyBias;
      } else {
        if (memory.ndim !== 3 || memory.shape[0] !== b || memory.shape[2] !== this.dModel) {
          throw new Error(`MultiHeadAttention: memory must be [${b}, S, ${this.dModel}], got ${fmt(memory.shape)}`);
        }
        k = this.splitHeads(this.k.forward(memory));
        v = this.splitHeads(this.v.forward(memory));
        if (cache) [k, v] = cache.append(k, v);
      }
    } else {
      k = this.splitHeads(this.k.forward(x));
      v = this.splitHeads(this.v.forward(x));
      if (cache) {
        offset = cache.length;
        [k, v] = cache.append(k, v);
      }
    }
    const tk = k.shape[2];
    if (k.shape[0] !== b) throw new Error(`MultiHeadAttention: batch ${b} vs cached/memory batch ${k.shape[0]}`);

    let bias: Tensor | undefined;
    // A single new query at the end of the cache sees every key unless a window cuts it off.
    const allVisible = tq === 1 && offset === tk - 1 && (window === undefined || window >= tk);
    if (opts.attnBias) {
      const ab = opts.attnBias, s = ab.shape;
      const ok = (ab.ndim === 2 && s[0] === tq && s[1] === tk) || (ab.ndim === 4 && s[0] === b && s[1] === 1 && s[2] === tq && s[3] === tk);
      if (!ok) throw new Error(`MultiHeadAttention: attnBias must be [Tq, Tk] = [${tq}, ${tk}] or [${b}, 1, ${tq}, ${tk}], got ${fmt(s)}`);
      if (window !== undefined) throw new Error("MultiHeadAttention: attnBias replaces the causal/window mask; do not pass a window with it");
      bias = ab;
    } else if (causal && !allVisible) bias = causalBias(tq, tk, offset, window, x.backend); // [Tq, Tk]
    const pad = opts.keyPaddingMask;
    if (pad) {
      if (pad.shape.join() !== [b, tk].join()) throw new Error(`MultiHeadAttention: keyPaddingMask must be [B, Tk] = [${b}, ${tk}], got ${fmt(pad.shape)}`);
      if (keyBias) bias = keyBias; // cross-attention has no other bias
      else {
        const padBias = pad.ne(0).mul(MASKED).reshape(b, 1, 1, tk); // [B, 1, 1, Tk]
        bias = bias ? padBias.add(bias) : padBias;
        // Cross-attention with a cache: the memory's padding bias, stored with its keys as
        // [B, H, 1, Tk] for the single-query steps that follow (no ne/mul per step and layer,
        // and an add of equal shapes rather than a broadcast over heads).
        if (isCross && cache && !cache.keyBias && !isGradEnabled()) cache.setKeyBias(padBias.expand(b, this.heads, 1, tk));
      }
    }
    const drop = this.attnDrop.p > 0 && this.training ? (w: Tensor) => this.attnDrop.forward(w) : undefined;
    const { output, weights } = scaledDotProductAttention(q, k, v, bias, drop);
    const merged = output.permute(0, 2, 1, 3).reshape(b, tq, this.dModel); // [B, Tq, D]
    return { output: this.o.forward(merged), weights };
  }
}
