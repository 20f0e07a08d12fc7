// Gradient accumulation (`accumulate`, Trainer.trainStep(...batches)): an update from batches
// b₁…b_N weights each batch's mean loss by its share of the tokens, so it equals one update from
// a single batch holding all of them; a failure in any batch leaves parameters and gradients as
// they were; and a whole run with accumulate 2 trains, logs the tokens of both batches, resumes.
import { join } from "node:path";
import * as fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { tensor, type Tensor } from "../../core/index.ts";
import { Linear, SGD, type AnyModel } from "../../nn/index.ts";
import { loadCheckpoint, saveCheckpoint } from "../../nn/train/checkpoint.ts";
import { readLog, type TrainEntry } from "../../nn/train/log.ts";
import { train } from "../../nn/train/run.ts";
import { Trainer, type Objective } from "../../nn/train/trainer.ts";
import type { TranslateFn } from "../../nn/tasks/index.ts";
import { rejectsWith } from "../helpers/rejects.ts";
import { TINY, TempCorpora } from "./train-fixture.ts";

// A batch: rows of 3 features and a target per row; each row is one "token".
interface Rows { x: number[][]; y: number[] }
const num = fc.integer({ min: -20, max: 20 }).map((i) => i / 10);
const rowsArb = fc.array(fc.tuple(fc.array(num, { minLength: 3, maxLength: 3 }), num), { minLength: 1, maxLength: 6 })
  .map((r): Rows => ({ x: r.map((p) => p[0]), y: r.map((p) => p[1]) }));

// Mean squared error of a linear layer over the batch's rows: a token-mean loss, like every task's.
const objective = (fail?: (b: Rows) => boolean): Objective<Rows> => ({
  loss: (m, b) => {
    if (fail?.(b)) throw new Error("this batch fails");
    const lin = m as unknown as Linear;
    const backend = lin.weight.backend;
    const d = lin.forward(tensor(b.x.flat(), { shape: [b.y.length, 3], backend })).reshape([b.y.length]).sub(tensor(b.y, { backend }));
    return d.mul(d).mean();
  },
  validSums: () => { throw new Error("not used"); },
  tokens: (b) => b.y.length,
  srcTokens: (b) => b.y.length,
});

function setup(obj: Objective<Rows>) {
  const lin = new Linear(3, 1);
  const start = [0.3, -0.2, 0.5], bias = [0.1]; // the same start for every trainer compared
  const opt = new SGD(lin.namedParameters(), { lr: 0.1 });
  const trainer = new Trainer(lin as unknown as AnyModel, opt, obj, { clipNorm: 0, schedule: () => 0.1 });
  const params = () => [...lin.weight.dataSync(), ...lin.bias!.dataSync()];
  const reset = () => {
    lin.weight.assign_(tensor(start, { shape: [1, 3], backend: lin.weight.backend }));
    lin.bias!.assign_(tensor(bias, { backend: lin.weight.backend }));
  };
  reset();
  const dispose = () => {
    lin.dispose();
    opt.dispose();
  };
  return { lin, trainer, params, dispose };
}

test("accumulating batches equals one update from a batch holding all their rows", () => {
  fc.assert(fc.asyncProperty(fc.array(rowsArb, { minLength: 1, maxLength: 4 }), async (batches) => {
    const a = setup(objective()), b = setup(objective());
    try {
      const ra = await a.trainer.trainStep(...batches);
      const all: Rows = { x: batches.flatMap((r) => r.x), y: batches.flatMap((r) => r.y) };
      const rb = await b.trainer.trainStep(all);
      assert.is(ra.tokens, rb.tokens);
      assert.ok(Math.abs(ra.loss - rb.loss) <= 1e-5 * (1 + Math.abs(rb.loss)), `loss ${ra.loss} vs ${rb.loss}`);
      const pa = a.params(), pb = b.params();
      for (let i = 0; i < pa.length; i++) assert.ok(Math.abs(pa[i] - pb[i]) <= 1e-5 * (1 + Math.abs(pb[i])), `parameter ${i}: ${pa[i]} vs ${pb[i]}`);
    } finally {
      a.dispose();
      b.dispose();
    }
  }), { numRuns: 60 });
});

