// One training update and one validation pass, for any model and task.
//
// An update: lr ← schedule(step + 1); loss = objective.loss(model, batch); backward; clip ‖g‖;
// AdamW step. It reads back two scalars, the loss (for the log) and ‖g‖ (needed to clip); both
// also serve as the finiteness check, so the optimizer's own extra read is switched off.
//
// Gradient accumulation: an update may take several batches b₁…b_N (one graph in memory at a
// time). Each task's loss is a mean over its batch's n_i tokens, so weighting batch i by
// w_i = n_i / Σn gives Σ w_i · mean_i = the mean over all Σn tokens: the gradient of one batch
// holding them all (exactly, up to float rounding, when dropout and masks draw the same numbers).
import { noGrad, tidy, type Tensor } from "../../core/index.ts";
import type { AnyModel } from "../models/index.ts";
import { clipGradNorm, clipGradNormAsync } from "../optim/clip.ts";
import type { Optimizer } from "../optim/optimizer.ts";

// What a task contributes to a step: the loss of a batch and how many tokens it averages over.
export interface Objective<B> {
  loss(model: AnyModel, b: B): Tensor; // mean, to be differentiated
  validSums(model: AnyModel, b: B): Tensor; // [2]: summed smoothed loss, summed NLL
  tokens(b: B): number;
  srcTokens(b: B): number;
}

export interface TrainerOptions {
  clipNorm: number; // 0: no clipping (and no gradient-norm read)
  schedule: (step: number) => number; // learning rate of update number `step` (1-based)
}

export interface StepResult {
  step: number;
  loss: number;
  gradNorm: number | null;
  lr: number;
  tokens: number; // target tokens of the batch (of all batches, when accumulating)
  srcTokens: number;
}

export interface ValidResult {
  loss: number; // label-smoothed, per target token
  nll: number; // per target token
  tokens: number;
}

async function readScalar(t: Tensor): Promise<number> {
  return t.backend.sync ? t.item() : (await t.data())[0];
}

export class Trainer<B> {
  constructor(readonly model: AnyModel, readonly optimizer: Optimizer, readonly objective: Objective<B>, readonly opts: TrainerOptions) {
    if (!(opts.clipNorm >= 0)) throw new Error(`Trainer: clipNorm must be ≥ 0, got ${opts.clipNorm}`);
  }

  get step(): number {
    return this.optimizer.stepCount;
  }

  // One update from one batch, or from several (gradient accumulation, weighted as above). On a
  // non-finite loss or gradient, or an error in any batch, it throws before touching any
  // parameter and leaves no gradient behind.
  async trainStep(...batches: B[]): Promise<StepResult> {
    const { model, optimizer, opts, objective } = this;
    if (batches.length === 0) throw new Error("Trainer.trainStep: pass at least one batch");
    const step = optimizer.stepCount + 1;
    const lr = opts.schedule(step);
    optimizer.lr = lr;
    model.train();
    const counts = batches.map((b) => objective.tokens(b));
    const total = counts.reduce((a, n) => a + n, 0);
    let loss = 0;
    try {
      for (let i = 0; i < batches.length; i++) {
        const w = batches.length === 1 ? 1 : total > 0 ? counts[i] / total : 1 / batches.length;
        const lossT = tidy(() => {
          const l = objective.loss(model, batches[i]);
          (w === 1 ? l : l.mul(w)).backward();
          return l;
        });
        try {
          loss += w * (await readScalar(lossT));
        } finally {
          lossT.dispose();
        }
      }
    } catch (e) {
      optimizer.zeroGrad(); // the batches before the failing one left gradients: drop them
      throw e;
    }
    let gradNorm: number | null = null;
    if (opts.clipNorm > 0) {
      const params = model.parameters();
      gradNorm = params[0].backend.sync ? clipGradNorm(params, opts.clipNorm) : await clipGradNormAsync(params, opts.clipNorm);
    }
    if (!Number.isFinite(loss) || (gradNorm !== null && !Number.isFinite(gradNorm))) {
      optimizer.zeroGrad();
      throw new Error(`training diverged at step ${step}: loss ${loss}, gradient norm ${gradNorm}; parameters left unchanged (lower \`lr\` or raise \`warmup\`)`);
    }
    optimizer.step();
    optimizer.zeroGrad();
    return { step, loss, gradNorm, lr, tokens: total, srcTokens: batches.reduce((a, b) => a + objective.srcTokens(b), 0) };
  }

  // Token-weighted validation losses over `batches` (eval mode: no dropout, no RNG draws).
  async validate(batches: Iterable<B>): Promise<ValidResult> {
    const { model, objective } = this;
    model.eval();
    let sumLoss = 0, sumNll = 0, tokens = 0;
    try {
      for (const b of batches) {
        const both = tidy(() => noGrad(() => objective.validSums(model, b))); // one read for both
        const v = both.backend.sync ? both.dataSync() : await both.data();
        both.dispose();
        sumLoss += v[0];
        sumNll += v[1];
        tokens += objective.tokens(b);
      }
    } finally {
      model.train();
    }
    if (tokens === 0) throw new Error("Trainer.validate: no validation tokens");
    return { loss: sumLoss / tokens, nll: sumNll / tokens, tokens };
  }
}
