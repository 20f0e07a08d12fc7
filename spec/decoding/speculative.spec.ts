// Speculative decoding, greedy and structural properties (the sampling distribution has its own
// file): whatever the draft — a random LM, a random GliDe draft, the target itself, a draft that
// always proposes one token, random logits, the target's least likely token — and whatever γ,
// with or without CaPE, greedy speculative decoding emits exactly what plain greedy decoding of
// the target emits, stopping the same way (eos, maxNewTokens, the context). A token tree verified
// in one pass gives each node the logits of its path run alone; after every round both caches
// equal a fresh forward over the committed tokens.
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Generator, getBackend, noGrad, tensor, tidy } from "../../core/index.ts";
import {
  acceptanceProbability, addNode, capeBudget, CAPE_BINS, chooseAtNode, drawTreeMask, expectedTokensPerCall, generate, glideDrafter, lmDrafter, rootTree,
  speculativeGenerate, topK, treeMask, treePositions, type Drafter, type TokenTree,
} from "../../decoding/index.ts";
import { DecoderCache, type TransformerLM } from "../../nn/index.ts";
import { fakeDrafter, tinyGlide, tinyLM } from "./tiny-lm.ts";
import { rejectsWith } from "../helpers/rejects.ts";

const FC = { seed: 20240203, numRuns: 40 };
const DRAFTS = ["lm", "glide", "self", "constant", "random", "contrarian"] as const;
type DraftKind = (typeof DRAFTS)[number];

function makeDrafter(kind: DraftKind, target: TransformerLM, seed: number): { d: Drafter; dispose(): void } {
  if (kind === "lm") {
    const m = tinyLM(seed + 1, { layers: 1, maxLen: 40 });
    return { d: lmDrafter(m), dispose: () => m.dispose() };
  }
  if (kind === "glide") {
    const m = tinyGlide(seed + 2, target);
    return { d: glideDrafter(m), dispose: () => m.dispose() };
  }
  if (kind === "self") return { d: lmDrafter(target), dispose: () => {} };
  return { d: fakeDrafter(kind, target, seed), dispose: () => {} };
}

test("greedy: speculative output = plain greedy output of the target, for any draft, γ, CaPE, prompt and limit", async () => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 0, max: 1e6 }), fc.constantFrom(...DRAFTS), fc.integer({ min: 1, max: 8 }), fc.boolean(),
    fc.array(fc.integer({ min: 3, max: 11 }), { maxLength: 8 }), fc.integer({ min: 0, max: 50 }), fc.constantFrom(2, 5),
    async (seed, kind, gamma, cape, prompt, maxNewTokens, eosId) => {
      const target = tinyLM(seed, { maxLen: 32 });
      const { d, dispose } = makeDrafter(kind, target, seed);
      try {
        const o = { temperature: 0, maxNewTokens, eosId, banned: [] };
        const plain = await generate(target, prompt, o);
        const spec = await speculativeGenerate(target, d, prompt, { ...o, gamma, cape: cape ? {} : undefined });
        const what = `seed ${seed}, draft ${kind}, γ ${gamma}, CaPE ${cape}, prompt [${prompt}], max ${maxNewTokens}`;
        assert.equal(spec.tokens, plain.tokens, what);
        assert.is(spec.stopped, plain.stopped, what);
        // Each verification emits at least one token and at most its proposals + 1.
        spec.tokensPerCall.forEach((n, i) => assert.ok(n >= 1 && n <= spec.proposedPerCall[i] + 1, what));
      } finally {
        dispose();
        target.dispose();
      }
    }), FC);
});

test("greedy: the target as its own draft has every proposal accepted (γ + 1 tokens a pass)", async () => {
  const target = tinyLM(7, { maxLen: 64 });
  for (const gamma of [1, 3, 6]) {
    const g = await speculativeGenerate(target, lmDrafter(target), [3, 4], { temperature: 0, maxNewTokens: 40, eosId: 11, gamma, banned: [] });
    g.tokensPerCall.forEach((n, i) => assert.ok(n >= g.proposedPerCall[i], `round ${i}: ${n} tokens for ${g.proposedPerCall[i]} proposals`));
    assert.ok(g.tokensPerCall.slice(0, -1).every((n) => n === gamma + 1), g.tokensPerCall.join(","));
    assert.is(g.targetCalls, 1 + g.tokensPerCall.length, "a prefill pass and one pass a round");
  }
  target.dispose();
});

