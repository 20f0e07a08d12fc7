// Glancing sampling (GLAT: Qian et al., "Glancing Transformer for Non-Autoregressive Neural
// Machine Translation", ACL 2021), for a decoder that reads [MASK] inputs (cmlm).
//
// A first pass with every position masked predicts ŷ (no gradient). Its Hamming distance to the
// target, d = #{j < n : ŷ_j ≠ y_j}, says how far the model is from the sentence; the second pass
// then "glances" at k = ⌊λ·d⌋ target tokens chosen uniformly at random — they replace [MASK] in the
// input — and is trained with cross-entropy on the n − k positions still masked. A model that
// already predicts the sentence sees no hints (k = 0: the one-pass inference condition); one that
// gets everything wrong sees λ·n of the words, so the curriculum follows the model's own skill.
// λ (`glance`) is 0.5 in the paper, annealed towards 0.3.

// k distinct positions of 0 … len − 1, uniformly (a partial Fisher–Yates shuffle: k draws).
// Also CMLM's uniform masking in nat.ts, so both draw from the RNG the same way.
export function distinctPositions(len: number, k: number, random: () => number): number[] {
  const order = Array.from({ length: len }, (_, j) => j);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (len - i));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order.slice(0, k);
}

export interface GlanceRows {
  y: Int32Array; // [B, T] target ids, padded
  n: readonly number[]; // target length of each row (≤ T)
  T: number;
}

// predicted: [B, T] the first pass's argmax. Returns the second pass's decoder input (revealed
// target ids, [MASK] elsewhere, pad past n) and its per-position targets (the target id where the
// input is [MASK], pad elsewhere: pad positions are not scored).
export function glanceInputs(
  rows: GlanceRows, predicted: ArrayLike<number>, ratio: number, ids: { maskId: number; padId: number }, random: () => number,
): { dec: Int32Array; target: Int32Array; revealed: number[] } {
  if (!(ratio >= 0 && ratio <= 1)) throw new Error(`glanceInputs: the glancing ratio must be in [0, 1], got ${ratio}`);
  const { y, n, T } = rows;
  const B = n.length;
  if (y.length !== B * T || predicted.length !== B * T) throw new Error(`glanceInputs: expected targets and predictions of ${B}×${T} ids, got ${y.length} and ${predicted.length}`);
  const dec = new Int32Array(B * T).fill(ids.padId), target = new Int32Array(B * T).fill(ids.padId);
  const revealed: number[] = [];
  for (let b = 0; b < B; b++) {
    const len = n[b], o = b * T;
    let wrong = 0;
    for (let j = 0; j < len; j++) if (predicted[o + j] !== y[o + j]) wrong++;
    const k = Math.floor(ratio * wrong);
    revealed.push(k);
    for (let j = 0; j < len; j++) {
      dec[o + j] = ids.maskId;
      target[o + j] = y[o + j];
    }
    for (const j of distinctPositions(len, k, random)) {
      dec[o + j] = y[o + j];
      target[o + j] = ids.padId;
    }
  }
  return { dec, target, revealed };
}