test("a failing batch, or a non-finite loss in any batch, leaves parameters and gradients untouched", async () => {
  const good: Rows = { x: [[1, 2, 3], [0, 1, 0]], y: [1, -1] };
  const bad: Rows = { x: [[1, 1, 1]], y: [7] };
  const nan: Rows = { x: [[Number.NaN, 0, 0]], y: [0] };
  for (const [batches, message] of [[[good, bad], /this batch fails/], [[good, nan], /training diverged at step 1/]] as [Rows[], RegExp][]) {
    const s = setup(objective((b) => b === bad));
    try {
      const before = s.params();
      await rejectsWith(s.trainer.trainStep(...batches), message);
      assert.equal(s.params(), before);
      assert.ok(s.lin.parameters().every((p: Tensor) => !p.grad || p.grad.isDisposed), "no gradient left behind");
      assert.is(s.trainer.step, 0);
    } finally {
      s.dispose();
    }
  }
  const s = setup(objective());
  try {
    await rejectsWith(s.trainer.trainStep(), /pass at least one batch/);
  } finally {
    s.dispose();
  }
});

const temp = new TempCorpora();
const data = temp.make();
test.after(() => temp.remove());
const echo: TranslateFn = (_m, lines) => lines;

test("a run with accumulate 2: each update logs the tokens of two batches, and it resumes", async () => {
  const out = join(data, "acc");
  const tokens: number[] = [];
  await train({ ...TINY, data, out, accumulate: 2, maxSteps: 3, evalEvery: 0 }, { translate: echo, onStep: (s) => tokens.push(s.tokens) });
  const one: number[] = [];
  await train({ ...TINY, data, out: join(data, "one"), maxSteps: 6, evalEvery: 0 }, { translate: echo, onStep: (s) => one.push(s.tokens) });
  // the same data order: update i of the accumulating run saw batches 2i and 2i+1 of the plain run
  assert.equal(tokens, [one[0] + one[1], one[2] + one[3], one[4] + one[5]]);
  const r = await train({ out, maxSteps: 4 }, { resume: true, translate: echo });
  assert.is(r.step, 4);
  assert.is(r.config.accumulate, 2);
  const trained = readLog(join(out, "log.jsonl")).filter((e): e is TrainEntry => e.kind === "train");
  assert.ok(trained.length > 0);
  await rejectsWith(train({ out, maxSteps: 5, accumulate: 1 }, { resume: true, translate: echo }), /`accumulate`: checkpoint has 2, asked for 1/);
});

test("a checkpoint written before `accumulate` and `glance` existed resumes with accumulate 1 and glance 0", async () => {
  for (const task of [{ task: "translation" }, { task: "nat", model: "cmlm" }]) {
    const out = join(data, `old-${task.task}`);
    await train({ ...TINY, ...task, data, out, maxSteps: 2, evalEvery: 0 }, { translate: echo });
    const path = join(out, "checkpoint.safetensors");
    const parts = loadCheckpoint(path);
    const old = { ...parts.state.config } as Record<string, unknown>;
    delete old.accumulate;
    delete old.glance;
    await saveCheckpoint(path, { ...parts, state: { ...parts.state, config: old as typeof parts.state.config } });
    for (const t of [...Object.values(parts.model), ...Object.values(parts.optimizer)]) t.dispose();
    const r = await train({ out, maxSteps: 3 }, { resume: true, translate: echo });
    assert.is(r.step, 3);
    assert.is(r.config.accumulate, 1);
    assert.is(r.config.glance, task.task === "nat" ? 0 : undefined, "glance only where the task has it");
  }
});

test.run();
