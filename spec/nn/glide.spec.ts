// The GliDe draft (nn/models/glide.ts) and its task (nn/tasks/glide.ts): the closed-form
// parameter count, strict configs, the glimpse's block mask (teacher forcing at block offset k
// = drafting k tokens past a cache cut at the block start, which is what inference does), no
// glimpse where nothing is visible, and training against a frozen target: the target's weights
// never change, and checkpoints and optimizer state hold the draft's parameters only.
import fc from "fast-check";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Generator, noGrad, tensor, tidy } from "../../core/index.ts";
import { BpeTokenizer, GlideDraft, glideKind, loadModelDir, saveModelDir, train, type CausalLM, type GlideConfig, type GlideDraftModel } from "../../nn/index.ts";
import { loadCheckpoint } from "../../nn/train/checkpoint.ts";
import { generate, glideDrafter, speculativeGenerate } from "../../decoding/index.ts";
import { tinyGlide, tinyLM } from "../decoding/tiny-lm.ts";

const root = mkdtempSync(join(tmpdir(), "hasten-glide-"));
test.after(() => rmSync(root, { recursive: true, force: true }));

const base: GlideConfig = {
  vocab: 12, dModel: 8, heads: 2, ffn: 16, layers: 1, dropout: 0, attnDropout: 0, activation: "gelu", maxLen: 16, positions: "learned",
  tieEmbeddings: true, targetLayers: 2, targetHeads: 2, targetHeadDim: 8, seed: 0,
};

test("glide kind: numParameters(config) = the built model's count, for any small config", () => {
  fc.assert(fc.property(
    fc.record({ heads: fc.integer({ min: 1, max: 3 }), perHead: fc.constantFrom(2, 4), ffn: fc.integer({ min: 1, max: 24 }), layers: fc.integer({ min: 1, max: 3 }),
      extraTarget: fc.integer({ min: 0, max: 2 }), th: fc.integer({ min: 1, max: 4 }), td: fc.integer({ min: 1, max: 6 }), vocab: fc.integer({ min: 5, max: 40 }),
      tie: fc.boolean(), learned: fc.boolean(), maxLen: fc.integer({ min: 2, max: 20 }) }),
    (r) => {
      const c = glideKind.check({
        ...base, vocab: r.vocab, dModel: r.heads * r.perHead, heads: r.heads, ffn: r.ffn, layers: r.layers, maxLen: r.maxLen, positions: r.learned ? "learned" : "sinusoidal",
        tieEmbeddings: r.tie, targetLayers: r.layers + r.extraTarget, targetHeads: r.th, targetHeadDim: r.td,
      });
      const m = glideKind.build(c);
      try {
        assert.is(glideKind.numParameters(c), m.numParameters(), JSON.stringify(r));
        // The glimpse learns a query and an output projection only: no key/value weights.
        assert.ok(m.namedParameters().every(([n]) => !/glimpse\.(k|v)\./.test(n)));
      } finally {
        m.dispose();
      }
    }), { seed: 21, numRuns: 25 });
});

test("glide kind: stored configs are checked strictly; a draft needs a target", () => {
  assert.equal(glideKind.check(base), base);
  assert.throws(() => glideKind.check({ ...base, extra: 1 }), /unknown extra/);
  const { targetHeads: _, ...noHeads } = base;
  assert.throws(() => glideKind.check(noHeads), /missing targetHeads/);
  assert.throws(() => glideKind.check({ ...base, targetHeadDim: 0 }), /targetHeadDim must be an integer in \[1, /);
  assert.throws(() => glideKind.check({ ...base, layers: 3 }), /layers 3 must be at most targetLayers 2/);
  assert.throws(() => glideKind.fromOptions({ dModel: 8 }, { size: 12, padId: 0, seed: 0 }), /`target` must name the target LM's model directory/);
});

// Teacher-forced logits at position p of a sequence, with the target run over the whole of it.
function teacherForced(target: CausalLM, draft: GlideDraftModel, ids: number[], blockSize: number): Float32Array {
  return noGrad(() => tidy(() => {
    const glimpse = target.createCache();
    target.forward(tensor([ids], { dtype: "int32" }), { cache: glimpse });
    const out = draft.forward(tensor([ids], { dtype: "int32" }), { glimpse, blockSize }).dataSync() as Float32Array;
    glimpse.dispose();
    return out;
  }));
}

test("block mask: teacher forcing at block offset k = drafting k tokens past a target cache cut at the block start", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 2, max: 16 }), fc.constantFrom(1, 2), (seed, B, T, layers) => {
    const target = tinyLM(seed, { maxLen: 24 }), draft = tinyGlide(seed + 1, target, { layers });
    const g = new Generator(seed);
    const ids = [1, ...Array.from({ length: T - 1 }, () => g.randint(2, 12))];
    const V = 12;
    const tf = teacherForced(target, draft, ids, B);
    noGrad(() => tidy(() => {
      for (let p = 0; p < T; p++) {
        const s = B * Math.floor(p / B); // the block's start: the target cache the draft glimpses
        const glimpse = target.createCache();
        if (s > 0) target.forward(tensor([ids.slice(0, s)], { dtype: "int32" }), { cache: glimpse });
        let row: Float32Array;
        if (layers === 1) {
          // As speculative decoding drafts: the committed tokens up to the root (position s) in
          // one pass, then one proposal at a time, every pass seeing the same cut cache.
          const cache = draft.createCache();
          let last = draft.forward(tensor([ids.slice(0, s + 1)], { dtype: "int32" }), { glimpse, cache });
          for (let q = s + 1; q <= p; q++) last = draft.forward(tensor([[ids[q]]], { dtype: "int32" }), { glimpse, cache });
          row = last.narrow(1, last.shape[1] - 1, 1).dataSync() as Float32Array;
          cache.dispose();
        } else {
          // Deeper drafts: lower positions' keys depend on their own glimpse, so give the prefix
          // the training mask too.
          const out = draft.forward(tensor([ids.slice(0, p + 1)], { dtype: "int32" }), { glimpse, blockSize: B });
          row = out.narrow(1, p, 1).dataSync() as Float32Array;
        }
        for (let v = 0; v < V; v++) {
          assert.ok(Math.abs(row[v] - tf[p * V + v]) <= 1e-4 * (1 + Math.abs(tf[p * V + v])), `seed ${seed}, B ${B}, layers ${layers}, position ${p}, token ${v}: ${row[v]} vs ${tf[p * V + v]}`);
        }
        glimpse.dispose();
      }
    }));
    target.dispose();
    draft.dispose();
  }), { seed: 8, numRuns: 20 });
});

