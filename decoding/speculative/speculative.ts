// Lossless speculative decoding of a causal LM (Leviathan et al. 2023; Chen et al. 2023), with
// GliDe drafts and CaPE trees (Du et al. 2024).
//
// One round, with the committed tokens x₀ … x_t (x₀ = bos) and the target's cache holding
// positions [0, t) — everything but the root x_t:
//   1. draft   the drafter catches up on the committed tokens it has not seen and proposes up to γ
//              tokens, one pass each (greedy; sampled from its q at temperature > 0); with CaPE it
//              also offers, at each depth, the extra top-k candidates its confidence calls for
//              (deterministic given the draft: tested as point masses after the chain token).
//   2. verify  one target pass over the root and the proposals (a chain: the causal mask; a tree:
//              the tree mask, positions by depth) gives the target's p at every node.
//   3. accept  from the root down: greedy takes the child equal to the target's argmax; sampling
//              tests the children in turn (accept.ts: min(1, p/q) for a sampled proposal, p(x)
//              for a deterministic one) and descends into the accepted one. Where no child is
//              accepted, the token drawn from what is left of p ends the round — at a leaf, that
//              is the bonus token from the target's own p.
//   4. roll back  the target's cache keeps the root and the accepted nodes (truncate for a
//              chain, select for a tree); the draft's keeps the accepted tokens it fed itself.
// Every round emits accepted + 1 tokens for one target pass, and each emitted token is
// distributed exactly as the target's own sampler would draw it (temperature and top-p
// included), so at temperature 0 the output is that of plain greedy decoding.
//
// Limits, eos and banned ids behave as in decoding/generate.ts: the same tokens come out, the
// same `stopped` reason. Batch size 1 (ragged acceptance across rows is not supported).
import { noGrad, tensor, tidy } from "../../core/index.ts";
import type { CausalLM, DecodeCache } from "../../nn/models/index.ts";
import { backendOf, inEvalMode } from "../common.ts";
import { argmaxAllowed, drawFrom, generationSetup, samplingDistribution, type GenerateOptions, type Generation, type SamplingRule } from "../generate.ts";
import { chooseAtNode, EXACT_RULES, type AcceptRules } from "./accept.ts";
import type { Drafter } from "./drafters.ts";
import { addNode, candidatesOf, capeBudget, CAPE_BINS, checkBins, childrenOf, isChain, rootTree, topK, treeMask, treePositions, type TokenTree } from "./tree.ts";

export interface SpeculativeOptions extends GenerateOptions {
  gamma?: number; // draft tokens per round (the tree's depth with CaPE); default 4
  // CaPE: tokens verified at a depth by the draft's confidence (10 counts by ⌊10·c⌋); absent: a chain.
  cape?: { bins?: readonly number[] };
  // Acceptance rules; the default is the exact one (tests pass broken ones as negative controls).
  rules?: AcceptRules;
  // Called after every round, once both caches are rolled back (tests, notebooks).
  onRound?: (r: RoundInfo) => void;
}

export interface RoundInfo {
  tree: TokenTree; // the root and the proposals verified
  path: number[]; // the accepted nodes from the root (node indices of `tree`)
  emitted: number[]; // the tokens this round produced (an eos included)
  committed: readonly number[]; // context + tokens so far (the last is the next root)
  cache: DecodeCache; // the target's cache: every committed token but the last
}

export interface SpeculativeGeneration extends Generation {
  // Per verification pass: tokens it emitted (accepted proposals + the target's own token).
  tokensPerCall: number[];
  // Per verification pass: proposals it verified (nodes besides the root).
  proposedPerCall: number[];
  draftCalls: number; // forward passes of the draft
}

// Mean tokens per verification pass, and mean accepted proposals (the same without the target's
// own token): the numbers speculative decoding is judged by.
export function acceptanceSummary(g: Pick<SpeculativeGeneration, "tokensPerCall">): { tokensPerCall: number; acceptedPerCall: number; calls: number } {
  const n = g.tokensPerCall.length, s = g.tokensPerCall.reduce((a, b) => a + b, 0);
  return { tokensPerCall: n ? s / n : 0, acceptedPerCall: n ? (s - n) / n : 0, calls: n };
}

