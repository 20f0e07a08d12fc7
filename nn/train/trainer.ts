// One training update and one validation pass, for any model and task.
//
// An update: lr ← schedule(step + 1); loss = objective.loss(model, batch); backward; clip ‖g‖;
// AdamW step. It reads back two scalars, the loss (for the log) and ‖g‖ (needed to clip); both
// also serve as the finiteness check, so the optimizer's own extra read is switched off.
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
  tokens: number; // target tokens of the batch
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

  // One update. On a non-finite loss or gradient it throws before touching any parameter.
  async trainStep(b: B): Promise<StepResult> {
    const { model, optimizer, opts, objective } = this;
    const step = optimizer.stepCount + 1;
    const lr = opts.schedule(step);
    optimizer.lr = lr;
    model.train();
    const lossT = tidy(() => {
      const loss = objective.loss(model, b);
      loss.backward();
      return loss;
    });
    let loss: number;
    try {
      loss = await readScalar(lossT);
    } finally {
      lossT.dispose();
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
    return { step, loss, gradNorm, lr, tokens: objective.tokens(b), srcTokens: objective.srcTokens(b) };
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