test("no glimpse where nothing is visible: the first block equals the draft with an empty target cache", () => {
  const target = tinyLM(3), draft = tinyGlide(4, target, { layers: 2 });
  const ids = [1, 5, 6, 7, 8, 9, 10];
  const tf = teacherForced(target, draft, ids, 4);
  const empty = noGrad(() => tidy(() => {
    const glimpse = target.createCache();
    return draft.forward(tensor([ids.slice(0, 4)], { dtype: "int32" }), { glimpse }).dataSync();
  }));
  for (let i = 0; i < 4 * 12; i++) assert.ok(Math.abs(empty[i] - tf[i]) <= 1e-5 * (1 + Math.abs(tf[i])), `${i}: ${empty[i]} vs ${tf[i]}`);
  // Positions past the first block do read the target.
  let differs = false;
  const none = noGrad(() => tidy(() => draft.forward(tensor([ids], { dtype: "int32" }), { glimpse: target.createCache() }).dataSync()));
  for (let i = 4 * 12; i < ids.length * 12; i++) differs ||= Math.abs(none[i] - tf[i]) > 1e-3;
  assert.ok(differs, "the glimpse changes later positions");
  const other = tinyLM(5, { layers: 3 });
  assert.throws(() => draft.forward(tensor([ids], { dtype: "int32" }), { glimpse: other.createCache() }), /the glimpse must be the KV cache of the target LM it was trained with \(2 layers\), got a cache of 3 layers/);
  other.dispose();
  target.dispose();
  draft.dispose();
});

// ---- the glide task ----

const WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "park", "in", "sun"];
const corpus = join(root, "tiny.txt");
writeFileSync(corpus, Array.from({ length: 150 }, (_, i) => {
  const w = (k: number) => WORDS[(i * 7 + k * 3) % WORDS.length];
  return `${w(0)} ${w(1)} ${w(2)} ${w(3)} ${w(4)} .`;
}).join("\n\n") + "\n");
const tokenizer = BpeTokenizer.train([WORDS.join(" ")], { vocabSize: 300 });
const targetDir = join(root, "target");
{
  const t = tinyLM(9, { vocab: tokenizer.vocabSize, maxLen: 32, gain: 1 });
  await saveModelDir(targetDir, { model: t, tokenizer, config: { kind: "lm", config: { ...t.config }, task: "lm", decoding: { temperature: 0 } } });
  t.dispose();
}
const GLIDE = { task: "glide", target: targetDir, data: corpus, dModel: 8, heads: 2, ffn: 16, layers: 1, seqLen: 12, maxTokens: 48, lr: 3e-3, warmup: 2,
  logEvery: 1, evalEvery: 4, checkpointEvery: 0, maxSteps: 4, seed: 2, backend: "cpu", validFraction: 0.1, blockSize: 3, gamma: 3 };

