// One training update and one validation pass of a translation Transformer.
//
// An update: lr ← schedule(step + 1); loss = CE_ls(model(src, bos·y), y·eos) averaged over the
// target tokens (padding ignored); backward; clip ‖g‖; AdamW step. It reads back two scalars,
// the loss (for the log) and ‖g‖ (needed to clip); both also serve as the finiteness check, so
// the optimizer's own extra read is switched off.
import { noGrad } from "../../core/autograd.ts";
import { tensor } from "../../core/ops/creation.ts";
import { crossEntropy } from "../../core/ops/nn.ts";
import { cat } from "../../core/ops/shape.ts";
import { tidy } from "../../core/scope.ts";
import type { Tensor } from "../../core/tensor.ts";
import type { Batch } from "../data/batcher.ts";
import type { Transformer } from "../models/transformer.ts";
import { clipGradNorm, clipGradNormAsync } from "../optim/clip.ts";
import type { Optimizer } from "../optim/optimizer.ts";

export interface TrainerOptions {
  labelSmoothing: number;
  clipNorm: number; // 0: no clipping (and no gradient-norm read)
  schedule: (step: number) => number; // learning rate of update number `step` (1-based)
}

export interface StepResult {
  step: number;
  loss: number;
  gradNorm: number | null;
  lr: number;
  tokens: number; // target tokens of the batch (non-pad, eos included)
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

export class Trainer {
  constructor(readonly model: Transformer, readonly optimizer: Optimizer, readonly opts: TrainerOptions) {
    if (!(opts.clipNorm >= 0)) throw new Error(`Trainer: clipNorm must be ≥ 0, got ${opts.clipNorm}`);
  }

  get step(): number {
    return this.optimizer.stepCount;
  }

  private inputs(b: Batch): { src: Tensor; tgtIn: Tensor; tgtOut: Tensor } {
    const backend = this.model.parameters()[0].backend;
    return {
      src: tensor(b.src, { dtype: "int32", shape: b.srcShape, backend }),
      tgtIn: tensor(b.tgtIn, { dtype: "int32", shape: b.tgtShape, backend }),
      tgtOut: tensor(b.tgtOut, { dtype: "int32", shape: b.tgtShape, backend }),
    };
  }

  // One update. On a non-finite loss or gradient it throws before touching any parameter.
  async trainStep(b: Batch): Promise<StepResult> {
    const { model, optimizer, opts } = this;
    const step = optimizer.stepCount + 1;
    const lr = opts.schedule(step);
    optimizer.lr = lr;
    model.train();
    const lossT = tidy(() => {
      const { src, tgtIn, tgtOut } = this.inputs(b);
      const logits = model.forward(src, tgtIn); // [B, T, V]
      const loss = crossEntropy(logits, tgtOut, { ignoreIndex: b.padId, labelSmoothing: opts.labelSmoothing });
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
      gradNorm = model.parameters()[0].backend.sync ? clipGradNorm(params, opts.clipNorm) : await clipGradNormAsync(params, opts.clipNorm);
    }
    if (!Number.isFinite(loss) || (gradNorm !== null && !Number.isFinite(gradNorm))) {
      optimizer.zeroGrad();
      throw new Error(`training diverged at step ${step}: loss ${loss}, gradient norm ${gradNorm}; parameters left unchanged (lower --lr or raise --warmup)`);
    }
    optimizer.step();
    optimizer.zeroGrad();
    return { step, loss, gradNorm, lr, tokens: b.numTokens, srcTokens: b.srcLengths.reduce((s, n) => s + n, 0) };
  }

  // Token-weighted validation losses over `batches` (eval mode: no dropout, no RNG draws).
  async validate(batches: Iterable<Batch>): Promise<ValidResult> {
    const { model, opts } = this;
    model.eval();
    let sumLoss = 0, sumNll = 0, tokens = 0;
    try {
      for (const b of batches) {
        const both = tidy(() => noGrad(() => {
          const { src, tgtIn, tgtOut } = this.inputs(b);
          const logits = model.forward(src, tgtIn);
          const ls = crossEntropy(logits, tgtOut, { ignoreIndex: b.padId, labelSmoothing: opts.labelSmoothing, reduction: "sum" });
          const nll = crossEntropy(logits, tgtOut, { ignoreIndex: b.padId, reduction: "sum" });
          return cat([ls.reshape(1), nll.reshape(1)]); // one read for both
        }));
        const v = both.backend.sync ? both.dataSync() : await both.data();
        both.dispose();
        sumLoss += v[0];
        sumNll += v[1];
        tokens += b.numTokens;
      }
    } finally {
      model.train();
    }
    if (tokens === 0) throw new Error("Trainer.validate: no validation tokens");
    return { loss: sumLoss / tokens, nll: sumNll / tokens, tokens };
  }
}
