// Learning-rate schedules as pure functions of the update number `step` (1 for the first update),
// so a resumed run recomputes exactly the same rate. Use: `opt.lr = schedule(opt.stepCount + 1)`
// before `opt.step()`.

function checkStep(who: string, step: number): void {
  if (!Number.isInteger(step) || step < 1) throw new Error(`${who}: step must be an integer ≥ 1 (the update number), got ${step}`);
}

function checkWarmup(who: string, warmup: number): void {
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`${who}: warmup must be a non-negative integer, got ${warmup}`);
}

// Linear warm-up to peakLr over `warmup` updates, then decay ∝ 1/√step (fairseq's
// inverse_sqrt): lr = peakLr · min(step / warmup, √(warmup / step)). Continuous at step = warmup.
export function inverseSqrtLr(step: number, o: { peakLr: number; warmup: number }): number {
  checkStep("inverseSqrtLr", step);
  checkWarmup("inverseSqrtLr", o.warmup);
  if (o.warmup === 0) return o.peakLr / Math.sqrt(step);
  return o.peakLr * Math.min(step / o.warmup, Math.sqrt(o.warmup / step));
}

// Vaswani et al. (2017) eq. 3: lr = factor · d^-½ · min(step^-½, step · warmup^-3/2), which is
// inverseSqrtLr with peakLr = factor / √(d · warmup).
export function noamLr(step: number, o: { dModel: number; warmup: number; factor?: number }): number {
  checkStep("noamLr", step);
  if (!Number.isInteger(o.warmup) || o.warmup < 1) throw new Error(`noamLr: warmup must be a positive integer, got ${o.warmup}`);
  return (o.factor ?? 1) * o.dModel ** -0.5 * Math.min(step ** -0.5, step * o.warmup ** -1.5);
}

// Linear warm-up, then half a cosine from peakLr down to minLr at totalSteps (flat after).
export function cosineLr(step: number, o: { peakLr: number; warmup: number; totalSteps: number; minLr?: number }): number {
  checkStep("cosineLr", step);
  checkWarmup("cosineLr", o.warmup);
  if (!Number.isInteger(o.totalSteps) || o.totalSteps < o.warmup) throw new Error(`cosineLr: totalSteps must be an integer ≥ warmup ${o.warmup}, got ${o.totalSteps}`);
  const minLr = o.minLr ?? 0;
  if (step <= o.warmup) return (o.peakLr * step) / o.warmup;
  const span = o.totalSteps - o.warmup;
  const progress = span === 0 ? 1 : Math.min(1, (step - o.warmup) / span);
  return minLr + (o.peakLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
