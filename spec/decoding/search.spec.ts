// Greedy decoding and beam search on tiny random models: properties against references that
// share no code with the decoders (an uncached greedy loop over full decoder passes, brute-force
// enumeration, one teacher-forced scoring pass), plus batching/padding invariance and leaks.
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { getBackend, noGrad, setBackend, tensor, tidy } from "../../core/index.ts";
import type { Transformer } from "../../nn/index.ts";
import { beamSearch, beamSearchNBest, greedyDecode, scoreTargets, type Hypothesis } from "../../decoding/index.ts";
import { testBackends } from "../helpers/backends.ts";
import { randomSources, tinyModel } from "./tiny.ts";

const FC = { seed: 4242, numRuns: 10 };
const V = 12;
const LEN = { maxLenA: 1, maxLenB: 2, banned: [] as number[] }; // tiny vocabularies: ids 3 and 4 are real tokens here, not <unk>/<mask>
const close = (a: number, b: number, tol = 1e-4) => Math.abs(a - b) <= tol * (1 + Math.abs(b));

function assertSameHyps(got: Hypothesis[], want: Hypothesis[], what: string): void {
  assert.is(got.length, want.length, `${what}: count`);
  got.forEach((h, i) => {
    assert.equal(h.tokens, want[i].tokens, `${what}: sentence ${i} tokens`);
    assert.ok(close(h.score, want[i].score), `${what}: sentence ${i} score ${h.score} vs ${want[i].score}`);
  });
}

// Greedy decoding of one sentence without a cache: every step runs the decoder over the whole
// prefix and reads the last position.
function greedyUncached(model: Transformer, src: number[], maxOut: number): Hypothesis {
  return noGrad(() => tidy(() => {
    const s = tensor([src], { dtype: "int32" });
    const mask = s.eq(0), memory = model.encode(s, mask);
    const tokens: number[] = [];
    let score = 0;
    for (let t = 0; ; t++) {
      const prefix = tensor([[1, ...tokens]], { dtype: "int32" });
      const lp = model.decode(prefix, memory, mask).logSoftmax(-1).narrow(1, t, 1).dataSync();
      if (t >= maxOut) return { tokens, score: score + lp[2] };
      let best = -1;
      for (let v = 2; v < lp.length; v++) if (best < 0 || lp[v] > lp[best]) best = v; // pad 0, bos 1 banned
      score += lp[best];
      if (best === 2) return { tokens, score };
      tokens.push(best);
    }
  }));
}

const maxOutOf = (n: number, a: number, b: number, maxLen: number) => Math.min(maxLen - 1, Math.floor(a * n + b));

test("greedy with the KV cache equals greedy recomputing the full decoder pass each step", async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 1e6 }), fc.boolean(), async (seed, tied) => {
    const model = tinyModel(seed, tied ? { tieEmbeddings: true, tieOutput: true } : {});
    const srcs = randomSources(seed, 4, V, 6);
    const got = await greedyDecode(model, srcs, LEN);
    assertSameHyps(got, srcs.map((s) => greedyUncached(model, s, maxOutOf(s.length, 1, 2, 16))), `seed ${seed}`);
    model.dispose();
  }), FC);
});

test("beam search with beam 1 is greedy decoding, whatever the length penalty", async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 1e6 }), fc.constantFrom(0, 0.6, 1), async (seed, alpha) => {
    const model = tinyModel(seed);
    const srcs = randomSources(seed + 1, 5, V, 6);
    const beam = await beamSearch(model, srcs, { ...LEN, beam: 1, lengthPenalty: alpha });
    assertSameHyps(beam, await greedyDecode(model, srcs, LEN), `seed ${seed}`);
    model.dispose();
  }), FC);
});

// Every sequence over the ids 3 … vocab−1 of at most L tokens.
function allSequences(vocab: number, L: number): number[][] {
  let level: number[][] = [[]];
  const out: number[][] = [[]];
  for (let l = 1; l <= L; l++) {
    level = level.flatMap((p) => Array.from({ length: vocab - 3 }, (_, k) => [...p, 3 + k]));
    out.push(...level);
  }
  return out;
}

