// Greedy and beam search run unchanged on the Markov Transformer (its ring-buffer cache behind
// the EncoderDecoderModel interface): greedy equals an uncached greedy loop over full parallel
// passes, beam scores equal teacher-forced scores, beam 1 is greedy, batches equal sentences one
// at a time; outputs may run past the training maxLen (sinusoidal positions, constant state).
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { noGrad, tensor, tidy } from "../../core/index.ts";
import { beamSearch, greedyDecode, prepareSources, scoreTargets, type Hypothesis } from "../../decoding/index.ts";
import { markovConfig, MarkovTransformer, type EncoderDecoderModel, type MarkovConfig } from "../../nn/index.ts";
import { randomSources, tinyModel } from "./tiny.ts";

const FC = { seed: 1212, numRuns: 8 };
const V = 12;
const close = (a: number, b: number, tol = 1e-4) => Math.abs(a - b) <= tol * (1 + Math.abs(b));

// As tiny.ts's tinyModel: an untied output layer and weights scaled up give peaked distributions.
function tinyMarkov(seed: number, extra: Partial<MarkovConfig> = {}): MarkovTransformer {
  const model = new MarkovTransformer(markovConfig({
    srcVocab: V, tgtVocab: V, dModel: 16, heads: 2, ffn: 32, encLayers: 2, decLayers: 2, maxLen: 8,
    dropout: 0, tieEmbeddings: false, tieOutput: false, seed, ...extra,
  }));
  noGrad(() => {
    for (const p of model.parameters()) if (p.ndim === 2) p.assign_(p.mul(2));
  });
  return model.eval();
}

function assertSameHyps(got: Hypothesis[], want: Hypothesis[], what: string): void {
  assert.is(got.length, want.length, `${what}: count`);
  got.forEach((h, i) => {
    assert.equal(h.tokens, want[i].tokens, `${what}: sentence ${i} tokens`);
    assert.ok(close(h.score, want[i].score), `${what}: sentence ${i} score ${h.score} vs ${want[i].score}`);
  });
}

// Greedy without a cache: every step runs the parallel pass over the whole prefix.
function greedyUncached(model: EncoderDecoderModel, src: number[], maxOut: number): Hypothesis {
  return noGrad(() => tidy(() => {
    const s = tensor([src], { dtype: "int32" });
    const tokens: number[] = [];
    let score = 0;
    for (let t = 0; ; t++) {
      const lp = model.forward(s, tensor([[1, ...tokens]], { dtype: "int32" })).logSoftmax(-1).narrow(1, t, 1).dataSync();
      if (t >= maxOut) return { tokens, score: score + lp[2] };
      let best = -1;
      for (let v = 2; v < lp.length; v++) if (best < 0 || lp[v] > lp[best]) best = v; // pad 0, bos 1 banned
      score += lp[best];
      if (best === 2) return { tokens, score };
      tokens.push(best);
    }
  }));
}

// Up to 20 output tokens from a model trained (here: built) with maxLen 8, over orders that wrap.
const LONG = { maxLenA: 1, maxLenB: 14, banned: [] as number[] };

test("greedy over the ring cache equals greedy recomputing the parallel pass, past maxLen", async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 4 }), fc.constantFrom("strict", "window"), async (seed, k, variant) => {
    const model = tinyMarkov(seed, { order: k, variant: variant as MarkovConfig["variant"] });
    const srcs = randomSources(seed, 4, V, 6);
    const got = await greedyDecode(model, srcs, LONG);
    assertSameHyps(got, srcs.map((s) => greedyUncached(model, s, s.length + 14)), `seed ${seed} k ${k} ${variant}`);
    model.dispose();
  }), FC);
});

test("beam search: scores are the teacher-forced scores, beam 1 is greedy, a batch equals its sentences alone", async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 3 }), async (seed, k) => {
    const model = tinyMarkov(seed, { order: k });
    const srcs = randomSources(seed + 1, 4, V, 6);
    const beam = await beamSearch(model, srcs, { ...LONG, beam: 3, lengthPenalty: 1 });
    const scores = await scoreTargets(model, srcs, beam.map((h) => h.tokens), LONG);
    beam.forEach((h, i) => assert.ok(close(h.score, scores[i]), `seed ${seed}: sentence ${i}: ${h.score} vs ${scores[i]}`));
    for (const [i, s] of srcs.entries()) assertSameHyps(await beamSearch(model, [s], { ...LONG, beam: 3, lengthPenalty: 1 }), [beam[i]], `seed ${seed} alone ${i}`);
    assertSameHyps(await beamSearch(model, srcs, { ...LONG, beam: 1 }), await greedyDecode(model, srcs, LONG), `seed ${seed} beam 1`);
    model.dispose();
  }), { ...FC, numRuns: 5 });
});

test("the length limit: a Markov model with sinusoidal positions declares none; the Transformer keeps maxLen − 1", () => {
  const opts = { maxLenA: 0, maxLenB: 50 };
  assert.equal(prepareSources(tinyMarkov(1), [[3, 4]], opts, "t").maxOut, [50]);
  assert.equal(prepareSources(tinyMarkov(1, { positions: "learned" }), [[3, 4]], opts, "t").maxOut, [7]);
  assert.equal(prepareSources(tinyModel(1, { maxLen: 8 }), [[3, 4]], opts, "t").maxOut, [7]);
});

test.run();
