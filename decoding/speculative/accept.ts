// The acceptance rules that make speculative decoding lossless: whatever the draft proposes, the
// emitted token is distributed exactly as the target's p.
//
// A sampled proposal x ~ q (speculative sampling: Leviathan et al. 2023; Chen et al. 2023): accept
// with probability min(1, p(x)/q(x)); on rejection draw from the residual norm(max(0, p − q)). Then
//   P(emit y) = min(p, q)(y) + (1 − Σ min(p, q)) · (p − q)⁺(y) / Σ (p − q)⁺ = p(y),
// since Σ (p − q)⁺ = 1 − Σ min(p, q): the rejection mass is exactly what the residual needs.
//
// A deterministic proposal x (CaPE's top-k candidates; a point mass, q = 1 at x): accept with
// probability p(x); on rejection set p(x) ← 0 and renormalise. Visiting candidates x₁, x₂, … this
// way is sampling from p one outcome at a time: P(emit x₂) = (1 − p(x₁)) · p(x₂)/(1 − p(x₁)) = p(x₂),
// and anything left is drawn from p without the rejected candidates, i.e. with its own p(y).
//
// Several sampled siblings (SpecInfer's multi-draft rule) chain the first rule: each rejection
// replaces p by the residual, and the next sibling is tested against that.
//
// The rules are an object so that tests can swap in deliberately broken ones (no residual, no
// renormalisation) and show that the distribution tests catch them.
import { drawFrom } from "../generate.ts";

export interface AcceptRules {
  // p after a sampled proposal drawn from q was rejected.
  residual(p: Float64Array, q: Float64Array): Float64Array;
  // p after a deterministic proposal x was rejected.
  exclude(p: Float64Array, x: number): Float64Array;
}

// p / Σp, or null when nothing is left.
function normalised(p: Float64Array): Float64Array | null {
  let z = 0;
  for (let i = 0; i < p.length; i++) z += p[i];
  if (!(z > 0)) return null;
  const out = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) out[i] = p[i] / z;
  return out;
}

export const EXACT_RULES: AcceptRules = {
  residual(p, q) {
    const r = new Float64Array(p.length);
    for (let i = 0; i < p.length; i++) r[i] = Math.max(0, p[i] - q[i]);
    // Σ(p − q)⁺ = 0 means p = q, where rejection has probability 0; only rounding gets here.
    return normalised(r) ?? p;
  },
  exclude(p, x) {
    const r = Float64Array.from(p);
    r[x] = 0;
    // p(x) = 1 is always accepted (u < 1); only rounding gets here.
    return normalised(r) ?? p;
  },
};

// A candidate for the next position: the token and, for a sampled proposal, the distribution q
// it was drawn from (null: chosen deterministically).
export interface Candidate {
  token: number;
  q: Float64Array | null;
}

// The draw at one node of a draft tree: the target's p there and the children's candidates, in
// the order they are tested. Returns the accepted child's index, or −1 and a token drawn from
// what is left of p. `random` gives uniform draws in [0, 1).
export function chooseAtNode(p: Float64Array, cands: readonly Candidate[], random: () => number, rules: AcceptRules = EXACT_RULES): { child: number; token: number } {
  let cur = p;
  for (let i = 0; i < cands.length; i++) {
    const { token: x, q } = cands[i];
    const u = random();
    if (q) {
      // u < min(1, p(x)/q(x)) without dividing: q(x) > 0 since x was drawn from q.
      if (u * q[x] < cur[x]) return { child: i, token: x };
      cur = rules.residual(cur, q);
    } else {
      if (u < cur[x]) return { child: i, token: x };
      cur = rules.exclude(cur, x);
    }
  }
  return { child: -1, token: drawFrom(cur, random()) };
}

// Σ min(p, q) = 1 − TV(p, q): the probability that a proposal x ~ q is accepted.
export function acceptanceProbability(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += Math.min(p[i], q[i]);
  return s;
}

// Expected tokens per target call when each of γ proposals is accepted independently with
// probability α (Leviathan et al. 2023): E[τ] = (1 − α^(γ+1)) / (1 − α).
export function expectedTokensPerCall(alpha: number, gamma: number): number {
  return alpha >= 1 ? gamma + 1 : (1 - alpha ** (gamma + 1)) / (1 - alpha);
}