test("sampling: a fixed seed gives the same stream; different seeds differ", async () => {
  const target = tinyLM(3), draft = tinyLM(4, { layers: 1 });
  const o = { temperature: 1, maxNewTokens: 30, banned: [], gamma: 3, eosId: 11 };
  const a = await speculativeGenerate(target, lmDrafter(draft), [5], { ...o, seed: 9 });
  const b = await speculativeGenerate(target, lmDrafter(draft), [5], { ...o, seed: 9 });
  const c = await speculativeGenerate(target, lmDrafter(draft), [5], { ...o, seed: 10 });
  assert.equal(a, b);
  assert.not.equal(a.tokens, c.tokens);
  target.dispose();
  draft.dispose();
});

// A random tree of n nodes: parents[i] < i, so the order is a topological one (not only by depth).
function randomTree(g: Generator, n: number, vocab: number): TokenTree {
  const t = rootTree(g.randint(3, vocab));
  for (let i = 1; i < n; i++) addNode(t, g.randint(0, i), g.randint(3, vocab), null, true);
  return t;
}

function pathOf(t: TokenTree, node: number): number[] {
  const out: number[] = [];
  for (let a = node; a >= 0; a = t.parents[a]) out.unshift(t.tokens[a]);
  return out;
}

test("tree verification: each node's logits in one masked pass = its path run alone (any tree, any cache length)", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 1, max: 12 }), fc.boolean(), (seed, L, n, int32Mask) => {
    const target = tinyLM(seed, { maxLen: 32 });
    const g = new Generator(seed);
    const prefix = Array.from({ length: L }, () => g.randint(1, 12));
    const tree = randomTree(g, n, 12);
    const V = target.config.vocab;
    noGrad(() => tidy(() => {
      const cache = target.createCache();
      if (L > 0) target.forward(tensor([prefix], { dtype: "int32" }), { cache });
      const m = treeMask(tree, L);
      const attnMask = int32Mask ? tensor(Int32Array.from(m, (x) => (x === 0 ? 1 : 0)), { dtype: "int32", shape: [n, L + n] }) : tensor(m, { shape: [n, L + n] });
      const got = target.forward(tensor([tree.tokens], { dtype: "int32" }), { cache, attnMask, positions: treePositions(tree, L) }).dataSync();
      for (let a = 0; a < n; a++) {
        const ids = [...prefix, ...pathOf(tree, a)];
        const alone = target.forward(tensor([ids], { dtype: "int32" })).narrow(1, ids.length - 1, 1).dataSync();
        for (let v = 0; v < V; v++) {
          assert.ok(Math.abs(got[a * V + v] - alone[v]) <= 1e-4 * (1 + Math.abs(alone[v])), `seed ${seed}, node ${a} (depth ${tree.depths[a]}), token ${v}: ${got[a * V + v]} vs ${alone[v]}`);
        }
      }
      assert.is(cache.length, L + n);
      cache.dispose();
    }));
    target.dispose();
  }), { seed: 77, numRuns: 30 });
});

test("tree mask: a chain's is the causal mask; positions are cache length + depth; the drawing has one row a node", () => {
  const chain = rootTree(5);
  addNode(addNodeChain(chain), 1, 7, null, true);
  const m = treeMask(chain, 2);
  for (let a = 0; a < 3; a++) for (let b = 0; b < 5; b++) assert.is(m[a * 5 + b] === 0, b < 2 + a + 1, `${a},${b}`);
  assert.equal(treePositions(chain, 2), [2, 3, 4]);
  assert.is(drawTreeMask(chain).split("\n").length, 3);
});

function addNodeChain(t: TokenTree): TokenTree {
  addNode(t, 0, 6, null, true);
  return t;
}