test("a beam wide enough never to prune finds the brute-force best sequence (so never loses to greedy)", async () => {
  // Two real tokens up to length 6 (127 sequences) or four up to length 3 (85).
  const shapes = fc.constantFrom({ vocab: 5, L: 6 }, { vocab: 5, L: 6 }, { vocab: 5, L: 4 }, { vocab: 7, L: 3 });
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 0, max: 1e6 }), shapes, fc.constantFrom(0, 0.6, 1, 2), fc.integer({ min: 1, max: 5 }), fc.constantFrom(1, 2, 3),
    async (seed, { vocab, L }, alpha, srcLen, gain) => {
      const model = tinyModel(seed, { srcVocab: vocab, tgtVocab: vocab, gain });
      const src = randomSources(seed, 1, vocab, srcLen)[0];
      const opts = { maxLenA: 0, maxLenB: L, lengthPenalty: alpha, banned: [] as number[] };
      const seqs = allSequences(vocab, L);
      const scores = await scoreTargets(model, seqs.map(() => src), seqs, opts);
      const norm = scores.map((s, i) => s / Math.pow(seqs[i].length + 1, alpha));
      const bestIdx = norm.indexOf(Math.max(...norm));
      // A beam of 256 holds every live prefix (at most (vocab − 3)^(L−1)) and ranks all of their
      // (vocab − 2) candidates, so nothing is ever pruned: only the stopping rule can lose the best.
      const [beam] = await beamSearch(model, [src], { ...opts, beam: 256 });
      const [greedy] = await greedyDecode(model, [src], opts);
      assert.ok(close(beam.normScore, norm[bestIdx]), `seed ${seed}: beam ${beam.normScore} vs brute force ${norm[bestIdx]}`);
      const second = Math.max(...norm.filter((_, i) => i !== bestIdx));
      if (norm[bestIdx] - second > 1e-4) assert.equal(beam.tokens, seqs[bestIdx], `seed ${seed}: best sequence`);
      assert.ok(beam.normScore >= greedy.score / Math.pow(greedy.tokens.length + 1, alpha) - 1e-6, `seed ${seed}: beam below greedy`);
      model.dispose();
    },
  ), { ...FC, numRuns: 150 });
});

test("returned scores equal the log-probabilities of a full teacher-forced pass", async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 1e6 }), async (seed) => {
    const model = tinyModel(seed);
    const srcs = randomSources(seed + 2, 4, V, 7);
    const greedy = await greedyDecode(model, srcs, LEN);
    const want = await scoreTargets(model, srcs, greedy.map((h) => h.tokens));
    greedy.forEach((h, i) => assert.ok(close(h.score, want[i]), `greedy ${i}: ${h.score} vs ${want[i]}`));
    const nbest = await beamSearchNBest(model, srcs, { ...LEN, beam: 4, nBest: 4, lengthPenalty: 0.8 });
    for (let i = 0; i < srcs.length; i++) {
      const hs = nbest[i];
      assert.ok(hs.length >= 1 && hs.length <= 4);
      const rescored = await scoreTargets(model, hs.map(() => srcs[i]), hs.map((h) => h.tokens));
      hs.forEach((h, k) => {
        assert.ok(close(h.score, rescored[k]), `beam ${i}.${k}: ${h.score} vs ${rescored[k]}`);
        assert.ok(close(h.normScore, h.score / Math.pow(h.tokens.length + 1, 0.8), 1e-12));
        if (k > 0) assert.ok(hs[k - 1].normScore >= h.normScore, "n-best is sorted");
        assert.ok(h.tokens.length <= maxOutOf(srcs[i].length, 1, 2, 16), "length limit");
        assert.ok(!h.tokens.includes(0) && !h.tokens.includes(1) && !h.tokens.includes(2), "no pad/bos/eos inside");
      });
      assert.is(new Set(hs.map((h) => h.tokens.join())).size, hs.length, "n-best hypotheses are distinct");
    }
    model.dispose();
  }), FC);
});

test("batched decoding equals decoding each sentence alone, and extra padding changes nothing", async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 4 }), async (seed, extra) => {
    const model = tinyModel(seed);
    const srcs = randomSources(seed + 3, 5, V, 7);
    const width = Math.max(...srcs.map((s) => s.length)) + extra;
    const padded = new Int32Array(srcs.length * width);
    srcs.forEach((s, b) => padded.set(s, b * width));
    for (const [name, decode] of [
      ["greedy", (src: Parameters<typeof greedyDecode>[1]) => greedyDecode(model, src, LEN)],
      ["beam", (src: Parameters<typeof greedyDecode>[1]) => beamSearch(model, src, { ...LEN, beam: 3, lengthPenalty: 1 })],
    ] as const) {
      const batched = await decode(srcs);
      const alone: Hypothesis[] = [];
      for (const s of srcs) alone.push(...(await decode([s])));
      assertSameHyps(batched, alone, `${name} seed ${seed}: batched vs alone`);
      assertSameHyps(await decode({ ids: padded, shape: [srcs.length, width] }), batched, `${name} seed ${seed}: padded`);
    }
    model.dispose();
  }), { ...FC, numRuns: 6 });
});

