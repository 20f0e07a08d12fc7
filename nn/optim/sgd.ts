// Stochastic gradient descent with momentum (PyTorch's formulation):
//   g ← g + λp;   b ← μb + (1 − dampening)g  (b = g on the first step);
//   d = nesterov ? g + μb : b;   p ← p − lr·d
import type { Tensor } from "../../core/index.ts";
import { Optimizer, type ParamState, type ParamsInput, type StepOptions, type UpdateResult } from "./optimizer.ts";

export interface SGDOptions extends StepOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;

  constructor(params: ParamsInput, opts: SGDOptions) {
    super(params, opts.lr, opts);
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    if (!(this.momentum >= 0)) throw new Error(`SGD: momentum must be ≥ 0, got ${this.momentum}`);
    if (!(this.weightDecay >= 0)) throw new Error(`SGD: weightDecay must be ≥ 0, got ${this.weightDecay}`);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new Error("SGD: nesterov needs momentum > 0 and dampening 0");
  }

  hyper(): Record<string, number | boolean> {
    return { momentum: this.momentum, dampening: this.dampening, weightDecay: this.weightDecay, nesterov: this.nesterov };
  }
  protected bufferNames(): string[] {
    return this.momentum > 0 ? ["momentum"] : [];
  }

  protected update(p: Tensor, g: Tensor, state: ParamState): UpdateResult {
    let d = this.weightDecay > 0 ? g.add(p.mul(this.weightDecay)) : g;
    if (this.momentum === 0) return { param: p.sub(d.mul(this.lr)), state: {} };
    const prev = state.momentum;
    const b = prev ? prev.mul(this.momentum).add(d.mul(1 - this.dampening)) : d.clone();
    d = this.nesterov ? d.add(b.mul(this.momentum)) : b;
    return { param: p.sub(d.mul(this.lr)), state: { momentum: b } };
  }
}