export async function speculativeGenerate(target: CausalLM, drafter: Drafter | undefined, prompt: ArrayLike<number>, opts: SpeculativeOptions = {}): Promise<SpeculativeGeneration> {
  const who = "speculativeGenerate";
  const { V, maxLen, maxNew, rule, eosId, banned, gen, context } = generationSetup(target, prompt, opts, who);
  const gamma = opts.gamma ?? 4;
  if (!Number.isInteger(gamma) || gamma < 0 || gamma > 64) throw new Error(`${who}: gamma must be an integer in [0, 64], got ${gamma}`);
  const bins = opts.cape ? checkBins(opts.cape.bins ?? CAPE_BINS, who) : undefined;
  if (drafter && drafter.vocab !== V) throw new Error(`${who}: the draft's vocabulary has ${drafter.vocab} tokens, the target's ${V}; a draft must share the target's tokenizer`);
  const rules = opts.rules ?? EXACT_RULES;
  const backend = backendOf(target);
  const random = () => gen.random();

  const run = async (): Promise<SpeculativeGeneration> => {
    const cache = target.createCache();
    if (bins && !cache.select) {
      cache.dispose();
      throw new Error(`${who}: CaPE verifies a token tree, which needs a cache that can keep selected positions; this target's cache cannot`);
    }
    drafter?.reset();
    const out: SpeculativeGeneration = { tokens: [], targetCalls: 0, stopped: "maxNewTokens", promptTokens: context.length - 1, tokensPerCall: [], proposedPerCall: [], draftCalls: 0 };
    const committed = context.slice();
    try {
      if (maxNew === 0) return out;
      // The target caches every context token but the last, which is the first round's root. Its
      // logits are not wanted (the root is verified with the proposals): no projection to the
      // vocabulary, which over a prompt costs most of a step per 4–8 tokens.
      if (committed.length > 1) {
        noGrad(() => tidy(() => {
          target.forward(tensor(Int32Array.from(committed.slice(0, -1)), { dtype: "int32", shape: [1, committed.length - 1], backend }), { cache, output: "cache" });
        }));
        out.targetCalls++;
      }
      for (;;) {
        const t = committed.length - 1; // the root's position = the target cache's length
        if (t >= maxLen) {
          out.stopped = "maxLen";
          break;
        }
        const depth = drafter ? Math.min(gamma, maxNew - out.tokens.length - 1, maxLen - 1 - t, drafter.maxLen - t) : 0;
        const tree = await draftTree(committed, depth, cache);
        const logits = await verify(tree, cache);
        out.targetCalls++;
        const { path, emitted } = accept(tree, logits);
        // Roll back: the target keeps the root and the accepted nodes; the draft, the tokens it
        // fed itself that were accepted (the root and the chain nodes on the path).
        if (isChain(tree)) cache.truncate(t + path.length);
        else cache.select!([...Array.from({ length: t }, (_, i) => i), ...path.map((n) => t + n)]);
        if (drafter) drafter.truncate(Math.min(drafter.length, t + path.filter((n) => tree.chain[n]).length));
        out.tokensPerCall.push(emitted.length);
        out.proposedPerCall.push(tree.tokens.length - 1);
        let done = false;
        for (const tok of emitted) {
          if (tok === eosId) {
            out.stopped = "eos";
            done = true;
            break;
          }
          out.tokens.push(tok);
          committed.push(tok);
          if (out.tokens.length >= maxNew) {
            out.stopped = "maxNewTokens";
            done = true;
            break;
          }
        }
        opts.onRound?.({ tree, path, emitted, committed, cache });
        if (done) break;
      }
    } finally {
      cache.dispose();
    }
    return out;

    // Step 1: the root and up to `depth` proposals (a chain, or a CaPE tree).
    async function draftTree(committed: number[], depth: number, cache: DecodeCache): Promise<TokenTree> {
      const t = committed.length - 1;
      const tree = rootTree(committed[t]);
      if (!drafter || depth <= 0) return tree;
      let logits = await drafter.feed(committed.slice(drafter.length, t + 1), cache);
      out.draftCalls++;
      let parent = 0;
      for (let d = 1; d <= depth; d++) {
        let next: number;
        if (bins) {
          // The draft's own distribution at temperature 1 gives its confidence and the extra
          // candidates (as in the paper). Greedy: the chain is its argmax. Sampling: the chain
          // token is drawn from the draft's q under the sampling rule and tested with
          // min(1, p/q); the extra candidates are deterministic given the draft and are tested,
          // point-mass style, against what is left of p — each test keeps the remainder exact.
          const unit = samplingDistribution(logits, UNIT, banned)!;
          const k = capeBudget(unit[argmaxAllowed(logits, banned)], bins);
          const q = samplingDistribution(logits, rule, banned);
          next = q === null ? argmaxAllowed(logits, banned) : drawFrom(q, random());
          const chainNode = addNode(tree, parent, next, q, true);
          for (const c of topK(unit, k).filter((c) => c !== next).slice(0, k - 1)) addNode(tree, parent, c, null, false);
          parent = chainNode;
        } else {
          const q = samplingDistribution(logits, rule, banned);
          next = q === null ? argmaxAllowed(logits, banned) : drawFrom(q, random());
          parent = addNode(tree, parent, next, q, true);
        }
        // Nothing follows eos; the last proposal is verified but never fed to the draft.
        if (next === eosId || d === depth) break;
        logits = await drafter.feed([next], cache);
        out.draftCalls++;
      }
      return tree;
    }

    // Step 2: one target pass over the tree → logits [N·V], node by node.
    async function verify(tree: TokenTree, cache: DecodeCache): Promise<Float32Array> {
      const n = tree.tokens.length, L = cache.length;
      const result = noGrad(() => tidy(() => {
        const ids = tensor(Int32Array.from(tree.tokens), { dtype: "int32", shape: [1, n], backend });
        if (isChain(tree)) return target.forward(ids, { cache });
        const attnMask = tensor(treeMask(tree, L), { shape: [n, L + n], backend });
        return target.forward(ids, { cache, attnMask, positions: treePositions(tree, L) });
      }));
      try {
        return (await result.data()) as Float32Array;
      } finally {
        result.dispose();
      }
    }

    // Step 3: the accepted path from the root, and the tokens emitted.
    function accept(tree: TokenTree, logits: Float32Array): { path: number[]; emitted: number[] } {
      const children = childrenOf(tree);
      const path = [0], emitted: number[] = [];
      for (let node = 0; ;) {
        const row = logits.subarray(node * V, (node + 1) * V);
        const kids = children[node];
        let child: number, token: number;
        const p = samplingDistribution(row, rule, banned);
        if (p === null) {
          token = argmaxAllowed(row, banned);
          child = kids.findIndex((k) => tree.tokens[k] === token);
        } else {
          ({ child, token } = chooseAtNode(p, candidatesOf(tree, kids), random, rules));
        }
        emitted.push(token);
        if (child < 0 || token === eosId) return { path, emitted };
        node = kids[child];
        path.push(node);
      }
    }
  };
  return inEvalMode(target, () => (drafter ? inEvalMode(drafter.model, run) : run()));
}

const UNIT: SamplingRule = { temperature: 1, topP: 1 };
