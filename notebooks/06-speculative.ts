// Notebook 06 — lossless speculative decoding: the acceptance rule, GliDe's glimpse, CaPE's tree.
// Run: npx tsx notebooks/06-speculative.ts
//
// A large target LM costs one forward pass per token. Speculative decoding (Leviathan et al. 2023;
// Chen et al. 2023) lets a small draft guess γ tokens, and the target checks them all in ONE pass;
// an acceptance rule keeps the output exactly the target's. GliDe (Du et al. 2024) makes the draft
// better by letting it read the target's KV cache; CaPE verifies extra candidates where the draft
// is unsure, as a token tree in the same single pass.
import { existsSync } from "node:fs";
import { Generator, manualSeed } from "../core/index.ts";
import {
  acceptanceProbability, addNode, capeBudget, chooseAtNode, drawTreeMask, EXACT_RULES, expectedTokensPerCall, generate, glideDrafter, lmDrafter,
  rootTree, speculativeGenerate, type AcceptRules, type Drafter,
} from "../decoding/index.ts";
import { GlideDraft, isCausalLM, isGlideDraft, loadModelDir, paragraphs, TransformerLM, lmConfig, type CausalLM, type ModelDir } from "../nn/index.ts";
import { readFileSync } from "node:fs";

manualSeed(0);
const line = (s = "") => console.log(s);
const fmt = (xs: ArrayLike<number>) => Array.from(xs, (x) => x.toFixed(3)).join("  ");

// ---- 1. The acceptance rule ----
line("1. The acceptance rule. The draft proposes x ~ q; the target, having computed p in the same pass, keeps x");
line("   with probability min(1, p(x)/q(x)); otherwise it draws from the residual norm(max(0, p − q)).");
line("   P(emit y) = min(p,q)(y) + (1 − Σmin(p,q)) · (p−q)⁺(y)/Σ(p−q)⁺ = p(y), because Σ(p−q)⁺ = 1 − Σmin(p,q).\n");
const p = Float64Array.from([0.45, 0.25, 0.15, 0.1, 0.05]);
const q = Float64Array.from([0.1, 0.2, 0.2, 0.2, 0.3]);
const N = 100_000;
const empirical = (rules: AcceptRules, seed: number) => {
  const g = new Generator(seed), counts = new Float64Array(p.length);
  let accepted = 0;
  for (let i = 0; i < N; i++) {
    let u = g.random(), x = 0;
    for (let c = q[0]; u >= c && x < q.length - 1; c += q[++x]);
    const r = chooseAtNode(p, [{ token: x, q }], () => g.random(), rules);
    counts[r.token] += 1 / N;
    if (r.child >= 0) accepted++;
  }
  return { counts, accepted: accepted / N };
};
const exact = empirical(EXACT_RULES, 1);
const broken = empirical({ ...EXACT_RULES, residual: (pp) => pp }, 1);
line(`   target p          ${fmt(p)}`);
line(`   draft q           ${fmt(q)}`);
line(`   emitted (exact)   ${fmt(exact.counts)}   accepted ${exact.accepted.toFixed(3)} ≈ Σmin(p,q) = ${acceptanceProbability(p, q).toFixed(3)}`);
line(`   emitted (no residual: on rejection draw from p again) ${fmt(broken.counts)}  ← pulled towards q`);

line("\n   Deterministic candidates (CaPE's top-k): accept x with probability p(x); if rejected, set p(x) = 0,");
line("   renormalise, try the next. That is drawing from p one outcome at a time, so it is exact too:");
const g2 = new Generator(2), counts2 = new Float64Array(p.length);
for (let i = 0; i < N; i++) counts2[chooseAtNode(p, [{ token: 4, q: null }, { token: 3, q: null }], () => g2.random()).token] += 1 / N;
line(`   candidates 4 then 3 → emitted ${fmt(counts2)}  (= p)`);

