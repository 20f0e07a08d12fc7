// The optimizer base: parameter bookkeeping, the all-or-nothing step, and state dicts that let
// training resume exactly (step count, learning rate, every moment buffer).
//
// A step first validates every gradient (present, right shape, finite), and only then updates
// parameters; a bad batch throws and leaves parameters and moments exactly as they were.
// Parameters are updated with assign_, so the tensors a model holds stay the same objects.
import { cat, fmt, keep, noGrad, type Tensor, tidy } from "../../core/index.ts";

export type ParamsInput = Iterable<Tensor> | Iterable<[string, Tensor]>;

export interface OptimizerState {
  step: number;
  lr: number;
  // The constructor's hyper-parameters, for the record (loadStateDict does not change them).
  hyper: Record<string, number | boolean>;
  // Per-parameter buffers by `${paramName}.${buffer}` (the tensors themselves, not copies).
  buffers: Record<string, Tensor>;
}

export interface StepOptions {
  // Skip parameters without a gradient instead of throwing (PyTorch's behaviour).
  skipMissing?: boolean;
  // Reads one scalar per step to refuse non-finite gradients. Async (GPU) backends skip it.
  checkFinite?: boolean;
}

export function checkLr(who: string, lr: number): number {
  if (typeof lr !== "number" || !Number.isFinite(lr) || lr < 0) throw new Error(`${who}: lr must be a finite number ≥ 0, got ${lr}`);
  return lr;
}

// A parameter's optimizer buffers by name (exp_avg, momentum, …); absent before its first step.
export type ParamState = Readonly<Record<string, Tensor | undefined>>;
export interface UpdateResult {
  param: Tensor; // the parameter's new value
  state: Record<string, Tensor>; // its new buffers (those left out keep their old value)
}

export abstract class Optimizer {
  readonly params: Tensor[];
  readonly names: string[];
  stepCount = 0;
  private _lr: number;
  // buffers[i].get("exp_avg") etc.; created lazily on the first step.
  protected readonly buffers: Map<string, Tensor>[];

  constructor(params: ParamsInput, lr: number, protected readonly opts: StepOptions = {}) {
    const list = [...(params as Iterable<Tensor | [string, Tensor]>)];
    this.params = list.map((x) => (Array.isArray(x) ? x[1] : x));
    this.names = list.map((x, i) => (Array.isArray(x) ? x[0] : String(i)));
    if (this.params.length === 0) throw new Error(`${this.constructor.name}: got no parameters`);
    if (new Set(this.params).size !== this.params.length) throw new Error(`${this.constructor.name}: a parameter appears twice`);
    this.params.forEach((p, i) => {
      if (!p.requiresGrad || p.dtype !== "float32") throw new Error(`${this.constructor.name}: parameter ${this.names[i]} must be a float32 tensor with requiresGrad`);
    });
    this._lr = checkLr(this.constructor.name, lr);
    this.buffers = this.params.map(() => new Map());
  }

  get lr(): number {
    return this._lr;
  }
  set lr(v: number) {
    this._lr = checkLr(`${this.constructor.name}.lr`, v);
  }