test("a target pass with output \"cache\" fills the cache exactly as a full pass does, and skips the logits", () => {
  const lm = tinyLM(5);
  const ids = tensor([[5, 6, 7, 8, 9], [9, 8, 7, 6, 5]], { dtype: "int32" });
  const full = lm.createCache(), only = lm.createCache();
  noGrad(() => tidy(() => {
    lm.forward(ids, { cache: full });
    const out = lm.forward(ids, { cache: only, output: "cache" });
    assert.equal(out.shape, [2, 5, 0]);
  }));
  assert.is(only.length, full.length);
  const next = tensor([3, 4], { dtype: "int32" });
  const [a, b] = noGrad(() => tidy(() => [Array.from(lm.decodeStep(next, full).dataSync()), Array.from(lm.decodeStep(next, only).dataSync())]));
  assert.equal(b, a, "the next step reads the same keys and values");
  for (const t of [ids, next]) t.dispose();
  full.dispose();
  only.dispose();
  lm.dispose();
});

test("output \"last\" gives the last position's logits of a full pass (an LM and a GliDe draft), [B, 1, V]", () => {
  const lm = tinyLM(6), glide = tinyGlide(7, lm);
  const ids = tensor([[5, 6, 7, 8], [9, 8, 7, 6]], { dtype: "int32" });
  const glimpse = lm.createCache();
  noGrad(() => tidy(() => {
    lm.forward(tensor([[4, 5, 6]], { dtype: "int32" }).expand(2, 3), { cache: glimpse, output: "cache" });
    const pairs = [
      [lm.forward(ids), lm.forward(ids, { output: "last" })],
      [glide.forward(ids, { glimpse }), glide.forward(ids, { glimpse, output: "last" })],
    ];
    for (const [all, last] of pairs) {
      assert.equal(last.shape, [2, 1, 12]);
      const want = all.narrow(1, 3, 1).dataSync(), got = last.dataSync();
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])), `logit ${i}: ${got[i]} vs ${want[i]}`);
    }
  }));
  ids.dispose();
  glimpse.dispose();
  glide.dispose();
  lm.dispose();
});

test("train --task glide: the target stays frozen; checkpoints and optimizer state hold only the draft; the export drafts for its target", async () => {
  const before = loadModelDir(targetDir);
  const snapshot = before.model.namedParameters().map(([n, p]) => [n, Array.from(p.dataSync())] as const);
  before.model.dispose();
  const out = join(root, "run");
  const r = await train({ ...GLIDE, out });
  assert.is(r.step, 4);
  assert.is(r.config.model, "glide");
  assert.ok(r.lastValid && r.lastValid.nll > 0 && r.lastValid.nll < 10);
  const after = loadModelDir(targetDir);
  assert.equal(after.model.namedParameters().map(([n, p]) => [n, Array.from(p.dataSync())] as const), snapshot, "the target's weights are unchanged");
  const ck = loadCheckpoint(join(out, "checkpoint.safetensors"));
  const draftNames = (r.config.model === "glide" ? new GlideDraft(glideKind.fromOptions(r.config, { size: tokenizer.vocabSize, padId: 0, seed: 2 })) : undefined)!;
  const names = draftNames.namedParameters().map(([n]) => n).sort();
  draftNames.dispose();
  assert.equal(Object.keys(ck.model).sort(), names, "the checkpoint holds the draft's parameters only");
  assert.ok(Object.keys(ck.optimizer).every((k) => names.some((n) => k.startsWith(`${n}.`))), "optimizer state only for the draft");
  for (const t of [...Object.values(ck.model), ...Object.values(ck.optimizer)]) t.dispose();
  const draft = loadModelDir(join(out, "model"));
  assert.is(draft.config.kind, "glide");
  assert.is(draft.config.decoding.gamma, 3);
  assert.equal(draft.tokenizer.toJSON(), tokenizer.toJSON(), "the draft uses the target's tokenizer");
  // It drafts for its target, losslessly.
  const target = after.model as CausalLM, prompt = tokenizer.encode("the cat");
  const plain = await generate(target, prompt, { temperature: 0, maxNewTokens: 15 });
  const spec = await speculativeGenerate(target, glideDrafter(draft.model as GlideDraftModel), prompt, { temperature: 0, maxNewTokens: 15, gamma: 3, cape: {} });
  assert.equal(spec.tokens, plain.tokens);
  after.model.dispose();
  draft.model.dispose();
});

test("train --task glide: a missing target, a target of another kind, gamma beyond the block are refused before training", async () => {
  const rejects = async (o: Record<string, unknown>, re: RegExp) => {
    try {
      await train({ ...GLIDE, out: join(root, `bad-${Math.random().toString(36).slice(2)}`), ...o });
    } catch (e) {
      assert.match((e as Error).message, re);
      return;
    }
    assert.unreachable(`expected ${re}`);
  };
  await rejects({ target: "" }, /`target` must name the target LM's model directory/);
  await rejects({ target: join(root, "nowhere") }, /config\.json is missing/);
  await rejects({ gamma: 5, blockSize: 3 }, /`gamma` 5 exceeds `blockSize` 3/);
});

test.run();