// The target's and the draft's caches against a fresh forward over the committed tokens.
function assertCacheIs(cache: unknown, model: TransformerLM, tokens: number[], what: string): void {
  const c = cache as DecoderCache;
  assert.is(c.length, tokens.length, `${what}: length`);
  if (tokens.length === 0) return;
  const fresh = model.createCache();
  noGrad(() => tidy(() => {
    model.forward(tensor([tokens], { dtype: "int32" }), { cache: fresh });
  }));
  c.self.forEach((kv, i) => {
    for (const [got, want] of [[kv.keys!, fresh.self[i].keys!], [kv.values!, fresh.self[i].values!]]) {
      const a = got.dataSync(), b = want.dataSync();
      assert.is(a.length, b.length);
      for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j] - b[j]) <= 1e-4 * (1 + Math.abs(b[j])), `${what}: layer ${i}, entry ${j}: ${a[j]} vs ${b[j]}`);
    }
  });
  fresh.dispose();
}

test("rollback: after every round both caches equal a fresh forward over the committed tokens (chains and trees, greedy and sampled)", async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 6 }), fc.boolean(), fc.constantFrom(0, 1), async (seed, gamma, cape, temperature) => {
    const target = tinyLM(seed), draft = tinyLM(seed + 1, { layers: 1 });
    const d = lmDrafter(draft);
    let rounds = 0;
    await speculativeGenerate(target, d, [3, 4, 5], {
      temperature, seed, gamma, cape: cape ? {} : undefined, maxNewTokens: 20, banned: [], eosId: 11,
      onRound: (r) => {
        rounds++;
        const what = `seed ${seed}, round ${rounds}`;
        if (r.emitted.includes(11)) return; // the last round: eos is emitted, never committed
        assertCacheIs(r.cache, target, r.committed.slice(0, -1) as number[], `${what}: target`);
        assertCacheIs(d.cache, draft, r.committed.slice(0, d.length) as number[], `${what}: draft`);
        assert.ok(d.length <= r.committed.length, `${what}: the draft never holds uncommitted tokens`);
      },
    });
    assert.ok(rounds > 0);
    target.dispose();
    draft.dispose();
  }), { seed: 5, numRuns: 15 });
});

test("rollback with a GliDe draft: its cache keeps exactly the committed tokens it fed (one layer: keys independent of the glimpse)", async () => {
  const target = tinyLM(21), glide = tinyGlide(22, target);
  const d = glideDrafter(glide);
  let rounds = 0;
  await speculativeGenerate(target, d, [3, 4], {
    temperature: 1, seed: 4, gamma: 3, cape: {}, maxNewTokens: 16, banned: [], eosId: 11,
    onRound: (r) => {
      rounds++;
      if (r.emitted.includes(11)) return;
      assertCacheIs(r.cache, target, r.committed.slice(0, -1) as number[], `round ${rounds}: target`);
      // A fresh GliDe pass over the same tokens (any glimpse: layer 0's keys come before it).
      const fresh = glide.createCache(), none = target.createCache();
      const ids = r.committed.slice(0, d.length) as number[];
      noGrad(() => tidy(() => void glide.forward(tensor([ids], { dtype: "int32" }), { glimpse: none, cache: fresh })));
      const got = (d.cache as DecoderCache).self[0].keys!.dataSync(), want = fresh.self[0].keys!.dataSync();
      assert.is(got.length, want.length, `round ${rounds}: draft length`);
      for (let j = 0; j < got.length; j++) assert.ok(Math.abs(got[j] - want[j]) <= 1e-4 * (1 + Math.abs(want[j])), `round ${rounds}: draft key ${j}`);
      fresh.dispose();
      none.dispose();
    },
  });
  assert.ok(rounds > 1);
  target.dispose();
  glide.dispose();
});

