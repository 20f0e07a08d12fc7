// Tiny random causal LMs and GliDe drafts for the speculative-decoding properties.
//
// Fresh models are nearly uniform; an untied output layer and weights scaled up give peaked,
// context-dependent distributions, so drafts and targets disagree in interesting ways.
import { Generator, noGrad, tensor } from "../../core/index.ts";
import { GlideDraft, TransformerLM, lmConfig, type CausalLM, type DecodeCache, type LMConfig } from "../../nn/index.ts";
import type { Drafter } from "../../decoding/index.ts";

export function tinyLM(seed: number, extra: Partial<LMConfig> & { gain?: number } = {}): TransformerLM {
  const { gain = 2.5, ...rest } = extra;
  const m = new TransformerLM(lmConfig({ vocab: 12, dModel: 16, heads: 2, ffn: 32, layers: 2, dropout: 0, maxLen: 48, tieEmbeddings: false, seed, ...rest }));
  noGrad(() => {
    for (const p of m.parameters()) if (p.ndim === 2) p.assign_(p.mul(gain));
  });
  return m.eval();
}

// A random GliDe draft for `target` (any untrained draft is a legitimate, if poor, drafter).
export function tinyGlide(seed: number, target: TransformerLM, extra: { layers?: number; gain?: number; dModel?: number } = {}): GlideDraft {
  const t = target.config;
  const m = new GlideDraft({
    vocab: t.vocab, dModel: extra.dModel ?? 16, heads: 2, ffn: 32, layers: extra.layers ?? 1, dropout: 0, attnDropout: 0, activation: "gelu",
    maxLen: t.maxLen, positions: "learned", tieEmbeddings: false, targetLayers: t.layers, targetHeads: t.heads, targetHeadDim: t.dModel / t.heads, seed,
  });
  noGrad(() => {
    for (const p of m.parameters()) if (p.ndim === 2) p.assign_(p.mul(extra.gain ?? 2.5));
  });
  return m.eval();
}

// Drafters that are not models: they test that the output does not depend on the draft.
// `constant`: always proposes one token (adversarial: almost always rejected);
// `random`: seeded random logits; `contrarian`: the target's own least likely token.
export function fakeDrafter(kind: "constant" | "random" | "contrarian", target: CausalLM, seed = 0, token = 3): Drafter {
  const V = target.config.vocab;
  const g = new Generator(seed);
  let length = 0, cache: DecodeCache = target.createCache();
  return {
    kind: "lm",
    model: target,
    vocab: V,
    maxLen: target.config.maxLen,
    get length() {
      return length;
    },
    get cache() {
      return cache;
    },
    async feed(tokens) {
      length += tokens.length;
      const out = new Float32Array(V);
      if (kind === "constant") out[token] = 10;
      else if (kind === "random") for (let v = 0; v < V; v++) out[v] = 4 * g.random();
      else {
        noGrad(() => {
          const l = target.forward(tensor([Array.from(tokens)], { dtype: "int32" }), { cache }).dataSync();
          for (let v = 0; v < V; v++) out[v] = -l[(tokens.length - 1) * V + v];
        });
      }
      return out;
    },
    truncate(n) {
      length = n;
      cache.truncate(Math.min(cache.length, n));
    },
    reset() {
      length = 0;
      cache.dispose();
      cache = target.createCache();
    },
    dispose() {
      cache.dispose();
    },
  };
}
