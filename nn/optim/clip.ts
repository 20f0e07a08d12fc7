// Gradient clipping by global norm (Pascanu et al. 2013): if ‖g‖ = √(Σ over all params ‖gᵢ‖²)
// exceeds maxNorm, every gradient is scaled by maxNorm / (‖g‖ + 1e-6), so the update keeps its
// direction. Returns ‖g‖ before clipping; a non-finite norm is returned without scaling (the
// optimizer's step then refuses the batch).
import { cat, noGrad, type Tensor, tidy } from "../../core/index.ts";

function gradsOf(params: Iterable<Tensor>, maxNorm: number, who: string): Tensor[] {
  if (!(maxNorm > 0)) throw new Error(`${who}: maxNorm must be > 0, got ${maxNorm}`);
  return [...params].map((p) => p.grad).filter((g): g is Tensor => g !== undefined && !g.isDisposed);
}

// Σᵢ Σ gᵢ² on the device, as a [1] tensor: one scalar to read back.
function sumOfSquares(grads: Tensor[]): Tensor {
  return tidy(() => noGrad(() => cat(grads.map((g) => g.square().sum().reshape(1))).sum()));
}

function scale(grads: Tensor[], total: number, maxNorm: number): number {
  const coef = maxNorm / (total + 1e-6);
  if (Number.isFinite(total) && coef < 1) noGrad(() => { for (const g of grads) g.assign_(tidy(() => g.mul(coef))); });
  return total;
}

export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): number {
  const grads = gradsOf(params, maxNorm, "clipGradNorm");
  if (grads.length === 0) return 0;
  const s = sumOfSquares(grads);
  const total = Math.sqrt(s.item());
  s.dispose();
  return scale(grads, total, maxNorm);
}

// The same for backends that read asynchronously (GPU).
export async function clipGradNormAsync(params: Iterable<Tensor>, maxNorm: number): Promise<number> {
  const grads = gradsOf(params, maxNorm, "clipGradNormAsync");
  if (grads.length === 0) return 0;
  const s = sumOfSquares(grads);
  const total = Math.sqrt((await s.data())[0]);
  s.dispose();
  return scale(grads, total, maxNorm);
}
