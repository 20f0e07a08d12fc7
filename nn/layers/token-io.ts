// The input and output sides that every Transformer here shares:
//   in:  x = dropout(√D · E[ids] + P[offset …])        ids [B, T] → [B, T, D]
//   out: logits = h · Wᵀ                                h [..., D] → [..., V]
// where W [V, D] is the token embedding itself (tied) or an output projection's weight. The √D
// scale keeps embeddings (initialised with std D^-½) on the scale of the positions.
import { linear, type Generator, type Tensor } from "../../core/index.ts";
import type { Dropout } from "./dropout.ts";
import type { Embedding } from "./embedding.ts";
import { LearnedPositions, SinusoidalPositions, type PositionalEncoding } from "./positions.ts";

export type PositionsKind = "sinusoidal" | "learned";

export function makePositions(kind: PositionsKind, maxLen: number, dModel: number, generator: Generator): PositionalEncoding {
  return kind === "learned" ? new LearnedPositions(maxLen, dModel, { generator }) : new SinusoidalPositions(maxLen, dModel);
}

// ids [B, T] int32 → [B, T, D]; `offset` is the position of ids[:, 0] (cache length when decoding),
// or `at` gives each token's position (a token tree: cache length + depth).
export function embedTokens(embed: Embedding, positions: PositionalEncoding, drop: Dropout, ids: Tensor, offset: number, at?: ArrayLike<number>): Tensor {
  if (at !== undefined && at.length !== ids.shape[1]) throw new Error(`embedTokens: ${at.length} positions for ${ids.shape[1]} tokens`);
  const pos = at === undefined ? positions.forward(ids.shape[1], offset) : positions.select(at);
  const x = embed.forward(ids).mul(Math.sqrt(embed.dim)).add(pos);
  return drop.forward(x);
}

// h [..., D] → logits [..., V] with W [V, D] read transposed in place.
export function projectTokens(h: Tensor, weight: Tensor): Tensor {
  return linear(h, weight);
}

// Parameters of the pieces above and of the pre-LN blocks, in closed form (model kinds check a
// config against its weight file with these before building anything).
export const paramCount = {
  attention: (d: number) => 4 * (d * d + d), // q, k, v, o with biases
  feedForward: (d: number, f: number) => 2 * d * f + f + d,
  layerNorm: (d: number) => 2 * d,
};