line("\n   With i.i.d. acceptance α, a pass yields E[τ] = (1 − α^(γ+1))/(1 − α) tokens (the last one the target's own):");
line(`   ${"α".padEnd(6)}${[1, 2, 4, 8].map((gm) => `γ=${gm}`.padStart(8)).join("")}`);
for (const a of [0.5, 0.7, 0.8, 0.9]) line(`   ${a.toFixed(1).padEnd(6)}${[1, 2, 4, 8].map((gm) => expectedTokensPerCall(a, gm).toFixed(2).padStart(8)).join("")}`);
line("   The speed-up is E[τ] / (1 + γ·c) for a draft costing c target steps — and only while verifying γ+1");
line("   tokens costs about one step (true on a GPU; see the benchmark for this CPU).");

// ---- 2. GliDe's glimpse ----
line("\n2. GliDe's glimpse. Each draft layer cross-attends to the target's cached keys and values (only its query and");
line("   output projections are learned). While drafting, the target's cache ends where the last verification left");
line("   it, so the root and every proposal see the same, stale, cache. Training reproduces that with a block mask:");
line("   token p sees target positions j < B·⌊p/B⌋ (B = 4 here; '█' visible, '·' hidden, a row is a draft token):\n");
const B = 4, T = 12;
line(`        target position ${Array.from({ length: T }, (_, j) => String(j % 10)).join("")}`);
for (let i = 0; i < T; i++) {
  const lim = B * Math.floor(i / B);
  line(`   draft token ${String(i).padStart(2)}    ${Array.from({ length: T }, (_, j) => (j < lim ? "█" : "·")).join("")}${lim === 0 ? "   (first block: no glimpse at all)" : i % B === 0 ? "   ← the root's view" : `   ← ${i % B} past the root`}`);
}

// ---- 3. CaPE's tree ----
line("\n3. CaPE's tree. The draft runs its greedy chain; at depth i it also offers its next most likely tokens, as many");
line(`   as its confidence cᵢ = max qᵢ asks for (paper's table: c < 0.3 → ${capeBudget(0.1)}, < 0.6 → ${capeBudget(0.5)}, < 0.8 → ${capeBudget(0.7)}, else ${capeBudget(0.9)} tokens). The extras are`);
line("   leaves (siblings of the chain token); the whole tree goes through the target in one pass, each node seeing the");
line("   cache, its ancestors and itself, at position cache length + depth:\n");
const words = ["<root:the>", "cat", "dog", "man", "sat", "ran", "on", "in"];
const tree = rootTree(0);
const c1 = addNode(tree, 0, 1, null, true); // "cat", the draft's first choice (unsure: 3 candidates)
addNode(tree, 0, 2, null, false);
addNode(tree, 0, 3, null, false);
const c2 = addNode(tree, c1, 4, null, true); // "sat" (fairly sure: 2 candidates)
addNode(tree, c1, 5, null, false);
addNode(tree, c2, 6, null, true); // "on" (sure: alone)
addNode(tree, c2, 7, null, false);
console.log(drawTreeMask(tree, (t) => words[t]).split("\n").map((s) => `   ${s}`).join("\n"));
line("   Accepting walks down from the root: 'cat' accepted? then 'sat'? … A rejected chain token can still be");
line("   rescued by a sibling leaf (then the target's own next token ends the round).");

