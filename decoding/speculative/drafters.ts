// Drafters: what speculative decoding asks of a draft model. It keeps its own KV cache over the
// committed tokens, takes the tokens it has not seen yet, returns its next-token logits, and
// rolls back the tokens the target rejected.
//
//   lmDrafter     a small causal LM with the target's vocabulary (vanilla speculative decoding)
//   glideDrafter  a GliDe draft: every pass also glimpses the target's cache as the last
//                 verification left it (the keys and values of every committed token but the root)
import { noGrad, tensor, tidy, type Tensor } from "../../core/index.ts";
import type { AnyModel, CausalLM, DecodeCache, GlideDraftModel } from "../../nn/models/index.ts";
import { backendOf } from "../common.ts";

export interface Drafter {
  readonly kind: "lm" | "glide";
  readonly model: AnyModel;
  readonly vocab: number;
  readonly maxLen: number; // the draft cannot feed a token at this position or beyond
  readonly length: number; // positions in the draft's cache
  readonly cache: DecodeCache; // the draft's own cache (for inspection; the drafter manages it)
  // Feeds tokens at positions length … length + n − 1 and returns the logits [V] after the last
  // (only that row is projected to the vocabulary: a catch-up over a prompt costs no [n, V] logits).
  // `target` is the target's cache (a GliDe draft reads it; an LM draft ignores it).
  feed(tokens: readonly number[], target: DecodeCache): Promise<Float32Array>;
  truncate(length: number): void;
  // A fresh cache for the next generation.
  reset(): void;
  dispose(): void;
}

async function readLast(out: Tensor): Promise<Float32Array> {
  try {
    return (await out.data()) as Float32Array;
  } finally {
    out.dispose();
  }
}

// The cache bookkeeping both drafters share; a drafter supplies only its forward pass over the
// new tokens ([1, n] ids → [1, 1, V]: the logits after the last token).
abstract class CachedDrafter {
  cache: DecodeCache;
  constructor(protected readonly m: CausalLM | GlideDraftModel) {
    this.cache = m.createCache();
  }
  get vocab(): number {
    return this.m.config.vocab;
  }
  get maxLen(): number {
    return this.m.config.maxLen;
  }
  get length(): number {
    return this.cache.length;
  }
  protected abstract pass(ids: Tensor, target: DecodeCache): Tensor;
  feed(tokens: readonly number[], target: DecodeCache): Promise<Float32Array> {
    const n = tokens.length, V = this.vocab;
    if (n === 0) throw new Error("Drafter.feed: no tokens to feed");
    return readLast(noGrad(() => tidy(() => {
      const ids = tensor(Int32Array.from(tokens), { dtype: "int32", shape: [1, n], backend: backendOf(this.m) });
      return this.pass(ids, target).reshape(V); // the logits after the last token
    })));
  }
  truncate(length: number): void {
    this.cache.truncate(length);
  }
  reset(): void {
    this.cache.dispose();
    this.cache = this.m.createCache();
  }
  dispose(): void {
    this.cache.dispose();
  }
}

class LMDrafter extends CachedDrafter implements Drafter {
  readonly kind = "lm" as const;
  constructor(readonly model: CausalLM) {
    super(model);
  }
  protected pass(ids: Tensor): Tensor {
    return this.model.forward(ids, { cache: this.cache, output: "last" });
  }
}

class GlideDrafter extends CachedDrafter implements Drafter {
  readonly kind = "glide" as const;
  constructor(readonly model: GlideDraftModel) {
    super(model);
  }
  protected pass(ids: Tensor, target: DecodeCache): Tensor {
    return this.model.forward(ids, { glimpse: target, cache: this.cache, output: "last" });
  }
}

export function lmDrafter(model: CausalLM): Drafter {
  return new LMDrafter(model);
}

export function glideDrafter(model: GlideDraftModel): Drafter {
  return new GlideDrafter(model);
}