test("CaPE budget: non-increasing in confidence; the greedy token first; candidates distinct; nodes = 1 + Σk", () => {
  for (let c = 0; c < 1; c += 0.05) assert.ok(capeBudget(c) >= capeBudget(c + 0.05), `c ${c}`);
  assert.equal([capeBudget(0), capeBudget(0.35), capeBudget(0.7), capeBudget(0.95), capeBudget(1)], [8, 6, 4, 2, 2]);
  fc.assert(fc.property(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 2, maxLength: 20 }), fc.integer({ min: 1, max: 10 }), (w, k) => {
    const q = Float64Array.from(w);
    const top = topK(q, k);
    assert.is(new Set(top).size, top.length);
    assert.is(top.length, Math.min(k, w.filter((x) => x > 0).length));
    for (let i = 1; i < top.length; i++) assert.ok(q[top[i - 1]] >= q[top[i]]);
    if (top.length) assert.ok(w.every((x) => x <= q[top[0]]), "the most probable token first");
  }), { seed: 3, numRuns: 200 });
  // A whole CaPE round on a tiny model: the tree holds 1 + Σ kᵢ nodes, kᵢ from the draft's confidence.
  return (async () => {
    const target = tinyLM(11), draft = tinyLM(12, { layers: 1 });
    await speculativeGenerate(target, lmDrafter(draft), [3], {
      temperature: 0, gamma: 4, cape: { bins: CAPE_BINS }, maxNewTokens: 12, banned: [],
      onRound: (r) => {
        const perDepth = new Map<number, number>();
        for (const d of r.tree.depths.slice(1)) perDepth.set(d, (perDepth.get(d) ?? 0) + 1);
        assert.is(r.tree.tokens.length, 1 + [...perDepth.values()].reduce((a, b) => a + b, 0));
        for (const k of perDepth.values()) assert.ok(CAPE_BINS.includes(k) || k < 8, `k ${k}`);
        assert.ok(r.tree.chain.filter(Boolean).length === perDepth.size + 1, "one chain node a depth, plus the root");
      },
    });
    target.dispose();
    draft.dispose();
  })();
});

test("expected tokens per pass with i.i.d. acceptance α matches (1 − α^(γ+1)) / (1 − α)", () => {
  const p = Float64Array.from([0.5, 0.3, 0.2]), q = Float64Array.from([0.2, 0.3, 0.5]);
  const alpha = acceptanceProbability(p, q); // 0.7
  const g = new Generator(1);
  const random = () => g.random();
  for (const gamma of [1, 3, 5]) {
    const N = 20000;
    let sum = 0, sumSq = 0;
    for (let r = 0; r < N; r++) {
      let n = 1;
      for (let i = 0; i < gamma; i++) {
        const x = (() => {
          const u = random();
          return u < q[0] ? 0 : u < q[0] + q[1] ? 1 : 2;
        })();
        if (chooseAtNode(p, [{ token: x, q }], random).child < 0) break;
        n++;
      }
      sum += n;
      sumSq += n * n;
    }
    const mean = sum / N, se = Math.sqrt((sumSq / N - mean * mean) / N);
    const want = expectedTokensPerCall(alpha, gamma);
    assert.ok(Math.abs(mean - want) < 4 * se, `γ ${gamma}: ${mean} vs ${want} (±${se})`);
  }
});

test("errors: a draft with another vocabulary; bad γ and CaPE bins; no leaks", async () => {
  const target = tinyLM(1), other = tinyLM(2, { vocab: 13 });
  await rejectsWith(speculativeGenerate(target, lmDrafter(other), [3]), /the draft's vocabulary has 13 tokens, the target's 12/);
  await rejectsWith(speculativeGenerate(target, lmDrafter(target), [3], { gamma: -1 }), /gamma must be an integer in \[0, 64\]/);
  await rejectsWith(speculativeGenerate(target, lmDrafter(target), [3], { cape: { bins: [1, 2] } }), /CaPE bins must be 10 integers/);
  const before = getBackend().liveBuffers();
  const d = lmDrafter(other.config.vocab === 12 ? other : target);
  await speculativeGenerate(target, d, [3, 4], { temperature: 1, gamma: 3, cape: {}, maxNewTokens: 10, banned: [] });
  d.dispose();
  assert.is(getBackend().liveBuffers(), before, "live buffers after decoding");
  target.dispose();
  other.dispose();
});

test.run();
