// Masked cross-entropy: the CMLM / Mask-Predict training loss (Ghazvininejad et al. 2019), the
// baseline the NAT objectives are compared with. The decoder sees the target with some positions
// replaced by [MASK]; the loss is label-smoothed cross-entropy over the masked positions only:
//   loss = Σ_{i masked, y_i ≠ ignoreIndex} (1 − ε)·(−log p_i(y_i)) + ε·mean_v(−log p_i(v))
// "mean" divides by the number of such positions, as crossEntropy does. Without a mask every
// non-ignored position counts (plain crossEntropy). A thin layer over core crossEntropy: the
// unmasked positions become ignoreIndex, so the fused kernel skips them forward and backward.
import { crossEntropy, fmt, where, type Tensor } from "../../core/index.ts";
import type { Reduction } from "./host.ts";

export interface MaskedCrossEntropyOptions {
  mask?: Tensor; // target's shape; non-zero where the position was masked (and so is scored)
  ignoreIndex?: number; // target id never scored (padding); default −100
  labelSmoothing?: number;
  reduction?: Reduction;
}

// logits [..., V], target [...] int32 → the loss over masked positions.
export function maskedCrossEntropy(logits: Tensor, target: Tensor, opts: MaskedCrossEntropyOptions = {}): Tensor {
  const { mask, ignoreIndex = -100, labelSmoothing = 0, reduction = "mean" } = opts;
  if (!Number.isInteger(ignoreIndex)) throw new Error(`maskedCrossEntropy: ignoreIndex must be an integer, got ${ignoreIndex}`);
  if (!mask) return crossEntropy(logits, target, { ignoreIndex, labelSmoothing, reduction });
  if (mask.shape.join() !== target.shape.join()) throw new Error(`maskedCrossEntropy: mask ${fmt(mask.shape)} must have target's shape ${fmt(target.shape)}`);
  if (target.dtype !== "int32") throw new Error(`maskedCrossEntropy: target must be int32 class ids, got ${target.dtype}`);
  if (mask.backend !== target.backend) throw new Error(`maskedCrossEntropy: mask is on backend "${mask.backend.name}", target on "${target.backend.name}"`);
  const scored = where(mask.ne(0), target, ignoreIndex);
  return crossEntropy(logits, scored, { ignoreIndex, labelSmoothing, reduction });
}