test("length limits: floor(a·n + b) tokens, capped by the model's maxLen; limit 0 gives empty outputs", async () => {
  const model = tinyModel(7, { maxLen: 6 });
  const srcs = randomSources(8, 6, V, 5);
  for (const h of await greedyDecode(model, srcs, { maxLenA: 10, maxLenB: 10 })) assert.ok(h.tokens.length <= 5);
  for (const [i, h] of (await beamSearch(model, srcs, { maxLenA: 0.5, maxLenB: 1, beam: 3 })).entries()) {
    assert.ok(h.tokens.length <= Math.floor(0.5 * srcs[i].length + 1));
  }
  const empty = await beamSearch(model, srcs, { maxLenA: 0, maxLenB: 0, beam: 3 });
  const eosOnly = await scoreTargets(model, srcs, srcs.map(() => []));
  empty.forEach((h, i) => {
    assert.equal(h.tokens, []);
    assert.ok(close(h.score, eosOnly[i]), "the forced eos is scored");
  });
  assert.equal(await greedyDecode(model, []), []);
  model.dispose();
});

test("decoding leaks no buffers, runs in eval mode and restores training mode", async () => {
  const model = tinyModel(9, { dropout: 0.5 });
  const srcs = randomSources(10, 6, V, 6);
  const evalGreedy = await greedyDecode(model, srcs, LEN);
  const evalBeam = await beamSearch(model, srcs, { ...LEN, beam: 4 });
  const before = getBackend().liveBuffers();
  model.train();
  assertSameHyps(await greedyDecode(model, srcs, LEN), evalGreedy, "greedy in train mode");
  assertSameHyps(await beamSearch(model, srcs, { ...LEN, beam: 4 }), evalBeam, "beam in train mode");
  await beamSearchNBest(model, srcs, { ...LEN, beam: 4, nBest: 2 });
  await scoreTargets(model, srcs, evalGreedy.map((h) => h.tokens));
  // The default bans the tokenizer's <unk> (3) and <mask> (4), as the command line does.
  await greedyDecode(model, srcs, { maxLenA: LEN.maxLenA, maxLenB: LEN.maxLenB }).then((hs) => hs.forEach((h) => assert.ok(!h.tokens.includes(3) && !h.tokens.includes(4))));
  await greedyDecode(model, srcs, { ...LEN, banned: [5, 6] }).then((hs) => hs.forEach((h) => assert.ok(!h.tokens.includes(5) && !h.tokens.includes(6))));
  assert.ok(model.training, "training mode restored");
  assert.is(getBackend().liveBuffers(), before, "live buffers after decoding");
  model.dispose();
});

test("every other available backend decodes as the cpu backend does (asynchronous reads included)", async () => {
  const srcs = randomSources(12, 4, V, 6);
  const cpu = tinyModel(13);
  const want = [await greedyDecode(cpu, srcs, LEN), await beamSearch(cpu, srcs, { ...LEN, beam: 3 })];
  cpu.dispose();
  for (const { cfg } of await testBackends()) {
    if (cfg.name === "cpu") continue;
    await setBackend(cfg.name, cfg.options);
    try {
      const model = tinyModel(13);
      const before = getBackend().liveBuffers();
      assertSameHyps(await greedyDecode(model, srcs, LEN), want[0], `${cfg.label} greedy`);
      assertSameHyps(await beamSearch(model, srcs, { ...LEN, beam: 3 }), want[1], `${cfg.label} beam`);
      assert.is(getBackend().liveBuffers(), before, `${cfg.label}: live buffers`);
      model.dispose();
    } finally {
      await setBackend("cpu");
    }
  }
});

test("bad input gets clear errors", async () => {
  const model = tinyModel(11);
  const rejects = async (p: Promise<unknown>, re: RegExp) => {
    try {
      await p;
    } catch (e) {
      assert.match((e as Error).message, re);
      return;
    }
    assert.unreachable(`expected an error matching ${re}`);
  };
  await rejects(beamSearch(model, [[3]], { beam: 0 }), /beamSearch: beam must be an integer >= 1, got 0/);
  await rejects(beamSearchNBest(model, [[3]], { beam: 2, nBest: 3 }), /nBest must be an integer in \[1, beam = 2\], got 3/);
  await rejects(beamSearch(model, [[3]], { lengthPenalty: -1 }), /lengthPenalty must be a finite number >= 0, got -1/);
  await rejects(greedyDecode(model, [[3, 12]]), /greedyDecode: source 0 position 1 holds 12, expected an id in \[0, 12\)/);
  await rejects(greedyDecode(model, [new Array(17).fill(3)]), /source 0 has 17 tokens but the model's maxLen is 16/);
  await rejects(greedyDecode(model, [[3]], { banned: [2] }), /eos \(2\) cannot be banned/);
  await rejects(greedyDecode(model, [[3]], { maxLenA: NaN }), /maxLenA must be a finite number >= 0, got NaN/);
  await rejects(greedyDecode(model, { ids: new Int32Array(5), shape: [2, 3] }), /expected \{ids: Int32Array, shape: \[B, S\]\} with B·S ids/);
  await rejects(scoreTargets(model, [[3]], []), /scoreTargets: 1 sources but 0 targets/);
  model.dispose();
});

test.run();