  abstract hyper(): Record<string, number | boolean>;
  // The update of one parameter: from its value p, gradient g and buffers (absent before the first
  // step) to its new value and new buffers. Runs under noGrad/tidy; nothing is assigned until
  // every parameter's update has succeeded.
  protected abstract update(p: Tensor, g: Tensor, state: ParamState, step: number): UpdateResult;

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  step(): void {
    const who = `${this.constructor.name}.step`;
    const active: number[] = [];
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (!g || g.isDisposed) {
        if (this.opts.skipMissing) return;
        throw new Error(`${who}: parameter ${this.names[i]} has no gradient (call backward() first, or pass skipMissing)`);
      }
      if (g.shape.join() !== p.shape.join()) throw new Error(`${who}: gradient of ${this.names[i]} is ${fmt(g.shape)}, parameter is ${fmt(p.shape)}`);
      active.push(i);
    });
    if ((this.opts.checkFinite ?? true) && active.length > 0 && this.params[0].backend.sync) {
      // Σ over every gradient element is ±∞ or NaN iff some element is (barring overflow of
      // finite values near 3e38): one scalar read instead of reading every gradient back.
      const total = tidy(() => noGrad(() => cat(active.map((i) => this.params[i].grad!.sum().reshape(1))).sum().item()));
      if (!Number.isFinite(total)) {
        const bad = active.filter((i) => !Number.isFinite(tidy(() => this.params[i].grad!.sum().item()))).map((i) => this.names[i]);
        throw new Error(`${who}: non-finite gradient in ${bad.join(", ") || "(sum overflowed)"}; parameters left unchanged`);
      }
    }
    const step = this.stepCount + 1;
    // Compute every new value first, then assign: an exception in the middle changes nothing.
    const staged = tidy(() => noGrad(() => {
      const out: [number, Tensor, [string, Tensor][]][] = [];
      for (const i of active) {
        const r = this.update(this.params[i], this.params[i].grad!, Object.fromEntries(this.buffers[i]), step);
        const bufs = Object.entries(r.state);
        for (const [name, t] of bufs) {
          if (!this.bufferNames().includes(name)) throw new Error(`internal: ${this.constructor.name} returned an unknown buffer "${name}"`);
          keep(t);
        }
        out.push([i, keep(r.param), bufs]);
      }
      return out;
    }));
    for (const [i, value, bufs] of staged) {
      this.params[i].assign_(value);
      for (const [name, t] of bufs) {
        const old = this.buffers[i].get(name);
        this.buffers[i].set(name, t);
        if (old && old !== t) old.dispose();
      }
    }
    this.stepCount = step;
  }

  stateDict(): OptimizerState {
    const buffers: Record<string, Tensor> = {};
    this.buffers.forEach((m, i) => {
      for (const [name, t] of m) buffers[`${this.names[i]}.${name}`] = t;
    });
    return { step: this.stepCount, lr: this.lr, hyper: this.hyper(), buffers };
  }

  // Restores step, lr and buffers (copied). Validated in full before anything changes.
  loadStateDict(s: OptimizerState): void {
    const who = `${this.constructor.name}.loadStateDict`;
    if (!s || !Number.isInteger(s.step) || s.step < 0) throw new Error(`${who}: step must be a non-negative integer, got ${s?.step}`);
    checkLr(who, s.lr);
    const known = new Map<string, [number, string]>();
    const expected = this.bufferNames();
    this.params.forEach((p, i) => {
      for (const b of expected) known.set(`${this.names[i]}.${b}`, [i, b]);
    });
    const problems: string[] = [];
    for (const [key, t] of Object.entries(s.buffers ?? {})) {
      const where = known.get(key);
      if (!where) { problems.push(`unexpected buffer ${key}`); continue; }
      const p = this.params[where[0]];
      if (t.shape.join() !== p.shape.join() || t.dtype !== "float32") problems.push(`${key}: expected float32${fmt(p.shape)}, got ${t.dtype}${fmt(t.shape)}`);
    }
    // Either every parameter has its buffers (a run that has stepped) or none has.
    const present = [...known.keys()].filter((k) => s.buffers && k in s.buffers);
    if (present.length > 0 && present.length < known.size) {
      problems.push(`missing buffers: ${[...known.keys()].filter((k) => !(k in s.buffers)).join(", ")}`);
    }
    if (problems.length) throw new Error(`${who}: ${problems.join("; ")}`);
    for (const m of this.buffers) {
      for (const t of m.values()) t.dispose();
      m.clear();
    }
    noGrad(() => {
      for (const key of present) {
        const [i, b] = known.get(key)!;
        this.buffers[i].set(b, keep(s.buffers[key].clone()));
      }
    });
    this.stepCount = s.step;
    this.lr = s.lr;
  }

  // Names of the per-parameter buffers this optimizer keeps (for validation on load).
  protected abstract bufferNames(): string[];

  dispose(): void {
    for (const m of this.buffers) {
      for (const t of m.values()) t.dispose();
      m.clear();
    }
  }
}
