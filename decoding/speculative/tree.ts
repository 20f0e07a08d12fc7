// Draft trees and how one target pass verifies them (CaPE, Du et al. 2024; the authors' code,
// generate_medusa_buffers_joint_llama and tree_decoding_joint_llama).
//
// Node 0 is the root: the last committed token, not yet in the target's cache, at position L (the
// cache length). A node at depth d sits at position L + d. Nodes are stored in linearised order —
// by depth, so every parent comes before its children — and fed to the target as one sequence
// with a tree attention mask: node a sees the whole cache, its ancestors and itself,
//
//   M[a][b] = visible ⟺ b is a or an ancestor of a          (over the new positions)
//
// so each node's logits are those of its own root-to-node path run alone: siblings never see
// each other. A chain (every depth one node) is the causal mask itself.
//
// CaPE (confidence-aware proposal expansion): the draft runs its usual greedy chain g₁ … g_γ;
// at depth i it also offers its next most probable tokens as leaves — siblings of gᵢ, children
// of g_{i−1} — as many as its confidence cᵢ = max q_i calls for: few when sure, more when not.
// Only the chain continues, so the tree costs no extra draft passes.
import { MASKED } from "../../nn/index.ts";
import type { Candidate } from "./accept.ts";

export interface TokenTree {
  tokens: number[]; // node → token; node 0 is the root
  parents: number[]; // node → parent (−1 for the root); parents[i] < i
  depths: number[];
  q: (Float64Array | null)[]; // node → the distribution it was sampled from (null: chosen deterministically)
  chain: boolean[]; // node → on the draft's chain (the draft fed it; only chain nodes have children)
}

export function rootTree(token: number): TokenTree {
  return { tokens: [token], parents: [-1], depths: [0], q: [null], chain: [true] };
}

export function addNode(t: TokenTree, parent: number, token: number, q: Float64Array | null, chain: boolean): number {
  if (!(parent >= 0 && parent < t.tokens.length)) throw new Error(`addNode: parent ${parent} is not a node of a tree of ${t.tokens.length}`);
  t.tokens.push(token);
  t.parents.push(parent);
  t.depths.push(t.depths[parent] + 1);
  t.q.push(q);
  t.chain.push(chain);
  return t.tokens.length - 1;
}

export function isChain(t: TokenTree): boolean {
  return t.depths.every((d, i) => d === i);
}

// Children of each node, in node order (the chain child first: it is added first at each depth).
export function childrenOf(t: TokenTree): number[][] {
  const out: number[][] = t.tokens.map(() => []);
  for (let i = 1; i < t.tokens.length; i++) out[t.parents[i]].push(i);
  return out;
}

export function candidatesOf(t: TokenTree, children: readonly number[]): Candidate[] {
  return children.map((c) => ({ token: t.tokens[c], q: t.q[c] }));
}

// Positions of the nodes when the cache holds `cacheLength` positions: L + depth.
export function treePositions(t: TokenTree, cacheLength: number): number[] {
  return t.depths.map((d) => cacheLength + d);
}

// The additive mask [N, L + N]: 0 where node a may look (the cache, its ancestors, itself),
// MASKED elsewhere.
export function treeMask(t: TokenTree, cacheLength: number): Float32Array {
  const n = t.tokens.length, w = cacheLength + n;
  const m = new Float32Array(n * w).fill(MASKED);
  for (let a = 0; a < n; a++) {
    m.fill(0, a * w, a * w + cacheLength);
    for (let b = a; b >= 0; b = t.parents[b]) m[a * w + cacheLength + b] = 0;
  }
  return m;
}

// The mask drawn in characters, one row per node: '█' visible, '·' hidden (the cache columns
// summarised as one '█…'). For notebooks and error messages.
export function drawTreeMask(t: TokenTree, label: (token: number) => string = String): string {
  const m = treeMask(t, 0), n = t.tokens.length;
  const names = t.tokens.map((tok, i) => `${"  ".repeat(t.depths[i])}${label(tok)}`);
  const width = Math.max(...names.map((s) => s.length));
  return names.map((name, a) => {
    let row = "";
    for (let b = 0; b < n; b++) row += m[a * n + b] === 0 ? "█" : "·";
    return `${name.padEnd(width)}  cache █ ${row}`;
  }).join("\n");
}

// CaPE's budget: how many tokens to verify at a depth whose draft confidence is c, read from a
// table of 10 counts indexed by ⌊10·c⌋ (c = 1 uses the last). The paper's code uses
// 8 8 8 6 6 6 4 4 2 2: eight candidates below 0.3, six below 0.6, four below 0.8, two above.
export const CAPE_BINS: readonly number[] = Object.freeze([8, 8, 8, 6, 6, 6, 4, 4, 2, 2]);

export function checkBins(bins: readonly number[], who: string): readonly number[] {
  if (bins.length !== 10 || bins.some((k) => !Number.isInteger(k) || k < 1 || k > 64)) {
    throw new Error(`${who}: CaPE bins must be 10 integers in [1, 64] (tokens verified at confidence 0–0.1, …, 0.9–1), got [${bins.join(", ")}]`);
  }
  return bins;
}

export function capeBudget(confidence: number, bins: readonly number[] = CAPE_BINS): number {
  return bins[Math.min(9, Math.max(0, Math.floor(10 * confidence)))];
}

// The k most probable tokens of q with q > 0, most probable first (ties: lower id first).
export function topK(q: Float64Array, k: number): number[] {
  const best: number[] = [];
  for (let v = 0; v < q.length; v++) {
    if (!(q[v] > 0)) continue;
    let at = best.length;
    while (at > 0 && q[best[at - 1]] < q[v]) at--;
    if (at < k) {
      best.splice(at, 0, v);
      if (best.length > k) best.pop();
    }
  }
  return best;
}
