// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), both on the fused `adamw` kernel:
//   m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²,   m̂ = m/(1−β₁ᵗ),   v̂ = v/(1−β₂ᵗ)
//   AdamW: p ← p(1 − lr·λ) − lr·m̂/(√v̂ + ε)        (decay decoupled from the gradient)
//   Adam:  g ← g + λp first (L2 penalty), then the same update with no decoupled decay.
import { adamwUpdate, zerosLike, type Tensor } from "../../core/index.ts";
import { Optimizer, type ParamState, type ParamsInput, type StepOptions, type UpdateResult } from "./optimizer.ts";

export interface AdamOptions extends StepOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

function checkHyper(who: string, betas: [number, number], eps: number, wd: number): void {
  for (const b of betas) if (!(b >= 0 && b < 1)) throw new Error(`${who}: betas must be in [0, 1), got [${betas}]`);
  if (!(eps >= 0)) throw new Error(`${who}: eps must be ≥ 0, got ${eps}`);
  if (!(wd >= 0)) throw new Error(`${who}: weightDecay must be ≥ 0, got ${wd}`);
}

export class AdamW extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  // Adam applies weight decay as an L2 term in the gradient; AdamW decouples it.
  protected readonly decoupled: boolean = true;

  constructor(params: ParamsInput, opts: AdamOptions = {}) {
    super(params, opts.lr ?? 1e-3, opts);
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? (this.constructor === AdamW ? 1e-2 : 0);
    checkHyper(this.constructor.name, this.betas, this.eps, this.weightDecay);
  }

  hyper(): Record<string, number | boolean> {
    return { beta1: this.betas[0], beta2: this.betas[1], eps: this.eps, weightDecay: this.weightDecay, decoupled: this.decoupled };
  }
  protected bufferNames(): string[] {
    return ["exp_avg", "exp_avg_sq"];
  }

  protected update(p: Tensor, g: Tensor, state: ParamState, step: number): UpdateResult {
    const [beta1, beta2] = this.betas;
    const grad = !this.decoupled && this.weightDecay > 0 ? g.add(p.mul(this.weightDecay)) : g;
    const r = adamwUpdate(p, grad, state.exp_avg ?? zerosLike(p), state.exp_avg_sq ?? zerosLike(p), {
      lr: this.lr, beta1, beta2, eps: this.eps, weightDecay: this.decoupled ? this.weightDecay : 0, step,
    });
    return { param: r.param, state: { exp_avg: r.expAvg, exp_avg_sq: r.expAvgSq } };
  }
}

export class Adam extends AdamW {
  protected override readonly decoupled: boolean = false;
}