// ---- 4. Measured ----
line("\n4. Measured (greedy; every method must emit exactly the target's greedy tokens):");
const dirs = { target: "models/lm-austen", draft: "models/draft-austen", glide: "models/glide-austen" };
let target: CausalLM, drafters: [string, Drafter, boolean][] = [], prompts: number[][], source: string;
const disposers: (() => void)[] = [];
if (existsSync(dirs.target)) {
  const t = loadModelDir(dirs.target) as ModelDir<CausalLM>;
  target = t.model;
  disposers.push(() => t.model.dispose());
  for (const [name, dir] of [["vanilla", dirs.draft], ["GliDe", dirs.glide]] as const) {
    if (!existsSync(dir)) continue;
    const d = loadModelDir(dir);
    disposers.push(() => d.model.dispose());
    const drafter = isGlideDraft(d.model) ? glideDrafter(d.model) : isCausalLM(d.model) ? lmDrafter(d.model) : undefined;
    if (drafter) drafters.push([name, drafter, false], [`${name} + CaPE`, drafter, true]);
  }
  const held = "../shared/data/janeausten/northangerabbey.txt";
  const text = existsSync(held) ? paragraphs(readFileSync(held, "utf8")).filter((s) => s.length > 200).slice(0, 400) : ["It was a truth universally acknowledged"];
  prompts = [0, 100, 200, 300].map((i) => Array.from(t.tokenizer.encode(text[i % text.length])).slice(0, 24));
  source = `the trained models in models/ (held-out prompts from Northanger Abbey)`;
} else {
  // Random models: the mechanics run, but a random draft rarely agrees with a random target.
  const tgt = new TransformerLM(lmConfig({ vocab: 300, dModel: 64, heads: 4, ffn: 256, layers: 2, dropout: 0, maxLen: 96 })).eval();
  const dr = new TransformerLM(lmConfig({ vocab: 300, dModel: 32, heads: 2, ffn: 64, layers: 1, dropout: 0, maxLen: 96, seed: 1 })).eval();
  const gl = new GlideDraft({ vocab: 300, dModel: 32, heads: 2, ffn: 64, layers: 1, dropout: 0, attnDropout: 0, activation: "gelu", maxLen: 96, positions: "learned", tieEmbeddings: true, targetLayers: 2, targetHeads: 4, targetHeadDim: 16, seed: 2 }).eval();
  target = tgt;
  disposers.push(() => tgt.dispose(), () => dr.dispose(), () => gl.dispose());
  drafters = [["vanilla", lmDrafter(dr), false], ["vanilla + CaPE", lmDrafter(dr), true], ["GliDe", glideDrafter(gl), false], ["GliDe + CaPE", glideDrafter(gl), true]];
  prompts = [[5, 6, 7], [40, 41], [99]];
  source = "RANDOM tiny models (models/lm-austen is not trained yet): acceptance and speed-ups here mean nothing; run bench/speculative.ts on trained models";
}
line(`   models: ${source}`);
const plainMs: number[] = [], plain: number[][] = [];
for (const pr of prompts) {
  const t0 = performance.now();
  plain.push((await generate(target, pr, { temperature: 0, maxNewTokens: 32 })).tokens);
  plainMs.push(performance.now() - t0);
}
const plainTotal = plainMs.reduce((a, b) => a + b, 0), plainTokens = plain.reduce((a, b) => a + b.length, 0);
line(`   ${"method".padEnd(16)}${"tokens/pass".padStart(12)}${"ms/token".padStart(10)}${"speed-up".padStart(10)}  same tokens`);
line(`   ${"plain".padEnd(16)}${"1.00".padStart(12)}${(plainTotal / plainTokens).toFixed(2).padStart(10)}${"1.00".padStart(10)}`);
let allSame = true;
for (const [name, drafter, cape] of drafters) {
  let ms = 0, tokens = 0, passes = 0, emitted = 0, same = true;
  for (const [i, pr] of prompts.entries()) {
    const t0 = performance.now();
    const g = await speculativeGenerate(target, drafter, pr, { temperature: 0, maxNewTokens: 32, gamma: 4, cape: cape ? {} : undefined });
    ms += performance.now() - t0;
    tokens += g.tokens.length;
    passes += g.tokensPerCall.length;
    emitted += g.tokensPerCall.reduce((a, b) => a + b, 0);
    same &&= JSON.stringify(g.tokens) === JSON.stringify(plain[i]);
  }
  allSame &&= same;
  line(`   ${name.padEnd(16)}${(emitted / passes).toFixed(2).padStart(12)}${(ms / tokens).toFixed(2).padStart(10)}${(plainTotal / plainTokens / (ms / tokens)).toFixed(2).padStart(10)}  ${same ? "yes" : "NO"}`);
}
line("   (a few prompts, timed once on a shared machine: bench/speculative.ts measures properly.)");
for (const d of drafters) d[1].dispose();
for (const f of disposers) f();
if (!allSame) process.exit(1);
