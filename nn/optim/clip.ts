// Gradient clipping by global norm (Pascanu et al. 2013): if ‖g‖ = √(Σ over all params ‖gᵢ‖²)
// exceeds maxNorm, every gradient is scaled by maxNorm / (‖g‖ + 1e-6), so the update keeps its
// direction. Returns ‖g‖ before clipping; a non-finite norm is returned without scaling (the
// optimizer's step then refuses the batch).
import { noGrad } from "../../core/autograd.ts";
import { cat } from "../../core/ops/shape.ts";
import { tidy } from "../../core/scope.ts";
import type { Tensor } from "../../core/tensor.ts";

export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const grads = [...params].map((p) => p.grad).filter((g): g is Tensor => g !== undefined && !g.isDisposed);
  if (grads.length === 0) return 0;
  return noGrad(() => {
    // One scalar read: Σᵢ Σ gᵢ² on the device.
    const total = Math.sqrt(tidy(() => cat(grads.map((g) => g.square().sum().reshape(1))).sum().item()));
    const coef = maxNorm / (total + 1e-6);
    if (Number.isFinite(total) && coef < 1) {
      for (const g of grads) g.assign_(tidy(() => g.mul(coef)));
    }
    return total;
  });
}
