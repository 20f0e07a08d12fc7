// Notebook 03 — why decoding keeps a KV cache, shown on a small random language model.
// Run: npx tsx notebooks/03-kv-cache.ts
//
// A causal Transformer's output at position t depends only on tokens ≤ t. Generating token by
// token without a cache recomputes every earlier position at every step: O(T²) work for T tokens.
// The cache stores each layer's keys and values for the positions already seen, so a step only
// computes the new position (queries attend to the cached keys): O(T) per sequence.
import { manualSeed, noGrad, tensor, tidy } from "../core/index.ts";
import { TransformerLM, lmConfig } from "../nn/index.ts";

manualSeed(0);
const model = new TransformerLM(lmConfig({ vocab: 500, dModel: 128, heads: 4, ffn: 512, layers: 2, dropout: 0 }));
model.eval();
const prompt = [1, 17, 42, 7];
const steps = 40;

const argmaxLast = (logits: number[] | Float32Array | Int32Array, vocab: number): number => {
  let best = 0;
  const off = logits.length - vocab;
  for (let j = 1; j < vocab; j++) if (logits[off + j] > logits[off + best]) best = j;
  return best;
};

// Without a cache: run the whole prefix every step.
let t0 = performance.now();
const full = prompt.slice();
noGrad(() => {
  for (let i = 0; i < steps; i++) {
    const next = tidy(() => argmaxLast(model.forward(tensor([full], { dtype: "int32" })).dataSync(), 500));
    full.push(next);
  }
});
const fullMs = performance.now() - t0;

// With a cache: the prompt once, then one position per step.
t0 = performance.now();
const cached = prompt.slice();
noGrad(() => {
  const cache = model.createCache();
  let logits = tidy(() => Array.from(model.forward(tensor([prompt], { dtype: "int32" }), { cache }).dataSync()));
  for (let i = 0; i < steps; i++) {
    const next = argmaxLast(logits, 500);
    cached.push(next);
    logits = tidy(() => Array.from(model.decodeStep(tensor([next], { dtype: "int32" }), cache).dataSync()));
  }
  cache.dispose();
});
const cachedMs = performance.now() - t0;

console.log("same tokens:", JSON.stringify(full) === JSON.stringify(cached));
console.log(`${steps} greedy steps: ${fullMs.toFixed(0)} ms without a cache, ${cachedMs.toFixed(0)} ms with one (${(fullMs / cachedMs).toFixed(1)}×)`);
if (JSON.stringify(full) !== JSON.stringify(cached)) process.exit(1);
